"""Alignment: which VLM panel's text goes on which detected panel, and how sure we are.

Two methods, chosen by the evidence a page has (`align`, below), each in its own module
(`overlap.py`, `order.py`):

- `overlap` (at least half the VLM panels carry a box): an optimal one-to-one assignment
  maximising total IoU (`assign`, Hungarian), pairs below `MIN_IOU` dropped. Then merges: a
  VLM box lying mostly inside a detection that already has a partner is a *detector merge*
  (the detection gets both texts, in VLM order); a detection lying mostly inside a paired VLM
  box is a *VLM merge* (the VLM's lines are routed by their own boxes, or all to the
  detection holding the detector's text boxes; when neither tells, both texts are unknown).
  Confidence of a pair: its IoU against the runner-up either side could have had.
- `order` (no VLM boxes, as in the 1.1M old-schema files): a monotone alignment of the
  detections (reading order, left-to-right or right-to-left) to the VLM panels (their
  order), solved exactly by dynamic programming over a pair-HMM (`hmm.Model`): a step pairs
  one with one, skips a detection (spurious, or omitted by the VLM), skips a VLM panel
  (missed by the detector), pairs one detection with two VLM panels (detector merge) or
  two detections with one VLM panel (VLM merge). Evidence per step: the detector's own
  text/balloon boxes inside each detection against the lines each VLM panel reports (with
  the detector's recall and false boxes), the detector's character boxes against the
  characters each VLM panel names (when both sides have any), text and character boxes
  outside every detection (a missed panel), the detection's score (spurious boxes score
  low) and relative area (merged boxes are large). Forward-backward gives every step's
  posterior probability, summed over both reading directions: that is the pair's
  confidence.

The page's confidence is its least confident pair. What is kept is the caller's choice
(`Alignment.confident`): a detection whose pair is below the threshold has unknown text, and
a VLM panel placed nowhere keeps its text on the page (`unplaced`).

The types and thresholds both methods share are in `types.py`, box geometry in
`geometry.py`, the pair-HMM's rates and step weights in `hmm.py`, its batched solve in
`lattice.py`; every public name is importable from `analyzer.align`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dataspec.normalize import PanelRecord

from .geometry import centre_split, iou, lettered, text_counts
from .hmm import MODEL
from .order import OrderProblem, order_problem, solve_order
from .overlap import _overlap, assign
from .types import CONTAIN, METHODS, MIN_IOU, RTL_PRIOR, Alignment, Box, Part, Placement
from .types import CREDIBLE_SCORE as CREDIBLE_SCORE
from .types import ORDER_EVIDENCE as ORDER_EVIDENCE

__all__ = [
    "CONTAIN",
    "METHODS",
    "MIN_IOU",
    "RTL_PRIOR",
    "Alignment",
    "OrderProblem",
    "Part",
    "Placement",
    "align",
    "align_many",
    "assign",
    "iou",
    "prepare",
    "series_prior",
    "text_counts",
]


def align(
    dets: Sequence[Box],
    scores: Sequence[float],
    vlm: Sequence[PanelRecord],
    text_boxes: Sequence[Box] | None = (),
    *,
    truncated: bool = False,
    rtl_prior: float | None = None,
    char_boxes: Sequence[Box] | None = None,
) -> Alignment:
    """Pair detections (pixel boxes, any order) with VLM panels (their order).

    `text_boxes`: the detector's text/balloon boxes in pixels; None when the detector has
    no text category (then text counts are no evidence either way). `truncated`: the reply was
    cut short, so its panels are a prefix of the page's (the detections after them are
    left unpaired at no cost). `rtl_prior`: the chance the page reads right to left
    before its own evidence (`series_prior` of its series' pages; default `RTL_PRIOR`).
    `char_boxes`: the detector's character boxes in pixels; None when the detector has no
    character category (then the characters the VLM names are no evidence either way).
    """
    return align_many(
        [
            prepare(
                dets,
                scores,
                vlm,
                text_boxes,
                truncated=truncated,
                rtl_prior=rtl_prior,
                char_boxes=char_boxes,
            )
        ]
    )[0]


def prepare(
    dets: Sequence[Box],
    scores: Sequence[float],
    vlm: Sequence[PanelRecord],
    text_boxes: Sequence[Box] | None = (),
    *,
    truncated: bool = False,
    rtl_prior: float | None = None,
    char_boxes: Sequence[Box] | None = None,
) -> Alignment | OrderProblem:
    """`align`'s work up to the `order` method's solve: the alignment itself for the other
    methods, else the page's `OrderProblem` (solve many at once with `align_many`)."""
    if not dets or not vlm:
        return Alignment("none", ())
    det_text, orphans = centre_split(dets, lettered(text_boxes or ()))
    prior = RTL_PRIOR if rtl_prior is None else min(max(rtl_prior, 1e-3), 1 - 1e-3)
    if 2 * sum(r.box is not None for r in vlm) >= len(vlm):
        return _overlap(dets, scores, vlm, det_text, prior, orphans)
    det_chars = centre_split(dets, char_boxes) if char_boxes is not None else None
    return order_problem(
        dets,
        scores,
        vlm,
        det_text,
        orphans,
        truncated,
        MODEL,
        prior,
        text_boxes is not None,
        det_chars,
    )


def align_many(pages: Sequence[Alignment | OrderProblem]) -> list[Alignment]:
    """The alignment of each `prepare`d page, in order; the `order` problems of all pages
    are solved in one batch (numpy over every lattice at once: much faster per page)."""
    problems = [p for p in pages if isinstance(p, OrderProblem)]
    solved = iter(solve_order(problems))
    return [p if isinstance(p, Alignment) else next(solved) for p in pages]


def series_prior(evidence: Sequence[float], own: float = 0.0) -> float:
    """The chance a page reads right to left given the `evidence` (log odds) of its series'
    pages, `own` (the page's, already in `evidence`) left out so it is not counted twice."""
    logit = math.log(RTL_PRIOR / (1 - RTL_PRIOR)) + sum(evidence) - own
    logit = min(max(logit, -30.0), 30.0)
    return 1 / (1 + math.exp(-logit))
