"""A held-out corpus in the user's production VLM schema, and the measurement of the analyzer on it.

The corpus is made apart from the code under test: nothing here imports `dataspec.sample`,
`training.synthetic` or any dataspec/analyzer rule to make the data. It is written from the
user's own description (`shared/user-data.md`, `shared/seed-runbook.md`) with its own
randomness, Pillow for the JPEGs and the stdlib `json` for every file. `measure` reads the
analyzer's output back with `dataspec.load` (strict), which is allowed: reading is not making.

    python benchmarks/heldout_production.py make OUT --pages 2000 --seed 7

writes, for N pages spread over nine series (each with its own page size, 600-1200 px wide,
aspect about 1.5; a few pages per series of another size):

- `OUT/images/<Series>/JPG4CBZ/NNNN.jpg`: small real JPEGs (panels, balloons, figures).
- `OUT/predictions.json`: COCO results as the user's Faster R-CNN writes them. `images[].id`
  is the user's string id, the image path with its last separator turned into `_`
  (`<abs OUT>/images/Saga/JPG4CBZ_0001.jpg`), `file_name` is `JPG4CBZ/0001.jpg`, `width` and
  `height` are missing on about 10% of the pages (the image header must be read).
  Categories 1 panel, 2 character, 4 text, 7 face; integer `[x, y, w, h]` boxes with a
  score. A few px of jitter on every box; about 5% of the pages miss one panel, about 5%
  have a spurious panel box with a low score (0.2-0.6, so some pass a 0.5 threshold).
- `OUT/vlm/images/<Series>/JPG4CBZ/NNNN.json`: one analysis per page, stored as
  `<canonical_id>.json` in a tree mirroring the images. The collection root is OUT and the
  collection folder is `images` (as `CalibreComics_extracted` is for the user), so the
  canonical id is `images/<Series>/JPG4CBZ/NNNN` and `--vlm_dir OUT/vlm`.
- `OUT/manifest.csv`: `canonical_id,absolute_image_path`.
- `OUT/truth.jsonl`: one line per page (page order): image path, canonical id, VLM path,
  page size, the reply defect, wrapper and wild values applied, and the true panels (pixel
  box, the lettered lines by bucket in the order written; for a truncated reply whether
  the panel closed before the cut).

The analyses are in the production schema (`overall_summary`, `panels[]` with
`panel_number`, `box_2d` = `[ymin, xmin, ymax, xmax]` on 0-1000 of the page, `description`,
`text_content[]` of `{label, speaker, text, box_2d}`, `characters[]`, `faces[]`) plus the
worker's `canonical_id`, `model`, `usage`, `processed_at`. Labels are mostly dialogue,
caption, thought, some sfx, narration, whisper, and odd ones (shout, sign, speech,
narrator, sound, onomatopoeia, a capitalised label, a null label). Truth buckets
(case-insensitive): narration = caption, narration, narrator; sfx = sfx, sound,
sound_effect, onomatopoeia; dialogue = everything else (dialogue, thought, whisper,
speech, any unknown or null label). Wild values at low rates: `box_2d` as strings, null
fields, `summary.plot` instead of `overall_summary`, `panels` as a dict, a panel `box_2d`
null.

Reply defects, at the user's measured rates, applied to the serialized reply text:
2.72% truncated (cut at a random point of the second half, inside a value: the file ends
mid-value); of the rest 5% broken: unescaped double quotes (60% of those), code fence,
`** ` before the `"panels"` key, invalid escapes (`\\'`, `\\x`, `\\u` without four hex,
`\\o`), a missing comma between properties, Python `None` / JS `undefined` / `NaN`,
trailing commas, a second JSON object appended, empty replies (a chat completion with
`message: null` and zero tokens, an empty `content`, or a 0-byte file). A clean reply is
stored as the worker's document (the reply's object plus the worker's fields). A broken or
truncated reply is stored as the raw reply text (the worker could not parse it, so added
nothing). About 15% of all replies are stored as the raw chat-completion object instead,
whose `choices[0].message.content` holds the reply text (`finish_reason: "length"` when
truncated).

Run the analyzer on it with the runbook's step 2 (README, "A five-minute tour", step 3),
paths swapped; where the analyzer has `--manifest` (canonical id -> image), add
`--manifest OUT/manifest.csv` for a second run (without it, pages are matched by page key
or by the `canonical_id` inside the files):

    python -m analyzer --coco OUT/predictions.json --vlm_dir OUT/vlm \\
      --output_csv OUT/run/analysis.csv --num_workers 2 --image_roots OUT/images \\
      --require_image_exists --min_text_coverage 0.6 --emit_dataspec_everything \\
      --dataspec_out_dir OUT/run/dataspec_all --dataspec_min_det_score 0.5 \\
      --dataspec_list_out OUT/run/dataspec_all_list.txt \\
      --dataspec_debug_skips_out OUT/run/dataspec_all_skips.csv --dataspec_naming preserve_tree

then measure:

    python benchmarks/heldout_production.py measure OUT --dataspec_dir OUT/run/dataspec_all \\
      --csv OUT/run/analysis.csv --skips OUT/run/dataspec_all_skips.csv

(`--dataspec_dir` also takes the `--dataspec_list_out` file: use it, or a fresh out dir,
when rerunning the analyzer into a folder that still holds an earlier run's pages.)

`measure` prints, per reply group (clean = the BASELINE, repairable, truncated, empty) and
per repairable defect, with the counts behind each figure: pages emitted and skipped by
reason; lettered text exact on true panels (the emitted panel best overlapping the true
box, IoU >= 0.5, has exactly the true dialogue / narration / sfx lists); emitted panels
carrying a line of another true panel; pages read right; for truncated replies the panels
kept against those closed before the cut and the CSV's `vlm_truncated` column. It exits 2
only on usage errors.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

Box = tuple[int, int, int, int]  # [x, y, w, h] pixels
Json = Any

# --------------------------------------------------------------------------------------
# The user's figures and this corpus's rates
# --------------------------------------------------------------------------------------

TRUNCATED_RATE = 0.0272
"""Replies cut at the token limit (user's measure)."""
BROKEN_RATE = 0.05
"""Share of the other replies that are broken (their 7% batch failure rate, less truncation)."""
BROKEN_WEIGHTS: dict[str, int] = {
    "unescaped_quotes": 60,  # user: about 60% of the non-truncation parse failures
    "code_fence": 7,
    "bold_key": 5,
    "invalid_escape": 5,
    "missing_comma": 5,
    "non_json_literal": 5,
    "trailing_comma": 5,
    "second_object": 4,
    "empty": 4,
}
WRAPPED_RATE = 0.15
"""Replies stored as the raw chat-completion object."""
COCO_SIZE_MISSING_RATE = 0.10
MISSED_PANEL_RATE = 0.05
SPURIOUS_BOX_RATE = 0.05
WILD_RATES: dict[str, float] = {
    "box_2d_strings": 0.03,
    "null_fields": 0.04,
    "summary_plot": 0.03,
    "panels_dict": 0.005,
    "null_panel_box": 0.007,
}
MAX_TOKENS = 8192
REPAIRABLE = frozenset(BROKEN_WEIGHTS) - {"empty"}
CATEGORIES = [
    {"id": 1, "name": "panel"},
    {"id": 2, "name": "character"},
    {"id": 4, "name": "text"},
    {"id": 7, "name": "face"},
]
MODELS = ("google/gemini-2.5-flash", "google/gemini-2.5-pro", "qwen/qwen2.5-vl-72b-instruct")

# --------------------------------------------------------------------------------------
# What pages say (written for this corpus)
# --------------------------------------------------------------------------------------

NARRATION_LABELS = frozenset({"caption", "narration", "narrator"})
SFX_LABELS = frozenset({"sfx", "sound", "sound_effect", "onomatopoeia"})
LABEL_WEIGHTS: dict[str, int] = {
    "dialogue": 44,
    "caption": 17,
    "thought": 7,
    "sfx": 10,
    "narration": 6,
    "whisper": 4,
    "shout": 3,
    "sign": 2,
    "speech": 2,
    "narrator": 1,
    "sound": 1,
    "onomatopoeia": 1,
    "sound_effect": 1,
}


def bucket_of(label: object) -> str:
    """The truth bucket of a label (case-insensitive; unknown and null labels are dialogue)."""
    low = label.strip().lower() if isinstance(label, str) else ""
    if low in NARRATION_LABELS:
        return "narration"
    if low in SFX_LABELS:
        return "sfx"
    return "dialogue"


NAMES = {
    "en": (
        "Mac",
        "Ororo",
        "Zoë",
        "José",
        "Kit",
        "Dana",
        "Alana",
        "Marko",
        "Erin",
        "Renée",
        "Dr. Vance",
        "Old Sam",
    ),
    "es": ("Lucía", "Íñigo", "Carmen", "Tomás", "Begoña", "Raúl"),
    "fr": ("Léa", "Hélène", "François", "Margaux", "Gaëlle", "Noël"),
}
PLACES = ("Neo-Tokyo", "Sector 7", "the Outer Rim", "São Paulo", "Gotham", "Port Royal")

LINES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "dialogue": (
            "Where is everyone?",
            "We have to find the ship before dawn.",
            "Don't look back, {name}. Just run!",
            "I told you — never trust a smiling man.",
            'He said "run," so I ran.',
            'She called it "home"... I never did.',
            "You're late. Again.",
            "Is that... blood?",
            "Wait—what did you just say?",
            "No, no, NO!",
            "What the--?!",
            'Who writes "the end" on a wall?',
            "It's not a weapon. It's a key.",
            "Get down!!",
            "Where'd {name} go?",
            "I can't feel my hands...",
            'They called him "the Ghost" for a reason.',
            "Ten years, {name}. Ten years!",
            'You don\'t get to say "sorry" now.',
            "Look out, {name}!",
            "How long do we have?",
            "…and that's when the lights went out.",
            "Okay. Okay. Breathe.",
            "Is anyone there?!",
            "Not today, old friend.",
            "Whatever you do, don't press the red one.",
            "I'm not leaving without {name}.",
            "Ha! Missed me!",
            "The café on Rue Saint-Denis. Noon.",
            "{name}? {name}, answer me!",
            "That's impossible... isn't it?",
            "We're not \"fine,\" {name}. We're lost.",
            "Say it again. Slowly.",
            "Run, you fools!",
            "One more step and she's gone.",
            "Hmph. Amateurs.",
            "You call this a plan?!",
            "I've seen {place}. This isn't it.",
            '"Trust me," she said. Famous last words.',
            "She called it “home.” I didn't.",
            "Nobody move — nobody!",
            "Tell {name} I said goodbye.",
        ),
        "thought": (
            "Why does it always rain when I need it not to?",
            "Stay calm... he can't know.",
            "If I'm wrong about this, we're all dead.",
            "Just one more door.",
            "Don't say it. Don't say \"I told you so.\"",
            "Where did I leave the key…",
        ),
        "whisper": (
            "psst... over here.",
            "Quiet. They're listening.",
            "(don't move)",
            "Did you hear that?",
        ),
        "shout": ("HEY!! OVER HERE!", "GET OUT OF MY CITY!", "{name}!!!"),
        "sign": (
            "OPEN 24 HRS",
            "NO EXIT",
            "DANGER — HIGH VOLTAGE",
            "Joe's Diner",
            "EXIT →",
            "PLATFORM 9",
        ),
        "narration": (
            "Meanwhile, across town...",
            "Three days later.",
            "Gotham City — 3:12 A.M.",
            "Earlier…",
            "Somewhere beneath the ice, something waited.",
            "The year is 2099. The rain never stops.",
            "She hadn't slept in four days.",
            "Later, at the docks.",
            "To be continued...",
            "{place}. Present day.",
            "Nobody remembers the first night. I do.",
            'Chapter 3: "The Long Fall"',
            "He was right, of course. He usually was.",
        ),
        "sfx": (
            "BLAM!",
            "KRAKOOM!",
            "SKREEEE!",
            "thwip",
            "BZZZT",
            "KA-CHUNK",
            "BOOM",
            "tik tik tik",
            "WHAM!",
            "SPLASH",
            "VRRRMMM",
            "crack",
            "KLANG!",
            "FZZT...",
        ),
        "backslash": (
            "\\o/ WE DID IT!",
            "The file's in C:\\users\\max.",
            "SECTOR \\x-9 IS SEALED.",
        ),
    },
    "es": {
        "dialogue": (
            "¡No puede ser!",
            "¿Dónde está el barco?",
            "Mañana... quizá.",
            "¡Corre, {name}! ¡No mires atrás!",
            'Dijo "vuelve pronto" y nunca volvió.',
            "¿Qué demonios—?",
            "No es un arma. Es una llave.",
            "¿Me oyes? ¡Contesta!",
            "Tranquilo, tranquilo...",
            "El café de la esquina, a mediodía.",
            "¿Otra vez tarde, {name}?",
            "¡Al suelo!",
            "No pienso irme sin {name}.",
        ),
        "thought": ("Si me equivoco, estamos todos muertos.", "Calma... no puede saberlo."),
        "whisper": ("Shh... nos escuchan.", "(no te muevas)"),
        "shout": ("¡¡FUERA DE AQUÍ!!",),
        "sign": ("SALIDA", "PELIGRO — ALTA TENSIÓN", "Bar Manolo"),
        "narration": (
            "Mientras tanto, en la ciudad...",
            "Tres días después.",
            "Madrid — 3:12 de la madrugada.",
            "Nadie recuerda la primera noche.",
            "{place}. En la actualidad.",
        ),
        "sfx": ("¡BUM!", "¡CRAC!", "ZAS", "¡PLAF!", "RIIING", "ÑIIIC"),
        "backslash": (),
    },
    "fr": {
        "dialogue": (
            "Où est-il passé ?",
            "C'est fini, mon vieux…",
            "« Jamais », disait-il.",
            'Il a dit "cours", alors j\'ai couru.',
            "Attends — qu'est-ce que tu as dit ?",
            "Ne te retourne pas, {name} !",
            "Ça ne peut pas être vrai...",
            "Déjà ? On vient d'arriver !",
            "Tu appelles ça un plan ?!",
            "Je ne pars pas sans {name}.",
        ),
        "thought": ("Si je me trompe, on est tous morts.", "Du calme... il ne peut pas savoir."),
        "whisper": ("Chut... ils écoutent.", "(ne bouge pas)"),
        "shout": ("SORTEZ D'ICI !!",),
        "sign": ("SORTIE", "DANGER — HAUTE TENSION", "Café des Sports"),
        "narration": (
            "Pendant ce temps, à l'autre bout de la ville...",
            "Trois jours plus tard.",
            "Paris — 3 h 12 du matin.",
            "Personne ne se souvient de la première nuit.",
            "{place}, de nos jours.",
        ),
        "sfx": ("VLAN !", "BAOUM", "CRAC", "PAF !", "DRING", "SPLOTCH"),
        "backslash": (),
    },
}
POOL_OF_LABEL = {
    "dialogue": "dialogue",
    "speech": "dialogue",
    "thought": "thought",
    "whisper": "whisper",
    "shout": "shout",
    "sign": "sign",
    "caption": "narration",
    "narration": "narration",
    "narrator": "narration",
    "sfx": "sfx",
    "sound": "sfx",
    "onomatopoeia": "sfx",
    "sound_effect": "sfx",
}
QUOTED_LINES = (
    'He said "run," so I ran.',
    'Who writes "the end" on a wall?',
    '"Trust me," she said. Famous last words.',
    'They called him "the Ghost" for a reason.',
)
APOSTROPHE_LINES = (
    "It's not a weapon. It's a key.",
    "Don't look back. Just run!",
    "I can't feel my hands...",
)
WHO = (
    "A woman in a red coat",
    "A kid on a bike",
    "A hooded figure",
    "An old man",
    "A battered robot",
    "A soldier",
    "A girl with a lantern",
    "A detective",
)
DOES = (
    "stands",
    "runs",
    "looks over her shoulder",
    "argues",
    "points a pistol",
    "falls",
    "waits",
    "whispers to someone off-panel",
)
WHERE = (
    "in an empty street",
    "on a rooftop at night",
    "inside a cramped spaceship",
    'beside a neon sign reading "OPEN"',
    "in the rain",
    "at a kitchen table",
    "in front of a burning car",
    "in a café — close-up",
)


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    lang: str
    upper: bool  # lettered in capitals
    width: int
    height: int


