"""Panel crops of a page image: the image opened once (draft mode, decompression-bomb
guard, truncated files allowed only here), each panel box clamped, cut and letterboxed;
the page's composition features."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from .look import page_look

DEFAULT_MAX_PIXELS = 80_000_000
"""Pages with more pixels than this are skipped unread (decompression-bomb guard)."""

FILL = 128
"""Grey that pads letterboxed crops (0 after the encoders' normalization)."""


class ImageError(Exception):
    """A page image that cannot be used (unreadable, too large, broken)."""


class OutsideImageError(ImageError):
    """A panel box that lies wholly outside its page image (wrong image or page size)."""

    def __init__(self, message: str, box_index: int) -> None:
        super().__init__(message)
        self.box_index = box_index


_TRUNCATED_LOCK = threading.Lock()


@contextlib.contextmanager
def truncated_images_allowed() -> Iterator[None]:
    """Pillow's `LOAD_TRUNCATED_IMAGES` switched on for this block only, then restored."""
    with _TRUNCATED_LOCK:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


Box = tuple[int, int, int, int]


def clamp_box(box: Sequence[int], width: int, height: int) -> Box:
    """`[x, y, w, h]` clamped to the page; at least 1x1 pixel, inside the page."""
    x, y, w, h = (int(v) for v in box)
    x0 = min(max(x, 0), width - 1)
    y0 = min(max(y, 0), height - 1)
    x1 = min(max(x + w, x0 + 1), width)
    y1 = min(max(y + h, y0 + 1), height)
    return x0, y0, x1 - x0, y1 - y0


@dataclass
class Crops:
    """Panel crops of one page and how they were read."""

    pixels: np.ndarray
    """(n, S, S, 3) uint8."""
    boxes: list[Box]
    """The boxes used: clamped to the page, in page pixels."""
    page_size: tuple[int, int]
    """Full (width, height) of the page image."""
    scale: int
    """JPEG reduced-decode factor used: 1 (full), 2, 4 or 8."""
    truncated: bool
    """The image was truncated and loaded anyway (the missing part is grey)."""
    look: np.ndarray | None = None
    """With `whole_page`: the page's look (`training.look.page_look`)."""


def draft_scale(boxes: Sequence[Box], size: int, letterbox: bool) -> int:
    """The largest JPEG decode reduction (8, 4, 2 or 1) after which no crop is upscaled.

    A crop fills `size` pixels along its longer side (letterbox) or both sides (stretch);
    decoding at 1/s keeps every crop at least that large.
    """
    if not boxes:
        return 1
    room = min((max(w, h) if letterbox else min(w, h)) for _, _, w, h in boxes) / size
    return next((s for s in (8, 4, 2) if s <= room), 1)


def _open(
    path: str, boxes: Sequence[Sequence[int]], size: int, letterbox: bool, fast: bool, limit: int
) -> tuple[Image.Image, list[Box], tuple[int, int], int]:
    image = Image.open(path)
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageError(
            f"{path}: {width}x{height} = {width * height} pixels is over the limit of {limit} "
            "(decompression-bomb guard; raise --max_image_pixels to allow it)"
        )
    for k, (x, y, w, h) in enumerate(boxes):
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            image.close()
            raise OutsideImageError(
                f"box {[x, y, w, h]} lies wholly outside the {width}x{height} image {path} "
                "(wrong image, or boxes for another page size?)",
                k,
            )
    clamped = [clamp_box(b, width, height) for b in boxes]
    scale = 1
    if fast and image.format == "JPEG":
        wanted = draft_scale(clamped, size, letterbox)
        if wanted > 1:
            drafted = image.draft("RGB", (width // wanted, height // wanted))
            if drafted is not None:
                scale = max(1, round(width / drafted[1][2]))
    return image, clamped, (width, height), scale


def read_crops(
    path: str | Path,
    boxes: Sequence[Sequence[int]],
    size: int,
    *,
    letterbox: bool = True,
    fast: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    allow_truncated: bool = True,
    reducing_gap: float | None = None,
    whole_page: bool = False,
) -> Crops:
    """Decode a page image once and cut every panel out of it, resized to `size`; with
    `whole_page`, the whole page as one more crop after the panels' and its look.

    With `fast`, a JPEG is decoded at a reduced scale when every crop will still be
    downscaled (`draft_scale`), and boxes are scaled by the decode factor. A truncated
    image is loaded with the missing part grey when `allow_truncated` (and reported).
    Crops are resized with antialiased bilinear resampling; `reducing_gap` (Pillow's
    two-step resize) trades a little accuracy for speed. Raises `ImageError` (naming the
    file) for anything that cannot be read: not a regular file (a FIFO or device would
    block or never end), unreadable, not an image, over `max_pixels`, broken; and
    `OutsideImageError` for a box wholly outside the image (partly outside is clamped).
    """
    path = str(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        raise ImageError(f"cannot read image {path}: not a regular file")
    try:
        image, clamped, page_size, scale = _open(path, boxes, size, letterbox, fast, max_pixels)
        truncated = False
        try:
            image.load()
        except OSError:
            image.close()
            if not allow_truncated:
                raise
            image, clamped, page_size, scale = _open(path, boxes, size, letterbox, fast, max_pixels)
            with truncated_images_allowed():
                image.load()
            truncated = True
        with image:
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            cut = [*clamped, (0, 0, *page_size)] if whole_page else clamped
            pixels = _cut(rgb, cut, size, letterbox, 1.0 / scale, reducing_gap)
            look = page_look(rgb) if whole_page else None
    except ImageError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        MemoryError,
        Image.DecompressionBombError,
    ) as exc:
        raise ImageError(f"cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    return Crops(pixels, clamped, page_size, scale, truncated, look)


def _cut(
    image: Image.Image,
    boxes: Sequence[Box],
    size: int,
    letterbox: bool,
    factor: float,
    reducing_gap: float | None,
) -> np.ndarray:
    out = np.full((len(boxes), size, size, 3), FILL, dtype=np.uint8)
    dw, dh = image.size
    for k, (x, y, w, h) in enumerate(boxes):
        src = (x * factor, y * factor, min((x + w) * factor, dw), min((y + h) * factor, dh))
        if letterbox:
            r = size / max(w, h)
            tw, th = max(1, min(size, round(w * r))), max(1, min(size, round(h * r)))
        else:
            tw = th = size
        patch = image.resize(
            (tw, th), Image.Resampling.BILINEAR, box=src, reducing_gap=reducing_gap
        )
        ox, oy = (size - tw) // 2, (size - th) // 2
        out[k, oy : oy + th, ox : ox + tw] = np.asarray(patch)
    return out


def composition_features(boxes: Sequence[Box], width: int, height: int) -> np.ndarray:
    """(n, 8) float32: x, y, w, h, area, log(w/h), centre x, centre y — relative to the page."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x, y = b[:, 0] / width, b[:, 1] / height
    w, h = b[:, 2] / width, b[:, 3] / height
    feats = np.stack([x, y, w, h, w * h, np.log(b[:, 2] / b[:, 3]), x + w / 2, y + h / 2], axis=1)
    return feats.astype(np.float32)
