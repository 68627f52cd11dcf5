"""A page's detections paired with its VLM panels, in a worker.

`pair` keeps the detections at the threshold and aligns them (an `order` alignment is left
`Pending` for the chunk's batched solve, `solve_pending`); `share_direction` gives each
page its book's reading direction as the prior (`reweigh`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dataspec.normalize import PanelRecord

from .align import RTL_PRIOR, Alignment, OrderProblem, align_many, prepare, series_prior
from .emit import MIN_CONFIDENCE, Detection, detections, text_boxes
from .problems import Problem, csv_float
from .work import Task, WorkerConfig

__all__ = [
    "Found",
    "PageRead",
    "Paired",
    "Pending",
    "book_of",
    "pair",
    "reweigh",
    "share_direction",
    "solve_pending",
]


@dataclass
class PageRead:
    """A page read (image resolved, VLM JSON read, panels aligned), not yet scored or written."""

    task: Task
    found: Found
    problems: list[Problem]
    resolved: str
    rcnn: int
    size: tuple[int, int] | None
    records: list[PanelRecord] | None
    tier: str
    repairs: tuple[str, ...]
    truncated: bool
    empty: bool
    paired: Paired | None = None
    pending: Pending | None = None
    """An `order` alignment `_read` left for the chunk's batched solve (`solve_pending`)."""


def book_of(image_path: str) -> str:
    """The folder of a page's image: the book whose pages share a reading direction."""
    return os.path.dirname(image_path.replace("\\", "/"))


def share_direction(reads: list[PageRead]) -> None:
    """Reweigh each page's alignment with its book's reading direction as the prior.

    A book reads one way: the direction evidence of the chunk's other pages of the same
    book (`Alignment.rtl_evidence`) becomes the page's prior (`series_prior`); no page is
    solved again. `Plan.chunks` keeps books whole (a book over `CHUNK_PAGES` is cut at the
    same pages in every run). A page whose prior an earlier pass fixed keeps that prior.
    """
    books: dict[str, list[PageRead]] = {}
    for r in reads:
        if r.paired is None or r.records is None or r.paired.alignment.method == "none":
            continue
        if r.task.rtl_prior is not None:  # fixed by an earlier pass over the whole book
            if r.task.rtl_prior != r.paired.prior:
                r.paired = reweigh(r.paired, r.task.rtl_prior)
            continue
        books.setdefault(book_of(r.task.image_path), []).append(r)
    for pages in books.values():
        if len(pages) < 2:
            continue
        evidence = [r.paired.alignment.rtl_evidence for r in pages if r.paired is not None]
        for r in pages:
            assert r.paired is not None and r.records is not None
            prior = series_prior(evidence, r.paired.alignment.rtl_evidence)
            if abs(prior - RTL_PRIOR) < 0.05:
                continue
            try:
                r.paired = reweigh(r.paired, prior)
            except Exception as exc:  # reported, never fatal: the first alignment stays
                r.problems.append(
                    Problem(r.task.vlm_path or "", "", f"{type(exc).__name__}: {exc}")
                )


class Found(NamedTuple):
    """One page's detections: panels, lettered text and characters, boxes `[x, y, w, h]`
    and scores."""

    boxes: np.ndarray
    scores: np.ndarray
    text_boxes: np.ndarray
    text_scores: np.ndarray
    char_boxes: np.ndarray
    char_scores: np.ndarray


class Paired(NamedTuple):
    """The page's usable detections and how they align with its VLM panels."""

    dets: list[Detection]
    alignment: Alignment
    threshold: float
    """Least placement confidence whose text is written (`--dataspec_min_pair_confidence`)."""
    prior: float
    """The right-to-left prior it was aligned with."""

    def columns(self, vlm_panels: int) -> tuple[str, ...]:
        """`pairing_method`, `pairing_confidence`, `unpaired_detections`, `unpaired_vlm_panels`."""
        kept = self.alignment.confident(self.threshold)
        placed = {part.vlm for p in kept for part in p.parts}
        return (
            self.alignment.method,
            csv_float(self.alignment.confidence),
            str(len(self.dets) - len(kept)),
            str(vlm_panels - len(placed)),
        )


def pair(
    found: Found,
    records: list[PanelRecord],
    size: tuple[int, int] | None,
    config: WorkerConfig,
    truncated: bool,
) -> Paired | Pending:
    """Detections at the emission threshold (the CSV's without emission), aligned under the
    default right-to-left prior (the book's comes later, `share_direction`), or set up for
    the chunk's batched solve (`Pending`)."""
    emit = config.emit
    threshold = emit.min_det_score if emit is not None else config.min_det_score
    dets = detections(found.boxes, found.scores, threshold, size)
    texts = (
        text_boxes(found.text_boxes, found.text_scores, threshold, size)
        if config.text_evidence
        else None
    )
    chars = (
        text_boxes(found.char_boxes, found.char_scores, threshold, size)
        if config.char_evidence
        else None
    )
    alignment = prepare(
        [d.box for d in dets],
        [d.score for d in dets],
        records,
        texts,
        truncated=truncated,
        char_boxes=chars,
    )
    threshold = emit.min_pair_confidence if emit else MIN_CONFIDENCE
    if isinstance(alignment, OrderProblem):
        return Pending(dets, alignment, threshold, RTL_PRIOR)
    return Paired(dets, alignment, threshold, RTL_PRIOR)


class Pending(NamedTuple):
    """A `Paired` whose `order` alignment awaits the chunk's batched solve (`solve_pending`)."""

    dets: list[Detection]
    problem: OrderProblem
    threshold: float
    prior: float


def solve_pending(reads: list[PageRead]) -> None:
    """Solve the chunk's pending `order` alignments in one batch. Should the batch fail,
    each page is solved alone, so a failure is reported on its own page only."""
    pending = [(r, r.pending) for r in reads if r.pending is not None]
    try:
        solved = align_many([job.problem for _, job in pending])
    except Exception:  # one page's problem: find it below
        solved = []
    for n, (r, job) in enumerate(pending):
        r.pending = None
        try:
            alignment = solved[n] if solved else align_many([job.problem])[0]
        except Exception as exc:  # reported, never fatal: the page is still scored
            r.problems.append(Problem(r.task.vlm_path or "", "", f"{type(exc).__name__}: {exc}"))
            continue
        r.paired = Paired(job.dets, alignment, job.threshold, job.prior)


def reweigh(paired: Paired, prior: float) -> Paired:
    """The page's alignment under another right-to-left prior (no new solve when it can)."""
    alignment = paired.alignment
    if alignment.reweigh is not None:
        return paired._replace(alignment=alignment.reweigh(prior), prior=prior)
    rtl = alignment.rtl_evidence + math.log(prior / (1 - prior)) > 0  # overlap: order only
    turned = dataclasses.replace(alignment, direction="rtl" if rtl else "ltr")
    return paired._replace(alignment=turned, prior=prior)
