"""Deterministic synthetic comic corpus: page JPEGs, detector COCO output, VLM JSONs, truth.

Run ``python -m dataspec.sample OUT --pages N --seed S``. The layout under ``OUT`` mimics
real users' data::

    images/<Series>/JPG4CBZ/0001.jpg     page images
    predictions.json                     COCO detector output (Windows-path image ids)
    vlm/<Series>/JPG4CBZ_0001.json       one VLM analysis per page
    truth.jsonl                          ground truth, one page per line

Needs Pillow (the ``analyzer`` extra); nothing in :mod:`dataspec` imports this module.
The same seed and arguments give byte-identical files on the same Pillow build.
"""

from __future__ import annotations

import io
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from PIL import Image, ImageDraw, ImageFont

from .io import atomic_write_bytes

__all__ = ["CATEGORIES", "SampleCorpus", "generate_corpus", "main"]

Box = tuple[int, int, int, int]
"""An ``(x, y, w, h)`` pixel box."""
RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

CATEGORIES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "panel", "supercategory": "comic"},
    {"id": 2, "name": "character", "supercategory": "comic"},
    {"id": 3, "name": "balloon", "supercategory": "comic"},
    {"id": 4, "name": "text", "supercategory": "comic"},
    {"id": 5, "name": "face", "supercategory": "comic"},
)
PANEL, CHARACTER, BALLOON, TEXT, FACE = 1, 2, 3, 4, 5

COCO_ROOT = "E:\\CalibreComics_extracted"
SUBDIR = "JPG4CBZ"
JPEG_QUALITY = 85
BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
CAPTION_FILL: RGB = (255, 244, 170)

# --------------------------------------------------------------------------- word lists

