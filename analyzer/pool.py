"""Planning and running stage: page order, shard, output names, chunks, worker pool.

Pages are sorted by image path (`sort_key`), so the order never depends on the input
order or on the number of workers; a shard takes its slice of that order. `Plan` cuts
pages into chunks that carry only what a worker needs; `Executor` runs them in this
process or in a "spawn" pool and gives the results back in chunk order.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dataspec.keys import norm_path

from .coco import CocoPages
from .emit import collision_key, output_name
from .manifest import Manifest
from .match import MatchResult
from .page import Chunk, PageResult, Task, WorkerConfig, book_of, init_worker, process_chunk

if TYPE_CHECKING:
    from .run import EmitOptions

__all__ = ["CHUNK_PAGES", "Executor", "Plan", "output_targets", "shard_slice", "sort_key"]

CHUNK_PAGES = 400
"""Pages per worker task."""


def sort_key(coco: CocoPages, i: int) -> tuple[str, str, str, str]:
    """Where page `i` sorts: by image path (normalized first), then by id."""
    return (norm_path(coco.paths[i]), coco.paths[i], type(coco.ids[i]).__name__, str(coco.ids[i]))


def shard_slice(
    n: int, shard: tuple[int, int] | None, books: Sequence[str] = ()
) -> tuple[int, int]:
    """The `[lo, hi)` range of the sorted pages that shard `(index, count)` runs.

    With `books` (the book of each sorted page), both ends move on to the start of the
    next book, so no book is split between shards (its pages share a reading direction).
    """
    if shard is None:
        return 0, n
    index, count = shard

    def start(at: int) -> int:
        while books and 0 < at < n and books[at] == books[at - 1]:
            at += 1
        return at

    return start(index * n // count), start((index + 1) * n // count)


def output_targets(
    order: Sequence[int], coco: CocoPages, match: MatchResult, emit: EmitOptions
) -> tuple[dict[int, str], dict[int, str]]:
    """Output name per matched page, and `output_collision` for a name taken earlier."""
    names: dict[int, str] = {}
    seen: set[str] = set()
    skips: dict[int, str] = {}
    for page in order:
        vlm = match.vlm[page]
        if vlm is None:
            continue
        name = output_name(
            emit.naming, vlm_rel=vlm.rel, image_path=coco.paths[page], image_id=coco.ids[page]
        )
        names[page] = name
        key = collision_key(name)
        if key in seen:
            skips[page] = "output_collision"
        seen.add(key)
    return names, skips


@dataclass
class Plan:
    """Everything a chunk needs besides the arrays: matches, output names, pre-set skips."""

    coco: CocoPages
    match: MatchResult
    names: dict[int, str]
    pre_skip: dict[int, str]
    manifest: Manifest | None = None

    def chunks(
        self, pages: Sequence[int], emit: bool, priors: dict[int, float | None] | None = None
    ) -> Iterator[Chunk]:
        """`pages` (in that order) cut into chunks of about `CHUNK_PAGES`, whole books.

        A chunk ends at a book's end once it holds `CHUNK_PAGES` pages; a longer book is
        cut every `CHUNK_PAGES` of its own pages, so the cuts never depend on where the run
        (or shard) starts. `priors`: each page's right-to-left prior from an earlier pass.
        """
        coco, match, manifest = self.coco, self.match, self.manifest
        priors = priors or {}
        for part in _cut(pages, [book_of(coco.paths[p]) for p in pages]):
            spans = [(int(coco.offsets[p]), int(coco.offsets[p + 1])) for p in part]
            tasks = []
            for p in part:
                vlm = match.vlm[p]
                tasks.append(
                    Task(
                        page=p,
                        image_id=coco.ids[p],
                        image_path=coco.paths[p],
                        width=int(coco.sizes[p, 0]),
                        height=int(coco.sizes[p, 1]),
                        vlm_path=vlm.path if vlm is not None else None,
                        tier=match.tier[p],
                        key=match.key[p],
                        target=self.names.get(p),
                        pre_skip=self.pre_skip.get(p),
                        manifest_image=(
                            manifest.image_for(vlm.rel)
                            if manifest is not None and vlm is not None
                            else None
                        ),
                        rtl_prior=priors.get(p),
                    )
                )
            rows, offsets = _gather(spans)
            trows, toffsets = _gather([coco.text_span(p) for p in part])
            crows, coffsets = _gather([coco.char_span(p) for p in part])
            yield Chunk(
                tasks,
                offsets,
                coco.boxes[rows],
                coco.scores[rows],
                emit,
                toffsets,
                coco.text_boxes[trows],
                coco.text_scores[trows],
                coffsets,
                coco.char_boxes[crows],
                coco.char_scores[crows],
            )


def _gather(spans: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of every `(first, end)` span, in order; each span's offsets into them)."""
    rows = np.concatenate(
        [np.arange(lo, hi, dtype=np.int64) for lo, hi in spans] or [np.zeros(0, np.int64)]
    )
    offsets = np.zeros(len(spans) + 1, dtype=np.int64)
    np.cumsum([hi - lo for lo, hi in spans], out=offsets[1:])
    return rows, offsets


def _cut(pages: Sequence[int], books: Sequence[str]) -> Iterator[Sequence[int]]:
    start = in_book = 0
    for at in range(1, len(pages) + 1):
        new_book = at == len(pages) or books[at] != books[at - 1]
        in_book = 0 if new_book else in_book + 1
        full = at - start >= CHUNK_PAGES
        if at == len(pages) or (new_book and full) or (not new_book and in_book % CHUNK_PAGES == 0):
            yield pages[start:at]
            start = at


class Executor:
    """Runs chunks in this process (1 worker) or in a pool; results come in chunk order."""

    def __init__(self, config: WorkerConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> Executor:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(self.workers, initializer=init_worker, initargs=(self.config,))
        else:
            init_worker(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            if exc[0] is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()

    def map(self, chunks: Iterable[Chunk]) -> Iterator[list[PageResult]]:
        """Results of each chunk, in order; at most 3 chunks per worker in flight."""
        if self.pool is None:
            for chunk in chunks:
                yield process_chunk(chunk)
            return
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(self.pool.apply_async(process_chunk, (chunk,)))
            if len(pending) >= 3 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
