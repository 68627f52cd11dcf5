"""Page size from an image file's header, without decoding pixels (JPEG, PNG, GIF, BMP, WebP)."""

from __future__ import annotations

import os
import stat
import struct
from os import PathLike

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: str | PathLike[str]) -> tuple[int, int] | None:
    """(width, height) read from the header, or None when the format or file is unreadable."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block
            return None
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head.startswith(b"\xff\xd8"):
                return _jpeg_size(fh)
    except OSError:
        return None
    return _header_size(head)


def _header_size(head: bytes) -> tuple[int, int] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
    elif head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
    elif head.startswith(b"BM") and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        h = abs(h)
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8 ":
            w, h = (v & 0x3FFF for v in struct.unpack("<HH", head[26:30]))
        elif chunk == b"VP8L":
            b = head[21:25]
            w = 1 + (((b[1] & 0x3F) << 8) | b[0])
            h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        elif chunk == b"VP8X":
            w = 1 + int.from_bytes(head[24:27], "little")
            h = 1 + int.from_bytes(head[27:30], "little")
        else:
            return None
    else:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _jpeg_size(fh: object) -> tuple[int, int] | None:
    """Walk JPEG markers from just after SOI to the first start-of-frame."""
    read = fh.read  # type: ignore[attr-defined]
    seek = fh.seek  # type: ignore[attr-defined]
    seek(2)
    while True:
        byte = read(1)
        while byte and byte != b"\xff":
            byte = read(1)
        while byte == b"\xff":
            byte = read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9:
            return None
        length_bytes = read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker in _SOF_MARKERS:
            data = read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return (w, h) if w > 0 and h > 0 else None
        seek(length - 2, 1)
