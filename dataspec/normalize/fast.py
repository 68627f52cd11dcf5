"""The fast path of `read_panels`: the common document shapes, read without the general rules.

Nearly all real files are one of three shapes: the old VLM schema (`caption`, `description`,
`speakers[{character, dialogue, speech_type}]`, `key_elements`, `actions`, a page-level
`summary.characters`), the production one (`box_2d` on 0-1000, `text_content[{label, speaker,
text, box_2d}]`, `characters[{name, box_2d}]`, `faces[{character, box_2d}]`) or canonical
DataSpec (`panel_coords`, `text`, `text_items`, `score`, `characters`, `faces`,
`character_coords`, `text_known`). When every panel key is one of those and every value has
the plain expected type, `read_fast` builds the records directly: the same records and the
same notes as the general path (`pages`, `panels`: the reference), for the notes such
documents carry (panel order, unknown labels, unread empty lists, characters from key
elements; a box that needs a note is handed to `BoxFrame.to_pixels`). For anything else it
returns None and the general path runs.
"""

from __future__ import annotations

import functools
import math
from typing import Any, TypeVar

from pydantic import BaseModel

from ..errors import Note
from ..models import Character, Face, PanelText, TextItem
from .boxes import FORMAT_HINT_KEYS, MAX_COORD, BoxFrame, Layout, RawBox
from .panels import summary_cast
from .record import PanelRecord
from .text import DIALOGUE, NARRATION, SFX, clean_line, clean_str, route_label
from .vocab import NORMALIZED_FLAGS, SIZE_KEYS, SIZE_PAIRS

__all__ = ["read_fast"]

_FORBIDDEN = frozenset(
    (*FORMAT_HINT_KEYS, *NORMALIZED_FLAGS, *SIZE_KEYS, *(k for p in SIZE_PAIRS for k in p))
) - {"page_size"}
"""Page keys that change how panels are read (page size, box format, normalized flags)."""

_PANEL_KEYS = frozenset(
    (
        *("panel_number", "caption", "description", "key_elements", "actions", "speakers"),
        *("box_2d", "text_content", "characters", "faces", "panel_coords", "text", "text_items"),
        *("score", "character_coords", "text_known"),
    )
)
_ENTRY_KEYS = frozenset(
    ("character", "dialogue", "speech_type", "label", "speaker", "text", "box_2d", "kind", "box")
)
_NAMED_KEYS = {f: frozenset((f, "box", "box_2d")) for f in ("name", "character")}
_TEXT_SOURCES = {DIALOGUE: "text.dialogue", NARRATION: "text.narration", SFX: "text.sfx"}
_KINDS = (DIALOGUE, NARRATION, SFX)
_BIG = 2**53

_Raw = tuple[Any, Layout, str]
"""A box as found: its JSON value (None: no box), the layout `read_box` gives it, its key."""
_Detail = tuple[str | None, str | None, _Raw]
"""An entry's label, speaker and box."""
_Px = tuple[int, int, int, int]
_NO_BOX: _Raw = (None, "box_2d", "")
_M = TypeVar("_M", bound=BaseModel)


class _Bail(Exception):
    """Not a shape the fast path is sure of: the general path runs instead."""


def read_fast(
    obj: Any, page_size: tuple[int, int] | None, caption_as_narration: bool, box_format: str | None
) -> tuple[list[PanelRecord], list[Note]] | None:
    """`read_panels`' result for a document of the common shapes; None for any other."""
    if box_format is not None or type(obj) is not dict:
        return None
    items = obj.get("panels")
    if type(items) is not list or not _FORBIDDEN.isdisjoint(obj) or type(obj.get("image")) is dict:
        return None
    try:
        return _Reader(_size(obj, page_size), caption_as_narration).read(obj, items)
    except _Bail:
        return None


