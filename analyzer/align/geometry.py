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


def _centre_in(a: Sequence[float], b: Sequence[float]) -> bool:
    cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
    return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]


def lettered(text_boxes: Sequence[Box]) -> list[Box]:
    """One box per lettered line: a box holding the centre of a smaller one (a balloon
    around its detected text) is left out, so a line is not counted twice."""
    return [
        t
        for n, t in enumerate(text_boxes)
        if not any(
            k != n and o[2] * o[3] < t[2] * t[3] and _centre_in(o, t)
            for k, o in enumerate(text_boxes)
        )
    ]


def text_counts(dets: Sequence[Box], text_boxes: Sequence[Box]) -> tuple[list[int], int]:
    """(lettered lines per detection, lines in none): each line's box (`lettered`) goes to
    the smallest detection holding its centre."""
    counts, outside = centre_split(dets, lettered(text_boxes))
    return counts, len(outside)


def centre_counts(dets: Sequence[Box], boxes: Sequence[Box]) -> tuple[list[int], int]:
    """(boxes per detection, boxes in none): each box goes to the smallest detection
    holding its centre."""
    counts, outside = centre_split(dets, boxes)
    return counts, len(outside)


def centre_split(dets: Sequence[Box], boxes: Sequence[Box]) -> tuple[list[int], list[Box]]:
    """(boxes per detection, the boxes in none, in their order): each box goes to the
    smallest detection holding its centre."""
    counts = [0] * len(dets)
    outside: list[Box] = []
    for t in boxes:
        best = -1
        for i, d in enumerate(dets):
            if _centre_in(t, d) and (best < 0 or d[2] * d[3] < dets[best][2] * dets[best][3]):
                best = i
        if best < 0:
            outside.append(t)
        else:
            counts[best] += 1
    return counts, outside
