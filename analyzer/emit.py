"""DataSpec emission: detections + VLM panels → one canonical page per matched page (its file
named and written by `page_files`).

Boxes: panel detections at or above the score threshold, converted by dataspec's box
rules (clipped to the page, integer pixels; a box they drop does not count), listed in
layout order (`dataspec.reading_order`, left to right).

Which VLM text goes on which detection is `analyzer.align`'s answer; `build_page` keeps
the placements at or above the confidence threshold. A detection without one has unknown
text (`text_known: false`, never an empty text that would read as "no lettering"); the text
of VLM panels placed nowhere stays on the page (`unpaired_text`). A page with no confident
placement is skipped (`zero_pairs`) unless `keep_unpaired` is set.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dataspec import Page, PageSize, Panel, PanelText, Source, UnpairedText, reading_order
from dataspec.errors import Note
from dataspec.models import TEXT_KINDS, TextItem
from dataspec.normalize import PanelRecord
from dataspec.normalize.boxes import MAX_COORD, BoxFrame, RawBox

from .align import Alignment, Part, iou
from .align.geometry import hole

__all__ = [
    "MIN_CONFIDENCE",
    "SKIP_REASONS",
    "Detection",
    "build_page",
    "detections",
    "text_boxes",
]

MIN_CONFIDENCE = 0.9
"""Default least confidence of a placement for its text to be written on the panel."""

SKIP_REASONS = {
    "not_selected": "not in the subsets chosen with --emit_dataspec_for",
    "dataspec_limit": "--dataspec_limit files were already written",
    "output_collision": "an earlier page (in page order) has the same output file",
    "missing_image": "image not found under --image_roots (with --require_image_exists)",
    "bad_image": "image found but not usable: unreadable, not an image, truncated, or more "
    "pixels than any page (with --require_image_exists; the file and why are in the errors CSV)",
    "no_detections": "no panel detections at all for this image",
    "no_dets_after_threshold": "no usable panel detection at or above --dataspec_min_det_score",
    "equal_count_mismatch": "detections ≠ VLM panels (with --dataspec_require_equal_counts)",
    "zero_pairs": "no detection could be paired with a VLM panel at or above "
    "--dataspec_min_pair_confidence",
    "unsafe_output": "the output file would be written through a symlink in the out tree, or "
    "over a FIFO, socket or device: nothing written (the path is in the errors CSV)",
    "exception:<Type>": "building or writing the page raised <Type> (message in the errors CSV)",
}
"""Why a matched page was not written, checked in this order."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Detection:
    """One usable panel detection: its pixel box and score."""

    box: Box
    score: float


class _InLayoutOrder(list[Detection]):
    """Detections `detections` put in layout order: their left-to-right layout order is
    their own (`reading_order` of boxes in its order gives them back as they are), so
    `build_page` need not work it out again."""


def detections(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, size: tuple[int, int] | None
) -> list[Detection]:
    """Detections at or above `threshold`, in pixels by dataspec's box rules, in layout
    order (rows, then left to right)."""
    kept = _in_pixels(boxes, scores, threshold, size)
    order = reading_order([d.box for d in kept])
    return _InLayoutOrder(kept[i] for i in order)


def text_boxes(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, size: tuple[int, int] | None
) -> list[Box]:
    """The detector's boxes of one kind (text/balloon, characters) at or above `threshold`,
    in pixels (file order)."""
    return [d.box for d in _in_pixels(boxes, scores, threshold, size)]


def _in_pixels(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, size: tuple[int, int] | None
) -> list[Detection]:
    """The boxes scoring at least `threshold`, converted by dataspec's box rules (a box
    they drop is left out), in file order.

    For float boxes the rules `BoxFrame(size).to_pixels` applies to a pixel `[x, y, w, h]`
    box are inlined (no `RawBox`, no notes: nobody reads them here); other arrays go
    through `BoxFrame` itself.
    """
    if boxes.dtype != np.float64:
        return _by_rules(boxes, scores, threshold, size)
    hi_x, hi_y = (float(size[0]), float(size[1])) if size else (MAX_COORD, MAX_COORD)
    top, isfinite, floor = MAX_COORD, math.isfinite, math.floor
    kept: list[Detection] = []
    for (x1, y1, w, h), score in zip(boxes.tolist(), scores.tolist(), strict=True):
        if score < threshold:
            continue
        x2, y2 = x1 + w, y1 + h
        # a sum of finite values is finite unless it overflows, which only values far
        # beyond `MAX_COORD` do: dropped either way
        if not isfinite(x1 + y1 + x2 + y2):
            continue  # nan_box
        if not (
            -top <= x1 <= top and -top <= y1 <= top and -top <= x2 <= top and -top <= y2 <= top
        ):
            continue  # implausible_box
        if x2 < x1 or y2 < y1:
            continue  # negative_extent
        # min(max(v, 0.0), hi), as `to_pixels` clips
        cx1 = 0.0 if x1 < 0.0 else x1
        cx1 = hi_x if hi_x < cx1 else cx1
        cy1 = 0.0 if y1 < 0.0 else y1
        cy1 = hi_y if hi_y < cy1 else cy1
        cx2 = 0.0 if x2 < 0.0 else x2
        cx2 = hi_x if hi_x < cx2 else cx2
        cy2 = 0.0 if y2 < 0.0 else y2
        cy2 = hi_y if hi_y < cy2 else cy2
        if (cx2 <= cx1 or cy2 <= cy1) and (x2 > x1 and y2 > y1):
            continue  # outside_page
        ix1, iy1 = floor(cx1 + 0.5), floor(cy1 + 0.5)
        iw, ih = floor(cx2 + 0.5) - ix1, floor(cy2 + 0.5) - iy1
        if iw < 1 or ih < 1:
            continue  # zero_area
        score = 0.0 if score < 0.0 else (1.0 if score > 1.0 else score)  # clamped to [0, 1]
        kept.append(Detection((ix1, iy1, iw, ih), score))
    return kept


