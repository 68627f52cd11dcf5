"""Page rules: any page-shaped JSON from the wild → a canonical `Page` plus notes.

Finds the page inside wrappers, its image path, its size, its panel list, and hands
each panel to the box rules (`boxes`) and the text rules (`text`). Nothing is dropped
without a `Note`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DataSpecError, Note
from ..imagesize import image_size
from ..models import Character, Face, Page, PanelText, Source, TextItem
from ..paths import ImageResolver, infer_image_relpath
from ..version import SPEC_VERSION
from .boxes import (
    BOX_KEYS,
    FORMAT_HINT_KEYS,
    MAX_COORD,
    BoxFrame,
    Layout,
    RawBox,
    as_number,
    bare_box,
    parse_format_hint,
    read_box,
)
from .decode import parse_text
from .text import TextBuckets, clean_line, clean_str, extract_text
from .vocab import PANEL_LIST_KEYS

IMAGE_KEYS = (
    "page_image_path",
    "image_path",
    "image",
    "IMAGE_PATH",
    "imagePath",
    "img_path",
    "image_file",
    "source_image_path",
    "file_name",
    "filename",
)
"""Page keys holding the image path, in the order tried."""

WRAPPER_KEYS = (
    "result",
    "page",
    "data",
    "response",
    "output",
    "analysis",
    "content",
    "pages",
    "choices",  # a raw chat-completion reply: choices[0].message.content
    "message",
    "candidates",  # a raw Gemini reply: candidates[0].content.parts[0].text
    "parts",
    "text",
)
"""Keys whose value may be the page itself (their siblings are kept as page-level fields).

Tried in this order, only when the document has no panel list of its own.
"""

_SIZE_PAIRS = (
    ("width", "height"),
    ("image_width", "image_height"),
    ("imageWidth", "imageHeight"),
    ("img_width", "img_height"),
    ("page_width", "page_height"),
)
_SIZE_KEYS = ("page_size", "size", "image_size", "dimensions")
SCORE_KEYS = ("score", "confidence", "conf", "det_score", "detection_score", "probability")
CHARACTER_KEYS = ("character_coords", "characters", "character_boxes")
FACE_KEYS = ("faces", "face_boxes")
_NAME_KEYS = ("name", "character", "label", "speaker")
TYPED_PANEL_FIELDS = ("text_items", "characters", "faces", "character_coords", "description")
"""Panel fields whose raw value, when no rule read it, is kept under `<name>_unread`."""
NOT_PANEL_KEYS = ("text_regions", "paddleocr_results", "ocr_results", "ocr", "words", "lines")
"""Box-bearing lists that are text (OCR results), never panels: kept as page fields."""
ORDER_KEYS = ("panel_number", "panel_num", "panel_index")
_NORMALIZED_FLAGS = ("normalized", "is_normalized", "relative")
_MAX_DEPTH = 8


def normalize(
    obj: Any,
    *,
    page_size: tuple[int, int] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    image_root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    resolver: ImageResolver | None = None,
    caption_as_narration: bool = False,
    box_format: str | None = None,
) -> tuple[Page, list[Note]]:
    """Turn parsed JSON of one page into a canonical `Page` and the notes of what changed.

    `page_size` (width, height) is used when the document has none; failing both, the
    image header is read when the image can be found. `json_path` names the source file
    (for messages, provenance and image-path inference). `image_root` or `resolver`
    resolves the image path to an existing absolute path (else `DataSpecError`).
    `caption_as_narration` restores the seed's reading of a VLM panel `caption`.
    `box_format` ("xywh", "xyxy", ...) overrides any format hint in the document.
    Raises `DataSpecError` when no page can be made.
    """
    notes: list[Note] = []
    try:
        fields, items, panels_where = _locate(obj, notes, "$", 0)
        return _build(
            fields,
            items,
            panels_where,
            notes,
            page_size=page_size,
            json_path=json_path,
            resolver=resolver or (ImageResolver(image_root) if image_root else None),
            caption_as_narration=caption_as_narration,
            box_format=box_format,
        )
    except DataSpecError as exc:
        if exc.file is None and json_path is not None:
            raise exc.renamed(json_path) from exc
        raise
    except RecursionError:
        raise DataSpecError(_TOO_DEEP, file=json_path) from None


_TOO_DEEP = "values nested too deeply to normalize (hundreds of levels)"


@dataclass(frozen=True)
class PanelRecord:
    """One panel as a document gives it, box or not (e.g. a VLM panel with text only)."""

    index: int
    """Position in the document's panel list (before `panel_number` ordering)."""
    text: PanelText
    box: tuple[int, int, int, int] | None = None
    description: str | None = None
    score: float | None = None
    text_items: tuple[TextItem, ...] | None = None
    characters: tuple[Character, ...] | None = None
    faces: tuple[Face, ...] | None = None

    def details(self) -> dict[str, Any]:
        """The optional `Panel` fields this record fills (description, text items, …)."""
        out: dict[str, Any] = {}
        if self.description is not None:
            out["description"] = self.description
        for name in ("text_items", "characters", "faces"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value)
        return out


