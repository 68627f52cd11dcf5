"""What the main process hands a worker and gets back: the run's settings for every worker
(`WorkerConfig`), a chunk of pages (`Chunk`, one `Task` a page) and one page's result
(`PageResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .options import EmitOptions
from .problems import Problem

__all__ = ["Chunk", "PageResult", "Task", "WorkerConfig"]


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker needs besides its chunks (set once by `init_worker`)."""

    image_roots: tuple[str, ...]
    min_det_score: float
    min_text_coverage: float
    caption_as_narration: bool
    emit: EmitOptions | None
    text_evidence: bool = True
    """The detector boxes lettered text (a text or balloon category with detections)."""
    char_evidence: bool = False
    """The detector boxes characters (a character category with detections)."""


class Task(NamedTuple):
    """One page of a chunk: what the main process knows about it."""

    page: int
    image_id: int | str
    image_path: str
    width: int
    height: int
    vlm_path: str | None
    tier: str
    key: str
    target: str | None
    pre_skip: str | None
    manifest_image: str | None
    """The image the manifest lists for the page's VLM JSON (tried first), if any."""
    rtl_prior: float | None = None
    """The right-to-left prior to align with (an earlier pass's); None: from the book."""


@dataclass
class Chunk:
    """Pages for one worker task; page n's boxes and scores are rows `offsets[n]:offsets[n + 1]`
    (its text boxes: rows `text_offsets[n]:text_offsets[n + 1]`, its character boxes:
    `char_offsets[n]:char_offsets[n + 1]`)."""

    tasks: list[Task]
    offsets: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    emit: bool
    text_offsets: np.ndarray
    text_boxes: np.ndarray
    text_scores: np.ndarray
    char_offsets: np.ndarray
    char_boxes: np.ndarray
    char_scores: np.ndarray


class PageResult(NamedTuple):
    """What a worker found and did for one page (sent back to the main process)."""

    page: int
    row: tuple[str, ...]
    matched: bool
    subsets: tuple[str, ...]
    exists: bool
    image: str
    """Resolved image path, else the path as given."""
    vlm_path: str
    coverage: float
    with_text: bool
    outcome: str | None
    """`emitted`, a skip reason, or None (not an emission candidate)."""
    output: str | None
    rcnn_count: int
    vlm_count: int
    problems: tuple[Problem, ...]
    repairs: tuple[str, ...] = ()
    """Repair codes of the VLM reply (`vlm_repairs`)."""
    truncated: bool = False
    empty: bool = False
    """The VLM JSON is an empty model reply."""
    rtl_prior: float | None = None
    """The right-to-left prior the page was aligned with (None: no alignment)."""