def _by_rules(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, size: tuple[int, int] | None
) -> list[Detection]:
    """`_in_pixels` through `BoxFrame.to_pixels` itself."""
    frame = BoxFrame(size)
    notes: list[Note] = []
    kept: list[Detection] = []
    for values, score in zip(boxes.tolist(), scores.tolist(), strict=True):
        if score < threshold:
            continue
        box = frame.to_pixels(RawBox(tuple(values), "xywh", "bbox"), notes, "$")
        if box is not None:
            kept.append(Detection(box, min(max(float(score), 0.0), 1.0)))
    return kept


def build_page(
    *,
    image_path: str,
    size: tuple[int, int] | None,
    dets: Sequence[Detection],
    vlm: Sequence[PanelRecord],
    alignment: Alignment,
    min_confidence: float,
    image_id: int | str,
    vlm_json_path: str,
    match_tier: str,
    vlm_repairs: Sequence[str] = (),
    vlm_truncated: bool = False,
) -> Page:
    """The canonical page: every detection as a panel (in layout order), VLM text on it.

    A detection gets the text of its placement when that is at least `min_confidence`;
    otherwise its text is unknown (`text_known: false`). A VLM panel the alignment found
    missed by the detector, at least that sure, where the detector boxed lettering in an
    empty region a panel could fill (`align.geometry.hole`), becomes a panel of that region
    (`inferred: true`, in its layout place). The text of VLM panels (or lines) placed
    nowhere is kept in `unpaired_text`. `reading_order` follows the VLM's panel
    order where its boxes paired panels (`reading_order_source: vlm`), else the layout
    heuristic in the direction the alignment found (`layout`). `source` holds the
    provenance, the pairing method and confidence, and the unpaired counts.
    """
    kept = {p.det: p for p in alignment.confident(min_confidence)}
    placed: dict[int, set[int] | None] = {}  # VLM panel -> item indices placed (None: all)
    panels: list[Panel] = []
    for i, det in enumerate(dets):
        placement = kept.get(i)
        if placement is None:
            panels.append(Panel(panel_coords=det.box, score=det.score, text_known=False))
            continue
        for part in placement.parts:
            _mark(placed, part)
        panels.append(
            Panel(panel_coords=det.box, score=det.score, **_content(vlm, placement.parts))
        )
    found = _found(dets, alignment, min_confidence, placed, size)
    for box, j in found:
        _mark(placed, Part(j))
        panels.append(Panel(panel_coords=box, inferred=True, **_content(vlm, (Part(j),))))
    rank = list(alignment.vlm_rank) if alignment.vlm_rank is not None else None
    sure = set(kept)
    if found:  # every panel in layout order again, the inferred ones in their places
        n = len(dets)
        sure |= set(range(n, n + len(found)))
        if rank is not None:
            rank += [float(j) for _, j in found]
        layout = reading_order([p.panel_coords for p in panels])
        panels = [panels[i] for i in layout]
        sure = {k for k, i in enumerate(layout) if i in sure}
        rank = [rank[i] for i in layout] if rank is not None else None
    order, source = _reading_order(
        [p.panel_coords for p in panels],
        alignment.direction == "rtl",
        rank,
        sure,
        in_layout=bool(found) or type(dets) is _InLayoutOrder,
    )
    unpaired = _unpaired(vlm, placed)
    extra: dict[str, object] = {
        "match_tier": match_tier,
        "pairing": alignment.method,
        "pairing_confidence": alignment.confidence,
    }
    if alignment.direction != "ltr":
        extra["reading_direction"] = alignment.direction
    if len(dets) > len(kept):
        extra["unpaired_detections"] = len(dets) - len(kept)
    unplaced = sum(1 for j in range(len(vlm)) if j not in placed)
    if unplaced:
        extra["unpaired_vlm_panels"] = unplaced
    if vlm_repairs:
        extra["vlm_repairs"] = list(vlm_repairs)
    if vlm_truncated:
        extra["vlm_truncated"] = True
    return Page(
        page_image_path=image_path,
        panels=panels,
        reading_order=order,
        reading_order_source=source,
        page_size=PageSize(width=size[0], height=size[1]) if size else None,
        source=Source.model_validate(
            {"coco_image_id": image_id, "vlm_json_path": vlm_json_path, **extra}
        ),
        unpaired_text=unpaired or None,
    )


