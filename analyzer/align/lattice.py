"""The pair-HMM of the `order` method, solved for many lattices at once.

A lattice is one page read in one direction: detections (rows, reading order) against VLM
panels (columns, their order). A step ends at a cell (i, j) after consuming `STEPS[s]`
detections and panels: pair, skip a detection, skip a VLM panel, detector merge (one
detection, two panels), VLM merge (two detections, one panel). Forward (log-sum), Viterbi
(max) and backward run over the anti-diagonals of the grid, every cell of a diagonal and
every lattice of a batch in one numpy operation: a step always comes from an earlier
diagonal. The sweeps hold the grid skewed (a diagonal per row), so a diagonal and its
steps' sources are slices rather than gathers. Lattices of similar size are solved
together (`solve_many`), padded with impossible (-inf) steps that change nothing on the
real cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

STEPS = ((1, 1), (1, 0), (0, 1), (1, 2), (2, 1))
"""(detections, VLM panels) one step takes: pair, skip det, skip VLM, det merge, VLM merge."""
POSTERIOR_FLOOR = -20.0
"""A step's log posterior below this is 0 (under 2e-9: it adds nothing to a confidence)."""
PAD = 2
"""Cell (i, j) sits at [i + 2, j + 2] of the padded arrays: a step's source may lie at
i - 2 or j - 2, and its target at n + 2 or m + 2, both -inf."""
_BUCKET = 4
"""Lattices are solved together when their sizes round up to the same multiple of this."""
_BATCH = 128
"""Most lattices solved in one numpy batch: more saves little time and holds more memory
(a batch's arrays grow with it: about 8 KB per lattice and cell column)."""
_NEG = -math.inf


class Lattice(Protocol):
    """What the solver needs of a lattice besides its weights (`Build` makes those)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(n detections, m VLM panels)."""
        ...

    @property
    def prefix(self) -> bool:
        """The reply was cut short: it may end with detections to spare (their `tail`)."""
        ...


L = TypeVar("L", bound=Lattice)
Build = Callable[[Sequence[L]], tuple[np.ndarray, np.ndarray]]
"""A batch's log step weights from its lattices: `weight` (5, b, big_n + 2 * PAD + 1,
big_m + 2 * PAD + 1), `weight[s][k, i + PAD, j + PAD]` the step of kind s ending at (i, j)
of lattice k, -inf where there is none (outside the lattice, and at its edges: a pair needs
i, j >= 1, a skip of a detection i >= 1, of a panel j >= 1, a detector merge j >= 2, a VLM
merge i >= 2); and `tail` (b, big_n), the log weight of leaving detection i unpaired after
the reply's last panel (read when `prefix`)."""


@dataclass(frozen=True)
class Solution:
    """A solved lattice."""

    log_z: float
    """log of the total weight of every path."""
    post: np.ndarray
    """(5, n + 1, m + 1): posterior of a step of kind s ending at (i, j); 0 under
    `POSTERIOR_FLOOR`."""
    path: list[tuple[int, int, int]]
    """The most probable path's steps (s, i, j), in order."""


