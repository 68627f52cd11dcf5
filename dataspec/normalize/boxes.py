"""Box rules: every bbox variant found in the wild → `[x, y, w, h]` integer pixels.

Two passes. `read_box` turns one panel's box-bearing value into a `RawBox` (numbers plus
what their layout is, or "ambiguous" for a bare 4-list). `BoxFrame.decide` then looks at
all panels of a document at once (are the numbers normalized 0–1? does only the
`[x1, y1, x2, y2]` reading fit inside the page?) and `BoxFrame.to_pixels` converts,
clips and rounds each box. The decision table lives in README.md ("Normalization rules").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import Note

Layout = Literal["xywh", "xyxy", "cxcywh", "yxyx", "ambiguous", "box_2d", "points"]

BOX_KEYS: tuple[tuple[str, Layout], ...] = (
    ("panel_coords", "ambiguous"),
    ("bbox", "ambiguous"),
    ("box", "ambiguous"),
    ("rect", "ambiguous"),
    ("bounding_box", "ambiguous"),
    ("boundingBox", "ambiguous"),
    ("bbox_xywh", "xywh"),
    ("xywh", "xywh"),
    ("bbox_xyxy", "xyxy"),
    ("xyxy", "xyxy"),
    ("box_2d", "box_2d"),
    ("polygon", "points"),
    ("points", "points"),
    ("segmentation", "points"),
)
"""Panel keys that carry a box, in the order they are tried, with their default layout."""

FORMAT_HINT_KEYS = (
    "bbox_format",
    "box_format",
    "bbox_mode",
    "box_mode",
    "coords_format",
    "coordinate_format",
    "bbox_type",
    "coordinate_system",
    "format",
)
"""Page- or panel-level keys that say how 4-number boxes are laid out."""

_HINTS: dict[str, Layout] = {
    "xywh": "xywh", "ltwh": "xywh", "coco": "xywh", "xywhabs": "xywh", "tlwh": "xywh",
    "xyxy": "xyxy", "x1y1x2y2": "xyxy", "ltrb": "xyxy", "pascalvoc": "xyxy", "voc": "xyxy",
    "corners": "xyxy", "xminyminxmaxymax": "xyxy", "tlbr": "xyxy",
    "cxcywh": "cxcywh", "ccwh": "cxcywh", "center": "cxcywh", "yolo": "cxcywh",
    "yxyx": "yxyx", "y1x1y2x2": "yxyx", "yminxminymaxxmax": "yxyx",
}  # fmt: skip

MAX_COORD = 1_000_000.0
"""Coordinates beyond this many pixels are implausible and drop their panel."""

FIT_TOLERANCE = 0.02
"""A box "fits" the page when it overshoots by at most 2% of the page side (plus 2 px)."""


def parse_format_hint(value: Any) -> tuple[Layout | None, bool]:
    """(layout, normalized) read from a format-hint value such as "xyxy" or "yolo"."""
    if not isinstance(value, str):
        return None, False
    key = re.sub(r"[^a-z0-9]", "", value.lower())
    normalized = "norm" in key or "rel" in key or key == "yolo"
    for word in ("normalized", "normalised", "relative", "norm", "rel", "abs", "pixels", "px"):
        key = key.replace(word, "")
    return _HINTS.get(key), normalized


def as_number(value: Any) -> float | None:
    """A float from a number or a numeric string; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range: infinite, dropped as such
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        text = value.strip().removesuffix("px").strip()
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _numbers(values: Iterable[Any]) -> list[float] | None:
    out = []
    for v in values:
        n = as_number(v)
        if n is None:
            return None
        out.append(n)
    return out


@dataclass(frozen=True)
class RawBox:
    """A box as found: its numbers, their layout, and the key it came from."""

    values: tuple[float, ...]
    layout: Layout
    key: str
    hint_normalized: bool = False


