"""Lazy page loading: one DataSpec page → panel crops, text ids, composition features,
each panel's text state and modality mask (an unknown or empty text is masked, never fed
as text) and reading-order labels; a collate that pads to `max_panels`; a sampler that keeps
consecutive pages of a book side by side (for the page-order objective).

Loading, image resolution and reading order all come from `dataspec`:
`dataspec.load(path, resolver=...)` strictly, else `lenient=True` (counted);
one `dataspec.ImageResolver` per process; `page.order(rtl=...)`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import stat
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile
from torch.utils.data import Dataset, Sampler

import dataspec
from dataspec.keys import page_key as dataspec_page_key

from .config import ModelConfig
from .look import page_look
from .text import HashTokenizer

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 80_000_000
"""Pages with more pixels than this are skipped unread (decompression-bomb guard)."""

DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024
"""Page files larger than this are skipped unread (a real page is a few kB)."""

FILL = 128
"""Grey that pads letterboxed crops (0 after the encoders' normalization)."""


END = -1
"""In `PageItem.next_position`-style labels: the panel is the last of the page."""

IGNORE = -100
"""Label value that the losses and metrics ignore."""

MODALITIES = ("vision", "text", "layout")
"""The columns of `modality_mask`: a panel's crop, its lettered text, its box geometry."""

LAYOUT = "layout"
"""`PageMeta.order_source` of a page ordered by the layout heuristic (its own label)."""

INDEPENDENT_ORDER_SOURCES = frozenset({"vlm", "truth"})
"""Order sources independent of the layout heuristic: labels a model may learn order from
and be graded against (`layout` is the heuristic itself, `model` a model's guess)."""

ORDER_LABELS = ("independent", "any")
"""`PageDataset(order_labels=...)`: which pages' orders are training targets."""

TEXT_STATES = ("present", "none", "unknown")
"""Names of the `text_state` values, by value."""
TEXT_PRESENT, TEXT_NONE, TEXT_UNKNOWN = 0, 1, 2
"""`text_state` values: the panel has lettered text; it has none (known: `text` is empty
and the page vouches for it); its text is unknown (`text_known: false`, e.g. the analyzer
could not pair the detected panel with a VLM panel), so its empty `text` says nothing."""

_ZERO_PANEL_LOGS = 3
_zero_panel_logged = 0
_UNEXPECTED_LOGS = 5
_unexpected_logged = 0

# --------------------------------------------------------------------------- books and pages


def page_key(json_path: str | Path) -> tuple[str, int | None]:
    """(book, page number) from a page JSON's path, without reading it (`dataspec.keys`).

    `Saga/JPG4CBZ/0007.json` and `Saga/JPG4CBZ_0007.json` are both page 7 of `Saga/jpg4cbz`.
    """
    key = dataspec_page_key(str(json_path))
    return key.book, key.number


def split_by_book(
    keys: Sequence[tuple[str, int | None]], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Train and validation page indices; whole books go to validation (seeded).

    With a single book the split is by page. At least one page stays in training.
    """
    n = len(keys)
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    target = max(1, round(val_fraction * n))
    rng = random.Random(f"split:{seed}")
    sizes: dict[str, int] = defaultdict(int)
    for book, _ in keys:
        sizes[book] += 1
    books = sorted(sizes)
    if len(books) >= 2:
        rng.shuffle(books)
        val_books: set[str] = set()
        count = 0
        for book in books[:-1]:
            if count >= target:
                break
            val_books.add(book)
            count += sizes[book]
        val = [i for i, (book, _) in enumerate(keys) if book in val_books]
    else:
        val = sorted(rng.sample(range(n), min(target, n - 1)))
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


# --------------------------------------------------------------------------- images


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


# --------------------------------------------------------------------------- dataset


@dataclass
class PageMeta:
    """What a batch keeps about each page besides tensors."""

    index: int
    json_path: str
    image_path: str
    book: str
    number: int | None
    boxes: list[Box]
    """Clamped boxes in slot order (page pixels)."""
    panel_index: list[int]
    """Index of each slot's panel in the page's `panels` list."""
    panels_total: int
    """Panels on the page before keeping the first `max_panels` in reading order."""
    truncated_image: bool = False
    lenient: bool = False
    decode_scale: int = 1
    notes: tuple[str, ...] = ()
    """Codes of the lenient load's notes (what was coerced or dropped); empty when strict."""
    page_size: tuple[int, int] = (0, 0)
    """The image's (width, height); (0, 0) when it was not read (a page without panels)."""
    order_source: str | None = LAYOUT
    """Where the page's order labels come from: its `reading_order_source`, `LAYOUT`
    when it has no `reading_order` (the heuristic's), None for an order of unknown source."""
    look: np.ndarray | None = None
    """The page's look (`training.look.page_look`) when the dataset reads whole pages."""


@dataclass
class PageItem:
    """One loaded page: its panels in a (seeded) random slot order, with labels."""

    meta: PageMeta
    crops: torch.Tensor
    """(n, 3, S, S) uint8."""
    tokens: torch.Tensor
    """(n, T) int64 hashed text ids."""
    texts: list[str]
    comp: torch.Tensor
    """(n, 8) float32 composition features."""
    position: torch.Tensor
    """(n,) int64: reading position (0 = first) of the panel in each slot."""
    text_state: torch.Tensor
    """(n,) int64: `TEXT_PRESENT`, `TEXT_NONE` or `TEXT_UNKNOWN` (see `panel_text`)."""
    modality_mask: torch.Tensor
    """(n, 3) bool, columns `MODALITIES`: which inputs the model may use. Vision and layout
    are always on; text only for `TEXT_PRESENT` (an empty or unknown text is never fed)."""
    candidates: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 2), dtype=torch.int64))
    """(n, 2) int64: each slot's rank in the layout heuristic's order read left to right and
    read right to left (the two candidate orders the model weighs by the page's look)."""
    order_label: bool = True
    """The page's order is a training target (see `PageDataset(order_labels=...)`)."""
    direction: int = IGNORE
    """0: the label order is the left-to-right candidate, 1: the right-to-left one;
    `IGNORE` when it is both, neither, or no target."""
    page_crop: torch.Tensor | None = None
    """(3, S, S) uint8: the whole page, when the dataset was asked for page crops."""