def read_panels(
    obj: Any,
    *,
    page_size: tuple[int, int] | None = None,
    caption_as_narration: bool = False,
    box_format: str | None = None,
    fast: bool = True,
) -> tuple[list[PanelRecord], list[Note]]:
    """Every panel of a page-shaped document with its text, in panel order, boxes optional.

    The same rules as `normalize`, for documents whose panels may carry no box (a VLM
    analysis); needs no image path. Raises `DataSpecError` when the document holds no
    panel list at all (an empty list is zero panels). `fast=False` skips the fast path
    (`fast.read_fast`, the same result for the common shapes) and runs the rules here.
    """
    if fast:
        from .fast import read_fast  # here, not at the top: fast imports this module

        done = read_fast(obj, page_size, caption_as_narration, box_format)
        if done is not None:
            return done
    try:
        return _read_panels(obj, page_size, caption_as_narration, box_format)
    except RecursionError:
        raise DataSpecError(_TOO_DEEP) from None


def _read_panels(
    obj: Any,
    page_size: tuple[int, int] | None,
    caption_as_narration: bool,
    box_format: str | None,
) -> tuple[list[PanelRecord], list[Note]]:
    notes: list[Note] = []
    fields, items, panels_where = _locate(obj, notes, "$", 0)
    if items is None:
        raise DataSpecError("no panel list found (e.g. an error reply)")
    coco_image, items = _coco_filter(fields, items, panels_where, notes, set())
    size = _doc_size(fields, coco_image, notes, set()) or (
        (int(page_size[0]), int(page_size[1])) if page_size is not None else None
    )
    converted = _convert_panels(
        fields,
        items or [],
        panels_where,
        size,
        notes,
        set(),
        caption_as_narration=caption_as_narration,
        box_format=box_format,
        keep_boxless=True,
    )
    records = []
    for index, panel in converted:
        coords = panel.get("panel_coords")
        records.append(
            PanelRecord(
                index=index,
                text=PanelText.model_validate(panel.get("text", {})),
                box=(coords[0], coords[1], coords[2], coords[3]) if coords else None,
                description=panel.get("description"),
                score=panel.get("score"),
                text_items=_typed(TextItem, panel.get("text_items")),
                characters=_typed(Character, panel.get("characters")),
                faces=_typed(Face, panel.get("faces")),
            )
        )
    return records, notes


def _typed(model: Any, items: list[dict[str, Any]] | None) -> Any:
    return None if items is None else tuple(model.model_validate(i) for i in items)


# --- finding the page ----------------------------------------------------------------------


def _has_box(item: Any) -> bool:
    if isinstance(item, dict):
        return read_box(item) is not None
    return bare_box(item) is not None


def _panel_list(doc: dict[str, Any], notes: list[Note], where: str) -> tuple[str, list[Any]] | None:
    for key in PANEL_LIST_KEYS:
        value = doc.get(key)
        if isinstance(value, list):
            return key, value
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            notes.append(
                Note("panels_as_dict", f"{key!r} is an object: its values are the panels", where)
            )
            return key, list(value.values())
    for key, value in doc.items():
        if (
            key not in NOT_PANEL_KEYS
            and isinstance(value, list)
            and value
            and all(isinstance(v, dict) for v in value)
            and any(_has_box(v) for v in value)
        ):
            return str(key), value
    return None