def solve_many(lattices: Sequence[L], build: Build[L]) -> list[Solution]:
    """Every lattice solved, in the order given; `build` makes each batch's weights."""
    out: list[Solution | None] = [None] * len(lattices)
    groups: dict[tuple[int, int], list[int]] = {}
    for k, w in enumerate(lattices):
        n, m = w.shape
        groups.setdefault((-(-n // _BUCKET), -(-m // _BUCKET)), []).append(k)
    for members in groups.values():
        for at in range(0, len(members), _BATCH):
            ids = members[at : at + _BATCH]
            batch = [lattices[k] for k in ids]
            for k, solution in zip(ids, _solve(batch, *build(batch)), strict=True):
                out[k] = solution
    return [s for s in out if s is not None]


def _lse(stack: np.ndarray) -> np.ndarray:
    """log Σ exp over axis 0, -inf where every term is -inf."""
    top = stack.max(0)
    safe = np.where(top > _NEG, top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.exp(stack - safe).sum(0))
    return np.where(top > _NEG, safe + total, _NEG)


def _solve(ws: Sequence[Lattice], weight: np.ndarray, tail_w: np.ndarray) -> list[Solution]:
    b = len(ws)
    big_n = max(w.shape[0] for w in ws)
    big_m = max(w.shape[1] for w in ws)
    p = PAD
    # The sweeps run on the skewed layout [:, I + J, I] of padded cell (I, J): a diagonal,
    # and each step's sources on an earlier one, are then plain slices.
    rows_all, cols_all = weight.shape[2:]  # big_n + 2 * PAD + 1, big_m + 2 * PAD + 1
    diag = np.arange(rows_all + cols_all - 1)[:, None]
    row = np.arange(rows_all)[None, :]
    w_skew = weight[:, :, row, np.clip(diag - row, 0, cols_all - 1)]  # (5, b, D, I)
    skew = (b, rows_all + cols_all - 1, rows_all)
    fwd = np.full(skew, _NEG)
    best = np.full(skew, _NEG)
    back = np.full(skew, -1, dtype=np.int8)
    fwd[:, 2 * p, p] = best[:, 2 * p, p] = 0.0
    for d in range(1, big_n + big_m + 1):
        lo, hi = max(0, d - big_m) + p, min(big_n, d) + p + 1  # the diagonal's rows
        dd = d + 2 * p
        steps = w_skew[:, :, dd, lo:hi]  # (5, b, cells): weights of the steps into each cell
        src_f = np.stack([fwd[:, dd - di - dj, lo - di : hi - di] for di, dj in STEPS])
        src_b = np.stack([best[:, dd - di - dj, lo - di : hi - di] for di, dj in STEPS])
        fwd[:, dd, lo:hi] = _lse(src_f + steps)
        cand = src_b + steps
        best[:, dd, lo:hi] = cand.max(0)
        back[:, dd, lo:hi] = cand.argmax(0)
    tail = np.zeros((b, big_n + 1))  # log weight of leaving detections i.. unpaired at the end
    for i in range(big_n - 1, -1, -1):
        tail[:, i] = tail[:, i + 1] + tail_w[:, i]
    bwd = np.full(skew, _NEG)
    log_z = np.zeros(b)
    ends: list[list[tuple[int, int]]] = []
    for k, w in enumerate(ws):
        n, m = w.shape
        here = [(n, m)] + ([(i, m) for i in range(n)] if w.prefix else [])
        ends.append(here)
        values = [float(fwd[k, i + j + 2 * p, i + p] + tail[k, i]) for i, j in here]
        top = max(values)
        log_z[k] = top if top == _NEG else top + math.log(sum(math.exp(v - top) for v in values))
        for i, j in here:
            bwd[k, i + j + 2 * p, i + p] = tail[k, i]
    for d in range(big_n + big_m, -1, -1):
        lo, hi = max(0, d - big_m) + p, min(big_n, d) + p + 1
        dd = d + 2 * p
        terms = [bwd[:, dd, lo:hi]]
        for s, (di, dj) in enumerate(STEPS):
            at = dd + di + dj
            terms.append(bwd[:, at, lo + di : hi + di] + w_skew[s, :, at, lo + di : hi + di])
        bwd[:, dd, lo:hi] = _lse(np.stack(terms))
    # back to the grid [:, I, J] for the posteriors
    grid_i = np.arange(rows_all)[:, None]
    grid_d = grid_i + np.arange(cols_all)[None, :]
    fwd_grid = fwd[:, grid_d, grid_i]
    cells = (slice(None), slice(p, p + big_n + 1), slice(p, p + big_m + 1))
    after = bwd[:, grid_d, grid_i][cells] - log_z[:, None, None]
    post = np.zeros((5, b, big_n + 1, big_m + 1))
    for s, (di, dj) in enumerate(STEPS):
        src = fwd_grid[:, p - di : p - di + big_n + 1, p - dj : p - dj + big_m + 1]
        value = src + weight[s][cells] + after
        with np.errstate(invalid="ignore"):
            keep = value > POSTERIOR_FLOOR
        post[s][keep] = np.exp(value[keep])
    out = []
    for k, w in enumerate(ws):
        n, m = w.shape
        scored = [float(best[k, i + j + 2 * p, i + p] + tail[k, i]) for i, j in ends[k]]
        end = ends[k][scored.index(max(scored))]  # the first of the best, as `max` picks
        path: list[tuple[int, int, int]] = []
        i, j = end
        while (i, j) != (0, 0):
            s = int(back[k, i + j + 2 * p, i + p])
            path.append((s, i, j))
            i, j = i - STEPS[s][0], j - STEPS[s][1]
        path.reverse()
        out.append(Solution(float(log_z[k]), post[:, k, : n + 1, : m + 1].copy(), path))
    return out