SERIES_SPECS = (
    ("Saga", "en", False),
    ("Paper Girls", "en", True),
    ("savagedragon issue75 - Unknown", "en", True),
    ("The Wicked + The Divine 012", "en", False),
    ("Monstress 003", "en", True),
    ("East of West (2013) 045", "en", True),
    ("Blacksad - Amarillo", "es", True),
    ("Astérix chez les Bretons", "fr", True),
    ("Les Vieux Fourneaux T01", "fr", False),
)
SERIES_SHARE = (16, 14, 13, 12, 11, 10, 9, 8, 7)


def make_series(seed: int) -> list[Series]:
    rng = random.Random(f"series:{seed}")
    out = []
    for name, lang, upper in SERIES_SPECS:
        width = rng.randrange(600, 1201, 4)
        out.append(Series(name, lang, upper, width, round(width * rng.uniform(1.42, 1.58))))
    return out


# --------------------------------------------------------------------------------------
# One page: truth, detector output, VLM reply, image
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class TrueLine:
    label: str | None
    text: str
    speaker: str | None
    box: Box

    @property
    def bucket(self) -> str:
        return bucket_of(self.label)


@dataclass(slots=True)
class TruePanel:
    box: Box
    lines: list[TrueLine] = field(default_factory=list)
    characters: list[tuple[str, Box]] = field(default_factory=list)
    faces: list[tuple[str, Box]] = field(default_factory=list)
    description: str = ""

    def buckets(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"dialogue": [], "narration": [], "sfx": []}
        for line in self.lines:
            out[line.bucket].append(line.text)
        return out