def _size(obj: dict[str, Any], page_size: tuple[int, int] | None) -> tuple[int, int] | None:
    if "page_size" in obj:  # the document's size wins over the caller's
        value = obj["page_size"]
        if type(value) is not dict or value.keys() != {"width", "height"}:
            raise _Bail
        w, h = value["width"], value["height"]
    elif page_size is None:
        return None
    else:
        try:
            w, h = int(page_size[0]), int(page_size[1])
        except Exception:  # the general path raises it
            raise _Bail from None
    if type(w) is not int or type(h) is not int or not (0 < w <= MAX_COORD and 0 < h <= MAX_COORD):
        raise _Bail
    return (w, h)


def _line(value: Any) -> str | None:
    """`clean_line` of a string or None; anything else is not for this path."""
    if type(value) is str:
        return (value if value.isascii() else clean_str(value)).strip() or None
    if value is None:
        return None
    raise _Bail


def _four(value: Any) -> tuple[float, float, float, float]:
    """The numbers of a 4-number list box, as `read_box` reads them."""
    if type(value) is not list or len(value) != 4:
        raise _Bail
    for v in value:
        if type(v) is not float and (type(v) is not int or not -_BIG < v < _BIG):
            raise _Bail
    a, b, c, d = value
    return (float(a), float(b), float(c), float(d))


def _raw(e: dict[str, Any], xywh: bool) -> _Raw:
    """An entry's box as `read_box` finds it: `box` (ambiguous, or xywh) or `box_2d`."""
    if "box" in e:
        if "box_2d" in e:
            raise _Bail
        return e["box"], "xywh" if xywh else "ambiguous", "box"
    return e.get("box_2d"), "box_2d", "box_2d"


def _route(kind: Any) -> tuple[str, bool, str | None]:
    """(bucket, known, label) of an entry's label, as `text._entries` reads it."""
    if kind is None:
        return DIALOGUE, True, None
    if type(kind) is not str:
        raise _Bail
    return _label(kind)


@functools.lru_cache(maxsize=4096)
def _label(kind: str) -> tuple[str, bool, str | None]:
    return (*route_label(kind), clean_line(kind))


_new = object.__new__
_set = object.__setattr__


