"""The pair-HMM of the `order` method (`analyzer.align.order`): its rates (`Model`), a
page's counts and terms (`Terms`), one reading direction of it (`Direction`), and the step
weights of a whole batch of directions at once (`step_weights`, the `lattice.Build` that
`lattice.solve_many` calls)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .lattice import PAD

CAP = 60
"""Counts above this weigh as this many (the log-count tables stop here)."""
LOCAL = 0.95
"""The chance a missed panel's lettering is read in its own gap of the detections' reading
order (else anywhere on the page: the order of small boxes among panels can slip)."""
_LOG_LOCAL, _LOG_WHOLE = math.log(LOCAL), math.log(1 - LOCAL)


def _log_poisson(k: int, lam: float) -> float:
    return k * math.log(lam) - lam - math.lgamma(k + 1)


def _log_counts(t: int, n: int, recall: float, false: float) -> float:
    """log P(t boxes | n true things): binomial recall + Poisson false boxes, mixed with a
    broad term (one balloon may hold two lines, two figures may read as one, ...)."""
    exact = 0.0
    for k in range(min(t, n) + 1):
        exact += math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(recall)
            + (n - k) * math.log(1 - recall)
            + _log_poisson(t - k, false)
        )
    broad = math.exp(_log_poisson(t, max(float(n), 0.5)))
    return math.log(0.95 * exact + 0.05 * broad + 1e-12)


@dataclass(frozen=True)
class Model:
    """The pair-HMM's rates: how detectors and VLMs disagree, per step."""

    p_pair: float = 0.80
    p_skip_det: float = 0.06
    p_skip_vlm: float = 0.06
    p_det_merge: float = 0.04
    p_vlm_merge: float = 0.04
    recall: float = 0.85
    """Share of lettered lines the detector boxes."""
    false_boxes: float = 0.15
    """Text boxes per panel with no line behind them."""
    char_recall: float = 0.8
    """Share of the characters a VLM names in a panel that the detector boxes there."""
    false_chars: float = 0.2
    """Character boxes per panel beyond those the VLM names."""
    merge_area: float = 1.8
    """A merged detection's area over the page's median detection, typically."""
    area_sd: float = 0.6
    _cache: dict[tuple[int, int, int], float] = field(default_factory=dict, compare=False)
    _tables: dict[int, np.ndarray] = field(default_factory=dict, compare=False)

    def log_steps(self) -> list[float]:
        """log P of each step: pair, skip a detection, skip a VLM panel, detector merge,
        VLM merge."""
        return [
            math.log(x)
            for x in (
                self.p_pair,
                self.p_skip_det,
                self.p_skip_vlm,
                self.p_det_merge,
                self.p_vlm_merge,
            )
        ]

    def text(self, t: int, lines: int) -> float:
        """log P(t text boxes | the panel has `lines` lines). Cached."""
        key = (0, min(t, CAP), min(lines, CAP))
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = _log_counts(key[1], key[2], self.recall, self.false_boxes)
        return value

    def table(self, kind: int, size: int) -> np.ndarray:
        """`text` (kind 0) or `chars` (kind 1) as an array indexed [boxes, lines or names],
        at least `size` (at most the cap + 1) each way. Grown as pages need it, so a
        process pays only for the counts its pages hold."""
        got = self._tables.get(kind)
        if got is None or len(got) < size:
            n = min(CAP + 1, max(size, 2 * len(got) if got is not None else 16))
            get = self.text if kind == 0 else self.chars
            got = self._tables[kind] = np.array([[get(a, b) for b in range(n)] for a in range(n)])
        return got

    def chars(self, c: int, named: int) -> float:
        """log P(c character boxes | the VLM names `named` characters in the panel)."""
        key = (1, min(c, CAP), min(named, CAP))
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = _log_counts(
                key[1], key[2], self.char_recall, self.false_chars
            )
        return value

    def lone_det(self, t: int) -> float:
        """log P(t | a detection no VLM panel describes): spurious or an omitted panel,
        mostly without lettering. Cached."""
        key = (2, t, 0)
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = math.log(
                0.75 * math.exp(self.text(t, 0)) + 0.25 * math.exp(self.text(t, 2))
            )
        return value

    def lone_chars(self, c: int) -> float:
        """log P(c character boxes | a detection no VLM panel describes). Cached."""
        key = (3, c, 0)
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = math.log(
                0.45 * math.exp(self.chars(c, 0))
                + 0.4 * math.exp(self.chars(c, 1))
                + 0.15 * math.exp(self.chars(c, 2))
            )
        return value

    def score(self, s: float) -> float:
        """log likelihood ratio spurious : real of a detection's score."""
        return math.log((1.05 - min(max(s, 0.0), 1.0)) / 0.5)

    def area(self, rel: float, merged: bool) -> float:
        """log likelihood ratio merged : single of a detection's relative area."""
        if not merged or rel <= 0:
            return 0.0
        x, mu, var = math.log(rel), math.log(self.merge_area), self.area_sd**2
        return (x * x - (x - mu) ** 2) / (2 * var)