@dataclass(frozen=True, slots=True)
class PageJob:
    index: int
    out: str
    series: Series
    number: int
    defect: str
    wrapped: bool
    seed: int


def _splits(rng: random.Random, lo: int, hi: int, n: int) -> list[int]:
    """n + 1 edges from lo to hi, the parts of comparable size (0.6 to 1.4 of the mean)."""
    parts = [rng.uniform(0.6, 1.4) for _ in range(n)]
    edges, acc = [lo], 0.0
    for part in parts:
        acc += part
        edges.append(round(lo + acc / sum(parts) * (hi - lo)))
    return edges


def _layout(rng: random.Random, w: int, h: int) -> list[Box]:
    """Panel boxes in reading order: rows of 1-3 panels, a splash page, or a tall panel
    beside two stacked ones; gutters and margins in proportion to the page."""
    margin, gap = round(w * 0.035), max(3, round(w * 0.008))  # gap: half a gutter
    x0, y0, x1, y1 = margin, margin, w - margin, h - margin
    if rng.random() < 0.06:
        return [(x0, y0, x1 - x0, y1 - y0)]
    n_rows = rng.choices((2, 3, 4), weights=(3, 5, 2))[0]
    edges = _splits(rng, y0, y1, n_rows)
    boxes: list[Box] = []
    row = 0
    while row < n_rows:
        top = edges[row] + (gap if row else 0)
        if row + 1 < n_rows and rng.random() < 0.12:  # a tall panel beside two stacked ones
            mid, bottom = edges[row + 1], edges[row + 2] - (gap if row + 2 < n_rows else 0)
            split = round(x0 + rng.uniform(0.35, 0.6) * (x1 - x0))
            boxes.append((x0, top, split - gap - x0, bottom - top))
            boxes.append((split + gap, top, x1 - split - gap, mid - gap - top))
            boxes.append((split + gap, mid + gap, x1 - split - gap, bottom - mid - gap))
            row += 2
            continue
        bottom = edges[row + 1] - (gap if row + 1 < n_rows else 0)
        n = rng.choices((1, 2, 3), weights=(2, 5, 3))[0]
        cols = _splits(rng, x0, x1, n)
        jitter = rng.randint(-3, 3)  # hand-drawn tops, a few px apart
        for c in range(n):
            left = cols[c] + (gap if c else 0)
            right = cols[c + 1] - (gap if c < n - 1 else 0)
            t = max(0, top + (jitter if c else 0))
            boxes.append((left, t, right - left, bottom - t))
        row += 1
    assert all(b[2] >= 20 and b[3] >= 20 for b in boxes), boxes
    return boxes


def _inner_box(
    rng: random.Random, panel: Box, fw: tuple[float, float], fh: tuple[float, float]
) -> Box:
    """A box inside `panel`, its size a fraction of the panel's."""
    px, py, pw, ph = panel
    w = max(8, round(pw * rng.uniform(*fw)))
    h = max(8, round(ph * rng.uniform(*fh)))
    x = px + rng.randint(2, max(2, pw - w - 2))
    y = py + rng.randint(2, max(2, ph - h - 2))
    return (x, y, min(w, px + pw - x - 1), min(h, py + ph - y - 1))


class _LinePicker:
    """Lines for one page: never the same line twice on a page."""

    def __init__(self, rng: random.Random, series: Series) -> None:
        self.rng, self.series, self.used = rng, series, set[str]()
        self.names = NAMES[series.lang]

    def fill(self, template: str) -> str:
        text = template.replace("{name}", self.rng.choice(self.names))
        text = text.replace("{place}", self.rng.choice(PLACES))
        return text.upper() if self.series.upper else text

    def pick(self, pool_name: str) -> str | None:
        pool = LINES[self.series.lang][pool_name] or LINES["en"][pool_name]
        for _ in range(8):
            text = self.fill(self.rng.choice(pool)).strip()
            if text and text not in self.used:
                self.used.add(text)
                return text
        return None

    def take(self, text: str) -> str | None:
        text = self.fill(text).strip()
        if text in self.used:
            return None
        self.used.add(text)
        return text


def _wild_label(rng: random.Random, label: str) -> str | None:
    r = rng.random()
    if r < 0.01:
        return label.capitalize() if rng.random() < 0.5 else label.upper()
    if r < 0.014:
        return None
    return label


