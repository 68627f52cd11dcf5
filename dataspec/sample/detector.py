"""The detector's COCO predictions for a page, with the defects a real detector has.

Every drawn part is detected with jitter (or missed at its category's rate). Panels fail the
way the user's Faster R-CNN does: a panel missed (``PANEL_MISS`` of panels), two adjacent
panels detected as one box (``PAIR_MERGE`` of adjacent pairs), and spurious low-score boxes
(below 0.5), either inside a panel's art or covering half a panel as if splitting it. The
defects are drawn from their own RNG stream, so the pixels do not change with them.
"""

from __future__ import annotations

import random
from typing import Any

from .layout import adjacent, union
from .truth import BALLOON, CHARACTER, FACE, PANEL, TEXT, Box, DetDefects, DrawnPanel, PageSpec

PANEL_MISS = 0.08
"""Share of true panels with no detection (a real disagreement corpus)."""
PAIR_MERGE = 0.05
"""Share of adjacent panel pairs (consecutive in reading order) detected as one box."""
SPURIOUS_PAGE = 0.35
"""Share of pages with one or two spurious (low-score) panel boxes."""
MILD_PANEL_MISS = 0.03
"""``disagreement=False``: panel misses of the old, mostly agreeing corpus (no merges)."""
MILD_SPURIOUS_PAGE = 0.25

PANEL_SCORE = (0.75, 0.99)
"""Scores of real panel detections (merged boxes included)."""
SPURIOUS_SCORE = (0.05, 0.45)
"""Scores of spurious panel boxes: below the 0.5 that counts a detection as a panel."""

DETECT_PARAMS: dict[int, tuple[float, float, float, float]] = {
    # category: (miss rate, box jitter, min score, max score)
    PANEL: (PANEL_MISS, 0.02, *PANEL_SCORE),
    CHARACTER: (0.08, 0.04, 0.5, 0.97),
    BALLOON: (0.04, 0.03, 0.7, 0.98),
    TEXT: (0.05, 0.04, 0.6, 0.97),
    FACE: (0.1, 0.05, 0.45, 0.95),
}


def jitter(rng: random.Random, b: Box, frac: float, width: int, height: int) -> list[float]:
    """``b`` with each edge moved by up to ``frac`` of its size, clipped to the page."""
    x, y, w, h = b
    x0 = max(0.0, x + rng.uniform(-frac, frac) * w)
    y0 = max(0.0, y + rng.uniform(-frac, frac) * h)
    x1 = min(float(width), x + w + rng.uniform(-frac, frac) * w)
    y1 = min(float(height), y + h + rng.uniform(-frac, frac) * h)
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def _panel_boxes(
    rng: random.Random, spec: PageSpec, boxes: list[Box], defects: DetDefects
) -> list[Box]:
    """The panel boxes the detector finds: merges and misses applied (reading order)."""
    n = len(boxes)
    merged_into: dict[int, int] = {}
    if spec.disagreement:
        i = 0
        while i < n - 1:
            if adjacent(boxes, i, i + 1) and rng.random() < PAIR_MERGE:
                defects.merged.append([i, i + 1])
                merged_into[i + 1] = i
                i += 2
            else:
                i += 1
    miss = PANEL_MISS if spec.disagreement else MILD_PANEL_MISS
    found: list[Box] = []
    for i, box in enumerate(boxes):
        if i in merged_into:
            continue
        if [i, i + 1] in defects.merged:
            found.append(union(box, boxes[i + 1]))
        elif rng.random() < miss:
            defects.missed.append(i)
        else:
            found.append(box)
    return found


def _spurious(
    rng: random.Random, spec: PageSpec, boxes: list[Box], size: tuple[int, int]
) -> list[tuple[str, int, Box]]:
    """(kind, panel, box) of the page's spurious boxes: in a panel's art, or half a panel."""
    rate = SPURIOUS_PAGE if spec.disagreement else MILD_SPURIOUS_PAGE
    if rng.random() >= rate:
        return []
    out: list[tuple[str, int, Box]] = []
    for _ in range(rng.randint(1, 2)):
        k = rng.randrange(len(boxes))
        x, y, w, h = boxes[k]
        if rng.random() < 0.5 and w > 40 and h > 40:
            fw, fh = round(w * rng.uniform(0.15, 0.45)), round(h * rng.uniform(0.15, 0.45))
            fx, fy = x + rng.randint(0, w - fw), y + rng.randint(0, h - fh)
            out.append(("art", k, (fx, fy, fw, fh)))
        elif w >= h:
            half = w // 2
            out.append(("split", k, (x + rng.choice((0, half)), y, half, h)))
        else:
            half = h // 2
            out.append(("split", k, (x, y + rng.choice((0, half)), w, half)))
    return out


def detect(
    spec: PageSpec, image_id: str, panels: list[DrawnPanel], size: tuple[int, int]
) -> tuple[list[dict[str, Any]], DetDefects]:
    """Detector output for one page (COCO annotations without ids) and its panel defects."""
    rng = random.Random(f"detector:{spec.seed}")
    width, height = size
    defects = DetDefects()
    boxes = [p.box for p in panels]
    truth: list[tuple[int, Box]] = [(PANEL, b) for b in _panel_boxes(rng, spec, boxes, defects)]
    truth += [item for p in panels for item in p.items]
    dets: list[tuple[int, list[float], float]] = []
    for cat, box in truth:
        miss, frac, lo, hi = DETECT_PARAMS[cat]
        if cat != PANEL and rng.random() < miss:
            continue
        bbox = jitter(rng, box, rng.uniform(frac / 2, frac), width, height)
        dets.append((cat, bbox, round(rng.uniform(lo, hi), 4)))
    for kind, k, box in _spurious(rng, spec, boxes, size):
        bbox = jitter(rng, box, 0.01, width, height)
        score = round(rng.uniform(*SPURIOUS_SCORE), 4)
        dets.append((PANEL, bbox, score))
        defects.spurious.append({"bbox": bbox, "score": score, "kind": kind, "panel": k})
    dets.sort(key=lambda d: (d[0], -d[2]))
    annotations = [
        {
            "image_id": image_id,
            "category_id": cat,
            "bbox": bbox,
            "score": score,
            "area": round(bbox[2] * bbox[3], 2),
        }
        for cat, bbox, score in dets
    ]
    return annotations, defects