def _locate(
    obj: Any, notes: list[Note], where: str, depth: int
) -> tuple[dict[str, Any], list[Any] | None, str]:
    """(page-level fields, panel items or None, JSON path of the panel list)."""
    if depth > _MAX_DEPTH:
        raise DataSpecError("page nested too deeply in wrappers", where=where)
    if isinstance(obj, str):
        parsed = parse_text(obj, notes)
        notes.append(Note("json_in_string", "page given as JSON text", where))
        return _locate(parsed, notes, where, depth + 1)
    if isinstance(obj, list):
        if obj and all(_has_box(v) for v in obj):
            notes.append(Note("bare_panel_list", "document is a bare list of panels", where))
            return {}, obj, where
        if len(obj) == 1:
            notes.append(Note("unwrapped_list", "one-element list unwrapped", where))
            return _locate(obj[0], notes, f"{where}[0]", depth + 1)
        if not obj:
            return {}, [], where
        raise DataSpecError(f"a list of {len(obj)} items that are not panels", where=where)
    if not isinstance(obj, dict):
        raise DataSpecError(f"expected a JSON object, got {type(obj).__name__}", where=where)
    empty = _empty_reply(obj)
    if empty is not None:
        raise DataSpecError(f"empty reply ({empty})", where=where, code="empty_reply")
    found = _panel_list(obj, notes, where)
    if found is not None:
        key, items = found
        return obj, items, f"{where}.{key}"
    wrapper_error: DataSpecError | None = None
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if not isinstance(inner, dict | list | str):
            continue
        trial: list[Note] = []  # a wrapper not taken leaves no notes behind
        try:
            inner_fields, inner_items, inner_where = _locate(
                inner, trial, f"{where}.{key}", depth + 1
            )
        except DataSpecError as exc:
            wrapper_error = wrapper_error or exc
            continue
        notes.extend(trial)
        notes.append(Note("unwrapped", f"page taken from {key!r}", where))
        merged = {k: v for k, v in obj.items() if k != key}
        merged.update(inner_fields)
        return merged, inner_items, inner_where
    if wrapper_error is not None and not any(k in obj for k in IMAGE_KEYS):
        raise wrapper_error  # e.g. {"pages": [two pages]}: say why, not "no image path"
    return obj, None, where


_REPLY_KEYS = ("message", "content", "response", "output")
_TOKEN_KEYS = ("completion_tokens", "output_tokens", "candidatesTokenCount")


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def _empty_reply(obj: dict[str, Any]) -> str | None:
    """Why a model reply with no panel list holds no answer at all; None if it may hold one.

    Empty: the first choice's (chat completion) or candidate's (Gemini) message or content
    null, empty or blank, no choices at all, a top-level reply field (`message`, `content`,
    `response`, `output`) null or empty, or zero completion tokens in `usage`.
    """
    if any(k in obj for k in PANEL_LIST_KEYS) or any(k in obj for k in IMAGE_KEYS):
        return None
    for key in ("choices", "candidates"):
        value = obj.get(key)
        if not isinstance(value, list):
            continue
        first = value[0] if value else None
        if not isinstance(first, dict):
            return f"{key} is empty"
        inner = first.get("message", first.get("content", first.get("text")))
        if _blank(inner):
            return f"{key}[0] has no message"
        if isinstance(inner, dict):
            content = inner.get("content", inner.get("parts"))
            if _blank(content):
                return f"{key}[0] message content is empty"
    for key in _REPLY_KEYS:
        if key in obj and _blank(obj[key]):
            return f"{key} is {'null' if obj[key] is None else 'empty'}"
    usage = obj.get("usage", obj.get("usageMetadata"))
    if isinstance(usage, dict):
        for key in _TOKEN_KEYS:
            if usage.get(key) == 0 and not isinstance(usage.get(key), bool):
                return f"usage.{key} is 0"
    return None


# --- building the page ---------------------------------------------------------------------