def panel_text(panel: dataspec.Panel) -> tuple[str, int]:
    """(text fed to the text encoder, text state) of one panel.

    A panel whose text is unknown (`not panel.knows_text()`) gives "" and `TEXT_UNKNOWN`
    whatever its `text` holds; otherwise its lines joined by spaces, and `TEXT_PRESENT`
    or, when there are none, `TEXT_NONE`.
    """
    if not panel.knows_text():
        return "", TEXT_UNKNOWN
    text = " ".join(panel.text.lines())
    return text, TEXT_PRESENT if text.strip() else TEXT_NONE


def modality_mask(text_state: torch.Tensor) -> torch.Tensor:
    """(n, 3) bool `MODALITIES` mask for (n,) text states: text on only for present text."""
    mask = torch.ones((text_state.numel(), len(MODALITIES)), dtype=torch.bool)
    mask[:, 1] = text_state == TEXT_PRESENT
    return mask


SKIP_KINDS = ("page", "image", "boxes", "error")
"""Why a page was skipped: `page` the page file (unreadable, too large, not JSON, not a
page, image not found or outside the image roots), `image` its image (unreadable, not an
image, over `max_pixels`), `boxes` a panel box wholly outside the image, `error` anything
else (an exception no rule foresaw: logged with its traceback; please report it)."""


@dataclass
class SkippedPage:
    """A page that could not be used, and why (the message names the file)."""

    index: int
    json_path: str
    reason: str
    kind: str = "page"
    """One of `SKIP_KINDS`."""


class PageError(Exception):
    """A page file that neither strict nor lenient loading accepts."""


