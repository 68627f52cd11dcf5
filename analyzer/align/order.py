"""The `order` method of `analyzer.align`, for pages whose VLM panels carry no boxes: a
monotone alignment of the detections (reading order, both directions) to the VLM panels,
solved exactly by forward-backward over a pair-HMM (`_Model`; the weights of each step come
from `_Terms`, the batched solve from `lattice.py`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dataspec.normalize import PanelRecord
from dataspec.order import reading_orders

from .geometry import shares
from .lattice import STEPS, Solution, Weights, solve_many
from .types import Alignment, Box, Missed, Part, Placement

_CAP = 60
"""Counts above this weigh as this many (the log-count tables stop here)."""
LOCAL = 0.95
"""The chance a missed panel's lettering is read in its own gap of the detections' reading
order (else anywhere on the page: the order of small boxes among panels can slip)."""
_LOG_LOCAL, _LOG_WHOLE = math.log(LOCAL), math.log(1 - LOCAL)


def gaps(dets: Sequence[Box], boxes: Sequence[Box]) -> tuple[list[list[Box]], ...]:
    """`boxes` (outside every detection) by gap of the detections' reading order, left to
    right and right to left: [g] holds those read after the first g detections and before
    the next, by the reading order of all the boxes together (detections first on ties, so
    which detection is which does not matter)."""
    n = len(dets)
    out: list[list[list[Box]]] = []
    for order in reading_orders([*dets, *boxes]) if boxes else ((), ()):
        by_gap: list[list[Box]] = [[] for _ in range(n + 1)]
        seen = 0
        for k in order:
            if k < n:
                seen += 1
            else:
                by_gap[seen].append(boxes[k - n])
        out.append(by_gap)
    return tuple(out)


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
class _Model:
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

    def text(self, t: int, lines: int) -> float:
        """log P(t text boxes | the panel has `lines` lines). Cached."""
        key = (0, min(t, _CAP), min(lines, _CAP))
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
            n = min(_CAP + 1, max(size, 2 * len(got) if got is not None else 16))
            get = self.text if kind == 0 else self.chars
            got = self._tables[kind] = np.array([[get(a, b) for b in range(n)] for a in range(n)])
        return got

    def chars(self, c: int, named: int) -> float:
        """log P(c character boxes | the VLM names `named` characters in the panel)."""
        key = (1, min(c, _CAP), min(named, _CAP))
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


_MODEL = _Model()


class _Terms:
    """A page's step weights that do not depend on the reading direction, per detection
    (in detection order) and per VLM panel; `weights` puts them in one direction's order.

    `t`, `score`, `rel_area` per detection, `lines` per VLM panel; `cast`: (character
    boxes per detection, characters the VLM names per panel), or None when either side has
    none on the page."""

    def __init__(
        self,
        t: Sequence[int],
        score: Sequence[float],
        rel_area: Sequence[float],
        lines: Sequence[int],
        model: _Model,
        cast: tuple[Sequence[int], Sequence[int]] | None = None,
    ):
        n = len(t)
        lp = [math.log(x) for x in (model.p_pair, model.p_skip_det, model.p_skip_vlm)]
        lp += [math.log(model.p_det_merge), math.log(model.p_vlm_merge)]
        self.lp, self.model = lp, model
        tt = self.tt = np.minimum(np.asarray(t, np.int64), _CAP)
        ll = np.asarray(lines, np.int64)
        self.size = max(2 * int(tt.max()), 2 * int(ll.max()))
        table = model.table(0, 1 + min(_CAP, self.size))
        l2 = np.minimum(ll[:-1] + ll[1:], _CAP)
        ll = self.ll = np.minimum(ll, _CAP)
        self.area = np.array([model.area(a, True) for a in rel_area])
        lone = [lp[1] + model.lone_det(t[i]) for i in range(n)]
        self.pair = lp[0] + table[tt[:, None], ll[None, :]]
        self.det_merge = lp[3] + table[tt[:, None], l2[None, :]]
        tail = [model.lone_det(t[i]) for i in range(n)]
        self.cast: tuple[np.ndarray, np.ndarray, int] | None = None
        if cast is not None:  # without one, every character term is 0 and is left out
            c, named = cast
            cc, nn = np.asarray(c, np.int64), np.asarray(named, np.int64)
            size = max(2 * int(cc.max()), 2 * int(nn.max()))
            chars = model.table(1, 1 + min(_CAP, size))
            n2 = np.minimum(nn[:-1] + nn[1:], _CAP)
            cc, nn = np.minimum(cc, _CAP), np.minimum(nn, _CAP)
            self.cast = (cc, nn, size)
            lone = [v + model.lone_chars(c[i]) for i, v in enumerate(lone)]
            self.pair = self.pair + chars[cc[:, None], nn[None, :]]
            self.det_merge = self.det_merge + chars[cc[:, None], n2[None, :]]
            tail = [v + model.lone_chars(c[i]) for i, v in enumerate(tail)]
        self.lone = np.array([v + model.score(score[i]) for i, v in enumerate(lone)])
        self.tail = np.array(tail)

    def weights(
        self,
        perm: Sequence[int],
        orphans: Sequence[int],
        c_out: Sequence[int] | None,
        prefix: bool,
    ) -> Weights:
        """The lattice of the reading direction `perm` (position -> detection):
        `orphans[g]` text boxes in no detection read after the first g detections (`gaps`),
        `c_out` the same for character boxes (None without `cast`).

        A VLM panel the detector missed (skip at gap g) explains the boxes outside every
        detection: those of its own gap (`LOCAL`: the missed panel's lettering lies where
        the panel is), or, when the reading order misplaces them, those of the whole page."""
        model, lp, ll = self.model, self.lp, self.ll
        order = np.asarray(perm, np.int64)
        tt = self.tt[order]
        o_all = min(sum(orphans), _CAP)
        table = model.table(0, 1 + min(_CAP, max(self.size, o_all)))
        t2 = np.minimum(tt[:-1] + tt[1:], _CAP)
        # a missed panel leaves its text (and figure) boxes outside every detection, in its gap
        o_at = np.minimum(np.asarray(orphans, np.int64), _CAP)
        local = table[o_at[:, None], ll[None, :]] - table[o_at, 0][:, None]
        whole = table[o_all, ll] - table[o_all, 0]
        vlm_merge = lp[4] + table[t2[:, None], ll[None, :]]
        if self.cast is not None and c_out is not None:
            cc, nn, size = self.cast
            cc = cc[order]
            c_all = min(sum(c_out), _CAP)
            chars = model.table(1, 1 + min(_CAP, max(size, c_all)))
            c2 = np.minimum(cc[:-1] + cc[1:], _CAP)
            c_at = np.minimum(np.asarray(c_out, np.int64), _CAP)
            local = local + chars[c_at[:, None], nn[None, :]] - chars[c_at, 0][:, None]
            whole = whole + chars[c_all, nn] - chars[c_all, 0]
            vlm_merge = vlm_merge + chars[c2[:, None], nn[None, :]]
        return Weights(
            pair=self.pair[order],
            lone=self.lone[order],
            skip_vlm=lp[2] + np.logaddexp(_LOG_LOCAL + local, _LOG_WHOLE + whole[None, :]),
            det_merge=self.det_merge[order] + self.area[order][:, None],
            vlm_merge=vlm_merge,
            # a cut-short reply lists a prefix of the panels: the detections after it are free
            tail=self.tail[order],
            prefix=prefix,
        )


def _lse(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


_Lines = tuple[int, bool]
"""A VLM panel's line count, and whether its lines are itemised (`text_items`, one each)."""


