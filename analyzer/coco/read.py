"""Reading a predictions file: memory-mapped, the `annotations` found (`layout.locate`) and
decoded in slices, or the whole file read leniently when msgspec refuses it."""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import re
from collections.abc import Callable, Generator, Sequence
from typing import Any

import msgspec
import numpy as np

from dataspec.normalize.decode import decode_text

from ..problems import Problem
from .categories import _Choice
from .collect import _Collector, _group, _index_images, _number
from .layout import Layout, locate
from .records import (
    _ANN_DECODER,
    _ANN_ITEM_DECODER,
    _IMAGES_DECODER,
    _TOP_DECODER,
    CocoError,
    CocoPages,
    _Image,
)

CHUNK_BYTES = 16 * 1024 * 1024
"""Bytes of the `annotations` array decoded at a time."""
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_BOM = b"\xef\xbb\xbf"


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
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols (libc's): no search


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
    how = (file, choice, progress, chunk_bytes, release)
    if first == b"{":
        layout = locate(whole, _is_annotation, lambda n: release(skip + n))
        if layout is not None:
            with contextlib.suppress(msgspec.DecodeError, CocoError):
                return _decode_top(mapped, skip, first, *how, layout)
        release_all()  # a file of another shape (or a located one that failed): as a whole
    return _decode_top(mapped, skip, first, *how, None, release_all)


def _decode_top(
    mapped: mmap.mmap,
    skip: int,
    first: bytes,
    file: str,
    choice: _Choice,
    progress: Callable[[int], None],
    chunk_bytes: int,
    release: Callable[[int], None],
    layout: Layout | None,
    scanned: Callable[[], None] = lambda: None,
) -> CocoPages:
    """The pages of the file (its first `skip` bytes a BOM, `first` its first character
    after whitespace), its `annotations` where `layout` says (raises `msgspec.DecodeError`
    or `CocoError` when they are not there), or found by decoding the whole file
    (`scanned` is called after that)."""
    problems: list[Problem] = []
    whole = memoryview(mapped)[skip:]
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
                base = np.frombuffer(mapped, dtype=np.uint8).ctypes.data
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
    return _group(file, names, sizes, collector, problems)


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
    text, _ = decode_text(bytes(whole))
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
    return _group(file, names, sizes, collector, problems)
