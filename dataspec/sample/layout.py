"""Panel grids: rows, a tall panel beside two stacked ones, and the true reading order.

A page is laid out left to right (rows top to bottom, panels left to right in a row, the
tall block read column by column); a right-to-left page is the mirror image of such a
layout, so its true order reads each row from the right. Every box list returned here is in
true reading order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .truth import Box, Direction

MAX_PANELS = 16
"""The most panels a page has (a few dense pages have 13-16)."""
DENSE_MIN_SIZE = (600, 900)
"""Pages smaller than this (width, height) keep to at most 9 panels."""


def split(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``weights`` (summing to total)."""
    whole = sum(weights)
    parts: list[int] = []
    acc = 0.0
    prev = 0
    for w in weights:
        acc += w
        cur = round(total * acc / whole)
        parts.append(cur - prev)
        prev = cur
    return parts


def _row(
    rng: random.Random, x0: int, x1: int, y: int, h: int, gutter: int, count: int
) -> list[Box]:
    """Panels of one row, left to right; sometimes their tops differ by 2-12 px."""
    widths = split(x1 - x0 - gutter * (count - 1), [rng.uniform(0.7, 1.4) for _ in range(count)])
    tops = [0] * count
    if count >= 2 and rng.random() < 0.35:
        tops = [rng.randint(0, 12) for _ in range(count)]
        i, j = rng.sample(range(count), 2)
        tops[i], tops[j] = 0, rng.randint(2, 12)
    boxes: list[Box] = []
    x = x0
    for w, dt in zip(widths, tops, strict=True):
        boxes.append((x, y + dt, w, h - dt))
        x += w + gutter
    return boxes


def _tall_block(
    rng: random.Random, x0: int, x1: int, y: int, h: int, gutter: int, side: str
) -> list[Box]:
    """One tall panel beside two stacked ones, in reading order (left column first)."""
    inner = x1 - x0 - gutter
    tall_w = round(inner * rng.uniform(0.42, 0.6))
    stack_w = inner - tall_w
    top_h = round((h - gutter) * rng.uniform(0.4, 0.6))
    bottom_h = h - gutter - top_h
    if side == "left":
        sx = x0 + tall_w + gutter
        stacked = [(sx, y, stack_w, top_h), (sx, y + top_h + gutter, stack_w, bottom_h)]
        return [(x0, y, tall_w, h), *stacked]
    tx = x0 + stack_w + gutter
    stacked = [(x0, y, stack_w, top_h), (x0, y + top_h + gutter, stack_w, bottom_h)]
    return [*stacked, (tx, y, tall_w, h)]


def _panel_count(rng: random.Random, width: int, height: int) -> int:
    """Panels on a story page: mostly 3-9, some 10-12, a few dense 13-16."""
    roll = rng.random()
    if width >= DENSE_MIN_SIZE[0] and height >= DENSE_MIN_SIZE[1]:
        if roll < 0.05:
            return rng.randint(13, MAX_PANELS)
        if roll < 0.11:
            return rng.randint(10, 12)
    return rng.randint(3, 9)


def _rows(rng: random.Random, n: int, side: bool) -> list[int]:
    """Panels per row for ``n`` panels outside the tall block (at most 3, dense pages 4)."""
    if not n:
        return []
    per_row = 3 if n <= 9 else 4
    most_rows = (2 if side else 4) if n <= 9 else (3 if side else 5)
    n_rows = rng.randint(-(-n // per_row), max(-(-n // per_row), min(n, most_rows)))
    blocks = [1] * n_rows
    for _ in range(n - n_rows):
        blocks[rng.choice([i for i, c in enumerate(blocks) if c < per_row])] += 1
    return blocks


def layout(
    rng: random.Random, width: int, height: int, cover: bool, direction: Direction = "ltr"
) -> list[Box]:
    """Panel boxes of one page in true reading order (``rtl``: the mirrored grid)."""
    sx, sy = width / 800, height / 1200
    mx = round(rng.uniform(32, 46) * sx)
    my = round(rng.uniform(36, 52) * sy)
    gutter = max(8, round(rng.uniform(12, 20) * sx))
    x0, y0, x1, y1 = mx, my, width - mx, height - my
    if cover:
        return [(x0, y0, x1 - x0, y1 - y0)]
    n = _panel_count(rng, width, height)
    side = rng.choice(("left", "right")) if n <= 12 and rng.random() < 0.22 else None
    blocks = _rows(rng, n - 3 if side else n, side is not None)  # 0 marks the tall block
    if side:
        blocks.insert(rng.randint(0, len(blocks)), 0)
    weights = [rng.uniform(0.8, 1.25) * (2.0 if b == 0 else 1.0) for b in blocks]
    heights = split(y1 - y0 - gutter * (len(blocks) - 1), weights)
    boxes: list[Box] = []
    y = y0
    for count, bh in zip(blocks, heights, strict=True):
        if count == 0:
            assert side is not None
            boxes.extend(_tall_block(rng, x0, x1, y, bh, gutter, side))
        else:
            boxes.extend(_row(rng, x0, x1, y, bh, gutter, count))
        y += bh + gutter
    if direction == "rtl":
        return [mirror(b, width) for b in boxes]
    return boxes


def mirror(box: Box, width: int) -> Box:
    """``box`` reflected about the page's vertical centre line."""
    x, y, w, h = box
    return (width - x - w, y, w, h)


def union(a: Box | None, b: Box) -> Box:
    """Smallest box holding ``a`` and ``b``."""
    if a is None:
        return b
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def overlap_area(a: Box, b: Box) -> int:
    """Area shared by two boxes."""
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, ix) * max(0, iy)


def adjacent(boxes: Sequence[Box], i: int, j: int) -> bool:
    """Panels ``i`` and ``j`` sit side by side or one above the other, so that the box
    holding both covers little else (a merge a detector or a VLM could make)."""
    a, b = boxes[i], boxes[j]
    u = union(a, b)
    if u[2] * u[3] > 1.25 * (a[2] * a[3] + b[2] * b[3]):
        return False
    return all(overlap_area(u, c) == 0 for k, c in enumerate(boxes) if k not in (i, j))
