"""Shared types and constants of `analyzer.align`: what an alignment is, and its thresholds.

Both methods (`overlap.py`, `order.py`), `geometry.py` and the entry (`__init__.py`) import
from here; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Box = tuple[int, int, int, int]

MIN_IOU = 0.3
"""Least IoU for a detection and a VLM box to be a pair."""
CONTAIN = 0.6
"""Share of a box's area inside another for it to count as part of a merge."""
ORDER_EVIDENCE = 1.5
"""Log odds for a reading direction per panel pair a boxed VLM orders that way."""
CREDIBLE_SCORE = 0.8
"""Least score of a detection inside a VLM box with another for it to get lines of its own."""
METHODS = ("overlap", "order", "none")
"""`Alignment.method` values: VLM boxes, order + text evidence, nothing to align."""
RTL_PRIOR = 0.15
"""Chance a page reads right to left before any evidence (manga in a mostly western set)."""


@dataclass(frozen=True, slots=True)
class Part:
    """Text of one VLM panel that goes on a detection: all of it, or some of its text items."""

    vlm: int
    items: tuple[int, ...] | None = None
    """Indices into the VLM panel's `text_items`; None: the whole panel."""


@dataclass(frozen=True, slots=True)
class Placement:
    """A detection paired with VLM text: which parts, how, and the pair's confidence.

    `parts == ()` means the detection is known to hold none of the VLM's lines (the other
    half of a VLM merge whose lines all lie elsewhere).
    """

    det: int
    parts: tuple[Part, ...]
    confidence: float
    kind: str
    """`pair`, `detector_merge` (one detection, several VLM panels) or `vlm_merge`."""


@dataclass(frozen=True, slots=True)
class Missed:
    """A VLM panel the `order` alignment found the detector missed, with the lettering the
    detector boxed where it lies: outside every detection, in the gap of the reading order
    where the panel was skipped. `confidence`: the posterior of that skip."""

    vlm: int
    boxes: tuple[Box, ...]
    confidence: float


@dataclass(frozen=True, slots=True)
class Alignment:
    """How a page's detections and VLM panels pair (see `analyzer.align`'s docstring)."""

    method: str
    placements: tuple[Placement, ...]
    direction: str = "ltr"
    """Reading direction the alignment found (`rtl` for right-to-left pages)."""
    vlm_rank: tuple[float, ...] | None = None
    """`overlap` only: per detection, the VLM position of its first part (inf: none)."""
    rtl_evidence: float = 0.0
    """log odds right-to-left : left-to-right this page's own evidence gives (prior apart)."""
    missed: tuple[Missed, ...] = ()
    """`order` only: VLM panels skipped where the detector's lettering says one is missing."""
    reweigh: Callable[[float], Alignment] | None = field(default=None, compare=False, repr=False)
    """The same alignment under another right-to-left prior, without solving it again."""

    @property
    def confidence(self) -> float:
        """The least confident pair (0.0 without any)."""
        return min((p.confidence for p in self.placements), default=0.0)

    def confident(self, threshold: float) -> tuple[Placement, ...]:
        """The placements at or above `threshold`."""
        return tuple(p for p in self.placements if p.confidence >= threshold)