def _build(
    fields: dict[str, Any],
    items: list[Any] | None,
    panels_where: str,
    notes: list[Note],
    *,
    page_size: tuple[int, int] | None,
    json_path: str | os.PathLike[str] | None,
    resolver: ImageResolver | None,
    caption_as_narration: bool,
    box_format: str | None,
) -> tuple[Page, list[Note]]:
    used: set[str] = set()
    coco_image: dict[str, Any] = {}
    if items is not None:
        coco_image, items = _coco_filter(fields, items, panels_where, notes, used)

    image_path = _image_path(fields, coco_image, notes, used)
    if image_path is None:
        if json_path is None:
            raise DataSpecError("no image path (page_image_path, image_path, image, …) found")
        image_path = infer_image_relpath(json_path)
        notes.append(Note("image_path_inferred", f"image path inferred as {image_path!r}"))

    resolved: Path | None = None
    if resolver is not None:
        resolved = resolver.resolve(image_path, json_path)
        if str(resolved) != image_path:
            notes.append(Note("image_path_resolved", f"{image_path!r} → {str(resolved)!r}"))
        image_path = str(resolved)
    elif os.path.isabs(image_path) and os.path.isfile(image_path):
        resolved = Path(image_path)

    size = _doc_size(fields, coco_image, notes, used)
    if size is not None and page_size is not None and tuple(page_size) != size:
        notes.append(Note("page_size_conflict", f"document says {size}, caller {page_size}"))
    if size is None and page_size is not None:
        size = (int(page_size[0]), int(page_size[1]))
    if size is None and resolved is not None:
        size = image_size(resolved)
        if size is not None:
            notes.append(Note("page_size_from_image", f"page size {size} read from image header"))

    converted = _convert_panels(
        fields,
        items or [],
        panels_where,
        size,
        notes,
        used,
        caption_as_narration=caption_as_narration,
        box_format=box_format,
        keep_boxless=False,
    )
    panels = [panel for _, panel in converted]
    origin = [index for index, _ in converted]
    if items and not panels:
        notes.append(
            Note("all_panels_dropped", f"the document lists {len(items)} panels; none was kept")
        )

    page: dict[str, Any] = {
        "schema_version": SPEC_VERSION,
        "page_image_path": image_path,
        "panels": panels,
    }
    order = _doc_reading_order(fields, origin, len(items or []), notes, used)
    if order is not None:
        page["reading_order"] = order
    if size is not None:
        page["page_size"] = {"width": size[0], "height": size[1]}
    page["source"] = _source(fields, json_path, notes, used)
    if "schema_version" in fields and fields["schema_version"] != SPEC_VERSION:
        notes.append(
            Note("schema_version", f"schema_version {fields['schema_version']!r} written as 0.3")
        )
    skip = {*used, *IMAGE_KEYS, *_SIZE_KEYS, "schema_version", "panels", "reading_order"}
    skip.update(k for pair in _SIZE_PAIRS for k in pair)
    if "." in panels_where:
        skip.add(panels_where.rsplit(".", 1)[1])
    page.update(_extras(fields, skip, notes, "$"))
    try:
        return mark_truncated(Page.model_validate(page), notes), notes
    except ValidationError as exc:  # a bug in the rules above, reported as a contract error
        raise DataSpecError(f"normalized page is invalid: {exc.errors()[0]['msg']}") from exc


def mark_truncated(page: Page, notes: list[Note]) -> Page:
    """The page of a document cut short (a `truncated` note) gets `source.truncated: true`,
    and an `all_panels_dropped` note when no panel closed before the cut."""
    if not any(n.code == "truncated" for n in notes):
        return page
    if not page.panels and not any(n.code == "all_panels_dropped" for n in notes):
        notes.append(Note("all_panels_dropped", "the reply was cut before any panel closed"))
    source = page.source.to_dict() if page.source is not None else {}
    source["truncated"] = True
    return page.model_copy(update={"source": Source.model_validate(source)})


def _convert_panels(
    fields: dict[str, Any],
    items: list[Any],
    panels_where: str,
    size: tuple[int, int] | None,
    notes: list[Note],
    used: set[str],
    *,
    caption_as_narration: bool,
    box_format: str | None,
    keep_boxless: bool,
) -> list[tuple[int, dict[str, Any]]]:
    """(original index, panel dict) per panel, in panel order; boxless ones only if asked."""
    hint: Layout | None = None
    hint_normalized = _flag(fields, used)
    for key in FORMAT_HINT_KEYS:
        if key in fields:
            layout, normalized = parse_format_hint(fields[key])
            if layout is not None or normalized:
                used.add(key)
                hint = layout or hint
                hint_normalized = hint_normalized or normalized
    if box_format is not None:
        hint, normalized = parse_format_hint(box_format)
        if hint is None:
            raise DataSpecError(f"unknown box format {box_format!r}")
        hint_normalized = hint_normalized or normalized

    panels_raw = _panel_boxes(items, panels_where, hint, box_format is not None, notes)
    frame = BoxFrame(size)
    frame.decide([r for _, _, r in panels_raw if r is not None], notes, hint_normalized)
    cast = _cast(fields)
    out: list[tuple[int, dict[str, Any]]] = []
    for index, item, raw in panels_raw:
        here = f"{panels_where}[{index}]"
        box = frame.to_pixels(raw, notes, here) if raw is not None else None
        if box is None and not keep_boxless:
            if raw is None:
                what = "panel has no readable box" if isinstance(item, dict) else "not a panel"
                notes.append(Note("panel_dropped", what, here))
            continue
        panel = _panel(item, box, raw, frame, notes, here, caption_as_narration)
        if cast and "characters" not in panel and isinstance(item, dict):
            _cast_of_panel(item, cast, panel, notes, here)
        out.append((index, panel))
    return out