def _model(cls: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """What `cls.model_validate(values)` gives, for values known valid (every field named)."""
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", {})
    _set(obj, "__pydantic_private__", None)
    return obj


def _record(values: dict[str, Any]) -> PanelRecord:
    """`PanelRecord(**values)`: a plain frozen dataclass, its fields are its `__dict__`."""
    obj = _new(PanelRecord)
    _set(obj, "__dict__", values)
    return obj


class _Reader:
    """One document's reading: the page size, the option, the notes so far."""

    def __init__(self, size: tuple[int, int] | None, caption_as_narration: bool) -> None:
        self.size = size
        self.hi = (float(size[0]), float(size[1])) if size is not None else (MAX_COORD, MAX_COORD)
        self.scale = (size[0] / 1000.0, size[1] / 1000.0) if size is not None else (1.0, 1.0)
        self.caption_as_narration = caption_as_narration
        self.notes: list[Note] = []
        self.frame: BoxFrame | None = None
        self.unit = True  # every panel_coords number in [0, 1]: the general path reads fractions
        self.plain = False  # some panel has panel_coords
        # the panel being read: its lines by bucket, every line, first source of each line
        self.lines: dict[str, list[str]] = {}
        self.items: list[tuple[str, str, _Detail | None]] = []
        self.origin: dict[tuple[str, str], str] = {}
        self.detailed = False
        self.elements: list[str] = []

    def read(self, obj: dict[str, Any], items: list[Any]) -> tuple[list[PanelRecord], list[Note]]:
        numbers: list[int | None] = []
        for item in items:
            if type(item) is not dict or not item.keys() <= _PANEL_KEYS:
                raise _Bail
            if "panel_coords" in item and "box_2d" in item:
                raise _Bail
            n = item.get("panel_number")
            if n is not None and (type(n) is not int or not -_BIG < n < _BIG):
                raise _Bail
            numbers.append(n)
        order: list[int] | range = range(len(items))
        if any(n is not None for n in numbers):
            keyed = sorted(order, key=lambda i: (numbers[i] is None, numbers[i] or 0, i))
            if keyed != list(order):
                self.notes.append(
                    Note("panel_number_order", "panels put in panel_number order", "$.panels")
                )
                order = keyed
        cast = summary_cast(obj)
        records = [self.panel(index, items[index], cast) for index in order]
        if self.plain and self.unit:
            raise _Bail
        return records, self.notes

    def box(
        self, raw: _Raw, where: str, part: str = "", i: int = 0, *, strict: bool = False
    ) -> _Px | None:
        """`to_pixels` of a box as `read_box` finds it: done here (the common case first)
        when it writes no note, else by `BoxFrame.to_pixels` (`strict`: not for this path)."""
        value, layout, key = raw
        if value is None:
            return None
        if type(value) is list and len(value) == 4:
            a, b, c, d = value
            if type(a) is int and type(b) is int and type(c) is int and type(d) is int:
                if layout != "box_2d":  # xywh, or ambiguous read as xywh (always, here)
                    hx, hy = self.hi
                    if a >= 0 and b >= 0 and c >= 1 and d >= 1 and a + c <= hx and b + d <= hy:
                        return (a, b, c, d)
                elif self.size is not None and 0 <= a <= c <= 1000 and 0 <= b <= d <= 1000:
                    # [ymin, xmin, ymax, xmax] on 0-1000: corners finite, in [0, page side]
                    (sx, sy), (hx, hy) = self.scale, self.hi
                    x1, y1, x2, y2 = b * sx, a * sy, d * sx, c * sy
                    x1, y1 = (x1 if x1 <= hx else hx), (y1 if y1 <= hy else hy)
                    x2, y2 = (x2 if x2 <= hx else hx), (y2 if y2 <= hy else hy)
                    ix1, iy1 = int(x1 + 0.5), int(y1 + 0.5)  # int() is floor: none is negative
                    ix2, iy2 = int(x2 + 0.5), int(y2 + 0.5)
                    if ix2 - ix1 >= 1 and iy2 - iy1 >= 1:
                        return (ix1, iy1, ix2 - ix1, iy2 - iy1)
        v = _four(value)
        out: _Px | None = None
        if layout != "box_2d":
            out = self.clip(v[0], v[1], v[0] + v[2], v[1] + v[3])
        elif self.size is not None and max(v) <= 1000.0 + 1e-6:
            sx, sy = self.scale
            out = self.clip(v[1] * sx, v[0] * sy, v[3] * sx, v[2] * sy)
        if out is not None:
            return out
        if strict:
            raise _Bail
        if self.frame is None:
            self.frame = BoxFrame(self.size)
        here = f"{where}{part}[{i}]" if part else where
        return self.frame.to_pixels(RawBox(v, layout, key), self.notes, here)

    def clip(self, x1: float, y1: float, x2: float, y2: float) -> _Px | None:
        """`to_pixels`' arithmetic on corners; None wherever it would write a note."""
        if not math.isfinite(x1 + y1 + x2 + y2):  # (an overflow only sends it to the rule)
            return None
        if max(abs(x1), abs(y1), abs(x2), abs(y2)) > MAX_COORD:
            return None
        if x2 < x1 or y2 < y1:
            return None
        hi_x, hi_y = self.hi
        cx1, cy1 = min(max(x1, 0.0), hi_x), min(max(y1, 0.0), hi_y)
        cx2, cy2 = min(max(x2, 0.0), hi_x), min(max(y2, 0.0), hi_y)
        if max(abs(cx1 - x1), abs(cy1 - y1), abs(cx2 - x2), abs(cy2 - y2)) > 0.5:
            return None
        ix1, iy1 = math.floor(cx1 + 0.5), math.floor(cy1 + 0.5)
        ix2, iy2 = math.floor(cx2 + 0.5), math.floor(cy2 + 0.5)
        if ix2 - ix1 < 1 or iy2 - iy1 < 1:  # also every box outside the page
            return None
        return (ix1, iy1, ix2 - ix1, iy2 - iy1)

    def panel(self, index: int, item: dict[str, Any], cast: dict[str, str]) -> PanelRecord:
        """One panel, in the general path's order: box, text, text items, score, characters,
        faces, unread fields, characters from key elements."""
        where = f"$.panels[{index}]"
        box: _Px | None = None
        if "panel_coords" in item:  # a note, or a page-level reading not made here: bail
            value = item["panel_coords"]
            box = self.box((value, "ambiguous", "panel_coords"), where, strict=True)
            if box is not None:
                self.plain = True
                self.unit = self.unit and all(0.0 <= n <= 1.0 for n in value)
        elif "box_2d" in item:
            box = self.box((item["box_2d"], "box_2d", "box_2d"), where)

        self.lines = {DIALOGUE: [], NARRATION: [], SFX: []}
        self.items, self.origin, self.detailed, self.elements = [], {}, False, []
        if "text_items" in item:
            self.entries(item["text_items"], f"{where}.text_items", canonical=True)
        if "text" in item:
            self.text(item["text"])
        for key in ("text_content", "speakers"):
            if key in item:
                self.entries(item[key], f"{where}.{key}", canonical=False)
        description = self.description(item)
        text_items = None
        if self.detailed:
            text_items = tuple(self.text_item(i, e, where) for i, e in enumerate(self.items))

        score: Any = item.get("score")
        if "score" in item and (type(score) not in (int, float) or not 0.0 <= score <= 1.0):
            raise _Bail
        score = None if score is None else float(score)
        if "text_known" in item and type(item["text_known"]) is not bool:
            raise _Bail

        characters = self.named(item["characters"], "name", where) if "characters" in item else None
        unread = ["characters"] if "characters" in item and characters is None else []
        coords = item.get("character_coords")
        if coords is not None and type(coords) is not list:
            raise _Bail
        coords_read = characters is None and bool(coords)  # `_characters` reads them
        for i, value in enumerate(coords or ()):
            if coords_read:
                self.box((value, "ambiguous", "$"), where, ".character_coords", i)
            elif not all(map(math.isfinite, _four(value))):  # kept as is: must need no note
                raise _Bail
        faces = self.named(item["faces"], "character", where) if "faces" in item else None
        if "faces" in item and faces is None:
            unread.append("faces")
        if "character_coords" in item and not coords_read:
            unread.append("character_coords")
        for name in unread:
            self.notes.append(
                Note("field_unread", f"{name!r} not readable: kept as {name}_unread", where)
            )
        if cast and characters is None and self.elements:  # `_cast_of_panel`
            seen = list(dict.fromkeys(f for n in self.elements if (f := n.casefold()) in cast))
            if seen:
                characters = tuple(
                    _model(Character, {"name": cast[f], "box": None}, {"name"}) for f in seen
                )
                message = f"{len(seen)} of key_elements named in summary.characters"
                self.notes.append(Note("characters_from_key_elements", message, where))
        text = _model(PanelText, self.lines, {DIALOGUE, NARRATION, SFX})
        values = {"index": index, "text": text, "box": box, "description": description}
        values.update(score=score, text_items=text_items, characters=characters, faces=faces)
        return _record(values)

    def add(self, bucket: str, line: str, source: str, detail: _Detail | None) -> None:
        """`TextBuckets.add` of one line: skipped when another source gave it first."""
        if self.origin.setdefault((bucket, line), source) == source:
            self.lines[bucket].append(line)
            self.items.append((bucket, line, detail))
            self.detailed = self.detailed or detail is not None
        elif detail is not None and detail[2][0] is not None:
            _four(detail[2][0])  # never converted, but `read_box` reads it

    def text(self, value: Any) -> None:
        """A canonical `text` dict: its buckets, in the dict's order."""
        if type(value) is not dict or not value.keys() <= _TEXT_SOURCES.keys():
            raise _Bail
        for bucket, lines in value.items():
            if type(lines) is not list:
                raise _Bail
            for s in lines:
                if type(s) is not str:
                    raise _Bail
                if (line := _line(s)) is not None:
                    self.add(bucket, line, _TEXT_SOURCES[bucket], None)

    def entries(self, value: Any, where: str, *, canonical: bool) -> None:
        """Lettered entries (`text_items`, `text_content`, `speakers`), routed by label."""
        if type(value) is not list:
            raise _Bail
        for i, e in enumerate(value):
            if type(e) is not dict or not e.keys() <= _ENTRY_KEYS:
                raise _Bail
            text = e["dialogue"] if "dialogue" in e else e.get("text")
            if text is None:
                continue
            if type(text) is not str:
                raise _Bail
            line = (text if text.isascii() else clean_str(text)).strip()
            if not line:
                continue
            kind = e["label"] if "label" in e else e.get("speech_type", e.get("kind"))
            bucket, known, label = _route(kind)
            if canonical and e.get("kind") in _KINDS:
                bucket, known = e["kind"], True
            if not known:
                message = f"label {kind!r} read as dialogue"
                self.notes.append(Note("text_label_unknown", message, f"{where}[{i}]"))
            speaker = _line(e.get("speaker"))
            if speaker is None:
                speaker = _line(e.get("character"))
            self.add(bucket, line, "entries", (label, speaker, _raw(e, canonical)))

    def description(self, item: dict[str, Any]) -> str | None:
        """The panel's description (a caption may go to narration instead)."""
        parts: list[str] = []
        for key in ("caption", "description"):
            line = _line(item.get(key))
            if line is not None and key == "caption" and self.caption_as_narration:
                self.add(NARRATION, line, "caption", None)
            elif line is not None:
                parts.append(line)
        for key, label in (("key_elements", "Key elements: "), ("actions", "Actions: ")):
            value = item.get(key)
            if value is None:
                continue
            if type(value) is not list:
                raise _Bail
            lines = [line for s in value if (line := _line(s)) is not None]
            if key == "key_elements":
                self.elements = lines
            if lines:
                parts.append(label + "; ".join(lines))
        return "\n".join(parts) if parts else None

    def text_item(self, i: int, entry: tuple[str, str, _Detail | None], where: str) -> TextItem:
        """`panels._text_items` of one kept line."""
        bucket, line, detail = entry
        label, speaker, raw = detail if detail is not None else (None, None, _NO_BOX)
        box = self.box(raw, where, ".text_items", i) if raw[0] is not None else None
        values = {"text": line, "kind": bucket, "label": label, "speaker": speaker, "box": box}
        return _model(TextItem, values, {k for k, v in values.items() if v is not None})

    def named(self, value: Any, field: str, where: str) -> tuple[Any, ...] | None:
        """`characters` (`field` "name") or `faces` ("character"), every entry named; None
        when the list is empty or null (then the general path leaves it unread)."""
        if value is None or (type(value) is list and not value):
            return None
        if type(value) is not list:
            raise _Bail
        keys = _NAMED_KEYS[field]
        part, cls = (".characters", Character) if field == "name" else (".faces", Face)
        out: list[BaseModel] = []
        for i, e in enumerate(value):
            if type(e) is not dict or not e.keys() <= keys:
                raise _Bail
            name = _line(e.get(field))
            if name is None:
                raise _Bail
            box = self.box(_raw(e, False), where, part, i)
            fields = {field, "box"} if box is not None else {field}
            out.append(_model(cls, {field: name, "box": box}, fields))
        return tuple(out)
