"""Inline SVG charts with labelled axes: histograms of pages, line charts per epoch."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "count_ticks", "histogram", "line_chart", "nice_ticks"]

WIDTH, HEIGHT = 400, 230
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 36, 46
"""Chart size and plot margins (px): the y-axis label and ticks sit in LEFT."""

AXIS = "#333"
GRID = "#e3e6ea"


def _fmt(value: float) -> str:
    return f"{round(value, 10):g}"


def _step(raw: float) -> float:
    """The 1-2-5 step at least `raw`."""
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-12))


def count_ticks(top: int) -> list[int]:
    """Integer y ticks from 0 up to at least `top` (about 4 steps)."""
    if top <= 0:
        return [0, 1]
    step = max(1, math.ceil(_step(top / 4)))
    return list(range(0, step * math.ceil(top / step) + 1, step))


def nice_ticks(lo: float, hi: float) -> list[float]:
    """Round ticks covering [lo, hi] (about 4 steps)."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    step = _step((hi - lo) / 4)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def _frame(title: str, y_label: str, x_label: str) -> list[str]:
    """The opening tag, title and both axis labels."""
    mid_y = TOP + (HEIGHT - TOP - BOTTOM) / 2
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<text class="y-label" x="14" y="{mid_y:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {mid_y:.1f})">{escape(y_label)}</text>',
        f'<text class="x-label" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" '
        f'y="{HEIGHT - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>',
    ]


def _y_axis(ticks: Sequence[float], y_of: Callable[[float], float]) -> list[str]:
    """The y axis line, its ticks, tick labels and light grid lines."""
    bottom = HEIGHT - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="{AXIS}"/>']
    for t in ticks:
        y = y_of(t)
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="{AXIS}"/>'
            f'<text class="y-tick" x="{LEFT - 6}" y="{y + 4:.1f}" font-size="10" '
            f'text-anchor="end">{_fmt(t)}</text>'
        )
    return out


def _x_tick(x: float, label: str) -> str:
    bottom = HEIGHT - BOTTOM
    return (
        f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="{AXIS}"/>'
        f'<text class="x-tick" x="{x:.1f}" y="{bottom + 16}" font-size="10" '
        f'text-anchor="middle">{escape(label)}</text>'
    )


def histogram(
    title: str,
    values: Sequence[float],
    lo: float,
    hi: float,
    bins: int,
    *,
    x_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Pages per bin of `values` clipped to [lo, hi]: bars (title: the count), both axes.

    `x_ticks` are (value, label) pairs; by default lo, the middle and hi ("+" when some
    values lie above hi).
    """
    counts = [0] * bins
    for v in values:
        if math.isfinite(v):
            i = int((min(max(v, lo), hi) - lo) / (hi - lo) * bins)
            counts[min(i, bins - 1)] += 1
    ticks = count_ticks(max(counts))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = HEIGHT - BOTTOM

    def y_of(n: float) -> float:
        return bottom - plot_h * n / ticks[-1]

    def x_of(v: float) -> float:
        return LEFT + plot_w * (v - lo) / (hi - lo)

    parts = _frame(title, "pages", x_label) + _y_axis(ticks, y_of)
    bar = plot_w / bins
    for i, c in enumerate(counts):
        y = y_of(c)
        parts.append(
            f'<rect x="{LEFT + i * bar + 0.5:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" '
            f'height="{bottom - y:.1f}" fill="#3b6ea8"><title>{c}</title></rect>'
        )
    parts.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="{AXIS}"/>'
    )
    if x_ticks is None:
        over = "+" if any(math.isfinite(v) and v > hi for v in values) else ""
        x_ticks = [(lo, _fmt(lo)), ((lo + hi) / 2, _fmt((lo + hi) / 2)), (hi, _fmt(hi) + over)]
    parts += [_x_tick(x_of(v), label) for v, label in x_ticks]
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Series:
    """One line of a line chart: (x, y) points (y None: no point there)."""

    name: str
    points: Sequence[tuple[int, float | None]]
    colour: str
    dashed: bool = False


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    y_label: str,
    x_label: str = "epoch",
    y_range: tuple[float, float] | None = None,
) -> str:
    """Lines with a marker per point (title: series, x and value), integer x ticks, legend.

    The y axis spans `y_range` widened to the data (default: 0 to the data's maximum).
    """
    xs = sorted({x for s in series for x, _ in s.points})
    ys = [y for s in series for _, y in s.points if y is not None and math.isfinite(y)]
    lo, hi = y_range if y_range is not None else (0.0, 0.0)
    lo, hi = min([lo, *ys]), max([hi, *ys])
    ticks = nice_ticks(lo, hi)
    x_lo, x_hi = (xs[0], xs[-1]) if xs else (0, 1)
    if x_lo == x_hi:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    pad = 12
    bottom = HEIGHT - BOTTOM

    def y_of(v: float) -> float:
        return bottom - plot_h * (v - ticks[0]) / (ticks[-1] - ticks[0])

    def x_of(v: float) -> float:
        return LEFT + pad + (plot_w - 2 * pad) * (v - x_lo) / (x_hi - x_lo)

    parts = _frame(title, y_label, x_label) + _y_axis(ticks, y_of)
    parts.append(
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="{AXIS}"/>'
    )
    every = max(1, math.ceil(len(xs) / 10))
    parts += [_x_tick(x_of(x), str(x)) for x in xs[::every]]
    for s in series:
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        run: list[str] = []
        for x, y in [*s.points, (0, None)]:
            if y is not None and math.isfinite(y):
                run.append(f"{x_of(x):.1f},{y_of(y):.1f}")
                continue
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{s.colour}" '
                    f'stroke-width="2"{dash}/>'
                )
            run = []
        for x, y in s.points:
            if y is not None and math.isfinite(y):
                parts.append(
                    f'<circle class="point" cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" '
                    f'fill="{s.colour}"><title>{escape(s.name)}, {escape(x_label)} {x}: '
                    f"{y:.4g}</title></circle>"
                )
    for i, s in enumerate(series):
        x = LEFT + 8 + i * ((WIDTH - LEFT - RIGHT) // max(1, len(series)))
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        parts.append(
            f'<line x1="{x}" y1="25" x2="{x + 16}" y2="25" stroke="{s.colour}" '
            f'stroke-width="2"{dash}/><text x="{x + 20}" y="28" font-size="10">'
            f"{escape(s.name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
