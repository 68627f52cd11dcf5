"""Detector predictions in COCO form → one compact record per image.

Accepts a full COCO dict (`images`, `annotations`, `categories`) or a bare results list;
image ids may be integers or path strings. Panel detections and lettered-text detections
(text, balloon, caption: see `text_category_ids`) are kept, each kind as numpy arrays
grouped by image (about 40 bytes a detection; 44 for text, which keeps its category);
other categories (character, face) are dropped, though still counted in `annotations`.

The file is memory-mapped and decoded with msgspec into typed structs, the
`annotations` array in slices of `CHUNK_BYTES`, so the decoded objects of only one slice
exist at a time and decoded parts of the map are handed back to the OS. The array is
found by search (`coco_layout.locate`), not by decoding the whole dict, so the map is
never in memory at once; a file the search cannot read plainly is decoded whole. The
heap the decode freed is given back at the end (`malloc_trim`). A slice whose
items do not fit the types (a string score, a 3-number bbox, NaN) is decoded again with
Python's json and each bad annotation is reported as a `Problem`, not fatal. A file
msgspec refuses as a whole (NaN literals outside the annotations) is read with Python's
json in one piece: slower and bigger, same result. So is a file that is not UTF-8
(read as cp1252, as dataspec reads VLM JSONs); a UTF-8 byte order mark is skipped.

Whatever the file holds, `load_coco` returns pages (each bad record reported as a
`Problem`) or raises `CocoError`; a file nested more deeply than JSON readers go (about
1000 levels) is a `CocoError`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import json
import math
import mmap
import os
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from dataspec.normalize.boxes import MAX_COORD
from dataspec.paths import IMAGE_EXTS, is_windows_path

from .coco_layout import Layout, locate
from .problems import Problem

__all__ = [
    "CHUNK_BYTES",
    "CocoError",
    "CocoPages",
    "character_category_ids",
    "image_path",
    "load_coco",
    "panel_category_ids",
    "text_category_ids",
]

CHUNK_BYTES = 16 * 1024 * 1024
"""Bytes of the `annotations` array decoded at a time."""

DEFAULT_PANEL_ID = 1
DEFAULT_PANEL_NAME = "panel"
DEFAULT_TEXT_IDS = frozenset({3, 4})
"""Text categories of a file that names none: 3 balloon, 4 text (the Faster R-CNN's)."""
TEXT_NAMES = frozenset(
    {
        "text",
        "balloon",
        "speech balloon",
        "speech bubble",
        "bubble",
        "text bubble",
        "word balloon",
        "caption",
    }
)
"""Category names (as `_text_name` writes them) counted as lettered text by default.

"caption" is in: a caption box holds lettered text, and the VLM transcribes it (as
narration), so a panel's text count must include it to compare with the VLM's.
"""
DEFAULT_CHARACTER_IDS = frozenset({2})
"""Character category of a file that names none: 2 (the Faster R-CNN's)."""
CHARACTER_NAMES = frozenset({"character", "characters", "person", "figure"})
"""Category names (as `_text_name` writes them) of the drawn characters."""
_INT32, _INT64 = np.iinfo(np.int32), np.iinfo(np.int64)


class CocoError(Exception):
    """The predictions file cannot be used at all (unreadable, not JSON, wrong shape)."""


class _Image(msgspec.Struct, gc=False):
    id: int | str
    file_name: str | None = None
    width: float | None = None
    height: float | None = None


class _Ann(msgspec.Struct, gc=False):
    image_id: int | str
    category_id: int
    bbox: tuple[float, float, float, float]
    score: float = 1.0


class _Top(msgspec.Struct):
    images: msgspec.Raw = msgspec.Raw()
    annotations: msgspec.Raw = msgspec.Raw()
    categories: msgspec.Raw = msgspec.Raw()


_ANN_DECODER = msgspec.json.Decoder(list[_Ann])
_ANN_ITEM_DECODER = msgspec.json.Decoder(_Ann)
_IMAGES_DECODER = msgspec.json.Decoder(list[_Image])
_TOP_DECODER = msgspec.json.Decoder(_Top)
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_BOM = b"\xef\xbb\xbf"


@dataclass
class CocoPages:
    """Every image of the predictions file with its panel and text detections, grouped
    compactly (each kind sorted by page, in file order within a page)."""

    ids: list[int | str]
    """COCO image id per page."""
    paths: list[str]
    """Image path per page as the file gives it ('' when it gives none)."""
    sizes: np.ndarray
    """(n, 2) int64 width, height per page; 0 where unknown."""
    offsets: np.ndarray
    """(n + 1,) int64: page i's detections are rows offsets[i]:offsets[i + 1]."""
    boxes: np.ndarray
    """(k, 4) float64 `[x, y, w, h]` of the panel detections, grouped by page."""
    scores: np.ndarray
    """(k,) float64 detection scores, same rows as `boxes`."""
    panel_ids: frozenset[int]
    text_offsets: np.ndarray
    """(n + 1,) int64: page i's text detections are rows text_offsets[i]:text_offsets[i + 1]."""
    text_boxes: np.ndarray
    """(m, 4) float64 `[x, y, w, h]` of the text detections (text, balloon, caption...),
    grouped by page."""
    text_scores: np.ndarray
    """(m,) float64 detection scores, same rows as `text_boxes`."""
    text_categories: np.ndarray
    """(m,) int32 category id of each text row (int64 when a text id does not fit int32):
    tells a balloon from the text inside it."""
    text_ids: frozenset[int]
    """Category ids collected as text (never a panel id)."""
    char_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    """(n + 1,) int64: page i's character detections are rows char_offsets[i]:[i + 1]."""
    char_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    """(c, 4) float64 `[x, y, w, h]` of the character detections, grouped by page."""
    char_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(c,) float64 detection scores, same rows as `char_boxes`."""
    char_ids: frozenset[int] = frozenset()
    """Category ids collected as characters (never a panel or text id)."""
    annotations: int = 0
    """Annotations read (all categories)."""
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def text_span(self, page: int) -> tuple[int, int]:
        """(first, end) rows of page `page` in the `text_*` arrays."""
        return int(self.text_offsets[page]), int(self.text_offsets[page + 1])

    def char_span(self, page: int) -> tuple[int, int]:
        """(first, end) rows of page `page` in the `char_*` arrays."""
        return int(self.char_offsets[page]), int(self.char_offsets[page + 1])

    def text_of(self, page: int) -> tuple[np.ndarray, np.ndarray]:
        """Page `page`'s text boxes (k, 4) and scores (k,): views into the arrays, no copy."""
        first, end = self.text_span(page)
        return self.text_boxes[first:end], self.text_scores[first:end]


def _split(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p]


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or os.path.splitext(value)[1].lower() in IMAGE_EXTS


def image_path(image_id: int | str, file_name: str | None) -> str:
    """The image path a COCO image record names, as complete as the record allows.

    Real detector output names an image by id `E:\\Root\\<Series>\\JPG4CBZ_0001.jpg` and
    file_name `JPG4CBZ\\0001.jpg`; the file is `<Series>/JPG4CBZ/0001.jpg`, so a relative
    file_name with another base name is joined to the id's folder (overlapping folders
    counted once). An absolute file_name wins; with no usable id, the file_name is used.
    """
    name = (file_name or "").strip()
    ident = image_id.strip() if isinstance(image_id, str) else ""
    if name and (os.path.isabs(name) or is_windows_path(name)):
        return name
    if not ident or not _looks_like_path(ident):
        return name or ident
    if not name:
        return ident
    id_parts, name_parts = _split(ident), _split(name)
    if not name_parts or id_parts[-1:] == name_parts[-1:]:
        return ident if len(id_parts) >= len(name_parts) else name
    folder = id_parts[:-1]
    overlap = 0
    for k in range(min(len(folder), len(name_parts) - 1), 0, -1):
        if folder[-k:] == name_parts[:k]:
            overlap = k
            break
    sep = "\\" if "\\" in ident else "/"
    head = ident[: len(ident) - len(id_parts[-1])].rstrip("\\/")
    for _ in range(overlap):
        head = head[: len(head) - len(_split(head)[-1])].rstrip("\\/")
    tail = sep.join(name_parts)
    return f"{head}{sep}{tail}" if head else tail


def panel_category_ids(
    categories: Sequence[dict[str, Any]] | None,
    ids: Sequence[int] = (),
    names: Sequence[str] = (),
) -> frozenset[int]:
    """Category ids counted as panels.

    Given ids and/or names: those ids plus the ids of categories with those names (case
    insensitive). Given neither: the categories named "panel", or id 1 when the file names
    none. A name no category has is an error.
    """
    cats = [c for c in categories or () if isinstance(c, dict)]
    by_name: dict[str, set[int]] = {}
    for cat in cats:
        cid, name = cat.get("id"), cat.get("name")
        if isinstance(cid, int) and not isinstance(cid, bool) and isinstance(name, str):
            by_name.setdefault(name.strip().casefold(), set()).add(cid)
    if ids or names:
        out = set(ids)
        for name in names:
            found = by_name.get(name.strip().casefold())
            if not found:
                known = ", ".join(sorted(by_name)) or "none"
                raise CocoError(f"no category named {name!r} (categories: {known})")
            out |= found
        return frozenset(out)
    return frozenset(by_name.get(DEFAULT_PANEL_NAME, {DEFAULT_PANEL_ID}))


def _text_name(name: str) -> str:
    """A category name compared for text: case, `_`, `-` and runs of spaces ignored."""
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def text_category_ids(
    categories: Sequence[dict[str, Any]] | None,
    ids: Sequence[int] = (),
    names: Sequence[str] = (),
    panel_ids: frozenset[int] = frozenset(),
) -> frozenset[int]:
    """Category ids counted as lettered text (text, balloons, captions).

    Given ids and/or names: those ids plus the ids of categories with those names (case,
    `_`, `-` and spaces ignored); a name no category has is an error, and so is a chosen
    id that is also in `panel_ids`. Given neither: the categories named one of
    `TEXT_NAMES` when the file names any category, else `DEFAULT_TEXT_IDS` (3, 4); a
    default that is a panel id is left to the panels. Text ids are kept per detection as
    numbers, so one beyond int64 is an error when chosen, and ignored from the file.
    """
    cats = [c for c in categories or () if isinstance(c, dict)]
    by_name: dict[str, set[int]] = {}
    name_of: dict[int, str] = {}
    for cat in cats:
        cid, name = cat.get("id"), cat.get("name")
        if isinstance(cid, int) and not isinstance(cid, bool) and isinstance(name, str):
            by_name.setdefault(_text_name(name), set()).add(cid)
            name_of.setdefault(cid, name)
    if ids or names:
        out = set(ids)
        for name in names:
            found = by_name.get(_text_name(name))
            if not found:
                known = ", ".join(sorted(by_name)) or "none"
                raise CocoError(f"no category named {name!r} (categories: {known})")
            out |= found
        both = sorted(out & panel_ids)
        if both:
            named = ", ".join(
                f"{cid} ({name_of[cid]!r})" if cid in name_of else str(cid) for cid in both
            )
            what = "category" if len(both) == 1 else "categories"
            raise CocoError(f"{what} {named} cannot be both panel and text")
        huge = sorted(cid for cid in out if not _INT64.min <= cid <= _INT64.max)
        if huge:
            raise CocoError(f"text category id {huge[0]} is beyond int64")
        return frozenset(out)
    if by_name:
        found = set().union(*(group for name, group in by_name.items() if name in TEXT_NAMES))
    else:
        found = set(DEFAULT_TEXT_IDS)
    return frozenset(cid for cid in found - panel_ids if _INT64.min <= cid <= _INT64.max)


def character_category_ids(
    categories: Sequence[dict[str, Any]] | None, taken: frozenset[int] = frozenset()
) -> frozenset[int]:
    """Category ids of the drawn characters: those named one of `CHARACTER_NAMES` when the
    file names any category, else `DEFAULT_CHARACTER_IDS` (2); never an id in `taken`
    (the panel and text ones)."""
    named = [c for c in categories or () if isinstance(c, dict) and isinstance(c.get("name"), str)]
    found = {
        c["id"]
        for c in named
        if isinstance(c.get("id"), int)
        and not isinstance(c["id"], bool)
        and _text_name(c["name"]) in CHARACTER_NAMES
    }
    if not named:
        found = set(DEFAULT_CHARACTER_IDS)
    return frozenset(cid for cid in found - taken if _INT64.min <= cid <= _INT64.max)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _check_ann(item: Any) -> tuple[int | str, int, tuple[float, ...], float] | str:
    """(image_id, category_id, bbox, score) of one annotation dict, or what is wrong."""
    if not isinstance(item, dict):
        return f"not an object ({type(item).__name__})"
    image_id = item.get("image_id")
    if isinstance(image_id, bool) or not isinstance(image_id, int | str):
        return f"image_id {image_id!r} is not an integer or a string"
    cat = item.get("category_id")
    if isinstance(cat, bool) or not isinstance(cat, int):
        return f"category_id {cat!r} is not an integer"
    bbox = item.get("bbox")
    nums = [_number(v) for v in bbox] if isinstance(bbox, list) else None
    if nums is None or len(nums) != 4 or any(n is None for n in nums):
        return f"bbox {bbox!r} is not 4 finite numbers"
    score: float | None = 1.0
    if "score" in item:
        score = _number(item["score"])
        if score is None:
            return f"score {item['score']!r} is not a finite number"
    assert score is not None
    return image_id, cat, tuple(n for n in nums if n is not None), score


class _Rows:
    """Detections of one kind (panels or text) gathered slice by slice into flat arrays."""

    def __init__(self, cat_dtype: type[np.signedinteger[Any]] | None = None) -> None:
        self.cat_dtype = cat_dtype
        """dtype of the kept category ids; None: not kept (panels)."""
        # the slice being read, as Python lists
        self.pages: list[int] = []
        self.flat: list[float] = []
        self.scores: list[float] = []
        self.cats: list[int] = []
        # the slices read, as arrays
        self.page_arrays: list[np.ndarray] = []
        self.box_arrays: list[np.ndarray] = []
        self.score_arrays: list[np.ndarray] = []
        self.cat_arrays: list[np.ndarray] = []

    def push(self) -> None:
        """The slice's lists into arrays (Python floats are 24 bytes each, numpy's 8)."""
        if self.pages:
            self.page_arrays.append(np.asarray(self.pages, dtype=np.int64))
            self.box_arrays.append(np.asarray(self.flat, dtype=np.float64).reshape(-1, 4))
            self.score_arrays.append(np.asarray(self.scores, dtype=np.float64))
            if self.cat_dtype is not None:
                self.cat_arrays.append(np.asarray(self.cats, dtype=self.cat_dtype))
        self.pages, self.flat, self.scores, self.cats = [], [], [], []

    def grouped(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(offsets (n + 1,), boxes, scores, categories or None) sorted by page, stable."""
        if self.page_arrays:
            pages = np.concatenate(self.page_arrays)
            order = np.argsort(pages, kind="stable")
            pages = pages[order]
            # each kind's slices are let go once joined: two copies at most, not three
            boxes = np.concatenate(self.box_arrays)
            self.box_arrays = []
            boxes = boxes[order]
            scores = np.concatenate(self.score_arrays)[order]
            cats = np.concatenate(self.cat_arrays)[order] if self.cat_arrays else None
        else:
            pages = np.zeros(0, dtype=np.int64)
            boxes = np.zeros((0, 4), dtype=np.float64)
            scores = np.zeros(0, dtype=np.float64)
            cats = None
        if cats is None and self.cat_dtype is not None:
            cats = np.zeros(0, dtype=self.cat_dtype)
        self.page_arrays, self.box_arrays, self.score_arrays, self.cat_arrays = [], [], [], []
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(pages, minlength=n), out=offsets[1:])
        return offsets, boxes, scores, cats


class _Collector:
    """Panel and text detections gathered slice by slice into flat arrays."""

    def __init__(
        self,
        file: str,
        panel_ids: frozenset[int],
        index: dict[int | str, int],
        text_ids: frozenset[int] = frozenset(),
        char_ids: frozenset[int] = frozenset(),
    ):
        self.file = file
        self.panel_ids = panel_ids
        self.text_ids = text_ids
        self.char_ids = char_ids
        self.index = index
        self.listed = bool(index)
        """The file lists images: an annotation naming another image is reported."""
        self.new_ids: list[int | str] = []
        fits = all(_INT32.min <= cid <= _INT32.max for cid in text_ids)
        self.panels = _Rows()
        self.text = _Rows(np.int32 if fits else np.int64)
        self.chars = _Rows()
        self.count = 0
        self.problems: list[Problem] = []

    def _page(self, image_id: int | str, at: int) -> int:
        page = self.index.get(image_id)
        if page is None:
            page = self.index[image_id] = len(self.index)
            self.new_ids.append(image_id)
            if self.listed:
                self._bad(at, f"image_id {image_id!r} is not in `images`; a page of its own")
        return page

    def add_structs(self, anns: list[_Ann]) -> None:
        """Gather one decoded slice: by columns when it can (`_add_columns`), else one
        annotation at a time (same rows, and each bad one reported in order)."""
        if not self._add_columns(anns):
            self._add_each(anns)

    def _kind(self, cat: int) -> int:
        """0 panel, 1 text, 2 character, 3 dropped."""
        if cat in self.panel_ids:
            return 0
        if cat in self.text_ids:
            return 1
        return 2 if cat in self.char_ids else 3

    def _add_columns(self, anns: list[_Ann]) -> bool:
        """Gather the slice with one numpy pass per column; False (nothing gathered) when
        it names an image not seen before or holds a value that is not finite, which
        `_add_each` reports one by one."""
        known = self.index.get
        pages = [known(a.image_id) for a in anns]
        if None in pages:
            return False
        cats = [a.category_id for a in anns]
        kind_of = {c: self._kind(c) for c in set(cats)}
        kinds = np.fromiter(map(kind_of.__getitem__, cats), np.int8, len(cats))
        keep = np.flatnonzero(kinds < 3).tolist()
        kept = [anns[i] for i in keep]
        n = len(kept)
        flat = itertools.chain.from_iterable([a.bbox for a in kept])
        boxes = np.fromiter(flat, np.float64, 4 * n).reshape(n, 4)
        scores = np.fromiter([a.score for a in kept], np.float64, n)
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            return False
        page_rows = np.fromiter([pages[i] for i in keep], np.int64, n)
        kept_kinds = kinds[keep]
        for code, rows in ((0, self.panels), (1, self.text), (2, self.chars)):
            chosen = np.flatnonzero(kept_kinds == code)
            if not len(chosen):
                continue
            rows.page_arrays.append(page_rows[chosen])
            rows.box_arrays.append(boxes[chosen])
            rows.score_arrays.append(scores[chosen])
            if rows.cat_dtype is not None:
                picked = [cats[keep[j]] for j in chosen.tolist()]
                rows.cat_arrays.append(np.asarray(picked, dtype=rows.cat_dtype))
        self.count += len(anns)
        return True

    def _add_each(self, anns: list[_Ann]) -> None:
        # the hot loop: bound methods in locals, one branch per kind, the finiteness check
        # unrolled (msgspec gives no NaN or infinity from JSON; the check is a guard)
        panel_ids, text_ids, char_ids = self.panel_ids, self.text_ids, self.char_ids
        known, page_of, isfinite = self.index.get, self._page, math.isfinite
        panels, text, chars = self.panels, self.text, self.chars
        panel_page, panel_box = panels.pages.append, panels.flat.extend
        panel_score = panels.scores.append
        text_page, text_box = text.pages.append, text.flat.extend
        text_score, text_cat = text.scores.append, text.cats.append
        for i, ann in enumerate(anns):
            page = known(ann.image_id)
            if page is None:  # a page even with no detection kept
                page = page_of(ann.image_id, self.count + i)
            cat = ann.category_id
            is_panel = cat in panel_ids
            is_text = not is_panel and cat in text_ids
            if not (is_panel or is_text or cat in char_ids):
                continue
            box, score = ann.bbox, ann.score
            x, y, w, h = box
            if not (
                isfinite(score) and isfinite(x) and isfinite(y) and isfinite(w) and isfinite(h)
            ):
                self._bad(self.count + i, "bbox or score is not finite")
                continue
            if is_panel:
                panel_page(page)
                panel_box(box)
                panel_score(score)
            elif is_text:
                text_page(page)
                text_box(box)
                text_score(score)
                text_cat(cat)
            else:
                chars.pages.append(page)
                chars.flat.extend(box)
                chars.scores.append(score)
        panels.push()
        text.push()
        chars.push()
        self.count += len(anns)

    def add_dicts(self, items: list[Any]) -> None:
        panel_ids, text_ids, panels, text = self.panel_ids, self.text_ids, self.panels, self.text
        for i, item in enumerate(items):
            checked = _check_ann(item)
            if isinstance(checked, str):
                self._bad(self.count + i, checked)
                continue
            image_id, cat, box, score = checked
            page = self._page(image_id, self.count + i)
            if cat in panel_ids:
                rows = panels
            elif cat in text_ids:
                rows = text
                rows.cats.append(cat)
            elif cat in self.char_ids:
                rows = self.chars
            else:
                continue
            rows.pages.append(page)
            rows.flat.extend(box)
            rows.scores.append(score)
        panels.push()
        text.push()
        self.chars.push()
        self.count += len(items)

    def _bad(self, index: int, why: str) -> None:
        self.problems.append(Problem(self.file, f"annotations[{index}]", why))


def _array_span(view: memoryview) -> tuple[int, int]:
    """(first byte after `[`, position of the closing `]`) of a JSON array's bytes."""
    head = bytes(view[:4096])
    start = head.find(b"[")
    tail_from = max(0, len(view) - 4096)
    end = tail_from + bytes(view[tail_from:]).rfind(b"]")
    if start < 0 or end <= start:
        raise CocoError("`annotations` is not a JSON array")
    return start + 1, end


def _slices(
    view: memoryview, start: int, end: int, size: int
) -> Generator[tuple[int, int], bool | None, None]:
    """Candidate (begin, end) byte ranges of whole annotations, about `size` bytes each.

    Cuts are made at `}, {`; a cut that falls inside a string or a nested list is caught
    by the decoder (the slice is not valid JSON) and the caller asks for a longer slice.
    """
    pos = start
    while pos < end:
        cut = pos + size
        if cut >= end:
            yield pos, end
            return
        window = 1 << 20
        while True:
            chunk = bytes(view[cut : min(end, cut + window)])
            match = _BOUNDARY.search(chunk)
            if match or cut + window >= end:
                break
            window *= 4
        if match is None:
            yield pos, end
            return
        stop = cut + match.start() + 1
        resume = yield pos, stop
        if resume:  # the slice did not decode: extend it past this cut
            size = stop - pos + (1 << 16)
            continue
        pos = cut + match.end() - 1


def _decode_slices(
    view: memoryview,
    chunk_bytes: int,
    collector: _Collector,
    progress: Callable[[int], None],
    release: Callable[[int], None],
) -> None:
    start, end = _array_span(view)
    if end - start < 64 and not bytes(view[start:end]).strip():
        return
    gen = _slices(view, start, end, chunk_bytes)
    try:
        begin, stop = next(gen)
    except StopIteration:
        return
    reported = 0  # bytes of `view` reported, the separators between slices included
    while True:
        data = b"".join((b"[", view[begin:stop], b"]"))  # one copy of the slice
        extend = False
        try:
            collector.add_structs(_ANN_DECODER.decode(data))
        except msgspec.DecodeError:  # wrong types (ValidationError), NaN, or a bad cut
            items = _lenient(data)
            if items is None:
                extend = True
            else:
                collector.add_dicts(items)
        if extend and stop >= end:
            raise CocoError(f"`annotations` is not valid JSON (bytes {begin}-{stop})")
        if not extend:
            progress(stop - reported)
            reported = stop
            release(stop)
        try:
            begin, stop = gen.send(extend) if extend else next(gen)
        except StopIteration:
            return


def _lenient(data: bytes) -> list[Any] | None:
    """A slice parsed by Python's json (NaN allowed); None when it is not valid JSON.

    Not UTF-8 or nested too deeply: the exception goes on, to the whole-file reader.
    """
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, RecursionError):
        raise
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _read_images(raw: msgspec.Raw, file: str, problems: list[Problem]) -> list[_Image]:
    if not len(raw):
        return []
    try:
        return _IMAGES_DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    return _images_from(_lenient(bytes(raw)), file, problems)


def _images_from(items: Any, file: str, problems: list[Problem]) -> list[_Image]:
    """Image records from parsed JSON, each bad one reported."""
    if not isinstance(items, list):
        raise CocoError("`images` is not a JSON array")
    out: list[_Image] = []
    for i, item in enumerate(items):
        ident = item.get("id") if isinstance(item, dict) else None
        if isinstance(ident, bool) or not isinstance(ident, int | str):
            problems.append(Problem(file, f"images[{i}]", f"id {ident!r} is not usable"))
            continue
        assert isinstance(item, dict)
        name = item.get("file_name")
        out.append(
            _Image(
                ident,
                name if isinstance(name, str) else None,
                _number(item.get("width")),
                _number(item.get("height")),
            )
        )
    return out


def _extent(value: float | None) -> int:
    """Pixels of a width/height: 0 when unknown, -1 when beyond any page (dataspec's
    `MAX_COORD`)."""
    if value is None or not math.isfinite(value) or value < 1:
        return 0
    if value > MAX_COORD:
        return -1
    return math.floor(value + 0.5)


def load_coco(
    path: str | os.PathLike[str],
    *,
    category_ids: Sequence[int] = (),
    category_names: Sequence[str] = (),
    text_category_ids: Sequence[int] = (),
    text_category_names: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> CocoPages:
    """Read a predictions file into per-image panel and text detections (see the module
    doc).

    `category_ids`/`category_names` choose the panel categories (`panel_category_ids`),
    `text_category_ids`/`text_category_names` the text ones (`text_category_ids`).
    `progress` is called with the number of file bytes done: before the annotations, after
    each slice of about `chunk_bytes`, and the rest once the file is read, so the counts
    add up to the file's size.
    Raises `CocoError` when the file cannot be used at all, or a category choice does not
    fit it.
    """
    file = os.fspath(path)
    try:
        fh = open(file, "rb")  # noqa: SIM115 - closed below, after the map
    except OSError as exc:
        raise CocoError(f"cannot read: {exc.strerror or exc}") from exc
    with fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise CocoError("empty file")
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        size = len(mapped)
        done = [0]

        def report(n: int) -> None:
            n = min(n, size - done[0])  # a layout given up reads the file again: no more
            if n > 0:
                done[0] += n
                if progress is not None:
                    progress(n)

        try:
            choice = _Choice(category_ids, category_names, text_category_ids, text_category_names)
            pages = _load_mapped(mapped, file, choice, report, chunk_bytes)
            report(size - done[0])
            _trim_heap()
            return pages
        finally:
            with contextlib.suppress(BufferError):  # a view still alive: closed when freed
                mapped.close()


def _trim_heap() -> None:
    """Give the heap the decode freed back to the system (glibc's `malloc_trim`; nothing
    elsewhere): the decoded slices' objects leave holes that malloc would otherwise keep."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass(frozen=True)
class _Choice:
    """The caller's panel and text categories, resolved against the file's."""

    panel_ids: Sequence[int]
    panel_names: Sequence[str]
    text_ids: Sequence[int]
    text_names: Sequence[str]

    def resolve(self, categories: Any) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        """(panel ids, text ids, character ids) for the file's `categories` value (any JSON)."""
        cats = categories if isinstance(categories, list) else None
        panels = panel_category_ids(cats, self.panel_ids, self.panel_names)
        text = text_category_ids(cats, self.text_ids, self.text_names, panels)
        return panels, text, character_category_ids(cats, panels | text)


def _load_mapped(
    mapped: mmap.mmap,
    file: str,
    choice: _Choice,
    progress: Callable[[int], None],
    chunk_bytes: int,
) -> CocoPages:
    page_size = mmap.PAGESIZE
    released = [0]

    def release(upto: int) -> None:
        """Drop the map's pages before offset `upto` from this process's memory."""
        upto = upto // page_size * page_size
        if upto > released[0] and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_DONTNEED, released[0], upto - released[0])
            released[0] = upto

    def release_all() -> None:
        """Drop every page of the map (read again from the page cache when touched)."""
        release(len(mapped))
        released[0] = 0

    whole = memoryview(mapped)
    skip = len(_BOM) if bytes(whole[: len(_BOM)]) == _BOM else 0
    whole = whole[skip:]
    first = bytes(whole[:1024]).lstrip()[:1]
    if first == b"{":
        layout = locate(whole, _is_annotation, lambda n: release(skip + n))
        if layout is not None:
            with contextlib.suppress(msgspec.DecodeError, CocoError):
                return _decode_top(mapped, file, choice, progress, chunk_bytes, release, layout)
        release_all()  # a file of another shape (or a located one that failed): as a whole
    return _decode_top(mapped, file, choice, progress, chunk_bytes, release, None, release_all)


def _decode_top(
    mapped: mmap.mmap,
    file: str,
    choice: _Choice,
    progress: Callable[[int], None],
    chunk_bytes: int,
    release: Callable[[int], None],
    layout: Layout | None,
    scanned: Callable[[], None] = lambda: None,
) -> CocoPages:
    """The pages of the file, its `annotations` where `layout` says (raises
    `msgspec.DecodeError` or `CocoError` when they are not there), or found by decoding
    the whole file (`scanned` is called after that)."""
    problems: list[Problem] = []
    whole = memoryview(mapped)
    base = np.frombuffer(mapped, dtype=np.uint8).ctypes.data
    skip = len(_BOM) if bytes(whole[: len(_BOM)]) == _BOM else 0
    whole = whole[skip:]
    first = bytes(whole[:1024]).lstrip()[:1]
    images: list[_Image] = []
    categories: Any = None
    try:
        if first == b"[":
            ann_view, offset = whole, skip
        elif first == b"{":
            top = _TOP_DECODER.decode(layout.rest if layout is not None else whole)
            if layout is not None and len(top.annotations):
                raise CocoError("a second `annotations` key")  # read as a whole instead
            images = _read_images(top.images, file, problems)
            if len(top.categories):
                categories = _lenient(bytes(top.categories))
            if layout is not None:
                ann_view, offset = whole[layout.start : layout.end], skip + layout.start
            else:
                if not len(top.annotations):
                    raise CocoError("no `annotations` key")
                # the scan for the keys read every page of the map: drop them all; the
                # slices of the annotations are read again as they are decoded
                scanned()
                ann_view = memoryview(top.annotations)
                offset = np.frombuffer(ann_view, dtype=np.uint8).ctypes.data - base
        else:
            raise CocoError("not a COCO dict or results list")
    except msgspec.ValidationError as exc:
        if layout is not None:
            raise
        raise CocoError(f"not a COCO dict or results list ({exc})") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        if layout is not None and not isinstance(exc, UnicodeDecodeError | RecursionError):
            raise
        # NaN literals, not UTF-8, nested too deeply, or not JSON at all
        return _load_lenient(whole, file, choice, exc)

    panel_ids, text_ids, char_ids = choice.resolve(categories)
    index, names, sizes = _index_images(images, file, problems)
    collector = _Collector(file, panel_ids, index, text_ids, char_ids)
    progress(offset)  # the bytes before the annotations are read
    try:
        _decode_slices(
            ann_view,
            chunk_bytes,
            collector,
            progress,
            lambda upto: release(upto + offset),
        )
    except (UnicodeDecodeError, RecursionError) as exc:  # not UTF-8, or nested too deeply
        del ann_view
        return _load_lenient(whole, file, choice, exc)
    del ann_view
    problems.extend(collector.problems)
    ids = list(index)
    names.extend(None for _ in collector.new_ids)
    sizes.extend((0, 0) for _ in collector.new_ids)
    return _group(file, ids, names, sizes, collector, problems)


def _is_annotation(item: bytes) -> bool:
    """Whether the JSON object `item` reads as an annotation."""
    try:
        _ANN_ITEM_DECODER.decode(item)
    except (msgspec.DecodeError, RecursionError):  # not one, or nested too deeply to tell
        return False
    return True


def _load_lenient(
    whole: memoryview,
    file: str,
    choice: _Choice,
    error: Exception,
) -> CocoPages:
    """The whole file through Python's json (NaN literals; cp1252 when not UTF-8); for
    files msgspec refuses."""
    data = bytes(whole)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise CocoError("nested too deeply to be read (more than about 1000 levels)") from None
    except ValueError as exc:
        if isinstance(error, RecursionError):
            raise CocoError("nested too deeply to be read (more than about 1000 levels)") from None
        raise CocoError(f"not valid JSON ({exc})") from None
    if isinstance(obj, list):
        obj = {"annotations": obj}
    if not isinstance(obj, dict):
        raise CocoError("not a COCO dict or results list")
    problems: list[Problem] = []
    images = _images_from(obj.get("images", []), file, problems)
    panel_ids, text_ids, char_ids = choice.resolve(obj.get("categories"))
    anns = obj.get("annotations")
    if "annotations" not in obj:
        raise CocoError("no `annotations` key")
    if not isinstance(anns, list):
        raise CocoError("`annotations` is not a JSON array")
    index, names, sizes = _index_images(images, file, problems)
    collector = _Collector(file, panel_ids, index, text_ids, char_ids)
    collector.add_dicts(anns)
    problems.extend(collector.problems)
    names.extend(None for _ in collector.new_ids)
    sizes.extend((0, 0) for _ in collector.new_ids)
    return _group(file, list(index), names, sizes, collector, problems)


def _index_images(
    images: list[_Image], file: str, problems: list[Problem]
) -> tuple[dict[int | str, int], list[str | None], list[tuple[int, int]]]:
    index: dict[int | str, int] = {}
    sizes: list[tuple[int, int]] = []
    names: list[str | None] = []
    for i, image in enumerate(images):
        if image.id in index:
            problems.append(Problem(file, f"images[{i}]", f"duplicate image id {image.id!r}"))
            continue
        index[image.id] = len(index)
        names.append(image.file_name)
        width, height = _extent(image.width), _extent(image.height)
        if width < 0 or height < 0:
            problems.append(
                Problem(
                    file,
                    f"images[{i}]",
                    f"width {image.width!r} x height {image.height!r} is not a usable page "
                    "size (taken as unknown)",
                )
            )
            width = height = 0
        sizes.append((width, height))
    return index, names, sizes


def _group(
    file: str,
    ids: list[int | str],
    names: list[str | None],
    sizes: list[tuple[int, int]],
    collector: _Collector,
    problems: list[Problem],
) -> CocoPages:
    n = len(ids)
    offsets, boxes, scores, _ = collector.panels.grouped(n)
    text_offsets, text_boxes, text_scores, text_cats = collector.text.grouped(n)
    assert text_cats is not None
    char_offsets, char_boxes, char_scores, _ = collector.chars.grouped(n)
    return CocoPages(
        ids=ids,
        paths=[image_path(i, name) for i, name in zip(ids, names, strict=True)],
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        offsets=offsets,
        boxes=boxes,
        scores=scores,
        panel_ids=collector.panel_ids,
        text_offsets=text_offsets,
        text_boxes=text_boxes,
        text_scores=text_scores,
        text_categories=text_cats,
        text_ids=collector.text_ids,
        char_offsets=char_offsets,
        char_boxes=char_boxes,
        char_scores=char_scores,
        char_ids=collector.char_ids,
        annotations=collector.count,
        problems=problems,
    )
