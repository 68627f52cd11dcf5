"""Batches: pages padded to `max_panels` slots (`collate`, `Collate`), and the sampler that
keeps consecutive pages of a book side by side (for the page-order objective)."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch.utils.data import Sampler

from .data import IGNORE, MODALITIES, PageItem, PageMeta, SkippedPage

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