SERIES_TITLES: tuple[str, ...] = (
    "The Amazing Spider-Man (2018) 001",
    "Saga #12",
    "Batman - Year One 02",
    "Y - The Last Man 010",
    "Paper Girls #3",
    "Hellboy & the B.P.R.D. 1952 01",
    "Sandman Vol. 2 - The Doll's House",
    "Monstress 004",
    "Invincible #50",
    "Lumberjanes 017",
    "Black Hammer '45 01",
    "Usagi Yojimbo (1996) 120",
    "Daredevil - Born Again (Part 3)",
    "Locke & Key - Welcome to Lovecraft 1",
    "Giant Days #24",
    "Squirrel Girl, Vol. 1",
    "Fables 075",
    "East of West #7",
    "Descender (2015) 002",
    "The Wicked + The Divine 033",
)
TWIN_PAIRS: tuple[tuple[str, str], ...] = (
    ("X-Men 01", "X Men 01"),
    ("Spider-Gwen #5", "Spider Gwen 5"),
    ("She-Hulk (2014) 01", "She Hulk 2014 01"),
    ("Ms. Marvel 001", "ms marvel 001"),
)
EXTRA_TITLES: tuple[str, ...] = (
    "Starfall",
    "Night Owls",
    "Iron Tide",
    "Ghost Harbor",
    "Red Meridian",
    "Hollow Crown",
    "Paper Moon",
    "Static Saints",
    "Blue Comet",
    "Wild Hunt",
)
NAMES: tuple[str, ...] = (
    "Peter",
    "Miles",
    "Gwen",
    "Alana",
    "Marko",
    "Kamala",
    "Logan",
    "Jean",
    "Hazel",
    "Izabel",
    "Bruce",
    "Selina",
    "Mac",
    "Erin",
    "Tiffany",
    "Ororo",
    "Usagi",
    "Maika",
    "Kippa",
    "Yorick",
    "Tilda",
    "Ripley",
    "Bodie",
    "Nadia",
)
PLACES: tuple[tuple[str, str], ...] = (
    ("on", "a rain-soaked rooftop"),
    ("in", "a narrow alley"),
    ("on", "a starship bridge"),
    ("in", "a forest clearing"),
    ("in", "an all-night diner"),
    ("on", "a subway platform"),
    ("in", "a cluttered laboratory"),
    ("in", "a ruined throne room"),
    ("on", "a busy city street"),
    ("in", "a desert canyon"),
    ("in", "a school hallway"),
    ("on", "a fishing pier"),
)
SHOTS: tuple[str, ...] = ("Wide shot", "Medium shot", "Close-up", "Low-angle shot", "Long shot")
MOODS: tuple[str, ...] = ("tense", "playful", "ominous", "melancholy", "urgent", "hopeful")
ACTIONS: tuple[str, ...] = (
    "points at something off-panel",
    "runs toward the reader",
    "crouches behind cover",
    "turns away",
    "raises a fist",
    "looks over a shoulder",
    "reaches out a hand",
    "listens intently",
    "steps back in surprise",
    "holds up a glowing device",
)
PLOTS: tuple[str, ...] = (
    "argue about the missing signal",
    "plan their escape",
    "confront a hidden enemy",
    "search for a lost friend",
    "regroup after the ambush",
    "uncover an old secret",
)
INTERJECTIONS: tuple[str, ...] = (
    "WAIT",
    "LOOK OUT",
    "LISTEN",
    "HEY",
    "NO",
    "COME ON",
    "HOLD ON",
    "EASY",
)
SUBJECTS: tuple[str, ...] = ("WE", "THEY", "YOU", "I")
VERBS: tuple[str, ...] = (
    "HAVE TO FIND",
    "CAN'T TRUST",
    "NEED TO STOP",
    "NEVER SHOULD'VE LEFT",
    "ALREADY LOST",
    "WON'T LET GO OF",
    "HAVE TO WARN",
    "CAN STILL SAVE",
)
OBJECTS: tuple[str, ...] = (
    "THE SHIP",
    "THE KID",
    "THIS CITY",
    "THAT SIGNAL",
    "THE REACTOR",
    "THE MAP",
    "THE KEY",
    "EVERYONE",
    "THE TRAIN",
    "THE OLD MAN",
)
QUESTIONS: tuple[str, ...] = (
    "WHERE DID {name} GO?",
    "DID YOU HEAR THAT?",
    "WHAT IS THAT THING?",
    "WHY WOULD {name} LIE TO US?",
    "ARE YOU SURE ABOUT THIS?",
    "HOW LONG DO WE HAVE?",
)
SHORT_LINES: tuple[str, ...] = (
    "RUN!",
    "NOT AGAIN...",
    "GOT IT!",
    "STAY CLOSE.",
    "TRUST ME.",
    "IT'S A TRAP!",
    "NOW!",
)
THOUGHTS: tuple[str, ...] = (
    "I SHOULD HAVE TOLD {name}...",
    "MAYBE THIS WAS A MISTAKE.",
    "{name} CAN'T KNOW ABOUT THIS.",
    "KEEP IT TOGETHER.",
    "JUST ONE MORE STEP...",
)
NARRATIONS: tuple[str, ...] = (
    "MEANWHILE...",
    "THREE HOURS LATER.",
    "{place}. MIDNIGHT.",
    "{name} NEVER SAW IT COMING.",
    "THE NEXT MORNING...",
    "SOMEWHERE ACROSS TOWN...",
    "IT HAD BEEN RAINING FOR DAYS.",
)
SFX_WORDS: tuple[str, ...] = (
    "BLAM!",
    "KRAK!",
    "THWIP!",
    "BOOM!",
    "ZZZAK!",
    "WHAM!",
    "SKREEE!",
    "KA-CHUNK!",
)
SFX_COLOURS: tuple[RGB, ...] = ((220, 30, 30), (250, 150, 20), (250, 220, 40), (60, 120, 230))
SKIN: tuple[RGB, ...] = ((240, 205, 170), (205, 155, 115), (150, 100, 70), (250, 225, 200))

# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class SampleCorpus:
    """Where :func:`generate_corpus` put each part of the corpus."""

    root: Path
    images_dir: Path
    coco_path: Path
    vlm_dir: Path
    truth_path: Path
    pages: int


@dataclass
class _Line:
    """One piece of lettered text: kind is dialogue, thought, narration or sfx."""

    kind: str
    text: str
    speaker: str


@dataclass
class _Panel:
    """A drawn panel: its box, text in reading order, cast, and detectable parts."""

    box: Box
    lines: list[_Line] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    items: list[tuple[int, Box]] = field(default_factory=list)  # (category, box)