def _cast(fields: dict[str, Any]) -> dict[str, str]:
    """The page's characters by folded name, from an old-schema `summary.characters` list
    of names (empty when there is none)."""
    summary = fields.get("summary")
    names = summary.get("characters") if isinstance(summary, dict) else None
    if not isinstance(names, list):
        return {}
    cast: dict[str, str] = {}
    for value in names:
        name = clean_line(value) if isinstance(value, str) else None
        if name is not None:
            cast.setdefault(name.casefold(), name)
    return cast


def _cast_of_panel(
    item: dict[str, Any], cast: dict[str, str], panel: dict[str, Any], notes: list[Note], where: str
) -> None:
    """An old-schema panel's named characters: its `key_elements` that are the page's
    characters (`summary.characters`), in the panel's order, each once."""
    elements = item.get("key_elements")
    if not isinstance(elements, list):
        return
    seen: list[str] = []
    for value in elements:
        name = clean_line(value) if isinstance(value, str) else None
        if name is not None and name.casefold() in cast and name.casefold() not in seen:
            seen.append(name.casefold())
    if seen:
        panel["characters"] = [{"name": cast[n]} for n in seen]
        notes.append(
            Note(
                "characters_from_key_elements",
                f"{len(seen)} of key_elements named in summary.characters",
                where,
            )
        )


def _coco_filter(
    fields: dict[str, Any], items: list[Any], where: str, notes: list[Note], used: set[str]
) -> tuple[dict[str, Any], list[Any]]:
    """(COCO image record, panel annotations) of a one-image COCO file; else ({}, items)."""
    images = fields.get("images")
    if not (isinstance(images, list) and where.endswith(".annotations")):
        return {}, items
    if len(images) > 1:
        raise DataSpecError(
            f"a COCO file with {len(images)} images: one page per file (use the analyzer)"
        )
    coco_image: dict[str, Any] = {}
    if images and isinstance(images[0], dict):
        coco_image = images[0]
        used.add("images")
    used.add("categories")
    return coco_image, _coco_panels(items, fields.get("categories"), notes, where)


def _coco_panels(items: list[Any], categories: Any, notes: list[Note], where: str) -> list[Any]:
    """COCO annotations of a one-image file: keep the panel category when one is named."""
    if not isinstance(categories, list):
        return items
    panel_ids = {
        c.get("id")
        for c in categories
        if isinstance(c, dict) and "panel" in str(c.get("name", "")).lower()
    }
    if not panel_ids:
        return items
    kept = [a for a in items if isinstance(a, dict) and a.get("category_id") in panel_ids]
    if len(kept) < len(items):
        notes.append(
            Note(
                "non_panel_annotations",
                f"{len(items) - len(kept)} non-panel annotations left out",
                where,
            )
        )
    return kept


def _image_path(
    fields: dict[str, Any], coco_image: dict[str, Any], notes: list[Note], used: set[str]
) -> str | None:
    candidates = [(key, fields[key]) for key in IMAGE_KEYS if key in fields]
    if coco_image:
        candidates.append(("images[0].file_name", coco_image.get("file_name")))
    for key, value in candidates:
        if isinstance(value, dict):
            value = next(
                (value[k] for k in ("path", "file_name", "filename", "uri", "url") if k in value),
                None,
            )
        if isinstance(value, str) and value.strip():
            used.add(key)
            text = clean_str(value.strip())
            if key != "page_image_path":
                notes.append(Note("image_key", f"image path taken from {key!r}"))
            return text
        notes.append(Note("image_path_invalid", f"{key!r} holds no path"))
    canonical = fields.get("canonical_id")
    if isinstance(canonical, str) and canonical.strip():
        notes.append(
            Note(
                "image_path_from_canonical_id", "image path taken from canonical_id (no extension)"
            )
        )
        return clean_str(canonical.strip())
    return None


def _positive_int(value: Any) -> int | None:
    n = as_number(value)
    if n is None or not math.isfinite(n) or n < 1 or n > MAX_COORD:
        return None
    return math.floor(n + 0.5)


