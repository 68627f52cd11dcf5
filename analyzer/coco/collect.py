"""Annotations into per-page numpy columns: checked one by one or taken by columns, then
grouped by page with the images' ids, names and sizes (`CocoPages`)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from dataspec.normalize.boxes import MAX_COORD

from ..problems import Problem
from .categories import _INT32
from .records import CocoPages, _Ann, _Image, image_path


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


def _extent(value: float | None) -> int:
    """Pixels of a width/height: 0 when unknown, -1 when beyond any page (dataspec's
    `MAX_COORD`)."""
    if value is None or not math.isfinite(value) or value < 1:
        return 0
    if value > MAX_COORD:
        return -1
    return math.floor(value + 0.5)


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
    names: list[str | None],
    sizes: list[tuple[int, int]],
    collector: _Collector,
    problems: list[Problem],
) -> CocoPages:
    """The pages: the images' (`names`, `sizes` as `_index_images` gave them), then those
    only the annotations named; `problems` gets the collector's."""
    problems.extend(collector.problems)
    ids = list(collector.index)
    names = [*names, *(None for _ in collector.new_ids)]
    sizes = [*sizes, *((0, 0) for _ in collector.new_ids)]
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
