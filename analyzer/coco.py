"""Detector predictions in COCO form → one compact record per image.

Accepts a full COCO dict (`images`, `annotations`, `categories`) or a bare results list;
image ids may be integers or path strings. Only panel detections are kept, as numpy
arrays grouped by image (about 40 bytes a detection).

The file is memory-mapped and decoded with msgspec into typed structs, the
`annotations` array in slices of `CHUNK_BYTES`, so the decoded objects of only one slice
exist at a time and decoded parts of the map are handed back to the OS. A slice whose
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

from .problems import Problem

__all__ = [
    "CHUNK_BYTES",
    "CocoError",
    "CocoPages",
    "image_path",
    "load_coco",
    "panel_category_ids",
]

CHUNK_BYTES = 16 * 1024 * 1024
"""Bytes of the `annotations` array decoded at a time."""

DEFAULT_PANEL_ID = 1
DEFAULT_PANEL_NAME = "panel"


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
_IMAGES_DECODER = msgspec.json.Decoder(list[_Image])
_TOP_DECODER = msgspec.json.Decoder(_Top)
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_BOM = b"\xef\xbb\xbf"


@dataclass
class CocoPages:
    """Every image of the predictions file with its panel detections, grouped compactly."""

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
    annotations: int = 0
    """Annotations read (all categories)."""
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


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


class _Collector:
    """Panel detections gathered slice by slice into flat arrays."""

    def __init__(self, file: str, panel_ids: frozenset[int], index: dict[int | str, int]):
        self.file = file
        self.panel_ids = panel_ids
        self.index = index
        self.listed = bool(index)
        """The file lists images: an annotation naming another image is reported."""
        self.new_ids: list[int | str] = []
        self.pages: list[np.ndarray] = []
        self.boxes: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
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
        panel_ids, page_of = self.panel_ids, self._page
        pages: list[int] = []
        flat: list[float] = []
        scores: list[float] = []
        for i, ann in enumerate(anns):
            page = page_of(ann.image_id, self.count + i)  # a page even with no panel
            if ann.category_id not in panel_ids:
                continue
            box, score = ann.bbox, ann.score
            if not (math.isfinite(score) and all(map(math.isfinite, box))):
                self._bad(self.count + i, "bbox or score is not finite")
                continue
            pages.append(page)
            flat.extend(box)
            scores.append(score)
        self._push(pages, flat, scores)
        self.count += len(anns)

    def add_dicts(self, items: list[Any]) -> None:
        pages: list[int] = []
        flat: list[float] = []
        scores: list[float] = []
        for i, item in enumerate(items):
            checked = _check_ann(item)
            if isinstance(checked, str):
                self._bad(self.count + i, checked)
                continue
            image_id, cat, box, score = checked
            page = self._page(image_id, self.count + i)
            if cat not in self.panel_ids:
                continue
            pages.append(page)
            flat.extend(box)
            scores.append(score)
        self._push(pages, flat, scores)
        self.count += len(items)

    def _bad(self, index: int, why: str) -> None:
        self.problems.append(Problem(self.file, f"annotations[{index}]", why))

    def _push(self, pages: list[int], flat: list[float], scores: list[float]) -> None:
        if pages:
            self.pages.append(np.asarray(pages, dtype=np.int64))
            self.boxes.append(np.asarray(flat, dtype=np.float64).reshape(-1, 4))
            self.scores.append(np.asarray(scores, dtype=np.float64))


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
    while True:
        data = b"[" + bytes(view[begin:stop]) + b"]"
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
            progress(stop - begin)
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
    progress: Callable[[int], None] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> CocoPages:
    """Read a predictions file into per-image panel detections (see the module doc).

    `progress` is called with the number of annotation bytes done after each slice of
    about `chunk_bytes`.
    Raises `CocoError` when the file cannot be used at all.
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
        try:
            return _load_mapped(mapped, file, category_ids, category_names, progress, chunk_bytes)
        finally:
            with contextlib.suppress(BufferError):  # a view still alive: closed when freed
                mapped.close()


