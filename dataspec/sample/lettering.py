"""Lettering: captions, speech and thought balloons, sound effects, in reading order.

Western pages letter horizontally, balloons placed left to right. Right-to-left (manga-like)
pages letter vertically: tall narrow balloons and caption boxes holding columns of letters,
the first column on the right, balloons placed from the right. Each line drawn is recorded
on the `DrawnPanel` with the box its letters cover.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from . import content
from .layout import union
from .truth import BALLOON, TEXT, Box, DrawnPanel, Line, PageSpec

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
CAPTION_FILL: RGB = (255, 244, 170)
SFX_COLOURS: tuple[RGB, ...] = ((220, 30, 30), (250, 150, 20), (250, 220, 40), (60, 120, 230))
MAX_COLUMN = 10
"""Most letters in one column of vertical lettering."""


@dataclass(frozen=True)
class Fonts:
    """Fonts for lettering, plus the scale factor for sizes (page width / 800)."""

    text: Font
    scale: float


def fonts_for(width: int) -> Fonts:
    """The lettering font for pages ``width`` pixels wide."""
    scale = width / 800
    return Fonts(text=load_font(round(12 * scale)), scale=scale)


@lru_cache(maxsize=64)
def load_font(size: int) -> Font:
    """Pillow's default font at ``size`` px (the bitmap default if FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _wrap(text: str, font: Font, max_w: float) -> list[str] | None:
    """Greedy word wrap to ``max_w`` px; ``None`` when a single word does not fit."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if font.getlength(word) > max_w:
            return None
        trial = f"{cur} {word}" if cur else word
        if font.getlength(trial) <= max_w:
            cur = trial
        else:
            lines.append(cur)
            cur = word
    if cur:
        lines.append(cur)
    return lines


def _columns(text: str, max_chars: int) -> list[str]:
    """Vertical lettering: words packed into columns of at most ``max_chars`` letters
    (first column first, read right to left); a longer word runs on into the next column."""
    cols: list[str] = []
    cur = ""
    for word in text.split():
        while len(word) > max_chars:
            if cur:
                cols.append(cur)
                cur = ""
            cols.append(word[:max_chars])
            word = word[max_chars:]
        trial = f"{cur} {word}" if cur else word
        if len(trial) <= max_chars:
            cur = trial
        else:
            cols.append(cur)
            cur = word
    if cur:
        cols.append(cur)
    return cols


def _box_of(draw: ImageDraw.ImageDraw, pos: tuple[int, int], text: str, font: Font) -> Box:
    left, top, right, bot = draw.textbbox(pos, text, font=font)
    return (int(left), int(top), int(right - left), int(bot - top))


def _draw_text_block(
    draw: ImageDraw.ImageDraw,
    lines: Sequence[str],
    font: Font,
    cx: float | None,
    x: float,
    y: float,
    lh: int,
) -> Box:
    """Draw lines (centred on ``cx`` when given, else left-aligned at ``x``); return their box."""
    box: Box | None = None
    for i, line in enumerate(lines):
        lx = cx - font.getlength(line) / 2 if cx is not None else x
        pos = (round(lx), round(y + i * lh))
        draw.text(pos, line, font=font, fill=BLACK)
        box = union(box, _box_of(draw, pos, line, font))
    assert box is not None
    return box


@lru_cache(maxsize=4096)
def _glyph(font: Font, ch: str) -> tuple[Image.Image, int, int, float]:
    """One letter rendered once: its mask, offset from the drawing position, and advance."""
    left, top, right, bot = (int(v) for v in font.getbbox(ch))
    mask = Image.new("L", (max(1, right - left), max(1, bot - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), ch, font=font, fill=255)
    return mask, left, top, font.getlength(ch)


def _draw_columns(
    draw: ImageDraw.ImageDraw, cols: Sequence[str], font: Font, right: float, y: float, step: int
) -> Box:
    """Draw vertical columns of letters ``step`` px apart, the first column at ``right``, each
    next one to its left; return their box."""
    colw = round(step * 1.25)
    box: Box | None = None
    for k, col in enumerate(cols):
        cx = right - colw * k - colw / 2
        for i, ch in enumerate(col):
            if ch == " ":
                continue
            mask, left, top, advance = _glyph(font, ch)
            pos = (round(cx - advance / 2) + left, round(y + i * step) + top)
            draw.bitmap(pos, mask, fill=BLACK)
            box = union(box, (pos[0], pos[1], mask.width, mask.height))
    assert box is not None
    return box


def caption(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    spec: PageSpec,
    fonts: Fonts,
    inner: tuple[int, int, int, int],
    place: str,
    first: bool,
    panel: DrawnPanel,
) -> int:
    """A caption box (narration) in the corner reading starts from; returns the text cursor."""
    ix0, iy0, ix1, iy1 = inner
    iw, ih = ix1 - ix0, iy1 - iy0
    s, font = fonts.scale, fonts.text
    lh, pad = round(round(12 * s) * 1.25), max(4, round(6 * s))
    if rng.random() >= (0.45 if first else 0.15):
        return iy0 + 2
    text = content.narration(rng, spec.cast, place)
    if spec.rtl:  # vertical, in the top-right corner
        step = round(12 * s * 1.1)
        cols = _columns(text, max(3, min(MAX_COLUMN, int((ih * 0.45 - 2 * pad) // step))))
        longest = max(len(c) for c in cols)
        cb = (
            round(ix1 - len(cols) * round(step * 1.25) - 2 * pad),
            iy0,
            ix1,
            iy0 + longest * step + 2 * pad,
        )
        if cb[3] - iy0 >= ih * 0.5 or cb[2] - cb[0] >= iw * 0.45:
            return iy0 + 2
        draw.rectangle(cb, fill=WHITE, outline=BLACK, width=2)
        tb = _draw_columns(draw, cols, font, ix1 - pad, iy0 + pad, step)
        panel.items.append((TEXT, tb))
        panel.lines.append(Line("narration", text, "Narrator", tb))
        return cb[3] + 6
    wrapped = _wrap(text, font, min(iw * 0.7, 260 * s) - 2 * pad)
    if not wrapped:
        return iy0 + 2
    tw = max(font.getlength(line) for line in wrapped)
    cb = (ix0, iy0, round(ix0 + tw + 2 * pad), iy0 + len(wrapped) * lh + 2 * pad)
    if cb[3] - iy0 >= ih * 0.35:
        return iy0 + 2
    draw.rectangle(cb, fill=CAPTION_FILL, outline=BLACK, width=2)
    tb = _draw_text_block(draw, wrapped, font, None, ix0 + pad, iy0 + pad, lh)
    panel.items.append((TEXT, tb))
    panel.lines.append(Line("narration", text, "Narrator", tb))
    return cb[3] + 6


def _balloon(
    draw: ImageDraw.ImageDraw,
    fonts: Fonts,
    spec: PageSpec,
    text: str,
    slot: tuple[float, float],
    inner: tuple[int, int, int, int],
    top: float,
    u: float,
) -> tuple[Box, Box, float, float, float] | None:
    """Lay out one balloon's text in ``slot`` (x0, width) from ``top``; draw the letters.

    Returns (balloon box, text box, centre x, balloon bottom, tip length factor) or None
    when it does not fit. The balloon outline is drawn by the caller, under nothing."""
    s, font = fonts.scale, fonts.text
    iy1 = inner[3]
    max_ew = min(slot[1] - 6, 260 * s)
    step, lh = round(12 * s * 1.1), round(round(12 * s) * 1.25)
    cols: list[str] = []
    wrapped: list[str] = []
    if spec.rtl:
        max_chars = min(MAX_COLUMN, int(((iy1 - top) * 0.6 - 14 * s) / 1.3 // step))
        if max_chars < 3:
            return None
        cols = _columns(text, max_chars)
        tw = float(len(cols) * round(step * 1.25))
        th = float(max(len(c) for c in cols) * step)
        ew, eh = tw * 1.35 + 14 * s, th * 1.3 + 14 * s
    else:
        wrapped = _wrap(text, font, (max_ew - 18 * s) / 1.4) or []
        if not wrapped:
            return None
        tw = max(font.getlength(line) for line in wrapped)
        th = float(len(wrapped) * lh)
        ew, eh = min(max_ew, tw * 1.4 + 18 * s), th * 1.5 + 12 * s
    if ew > max_ew:
        return None
    ex = slot[0] + (slot[1] - ew) * u
    if top + eh + 22 * s > iy1 - 6:
        return None
    bbox = (round(ex), round(top), round(ew), round(eh))
    draw.ellipse((ex, top, ex + ew, top + eh), fill=WHITE, outline=BLACK, width=2)
    if spec.rtl:
        tb = _draw_columns(draw, cols, font, ex + (ew + tw) / 2, top + (eh - th) / 2 + 1, step)
    else:
        ty = top + (eh - th) / 2 + 1
        tb = _draw_text_block(draw, wrapped, font, ex + ew / 2, 0, ty, lh)
    return bbox, tb, ex + ew / 2, top + eh, 22 * s


def balloons(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    spec: PageSpec,
    fonts: Fonts,
    inner: tuple[int, int, int, int],
    cursor: int,
    heads: list[tuple[float, float]],
    panel: DrawnPanel,
) -> int:
    """Speech / thought balloons in reading order, stepping down; returns the lowest tip."""
    s = fonts.scale
    ix0, _, ix1, iy1 = inner
    iw = ix1 - ix0
    n_balloons = rng.choices((0, 1, 2, 3), (3, 5, 3, 1))[0]
    n_balloons = min(n_balloons, max(1, int(iw // (150 * s))))
    bslot = iw / max(1, n_balloons)
    bottom = cursor
    for bi in range(n_balloons):
        thought = rng.random() < 0.15
        if panel.names:
            k = rng.randrange(len(panel.names))
            speaker, target = panel.names[k], heads[k]
        else:
            speaker, target = rng.choice(spec.cast), (ix0 + iw / 2, iy1)
        text = content.thought(rng, spec.cast) if thought else content.dialogue(rng, spec.cast)
        x0 = ix1 - (bi + 1) * bslot if spec.rtl else ix0 + bi * bslot
        top = cursor + rng.randint(0, 8) + bi * round(8 * s)
        laid = _balloon(draw, fonts, spec, text, (x0, bslot), inner, top, rng.uniform(0.1, 0.9))
        if laid is None:
            continue
        bbox, tb, bcx, base, tail = laid
        tip_x = bcx + max(-30 * s, min(30 * s, (target[0] - bcx) * 0.4))
        tip_y = base + tail
        if thought:
            for f, rad in ((0.45, 5 * s), (0.85, 3 * s)):
                px, py = bcx + (tip_x - bcx) * f, base + tail * f
                draw.ellipse(
                    (px - rad, py - rad, px + rad, py + rad), fill=WHITE, outline=BLACK, width=2
                )
        else:
            tri = [(bcx - 7 * s, base - 6), (bcx + 7 * s, base - 6), (tip_x, tip_y)]
            draw.polygon(tri, fill=WHITE)
            draw.line([tri[0], tri[2], tri[1]], fill=BLACK, width=2)
        panel.items.append((BALLOON, bbox))
        panel.items.append((TEXT, tb))
        panel.lines.append(Line("thought" if thought else "dialogue", text, speaker, tb))
        bottom = max(bottom, round(tip_y))
    return bottom


def sfx(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    fonts: Fonts,
    inner: tuple[int, int, int, int],
    bottom: int,
    panel: DrawnPanel,
) -> None:
    """Occasionally a big sound effect below the balloons."""
    ix0, _, ix1, iy1 = inner
    if rng.random() >= 0.07:
        return
    word = rng.choice(content.SFX_WORDS)
    sfont = load_font(round(rng.uniform(30, 46) * fonts.scale))
    left, top, right, bot = sfont.getbbox(word)
    sw, sh = right - left, bot - top
    lo, hi = bottom + 4, iy1 - sh - 6
    if sw >= ix1 - ix0 - 8 or lo > hi:
        return
    px = rng.randint(int(ix0) + 4, int(ix1 - sw) - 4) - int(left)
    py = rng.randint(int(lo), int(hi)) - int(top)
    colour = rng.choice(SFX_COLOURS)
    draw.text((px, py), word, font=sfont, fill=colour, stroke_width=2, stroke_fill=BLACK)
    sb = draw.textbbox((px, py), word, font=sfont, stroke_width=2)
    box = (int(sb[0]), int(sb[1]), int(sb[2] - sb[0]), int(sb[3] - sb[1]))
    panel.items.append((TEXT, box))
    panel.lines.append(Line("sfx", word, "", box))
