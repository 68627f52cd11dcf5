"""Panel rules: a page's panel list → panel records (box, text, score, characters, faces),
COCO-shaped panel lists filtered by category, the page's cast from `summary.characters`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import DataSpecError, Note
from .boxes import (
    BOX_KEYS,
    FORMAT_HINT_KEYS,
    BoxFrame,
    Layout,
    RawBox,
    as_number,
    bare_box,
    parse_format_hint,
    read_box,
)
from .kept import kept_fields
from .text import TextBuckets, clean_line, extract_text
from .vocab import NORMALIZED_FLAGS

SCORE_KEYS = ("score", "confidence", "conf", "det_score", "detection_score", "probability")
CHARACTER_KEYS = ("character_coords", "characters", "character_boxes")
FACE_KEYS = ("faces", "face_boxes")
_NAME_KEYS = ("name", "character", "label", "speaker")
TYPED_PANEL_FIELDS = ("text_items", "characters", "faces", "character_coords", "description")
"""Panel fields whose raw value, when no rule read it, is kept under `<name>_unread`."""
ORDER_KEYS = ("panel_number", "panel_num", "panel_index")


def convert_panels(
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
    cast = summary_cast(fields)
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


def summary_cast(fields: dict[str, Any]) -> dict[str, str]:
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


def coco_filter(
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


def _flag(fields: dict[str, Any], used: set[str]) -> bool:
    for key in NORMALIZED_FLAGS:
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
            panel_normalized = any(item.get(k) is True for k in NORMALIZED_FLAGS)
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
    used.update(NORMALIZED_FLAGS)
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
    extras = kept_fields(item, used | {"panel_coords", "score"}, notes, where)
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