def _lines_of(record: PanelRecord) -> _Lines:
    n = len(record.text.lines())
    return n, len(record.text_items or ()) == n


@dataclass(frozen=True)
class OrderProblem:
    """A page's `order` alignment set up and not yet solved: each reading direction's
    detection order and lattice (None: reads as the first direction, one column)."""

    page: _Page
    rtl_prior: float
    directions: tuple[tuple[str, list[int], Weights | None], ...]
    holes: tuple[list[list[Box]], ...] = ()
    """Per direction, the lettered boxes outside every detection by gap (`gaps`)."""


def order_problem(
    dets: Sequence[Box],
    scores: Sequence[float],
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    orphans: Sequence[Box],
    prefix: bool,
    model: _Model,
    rtl_prior: float,
    text_evidence: bool = True,
    det_chars: tuple[Sequence[int], Sequence[Box]] | None = None,
) -> OrderProblem:
    """The `order` alignment's lattices. `orphans`: the lettered boxes in no detection.
    `det_chars`: character boxes per detection and those in none, or None when the detector
    reports no characters (then what the VLM names is no evidence)."""
    areas = [d[2] * d[3] for d in dets]
    median = sorted(areas)[len(areas) // 2] or 1
    panels = [_lines_of(r) for r in vlm]
    # without the detector's text boxes, line counts say nothing: every panel weighs alike
    lines = [n for n, _ in panels] if text_evidence else [0] * len(vlm)
    named = [len(r.characters or ()) for r in vlm]
    use_cast = det_chars is not None and any(named)  # the VLM names characters on this page
    cast, c_boxes = None, None
    if use_cast and det_chars is not None:
        cast, c_boxes = (det_chars[0], named), det_chars[1]
    terms = _Terms(det_text, scores, [a / median for a in areas], lines, model, cast)
    directions: list[tuple[str, list[int], Weights | None]] = []
    holes: list[list[list[Box]]] = []
    perms = reading_orders(dets)  # position -> detection index, per direction
    text_gaps = gaps(dets, orphans)
    char_gaps = gaps(dets, c_boxes) if c_boxes is not None else None
    for k, direction in enumerate(("ltr", "rtl")):
        perm = perms[k]
        if directions and perm == directions[0][1]:  # one column: both directions read alike
            directions.append((direction, perm, None))
            holes.append(holes[0])
            continue
        holes.append(text_gaps[k])
        c_out = [len(g) for g in char_gaps[k]] if char_gaps is not None else None
        weights = terms.weights(perm, [len(g) for g in holes[-1]], c_out, prefix)
        directions.append((direction, perm, weights))
    return OrderProblem(_Page(panels, det_text, dets), rtl_prior, tuple(directions), tuple(holes))


def solve_order(problems: Sequence[OrderProblem]) -> list[Alignment]:
    """The alignment of every problem, its lattices solved in one batch."""
    solutions = iter(
        solve_many([w for pr in problems for _, _, w in pr.directions if w is not None])
    )
    out = []
    for pr in problems:
        raw: list[_Solved] = []
        for direction, perm, w in pr.directions:
            if w is None:
                raw.append((direction, *raw[0][1:]))
            else:
                sol = next(solutions)
                raw.append((direction, perm, sol.log_z, sol, sol.path))
        out.append(_combine(raw, pr.rtl_prior, pr.page, pr.holes))
    return out


_Solved = tuple[str, list[int], float, Solution, list[tuple[int, int, int]]]
"""A solved direction: (name, detection order, log Z, solution, best path)."""
_Chosen = tuple[
    list[tuple[int, tuple[Part, ...], str]],
    list[dict[int, float]],
    list[tuple[int, tuple[Box, ...], list[float]]],
]
"""A direction's placements, per solved direction the posterior mass of each, and the VLM
panels its best path skips where lettering lies (panel, those boxes, per direction the
posterior of skipping it at the gap holding them)."""


def _combine(
    raw: list[_Solved],
    rtl_prior: float,
    page: _Page,
    holes: Sequence[list[list[Box]]] = (),
    cache: dict[str, _Chosen] | None = None,
) -> Alignment:
    """The alignment from both directions' solutions under `rtl_prior` (`cache` keeps the
    work that does not depend on the prior, for `Alignment.reweigh`)."""
    cache = {} if cache is None else cache
    evidence = raw[1][2] - raw[0][2]
    weights = [z + math.log(rtl_prior if d == "rtl" else 1 - rtl_prior) for d, _, z, _, _ in raw]
    total = _lse(weights)
    top = 0 if weights[0] >= weights[1] else 1
    direction = raw[top][0]
    if direction not in cache:
        cache[direction] = _chosen(raw, top, page, holes)
    chosen, masses, skips = cache[direction]
    shares = [math.exp(w - total) for w in weights]
    missed = tuple(
        Missed(
            j, boxes, round(min(1.0, sum(sh * p for sh, p in zip(shares, post, strict=True))), 4)
        )
        for j, boxes, post in skips
    )
    placements = [
        Placement(
            det,
            parts,
            round(min(1.0, sum(sh * m[det] for sh, m in zip(shares, masses, strict=True))), 4),
            kind,
        )
        for det, parts, kind in chosen
    ]
    placements.sort(key=lambda p: p.det)
    return Alignment(
        "order",
        tuple(placements),
        direction,
        rtl_evidence=evidence,
        missed=missed,
        reweigh=lambda prior: _combine(raw, prior, page, holes, cache),
    )


def _chosen(
    raw: list[_Solved],
    top: int,
    page: _Page,
    holes: Sequence[list[list[Box]]] = (),
) -> _Chosen:
    """The placements on direction `top`'s best path, per direction the posterior that each
    detection gets exactly the VLM text chosen for it (or none, for the other half of a VLM
    merge), and the path's skipped VLM panels whose gap holds lettering (`holes`)."""
    _, perm, _, _, path = raw[top]
    skips: list[tuple[int, tuple[Box, ...], list[float]]] = []
    for s, i, j in path:
        if s == 2 and holes and holes[top][i]:
            mine = sorted(holes[top][i])
            # the same gap read in each direction: the one holding the same boxes
            where = [next((g for g, h in enumerate(hs) if sorted(h) == mine), -1) for hs in holes]
            skipped = [
                float(r[3].post[2, g, j]) if g >= 0 else 0.0
                for r, g in zip(raw, where, strict=True)
            ]
            skips.append((j - 1, tuple(holes[top][i]), skipped))
    chosen = [
        (det, parts, kind)
        for s, i, j in path
        if s != 2
        for det, parts, kind in _outcomes(s, i, j, perm, page)
        if kind
    ]
    wanted = {det: parts for det, parts, _ in chosen}
    masses: list[dict[int, float]] = []
    for n, (_, order, _, sol, _) in enumerate(raw):
        if n and sol is raw[0][3]:  # one column: the same solution twice
            masses.append(masses[0])
            continue
        post = sol.post
        at = {d: k + 1 for k, d in enumerate(order)}  # detection -> row of the step ending it
        mass = dict.fromkeys(wanted, 0.0)
        masses.append(mass)
        for d, got in wanted.items():
            i = at[d]
            if got == ():
                mass[d] += float(post[1, i].sum())
            elif len(got) == 1 and got[0].items is None:
                mass[d] += float(post[0, i, got[0].vlm + 1])
            elif len(got) == 2 and got == (Part(got[0].vlm), Part(got[0].vlm + 1)):
                mass[d] += float(post[3, i, got[1].vlm + 1])
        merged = post[4]
        for d, got in wanted.items():
            if len(got) > 1:  # a merge's routing gives a detection () or one part
                continue
            for i in (at[d], at[d] + 1):  # merged pairs ending at row i: d second, d first
                if not 2 <= i <= len(order):
                    continue
                a, b = order[i - 2], order[i - 1]
                cols = [got[0].vlm + 1] if got else np.flatnonzero(merged[i]).tolist()
                for j in cols:
                    p = float(merged[i, j])
                    if not p:
                        continue
                    routing, chance = page.merge(a, b, j - 1)
                    if (d, got) in routing:
                        mass[d] += p * chance
    return chosen, masses, skips


def _outcomes(
    s: int,
    i: int,
    j: int,
    perm: Sequence[int],
    page: _Page,
) -> list[tuple[int, tuple[Part, ...], str]]:
    """(detection, the VLM text it gets, placement kind or '' for none) of one step."""
    dets = perm[i - STEPS[s][0] : i]  # in reading order
    if s == 0:
        return [(dets[0], page.whole(j - 1), "pair")]
    if s == 1:
        return [(dets[0], (), "")]
    if s == 3:
        return [(dets[0], (Part(j - 2), Part(j - 1)), "detector_merge")]
    if s == 4:
        routing, _ = page.merge(dets[0], dets[1], j - 1)
        return [(d, parts, "vlm_merge") for d, parts in routing]
    return []


_Routing = tuple[list[tuple[int, tuple[Part, ...]]], float]


class _Page:
    """What a page's placements need besides its lattices, with each VLM merge's routing
    worked out once (`merge`)."""

    def __init__(self, panels: Sequence[_Lines], det_text: Sequence[int], dets: Sequence[Box]):
        self.panels, self.det_text, self.dets = panels, det_text, dets
        self._routes: dict[tuple[int, int, int], _Routing] = {}
        self._nest: dict[tuple[int, int], int | None] = {}
        self._whole = [(Part(j),) for j in range(len(panels))]

    def merge(self, a: int, b: int, j: int) -> _Routing:
        """Detections `a` then `b` (reading order), one VLM panel `j`, no boxes: who gets
        which lines, and the chance that routing is right.

        A panel without lines goes whole to the first (sure). One box nested in the other:
        all to the outer (the inner's text is unknown). Else the panel's lines, in order,
        are cut at the point the detections' text boxes make most likely (the first `k`
        lines to the first detection, each cut equally likely before the evidence); a cut
        inside the panel needs its `text_items`, else only "all to one" can be written. The
        chance is the chosen cut's posterior over every cut.
        """
        key = (a, b, j)
        got = self._routes.get(key)
        if got is None:
            got = self._routes[key] = self._route(a, b, j)
        return got

    def whole(self, j: int) -> tuple[Part]:
        """All of VLM panel `j`'s text, as the one shared tuple (fast to compare)."""
        return self._whole[j]

    def _outer(self, a: int, b: int) -> int | None:
        """The detection the other lies in (`a` tried inside `b` first), if either."""
        key = (a, b)
        if key not in self._nest:
            a_in_b, b_in_a = shares(self.dets[a], self.dets[b])
            self._nest[key] = b if a_in_b >= 0.8 else a if b_in_a >= 0.8 else None
        return self._nest[key]

    def _route(self, a: int, b: int, j: int) -> _Routing:
        n_lines, itemised = self.panels[j]
        whole = self._whole[j]
        if not n_lines:
            return [(a, whole), (b, ())], 1.0
        outer = self._outer(a, b)
        if outer is not None:  # one nested in the other
            return [(outer, whole)], 1.0
        k, chance = _cut(self.det_text[a], self.det_text[b], n_lines, itemised)
        if k == n_lines:
            return [(a, whole), (b, ())], chance
        if k == 0:
            return [(a, ()), (b, whole)], chance
        return [
            (a, (Part(j, tuple(range(k))),)),
            (b, (Part(j, tuple(range(k, n_lines))),)),
        ], chance


@functools.cache
def _cut(ta: int, tb: int, n_lines: int, itemised: bool) -> tuple[int, float]:
    """(lines to the first detection, its posterior) of a VLM merge's most likely cut, given
    each detection's text boxes; only 0 or all unless the lines are `itemised`."""
    weights = [_MODEL.text(ta, k) + _MODEL.text(tb, n_lines - k) for k in range(n_lines + 1)]
    cuts = range(n_lines + 1) if itemised else (0, n_lines)
    k = max(cuts, key=lambda c: (weights[c], -c))
    return k, math.exp(weights[k] - _lse(weights))