def _doc_size(
    fields: dict[str, Any], coco_image: dict[str, Any], notes: list[Note], used: set[str]
) -> tuple[int, int] | None:
    pairs: list[tuple[str, Any, Any]] = []
    for key in _SIZE_KEYS:
        value = fields.get(key)
        if isinstance(value, dict):
            lowered = {str(k).lower(): v for k, v in value.items()}
            pairs.append(
                (
                    key,
                    lowered.get("width", lowered.get("w")),
                    lowered.get("height", lowered.get("h")),
                )
            )
        elif isinstance(value, list | tuple) and len(value) == 2:
            notes.append(Note("page_size_list", f"{key!r} given as [width, height]"))
            pairs.append((key, value[0], value[1]))
    for wk, hk in _SIZE_PAIRS:
        if wk in fields and hk in fields:
            pairs.append((wk, fields[wk], fields[hk]))
    image = fields.get("image")
    if isinstance(image, dict):
        pairs.append(("image", image.get("width"), image.get("height")))
    if coco_image:
        pairs.append(("images[0]", coco_image.get("width"), coco_image.get("height")))
    for key, w, h in pairs:
        width, height = _positive_int(w), _positive_int(h)
        if width is not None and height is not None:
            used.add(key)
            return (width, height)
        notes.append(Note("page_size_invalid", f"{key!r} is not a usable page size"))
    return None


def _flag(fields: dict[str, Any], used: set[str]) -> bool:
    for key in _NORMALIZED_FLAGS:
        if fields.get(key) is True:
            used.add(key)
            return True
    return False


def _panel_boxes(
    items: list[Any],
    where: str,
    hint: Layout | None,
    forced: bool,
    notes: list[Note],
) -> list[tuple[int, Any, RawBox | None]]:
    """(original index, item, raw box) per panel item, put in `panel_number` order if given."""
    out: list[tuple[int, Any, RawBox | None]] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            panel_hint = hint
            if not forced:
                for key in FORMAT_HINT_KEYS:
                    layout, _ = parse_format_hint(item.get(key))
                    if layout is not None:
                        panel_hint = layout
                        break
            raw = read_box(item, panel_hint)
            if raw is not None and panel_hint is not None and raw.layout == "ambiguous":
                raw = RawBox(raw.values, panel_hint, raw.key)
            panel_normalized = any(item.get(k) is True for k in _NORMALIZED_FLAGS)
            if raw is not None and panel_normalized:
                raw = RawBox(raw.values, raw.layout, raw.key, hint_normalized=True)
        else:
            raw = bare_box(item)
            if raw is not None and hint is not None and raw.layout == "ambiguous":
                raw = RawBox(raw.values, hint, raw.key)
        out.append((index, item, raw))
    numbers = [_panel_number(item) for _, item, _ in out]
    if any(n is not None for n in numbers):
        keyed = sorted(
            range(len(out)),
            key=lambda i: (numbers[i] is None, numbers[i] if numbers[i] is not None else 0.0, i),
        )
        if keyed != list(range(len(out))):
            notes.append(Note("panel_number_order", "panels put in panel_number order", where))
        out = [out[i] for i in keyed]
    return out


def _panel_number(item: Any) -> float | None:
    if not isinstance(item, dict):
        return None
    for key in ORDER_KEYS:
        n = as_number(item.get(key))
        if n is not None and math.isfinite(n):
            return n
    return None