MODEL = Model()


class Terms:
    """A page's step-weight inputs that do not depend on the reading direction, per
    detection (in detection order) and per VLM panel; `lattice` puts them in one
    direction's order, and `step_weights` turns many lattices into step weights at once.

    `t`, `score`, `rel_area` per detection, `lines` per VLM panel; `cast`: (character
    boxes per detection, characters the VLM names per panel), or None when either side has
    none on the page."""

    def __init__(
        self,
        t: Sequence[int],
        score: Sequence[float],
        rel_area: Sequence[float],
        lines: Sequence[int],
        model: Model,
        cast: tuple[Sequence[int], Sequence[int]] | None = None,
    ):
        self.model = model
        self.tt = [min(x, CAP) for x in t]
        self.ll = [min(x, CAP) for x in lines]
        self.size = max(2 * max(self.tt), 2 * max(lines))
        self.area = [model.area(a, True) for a in rel_area]
        skip_det = model.log_steps()[1]
        tail = [model.lone_det(x) for x in t]
        lone = [skip_det + v for v in tail]
        self.cast: tuple[list[int], list[int], int] | None = None
        if cast is not None:  # without one, every character term is 0 and is left out
            c, named = cast
            size = max(2 * max(c), 2 * max(named))
            self.cast = ([min(x, CAP) for x in c], [min(x, CAP) for x in named], size)
            figures = [model.lone_chars(x) for x in c]
            lone = [v + f for v, f in zip(lone, figures, strict=True)]
            tail = [v + f for v, f in zip(tail, figures, strict=True)]
        self.lone = [v + model.score(score[i]) for i, v in enumerate(lone)]
        self.tail = tail

    def lattice(
        self,
        perm: Sequence[int],
        orphans: Sequence[int],
        c_out: Sequence[int] | None,
        prefix: bool,
    ) -> Direction:
        """The lattice of the reading direction `perm` (position -> detection):
        `orphans[g]` text boxes in no detection read after the first g detections (`gaps`),
        `c_out` the same for character boxes (None without `cast`)."""
        cast = None
        if self.cast is not None and c_out is not None:
            cc, nn, size = self.cast
            c_at = [min(x, CAP) for x in c_out]
            cast = ([cc[i] for i in perm], nn, c_at, min(sum(c_out), CAP), size)
        return Direction(
            self.model,
            [self.tt[i] for i in perm],
            self.ll,
            [self.lone[i] for i in perm],
            [self.tail[i] for i in perm],
            [self.area[i] for i in perm],
            [min(x, CAP) for x in orphans],
            min(sum(orphans), CAP),
            self.size,
            cast,
            prefix,
        )


@dataclass(frozen=True)
class Direction:
    """One reading direction of a page, in its order: what its step weights are made of
    (`step_weights`). Counts are capped at `CAP`."""

    model: Model
    tt: list[int]
    """Text boxes per detection."""
    ll: list[int]
    """Lines per VLM panel."""
    lone: list[float]
    """Log weight of a detection paired with nothing."""
    tail: list[float]
    """Log weight of a detection left over after a cut-short reply's last panel."""
    area: list[float]
    """Log odds merged : single of a detection's relative area."""
    o_at: list[int]
    """Text boxes in no detection, per gap (`gaps`)."""
    o_all: int
    size: int
    """Counts the text table must hold, besides `o_all`."""
    cast: tuple[list[int], list[int], list[int], int, int] | None
    """(character boxes per detection, names per VLM panel, character boxes in no
    detection per gap, all of those, counts the table must hold), or None."""
    prefix: bool
    """The reply was cut short: it may end with detections to spare (`tail`)."""

    @property
    def shape(self) -> tuple[int, int]:
        """(n detections, m VLM panels)."""
        return (len(self.tt), len(self.ll))


def _rows(values: Sequence[Sequence[float]], width: int, dtype: type) -> np.ndarray:
    """`values` as one (len, width) array, each row padded with zeros."""
    return np.array([[*v, *([0] * (width - len(v)))] for v in values], dtype)


