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
from typing import Any

import numpy as np

from dataspec.keys import norm_path

from .coco import CocoPages
from .manifest import Manifest
from .match import MatchResult
from .options import EmitOptions
from .page import init_worker, process_chunk
from .page_files import begin_output_run, collision_key, end_output_run, output_name
from .pairing import book_of
from .work import Chunk, PageResult, Task, WorkerConfig

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
        paths, ids, vlms, tiers, keys = coco.paths, coco.ids, match.vlm, match.tier, match.key
        target, pre_skip, prior = self.names.get, self.pre_skip.get, (priors or {}).get
        for part in _cut(pages, [book_of(paths[p]) for p in pages]):
            at = np.asarray(part, dtype=np.int64)
            tasks = []
            for p, (width, height) in zip(part, coco.sizes[at].tolist(), strict=True):
                vlm = vlms[p]
                tasks.append(
                    Task(
                        page=p,
                        image_id=ids[p],
                        image_path=paths[p],
                        width=width,
                        height=height,
                        vlm_path=vlm.path if vlm is not None else None,
                        tier=tiers[p],
                        key=keys[p],
                        target=target(p),
                        pre_skip=pre_skip(p),
                        manifest_image=(
                            manifest.image_for(vlm.rel)
                            if manifest is not None and vlm is not None
                            else None
                        ),
                        rtl_prior=prior(p),
                    )
                )
            rows, offsets = _gather(coco.offsets, at)
            trows, toffsets = _gather(coco.text_offsets, at)
            crows, coffsets = _gather(coco.char_offsets, at)
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


def _gather(offsets: np.ndarray, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the rows of `pages` in arrays grouped by `offsets`, in page order; each page's
    offsets into those rows), in a few array operations, not one per page."""
    first = offsets[pages]
    counts = offsets[pages + 1] - first
    out = np.zeros(len(pages) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    rows = np.arange(out[-1], dtype=np.int64) + np.repeat(first - out[:-1], counts)
    return rows, out


def _cut(pages: Sequence[int], books: Sequence[str]) -> Iterator[Sequence[int]]:
    start = in_book = 0
    for at in range(1, len(pages) + 1):
        new_book = at == len(pages) or books[at] != books[at - 1]
        in_book = 0 if new_book else in_book + 1
        full = at - start >= CHUNK_PAGES
        if at == len(pages) or (new_book and full) or (not new_book and in_book % CHUNK_PAGES == 0):
            yield pages[start:at]
            start = at


def _start(config: WorkerConfig) -> None:
    """Make this process a worker of a new run (in-process, or a pool worker's first chunk)."""
    begin_output_run()
    init_worker(config)


def _warm() -> None:
    """A pool worker's initializer: nothing to do, but naming it makes the worker import
    this module (so the analyzer and dataspec) as soon as it starts."""


_SET_UP: list[WorkerConfig] = []
"""The config this pool worker was set up with (empty until its first chunk)."""


def _run_chunk(config: WorkerConfig, chunk: Chunk) -> list[PageResult]:
    """A pool task: set the worker up with the run's config on its first chunk, then
    process the chunk."""
    if not _SET_UP or _SET_UP[0] != config:
        _start(config)
        _SET_UP[:] = [config]
    return process_chunk(chunk)


class Executor:
    """Runs chunks in this process (1 worker) or in a pool; results come in chunk order.

    A pool starts on entering, so its workers import the analyzer while the main process
    reads the inputs; `start` then gives the run's `WorkerConfig` (sent with each chunk,
    taken by each worker with its first).
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.config: WorkerConfig | None = None
        self.pool: Any = None

    def __enter__(self) -> Executor:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(self.workers, initializer=_warm)
        return self

    def start(self, config: WorkerConfig) -> None:
        """The run's config: in-process, this process becomes the worker now."""
        self.config = config
        if self.pool is None:
            _start(config)

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            if exc[0] is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()
        elif self.config is not None:
            end_output_run()

    def map(self, chunks: Iterable[Chunk]) -> Iterator[list[PageResult]]:
        """Results of each chunk, in order; at most 3 chunks per worker in flight."""
        if self.config is None:
            raise RuntimeError("Executor.start(config) comes before map")
        if self.pool is None:
            for chunk in chunks:
                yield process_chunk(chunk)
            return
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(self.pool.apply_async(_run_chunk, (self.config, chunk)))
            if len(pending) >= 3 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
