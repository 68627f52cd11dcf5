"""Page rules: any page-shaped JSON from the wild → a canonical `Page` plus notes.

The entry points (`normalize`, `read_panels`). Finds the page (`locate`), its image path,
its size, its provenance and reading order, and hands its panel list to the panel rules
(`panels`, which use the box rules in `boxes` and the text rules in `text`). Nothing is
dropped without a `Note`; fields no rule read are kept (`kept`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DataSpecError, Note
from ..imagesize import image_size
from ..models import Character, Face, Page, PanelText, Source, TextItem
from ..paths import ImageResolver, infer_image_relpath
from ..version import SPEC_VERSION
from .boxes import (
    MAX_COORD,
    as_number,
)
from .fast import read_fast
from .kept import kept_fields, sanitize
from .locate import IMAGE_KEYS, locate
from .panels import coco_filter, convert_panels
from .record import PanelRecord
from .text import clean_str
from .vocab import SIZE_KEYS, SIZE_PAIRS


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
        fields, items, panels_where = locate(obj, notes, "$", 0)
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
    fields, items, panels_where = locate(obj, notes, "$", 0)
    if items is None:
        raise DataSpecError("no panel list found (e.g. an error reply)")
    coco_image, items = coco_filter(fields, items, panels_where, notes, set())
    size = _doc_size(fields, coco_image, notes, set()) or (
        (int(page_size[0]), int(page_size[1])) if page_size is not None else None
    )
    converted = convert_panels(
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
        coco_image, items = coco_filter(fields, items, panels_where, notes, used)

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

    converted = convert_panels(
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
    skip = {*used, *IMAGE_KEYS, *SIZE_KEYS, "schema_version", "panels", "reading_order"}
    skip.update(k for pair in SIZE_PAIRS for k in pair)
    if "." in panels_where:
        skip.add(panels_where.rsplit(".", 1)[1])
    page.update(kept_fields(fields, skip, notes, "$"))
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
    for key in SIZE_KEYS:
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
    for wk, hk in SIZE_PAIRS:
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
        source.update(kept_fields(value, set(), notes, "$.source"))
        for key in ("coco_image_id", "vlm_json_path", "original_path"):
            v = source.get(key)
            as_id = key == "coco_image_id" and isinstance(v, int) and not isinstance(v, bool)
            if v is not None and not isinstance(v, str) and not as_id:
                notes.append(Note("source_field", f"source.{key} kept as text", "$.source"))
                source[key] = str(v)
    elif value is not None:
        source["value"] = sanitize(value, notes, "$.source")
    used.add("source")
    canonical = fields.get("canonical_id")
    if isinstance(canonical, str) and canonical.strip():
        source.setdefault("canonical_id", clean_str(canonical.strip()))
        used.add("canonical_id")
    if json_path is not None:
        source.setdefault("original_path", os.path.abspath(json_path))
    return source