_DICT_FORMS: tuple[tuple[tuple[str, str, str, str], Layout], ...] = (
    (("x", "y", "w", "h"), "xywh"),
    (("x", "y", "width", "height"), "xywh"),
    (("left", "top", "width", "height"), "xywh"),
    (("xmin", "ymin", "xmax", "ymax"), "xyxy"),
    (("x_min", "y_min", "x_max", "y_max"), "xyxy"),
    (("x1", "y1", "x2", "y2"), "xyxy"),
    (("x0", "y0", "x1", "y1"), "xyxy"),
    (("left", "top", "right", "bottom"), "xyxy"),
    (("cx", "cy", "w", "h"), "cxcywh"),
    (("ymin", "xmin", "ymax", "xmax"), "yxyx"),
)


BOX_FIELD_NAMES = frozenset(
    [k.lower() for k, _ in BOX_KEYS] + [n for names, _ in _DICT_FORMS for n in names]
)
"""Every key (lower case) that `read_box` may read a box from."""


def may_hold_box(obj: dict[str, Any]) -> bool:
    """Cheap pre-check: False when no key of `obj` is one `read_box` reads."""
    return any(str(k).lower() in BOX_FIELD_NAMES for k in obj)


def read_dict_box(obj: dict[str, Any], key: str) -> RawBox | None:
    """A box from a dict form such as `{x, y, w, h}` or `{xmin, ymin, xmax, ymax}`."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for names, layout in _DICT_FORMS:
        if all(n in lowered for n in names):
            nums = _numbers(lowered[n] for n in names)
            if nums is not None:
                return RawBox(tuple(nums), layout, key)
    return None


def _split_numeric_string(text: str) -> list[float] | None:
    parts = [p for p in re.split(r"[\s,;()\[\]]+", text) if p]
    return _numbers(parts) if parts else None


def _points_from(value: Any) -> list[float] | None:
    """Flat `[x, y, x, y, ...]` from `[[x, y], ...]`, `[{x, y}, ...]` or a flat list."""
    if isinstance(value, str):
        value = _split_numeric_string(value)
        if value is None:
            return None
    if not isinstance(value, list | tuple) or not value:
        return None
    flat: list[float] = []
    for item in value:
        if isinstance(item, list | tuple):
            nums = _numbers(item)
            if nums is None or len(nums) != 2:
                return None
            flat.extend(nums)
        elif isinstance(item, dict):
            lowered = {str(k).lower(): v for k, v in item.items()}
            x, y = as_number(lowered.get("x")), as_number(lowered.get("y"))
            if x is None or y is None:
                return None
            flat.extend((x, y))
        else:
            n = as_number(item)
            if n is None:
                return None
            flat.append(n)
    if len(flat) < 4 or len(flat) % 2:
        return None
    return flat


def _segmentation(value: Any) -> list[float] | None:
    """Bounding points of a COCO segmentation: polygons, or RLE (compressed or not)."""
    if isinstance(value, dict):
        return _rle_points(value)
    if isinstance(value, list) and value and all(isinstance(p, list) for p in value):
        flat: list[float] = []
        for poly in value:
            pts = _points_from(poly)
            if pts is not None:
                flat.extend(pts)
        return flat or None
    return _points_from(value)


def read_box(panel: dict[str, Any], hint: Layout | None = None) -> RawBox | None:
    """The first box found on a panel dict, or None when it carries none."""
    for key, layout in BOX_KEYS:
        if key not in panel:
            continue
        value = panel[key]
        raw = _read_value(value, key, layout, hint)
        if raw is not None:
            return raw
    raw = read_dict_box(panel, "$")
    if raw is not None:
        return raw
    return None


def _read_value(value: Any, key: str, layout: Layout, hint: Layout | None) -> RawBox | None:
    if layout == "points":
        flat = _segmentation(value) if key == "segmentation" else _points_from(value)
        return RawBox(tuple(flat), "points", key) if flat else None
    if isinstance(value, dict):
        raw = read_dict_box(value, key)
        if raw is None:
            inner = read_box(value, hint)
            return RawBox(inner.values, inner.layout, key) if inner else None
        return raw
    if isinstance(value, str):
        nums = _split_numeric_string(value)
    elif isinstance(value, list | tuple):
        if len(value) == 2 and all(isinstance(v, list | tuple) for v in value):
            flat = _points_from(value)  # [[x1, y1], [x2, y2]]
            return RawBox(tuple(flat), "points", key) if flat else None
        if len(value) == 1 and isinstance(value[0], list | tuple):
            return _read_value(value[0], key, layout, hint)  # [[x, y, w, h]]
        nums = _numbers(value)
    else:
        return None
    if nums is None or len(nums) != 4:
        return None
    if layout == "ambiguous" and hint is not None:
        layout = hint
    return RawBox(tuple(nums), layout, key)


def bare_box(value: Any) -> RawBox | None:
    """A panel given as a bare 4-number list, e.g. an item of `panel_boxes`."""
    return _read_value(value, "$", "ambiguous", None)


@dataclass
class BoxFrame:
    """The page-level facts that turn raw boxes into pixels."""

    page_size: tuple[int, int] | None
    normalized: bool = False
    ambiguous_as: Layout = "xywh"

    def decide(self, raws: Sequence[RawBox], notes: list[Note], hint_normalized: bool) -> None:
        """Choose, for the whole document, the normalized and ambiguous-layout readings."""
        plain = [r for r in raws if r.layout != "box_2d"]
        values = [v for r in plain for v in r.values]
        if plain and (hint_normalized or any(r.hint_normalized for r in plain)):
            self.normalized = True
        elif values and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            self.normalized = True
            notes.append(
                Note("normalized_coords", "all coordinates lie in [0, 1]: read as page fractions")
            )
        ambiguous = [r.values for r in raws if r.layout == "ambiguous"]
        if not ambiguous or self.page_size is None:
            return
        scale = self._scale()
        width, height = self.page_size
        boxes = [tuple(v * s for v, s in zip(vals, scale, strict=True)) for vals in ambiguous]
        if not all(_fits_xywh(b, width, height) for b in boxes) and all(
            _fits_xyxy(b, width, height) for b in boxes
        ):
            self.ambiguous_as = "xyxy"
            notes.append(
                Note(
                    "bbox_read_as_xyxy",
                    "4-number boxes only fit inside the page as [x1, y1, x2, y2]",
                )
            )

    def _scale(self) -> tuple[float, float, float, float]:
        if self.normalized and self.page_size is not None:
            w, h = self.page_size
            return (w, h, w, h)
        return (1.0, 1.0, 1.0, 1.0)

    def to_pixels(
        self, raw: RawBox, notes: list[Note], where: str
    ) -> tuple[int, int, int, int] | None:
        """`[x, y, w, h]` integer pixels clipped to the page, or None (with a note) to drop."""
        corners = self._corners(raw, notes, where)
        if corners is None:
            return None
        x1, y1, x2, y2 = corners
        if not all(math.isfinite(v) for v in corners):
            notes.append(Note("nan_box", f"{raw.key}: non-finite coordinate", where))
            return None
        if max(abs(v) for v in corners) > MAX_COORD:
            notes.append(Note("implausible_box", f"{raw.key}: coordinate beyond 1e6 px", where))
            return None
        if x2 < x1 or y2 < y1:
            if raw.layout in ("xywh", "cxcywh") or (
                raw.layout == "ambiguous" and self.ambiguous_as == "xywh"
            ):
                notes.append(Note("negative_extent", f"{raw.key}: negative width/height", where))
                return None
            x1, x2 = min(x1, x2), max(x1, x2)
            y1, y2 = min(y1, y2), max(y1, y2)
            notes.append(Note("corners_swapped", f"{raw.key}: corners given in reverse", where))
        hi_x, hi_y = (
            (float(self.page_size[0]), float(self.page_size[1]))
            if self.page_size
            else (
                MAX_COORD,
                MAX_COORD,
            )
        )
        cx1, cy1 = min(max(x1, 0.0), hi_x), min(max(y1, 0.0), hi_y)
        cx2, cy2 = min(max(x2, 0.0), hi_x), min(max(y2, 0.0), hi_y)
        if (cx2 <= cx1 or cy2 <= cy1) and (x2 > x1 and y2 > y1):
            notes.append(Note("outside_page", f"{raw.key}: box lies outside the page", where))
            return None
        if max(abs(cx1 - x1), abs(cy1 - y1), abs(cx2 - x2), abs(cy2 - y2)) > 0.5:
            notes.append(Note("clipped", f"{raw.key}: box clipped to the page", where))
        ix1, iy1, ix2, iy2 = (math.floor(v + 0.5) for v in (cx1, cy1, cx2, cy2))
        if ix2 - ix1 < 1 or iy2 - iy1 < 1:
            notes.append(Note("zero_area", f"{raw.key}: box has no area", where))
            return None
        return (ix1, iy1, ix2 - ix1, iy2 - iy1)

    def _corners(
        self, raw: RawBox, notes: list[Note], where: str
    ) -> tuple[float, float, float, float] | None:
        v = raw.values
        layout = self.ambiguous_as if raw.layout == "ambiguous" else raw.layout
        if raw.layout == "box_2d":
            if self.page_size is None:
                notes.append(Note("needs_page_size", "box_2d is on a 0-1000 scale", where))
                return None
            if max(v) > 1000.0 + 1e-6:
                notes.append(Note("box_2d_pixels", "box_2d beyond 1000: read as pixels", where))
                sx = sy = 1.0
            else:
                sx, sy = self.page_size[0] / 1000.0, self.page_size[1] / 1000.0
            ymin, xmin, ymax, xmax = v
            return (xmin * sx, ymin * sy, xmax * sx, ymax * sy)
        if self.normalized:
            if self.page_size is None:
                notes.append(
                    Note("needs_page_size", "normalized coordinates need the page size", where)
                )
                return None
            w, h = float(self.page_size[0]), float(self.page_size[1])
        else:
            w = h = 1.0
        if layout == "points":
            xs, ys = v[0::2], v[1::2]
            return (min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h)
        a, b, c, d = v
        if layout == "xyxy":
            return (a * w, b * h, c * w, d * h)
        if layout == "yxyx":
            return (b * w, a * h, d * w, c * h)
        if layout == "cxcywh":
            return ((a - c / 2) * w, (b - d / 2) * h, (a + c / 2) * w, (b + d / 2) * h)
        return (a * w, b * h, (a + c) * w, (b + d) * h)


def _fits_xywh(box: Sequence[float], width: int, height: int) -> bool:
    x, y, w, h = box
    tx, ty = width * FIT_TOLERANCE + 2, height * FIT_TOLERANCE + 2
    return w > 0 and h > 0 and x + w <= width + tx and y + h <= height + ty


def _fits_xyxy(box: Sequence[float], width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    tx, ty = width * FIT_TOLERANCE + 2, height * FIT_TOLERANCE + 2
    return x2 > x1 and y2 > y1 and x2 <= width + tx and y2 <= height + ty


# --- COCO RLE ------------------------------------------------------------------------------


def _rle_counts(counts: Any) -> list[int] | None:
    """Run lengths of a COCO RLE: a list of ints, or the compressed string form."""
    if isinstance(counts, list):
        nums = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
        return nums if len(nums) == len(counts) else None
    if not isinstance(counts, str):
        return None
    # The compressed form packs each count in 5-bit groups (6th bit: more follows), and
    # stores counts after the second as the difference from the count two places before.
    out: list[int] = []
    data = counts.encode("ascii", "replace")
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                return None
            c = data[p] - 48
            if c < 0 or c > 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out if all(c >= 0 for c in out) else None


def _rle_points(rle: dict[str, Any]) -> list[float] | None:
    """Bounding corners `[x1, y1, x2, y2]` of an RLE mask's foreground (column-major runs)."""
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        return None
    h = as_number(size[0])
    if h is None or h < 1 or not h.is_integer():
        return None
    height = int(h)
    counts = _rle_counts(rle.get("counts"))
    if counts is None:
        return None
    pos = 0
    x_min = y_min = math.inf
    x_max = y_max = -math.inf
    for i, run in enumerate(counts):
        if i % 2 == 1 and run > 0:
            start, end = pos, pos + run - 1
            c0, r0 = divmod(start, height)
            c1, r1 = divmod(end, height)
            x_min, x_max = min(x_min, c0), max(x_max, c1)
            if c0 == c1:
                y_min, y_max = min(y_min, r0), max(y_max, r1)
            else:  # the run wraps into the next column: rows 0 and height-1 are both covered
                y_min, y_max = 0, height - 1
        pos += run
    if x_min == math.inf:
        return None
    return [float(x_min), float(y_min), float(x_max + 1), float(y_max + 1)]