def _panel(
    item: Any,
    box: tuple[int, int, int, int] | None,
    raw: RawBox | None,
    frame: BoxFrame,
    notes: list[Note],
    where: str,
    caption_as_narration: bool,
) -> dict[str, Any]:
    panel: dict[str, Any] = {"panel_coords": list(box)} if box is not None else {}
    if not isinstance(item, dict):
        return panel
    buckets, used = extract_text(item, notes, where, caption_as_narration=caption_as_narration)
    panel["text"] = buckets.as_dict()
    if buckets.description:
        panel["description"] = "\n".join(buckets.description)
    if buckets.has_detail():
        panel["text_items"] = _text_items(buckets, frame, notes, where)
    used.update(k for k, _ in BOX_KEYS if raw is not None and k == raw.key)
    used.update(FORMAT_HINT_KEYS)
    used.update(_NORMALIZED_FLAGS)
    for key in SCORE_KEYS:
        if key not in item:
            continue
        used.add(key)
        score = as_number(item[key])
        if score is not None and math.isfinite(score) and 0.0 <= score <= 1.0:
            panel["score"] = score
            if key != "score":
                notes.append(Note("score_key", f"score taken from {key!r}", where))
        else:
            notes.append(Note("score_dropped", f"{key}={item[key]!r} is not in [0, 1]", where))
        break
    named = _named(item, CHARACTER_KEYS, frame, notes, where, used, "name")
    if named is not None:
        panel["characters"] = named
    else:
        characters = _characters(item, frame, notes, where, used)
        if characters is not None:
            panel["character_coords"] = characters
    faces = _named(item, FACE_KEYS, frame, notes, where, used, "character", boxes_alone=True)
    if faces is not None:
        panel["faces"] = faces
    if raw is not None and raw.key == "$":  # box given as top-level x/y/w/h keys on the panel
        used.update(("x", "y", "w", "h", "width", "height", "xmin", "ymin", "xmax", "ymax"))
        used.update(("x1", "y1", "x2", "y2", "left", "top", "right", "bottom"))
    extras = _extras(item, used | {"panel_coords", "score"}, notes, where)
    for name in TYPED_PANEL_FIELDS:
        if name in extras:  # a value no rule could read, under a typed field's name
            notes.append(
                Note("field_unread", f"{name!r} not readable: kept as {name}_unread", where)
            )
            extras[f"{name}_unread"] = extras.pop(name)
    panel.update(extras)
    return panel


def _text_items(
    buckets: TextBuckets, frame: BoxFrame, notes: list[Note], where: str
) -> list[dict[str, Any]]:
    """Every kept line with its kind and, where the source gave them, label, speaker, box."""
    out: list[dict[str, Any]] = []
    for i, (kind, line, detail) in enumerate(buckets.items):
        entry: dict[str, Any] = {"text": line, "kind": kind}
        if detail is not None:
            if detail.label is not None:
                entry["label"] = detail.label
            if detail.speaker is not None:
                entry["speaker"] = detail.speaker
            if detail.box is not None:
                box = frame.to_pixels(detail.box, notes, f"{where}.text_items[{i}]")
                if box is not None:
                    entry["box"] = list(box)
        out.append(entry)
    return out


def _named(
    item: dict[str, Any],
    keys: Sequence[str],
    frame: BoxFrame,
    notes: list[Note],
    where: str,
    used: set[str],
    field: str,
    *,
    boxes_alone: bool = False,
) -> list[dict[str, Any]] | None:
    """Named things with optional boxes (`characters`, `faces`) under the first key holding
    any name (or, with `boxes_alone`, any box); None when no key does."""
    for key in keys:
        value = item.get(key)
        if not isinstance(value, list) or not value:
            continue
        names = [_name_of(v) for v in value]
        raws = [read_box(v) if isinstance(v, dict) else bare_box(v) for v in value]
        if not any(n is not None for n in names) and not (
            boxes_alone and any(r is not None for r in raws)
        ):
            continue
        used.add(key)
        out: list[dict[str, Any]] = []
        for i, (name, raw) in enumerate(zip(names, raws, strict=True)):
            here = f"{where}.{key}[{i}]"
            entry: dict[str, Any] = {field: name} if name is not None else {}
            if raw is not None:
                box = frame.to_pixels(raw, notes, here)
                if box is not None:
                    entry["box"] = list(box)
            if not entry:
                notes.append(Note(f"{key.rstrip('s')}_dropped", "neither a name nor a box", here))
                continue
            out.append(entry)
        return out
    return None


def _name_of(value: Any) -> str | None:
    if isinstance(value, str):
        return clean_line(value)
    if isinstance(value, dict):
        return next(
            (n for n in (clean_line(value.get(k)) for k in _NAME_KEYS) if n is not None), None
        )
    return None


def _characters(
    item: dict[str, Any], frame: BoxFrame, notes: list[Note], where: str, used: set[str]
) -> list[list[int]] | None:
    for key in CHARACTER_KEYS:
        value = item.get(key)
        if not isinstance(value, list) or not value:
            continue
        raws = [read_box(v) if isinstance(v, dict) else bare_box(v) for v in value]
        if not any(r is not None for r in raws):
            continue  # e.g. a list of character names: left on the panel as it is
        used.add(key)
        boxes: list[list[int]] = []
        for i, raw in enumerate(raws):
            here = f"{where}.{key}[{i}]"
            if raw is None:
                notes.append(Note("character_dropped", "no readable box", here))
                continue
            box = frame.to_pixels(raw, notes, here)
            if box is not None:
                boxes.append(list(box))
        return boxes
    return None