def _page_truth(rng: random.Random, job: PageJob, size: tuple[int, int]) -> list[TruePanel]:
    w, h = size
    picker = _LinePicker(rng, job.series)
    labels, weights = zip(*LABEL_WEIGHTS.items(), strict=True)
    panels: list[TruePanel] = []
    for box in _layout(rng, w, h):
        panel = TruePanel(box)
        n_chars = rng.choices((0, 1, 2, 3), weights=(2, 4, 3, 1))[0]
        for _ in range(n_chars):
            name = rng.choice(picker.names)
            cbox = _inner_box(rng, box, (0.2, 0.45), (0.35, 0.8))
            panel.characters.append((name, cbox))
            if rng.random() < 0.7:
                cx, cy, cw, ch = cbox
                fw, fh = max(6, cw // 2), max(6, ch // 4)
                panel.faces.append((name, (cx + (cw - fw) // 2, cy + 2, fw, fh)))
        n_lines = rng.choices((0, 1, 2, 3, 4), weights=(22, 33, 25, 13, 7))[0]
        for _ in range(n_lines):
            label = rng.choices(labels, weights=weights)[0]
            pool = "backslash" if rng.random() < 0.003 else POOL_OF_LABEL[label]
            text = picker.pick(pool)
            if text is None:
                continue
            speaker: str | None
            if bucket_of(label) == "dialogue":
                speaker = rng.choice(picker.names)
            else:
                speaker = rng.choice((None, None, "Narrator", ""))
            tbox = _inner_box(rng, box, (0.2, 0.5), (0.06, 0.18))
            panel.lines.append(TrueLine(_wild_label(rng, label), text, speaker, tbox))
        who = rng.choice(WHO if not panel.characters else (panel.characters[0][0], *WHO))
        panel.description = f"{who} {rng.choice(DOES)} {rng.choice(WHERE)}."
        panels.append(panel)
    _force_for_defect(rng, job.defect, panels, picker)
    return panels


def _force_for_defect(
    rng: random.Random, defect: str, panels: list[TruePanel], picker: _LinePicker
) -> None:
    """Make sure the page holds what its defect needs (a quoted line, a backslash...)."""
    target = rng.choice(panels)

    def add(text: str | None, label: str = "dialogue") -> None:
        if text is not None:
            box = _inner_box(rng, target.box, (0.2, 0.5), (0.06, 0.18))
            target.lines.append(TrueLine(label, text, rng.choice(picker.names), box))

    if defect == "unescaped_quotes":
        add(picker.take(rng.choice(QUOTED_LINES)))
    elif defect == "invalid_escape":
        pool = APOSTROPHE_LINES if rng.random() < 0.5 else LINES["en"]["backslash"]
        add(picker.take(rng.choice(pool)))
    elif defect == "non_json_literal" and not target.characters:
        target.characters.append(
            (rng.choice(picker.names), _inner_box(rng, target.box, (0.2, 0.4), (0.3, 0.6)))
        )


def _to_1000(box: Box, size: tuple[int, int], rng: random.Random, sd: float) -> list[int]:
    """[ymin, xmin, ymax, xmax] on 0-1000 of the page, with the VLM's imprecision."""
    x, y, w, h = box
    pw, ph = size

    def q(v: float, full: int) -> int:
        return min(1000, max(0, round(v / full * 1000 + rng.gauss(0, sd))))

    return [q(y, ph), q(x, pw), q(y + h, ph), q(x + w, pw)]


def _stringify_box(rng: random.Random, box: list[int]) -> Json:
    if rng.random() < 0.5:
        return ", ".join(map(str, box)) if rng.random() < 0.5 else json.dumps(box)
    return [str(v) for v in box]


def _reply_object(
    rng: random.Random,
    job: PageJob,
    size: tuple[int, int],
    panels: list[TruePanel],
    wild: list[str],
) -> dict[str, Json]:
    """The model's reply (production schema), before serialization."""
    loose = 16.0 if rng.random() < 0.1 else 5.0
    strings = "box_2d_strings" in wild

    def box(b: Box, sd: float) -> Json:
        out = _to_1000(b, size, rng, sd)
        return _stringify_box(rng, out) if strings and rng.random() < 0.4 else out

    vlm_panels: list[dict[str, Json]] = []
    for i, p in enumerate(panels, 1):
        vlm_panels.append(
            {
                "panel_number": i,
                "box_2d": box(p.box, loose),
                "description": p.description,
                "text_content": [
                    {
                        "label": ln.label,
                        "speaker": ln.speaker,
                        "text": ln.text,
                        "box_2d": box(ln.box, 4.0),
                    }
                    for ln in p.lines
                ],
                "characters": [{"name": n, "box_2d": box(b, 6.0)} for n, b in p.characters],
                "faces": [{"character": n, "box_2d": box(b, 6.0)} for n, b in p.faces],
            }
        )
    if "null_fields" in wild:
        for _ in range(rng.randint(1, 2)):
            vp = rng.choice(vlm_panels)
            choices = ["description", "characters", "faces"]
            if not vp["text_content"]:
                choices.append("text_content")
            vp[rng.choice(choices)] = None
            items = vp["text_content"] or []
            if items:
                rng.choice(items)["speaker"] = None
    if "null_panel_box" in wild:
        rng.choice(vlm_panels)["box_2d"] = None
    if job.defect == "non_json_literal":
        vlm_panels[0]["faces"] = None  # at least one null to be written as None/undefined
    summary = (f"{len(panels)} panels. " + " ".join(p.description for p in panels[:2])).strip()
    reply: dict[str, Json] = {}
    if "summary_plot" in wild:
        names = sorted({n for p in panels for n, _ in p.characters})
        reply["summary"] = {"characters": names, "setting": rng.choice(WHERE), "plot": summary}
    else:
        reply["overall_summary"] = summary
    if "panels_dict" in wild:
        reply["panels"] = {str(i): vp for i, vp in enumerate(vlm_panels, 1)}
    else:
        reply["panels"] = vlm_panels
    return reply


# ---- a small scanner of the JSON text we wrote, to place defects -------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # key, string, scalar, open, close, comma
    start: int
    end: int
    path: tuple[str | int, ...]  # the value's (or container's) path from the root


@dataclass(slots=True)
class _Frame:
    obj: bool
    path: tuple[str | int, ...]
    key: str = ""
    index: int = 0
    expect_key: bool = True


def scan_json(text: str) -> list[Token]:
    """Tokens of a valid JSON text, each with the path of the value it belongs to."""
    tokens: list[Token] = []
    stack: list[_Frame] = []
    i, n = 0, len(text)

    def value_path() -> tuple[str | int, ...]:
        if not stack:
            return ()
        top = stack[-1]
        return (*top.path, top.key if top.obj else top.index)

    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            top = stack[-1] if stack else None
            if top is not None and top.obj and top.expect_key:
                top.key, top.expect_key = json.loads(text[i:j]), False
                tokens.append(Token("key", i, j, (*top.path, top.key)))
            else:
                tokens.append(Token("string", i, j, value_path()))
            i = j
            continue
        if c in "{[":
            path = value_path()
            tokens.append(Token("open", i, i + 1, path))
            stack.append(_Frame(c == "{", path))
        elif c in "}]":
            tokens.append(Token("close", i, i + 1, stack.pop().path))
        elif c == ",":
            top = stack[-1]
            tokens.append(Token("comma", i, i + 1, top.path))
            if top.obj:
                top.expect_key = True
            else:
                top.index += 1
        elif c not in ": \t\r\n":
            j = i
            while j < n and text[j] not in ",]} \t\r\n":
                j += 1
            tokens.append(Token("scalar", i, j, value_path()))
            i = j
            continue
        i += 1
    return tokens


def _edit(text: str, edits: Iterable[tuple[int, int, str]]) -> str:
    """Apply (position, characters removed, inserted) edits, from the end backwards."""
    for pos, cut, insert in sorted(edits, reverse=True):
        text = text[:pos] + insert + text[pos + cut :]
    return text


def _in_panels(tok: Token) -> bool:
    return len(tok.path) >= 2 and tok.path[0] == "panels"


def truncate(text: str, rng: random.Random) -> tuple[str, list[int]]:
    """Cut inside a value in the second half; returns the text and the panels (their order
    in the reply) whose object closed before the cut."""
    tokens = scan_json(text)
    values = [
        t
        for t in tokens
        if (t.kind == "string" and t.end - t.start > 3)
        or (t.kind == "scalar" and t.end - t.start > 1)
    ]
    point = rng.randrange(len(text) // 2, len(text))
    later = [t for t in values if t.end > point + 1] or values[-1:]
    tok = later[0]
    lo = max(point, tok.start + 1)
    hi = tok.end - (2 if tok.kind == "string" else 1)
    cut = rng.randint(min(lo, hi), hi) if lo <= hi else tok.start + 1
    while cut > tok.start + 1 and text[cut - 1] == "\\":
        cut -= 1
    panel_closes = [
        t for t in tokens if t.kind == "close" and len(t.path) == 2 and t.path[0] == "panels"
    ]
    closed = [k for k, t in enumerate(panel_closes) if t.start < cut]
    return text[:cut], closed


def _unescaped_quotes(text: str, tokens: list[Token], rng: random.Random) -> str:
    edits = []
    for t in tokens:
        if t.kind == "string":
            raw = text[t.start + 1 : t.end - 1]
            k = raw.find('\\"')
            while k >= 0:
                if k == 0 or raw[k - 1] != "\\":
                    edits.append((t.start + 1 + k, 2, '"'))
                k = raw.find('\\"', k + 2)
    return _edit(text, edits)


def _invalid_escape(text: str, tokens: list[Token], rng: random.Random) -> str:
    edits = []
    for t in tokens:
        if t.kind != "string" or not t.path or t.path[-1] != "text":
            continue
        raw = text[t.start + 1 : t.end - 1]
        if "\\\\" in raw:  # a lettered backslash written as a lone one: \o, \x, \u + non-hex
            k = raw.find("\\\\")
            while k >= 0:
                edits.append((t.start + 1 + k, 2, "\\"))
                k = raw.find("\\\\", k + 2)
        elif "'" in raw:
            edits += [(t.start + 1 + k, 1, "\\'") for k, ch in enumerate(raw) if ch == "'"]
    if not edits:  # no line to spoil: an invalid escape inside a description
        desc = [t for t in tokens if t.kind == "string" and t.path[-1:] == ("description",)]
        if desc:
            t = rng.choice(desc)
            edits.append((t.end - 1, 0, " \\x"))
    return _edit(text, edits)


def _missing_comma(text: str, tokens: list[Token], rng: random.Random) -> str:
    commas = [
        t
        for k, t in enumerate(tokens[:-1])
        if t.kind == "comma" and tokens[k + 1].kind == "key" and _in_panels(tokens[k + 1])
    ]
    if not commas:
        commas = [
            t
            for k, t in enumerate(tokens[:-1])
            if t.kind == "comma" and tokens[k + 1].kind == "key"
        ]
    t = rng.choice(commas)
    return _edit(text, [(t.start, 1, "")])


def _non_json_literal(text: str, tokens: list[Token], rng: random.Random) -> str:
    mode = rng.choice(("None", "undefined", "NaN"))
    if mode != "NaN":
        nulls = [t for t in tokens if t.kind == "scalar" and text[t.start : t.end] == "null"]
        return _edit(text, [(t.start, 4, mode) for t in nulls])
    numbers = [
        t
        for t in tokens
        if t.kind == "scalar"
        and "box_2d" in t.path
        and ("characters" in t.path or "faces" in t.path)
    ]
    numbers = numbers or [t for t in tokens if t.kind == "scalar" and "box_2d" in t.path]
    if not numbers:  # every box written as a string: no number to spoil
        nulls = [t for t in tokens if t.kind == "scalar" and text[t.start : t.end] == "null"]
        return _edit(text, [(t.start, 4, "None") for t in nulls])
    t = rng.choice(numbers)
    return _edit(text, [(t.start, t.end - t.start, "NaN")])


def _trailing_comma(text: str, tokens: list[Token], rng: random.Random) -> str:
    spots = [
        tokens[k - 1].end
        for k, t in enumerate(tokens)
        if t.kind == "close" and k and tokens[k - 1].kind not in ("open", "comma")
    ]
    chosen = rng.sample(spots, min(len(spots), rng.randint(1, 3)))
    return _edit(text, [(pos, 0, ",") for pos in chosen])


def _code_fence(text: str, tokens: list[Token], rng: random.Random) -> str:
    lead = rng.choice(("", "", "Here is the analysis of the page:\n\n"))
    return f"{lead}```json\n{text}\n```" + rng.choice(("", "\n"))


def _bold_key(text: str, tokens: list[Token], rng: random.Random) -> str:
    key = next(t for t in tokens if t.kind == "key" and t.path == ("panels",))
    return _edit(text, [(key.start, 0, "** ")])


def _second_object(text: str, tokens: list[Token], rng: random.Random) -> str:
    if rng.random() < 0.5:
        return text + "\n" + text
    extra = rng.choice(('{"status": "complete"}', '{"confidence": 0.92, "notes": "none"}'))
    return text + "\n\n" + extra


DEFECTS: dict[str, Callable[[str, list[Token], random.Random], str]] = {
    "unescaped_quotes": _unescaped_quotes,
    "code_fence": _code_fence,
    "bold_key": _bold_key,
    "invalid_escape": _invalid_escape,
    "missing_comma": _missing_comma,
    "non_json_literal": _non_json_literal,
    "trailing_comma": _trailing_comma,
    "second_object": _second_object,
}


def _serialize(rng: random.Random, obj: Json) -> str:
    indent = 2 if rng.random() < 0.6 else None
    return json.dumps(obj, ensure_ascii=rng.random() < 0.15, indent=indent)


def _usage(rng: random.Random, text: str, truncated: bool) -> dict[str, int]:
    prompt = rng.randint(1100, 1800)
    completion = MAX_TOKENS if truncated else max(1, round(len(text) / 3.6))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _vlm_file(
    rng: random.Random, job: PageJob, canonical_id: str, reply: dict[str, Json]
) -> tuple[str, list[int] | None]:
    """The file's text, and for a truncated reply the panels closed before the cut."""
    model = rng.choice(MODELS)
    stamp = (
        f"2026-0{rng.randint(1, 3)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:"
        f"{rng.randint(10, 59)}:{rng.randint(10, 59)}Z"
    )
    closed: list[int] | None = None
    if job.defect == "empty":
        form = rng.choice(("null_message", "empty_content", "empty_file"))
        if form == "empty_file":
            return "", None
        message = None if form == "null_message" else {"role": "assistant", "content": ""}
        return json.dumps(
            {
                "choices": [{"message": message, "finish_reason": "stop"}],
                "usage": {"completion_tokens": 0},
            }
        ), None
    if job.defect == "clean" and not job.wrapped:
        doc = dict(reply)
        doc.update(canonical_id=canonical_id, model=model, processed_at=stamp)
        doc["usage"] = _usage(rng, json.dumps(reply), False)
        return _serialize(rng, doc), None
    text = _serialize(rng, reply)
    if job.defect == "truncated":
        text, closed = truncate(text, rng)
    elif job.defect != "clean":
        text = DEFECTS[job.defect](text, scan_json(text), rng)
    if not job.wrapped:
        return text, closed
    completion = {
        "id": f"gen-{rng.getrandbits(48):012x}",
        "object": "chat.completion",
        "created": 1767225600 + rng.randrange(7_000_000),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length" if job.defect == "truncated" else "stop",
            }
        ],
        "usage": _usage(rng, text, job.defect == "truncated"),
        "canonical_id": canonical_id,
        "processed_at": stamp,
    }
    return json.dumps(completion, ensure_ascii=False, indent=rng.choice((None, 2))), closed


def _jitter(rng: random.Random, box: Box, size: tuple[int, int], px: int = 4) -> list[int]:
    x, y, w, h = box
    x1 = min(max(0, x + rng.randint(-px, px)), size[0] - 2)
    y1 = min(max(0, y + rng.randint(-px, px)), size[1] - 2)
    x2 = min(max(x1 + 1, x + w + rng.randint(-px, px)), size[0])
    y2 = min(max(y1 + 1, y + h + rng.randint(-px, px)), size[1])
    return [x1, y1, x2 - x1, y2 - y1]


def _detections(
    rng: random.Random,
    panels: list[TruePanel],
    size: tuple[int, int],
    missed: int | None,
    spurious: bool,
) -> list[dict[str, Json]]:
    """What the Faster R-CNN finds (`image_id` and `id` added later)."""
    out: list[dict[str, Json]] = []
    for k, p in enumerate(panels):
        if k != missed:
            out.append(
                {
                    "category_id": 1,
                    "bbox": _jitter(rng, p.box, size),
                    "score": round(rng.uniform(0.82, 0.999), 4),
                }
            )
        for ln in p.lines:
            out.append(
                {
                    "category_id": 4,
                    "bbox": _jitter(rng, ln.box, size, 3),
                    "score": round(rng.uniform(0.5, 0.99), 4),
                }
            )
        for _, cbox in p.characters:
            out.append(
                {
                    "category_id": 2,
                    "bbox": _jitter(rng, cbox, size, 5),
                    "score": round(rng.uniform(0.45, 0.98), 4),
                }
            )
        for _, fbox in p.faces:
            out.append(
                {
                    "category_id": 7,
                    "bbox": _jitter(rng, fbox, size, 3),
                    "score": round(rng.uniform(0.45, 0.98), 4),
                }
            )
    if spurious:
        w, h = size
        bw, bh = rng.randint(w // 8, w // 2), rng.randint(h // 10, h // 3)
        box = (rng.randint(0, w - bw), rng.randint(0, h - bh), bw, bh)
        out.append({"category_id": 1, "bbox": list(box), "score": round(rng.uniform(0.2, 0.6), 4)})
    rng.shuffle(out)
    return out


def _draw(
    path: str, size: tuple[int, int], panels: list[TruePanel], seed: str, manga: bool = False
) -> None:
    """A plain drawn page: tinted panels with borders, figures, faces, balloons with strokes
    of lettering, caption boxes, red sfx strokes. `manga`: grey panels under a dot
    screentone, lettering in vertical columns."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, (250, 248, 242))
    draw = ImageDraw.Draw(image)
    for p in panels:
        x, y, w, h = p.box
        tint = tuple(rng.randint(170, 235) for _ in range(3))
        if manga:
            grey = rng.randint(200, 235)
            draw.rectangle([x, y, x + w, y + h], fill=(grey,) * 3, outline=(10, 10, 10), width=3)
            step = rng.choice((5, 6, 7))
            dot = (grey - rng.randint(70, 110),) * 3
            for yy in range(y + 4, y + h - 3, step):
                off = (yy // step) % 2 * (step // 2)
                for xx in range(x + 4 + off, x + w - 3, step):
                    draw.point([(xx, yy), (xx + 1, yy), (xx, yy + 1), (xx + 1, yy + 1)], fill=dot)
        else:
            draw.rectangle([x, y, x + w, y + h], fill=tint, outline=(10, 10, 10), width=3)
        for _, (cx, cy, cw, ch) in p.characters:
            draw.rectangle([cx, cy + ch // 4, cx + cw, cy + ch], fill=(90, 80, 110))
        for _, (fx, fy, fw, fh) in p.faces:
            draw.ellipse([fx, fy, fx + fw, fy + fh], fill=(225, 190, 160), outline=(0, 0, 0))
        for ln in p.lines:
            lx, ly, lw, lh = ln.box
            ink = (0, 0, 0)
            if ln.bucket == "narration":
                draw.rectangle([lx, ly, lx + lw, ly + lh], fill=(250, 230, 120), outline=ink)
            elif ln.bucket == "sfx":
                ink = (200, 20, 20)
            else:
                draw.ellipse([lx, ly, lx + lw, ly + lh], fill=(255, 255, 255), outline=ink, width=2)
            for k in (1, 2):  # strokes of lettering (columns, in manga)
                if manga:
                    xx = lx + k * lw // 3
                    draw.line([xx, ly + lh // 5, xx, ly + lh * 4 // 5], fill=ink, width=2)
                else:
                    yy = ly + k * lh // 3
                    draw.line([lx + lw // 5, yy, lx + lw * 4 // 5, yy], fill=ink, width=2)
    image.save(path, quality=70)


def make_page(job: PageJob) -> dict[str, Json]:
    """Write one page's image and VLM file; return its COCO and truth records."""
    rng = random.Random(f"page:{job.seed}:{job.index}")
    s = job.series
    size = (s.width, s.height)
    if rng.random() < 0.04:  # a page scanned at another size
        width = round(s.width * rng.uniform(0.85, 1.15))
        size = (width, round(width * rng.uniform(1.42, 1.58)))
    panels = _page_truth(rng, job, size)
    wild = [name for name, rate in WILD_RATES.items() if rng.random() < rate]
    stem = f"{job.number:04d}"
    rel = f"images/{s.name}/JPG4CBZ/{stem}"
    image_path = os.path.join(job.out, *rel.split("/")) + ".jpg"
    vlm_path = os.path.join(job.out, "vlm", *rel.split("/")) + ".json"
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    os.makedirs(os.path.dirname(vlm_path), exist_ok=True)
    _draw(image_path, size, panels, f"draw:{job.seed}:{job.index}")

    reply = _reply_object(rng, job, size, panels, wild)
    text, closed = _vlm_file(rng, job, rel, reply)
    with open(vlm_path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)

    missed = (
        rng.randrange(len(panels))
        if (rng.random() < MISSED_PANEL_RATE and len(panels) > 1)
        else None
    )
    spurious = rng.random() < SPURIOUS_BOX_RATE
    image_id = os.path.join(job.out, "images", s.name, f"JPG4CBZ_{stem}.jpg")
    image_rec: dict[str, Json] = {"id": image_id, "file_name": f"JPG4CBZ/{stem}.jpg"}
    size_in_coco = rng.random() >= COCO_SIZE_MISSING_RATE
    if size_in_coco:
        image_rec.update(width=size[0], height=size[1])
    truth_panels = []
    for k, p in enumerate(panels):
        rec: dict[str, Json] = {"box": list(p.box), **p.buckets()}
        if closed is not None:
            rec["closed_before_cut"] = k in closed
        truth_panels.append(rec)
    truth = {
        "image_path": image_path,
        "image_id": image_id,
        "canonical_id": rel,
        "vlm_path": vlm_path,
        "series": s.name,
        "lang": s.lang,
        "page_size": list(size),
        "defect": job.defect,
        "wrapped": job.wrapped and job.defect != "empty",
        "wild": wild,
        "coco_size": size_in_coco,
        "missed_panel": missed,
        "spurious_box": spurious,
        "panels": truth_panels,
    }
    return {
        "image": image_rec,
        "annotations": _detections(rng, panels, size, missed, spurious),
        "truth": truth,
        "manifest": (rel, image_path),
    }


def _defect_plan(pages: int, seed: int) -> list[str]:
    """Exact counts at the user's rates (largest remainder among broken kinds), shuffled."""
    n_trunc = round(pages * TRUNCATED_RATE)
    n_broken = round((pages - n_trunc) * BROKEN_RATE)
    total = sum(BROKEN_WEIGHTS.values())
    shares = {k: n_broken * w / total for k, w in BROKEN_WEIGHTS.items()}
    counts = {k: math.floor(v) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: counts[k] - shares[k])[: n_broken - sum(counts.values())]:
        counts[k] += 1
    plan = ["truncated"] * n_trunc + [k for k, c in counts.items() for _ in range(c)]
    plan += ["clean"] * (pages - len(plan))
    random.Random(f"defects:{seed}").shuffle(plan)
    return plan


def make(out: Path, pages: int, seed: int, workers: int) -> None:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    series = make_series(seed)
    total_share = sum(SERIES_SHARE)
    per_series = [pages * sh // total_share for sh in SERIES_SHARE]
    per_series[0] += pages - sum(per_series)
    plan = _defect_plan(pages, seed)
    wrap_rng = random.Random(f"wrap:{seed}")
    jobs: list[PageJob] = []
    for s, count in zip(series, per_series, strict=True):
        for number in range(1, count + 1):
            k = len(jobs)
            jobs.append(
                PageJob(k, str(out), s, number, plan[k], wrap_rng.random() < WRAPPED_RATE, seed)
            )
    start = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(make_page, jobs, chunksize=25)
    else:
        results = [make_page(job) for job in jobs]
    annotations = write_corpus(out, results, CATEGORIES)
    defects = Counter(plan)
    print(f"{pages} pages in {time.perf_counter() - start:.1f}s under {out}")
    print("reply defects: " + ", ".join(f"{k} {v}" for k, v in defects.most_common()))
    print(f"annotations: {annotations}; wrapped replies: {sum(j.wrapped for j in jobs)}")


def write_corpus(out: Path, results: list[dict[str, Json]], categories: list[Json]) -> int:
    """Write the made pages' `predictions.json` (ids numbered in page order),
    `manifest.csv` and `truth.jsonl` under `out`; returns the annotation count."""
    images: list[Json] = []
    annotations: list[dict[str, Json]] = []
    for res in results:
        images.append(res["image"])
        for ann in res["annotations"]:
            ann.update(id=len(annotations) + 1, image_id=res["image"]["id"])
            annotations.append(ann)
    with open(out / "predictions.json", "w", encoding="utf-8") as fh:
        json.dump(
            {"images": images, "annotations": annotations, "categories": categories},
            fh,
            ensure_ascii=False,
        )
    with open(out / "manifest.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["canonical_id", "absolute_image_path"])
        writer.writerows(res["manifest"] for res in results)
    with open(out / "truth.jsonl", "w", encoding="utf-8") as fh:
        for res in results:
            fh.write(json.dumps(res["truth"], ensure_ascii=False) + "\n")
    return len(annotations)


# --------------------------------------------------------------------------------------
# measure
# --------------------------------------------------------------------------------------


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax2, bx2) - max(a[0], b[0])
    ih = min(ay2, by2) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _best(box: Sequence[float], others: Sequence[Sequence[float]]) -> int | None:
    """Index of the box of `others` overlapping `box` best, if IoU >= 0.5."""
    best, best_iou = None, 0.5
    for k, other in enumerate(others):
        v = iou(box, other)
        if v >= best_iou:
            best, best_iou = k, v
    return best


BUCKETS = ("dialogue", "narration", "sfx")


@dataclass(slots=True)
class PageEval:
    """One emitted page against its truth."""

    true_panels: int = 0
    with_text: int = 0
    exact: int = 0
    exact_with_text: int = 0
    no_panel: int = 0  # no emitted panel with IoU >= 0.5
    emitted_panels: int = 0
    wrong_panel: int = 0  # emitted panels carrying a line of another true panel
    foreign: int = 0  # emitted panels carrying a line found on no true panel
    closed: int = 0
    closed_with_text: int = 0
    closed_exact: int = 0
    open_with_text: int = 0
    open_kept_any: int = 0
    open_exact: int = 0

    @property
    def right(self) -> bool:
        matched = self.true_panels - self.no_panel
        return matched > 0 and self.exact == matched and not self.wrong_panel and not self.foreign


def evaluate_page(truth: dict[str, Json], page: Any) -> PageEval:
    tps: list[dict[str, Json]] = truth["panels"]
    true_boxes = [tp["box"] for tp in tps]
    emitted = [
        (list(p.panel_coords), {b: list(getattr(p.text, b)) for b in BUCKETS}) for p in page.panels
    ]
    em_boxes = [box for box, _ in emitted]
    ev = PageEval(true_panels=len(tps), emitted_panels=len(emitted))
    line_owner: dict[str, set[int]] = {}
    for k, tp in enumerate(tps):
        for b in BUCKETS:
            for line in tp[b]:
                line_owner.setdefault(line, set()).add(k)
    for tp in tps:
        has_text = any(tp[b] for b in BUCKETS)
        ev.with_text += has_text
        j = _best(tp["box"], em_boxes)
        got = emitted[j][1] if j is not None else None
        exact = got is not None and all(got[b] == tp[b] for b in BUCKETS)
        ev.no_panel += j is None
        ev.exact += exact
        ev.exact_with_text += exact and has_text
        if "closed_before_cut" in tp:
            kept_any = got is not None and any(got[b] for b in BUCKETS)
            if tp["closed_before_cut"]:
                ev.closed += 1
                ev.closed_with_text += has_text
                ev.closed_exact += exact and has_text
            else:
                ev.open_with_text += has_text
                ev.open_kept_any += kept_any
                ev.open_exact += exact and has_text
    for box, text in emitted:
        own = _best(box, true_boxes)
        lines = [line for b in BUCKETS for line in text[b]]
        ev.wrong_panel += any(line in line_owner and own not in line_owner[line] for line in lines)
        ev.foreign += any(line not in line_owner for line in lines)
    return ev


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}% ({n}/{d})" if d else "   n/a (0/0)"


def _group_of(defect: str) -> str:
    if defect == "clean":
        return "clean"
    if defect in REPAIRABLE:
        return "repairable"
    return defect  # truncated, empty


GROUPS = ("clean", "repairable", "truncated", "empty")


def _read_csv(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) if path else ""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


@dataclass(slots=True)
class Tally:
    pages: int = 0
    emitted: int = 0
    true_panels_all: int = 0  # all true panels of the group's pages, emitted or not
    with_text_all: int = 0
    right: int = 0
    ev: PageEval = field(default_factory=PageEval)
    skips: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    wrong_pages: int = 0
    truncated_flag: int = 0
    repaired: Counter[str] = field(default_factory=Counter)  # CSV vlm_repairs, when present
    closed: int = 0  # truncated replies: true panels closed before the cut (from the truth)
    closed_with_text: int = 0
    open_with_text: int = 0  # ... and panels open at or after the cut, with text

    def add(self, ev: PageEval) -> None:
        for f in fields(PageEval):
            setattr(self.ev, f.name, getattr(self.ev, f.name) + getattr(ev, f.name))


def measure(out: Path, dataspec_dir: str, csv_path: str, skips_path: str | None) -> None:
    import dataspec

    truths = [json.loads(line) for line in (out / "truth.jsonl").open(encoding="utf-8")]
    by_image = {_norm(t["image_path"]): t for t in truths}
    by_canon = {t["canonical_id"].lower(): t for t in truths}

    files = _dataspec_files(dataspec_dir)
    pages: dict[str, Any] = {}
    unloadable: list[str] = []
    unmatched: list[str] = []
    duplicates = 0
    for path in files:
        try:
            page = dataspec.load(path)
        except dataspec.DataSpecError as exc:
            unloadable.append(f"{path}: {exc}")
            continue
        truth = by_image.get(_norm(page.page_image_path))
        if truth is None and page.source is not None and page.source.vlm_json_path:
            vlm = page.source.vlm_json_path.replace("\\", "/")
            canon = vlm.rsplit("vlm/", 1)[-1].removesuffix(".json").lower()
            truth = by_canon.get(canon)
        if truth is None:
            unmatched.append(path)
            continue
        key = truth["image_path"]
        duplicates += key in pages
        pages[key] = page

    columns, rows = _read_csv(csv_path)
    csv_rows: dict[str, dict[str, str]] = {}
    for csv_row in rows:
        for col in ("resolved_image_path", "image_path"):
            t = by_image.get(_norm(csv_row.get(col, "")))
            if t is not None:
                csv_rows[t["image_path"]] = csv_row
                break
    has_trunc_col = "vlm_truncated" in columns
    skip_reason: dict[str, str] = {}
    if skips_path:
        for skip_row in _read_csv(skips_path)[1]:
            for col in ("image_path", "resolved_image_path"):
                t = by_image.get(_norm(skip_row.get(col, "")))
                if t is not None:
                    skip_reason[t["image_path"]] = skip_row.get("reason", "?")
                    break

    tallies = {g: Tally() for g in GROUPS}
    kinds = {k: Tally() for k in sorted(REPAIRABLE)}
    trunc_flag_other = 0
    for t in truths:
        group = _group_of(t["defect"])
        targets = [tallies[group]] + ([kinds[t["defect"]]] if t["defect"] in kinds else [])
        row = csv_rows.get(t["image_path"])
        flag = has_trunc_col and row is not None and _truthy(row.get("vlm_truncated"))
        if flag and group != "truncated":
            trunc_flag_other += 1
        emitted_page = pages.get(t["image_path"])
        ev = evaluate_page(t, emitted_page) if emitted_page is not None else None
        for tally in targets:
            tally.pages += 1
            tally.true_panels_all += len(t["panels"])
            tally.with_text_all += sum(any(p[b] for b in BUCKETS) for p in t["panels"])
            tally.tiers[row.get("match_tier", "?") if row else "(not in CSV)"] += 1
            tally.truncated_flag += flag
            closed = [p for p in t["panels"] if p.get("closed_before_cut")]
            tally.closed += len(closed)
            tally.closed_with_text += sum(any(p[b] for b in BUCKETS) for p in closed)
            tally.open_with_text += sum(
                any(p[b] for b in BUCKETS)
                for p in t["panels"]
                if p.get("closed_before_cut") is False
            )
            if row is not None and (row.get("vlm_repairs") or "").strip():
                tally.repaired.update(r for r in row["vlm_repairs"].replace(";", " ").split() if r)
            if ev is None:
                reason = skip_reason.get(t["image_path"]) or (
                    f"not matched (match_tier {row.get('match_tier', '?')})"
                    if row
                    else "(not emitted, not in the skip log or the CSV)"
                )
                tally.skips[reason] += 1
                continue
            tally.emitted += 1
            tally.add(ev)
            tally.right += ev.right
            tally.wrong_pages += ev.wrong_panel > 0

    _report(
        out,
        files,
        unloadable,
        unmatched,
        duplicates,
        tallies,
        kinds,
        has_trunc_col,
        "vlm_repairs" in columns,
        trunc_flag_other,
        csv_path,
        len(rows),
        len(csv_rows),
        bool(skips_path),
    )


def _dataspec_files(where: str) -> list[str]:
    if where.endswith(".txt"):
        with open(where, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    return sorted(str(p) for p in Path(where).rglob("*.json"))


def _report(
    out: Path,
    files: list[str],
    unloadable: list[str],
    unmatched: list[str],
    duplicates: int,
    tallies: dict[str, Tally],
    kinds: dict[str, Tally],
    has_trunc_col: bool,
    has_repairs_col: bool,
    trunc_flag_other: int,
    csv_path: str,
    csv_n: int,
    csv_matched: int,
    have_skips: bool,
) -> None:
    total = sum(t.pages for t in tallies.values())
    print(
        f"corpus {out}: {total} pages; DataSpec files {len(files)} "
        f"(strict-load failures {len(unloadable)}, not matched to a page {len(unmatched)}, "
        f"duplicates {duplicates}); CSV rows {csv_n} ({csv_matched} matched to pages)"
    )
    for msg in unloadable[:5]:
        print(f"  unloadable: {msg}")
    for msg in unmatched[:5]:
        print(f"  unmatched: {msg}")
    if not have_skips:
        print("  (no --skips: pages not emitted are not broken down by reason)")

    read = Tally()  # pages with a readable, non-empty, complete reply: clean + repairable
    for g in ("clean", "repairable"):
        t = tallies[g]
        read.pages += t.pages
        read.emitted += t.emitted
        read.true_panels_all += t.true_panels_all
        read.with_text_all += t.with_text_all
        read.add(t.ev)

    print(
        "\n== Lettered text exact on panels (IoU >= 0.5 emitted panel has exactly the true "
        "dialogue/narration/sfx lists)"
    )
    print(
        "   denominator: every true panel of the pages whose reply is readable, non-empty "
        "and not truncated (clean + repairable), emitted or not"
    )
    print(f"   all panels            : {_pct(read.ev.exact, read.true_panels_all)}")
    print(f"   panels with text      : {_pct(read.ev.exact_with_text, read.with_text_all)}")
    print(
        f"   on emitted pages only : {_pct(read.ev.exact, read.ev.true_panels)}; "
        f"no emitted panel with IoU >= 0.5: {read.ev.no_panel}"
    )

    width = 26
    cols = [
        ("clean (BASELINE)", tallies["clean"]),
        ("repairable", tallies["repairable"]),
        ("truncated", tallies["truncated"]),
        ("empty", tallies["empty"]),
    ]
    print("\n== By reply group (same run; clean = baseline)")
    print(" " * 34 + "".join(f"{name:>{width}}" for name, _ in cols))

    def line(label: str, cells: Iterable[str]) -> None:
        print(f"{label:<34}" + "".join(f"{c:>{width}}" for c in cells))

    line("pages", (str(t.pages) for _, t in cols))
    line("emitted", (_pct(t.emitted, t.pages) for _, t in cols))
    line("text exact, all true panels", (_pct(t.ev.exact, t.true_panels_all) for _, t in cols))
    line(
        "text exact, panels with text",
        (_pct(t.ev.exact_with_text, t.with_text_all) for _, t in cols),
    )
    line("text exact, emitted pages' panels", (_pct(t.ev.exact, t.ev.true_panels) for _, t in cols))
    line(
        "emitted panels w/ wrong-panel line",
        (_pct(t.ev.wrong_panel, t.ev.emitted_panels) for _, t in cols),
    )
    line(
        "emitted panels w/ line not on page",
        (_pct(t.ev.foreign, t.ev.emitted_panels) for _, t in cols),
    )
    line("pages read right (of all pages)", (_pct(t.right, t.pages) for _, t in cols))

    print(
        "\n   'read right': every true panel that has an emitted panel (IoU >= 0.5) carries "
        "exactly its text, and no emitted panel carries a line of another panel or not on "
        "the page."
    )
    print("\n== Repairable replies read right (of all pages with that defect)")
    for name, t in [("all repairable", tallies["repairable"]), *kinds.items()]:
        print(
            f"   {name:<18} {_pct(t.right, t.pages):>22}   emitted {t.emitted:>3}/{t.pages:<3}"
            f"  text exact {_pct(t.ev.exact_with_text, t.with_text_all):>20}"
            f"  tiers {dict(t.tiers.most_common())}"
        )
    base = tallies["clean"]
    print(f"   BASELINE clean     {_pct(base.right, base.pages):>22}")

    tr = tallies["truncated"]
    print("\n== Truncated replies")
    print(
        f"   pages {tr.pages}, emitted {tr.emitted}; emitted pages with any panel carrying "
        f"another panel's line: {tr.wrong_pages} (must be 0); with a line not on the page: "
        f"{tr.ev.foreign} panels"
    )
    print(
        f"   true panels closed before the cut: {tr.closed} ({tr.closed_with_text} with text; "
        f"{tr.ev.closed_with_text} on emitted pages); kept with exact text: "
        f"{_pct(tr.ev.closed_exact, tr.closed_with_text)} of all, "
        f"{_pct(tr.ev.closed_exact, tr.ev.closed_with_text)} of emitted pages"
    )
    print(
        f"   true panels open at / after the cut with text: {tr.open_with_text} "
        f"({tr.ev.open_with_text} on emitted pages); emitted with some text: "
        f"{tr.ev.open_kept_any} (exact {tr.ev.open_exact})"
    )
    if has_trunc_col:
        print(
            f"   CSV vlm_truncated true: {_pct(tr.truncated_flag, tr.pages)} of truncated pages;"
            f" on other pages: {trunc_flag_other}"
        )
    else:
        print(f"   CSV column vlm_truncated: ABSENT in {csv_path}")

    print("\n== Pages emitted / skipped by reason, and CSV match_tier, by group")
    for name, t in cols:
        skips = ", ".join(f"{r} {n}" for r, n in t.skips.most_common()) or "none"
        print(f"   {name:<17} emitted {t.emitted}/{t.pages}; skipped: {skips}")
        print(f"   {'':<17} match_tier: {dict(t.tiers.most_common())}")
        if has_repairs_col:
            print(f"   {'':<17} CSV vlm_repairs: {dict(t.repaired.most_common()) or 'none'}")


# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the corpus")
    mk.add_argument("out", type=Path)
    mk.add_argument("--pages", type=int, default=2000)
    mk.add_argument("--seed", type=int, default=7)
    mk.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ms = sub.add_parser("measure", help="measure the analyzer's output against the truth")
    ms.add_argument("out", type=Path)
    ms.add_argument(
        "--dataspec_dir",
        "--dataspec-dir",
        required=True,
        help="emitted DataSpec folder (or the --dataspec_list_out .txt)",
    )
    ms.add_argument("--csv", required=True, help="the analyzer's --output_csv")
    ms.add_argument("--skips", help="the analyzer's --dataspec_debug_skips_out")
    args = parser.parse_args(argv)
    if args.cmd == "make":
        if args.pages < 1:
            parser.error("--pages must be at least 1")
        make(args.out, args.pages, args.seed, max(1, args.workers))
        return 0
    if not (args.out / "truth.jsonl").is_file():
        parser.error(f"{args.out / 'truth.jsonl'} not found: run `make` first")
    if not os.path.exists(args.dataspec_dir):
        parser.error(f"{args.dataspec_dir} not found")
    if not os.path.isfile(args.csv):
        parser.error(f"{args.csv} not found")
    if args.skips and not os.path.isfile(args.skips):
        parser.error(f"{args.skips} not found")
    measure(args.out, args.dataspec_dir, args.csv, args.skips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