def _mark(placed: dict[int, set[int] | None], part: Part) -> None:
    if part.items is None:
        placed[part.vlm] = None
        return
    have = placed.setdefault(part.vlm, set())
    if have is not None:
        have.update(part.items)


def _items(record: PanelRecord) -> list[TextItem]:
    """The record's lines as text items (its own, or one per bucket line)."""
    if record.text_items is not None:
        return list(record.text_items)
    return [
        TextItem(text=line, kind=kind)  # type: ignore[arg-type]
        for kind in TEXT_KINDS
        for line in getattr(record.text, kind)
    ]


def _text_of(items: Sequence[TextItem]) -> PanelText:
    return PanelText(**{k: [t.text for t in items if t.kind == k] for k in TEXT_KINDS})


def _content(vlm: Sequence[PanelRecord], parts: Sequence[Part]) -> dict[str, Any]:
    """Panel fields from the VLM parts placed on one detection (in VLM order)."""
    if not parts:
        return {}
    if len(parts) == 1 and parts[0].items is None:
        record = vlm[parts[0].vlm]
        return {"text": record.text, **record.details()}
    items: list[TextItem] = []
    detailed = False
    descriptions: list[str] = []
    characters: list[Any] = []
    faces: list[Any] = []
    for part in parts:
        record = vlm[part.vlm]
        mine = _items(record)
        detailed |= record.text_items is not None
        if part.items is None:
            items += mine
            characters += record.characters or ()
            faces += record.faces or ()
            if record.description:
                descriptions.append(record.description)
        else:
            items += [mine[n] for n in part.items if n < len(mine)]
    out: dict[str, Any] = {"text": _text_of(items)}
    if detailed and items:
        out["text_items"] = items
    if descriptions:
        out["description"] = "\n".join(descriptions)
    if characters:
        out["characters"] = characters
    if faces:
        out["faces"] = faces
    return out


def _unpaired(vlm: Sequence[PanelRecord], placed: dict[int, set[int] | None]) -> list[UnpairedText]:
    """The VLM panels (or their lines) placed on no detection, in VLM order."""
    out: list[UnpairedText] = []
    for j, record in enumerate(vlm):
        have = placed.get(j, set())
        if have is None:
            continue
        if j not in placed:
            if record.text.is_empty() and not record.description:
                continue
            fields: dict[str, Any] = {"vlm_panel": j, "text": record.text}
            if record.description is not None:
                fields["description"] = record.description
            if record.text_items is not None:
                fields["text_items"] = list(record.text_items)
            out.append(UnpairedText(**fields))
            continue
        rest = [t for n, t in enumerate(_items(record)) if n not in have]
        if rest:
            fields = {"vlm_panel": j, "text": _text_of(rest)}
            if record.text_items is not None:
                fields["text_items"] = rest
            out.append(UnpairedText(**fields))
    return out


def _found(
    dets: Sequence[Detection],
    alignment: Alignment,
    min_confidence: float,
    placed: dict[int, set[int] | None],
    size: tuple[int, int] | None,
) -> list[tuple[Box, int]]:
    """(region, VLM panel) of each missed panel the page can show: skipped at least
    `min_confidence` sure, alone in its gap of the reading order, its text placed nowhere
    else, and its lettering in a `hole` that overlaps no other such region."""
    sure = [m for m in alignment.missed if m.confidence >= min_confidence]
    if not sure:
        return []
    in_gap = Counter(m.boxes for m in alignment.missed)  # skips sharing one gap's lettering
    boxes = [d.box for d in dets]
    out: list[tuple[Box, int]] = []
    for m in sure:
        if m.vlm in placed or in_gap[m.boxes] > 1:
            continue
        region = hole(m.boxes, boxes, size)
        if region is not None and all(iou(region, r) == 0 for r, _ in out):
            out.append((region, m.vlm))
    return out


def _reading_order(
    boxes: Sequence[Box],
    rtl: bool,
    rank: Sequence[float] | None,
    kept: set[int],
    in_layout: bool,
) -> tuple[list[int], Literal["vlm", "layout"]]:
    """(reading order, its source) of the panels' `boxes` (`in_layout`: already in left to
    right layout order): the VLM's order (`rank`, per panel) over the panels with VLM text
    (`kept`), the others in their layout slots; else the layout order in the page's
    direction."""
    layout = list(range(len(boxes))) if not rtl and in_layout else reading_order(boxes, rtl=rtl)
    if rank is None:
        return layout, "layout"
    ranked = [i for i in layout if i in kept and rank[i] != math.inf]
    if len(ranked) < 2:
        return layout, "layout"
    by_vlm = iter(sorted(ranked, key=lambda i: (rank[i], layout.index(i))))
    slots = set(ranked)
    return [next(by_vlm) if i in slots else i for i in layout], "vlm"
