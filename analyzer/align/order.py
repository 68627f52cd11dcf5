"""The `order` method of `analyzer.align`, for pages whose VLM panels carry no boxes: a
monotone alignment of the detections (reading order, both directions) to the VLM panels,
solved exactly by forward-backward over a pair-HMM (its weights in `hmm.py`, the batched
solve in `lattice.py`); the placements, their confidences and the missed panels read off
both directions' solutions."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dataspec.normalize import PanelRecord
from dataspec.order import reading_orders

from .geometry import shares
from .hmm import MODEL, Direction, Model, Terms, step_weights
from .lattice import STEPS, Solution, solve_many
from .types import Alignment, Box, Missed, Part, Placement


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
    directions: tuple[tuple[str, list[int], Direction | None], ...]
    holes: tuple[list[list[Box]], ...] = ()
    """Per direction, the lettered boxes outside every detection by gap (`gaps`)."""


def order_problem(
    dets: Sequence[Box],
    scores: Sequence[float],
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    orphans: Sequence[Box],
    prefix: bool,
    model: Model,
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
    terms = Terms(det_text, scores, [a / median for a in areas], lines, model, cast)
    directions: list[tuple[str, list[int], Direction | None]] = []
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
        lattice = terms.lattice(perm, [len(g) for g in holes[-1]], c_out, prefix)
        directions.append((direction, perm, lattice))
    return OrderProblem(_Page(panels, det_text, dets), rtl_prior, tuple(directions), tuple(holes))


def solve_order(problems: Sequence[OrderProblem]) -> list[Alignment]:
    """The alignment of every problem, its lattices solved in one batch."""
    solutions = iter(
        solve_many(
            [w for pr in problems for _, _, w in pr.directions if w is not None], step_weights
        )
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
    weights = [MODEL.text(ta, k) + MODEL.text(tb, n_lines - k) for k in range(n_lines + 1)]
    cuts = range(n_lines + 1) if itemised else (0, n_lines)
    k = max(cuts, key=lambda c: (weights[c], -c))
    return k, math.exp(weights[k] - _lse(weights))