def _load_mapped(
    mapped: mmap.mmap,
    file: str,
    category_ids: Sequence[int],
    category_names: Sequence[str],
    progress: Callable[[int], None] | None,
    chunk_bytes: int,
) -> CocoPages:
    problems: list[Problem] = []
    whole = memoryview(mapped)
    base = np.frombuffer(mapped, dtype=np.uint8).ctypes.data
    page_size = mmap.PAGESIZE
    released = [0]

    def release(upto_in_view: int, view_offset: int) -> None:
        """Drop already-decoded pages of the map from this process's memory."""
        upto = (view_offset + upto_in_view) // page_size * page_size
        if upto > released[0] and hasattr(mapped, "madvise"):
            mapped.madvise(mmap.MADV_DONTNEED, released[0], upto - released[0])
            released[0] = upto

    skip = len(_BOM) if bytes(whole[: len(_BOM)]) == _BOM else 0
    whole = whole[skip:]
    first = bytes(whole[:1024]).lstrip()[:1]
    images: list[_Image] = []
    categories: Any = None
    try:
        if first == b"[":
            ann_view, offset = whole, skip
        elif first == b"{":
            top = _TOP_DECODER.decode(whole)
            images = _read_images(top.images, file, problems)
            if len(top.categories):
                categories = _lenient(bytes(top.categories))
            if not len(top.annotations):
                raise CocoError("no `annotations` key")
            ann_view = memoryview(top.annotations)
            offset = np.frombuffer(ann_view, dtype=np.uint8).ctypes.data - base
        else:
            raise CocoError("not a COCO dict or results list")
    except msgspec.ValidationError as exc:
        raise CocoError(f"not a COCO dict or results list ({exc})") from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # NaN literals, not UTF-8, nested too deeply, or not JSON at all
        return _load_lenient(whole, file, category_ids, category_names, exc)

    panel_ids = panel_category_ids(
        categories if isinstance(categories, list) else None, category_ids, category_names
    )
    index, names, sizes = _index_images(images, file, problems)
    collector = _Collector(file, panel_ids, index)
    try:
        _decode_slices(
            ann_view,
            chunk_bytes,
            collector,
            progress or (lambda _n: None),
            lambda upto: release(upto, offset),
        )
    except (UnicodeDecodeError, RecursionError) as exc:  # not UTF-8, or nested too deeply
        del ann_view
        return _load_lenient(whole, file, category_ids, category_names, exc)
    del ann_view
    problems.extend(collector.problems)
    ids = list(index)
    names.extend(None for _ in collector.new_ids)
    sizes.extend((0, 0) for _ in collector.new_ids)
    return _group(file, ids, names, sizes, collector, panel_ids, problems)


def _load_lenient(
    whole: memoryview,
    file: str,
    category_ids: Sequence[int],
    category_names: Sequence[str],
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
    cats = obj.get("categories")
    panel_ids = panel_category_ids(
        cats if isinstance(cats, list) else None, category_ids, category_names
    )
    anns = obj.get("annotations")
    if "annotations" not in obj:
        raise CocoError("no `annotations` key")
    if not isinstance(anns, list):
        raise CocoError("`annotations` is not a JSON array")
    index, names, sizes = _index_images(images, file, problems)
    collector = _Collector(file, panel_ids, index)
    collector.add_dicts(anns)
    problems.extend(collector.problems)
    names.extend(None for _ in collector.new_ids)
    sizes.extend((0, 0) for _ in collector.new_ids)
    return _group(file, list(index), names, sizes, collector, panel_ids, problems)


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
    panel_ids: frozenset[int],
    problems: list[Problem],
) -> CocoPages:
    n = len(ids)
    if collector.pages:
        pages = np.concatenate(collector.pages)
        boxes = np.concatenate(collector.boxes)
        scores = np.concatenate(collector.scores)
        order = np.argsort(pages, kind="stable")
        pages, boxes, scores = pages[order], boxes[order], scores[order]
    else:
        pages = np.zeros(0, dtype=np.int64)
        boxes = np.zeros((0, 4), dtype=np.float64)
        scores = np.zeros(0, dtype=np.float64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(pages, minlength=n), out=offsets[1:])
    return CocoPages(
        ids=ids,
        paths=[image_path(i, name) for i, name in zip(ids, names, strict=True)],
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        offsets=offsets,
        boxes=boxes,
        scores=scores,
        panel_ids=panel_ids,
        annotations=collector.count,
        problems=problems,
    )