def _naming(path: str, message: str) -> str:
    """`message`, prefixed with `path` unless it already names the file."""
    return message if path in message else f"{path}: {message}"


class PageDataset(Dataset):  # type: ignore[type-arg]
    """DataSpec page files, read lazily: one page (JSON + image) per item.

    Items are `PageItem`, or `SkippedPage` for a page that cannot be loaded (never a
    stand-in page): whatever a page file or image holds, an item never raises. A key is an
    index or `(index, epoch)`; the slot order of panels is a permutation seeded by
    (seed, epoch, index), so items are deterministic.

    With `strict_paths`, images are resolved with `ImageResolver(image_root, confine=True)`:
    a page whose image resolves outside the image roots (an absolute path elsewhere, `..`,
    a symlink leading out) is skipped. Page files over `max_json_bytes` are skipped unread.
    `order_labels` chooses the pages whose order is a training target (`ORDER_LABELS`).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        image_root: str | Sequence[str] | None,
        config: ModelConfig,
        seed: int = 0,
        shuffle_slots: bool = True,
        fast_decode: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        allow_truncated: bool = True,
        reducing_gap: float | None = None,
        strict_paths: bool = False,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
        order_labels: str = "independent",
        page_crops: bool = False,
    ) -> None:
        if order_labels not in ORDER_LABELS:
            raise ValueError(f"order_labels must be one of {ORDER_LABELS}, got {order_labels!r}")
        if strict_paths and not dataspec.ImageResolver(image_root).roots:
            raise ValueError("strict_paths needs an image root to confine images to")
        self.paths = [str(p) for p in paths]
        self.keys = [page_key(p) for p in self.paths]
        self.image_root = image_root
        self.config = config
        self.seed = seed
        self.shuffle_slots = shuffle_slots
        self.fast_decode = fast_decode
        self.max_pixels = max_pixels
        self.allow_truncated = allow_truncated
        self.reducing_gap = reducing_gap
        self.strict_paths = strict_paths
        self.max_json_bytes = max_json_bytes
        self.page_crops = page_crops
        """Items also carry the whole page as one crop (`PageItem.page_crop`)."""
        self.order_labels = order_labels
        """`independent`: only pages ordered by a source in `INDEPENDENT_ORDER_SOURCES`
        are order targets; `any`: every page (the heuristic's orders included)."""
        self.tokenizer = HashTokenizer(config.vocab_size, config.max_tokens)
        self._resolver: dataspec.ImageResolver | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_resolver"] = None  # one per process; its lock cannot be pickled
        return state

    @property
    def resolver(self) -> dataspec.ImageResolver:
        """The one image resolver of this process (its root index is built on first need)."""
        if self._resolver is None:
            self._resolver = dataspec.ImageResolver(self.image_root, confine=self.strict_paths)
        return self._resolver

    def __len__(self) -> int:
        return len(self.paths)

    def load_page(self, index: int) -> tuple[dataspec.Page, tuple[str, ...] | None]:
        """(page with its image resolved, the lenient load's note codes or None when the
        strict load took it) or `PageError` naming the file."""
        path = self.paths[index]
        try:
            info = os.stat(path)
        except OSError as exc:
            raise PageError(f"{path}: cannot read: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise PageError(f"{path}: not a regular file")
        if info.st_size > self.max_json_bytes:
            raise PageError(
                f"{path}: {info.st_size} bytes is over the page-file limit of "
                f"{self.max_json_bytes} (raise --max_json_bytes to allow it)"
            )
        try:
            return dataspec.load(path, resolver=self.resolver), None
        except (dataspec.DataSpecError, OSError, ValueError) as strict:
            try:
                page, notes = dataspec.load_with_notes(path, resolver=self.resolver)
            except (dataspec.DataSpecError, OSError, ValueError) as lenient:
                message = str(strict)
                if str(lenient) != message:
                    message += f" (lenient load: {lenient})"
                raise PageError(_naming(path, message)) from None
            if any(n.code == "truncated" for n in notes):  # a page missing its last panels
                raise PageError(
                    _naming(path, f"{strict} (lenient load: the file is cut short)")
                ) from None
            return page, tuple(dict.fromkeys(n.code for n in notes))

    def __getitem__(self, key: int | tuple[int, int]) -> PageItem | SkippedPage:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        path = self.paths[index]
        try:
            return self._item(index, epoch)
        except PageError as exc:
            return SkippedPage(index, path, _naming(path, str(exc)), "page")
        except ImageError as exc:
            return SkippedPage(index, path, _naming(path, str(exc)), "image")
        except Exception as exc:  # one odd file must never stop a run: skip it, say why
            _log_unexpected(path, exc)
            reason = f"{path}: unexpected {type(exc).__name__}: {exc}"
            return SkippedPage(index, path, reason, "error")

    def _item(self, index: int, epoch: int) -> PageItem | SkippedPage:
        path = self.paths[index]
        page, notes = self.load_page(index)
        lenient = notes is not None
        cfg = self.config
        keep = page.order(rtl=cfg.rtl)[: cfg.max_panels]
        n = len(keep)
        book, number = self.keys[index]
        if n == 0:
            _log_zero_panels(path)
            page_crop, size, look = None, (0, 0), None
            if self.page_crops:
                whole = self._read(page.page_image_path, [])
                page_crop = torch.from_numpy(whole.pixels[0]).permute(2, 0, 1).contiguous()
                size, look = whole.page_size, whole.look
            empty = PageMeta(
                index,
                path,
                page.page_image_path,
                book,
                number,
                [],
                [],
                0,
                lenient=lenient,
                notes=notes or (),
                page_size=size,
                look=look,
            )
            return PageItem(
                empty,
                torch.zeros((0, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8),
                torch.zeros((0, cfg.max_tokens), dtype=torch.int64),
                [],
                torch.zeros((0, 8), dtype=torch.float32),
                torch.zeros((0,), dtype=torch.int64),
                torch.zeros((0,), dtype=torch.int64),
                torch.zeros((0, len(MODALITIES)), dtype=torch.bool),
                page_crop=page_crop,
            )
        try:
            crops = self._read(page.page_image_path, [page.panels[i].panel_coords for i in keep])
        except OutsideImageError as exc:
            panel = keep[exc.box_index]
            reason = f"{path}: panel {panel} {exc}"
            return SkippedPage(index, path, reason, "boxes")
        if self.shuffle_slots:
            position = np.random.default_rng([self.seed, epoch, index]).permutation(n)
        else:
            position = np.arange(n)
        read = [panel_text(page.panels[keep[p]]) for p in position]
        texts = [text for text, _ in read]
        text_state = torch.tensor([state for _, state in read], dtype=torch.int64)
        boxes = [crops.boxes[p] for p in position]
        source = _order_source(page)
        labelled = self.order_labels == "any" or source in INDEPENDENT_ORDER_SOURCES
        candidates, direction = order_candidates(crops.boxes, position)
        meta = PageMeta(
            index=index,
            json_path=path,
            image_path=page.page_image_path,
            book=book,
            number=number,
            boxes=boxes,
            panel_index=[keep[p] for p in position],
            panels_total=len(page.panels),
            truncated_image=crops.truncated,
            lenient=lenient,
            decode_scale=crops.scale,
            notes=notes or (),
            page_size=crops.page_size,
            order_source=source,
            look=crops.look,
        )
        page_crop = None
        if self.page_crops:
            page_crop = torch.from_numpy(crops.pixels[n]).permute(2, 0, 1).contiguous()
        pixels = torch.from_numpy(crops.pixels[position]).permute(0, 3, 1, 2).contiguous()
        return PageItem(
            meta,
            pixels,
            torch.from_numpy(self.tokenizer(texts)),
            texts,
            torch.from_numpy(composition_features(boxes, *crops.page_size)),
            torch.from_numpy(position.astype(np.int64)),
            text_state,
            modality_mask(text_state),
            candidates,
            labelled,
            direction if labelled else IGNORE,
            page_crop,
        )

    def _read(self, image_path: str, boxes: Sequence[Sequence[int]]) -> Crops:
        cfg = self.config
        return read_crops(
            image_path,
            boxes,
            cfg.image_size,
            letterbox=cfg.crop_mode == "letterbox",
            fast=self.fast_decode,
            max_pixels=self.max_pixels,
            allow_truncated=self.allow_truncated,
            reducing_gap=self.reducing_gap,
            whole_page=self.page_crops,
        )


def _order_source(page: dataspec.Page) -> str | None:
    if page.reading_order is None:
        return LAYOUT
    return page.reading_order_source


def order_candidates(boxes: Sequence[Box], position: np.ndarray) -> tuple[torch.Tensor, int]:
    """((n, 2) rank of each slot's panel in the layout order read left to right and right
    to left, the label's direction: 0 / 1 when the label order (`boxes` are in it) is only
    the left-to-right / right-to-left candidate, else `IGNORE`).

    `position[s]` is the label position of the panel in slot `s`."""
    n = len(boxes)
    ranks = np.zeros((n, 2), dtype=np.int64)
    same = []
    for col, rtl in enumerate((False, True)):
        order = dataspec.reading_order(list(boxes), rtl=rtl)
        ranks[order, col] = np.arange(n)
        same.append(order == list(range(n)))
    direction = 0 if same[0] and not same[1] else 1 if same[1] and not same[0] else IGNORE
    return torch.from_numpy(ranks[position]), direction


def _log_unexpected(path: str, exc: Exception) -> None:
    global _unexpected_logged
    if _unexpected_logged < _UNEXPECTED_LOGS:
        _unexpected_logged += 1
        log.warning("%s: unexpected error, page skipped", path, exc_info=exc)


def _log_zero_panels(path: str) -> None:
    global _zero_panel_logged
    if _zero_panel_logged < _ZERO_PANEL_LOGS:
        _zero_panel_logged += 1
        more = (
            " (further zero-panel pages are counted, not logged)"
            if (_zero_panel_logged == _ZERO_PANEL_LOGS)
            else ""
        )
        log.warning("%s: page has no panels; padded%s", path, more)


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Pages padded to `max_panels` slots; crops and tokens hold real panels only."""

    crops: torch.Tensor
    """(N, 3, S, S) uint8: the real panels, in row-major order of `panel_mask`."""
    tokens: torch.Tensor
    """(N, T) int64."""
    comp: torch.Tensor
    """(B, P, 8) float32; zeros in padding."""
    panel_mask: torch.Tensor
    """(B, P) bool: slot holds a real panel."""
    position: torch.Tensor
    """(B, P) int64 reading position; -1 in padding."""
    next_target: torch.Tensor
    """(B, P) int64: slot of the next panel, P for "end"; IGNORE in padding and on
    pages with fewer than two panels (nothing to choose)."""
    first_target: torch.Tensor
    """(B,) int64: slot of the first panel; IGNORE on pages with fewer than two panels."""
    pairs: torch.Tensor
    """(K, 3) int64 page-order examples (page a, page b, label): 0 = b follows a in the
    same book, 1 = the same pair swapped, 2 = b is from another book."""
    texts: list[str]
    pages: list[PageMeta]
    text_state: torch.Tensor
    """(B, P) int64: `TEXT_PRESENT`, `TEXT_NONE` or `TEXT_UNKNOWN`; -1 in padding."""
    modality_mask: torch.Tensor
    """(B, P, 3) bool, columns `MODALITIES` (vision, text, layout): the inputs the model
    may use for each panel; text is off unless the panel has known, non-empty text (so
    the tokens of an empty or unknown text never reach the model); all off in padding."""
    skipped: list[SkippedPage] = field(default_factory=list)
    candidates: torch.Tensor = field(
        default_factory=lambda: torch.zeros((0, 0, 2), dtype=torch.int64)
    )
    """(B, P, 2) int64: each slot's rank in the left-to-right and right-to-left layout
    orders; -1 in padding."""
    direction: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    """(B,) int64: 0 / 1 when the page's order label is the left-to-right / right-to-left
    candidate only, else `IGNORE`."""
    page_crops: torch.Tensor = field(
        default_factory=lambda: torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    )
    """(B, 3, S, S) uint8 whole pages, when the dataset gives them; else (0, 3, 1, 1)."""

    def __len__(self) -> int:
        return len(self.pages)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on `device`."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)

    def pin_memory(self) -> Batch:
        """A copy with every tensor in pinned memory (DataLoader `pin_memory=True`)."""
        pinned = {
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **pinned)


def page_pairs(pages: Sequence[PageMeta]) -> list[tuple[int, int, int]]:
    """Page-order examples among a batch's pages: for each a → a+1 of one book, the
    forward pair, the swapped pair, and a with a page of another book when there is one."""
    where = {(m.book, m.number): i for i, m in enumerate(pages) if m.number is not None}
    out: list[tuple[int, int, int]] = []
    for a, meta in enumerate(pages):
        if meta.number is None or not meta.boxes:
            continue
        b = where.get((meta.book, meta.number + 1))
        if b is None or not pages[b].boxes:
            continue
        out += [(a, b, 0), (b, a, 1)]
        others = [c for c, m in enumerate(pages) if m.book != meta.book and m.boxes]
        if others:
            out.append((a, others[a % len(others)], 2))
    return out


def collate(items: Sequence[PageItem | SkippedPage], max_panels: int) -> Batch:
    """Stack pages into a `Batch`; skipped pages are listed, not stacked."""
    pages = [it for it in items if isinstance(it, PageItem)]
    skipped = [it for it in items if isinstance(it, SkippedPage)]
    b, p = len(pages), max_panels
    comp = torch.zeros((b, p, 8), dtype=torch.float32)
    mask = torch.zeros((b, p), dtype=torch.bool)
    position = torch.full((b, p), -1, dtype=torch.int64)
    next_target = torch.full((b, p), IGNORE, dtype=torch.int64)
    first_target = torch.full((b,), IGNORE, dtype=torch.int64)
    text_state = torch.full((b, p), -1, dtype=torch.int64)
    modalities = torch.zeros((b, p, len(MODALITIES)), dtype=torch.bool)
    candidates = torch.full((b, p, 2), -1, dtype=torch.int64)
    direction = torch.full((b,), IGNORE, dtype=torch.int64)
    for row, item in enumerate(pages):
        n = item.position.numel()
        comp[row, :n] = item.comp
        mask[row, :n] = True
        position[row, :n] = item.position
        text_state[row, :n] = item.text_state
        modalities[row, :n] = item.modality_mask
        if item.candidates.shape[0] == n:
            candidates[row, :n] = item.candidates
        direction[row] = item.direction
        if n >= 2 and item.order_label:
            slot_of = torch.empty(n, dtype=torch.int64)
            slot_of[item.position] = torch.arange(n)
            nxt = item.position + 1
            next_target[row, :n] = torch.where(nxt < n, slot_of[nxt.clamp(max=n - 1)], p)
            first_target[row] = slot_of[0]
    if pages:
        crops = torch.cat([it.crops for it in pages])
        tokens = torch.cat([it.tokens for it in pages])
    else:
        crops = torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
        tokens = torch.zeros((0, 1), dtype=torch.int64)
    metas = [it.meta for it in pages]
    pairs = page_pairs(metas)
    whole = [it.page_crop for it in pages]
    page_crops = (
        torch.stack([c for c in whole if c is not None])
        if pages and all(c is not None for c in whole)
        else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    )
    return Batch(
        crops=crops,
        tokens=tokens,
        comp=comp,
        panel_mask=mask,
        position=position,
        next_target=next_target,
        first_target=first_target,
        pairs=torch.tensor(pairs, dtype=torch.int64).reshape(-1, 3),
        texts=[t for it in pages for t in it.texts],
        pages=metas,
        text_state=text_state,
        modality_mask=modalities,
        skipped=skipped,
        candidates=candidates,
        direction=direction,
        page_crops=page_crops,
    )


class Collate:
    """A picklable `collate_fn` for a given `max_panels`."""

    def __init__(self, max_panels: int) -> None:
        self.max_panels = max_panels

    def __call__(self, items: Sequence[PageItem | SkippedPage]) -> Batch:
        return collate(items, self.max_panels)


# --------------------------------------------------------------------------- sampling


class PagePairBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of `(index, epoch)` keys in which consecutive pages of a book sit together.

    Each book's pages (by number) are cut into runs of consecutive numbers and the runs
    into pairs (the pairing offset changes with the epoch); pairs and left-over pages are
    shuffled (seed, epoch) and packed into batches. Every page appears once per epoch.
    With `world_size > 1` each rank gets every world_size-th batch; with `pad` (training)
    the list is padded by repetition so that all ranks take the same number of steps,
    without it (evaluation) every page is seen exactly once over all ranks.
    `set_epoch(epoch, start)` resumes an epoch at its `start`-th batch (of this rank).
    """

    def __init__(
        self,
        keys: Sequence[tuple[str, int | None]],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.keys = list(keys)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.pad = pad
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch whose order `__iter__` yields, from its `start`-th batch on
        (a mid-epoch resume: the batches before it are not loaded again)."""
        if start < 0:
            raise ValueError("start must be >= 0")
        self.epoch = epoch
        self.start = start

    def _units(self, rng: random.Random) -> list[list[int]]:
        books: dict[str, list[int]] = defaultdict(list)
        for i, (book, _) in enumerate(self.keys):
            books[book].append(i)
        units: list[list[int]] = []
        for book in sorted(books):
            pages = sorted(
                books[book], key=lambda i: (self.keys[i][1] is None, self.keys[i][1] or 0, i)
            )
            runs: list[list[int]] = []
            for i in pages:
                num, prev = self.keys[i][1], self.keys[runs[-1][-1]][1] if runs else None
                if runs and num is not None and prev is not None and num == prev + 1:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            for run in runs:
                start = rng.randint(0, 1) if self.shuffle and len(run) > 2 else 0
                if start:
                    units.append(run[:1])
                units.extend(run[j : j + 2] for j in range(start, len(run), 2))
        if self.shuffle:
            rng.shuffle(units)
        else:
            units.sort(key=lambda u: u[0])
        return units

    def batches(self) -> list[list[int]]:
        """This rank's batches of page indices for the current epoch."""
        rng = random.Random(f"batches:{self.seed}:{self.epoch}")
        out = _pack(self._units(rng), self.batch_size)
        if self.world_size > 1 and out:
            if self.pad:
                total = math.ceil(len(out) / self.world_size) * self.world_size
                out = [out[i % len(out)] for i in range(total)]
            out = out[self.rank :: self.world_size]
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.batches()[self.start :]:
            yield [(i, self.epoch) for i in batch]

    def __len__(self) -> int:
        if not self.pad:
            return len(self.batches())
        return math.ceil(math.ceil(len(self.keys) / self.batch_size) / self.world_size)


def _pack(units: list[list[int]], size: int) -> list[list[int]]:
    """Units (pairs and single pages) into batches of `size`, in order; a pair that would
    straddle two batches gives way to the next unused single page when there is one."""
    used = [False] * len(units)
    singles = [k for k, u in enumerate(units) if len(u) == 1]
    next_single = 0
    out: list[list[int]] = []
    cur: list[int] = []
    for k, unit in enumerate(units):
        if used[k]:
            continue
        used[k] = True
        room = size - len(cur)
        if len(unit) > room:
            while next_single < len(singles) and used[singles[next_single]]:
                next_single += 1
            if next_single < len(singles):
                used[singles[next_single]] = True
                out.append(cur + units[singles[next_single]])
                cur = list(unit)
            else:
                out.append(cur + unit[:room])
                cur = unit[room:]
        else:
            cur += unit
        if len(cur) == size:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out