def _doc_reading_order(
    fields: dict[str, Any], origin: list[int], n_items: int, notes: list[Note], used: set[str]
) -> list[int] | None:
    """The document's own reading_order, mapped onto the kept panels; None if absent or bad."""
    if "reading_order" not in fields:
        return None
    used.add("reading_order")
    value = fields["reading_order"]
    chain = _edge_chain(value)
    if chain is not None:
        notes.append(Note("reading_order_edges", "reading_order given as edges 'a→b': chained"))
        value = chain
    nums = [as_number(v) for v in value] if isinstance(value, list) else None
    if nums is None or any(n is None or not float(n).is_integer() for n in nums):
        notes.append(Note("reading_order_dropped", "reading_order is not a list of integers"))
        return None
    order = [int(n) for n in nums if n is not None]
    if sorted(order) == list(range(1, n_items + 1)) and n_items:
        order = [i - 1 for i in order]
        notes.append(Note("reading_order_one_based", "1-based reading_order made 0-based"))
    if sorted(order) != list(range(n_items)):
        notes.append(
            Note("reading_order_dropped", f"reading_order is not a permutation of {n_items} panels")
        )
        return None
    new_index = {orig: i for i, orig in enumerate(origin)}
    mapped = [new_index[i] for i in order if i in new_index]
    if len(mapped) < len(order):
        notes.append(Note("reading_order_remapped", "reading_order remapped after dropped panels"))
    return mapped


_EDGE = re.compile(r"^\s*(-?\d+)\s*(?:→|->|=>|—>|to)\s*(-?\d+)\s*$")


def _edge_chain(value: Any) -> list[int] | None:
    """`["0→1", "1→2"]` → `[0, 1, 2]`: one path through every panel; None if not that shape."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        return None
    edges = [_EDGE.match(v) for v in value]
    if not all(edges):
        return None
    nxt: dict[int, int] = {}
    heads: set[int] = set()
    for m in edges:
        assert m is not None
        a, b = int(m[1]), int(m[2])
        if a in nxt or b in heads:
            return []  # a fork or a join: not a reading order (dropped below, with a note)
        nxt[a] = b
        heads.add(b)
    start = [a for a in nxt if a not in heads]
    if len(start) != 1:
        return []
    chain = [start[0]]
    while chain[-1] in nxt and len(chain) <= len(nxt):
        chain.append(nxt[chain[-1]])
    return chain if len(chain) == len(nxt) + 1 else []


def _source(
    fields: dict[str, Any], json_path: Any, notes: list[Note], used: set[str]
) -> dict[str, Any]:
    source: dict[str, Any] = {}
    value = fields.get("source")
    if isinstance(value, dict):
        source.update(_extras(value, set(), notes, "$.source"))
        for key in ("coco_image_id", "vlm_json_path", "original_path"):
            v = source.get(key)
            as_id = key == "coco_image_id" and isinstance(v, int) and not isinstance(v, bool)
            if v is not None and not isinstance(v, str) and not as_id:
                notes.append(Note("source_field", f"source.{key} kept as text", "$.source"))
                source[key] = str(v)
    elif value is not None:
        source["value"] = _sanitize(value, notes, "$.source")
    used.add("source")
    canonical = fields.get("canonical_id")
    if isinstance(canonical, str) and canonical.strip():
        source.setdefault("canonical_id", clean_str(canonical.strip()))
        used.add("canonical_id")
    if json_path is not None:
        source.setdefault("original_path", os.path.abspath(json_path))
    return source


def _extras(obj: dict[str, Any], skip: set[str], notes: list[Note], where: str) -> dict[str, Any]:
    """Keys no rule consumed, kept (JSON-safe) so nothing is lost."""
    return {
        clean_str(str(k)): _sanitize(v, notes, f"{where}.{k}")
        for k, v in obj.items()
        if k not in skip
    }


_INT64 = 2**63


def _sanitize(value: Any, notes: list[Note], where: str) -> Any:
    """A JSON-safe copy: NaN/Infinity → null, out-of-range integers → text."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        notes.append(Note("non_finite_number", f"{value} replaced by null", where))
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if -_INT64 <= value < _INT64:
            return value
        notes.append(Note("big_integer", "integer beyond 64 bits kept as text", where))
        return str(value)
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, dict):
        return {clean_str(str(k)): _sanitize(v, notes, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v, notes, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
