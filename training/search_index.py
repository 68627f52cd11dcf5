"""Nearest-neighbour search over one kind of vector in an embedding store.

Cosine similarity (vectors unit-normalised). A store with at most `EXACT_BELOW` vectors
of a kind is searched exactly in memory (numpy); a larger one through a FAISS index built
once, streamed from the store a chunk at a time, and saved beside it as
`EMB/index/<kind>.faiss` with the (page row, slot) of each vector (`<kind>.ids.npy`) and
what it was built from (`<kind>.json`: the store's checkpoint and size, the factory); an
index that no longer matches its store is rebuilt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataspec.io import atomic_open, atomic_write_bytes

from .data import TEXT_PRESENT
from .store import Store

log = logging.getLogger(__name__)

KINDS = {
    "page": "page_embedding",
    "page_image": "page_image",
    "page_look": "page_look",
    "panel": "panel_embedding",
    "panel_vision": "panel_vision",
    "panel_text": "panel_text",
}
"""Searchable kinds → their store array. Page kinds have one vector per page; panel kinds
one per filled slot (`panel_text`: only panels whose text is present)."""

EXACT_BELOW = 200_000
"""Kinds with at most this many vectors are searched exactly."""
DEFAULT_FACTORY = "HNSW32,Flat"
"""FAISS index factory for larger kinds (inner product on unit vectors)."""
HNSW_EF_SEARCH = 128
EXACT_BLOCK = 1 << 24
"""Scores an exact search holds at once (queries x vectors): 64 MiB of float32."""
_SLOT_KEYS = 1 << 16
"""Slots per row in `VectorIndex.position`'s keys (panel_index is int16: slots < 2**15)."""


@dataclass(frozen=True)
class Hit:
    """One result: the page row in the store, the panel slot (None for a page), cosine."""

    row: int
    slot: int | None
    score: float


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def is_panel(kind: str) -> bool:
    """The kind has one vector per panel slot."""
    return kind.startswith("panel")


