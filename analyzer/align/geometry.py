"""Box geometry of `analyzer.align`: overlap of `[x, y, w, h]` boxes, and which detection
holds each of the detector's text boxes."""

from __future__ import annotations

from collections.abc import Sequence

from .types import Box


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two `[x, y, w, h]` boxes."""
    inter = _inter(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _inter(a: Sequence[float], b: Sequence[float]) -> float:
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return ix * iy if ix > 0 and iy > 0 else 0.0


def _inside(a: Sequence[float], b: Sequence[float]) -> float:
    """Share of `a`'s area that lies inside `b`."""
    area = a[2] * a[3]
    return _inter(a, b) / area if area > 0 else 0.0


def shares(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(`_inside(a, b)`, `_inside(b, a)`) from one intersection."""
    inter, area_a, area_b = _inter(a, b), a[2] * a[3], b[2] * b[3]
    return (inter / area_a if area_a > 0 else 0.0, inter / area_b if area_b > 0 else 0.0)


def _centre_in(a: Sequence[float], b: Sequence[float]) -> bool:
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def lettered(text_boxes: Sequence[Box]) -> list[Box]:
    """One box per lettered line: a box holding the centre of a smaller one (a balloon
    around its detected text) is left out, so a line is not counted twice."""
    if len(text_boxes) < 2:
        return list(text_boxes)
    centres = [(t[0] + t[2] / 2, t[1] + t[3] / 2, t[2] * t[3]) for t in text_boxes]
    out = []
    for t in text_boxes:
        x0, y0, x1, y1, area = t[0], t[1], t[0] + t[2], t[1] + t[3], t[2] * t[3]
        if not any(a < area and x0 <= cx <= x1 and y0 <= cy <= y1 for cx, cy, a in centres):
            out.append(t)
    return out


def text_counts(dets: Sequence[Box], text_boxes: Sequence[Box]) -> tuple[list[int], int]:
    """(lettered lines per detection, lines in none): each line's box (`lettered`) goes to
    the smallest detection holding its centre."""
    counts, outside = centre_split(dets, lettered(text_boxes))
    return counts, len(outside)


def centre_split(dets: Sequence[Box], boxes: Sequence[Box]) -> tuple[list[int], list[Box]]:
    """(boxes per detection, the boxes in none, in their order): each box goes to the
    smallest detection holding its centre (the first of equal ones)."""
    counts = [0] * len(dets)
    outside: list[Box] = []
    if not boxes:
        return counts, outside
    spans = [(d[0], d[1], d[0] + d[2], d[1] + d[3], d[2] * d[3], i) for i, d in enumerate(dets)]
    for t in boxes:
        cx, cy = t[0] + t[2] / 2, t[1] + t[3] / 2
        best, least = -1, 0.0
        for x0, y0, x1, y1, area, i in spans:
            if x0 <= cx <= x1 and y0 <= cy <= y1 and (best < 0 or area < least):
                best, least = i, area
        if best < 0:
            outside.append(t)
        else:
            counts[best] += 1
    return counts, outside


HOLE_SHARE = 0.3
"""A missed panel's region is at least this share of the median detection's width and
height (a gutter or a margin strip is not a panel)."""
JITTER = 3
"""Pixels a detection may reach into the region it bounds (box jitter across a gutter)."""


def hole(lettering: Sequence[Box], dets: Sequence[Box], size: tuple[int, int] | None) -> Box | None:
    """The empty region a missed panel fills around its `lettering` (the detector's boxes
    outside every detection): their joint box grown left and right until it meets a
    detection or the page's edge, then up and down the same way. None when the lettering
    touches a detection or the region is under `HOLE_SHARE` of the median detection's width
    or height. Without the page `size`, the detections' outer bounds are its edges."""
    if not lettering or not dets:
        return None
    x0 = min(b[0] for b in lettering)
    y0 = min(b[1] for b in lettering)
    x1 = max(b[0] + b[2] for b in lettering)
    y1 = max(b[1] + b[3] for b in lettering)
    spans = [
        (d[0] + JITTER, d[1] + JITTER, d[0] + d[2] - JITTER, d[1] + d[3] - JITTER) for d in dets
    ]
    if any(a < x1 and c > x0 and b < y1 and e > y0 for a, b, c, e in spans):
        return None
    if size is not None:
        right, bottom = size
    else:
        right, bottom = max(s[2] + JITTER for s in spans), max(s[3] + JITTER for s in spans)
    row = [s for s in spans if s[1] < y1 and s[3] > y0]
    x0 = max((s[2] for s in row if s[2] <= x0), default=0)
    x1 = min((s[0] for s in row if s[0] >= x1), default=right)
    # boxes of the neighbouring columns may reach a few pixels across the gutters too
    column = [s for s in spans if s[0] < x1 - JITTER and s[2] > x0 + JITTER]
    y0 = max((s[3] for s in column if s[3] <= y0), default=0)
    y1 = min((s[1] for s in column if s[1] >= y1), default=bottom)
    widths = sorted(d[2] for d in dets)
    heights = sorted(d[3] for d in dets)
    if x1 - x0 < HOLE_SHARE * widths[len(widths) // 2]:
        return None
    if y1 - y0 < HOLE_SHARE * heights[len(heights) // 2]:
        return None
    return (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
