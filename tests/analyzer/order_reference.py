"""The reference for `analyzer.align.order`: its first form, one page at a time in plain
Python (loops over the cells of each lattice, posteriors in a dict). The batched numpy
solver must give what this gives; tests compare the two (`test_align_batch.py`)."""
# ruff: noqa

from __future__ import annotations

import math

import numpy as np
from collections.abc import Sequence

from dataspec import reading_order
from dataspec.normalize import PanelRecord

from analyzer.align.geometry import _inside
from analyzer.align.hmm import LOCAL, MODEL as _MODEL, Model as _Model
from analyzer.align.types import Alignment, Box, Part, Placement


def gaps(ordered: Sequence[Box], boxes: Sequence[Box], rtl: bool) -> list[list[Box]]:
    """`boxes` by gap of `ordered` (detections in reading order): [g] holds those read
    after the first g and before the next, by the reading order of all the boxes."""
    out: list[list[Box]] = [[] for _ in range(len(ordered) + 1)]
    n, seen = len(ordered), 0
    for k in reading_order([*ordered, *boxes], rtl=rtl) if boxes else ():
        if k < n:
            seen += 1
        else:
            out[seen].append(boxes[k - n])
    return out


_STEPS = ((1, 1), (1, 0), (0, 1), (1, 2), (2, 1))
"""(detections, VLM panels) one step takes: pair, skip det, skip VLM, det merge, VLM merge."""


