"""Reading order of panels: rows top-to-bottom, then left-to-right (right-to-left for manga).

A recursive XY cut. Panels are split into rows where a horizontal gutter separates them
(boxes overlapping by less than `OVERLAP` of the smaller height are in different rows,
so detector jitter across a gutter does not merge rows, and tops differing by a few
percent do not split one). A row that cannot be split further is split into columns the
same way, and each column is ordered again from the top. So a tall panel beside two
stacked ones reads tall → upper → lower (left to right), and rows stay rows.
"""

from __future__ import annotations

from collections.abc import Sequence

OVERLAP = 0.3
"""Two boxes share a row (column) when they overlap by more than this share of the smaller."""

BoxLike = Sequence[float]


def reading_order(boxes: Sequence[BoxLike], rtl: bool = False) -> list[int]:
    """Indices of `boxes` (`[x, y, w, h]`) in reading order; deterministic."""
    spans = [
        (float(b[0]), float(b[1]), float(b[0]) + float(b[2]), float(b[1]) + float(b[3]))
        for b in boxes
    ]
    return _order(list(range(len(spans))), spans, rtl, rows_first=True)


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


def _order(
    idx: list[int],
    spans: list[tuple[float, float, float, float]],
    rtl: bool,
    rows_first: bool,
) -> list[int]:
    if len(idx) <= 1:
        return idx
    for axis in (1, 0) if rows_first else (0, 1):
        bands = _groups(idx, spans, axis)
        if len(bands) > 1:
            if axis == 0 and rtl:
                bands.reverse()
            out: list[int] = []
            for band in bands:
                out.extend(_order(band, spans, rtl, rows_first=(axis == 0)))
            return out
    # Neither rows nor columns separate these boxes (they overlap): centre y, then x.
    sign = -1.0 if rtl else 1.0
    return sorted(
        idx,
        key=lambda i: (
            (spans[i][1] + spans[i][3]) / 2,
            sign * (spans[i][0] + spans[i][2]) / 2,
            i,
        ),
    )
