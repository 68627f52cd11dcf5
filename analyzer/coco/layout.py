"""Where a COCO dict's `annotations` array lies in the file's bytes, found without reading
the whole file.

msgspec finds the keys of a JSON object only by reading all of it, which brings every page
of the memory-mapped predictions into the process at once (the file's size in RSS before
the first annotation is decoded). Detectors write one big `annotations` array among small
values (`images`, `categories`, `info`), so `locate` searches for that key, reads the bytes
before and after the array as one JSON object of their own, and checks that the array
ends with an annotation where it says. Anything else (the key only inside another value, a
last item that is no annotation, bytes around it that are no JSON object) gives None, and
the caller reads the file as a whole; so does a file whose annotations then fail to decode.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import msgspec

_KEY = re.compile(rb'"annotations"\s*:\s*\[')
_ITEM_START = re.compile(rb"[\[,]\s*\{")
WINDOW = 8 << 20
"""Bytes searched for the key at a time (the pages behind are released)."""
TAIL = 1 << 20
"""Bytes at the end of the file searched for the array's end."""
_CANDIDATES = 64
"""`]` tried as the array's end, back from the end of the file."""


class Layout(NamedTuple):
    """A COCO dict split around its `annotations` array."""

    rest: bytes
    """The dict without its `annotations`: a JSON object of the other keys, in file order."""
    start: int
    """Offset of the array's `[`."""
    end: int
    """Offset just past its `]`."""


def locate(
    view: memoryview,
    is_annotation: Callable[[bytes], bool],
    release: Callable[[int], None],
) -> Layout | None:
    """The layout of the COCO dict in `view` (starting with `{` after any whitespace), or
    None when it is not plainly one array among small values. `is_annotation(b)`: whether
    the JSON object `b` reads as an annotation. `release(n)` is called as the first `n`
    bytes are done with, so their pages can leave memory. `Layout.rest` is not checked to
    be JSON: the caller decodes it."""
    found = _find_key(view, release)
    if found is None:
        return None
    key, start = found
    head = bytes(view[:key]).strip()
    release(key)
    if not head.startswith(b"{"):
        return None
    head = head[1:].strip()
    if head and not head.endswith(b","):
        return None
    tail_from = max(start, len(view) - TAIL)
    tail = bytes(view[tail_from:])
    for close in _closing_brackets(tail):
        after = tail[close + 1 :].strip()
        if not after.endswith(b"}"):
            continue
        after = after[:-1].strip()
        if after and not (after.startswith(b",") and _is_object(b"{" + after[1:] + b"}")):
            continue
        end = tail_from + close + 1
        empty = end - start <= 64 and not bytes(view[start + 1 : end - 1]).strip()
        if empty or _ends_with_annotation(tail[:close], is_annotation):
            rest = b"{" + head[:-1] + (b"," if head and after else b"") + after[1:] + b"}"
            return Layout(rest, start, end)
    return None


def _find_key(view: memoryview, release: Callable[[int], None]) -> tuple[int, int] | None:
    """(offset of the first `"annotations"` key's quote outside a string, offset of its
    array's `[`)."""
    overlap = 64
    for at in range(0, len(view), WINDOW):
        lo = max(0, at - overlap)
        chunk = bytes(view[lo : at + WINDOW])
        for match in _KEY.finditer(chunk):
            quote = back = match.start()
            while back > 0 and chunk[back - 1] == 0x5C:  # backslashes before the quote
                back -= 1
            if (quote - back) % 2 == 0:  # else an escaped quote, inside a string
                return lo + quote, lo + match.end() - 1
        release(at)
    return None


def _closing_brackets(tail: bytes) -> list[int]:
    """Positions of the last `_CANDIDATES` `]` in `tail`, the last first."""
    out: list[int] = []
    at = len(tail)
    while len(out) < _CANDIDATES and (at := tail.rfind(b"]", 0, at)) >= 0:
        out.append(at)
    return out


def _is_object(data: bytes) -> bool:
    try:
        return isinstance(msgspec.json.decode(data), dict)
    except (msgspec.DecodeError, RecursionError):  # not JSON, or nested too deeply to tell
        return False


_TRIES = 3
"""Item starts tried back from an array's end (a last item may hold `, {` of its own)."""


def _ends_with_annotation(body: bytes, is_annotation: Callable[[bytes], bool]) -> bool:
    """Whether `body` (an array's bytes up to its closing `]`) ends with an annotation."""
    body = body.rstrip()
    if not body.endswith(b"}"):
        return False
    starts = [m.end() - 1 for m in _ITEM_START.finditer(body, max(0, len(body) - (1 << 16)))]
    return any(is_annotation(body[begin:]) for begin in reversed(starts[-_TRIES:]))