class _Lattice:
    """Step weights of one reading direction: w[step][i][j] for the step ending at (i, j)."""

    def __init__(
        self,
        t: Sequence[int],
        score: Sequence[float],
        rel_area: Sequence[float],
        lines: Sequence[int],
        orphans: Sequence[int],
        prefix: bool,
        model: _Model,
        cast: tuple[Sequence[int], Sequence[int], Sequence[int]] | None = None,
    ) -> None:
        """`orphans[g]`: text boxes in no detection after the first g detections. `cast`:
        (character boxes per detection, characters the VLM names per panel, character boxes
        in no detection per gap), or None when either side has none on the page."""
        n, m = len(t), len(lines)
        self.n, self.m, self.prefix = n, m, prefix
        lp = [math.log(p) for p in (model.p_pair, model.p_skip_det, model.p_skip_vlm)]
        lp += [math.log(model.p_det_merge), math.log(model.p_vlm_merge)]
        text = model.text
        c, named, c_out = cast if cast is not None else ([0] * n, [0] * m, [0] * (n + 1))
        ch = model.chars if cast is not None else _no_evidence
        lone_ch = model.lone_chars if cast is not None else _no_evidence_1
        self.lone = [
            lp[1] + model.lone_det(t[i]) + lone_ch(c[i]) + model.score(score[i]) for i in range(n)
        ]
        # a missed panel leaves its text (and figure) boxes outside every detection: in its
        # own gap of the reading order (LOCAL), or anywhere on the page
        o_all, c_all = sum(orphans), sum(c_out)

        def missed(o: int, co: int, j: int) -> float:
            return text(o, lines[j]) - text(o, 0) + ch(co, named[j]) - ch(co, 0)

        self.skip_vlm = [
            [
                lp[2]
                + float(  # as the solver sums them, so ties break alike
                    np.logaddexp(
                        math.log(LOCAL) + missed(orphans[i], c_out[i], j),
                        math.log(1 - LOCAL) + missed(o_all, c_all, j),
                    )
                )
                for j in range(m)
            ]
            for i in range(n + 1)
        ]
        self.pair = [
            [lp[0] + text(t[i], lines[j]) + ch(c[i], named[j]) for j in range(m)] for i in range(n)
        ]
        self.det_merge = [
            [
                lp[3]
                + text(t[i], lines[j] + lines[j + 1])
                + ch(c[i], named[j] + named[j + 1])
                + model.area(rel_area[i], True)
                for j in range(m - 1)
            ]
            for i in range(n)
        ]
        self.vlm_merge = [
            [
                lp[4] + text(t[i] + t[i + 1], lines[j]) + ch(c[i] + c[i + 1], named[j])
                for j in range(m)
            ]
            for i in range(n - 1)
        ]
        # a cut-short reply lists a prefix of the panels: the detections after it are free
        self.tail = [model.lone_det(t[i]) + lone_ch(c[i]) for i in range(n)]

    def solve(self) -> tuple[float, dict[tuple[int, int, int], float], list[tuple[int, int, int]]]:
        """(log Z, posterior of each step (step, i, j), the most probable path's steps)."""
        n, m = self.n, self.m
        neg = -math.inf
        exp, log = math.exp, math.log
        # steps into each cell (step, from i, from j, weight), and out of it, built once
        into: list[list[list[tuple[int, int, int, float]]]] = [
            [[] for _ in range(m + 1)] for _ in range(n + 1)
        ]
        out: list[list[list[tuple[int, int, float]]]] = [
            [[] for _ in range(m + 1)] for _ in range(n + 1)
        ]
        pair, lone, skip_vlm = self.pair, self.lone, self.skip_vlm
        det_merge, vlm_merge = self.det_merge, self.vlm_merge
        for i in range(n + 1):
            for j in range(m + 1):
                here = into[i][j]
                if i and j:
                    w = pair[i - 1][j - 1]
                    here.append((0, i - 1, j - 1, w))
                    out[i - 1][j - 1].append((i, j, w))
                if i:
                    w = lone[i - 1]
                    here.append((1, i - 1, j, w))
                    out[i - 1][j].append((i, j, w))
                if j:
                    w = skip_vlm[i][j - 1]
                    here.append((2, i, j - 1, w))
                    out[i][j - 1].append((i, j, w))
                if i and j >= 2:
                    w = det_merge[i - 1][j - 2]
                    here.append((3, i - 1, j - 2, w))
                    out[i - 1][j - 2].append((i, j, w))
                if i >= 2 and j:
                    w = vlm_merge[i - 2][j - 1]
                    here.append((4, i - 2, j - 1, w))
                    out[i - 2][j - 1].append((i, j, w))
        fwd = [[neg] * (m + 1) for _ in range(n + 1)]
        best = [[neg] * (m + 1) for _ in range(n + 1)]
        back: list[list[tuple[int, int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
        fwd[0][0] = best[0][0] = 0.0
        for i in range(n + 1):
            frow, brow = fwd[i], best[i]
            for j in range(m + 1):
                steps = into[i][j]
                if not steps:
                    continue
                top, arg, hi = neg, None, neg
                for s, pi, pj, w in steps:
                    v = fwd[pi][pj] + w
                    if v > hi:
                        hi = v
                    cand = best[pi][pj] + w
                    if cand > top:
                        top, arg = cand, (s, pi, pj)
                if hi > neg:
                    total = 0.0
                    for _, pi, pj, w in steps:
                        total += exp(fwd[pi][pj] + w - hi)
                    frow[j] = hi + log(total)
                brow[j], back[i][j] = top, arg
        tail = [0.0] * (n + 1)  # log weight of leaving detections i.. unpaired at the end
        for i in range(n - 1, -1, -1):
            tail[i] = tail[i + 1] + self.tail[i]
        ends = [(n, m)] + ([(i, m) for i in range(n)] if self.prefix else [])
        log_z = _lse([fwd[i][j] + tail[i] for i, j in ends])
        bwd = [[neg] * (m + 1) for _ in range(n + 1)]
        for i, j in ends:
            bwd[i][j] = tail[i]
        for i in range(n, -1, -1):
            for j in range(m, -1, -1):
                nexts = out[i][j]
                if not nexts:
                    continue
                hi = bwd[i][j]
                for ni, nj, w in nexts:
                    v = bwd[ni][nj] + w
                    if v > hi:
                        hi = v
                if hi > neg:
                    total = exp(bwd[i][j] - hi) if bwd[i][j] > neg else 0.0
                    for ni, nj, w in nexts:
                        total += exp(bwd[ni][nj] + w - hi)
                    bwd[i][j] = hi + log(total)
        post: dict[tuple[int, int, int], float] = {}
        for i in range(n + 1):
            for j in range(m + 1):
                after = bwd[i][j] - log_z
                for s, pi, pj, w in into[i][j]:
                    value = fwd[pi][pj] + w + after
                    if value > -20:  # a posterior under 2e-9 adds nothing to a confidence
                        post[(s, i, j)] = exp(value)
        end = max(ends, key=lambda e: best[e[0]][e[1]] + tail[e[0]])
        path: list[tuple[int, int, int]] = []
        i, j = end
        while (i, j) != (0, 0):
            step = back[i][j]
            assert step is not None
            path.append((step[0], i, j))
            i, j = step[1], step[2]
        path.reverse()
        return log_z, post, path


def _no_evidence(_a: int, _b: int) -> float:
    return 0.0


def _no_evidence_1(_a: int) -> float:
    return 0.0


def _lse(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def _order(
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
) -> Alignment:
    """The `order` alignment. `det_chars`: character boxes per detection and in none, or
    None when the detector reports no characters (then what the VLM names is no evidence)."""
    areas = [d[2] * d[3] for d in dets]
    median = sorted(areas)[len(areas) // 2] or 1
    # without the detector's text boxes, line counts say nothing: every panel weighs alike
    lines = [len(r.text.lines()) if text_evidence else 0 for r in vlm]
    named = [len(r.characters or ()) for r in vlm]
    use_cast = det_chars is not None and any(named)  # the VLM names characters on this page
    raw: list[_Solved] = []
    for direction, rtl in (("ltr", False), ("rtl", True)):
        perm = reading_order(list(dets), rtl=rtl)  # position -> detection index
        if raw and perm == raw[0][1]:  # one column: both directions read alike
            raw.append((direction, *raw[0][1:]))
            continue
        ordered = [dets[i] for i in perm]
        lattice = _Lattice(
            [det_text[i] for i in perm],
            [scores[i] for i in perm],
            [areas[i] / median for i in perm],
            lines,
            [len(g) for g in gaps(ordered, orphans, rtl)],
            prefix,
            model,
            (
                [det_chars[0][i] for i in perm],
                named,
                [len(g) for g in gaps(ordered, det_chars[1], rtl)],
            )
            if use_cast and det_chars is not None
            else None,
        )
        log_z, post, path = lattice.solve()
        raw.append((direction, perm, log_z, post, path))
    return _combine(raw, rtl_prior, vlm, det_text, dets)


_Solved = tuple[
    str, list[int], float, dict[tuple[int, int, int], float], list[tuple[int, int, int]]
]


_Chosen = tuple[list[tuple[int, tuple[Part, ...], str]], list[dict[int, float]]]
"""A direction's placements, and per solved direction the posterior mass of each."""


def _combine(
    raw: list[_Solved],
    rtl_prior: float,
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    dets: Sequence[Box],
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
        cache[direction] = _chosen(raw, top, vlm, det_text, dets)
    chosen, masses = cache[direction]
    shares = [math.exp(w - total) for w in weights]
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
        reweigh=lambda prior: _combine(raw, prior, vlm, det_text, dets, cache),
    )


def _chosen(
    raw: list[_Solved],
    top: int,
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    dets: Sequence[Box],
) -> _Chosen:
    """The placements on direction `top`'s best path, and, per direction, the posterior that
    each detection gets exactly the VLM text chosen for it (or none, for the other half of a
    VLM merge)."""
    _, perm, _, _, path = raw[top]
    chosen = [
        (det, parts, kind)
        for s, i, j in path
        if s != 2
        for det, parts, kind in _outcomes(s, i, j, perm, vlm, det_text, dets)
        if kind
    ]
    wanted = {det: parts for det, parts, _ in chosen}
    merges: dict[tuple[int, int, int], tuple[list[tuple[int, tuple[Part, ...]]], float]] = {}
    masses: list[dict[int, float]] = []
    for n, (_, order, _, post, _) in enumerate(raw):
        if n and post is raw[0][3]:  # one column: the same solution twice
            masses.append(masses[0])
            continue
        mass = dict.fromkeys(wanted, 0.0)
        masses.append(mass)
        for (s, i, j), p in post.items():
            if s == 4:
                a, b = order[i - 2], order[i - 1]
                if a not in wanted and b not in wanted:
                    continue
                key = (a, b, j)
                split = merges.get(key)
                if split is None:
                    split = merges[key] = _vlm_merge((a, b), j - 1, vlm, det_text, dets)
                routing, chance = split
                for d, parts in routing:
                    if wanted.get(d) == parts:
                        mass[d] += p * chance
                continue
            d = order[i - 1]
            got = wanted.get(d)
            if got is None:
                continue
            if s == 0:
                hit = len(got) == 1 and got[0].vlm == j - 1 and got[0].items is None
            elif s == 1:
                hit = got == ()
            elif s == 3:
                hit = len(got) == 2 and got[0] == Part(j - 2) and got[1] == Part(j - 1)
            else:  # s == 2: a skipped VLM panel places nothing on a detection
                continue
            if hit:
                mass[d] += p
    return chosen, masses


def _outcomes(
    s: int,
    i: int,
    j: int,
    perm: Sequence[int],
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    boxes: Sequence[Box],
) -> list[tuple[int, tuple[Part, ...], str]]:
    """(detection, the VLM text it gets, placement kind or '' for none) of one step."""
    dets = perm[i - _STEPS[s][0] : i]  # in reading order
    if s == 0:
        return [(dets[0], (Part(j - 1),), "pair")]
    if s == 1:
        return [(dets[0], (), "")]
    if s == 3:
        return [(dets[0], (Part(j - 2), Part(j - 1)), "detector_merge")]
    if s == 4:
        routing, _ = _vlm_merge(dets, j - 1, vlm, det_text, boxes)
        return [(d, parts, "vlm_merge") for d, parts in routing]
    return []


def _vlm_merge(
    dets: Sequence[int],
    j: int,
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    boxes: Sequence[Box],
    model: _Model = _MODEL,
) -> tuple[list[tuple[int, tuple[Part, ...]]], float]:
    """Two detections (reading order), one VLM panel, no boxes: who gets which lines, and
    the chance that routing is right.

    A panel without lines goes whole to the first (sure). One box nested in the other: all
    to the outer (the inner's text is unknown). Else the panel's lines, in order, are cut
    at the point the detections' text boxes make most likely (the first `k` lines to the
    first detection, each cut equally likely before the evidence); a cut inside the panel
    needs its `text_items`, else only "all to one" can be written. The chance is the chosen
    cut's posterior over every cut.
    """
    record = vlm[j]
    n_lines = len(record.text.lines())
    if not n_lines:
        return [(dets[0], (Part(j),)), (dets[1], ())], 1.0
    for inner, outer in ((dets[0], dets[1]), (dets[1], dets[0])):
        if _inside(boxes[inner], boxes[outer]) >= 0.8:  # a box nested in the other
            return [(outer, (Part(j),))], 1.0
    ta, tb = det_text[dets[0]], det_text[dets[1]]
    weights = [model.text(ta, k) + model.text(tb, n_lines - k) for k in range(n_lines + 1)]
    items = len(record.text_items or ())
    cuts = range(n_lines + 1) if items == n_lines else (0, n_lines)
    k = max(cuts, key=lambda c: (weights[c], -c))
    chance = math.exp(weights[k] - _lse(weights))
    if k == n_lines:
        return [(dets[0], (Part(j),)), (dets[1], ())], chance
    if k == 0:
        return [(dets[0], ()), (dets[1], (Part(j),))], chance
    return [
        (dets[0], (Part(j, tuple(range(k))),)),
        (dets[1], (Part(j, tuple(range(k, n_lines))),)),
    ], chance