@dataclass(frozen=True)
class _Fonts:
    """Fonts for lettering, plus the scale factor for SFX sizes."""

    text: Font
    scale: float


@dataclass(frozen=True)
class _PageSpec:
    """What to draw for one page; everything random comes from ``seed``."""

    series: str
    page: int
    cast: tuple[str, ...]
    cover: bool
    vlm_off: bool
    seed: int


# --------------------------------------------------------------------------- helpers


def _norm_key(name: str) -> str:
    """Lower-case alphanumerics only: the key under which punctuation twins collide."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _split(total: int, weights: Sequence[float]) -> list[int]:
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


def _json_bytes(obj: Any, *, indent: int | None = None) -> bytes:
    """Serialise with sorted keys so that output bytes are stable."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=indent) + "\n").encode()


def _load_font(size: int) -> Font:
    """Pillow's default font at ``size`` px (the bitmap default if FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _union(a: Box | None, b: Box) -> Box:
    """Smallest box holding ``a`` and ``b``."""
    if a is None:
        return b
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


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


def _who(names: Sequence[str]) -> str:
    """Join names as English prose: 'A', 'A and B', 'A, B and C'."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


# --------------------------------------------------------------------------- text


def _dialogue(rng: random.Random, cast: Sequence[str]) -> str:
    """A short spoken line."""
    name = rng.choice(cast).upper()
    roll = rng.random()
    if roll < 0.3:
        return (
            f"{rng.choice(INTERJECTIONS)}, {name}! {rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
            f"{rng.choice(OBJECTS)}!"
        )
    if roll < 0.6:
        return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
    if roll < 0.85:
        return rng.choice(QUESTIONS).format(name=name)
    return rng.choice(SHORT_LINES)


def _thought(rng: random.Random, cast: Sequence[str]) -> str:
    """A short thought line."""
    return rng.choice(THOUGHTS).format(name=rng.choice(cast).upper())


def _narration(rng: random.Random, cast: Sequence[str], place: str) -> str:
    """A short caption-box narration line."""
    where = place.split(" ", 1)[1].upper()
    return rng.choice(NARRATIONS).format(name=rng.choice(cast).upper(), place=where)


# --------------------------------------------------------------------------- layout


def _row(
    rng: random.Random, x0: int, x1: int, y: int, h: int, gutter: int, count: int
) -> list[Box]:
    """Panels of one row, left to right; sometimes their tops differ by 2-12 px."""
    widths = _split(x1 - x0 - gutter * (count - 1), [rng.uniform(0.7, 1.4) for _ in range(count)])
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


