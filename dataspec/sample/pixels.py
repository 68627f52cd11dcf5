"""Drawing the page JPEGs: panels, backgrounds and characters (lettering: `lettering.py`).

Western (left-to-right) series are drawn in flat colours. Right-to-left (manga-like) series
look different: grey panels under a screentone (a fine regular dot or line pattern over the
backgrounds) and vertical lettering. Each drawn part is recorded in a `DrawnPanel`, in
reading order, for the detector, the VLM and the truth.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from functools import lru_cache

from PIL import Image, ImageDraw

from . import content
from .lettering import BLACK, RGB, WHITE, Fonts, balloons, caption, sfx
from .truth import CHARACTER, FACE, Box, DrawnPanel, PageSpec

JPEG_QUALITY = 85
SKIN: tuple[RGB, ...] = ((240, 205, 170), (205, 155, 115), (150, 100, 70), (250, 225, 200))
TONE_PERIOD = 5
"""Pixels between screentone dots (or lines): fine enough to read as grey from afar."""


@lru_cache(maxsize=8)
def tone_mask(width: int, height: int, kind: str) -> Image.Image:
    """A page-sized mask (``L``): 255 where the screentone's dots or diagonal lines are."""
    p = TONE_PERIOD
    tile = Image.new("L", (p * 8, p * 8), 0)
    draw = ImageDraw.Draw(tile)
    for ty in range(0, p * 8, p):
        for tx in range(0, p * 8, p):
            if kind == "lines":
                draw.line([(tx, ty + p - 1), (tx + p - 1, ty)], fill=255)
            else:
                off = p // 2 if (ty // p) % 2 else 0  # staggered rows, as printed tone is
                cx = (tx + off) % (p * 8)
                draw.ellipse((cx, ty, cx + 1.6, ty + 1.6), fill=255)
    mask = Image.new("L", (width, height), 0)
    for y in range(0, height, tile.height):
        for x in range(0, width, tile.width):
            mask.paste(tile, (x, y))
    return mask