def step_weights(lattices: Sequence[Direction]) -> tuple[np.ndarray, np.ndarray]:
    """The batch's step weights (`lattice.Build`), every lattice in one numpy operation per
    term. A VLM panel the detector missed (skip at gap g) explains the boxes outside every
    detection: those of its own gap (`LOCAL`: the missed panel's lettering lies where the
    panel is), or, when the reading order misplaces them, those of the whole page."""
    model = lattices[0].model
    assert all(w.model is model for w in lattices), "one model per batch"
    lp = model.log_steps()
    b = len(lattices)
    big_n = max(w.shape[0] for w in lattices)
    big_m = max(w.shape[1] for w in lattices)
    p, neg = PAD, -math.inf
    n = np.array([w.shape[0] for w in lattices])[:, None, None]
    m = np.array([w.shape[1] for w in lattices])[:, None, None]
    i = np.arange(big_n + 1)[None, :, None]
    j = np.arange(big_m + 1)[None, None, :]
    table = model.table(0, 1 + min(CAP, max(max(w.size, w.o_all) for w in lattices)))
    tt = _rows([w.tt for w in lattices], big_n, np.int64)
    ll = _rows([w.ll for w in lattices], big_m, np.int64)
    o_at = _rows([w.o_at for w in lattices], big_n + 1, np.int64)
    o_all = np.array([w.o_all for w in lattices], np.int64)
    t2 = np.minimum(tt[:, :-1] + tt[:, 1:], CAP)
    l2 = np.minimum(ll[:, :-1] + ll[:, 1:], CAP)
    pair = lp[0] + table[tt[:, :, None], ll[:, None, :]]
    det_merge = lp[3] + table[tt[:, :, None], l2[:, None, :]]
    vlm_merge = lp[4] + table[t2[:, :, None], ll[:, None, :]]
    local = table[o_at[:, :, None], ll[:, None, :]] - table[o_at, 0][:, :, None]
    whole = table[o_all[:, None], ll] - table[o_all, 0][:, None]
    if any(w.cast is not None for w in lattices):
        casts = [w.cast or ([], [], [], 0, 0) for w in lattices]
        has = np.array([w.cast is not None for w in lattices])[:, None, None]
        chars = model.table(1, 1 + min(CAP, max(max(c[4], c[3]) for c in casts)))
        cc = _rows([c[0] for c in casts], big_n, np.int64)
        nn = _rows([c[1] for c in casts], big_m, np.int64)
        c_at = _rows([c[2] for c in casts], big_n + 1, np.int64)
        c_all = np.array([c[3] for c in casts], np.int64)
        c2 = np.minimum(cc[:, :-1] + cc[:, 1:], CAP)
        n2 = np.minimum(nn[:, :-1] + nn[:, 1:], CAP)
        pair = np.where(has, pair + chars[cc[:, :, None], nn[:, None, :]], pair)
        det_merge = np.where(has, det_merge + chars[cc[:, :, None], n2[:, None, :]], det_merge)
        vlm_merge = np.where(has, vlm_merge + chars[c2[:, :, None], nn[:, None, :]], vlm_merge)
        local = np.where(
            has,
            local + chars[c_at[:, :, None], nn[:, None, :]] - chars[c_at, 0][:, :, None],
            local,
        )
        whole = np.where(
            has[:, 0], whole + chars[c_all[:, None], nn] - chars[c_all, 0][:, None], whole
        )
    area = _rows([w.area for w in lattices], big_n, np.float64)
    det_merge = det_merge + area[:, :, None]
    skip_vlm = lp[2] + np.logaddexp(_LOG_LOCAL + local, _LOG_WHOLE + whole[:, None, :])
    lone = _rows([w.lone for w in lattices], big_n, np.float64)
    rows, cols = slice(p + 1, p + big_n + 1), slice(p + 1, p + big_m + 1)
    weight = np.full((5, b, big_n + 2 * p + 1, big_m + 2 * p + 1), neg)
    inside = (i[:, :-1] < n) & (j[:, :, :-1] < m)
    weight[0, :, rows, cols] = np.where(inside, pair, neg)
    weight[1, :, rows, p : p + big_m + 1] = np.where(
        (i[:, :-1] < n) & (j <= m), lone[:, :, None], neg
    )
    weight[2, :, p : p + big_n + 1, cols] = np.where((i <= n) & (j[:, :, :-1] < m), skip_vlm, neg)
    if big_m >= 2:
        ok = (i[:, :-1] < n) & (j[:, :, :-2] < m - 1)
        weight[3, :, rows, p + 2 : p + big_m + 1] = np.where(ok, det_merge, neg)
    if big_n >= 2:
        ok = (i[:, :-2] < n - 1) & (j[:, :, :-1] < m)
        weight[4, :, p + 2 : p + big_n + 1, cols] = np.where(ok, vlm_merge, neg)
    return weight, _rows([w.tail for w in lattices], big_n, np.float64)