def _layout(rng: random.Random, width: int, height: int, cover: bool) -> list[Box]:
    """Panel boxes of one page in true reading order."""
    sx, sy = width / 800, height / 1200
    mx = round(rng.uniform(32, 46) * sx)
    my = round(rng.uniform(36, 52) * sy)
    gutter = max(8, round(rng.uniform(12, 20) * sx))
    x0, y0, x1, y1 = mx, my, width - mx, height - my
    if cover:
        return [(x0, y0, x1 - x0, y1 - y0)]
    n = rng.randint(3, 9)
    side = rng.choice(("left", "right")) if rng.random() < 0.22 else None
    rest = n - 3 if side else n
    blocks: list[int] = []  # panels per row; 0 marks the tall+stacked block
    if rest:
        n_rows = rng.randint(-(-rest // 3), min(rest, 2 if side else 4))
        blocks = [1] * n_rows
        for _ in range(rest - n_rows):
            blocks[rng.choice([i for i, c in enumerate(blocks) if c < 3])] += 1
    if side:
        blocks.insert(rng.randint(0, len(blocks)), 0)
    weights = [rng.uniform(0.8, 1.25) * (2.0 if b == 0 else 1.0) for b in blocks]
    heights = _split(y1 - y0 - gutter * (len(blocks) - 1), weights)
    boxes: list[Box] = []
    y = y0
    for count, bh in zip(blocks, heights, strict=True):
        if count == 0:
            assert side is not None
            boxes.extend(_tall_block(rng, x0, x1, y, bh, gutter, side))
        else:
            boxes.extend(_row(rng, x0, x1, y, bh, gutter, count))
        y += bh + gutter
    return boxes


# --------------------------------------------------------------------------- drawing


def _shade(c: RGB, d: int) -> RGB:
    """``c`` darkened by ``d`` per channel (clamped)."""
    return (max(0, c[0] - d), max(0, c[1] - d), max(0, c[2] - d))


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
        left, top, right, bot = draw.textbbox(pos, line, font=font)
        box = _union(box, (int(left), int(top), int(right - left), int(bot - top)))
    assert box is not None
    return box


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    box: Box,
    spec: _PageSpec,
    fonts: _Fonts,
    place: str,
    colours: dict[str, RGB],
    first: bool,
) -> _Panel:
    """Draw one panel (fill, border, characters, lettering) and describe what was drawn."""
    s = fonts.scale
    x, y, w, h = box
    bw = max(2, round(3 * s))
    fill: RGB = (rng.randint(205, 250), rng.randint(205, 250), rng.randint(205, 250))
    draw.rectangle((x, y, x + w - 1, y + h - 1), fill=fill, outline=BLACK, width=bw)
    ix0, iy0, ix1, iy1 = x + bw + 3, y + bw + 3, x + w - bw - 4, y + h - bw - 4
    iw, ih = ix1 - ix0, iy1 - iy0
    panel = _Panel(box=box)

    # background: a horizon and a few blocks ("buildings", "trees")
    horizon = iy0 + round(ih * rng.uniform(0.5, 0.75))
    draw.rectangle((ix0, horizon, ix1, iy1), fill=_shade(fill, 25))
    for _ in range(rng.randint(0, 3)):
        bx = rng.randint(ix0, ix1 - 10)
        bwid = min(ix1 - bx, rng.randint(20, max(21, iw // 4)))
        btop = horizon - rng.randint(10, max(11, ih // 3))
        draw.rectangle((bx, max(iy0, btop), bx + bwid, horizon), fill=_shade(fill, 45))

    # characters along the bottom edge, left to right
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
            draw.chord(
                (body[0], body[1], body[2], body[1] + 2 * (iy1 - body[1])),
                180,
                360,
                fill=colours[name],
                outline=BLACK,
                width=2,
            )
        else:
            draw.rounded_rectangle(
                body, radius=round(cw / 5), fill=colours[name], outline=BLACK, width=2
            )
        hcy = body[1] - r * 0.8
        head = (round(cx - r), round(hcy - r), round(cx + r), round(hcy + r))
        draw.ellipse(head, fill=SKIN[NAMES.index(name) % len(SKIN)], outline=BLACK, width=2)
        facing = rng.random() >= 0.12
        if facing:
            e = max(1.5, r / 6)
            for ex in (cx - r / 2.5, cx + r / 2.5):
                draw.ellipse((ex - e, hcy - r / 5 - e, ex + e, hcy - r / 5 + e), fill=BLACK)
            panel.items.append((FACE, (head[0], head[1], head[2] - head[0], head[3] - head[1])))
        panel.items.append((CHARACTER, (body[0], head[1], body[2] - body[0], iy1 - head[1])))
        panel.actions.append(f"{name} {rng.choice(ACTIONS)}")
        heads.append((cx, head[1]))
    panel.names = names

    font = fonts.text
    size = round(12 * s)
    lh = round(size * 1.25)
    pad = max(4, round(6 * s))
    cursor = iy0 + 2

    # caption box (narration) in the top-left corner
    if rng.random() < (0.45 if first else 0.15):
        text = _narration(rng, spec.cast, place)
        wrapped = _wrap(text, font, min(iw * 0.7, 260 * s) - 2 * pad)
        if wrapped:
            tw = max(font.getlength(line) for line in wrapped)
            cb = (ix0, iy0, round(ix0 + tw + 2 * pad), iy0 + len(wrapped) * lh + 2 * pad)
            if cb[3] - iy0 < ih * 0.35:
                draw.rectangle(cb, fill=CAPTION_FILL, outline=BLACK, width=2)
                tb = _draw_text_block(draw, wrapped, font, None, ix0 + pad, iy0 + pad, lh)
                panel.items.append((TEXT, tb))
                panel.lines.append(_Line("narration", text, "Narrator"))
                cursor = cb[3] + 6

    # speech / thought balloons, left to right and stepping down
    n_balloons = rng.choices((0, 1, 2, 3), (3, 5, 3, 1))[0]
    n_balloons = min(n_balloons, max(1, int(iw // (150 * s))))
    bslot = iw / max(1, n_balloons)
    bottom = cursor
    for bi in range(n_balloons):
        thought = rng.random() < 0.15
        if names:
            who = rng.randrange(len(names))
            speaker, target = names[who], heads[who]
        else:
            speaker, target = rng.choice(spec.cast), (ix0 + iw / 2, iy1)
        text = _thought(rng, spec.cast) if thought else _dialogue(rng, spec.cast)
        max_ew = min(bslot - 6, 260 * s)
        wrapped = _wrap(text, font, (max_ew - 18 * s) / 1.4)
        if not wrapped:
            continue
        tw = max(font.getlength(line) for line in wrapped)
        th = len(wrapped) * lh
        ew, eh = min(max_ew, tw * 1.4 + 18 * s), th * 1.5 + 12 * s
        ex = ix0 + bi * bslot + (bslot - ew) * rng.uniform(0.1, 0.9)
        ey = cursor + rng.randint(0, 8) + bi * round(8 * s)
        tail = 22 * s
        if ey + eh + tail > iy1 - 6:
            continue
        bcx = ex + ew / 2
        base_y = ey + eh - 6
        tip_x = bcx + max(-30 * s, min(30 * s, (target[0] - bcx) * 0.4))
        tip_y = ey + eh + tail
        if thought:
            for k, rad in ((0.45, 5 * s), (0.85, 3 * s)):
                px, py = bcx + (tip_x - bcx) * k, ey + eh + (tip_y - ey - eh) * k
                draw.ellipse(
                    (px - rad, py - rad, px + rad, py + rad), fill=WHITE, outline=BLACK, width=2
                )
            draw.ellipse((ex, ey, ex + ew, ey + eh), fill=WHITE, outline=BLACK, width=2)
        else:
            draw.ellipse((ex, ey, ex + ew, ey + eh), fill=WHITE, outline=BLACK, width=2)
            tri = [(bcx - 7 * s, base_y), (bcx + 7 * s, base_y), (tip_x, tip_y)]
            draw.polygon(tri, fill=WHITE)
            draw.line([tri[0], tri[2], tri[1]], fill=BLACK, width=2)
        ty = ey + (eh - th) / 2 + 1
        tb = _draw_text_block(draw, wrapped, font, bcx, 0, ty, lh)
        panel.items.append((BALLOON, (round(ex), round(ey), round(ew), round(eh))))
        panel.items.append((TEXT, tb))
        panel.lines.append(_Line("thought" if thought else "dialogue", text, speaker))
        bottom = max(bottom, round(tip_y))

    # occasionally a big sound effect below the balloons
    if rng.random() < 0.07:
        word = rng.choice(SFX_WORDS)
        sfont = _load_font(round(rng.uniform(30, 46) * s))
        left, top, right, bot = sfont.getbbox(word)
        sw, sh = right - left, bot - top
        lo, hi = bottom + 4, iy1 - sh - 6
        if sw < iw - 8 and lo <= hi:
            px = rng.randint(int(ix0) + 4, int(ix1 - sw) - 4) - int(left)
            py = rng.randint(int(lo), int(hi)) - int(top)
            draw.text(
                (px, py),
                word,
                font=sfont,
                fill=rng.choice(SFX_COLOURS),
                stroke_width=2,
                stroke_fill=BLACK,
            )
            sb = draw.textbbox((px, py), word, font=sfont, stroke_width=2)
            panel.items.append(
                (TEXT, (int(sb[0]), int(sb[1]), int(sb[2] - sb[0]), int(sb[3] - sb[1])))
            )
            panel.lines.append(_Line("sfx", word, ""))
    return panel


# --------------------------------------------------------------------------- VLM + detections


def _vlm_panel(rng: random.Random, p: _Panel, place: tuple[str, str]) -> dict[str, Any]:
    """A VLM-style description of one panel (scene caption, not lettered text)."""
    where = f"{place[0]} {place[1]}"
    shot = rng.choice(SHOTS)
    caption = f"{shot} of {_who(p.names)} {where}." if p.names else f"{shot} of {place[1]}, empty."
    desc = [caption, f"The background shows {place[1]} in muted colours."]
    desc += [a + "." for a in p.actions]
    if any(line.kind in ("dialogue", "thought") for line in p.lines):
        desc.append("Speech balloons carry the conversation.")
    if any(line.kind == "narration" for line in p.lines):
        desc.append("A yellow caption box narrates.")
    elements = [*p.names, place[1].split(" ", 1)[1]]
    if any(line.kind == "sfx" for line in p.lines):
        elements.append("sound effect")
    speakers = [
        {
            "character": line.speaker,
            "dialogue": line.text,
            "speech_type": "sfx" if line.kind == "sfx" else line.kind,
        }
        for line in p.lines
    ]
    return {
        "caption": caption,
        "description": " ".join(desc),
        "key_elements": elements,
        "actions": list(p.actions),
        "speakers": speakers,
    }


def _perturb(rng: random.Random, panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge two neighbouring panels or split one, so the count is off by one."""
    if len(panels) >= 2 and rng.random() < 0.5:
        i = rng.randrange(len(panels) - 1)
        a, b = panels[i], panels[i + 1]
        merged = {
            "caption": a["caption"],
            "description": a["description"] + " " + b["description"],
            "key_elements": list(dict.fromkeys(a["key_elements"] + b["key_elements"])),
            "actions": a["actions"] + b["actions"],
            "speakers": a["speakers"] + b["speakers"],
        }
        return [*panels[:i], merged, *panels[i + 2 :]]
    i = rng.randrange(len(panels))
    p = panels[i]
    half = (len(p["speakers"]) + 1) // 2
    first = {**p, "speakers": p["speakers"][:half], "actions": p["actions"][:1]}
    second = {
        "caption": "Close-up continuing the previous moment.",
        "description": "A tighter view of the same scene. " + p["description"],
        "key_elements": list(p["key_elements"]),
        "actions": p["actions"][1:],
        "speakers": p["speakers"][half:],
    }
    return [*panels[:i], first, second, *panels[i + 1 :]]


def _vlm_page(
    rng: random.Random, spec: _PageSpec, panels: list[_Panel], place: tuple[str, str]
) -> dict[str, Any]:
    """The VLM JSON for one page."""
    vlm = [_vlm_panel(rng, p, place) for p in panels]
    if spec.vlm_off:
        vlm = _perturb(rng, vlm)
    for k, p in enumerate(vlm, 1):
        p["panel_number"] = k
    names = list(dict.fromkeys(n for p in panels for n in p.names))
    who = _who(names) if names else "The cast"
    plot = rng.choice(PLOTS)
    mood = rng.choice(MOODS)
    return {
        "overall_summary": f"{who} {plot} {place[0]} {place[1]} in a {mood} scene.",
        "panels": vlm,
        "summary": {
            "characters": sorted(names),
            "setting": place[1],
            "mood": mood,
            "plot": plot,
            "panel_count": len(vlm),
        },
    }


def _jitter(rng: random.Random, b: Box, frac: float, width: int, height: int) -> list[float]:
    """``b`` with each edge moved by up to ``frac`` of its size, clipped to the page."""
    x, y, w, h = b
    x0 = max(0.0, x + rng.uniform(-frac, frac) * w)
    y0 = max(0.0, y + rng.uniform(-frac, frac) * h)
    x1 = min(float(width), x + w + rng.uniform(-frac, frac) * w)
    y1 = min(float(height), y + h + rng.uniform(-frac, frac) * h)
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


DETECT_PARAMS: dict[int, tuple[float, float, float, float]] = {
    # category: (miss rate, box jitter, min score, max score)
    PANEL: (0.03, 0.02, 0.75, 0.99),
    CHARACTER: (0.08, 0.04, 0.5, 0.97),
    BALLOON: (0.04, 0.03, 0.7, 0.98),
    TEXT: (0.05, 0.04, 0.6, 0.97),
    FACE: (0.1, 0.05, 0.45, 0.95),
}


def _detections(
    rng: random.Random, image_id: str, panels: list[_Panel], width: int, height: int
) -> list[dict[str, Any]]:
    """Detector output for one page: jittered, sometimes missed, plus spurious panels."""
    truth: list[tuple[int, Box]] = [(PANEL, p.box) for p in panels]
    truth += [item for p in panels for item in p.items]
    dets: list[tuple[int, list[float], float]] = []
    for cat, box in truth:
        miss, frac, lo, hi = DETECT_PARAMS[cat]
        if rng.random() < miss:
            continue
        dets.append(
            (
                cat,
                _jitter(rng, box, rng.uniform(frac / 2, frac), width, height),
                round(rng.uniform(lo, hi), 4),
            )
        )
    if rng.random() < 0.25:
        for _ in range(rng.randint(1, 2)):
            w, h = rng.randint(60, width // 2), rng.randint(60, height // 3)
            fake = (rng.randint(0, width - w), rng.randint(0, height - h), w, h)
            dets.append(
                (PANEL, _jitter(rng, fake, 0.0, width, height), round(rng.uniform(0.05, 0.45), 4))
            )
    dets.sort(key=lambda d: (d[0], -d[2]))
    return [
        {
            "image_id": image_id,
            "category_id": cat,
            "bbox": bbox,
            "score": score,
            "area": round(bbox[2] * bbox[3], 2),
        }
        for cat, bbox, score in dets
    ]


# --------------------------------------------------------------------------- corpus


def _series_names(rng: random.Random, count: int) -> list[str]:
    """``count`` series names: a punctuation-twin pair (when count >= 2) plus distinct others."""
    names: list[str] = []
    if count >= 2:
        names.extend(rng.choice(TWIN_PAIRS))
    keys = {_norm_key(n) for n in names}
    pool = list(SERIES_TITLES)
    rng.shuffle(pool)
    while len(names) < count:
        if pool:
            cand = pool.pop()
        else:
            year, issue = rng.randint(1985, 2024), rng.randint(1, 99)
            cand = f"{rng.choice(EXTRA_TITLES)} ({year}) {issue:03d}"
        if _norm_key(cand) not in keys:
            keys.add(_norm_key(cand))
            names.append(cand)
    return names


def _render_page(
    spec: _PageSpec, width: int, height: int, fonts: _Fonts
) -> tuple[bytes, list[_Panel], dict[str, Any], list[dict[str, Any]], str]:
    """Draw one page; return JPEG bytes, panels, VLM JSON, detections and COCO image id."""
    rng = random.Random(spec.seed)
    colours = {
        n: (rng.randint(40, 220), rng.randint(40, 220), rng.randint(40, 220)) for n in spec.cast
    }
    img = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(img)
    place = rng.choice(PLACES)
    boxes = _layout(rng, width, height, spec.cover)
    panels = [
        _draw_panel(draw, rng, b, spec, fonts, f"{place[0]} {place[1]}", colours, i == 0)
        for i, b in enumerate(boxes)
    ]
    draw.text(
        (width // 2 - 6, height - max(14, round(28 * height / 1200))),
        str(spec.page),
        font=fonts.text,
        fill=BLACK,
    )
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    image_id = f"{COCO_ROOT}\\{spec.series}\\{SUBDIR}_{spec.page:04d}.jpg"
    vlm = _vlm_page(rng, spec, panels, place)
    dets = _detections(rng, image_id, panels, width, height)
    return buf.getvalue(), panels, vlm, dets, image_id


def generate_corpus(
    out_dir: str | Path,
    *,
    pages: int = 200,
    seed: int = 0,
    width: int = 800,
    height: int = 1200,
    series: int | None = None,
) -> SampleCorpus:
    """Write a synthetic comic corpus of ``pages`` pages under ``out_dir``.

    ``series`` defaults to ``max(3, pages // 25)`` (never more than ``pages``). Existing files
    at the same paths are replaced; other files under ``out_dir`` are left alone.
    """
    if pages < 1:
        raise ValueError("pages must be >= 1")
    if width < 300 or height < 400:
        raise ValueError("width must be >= 300 and height >= 400")
    n_series = max(3, pages // 25) if series is None else series
    if n_series < 1:
        raise ValueError("series must be >= 1")
    n_series = min(n_series, pages)

    rng = random.Random(seed)
    root = Path(out_dir)
    images_dir, vlm_dir = root / "images", root / "vlm"
    coco_path, truth_path = root / "predictions.json", root / "truth.jsonl"

    names = _series_names(rng, n_series)
    counts = [1 + e for e in _split(pages - n_series, [rng.uniform(0.5, 1.5) for _ in names])]
    n_off = round(pages * 0.08) if pages < 10 else max(1, round(pages * 0.08))
    off = set(rng.sample(range(pages), n_off))
    specs: list[_PageSpec] = []
    for name, count in zip(names, counts, strict=True):
        cast = tuple(rng.sample(NAMES, 4))
        has_cover = rng.random() < 0.7
        for page in range(1, count + 1):
            specs.append(
                _PageSpec(
                    series=name,
                    page=page,
                    cast=cast,
                    cover=has_cover and page == 1 and count > 1,
                    vlm_off=len(specs) in off,
                    seed=rng.getrandbits(64),
                )
            )

    scale = width / 800
    fonts = _Fonts(text=_load_font(round(12 * scale)), scale=scale)
    records: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = []
    for spec in specs:
        jpeg, panels, vlm, dets, image_id = _render_page(spec, width, height, fonts)
        rel_img = f"{spec.series}/{SUBDIR}/{spec.page:04d}.jpg"
        rel_vlm = f"{spec.series}/{SUBDIR}_{spec.page:04d}.json"
        atomic_write_bytes(images_dir / rel_img, jpeg)
        atomic_write_bytes(vlm_dir / rel_vlm, _json_bytes(vlm, indent=2))
        truth = {
            "image": rel_img,
            "series": spec.series,
            "page": spec.page,
            "width": width,
            "height": height,
            "coco_image_id": image_id,
            "vlm_json": rel_vlm,
            "vlm_panel_count_off": spec.vlm_off,
            "panels": [
                {
                    "bbox": list(p.box),
                    "dialogue": [ln.text for ln in p.lines if ln.kind in ("dialogue", "thought")],
                    "narration": [ln.text for ln in p.lines if ln.kind == "narration"],
                    "sfx": [ln.text for ln in p.lines if ln.kind == "sfx"],
                }
                for p in panels
            ],
        }
        image = {
            "id": image_id,
            "file_name": f"{SUBDIR}\\{spec.page:04d}.jpg",
            "width": width,
            "height": height,
        }
        records.append((rel_img, truth, image, dets))

    records.sort(key=lambda r: r[0])
    annotations: list[dict[str, Any]] = []
    for _, _, _, dets in records:
        for det in dets:
            annotations.append({"id": len(annotations) + 1, **det})
    coco = {
        "images": [r[2] for r in records],
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }
    atomic_write_bytes(coco_path, _json_bytes(coco))
    atomic_write_bytes(truth_path, b"".join(_json_bytes(r[1]) for r in records))
    return SampleCorpus(
        root=root,
        images_dir=images_dir,
        coco_path=coco_path,
        vlm_dir=vlm_dir,
        truth_path=truth_path,
        pages=pages,
    )


@click.command(
    name="sample",
    context_settings={
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    },
)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pages", default=200, type=click.IntRange(min=1), help="Pages to generate.")
@click.option("--seed", default=0, type=int, help="Random seed: the same seed, the same files.")
@click.option("--width", default=800, type=click.IntRange(min=300), help="Page width in pixels.")
@click.option("--height", default=1200, type=click.IntRange(min=400), help="Page height in pixels.")
@click.option(
    "--series",
    default=None,
    type=click.IntRange(min=1),
    show_default="max(3, pages // 25)",
    help="Number of series.",
)
def main(out: Path, pages: int, seed: int, width: int, height: int, series: int | None) -> None:
    """Generate a deterministic synthetic comic corpus under the folder OUT (images,
    predictions.json, vlm/, truth.jsonl)."""
    c = generate_corpus(out, pages=pages, seed=seed, width=width, height=height, series=series)
    click.echo(f"pages:       {c.pages}")
    click.echo(f"images:      {c.images_dir}")
    click.echo(f"predictions: {c.coco_path}")
    click.echo(f"vlm:         {c.vlm_dir}")
    click.echo(f"truth:       {c.truth_path}")


if __name__ == "__main__":
    main()