def _tone(img: Image.Image, box: tuple[int, int, int, int], colour: RGB, kind: str) -> None:
    """Lay screentone of ``colour`` over the corners-inclusive ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    region = (x0, y0, x1 + 1, y1 + 1)
    img.paste(colour, region, tone_mask(img.width, img.height, kind).crop(region))


def _shade(c: RGB, d: int) -> RGB:
    """``c`` darkened by ``d`` per channel (clamped)."""
    return (max(0, c[0] - d), max(0, c[1] - d), max(0, c[2] - d))


def _background(
    img: Image.Image,
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    spec: PageSpec,
    box: Box,
    fill: RGB,
    bw: int,
) -> tuple[int, int, int, int]:
    """Panel fill, border, horizon and a few blocks; returns the inner box (x0, y0, x1, y1)."""
    x, y, w, h = box
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=fill, outline=BLACK, width=bw)
    ix0, iy0, ix1, iy1 = x + bw + 3, y + bw + 3, x + w - bw - 4, y + h - bw - 4
    iw, ih = ix1 - ix0, iy1 - iy0
    horizon = iy0 + round(ih * rng.uniform(0.5, 0.75))
    if spec.rtl:
        _tone(img, (ix0, iy0, ix1, horizon - 1), _shade(fill, 120), spec.tone)
    draw.rectangle((ix0, horizon, ix1, iy1), fill=_shade(fill, 25))
    if spec.rtl:
        _tone(img, (ix0, horizon, ix1, iy1), _shade(fill, 170), spec.tone)
    for _ in range(rng.randint(0, 3) if iw > 30 else 0):
        bx = rng.randint(ix0, ix1 - 10)
        bwid = min(ix1 - bx, rng.randint(20, max(21, iw // 4)))
        btop = horizon - rng.randint(10, max(11, ih // 3))
        draw.rectangle((bx, max(iy0, btop), bx + bwid, horizon), fill=_shade(fill, 45))
    return ix0, iy0, ix1, iy1


def _cast(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    spec: PageSpec,
    inner: tuple[int, int, int, int],
    colours: dict[str, RGB],
    panel: DrawnPanel,
) -> list[tuple[float, float]]:
    """Characters along the bottom edge, left to right; returns their head tops."""
    ix0, iy0, ix1, iy1 = inner
    iw, ih = ix1 - ix0, iy1 - iy0
    n_chars = rng.choice((1, 1, 2)) if spec.cover else rng.choices((0, 1, 2, 3), (2, 4, 4, 2))[0]
    names = rng.sample(list(spec.cast), min(n_chars, len(spec.cast)))
    heads: list[tuple[float, float]] = []
    slot = iw / max(1, len(names))
    for i, name in enumerate(names):
        body_h = ih * rng.uniform(0.3, 0.5)
        cw = min(slot * rng.uniform(0.35, 0.6), body_h * rng.uniform(0.6, 0.9))
        cx = ix0 + slot * i + slot / 2 + rng.uniform(-0.15, 0.15) * slot
        r = max(4.0, min(cw * 0.35, body_h * 0.3))
        body = (round(cx - cw / 2), round(iy1 - body_h), round(cx + cw / 2), iy1)
        if rng.random() < 0.5:  # the top half of an ellipse, cut flat by the panel edge
            chord = (body[0], body[1], body[2], body[1] + 2 * (iy1 - body[1]))
            draw.chord(chord, 180, 360, fill=colours[name], outline=BLACK, width=2)
        else:
            draw.rounded_rectangle(
                body, radius=round(cw / 5), fill=colours[name], outline=BLACK, width=2
            )
        hcy = body[1] - r * 0.8
        head = (round(cx - r), round(hcy - r), round(cx + r), round(hcy + r))
        skin = SKIN[content.NAMES.index(name) % len(SKIN)]
        draw.ellipse(head, fill=(235, 235, 235) if spec.rtl else skin, outline=BLACK, width=2)
        if rng.random() >= 0.12:  # facing the reader: eyes, and a face to detect
            e = max(1.5, r / 6)
            for ex in (cx - r / 2.5, cx + r / 2.5):
                draw.ellipse((ex - e, hcy - r / 5 - e, ex + e, hcy - r / 5 + e), fill=BLACK)
            face = (head[0], head[1], head[2] - head[0], head[3] - head[1])
            panel.items.append((FACE, face))
            panel.faces.append((name, face))
        figure = (body[0], head[1], body[2] - body[0], iy1 - head[1])
        panel.items.append((CHARACTER, figure))
        panel.figures.append((name, figure))
        panel.actions.append(f"{name} {rng.choice(content.ACTIONS)}")
        heads.append((cx, head[1]))
    panel.names = names
    return heads


def draw_panel(
    img: Image.Image,
    rng: random.Random,
    box: Box,
    spec: PageSpec,
    fonts: Fonts,
    place: str,
    colours: dict[str, RGB],
    first: bool,
) -> DrawnPanel:
    """Draw one panel (fill, border, characters, lettering) and describe what was drawn."""
    draw = ImageDraw.Draw(img)
    bw = max(2, round(3 * fonts.scale))
    if spec.rtl:
        g = rng.randint(236, 252)
        fill: RGB = (g, g, g)
    else:
        fill = (rng.randint(205, 250), rng.randint(205, 250), rng.randint(205, 250))
    panel = DrawnPanel(box=box)
    inner = _background(img, draw, rng, spec, box, fill, bw)
    if inner[2] - inner[0] < 24 or inner[3] - inner[1] < 24:
        return panel
    heads = _cast(draw, rng, spec, inner, colours, panel)
    cursor = caption(draw, rng, spec, fonts, inner, place, first, panel)
    bottom = balloons(draw, rng, spec, fonts, inner, cursor, heads, panel)
    sfx(draw, rng, fonts, inner, bottom, panel)
    return panel


def cast_colours(rng: random.Random, spec: PageSpec) -> dict[str, RGB]:
    """A colour per cast member (greys on a right-to-left page)."""
    if spec.rtl:
        greys = {n: rng.randint(60, 200) for n in spec.cast}
        return {n: (g, g, g) for n, g in greys.items()}
    return {
        n: (rng.randint(40, 220), rng.randint(40, 220), rng.randint(40, 220)) for n in spec.cast
    }


def draw_page(
    rng: random.Random,
    spec: PageSpec,
    boxes: Sequence[Box],
    size: tuple[int, int],
    fonts: Fonts,
    place: str,
) -> tuple[bytes, list[DrawnPanel]]:
    """Draw a page's panels (in reading order) and its page number; JPEG bytes and panels."""
    width, height = size
    colours = cast_colours(rng, spec)
    img = Image.new("RGB", (width, height), WHITE)
    panels = [
        draw_panel(img, rng, b, spec, fonts, place, colours, i == 0) for i, b in enumerate(boxes)
    ]
    ImageDraw.Draw(img).text(
        (width // 2 - 6, height - max(14, round(28 * height / 1200))),
        str(spec.page),
        font=fonts.text,
        fill=BLACK,
    )
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), panels
