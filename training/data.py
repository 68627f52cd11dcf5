"""Lazy page loading: one DataSpec page → panel crops, text ids, composition features,
each panel's text state and modality mask (an unknown or empty text is masked, never fed
as text) and reading-order labels. The crops are cut in `crops`; batches and the book-aware
sampler are in `batches`.

Loading, image resolution and reading order all come from `dataspec`:
`dataspec.load(path, resolver=...)` strictly, else `lenient=True` (counted);
one `dataspec.ImageResolver` per process; `page.order(rtl=...)`.
"""

from __future__ import annotations

import logging
import os
import random
import stat
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

import dataspec
from dataspec.keys import page_key as dataspec_page_key

from .config import ModelConfig
from .crops import (
    DEFAULT_MAX_PIXELS,
    Box,
    Crops,
    ImageError,
    OutsideImageError,
    composition_features,
    read_crops,
)
from .text import HashTokenizer

log = logging.getLogger(__name__)
DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024
"""Page files larger than this are skipped unread (a real page is a few kB)."""

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