def _blocks(store: Store, kind: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(unit vectors, page rows, slots) of `kind`, one storage chunk at a time."""
    name = KINDS[kind]
    for start, block in store.chunks(name):
        rows = np.arange(start, start + block.shape[0], dtype=np.int64)
        if not is_panel(kind):
            yield normalise(block), rows, np.full(rows.shape, -1, np.int64)
            continue
        keep = store.rows("panel_mask", start, start + block.shape[0])
        if kind == "panel_text":
            states = store.rows("panel_text_state", start, start + block.shape[0])
            keep = keep & (states == TEXT_PRESENT)
        page, slot = np.nonzero(keep)
        yield normalise(block[page, slot]), rows[page], slot.astype(np.int64)


def count(store: Store, kind: str) -> int:
    """Vectors of `kind` in the store."""
    if not is_panel(kind):
        return store.n_pages
    total = 0
    for start, mask in store.chunks("panel_mask"):
        if kind == "panel_text":
            states = store.rows("panel_text_state", start, start + mask.shape[0])
            mask = mask & (states == TEXT_PRESENT)
        total += int(mask.sum())
    return total


class VectorIndex:
    """The vectors of one kind with their (page row, slot) ids; exact or FAISS."""

    def __init__(
        self, kind: str, ids: np.ndarray, vectors: np.ndarray | None, faiss_index: Any = None
    ) -> None:
        self.kind = kind
        self.ids = ids
        """(n, 2) int64: page row, slot (-1 for page kinds)."""
        self.vectors = vectors
        self.faiss_index = faiss_index
        self._keys: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def exact(self) -> bool:
        """Searched exactly (no FAISS index)."""
        return self.faiss_index is None

    @classmethod
    def load(
        cls,
        store: Store,
        kind: str,
        *,
        exact_below: int = EXACT_BELOW,
        factory: str = DEFAULT_FACTORY,
        index_dir: Path | None = None,
    ) -> VectorIndex:
        """Exact for small kinds; else the saved FAISS index (built and saved if missing
        or stale) under `index_dir` (default: `index/` beside the store)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")
        n = count(store, kind)
        if n <= exact_below:
            parts = list(_blocks(store, kind))
            vectors = (
                np.concatenate([p[0] for p in parts])
                if parts
                else np.zeros((0, store.dim), np.float32)
            )
            ids = _ids(parts)
            return cls(kind, ids, vectors)
        folder = index_dir or store.path.parent / "index"
        return cls._faiss(store, kind, n, factory, folder)

    @classmethod
    def _faiss(cls, store: Store, kind: str, n: int, factory: str, folder: Path) -> VectorIndex:
        import faiss

        made_from = {
            "store": str(store.path),
            "fingerprint": store.attrs["fingerprint"],
            "pages": store.n_pages,
            "vectors": n,
            "kind": kind,
            "factory": factory,
        }
        base = folder / kind
        meta = base.with_suffix(".json")
        if meta.exists() and json.loads(meta.read_text("utf-8")) == made_from:
            index = faiss.read_index(str(base.with_suffix(".faiss")))
            ids = np.load(base.with_suffix(".ids.npy"))
            _tune(index)
            return cls(kind, ids, None, index)
        log.info(
            "building a %s index of %d %s vectors (once; saved in %s)", factory, n, kind, folder
        )
        index = faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT)
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if not index.is_trained:
            sample = _training_sample(store, kind, max(50_000, 64 * 256))
            index.train(sample)
        for vectors, rows, slots in _blocks(store, kind):
            index.add(vectors)
            parts.append((np.zeros((0, 0), np.float32), rows, slots))
        ids = _ids(parts)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = base.with_suffix(".faiss.tmp")
        faiss.write_index(index, str(tmp))
        tmp.replace(base.with_suffix(".faiss"))
        with atomic_open(base.with_suffix(".ids.npy"), "wb") as fh:
            np.save(fh, ids)
        atomic_write_bytes(meta, json.dumps(made_from, indent=1).encode())
        _tune(index)
        return cls(kind, ids, None, index)

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """The `k` nearest vectors to each query row (cosine), best first."""
        q = normalise(np.atleast_2d(queries))
        k = min(k, len(self))
        if k <= 0:
            return [[] for _ in range(q.shape[0])]
        if self.faiss_index is not None:
            scores, found = self.faiss_index.search(q, k)
        else:
            assert self.vectors is not None
            step = max(1, EXACT_BLOCK // max(1, len(self)))  # queries per block of scores
            parts = [_exact_top(q[i : i + step], self.vectors, k) for i in range(0, len(q), step)]
            found = np.concatenate([f for f, _ in parts])
            scores = np.concatenate([s for _, s in parts])
        return [
            [self._hit(int(i), float(s)) for i, s in zip(f, sc, strict=True) if i >= 0]
            for f, sc in zip(found, scores, strict=True)
        ]

    def scores(self, query: np.ndarray, ids: Sequence[tuple[int, int | None]]) -> np.ndarray:
        """Cosine of `query` with the vectors of the given (page row, slot) ids (0 for an
        id this kind lacks: a panel without text in `panel_text`)."""
        q = normalise(np.atleast_2d(query))[0]
        out = np.zeros(len(ids), np.float32)
        for j, (row, slot) in enumerate(ids):
            at = self.position(row, slot)
            if at is None:
                continue
            if self.vectors is not None:
                out[j] = float(self.vectors[at] @ q)
            else:
                out[j] = float(self.faiss_index.reconstruct(at) @ q)
        return out

    def position(self, row: int, slot: int | None) -> int | None:
        """Where the vector of (page row, slot) lies in this index, or None."""
        # ids are in (row, slot) order, as the store's chunks are read: binary search on
        # one sortable key per id, made on first need (no per-id Python objects)
        width = _SLOT_KEYS
        if self._keys is None:
            self._keys = self.ids[:, 0] * width + self.ids[:, 1] + 1
        key = row * width + (-1 if slot is None else slot) + 1
        at = int(np.searchsorted(self._keys, key))
        return at if at < len(self._keys) and self._keys[at] == key else None

    def _hit(self, at: int, score: float) -> Hit:
        row, slot = (int(v) for v in self.ids[at])
        return Hit(row, None if slot < 0 else slot, score)


def _exact_top(q: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores) of the `k` best vectors for each query row, best first (ties:
    the lower position)."""
    sims = q @ vectors.T
    found = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sims, found, 1)
    order = np.lexsort((found, -part), axis=1)
    return np.take_along_axis(found, order, 1), np.take_along_axis(part, order, 1)


def _ids(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    if not parts:
        return np.zeros((0, 2), np.int64)
    return np.stack(
        [np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])], 1
    )


def _training_sample(store: Store, kind: str, n: int) -> np.ndarray:
    """Up to `n` vectors spread evenly over the store, for indexes that need training."""
    step = max(1, count(store, kind) // n)
    taken = [vectors[::step] for vectors, _, _ in _blocks(store, kind)]
    return np.ascontiguousarray(np.concatenate(taken)[:n])


def _tune(index: Any) -> None:
    hnsw = getattr(index, "hnsw", None)
    if hnsw is not None:
        hnsw.efSearch = HNSW_EF_SEARCH
