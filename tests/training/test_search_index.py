"""`VectorIndex` exact search: many queries at once, in blocks, rank as a full sort does."""

from __future__ import annotations

import numpy as np

from training.search_index import EXACT_BLOCK, VectorIndex, normalise


def test_exact_search_in_query_blocks_equals_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    n, queries = 20_000, 1_000
    assert n * queries > EXACT_BLOCK  # the queries are scored in more than one block
    vectors = normalise(rng.standard_normal((n, 16)).astype(np.float32))
    vectors[7] = vectors[3]  # a tie: the lower position ranks first
    ids = np.stack([np.arange(n), np.full(n, -1)], axis=1).astype(np.int64)
    index = VectorIndex("page", ids, vectors)
    q = rng.standard_normal((queries, 16)).astype(np.float32)
    q[0] = vectors[3]
    hits = index.search(q, 5)
    sims = normalise(q) @ vectors.T
    for row in (0, 1, 499, 500, 998, 999):
        want = sorted(range(n), key=lambda j: (-sims[row, j], j))[:5]
        assert [h.row for h in hits[row]] == want
        assert np.allclose([h.score for h in hits[row]], sims[row, want], atol=1e-6)
    assert [h.row for h in hits[0][:2]] == [3, 7]
    assert len(hits) == queries and all(h.slot is None for h in hits[0])
