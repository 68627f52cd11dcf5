"""A cheap check that a page's image file can be used, without decoding its pixels.

Reads the header (dataspec's `image_size`) and the last few KiB of the file: enough to
refuse what would make a trainer fail or stall on the page later (a file that is not an
image, a JPEG or PNG cut short, a header claiming more pixels than any page has, a FIFO, a
symlink loop, a file that cannot be read).
"""

from __future__ import annotations

import os
import stat

from dataspec.imagesize import image_size

__all__ = ["MAX_IMAGE_PIXELS", "TAIL_BYTES", "image_problem", "regular_file_problem"]

MAX_IMAGE_PIXELS = 89_478_485
"""Most pixels a page image may claim: Pillow's decompression-bomb threshold (its
`Image.MAX_IMAGE_PIXELS`, about a 9460 x 9460 image); a 600 dpi A3 scan is below it."""
TAIL_BYTES = 4096
"""Bytes at the end of a file searched for the JPEG/PNG end marker."""

_JPEG = b"\xff\xd8"
_PNG = b"\x89PNG\r\n\x1a\n"


def regular_file_problem(path: str) -> str | None:
    """Why `path` is not an existing regular file (symlinks followed), or None."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None


def image_problem(path: str) -> str | None:
    """Why the image at `path` cannot be used for a page, or None when it looks sound.

    Checked: a readable regular file; a JPEG, PNG, GIF, BMP or WebP header with a size;
    at most `MAX_IMAGE_PIXELS` pixels; a JPEG ending with its end-of-image marker and a
    PNG with its IEND chunk (within the last `TAIL_BYTES`: otherwise the file was cut
    short). Never decodes pixels.
    """
    why = regular_file_problem(path)
    if why is not None:
        return why
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - TAIL_BYTES))
            tail = fh.read(TAIL_BYTES)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not head:
        return "empty file"
    size = image_size(path)
    if size is None:
        return "not an image (no readable JPEG, PNG, GIF, BMP or WebP header)"
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        return (
            f"{width}x{height} pixels: beyond any page (more than {MAX_IMAGE_PIXELS}; "
            "a decompression bomb?)"
        )
    if head.startswith(_JPEG) and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if head.startswith(_PNG) and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    return None
