"""A cheap check that a page's image file can be used, without decoding its pixels.

Reads the header (dataspec's `image_size`) and the last few KiB of the file: enough to
refuse what would make a trainer fail or stall on the page later (a file that is not an
image, a JPEG or PNG cut short, a header claiming more pixels than any page has, a FIFO, a
symlink loop, a file that cannot be read).
"""

from __future__ import annotations

import io
import os
import stat

from dataspec.imagesize import _header_size, _jpeg_size, image_size

__all__ = ["HEAD_BYTES", "MAX_IMAGE_PIXELS", "TAIL_BYTES", "image_problem", "regular_file_problem"]

MAX_IMAGE_PIXELS = 89_478_485
"""Most pixels a page image may claim: Pillow's decompression-bomb threshold (its
`Image.MAX_IMAGE_PIXELS`, about a 9460 x 9460 image); a 600 dpi A3 scan is below it."""
TAIL_BYTES = 4096
"""Bytes at the end of a file searched for the JPEG/PNG end marker."""
HEAD_BYTES = 16384
"""Bytes read from the start of a file in one call: the header, and a JPEG's markers up
to its frame (a JPEG whose frame lies further in is read again by `image_size`)."""

_JPEG = b"\xff\xd8"
_PNG = b"\x89PNG\r\n\x1a\n"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
"""Read-only; never blocking, should a FIFO take the file's place after the `stat`."""


def regular_file_problem(path: str) -> str | None:
    """Why `path` is not an existing regular file (symlinks followed), or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes of `fd` at `offset`."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _ends(path: str, size: int) -> tuple[bytes, bytes, bool]:
    """(the first `HEAD_BYTES`, the last `TAIL_BYTES`, whether the head is the whole file)
    of the file at `path`, whose `stat` gave `size` bytes: one open, one or two reads."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        head = _pread(fd, HEAD_BYTES, 0)
        while len(head) < min(size, HEAD_BYTES):  # a short read (network file systems)
            more = _pread(fd, HEAD_BYTES - len(head), len(head))
            if not more:
                break
            head += more
        if len(head) < HEAD_BYTES:
            return head, head[-TAIL_BYTES:], True
        end = size if size >= HEAD_BYTES else os.lseek(fd, 0, os.SEEK_END)
        return head, _pread(fd, TAIL_BYTES, max(0, end - TAIL_BYTES)), False
    finally:
        os.close(fd)


def image_problem(path: str) -> str | None:
    """Why the image at `path` cannot be used for a page, or None when it looks sound.

    Checked: a readable regular file; a JPEG, PNG, GIF, BMP or WebP header with a size;
    at most `MAX_IMAGE_PIXELS` pixels; a JPEG ending with its end-of-image marker and a
    PNG with its IEND chunk (within the last `TAIL_BYTES`: otherwise the file was cut
    short). Never decodes pixels; one `stat` and one open (two for a JPEG whose frame
    header lies beyond the first `HEAD_BYTES`).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    try:
        head, tail, whole = _ends(path, st.st_size)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not head:
        return "empty file"
    if head.startswith(_JPEG):  # `image_size`'s marker walk, over the bytes read
        size = _jpeg_size(io.BytesIO(head))
        if size is None and not whole:  # the frame header may lie further in
            size = image_size(path)
    else:
        size = _header_size(head[:32])
    if size is None:
        return "not an image (no readable JPEG, PNG, GIF, BMP or WebP header)"
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        return (
            f"{width}x{height} pixels: beyond any page (more than {MAX_IMAGE_PIXELS}; "
            "a decompression bomb?)"
        )
    # searched from the end, where the marker is in a sound file
    if head.startswith(_JPEG) and tail.rfind(b"\xff\xd9") < 0:
        return "truncated JPEG (no end-of-image marker)"
    if head.startswith(_PNG) and tail.rfind(b"IEND") < 0:
        return "truncated PNG (no IEND chunk)"
    return None
