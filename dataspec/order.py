"""Reading order of panels: rows top-to-bottom, then left-to-right (right-to-left for manga).

A recursive XY cut. Panels are split into rows where a horizontal gutter separates them
(boxes overlapping by less than `OVERLAP` of the smaller height are in different rows,
so detector jitter across a gutter does not merge rows, and tops differing by a few
percent do not split one). A row that cannot be split further is split into columns the
same way, and each column is ordered again from the top. So a tall panel beside two
stacked ones reads tall → upper → lower (left to right), and rows stay rows.

A cut through a real gutter is preferred to one that tolerates overlap: when the rows only
separate with some box reaching more than `CLEAN` of its height across the cut (a tall
panel beside a stack), while a clean gutter splits the columns, the page is read column by
column (each column top to bottom).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

OVERLAP = 0.3
"""Two boxes share a row (column) when they overlap by more than this share of the smaller."""

CLEAN = 0.1
"""A cut is clean when no box crosses it by more than this share of its extent (jitter)."""

BoxLike = Sequence[float]


def reading_order(boxes: Sequence[BoxLike], rtl: bool = False) -> list[int]:
    """Indices of `boxes` (`[x, y, w, h]`) in reading order; deterministic."""
    return reading_orders(boxes)[1 if rtl else 0]


def reading_orders(boxes: Sequence[BoxLike]) -> tuple[list[int], list[int]]:
    """`reading_order` left to right and right to left, from one walk of the cuts (the
    cuts do not depend on the direction: only the order of columns and of overlapping
    boxes does)."""
    spans = [
        (float(b[0]), float(b[1]), float(b[0]) + float(b[2]), float(b[1]) + float(b[3]))
        for b in boxes
    ]
    return _order(list(range(len(spans))), spans, rows_first=True)


def _groups(
    idx: list[int], spans: list[tuple[float, float, float, float]], axis: int
) -> list[list[int]]:
    """Split `idx` into bands along `axis` (1: rows by y, 0: columns by x), in band order."""
    lo, hi = axis, axis + 2
    items = sorted(idx, key=lambda i: (spans[i][lo], spans[i][hi], i))
    bands: list[list[int]] = []
    band_lo = band_hi = 0.0
    for i in items:
        start, end = spans[i][lo], spans[i][hi]
        if bands:
            overlap = min(band_hi, end) - max(band_lo, start)
            smaller = min(band_hi - band_lo, end - start)
            if smaller > 0 and overlap > OVERLAP * smaller:
                bands[-1].append(i)
                band_hi = max(band_hi, end)
                continue
            if smaller <= 0 and overlap >= 0 and start < band_hi:
                bands[-1].append(i)
                continue
        bands.append([i])
        band_lo, band_hi = start, end
    return bands


def _clean(
    bands: list[list[int]], spans: list[tuple[float, float, float, float]], axis: int
) -> bool:
    """Whether every cut between consecutive `bands` runs through a gutter: no box of one
    band reaches into the next by more than `CLEAN` of the smaller box's extent."""
    lo, hi = axis, axis + 2
    for before, after in itertools.pairwise(bands):
        for i in before:
            for k in after:
                cross = spans[i][hi] - spans[k][lo]
                if cross > 0 and cross > CLEAN * min(
                    spans[i][hi] - spans[i][lo], spans[k][hi] - spans[k][lo]
                ):
                    return False
    return True


def _order(
    idx: list[int],
    spans: list[tuple[float, float, float, float]],
    rows_first: bool,
) -> tuple[list[int], list[int]]:
    """`idx` in reading order (left to right, right to left)."""
    if len(idx) <= 1:
        return idx, idx
    first, second = (1, 0) if rows_first else (0, 1)
    split = _groups(idx, spans, first)
    chosen = first
    if len(split) <= 1 or not _clean(split, spans, first):
        other = _groups(idx, spans, second)
        if len(other) > 1 and (len(split) <= 1 or _clean(other, spans, second)):
            split, chosen = other, second
    if len(split) > 1:
        parts = [_order(band, spans, rows_first=(chosen == 0)) for band in split]
        ltr: list[int] = []
        rtl: list[int] = []
        for part in parts:
            ltr.extend(part[0])
        for part in reversed(parts) if chosen == 0 else parts:  # columns read backwards
            rtl.extend(part[1])
        return ltr, rtl
    # Neither rows nor columns separate these boxes (they overlap): centre y, then x.
    centres = {i: ((spans[i][1] + spans[i][3]) / 2, (spans[i][0] + spans[i][2]) / 2) for i in idx}
    return (
        sorted(idx, key=lambda i: (centres[i][0], centres[i][1], i)),
        sorted(idx, key=lambda i: (centres[i][0], -centres[i][1], i)),
    )
