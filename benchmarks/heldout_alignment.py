"""A held-out corpus where the detector and the VLM disagree on the panels, and the measure of
how well the analyzer pairs them.

On the user's 336,881 Calibre pages the detector's and the VLM's panel counts agree on only
23.5%. This corpus has that shape. It is made apart from the code under test: nothing here
imports `dataspec.sample`, `training.synthetic` or any dataspec/analyzer rule to make data.
It is written from the user's description (`shared/user-data.md`, `shared/seed-runbook.md`)
with its own randomness; it borrows only the drawing, line pools, inner-box and jitter helpers
of `heldout_production.py` (itself held out). `measure` (in `heldout_alignment_measure.py`)
reads the analyzer's pages back with `dataspec.load` (strict): reading is not making.

    python benchmarks/heldout_alignment.py make OUT --pages 2000 --seed 11 [--kind disagree|rtl]

writes (same layout as heldout_production):

- `OUT/images/<Series>/JPG4CBZ/NNNN.jpg`: small real JPEGs (tinted panels, figures, balloons).
- `OUT/predictions.json`: COCO results; `images[].id` is the user's string id (the image path
  with its last separator turned into `_`), `file_name` `JPG4CBZ/NNNN.jpg`, width/height
  missing on 5% of pages. Categories 1 panel, 2 character, 3 balloon, 4 text, 7 face;
  integer `[x, y, w, h]` with a score.
- `OUT/vlm/images/<Series>/JPG4CBZ/NNNN.json` (`<canonical_id>.json`, `--vlm_dir OUT/vlm`).
- `OUT/manifest.csv` (`canonical_id,absolute_image_path`) and `OUT/truth.jsonl`.

True pages: 3-9 panels (5% of pages 10-14) in rows of 1-4 panels (more when dense; some rows
a tall panel beside 2-3 stacked ones), 7% of 4-6 panel pages two columns read column by
column (so 82% plain rows, 14% with a tall-panel row, 4% columns); 35% of
pages have a thin gutter (4-6 px). Right-to-left series are the mirror image: rows top to
bottom, right to left within a row. Each panel has 0-4 lettered lines (30% none), each with
its box inside the panel; lines are unique on a page (dialogue 65%, narration 22%, sfx 13%).

Every page has a difficulty shared by both readers (dense, busy pages confound both; the
VLM's is redrawn on a quarter of the pages): easy 20% (rates x0.18), plain 45% (x1.5), hard
35% (x3). Base rates (`RATES`, `disagree`; `rtl` about half):

- Detector: each panel MISSED 10% (28% when under half the page's median panel area); two
  adjacent panels across one gutter MERGED into their union, 24% a pair on thin-gutter pages,
  4% otherwise; 0/1/2 SPURIOUS boxes (38/37/25%, +1 on half the plain/hard pages, mostly
  none on easy pages) scored 0.3-0.8, inside a panel's art (55%) or SPLITTING a panel (45%:
  its box shrinks to 58-78%, the rest is the spurious box); 4% of real panels scored
  0.4-0.8; 1% of pages scored under 0.5 throughout (not usable). Text: category 4 for 87% of
  lines, a category 3 balloon for 35% of dialogue lines, a false text box on 25% of pages (a
  page number or a box in the art). The text of a missed panel lies outside every detection.
- VLM, in the true reading order: OMITS a textless panel 55% (one with text 3%), MERGES two
  consecutive adjacent panels 12% a pair (text of both, in order), SPLITS a panel in two 4%
  (its lines divided in order), HALLUCINATES a panel on 3% of pages (a third with a line not
  on the page). Texts are read exactly (this corpus is about pairing, not reading).
- `disagree`: 85% OLD schema replies (`overall_summary`, `panels[]` of `panel_number`,
  `caption` (the VLM's words), `description`, `speakers[{character, dialogue, speech_type}]`
  with speech_type dialogue/thought/narration/caption/sfx, `key_elements`, `actions`,
  `summary{characters, setting, plot, dialogue}`), 15% production schema (`box_2d`
  [ymin, xmin, ymax, xmax] on 0-1000, `text_content[{label, speaker, text, box_2d}]`, worker
  fields); 10% of pages right-to-left. `rtl`: production schema on every page (one panel
  box null on 4% of pages), 40% of pages right-to-left.

`make` prints the realized rates, among them the share of pages whose detector count (score
>= 0.5) equals the VLM's (seed 11, 2000 pages: 24.8%; user 23.5%) and the share equal by
coincidence (equal counts on a page with count-changing defects: 15.6%; untouched 9.2%).

truth.jsonl, per page: image path, image id, canonical id, VLM path, series, direction
(ltr/rtl), schema, page size, the true panels in true reading order (pixel box, lines by
bucket dialogue/narration/sfx in order), the detector's and the VLM's defects (`det`,
`vlm`, the VLM panels as the true panels each covers), counts and `equal_count`.

Run the analyzer (the runbook's step 2, paths swapped) and measure:

    python -m analyzer --coco OUT/predictions.json --vlm_dir OUT/vlm --manifest OUT/manifest.csv \\
      --output_csv OUT/run/analysis.csv --num_workers 2 --image_roots OUT/images \\
      --require_image_exists --min_text_coverage 0.6 --emit_dataspec_everything \\
      --dataspec_out_dir OUT/run/dataspec_all --dataspec_min_det_score 0.5 \\
      --dataspec_list_out OUT/run/dataspec_all_list.txt \\
      --dataspec_debug_skips_out OUT/run/dataspec_all_skips.csv --dataspec_naming preserve_tree
    python benchmarks/heldout_alignment.py measure OUT \\
      --dataspec_dir OUT/run/dataspec_all_list.txt --csv OUT/run/analysis.csv \\
      --skips OUT/run/dataspec_all_skips.csv

`measure` prints, with the counts behind each figure, for the analyzer and for three baselines
computed from the corpus files alone (pair by position when counts are equal else skip; the
seed's pair by position always; reading order = rows then left to right): usable pages
emitted, text-bearing panels with text of another panel, true lines on their own panel,
unknown-text marks and lines kept in `unpaired_text`, reading order right (all, rtl), a
breakdown by defect, and the CSV's pairing columns when present.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout_production as hp  # held-out drawing, line pools, box helpers

Box = tuple[int, int, int, int]
Json = Any

CATEGORIES = [
    {"id": 1, "name": "panel"},
    {"id": 2, "name": "character"},
    {"id": 3, "name": "balloon"},
    {"id": 4, "name": "text"},
    {"id": 7, "name": "face"},
]

# (name, language, lettered in capitals, right-to-left)
SERIES_SPECS = (
    ("Saga", "en", False, False),
    ("Paper Girls", "en", True, False),
    ("savagedragon issue75 - Unknown", "en", True, False),
    ("Monstress 003", "en", True, False),
    ("East of West (2013) 045", "en", True, False),
    ("Blacksad - Amarillo", "es", True, False),
    ("Astérix chez les Bretons", "fr", True, False),
    ("Berserk v01", "en", False, True),
    ("Vagabond v12", "en", False, True),
    ("One Piece v045", "en", True, True),
    ("Akira 03", "en", True, True),
)
SHARES = {
    "disagree": (16, 14, 13, 12, 11, 12, 12, 3, 3, 2, 2),  # 10% right-to-left
    "rtl": (12, 10, 10, 10, 9, 9, 0, 10, 10, 10, 10),  # 40% right-to-left
    "manga": (12, 10, 10, 10, 9, 9, 0, 10, 10, 10, 10),  # the same, manga drawn as manga
}
LOOKS = {"manga"}
"""Kinds whose right-to-left series look like manga: screentone, vertical lettering."""


@dataclass(frozen=True, slots=True)
class Rates:
    miss: float
    miss_small: float
    merge_thin: float
    merge: float
    spurious: tuple[float, float, float]  # P(0, 1, 2 spurious boxes)
    low_score: float
    low_page: float
    vlm_old: float  # share of old-schema replies
    omit_textless: float
    omit_text: float
    vlm_merge: float
    vlm_split: float
    hallucinate: float
    null_box_page: float


RATES = {
    "disagree": Rates(
        miss=0.03, miss_small=0.1, merge_thin=0.12, merge=0.015, spurious=(0.55, 0.33, 0.12),
        low_score=0.03, low_page=0.01, vlm_old=0.78, omit_textless=0.5, omit_text=0.03,
        vlm_merge=0.1, vlm_split=0.04, hallucinate=0.03, null_box_page=0.04,
    ),
    "rtl": Rates(  # about half the rates of "disagree"
        miss=0.015, miss_small=0.05, merge_thin=0.06, merge=0.008, spurious=(0.7, 0.24, 0.06),
        low_score=0.015, low_page=0.01, vlm_old=0.0, omit_textless=0.2, omit_text=0.015,
        vlm_merge=0.05, vlm_split=0.02, hallucinate=0.015, null_box_page=0.04,
    ),
}  # fmt: skip
RATES["manga"] = RATES["rtl"]
DIFFICULTY = ("easy", "plain", "hard")
DIFFICULTY_WEIGHTS = (20, 45, 35)
DIFFICULTY_FACTOR = {"easy": 0.3, "plain": 1.0, "hard": 2.0}
"""Each page's difficulty scales every defect rate of both readers."""
TEXT_DET_RECALL = 0.87
BALLOON_RATE = 0.35
FALSE_TEXT_PAGE = 0.25
COCO_SIZE_MISSING = 0.05
LINE_KINDS = (  # (bucket, label, line pool of heldout_production)
    ("dialogue", "dialogue", "dialogue"), ("dialogue", "dialogue", "whisper"),
    ("dialogue", "dialogue", "shout"), ("dialogue", "thought", "thought"),
    ("narration", "caption", "narration"), ("narration", "narration", "narration"),
    ("sfx", "sfx", "sfx"),
)  # fmt: skip
LINE_WEIGHTS = (44, 4, 4, 13, 18, 4, 13)  # dialogue 65%, narration 22%, sfx 13%
SHOTS = ("Close-up", "Wide shot", "Establishing shot", "Medium shot", "Low angle", "Top view")
SETTINGS = ("a rainy city", "a ship's deck", "a desert road", "a castle hall", "a night market")


@dataclass(slots=True)
class Line:
    text: str
    bucket: str
    label: str
    speaker: str
    box: Box


@dataclass(slots=True)
class TPanel:
    box: Box
    lines: list[Line] = field(default_factory=list)
    characters: list[tuple[str, Box]] = field(default_factory=list)
    faces: list[tuple[str, Box]] = field(default_factory=list)
    description: str = ""
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    out: str
    kind: str
    name: str
    lang: str
    upper: bool
    rtl: bool
    size: tuple[int, int]
    number: int
    seed: int


# --------------------------------------------------------------------------------------
# Layout: boxes in the true reading order
# --------------------------------------------------------------------------------------


def _edges(rng: random.Random, lo: int, hi: int, weights: Sequence[float]) -> list[int]:
    total, acc, out = sum(weights), 0.0, [lo]
    for wt in weights:
        acc += wt
        out.append(round(lo + acc / total * (hi - lo)))
    return out


def _panel_count(rng: random.Random) -> int:
    if rng.random() < 0.05:
        return rng.choice((10, 10, 11, 11, 12, 13, 14))
    return rng.choices(range(3, 10), weights=(8, 14, 18, 18, 15, 10, 7))[0]


def layout(rng: random.Random, w: int, h: int, n: int, gap: int) -> tuple[list[Box], str]:
    """n panel boxes, left-to-right reading order; `gap` is half a gutter."""
    m = round(w * 0.035)
    x0, y0, x1, y1 = m, m, w - m, h - m
    if 4 <= n <= 6 and rng.random() < 0.07:  # two columns, read column by column
        a = rng.randint(2, n - 2)
        split = round(x0 + rng.uniform(0.4, 0.6) * (x1 - x0))
        boxes: list[Box] = []
        for cx0, cx1, k in ((x0, split - gap, a), (split + gap, x1, n - a)):
            ys = _edges(rng, y0, y1, [rng.uniform(0.6, 1.4) for _ in range(k)])
            for i in range(k):
                top, bot = ys[i] + (gap if i else 0), ys[i + 1] - (gap if i < k - 1 else 0)
                boxes.append((cx0, top, cx1 - cx0, bot - top))
        return boxes, "columns"
    rows: list[int] = []
    left = n
    while left:
        c = min(left, rng.choices((1, 2, 3, 4), weights=(2, 5, 4, 1 if n < 10 else 3))[0])
        rows.append(c)
        left -= c
    while len(rows) > 6:  # too many rows: fold the shortest into its neighbour
        k = min(range(len(rows) - 1), key=lambda i: rows[i] + rows[i + 1])
        rows[k : k + 2] = [rows[k] + rows[k + 1]]
    blocks = [c >= 3 and rng.random() < 0.18 for c in rows]  # tall panel beside stacked ones
    heights = [rng.uniform(0.7, 1.3) * (1.7 if b else 1.0) for b in blocks]
    ys = _edges(rng, y0, y1, heights)
    boxes = []
    style = "rows"
    for r, c in enumerate(rows):
        top, bot = ys[r] + (gap if r else 0), ys[r + 1] - (gap if r < len(rows) - 1 else 0)
        if blocks[r]:
            style = "rows+block"
            split = round(x0 + rng.uniform(0.4, 0.6) * (x1 - x0))
            tall_left = rng.random() < 0.5
            tx0, tx1 = (x0, split - gap) if tall_left else (split + gap, x1)
            sx0, sx1 = (split + gap, x1) if tall_left else (x0, split - gap)
            tall = (tx0, top, tx1 - tx0, bot - top)
            sy = _edges(rng, top, bot, [rng.uniform(0.7, 1.3) for _ in range(c - 1)])
            stack = []
            for i in range(c - 1):
                s_top, s_bot = sy[i] + (gap if i else 0), sy[i + 1] - (gap if i < c - 2 else 0)
                stack.append((sx0, s_top, sx1 - sx0, s_bot - s_top))
            boxes += [tall, *stack] if tall_left else [*stack, tall]
            continue
        xs = _edges(rng, x0, x1, [rng.uniform(0.6, 1.4) for _ in range(c)])
        for i in range(c):
            jit = rng.randint(-3, 3) if i else 0  # hand-drawn tops
            lx, rx = xs[i] + (gap if i else 0), xs[i + 1] - (gap if i < c - 1 else 0)
            boxes.append((lx, max(0, top + jit), rx - lx, bot - max(0, top + jit)))
    return boxes, style


def _inter(a: Sequence[int], b: Sequence[int]) -> int:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, iw) * max(0, ih)


def _union(a: Sequence[int], b: Sequence[int]) -> Box:
    x, y = min(a[0], b[0]), min(a[1], b[1])
    return (x, y, max(a[0] + a[2], b[0] + b[2]) - x, max(a[1] + a[3], b[1] + b[3]) - y)


def adjacent_pairs(boxes: Sequence[Box], gap: int) -> set[tuple[int, int]]:
    """Pairs of panels across one gutter whose union is (nearly) a rectangle of just them."""
    out: set[tuple[int, int]] = set()
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            A, B = boxes[a], boxes[b]
            for ax in (0, 1):
                o = 1 - ax  # the other axis
                lo = max(A[o], B[o])
                share = (min(A[o] + A[o + 2], B[o] + B[o + 2]) - lo) / max(A[o + 2], B[o + 2])
                between = max(A[ax], B[ax]) - min(A[ax] + A[ax + 2], B[ax] + B[ax + 2])
                if share >= 0.85 and -4 <= between <= 2 * gap + 8:
                    u = _union(A, B)
                    if all(
                        _inter(u, C) < 0.2 * C[2] * C[3]
                        for k, C in enumerate(boxes)
                        if k not in (a, b)
                    ):
                        out.add((a, b))
    return out


# --------------------------------------------------------------------------------------
# One page
# --------------------------------------------------------------------------------------


def _content(
    rng: random.Random, boxes: list[Box], picker: hp._LinePicker, vertical: bool = False
) -> list[TPanel]:
    """True panels' content; `vertical`: lettering in tall columns (manga)."""
    panels = []
    for box in boxes:
        p = TPanel(box)
        for _ in range(rng.choices((0, 1, 2), weights=(3, 5, 2))[0]):
            name = rng.choice(picker.names)
            cbox = hp._inner_box(rng, box, (0.2, 0.45), (0.35, 0.8))
            p.characters.append((name, cbox))
            if rng.random() < 0.7:
                cx, cy, cw, ch = cbox
                p.faces.append((name, (cx + cw // 4, cy + 2, max(6, cw // 2), max(6, ch // 4))))
        for _ in range(rng.choices((0, 1, 2, 3, 4), weights=(30, 30, 22, 12, 6))[0]):
            bucket, label, pool = rng.choices(LINE_KINDS, weights=LINE_WEIGHTS)[0]
            speaker = {"dialogue": rng.choice(picker.names), "narration": "Narrator"}.get(
                bucket, ""
            )
            text = picker.pick(pool)
            if text is not None:
                fw, fh = (0.2, 0.5), (0.06, 0.18)
                tbox = hp._inner_box(rng, box, *((fh, fw) if vertical else (fw, fh)))
                p.lines.append(Line(text, bucket, label, speaker, tbox))
        who = p.characters[0][0] if p.characters and rng.random() < 0.5 else rng.choice(hp.WHO)
        p.description = f"{who} {rng.choice(hp.DOES)} {rng.choice(hp.WHERE)}."
        p.caption = f"{rng.choice(SHOTS)} of {who[0].lower() + who[1:] if who in hp.WHO else who}"
        panels.append(p)
    return panels


def _score(rng: random.Random, rate: float) -> float:
    return round(rng.uniform(0.4, 0.8) if rng.random() < rate else rng.uniform(0.85, 0.999), 4)


def _split_box(rng: random.Random, box: Box, f: float) -> tuple[Box, Box]:
    x, y, w, h = box
    if w >= h:
        cut = round(w * f)
        a, b = (x, y, cut, h), (x + cut, y, w - cut, h)
    else:
        cut = round(h * f)
        a, b = (x, y, w, cut), (x, y + cut, w, h - cut)
    return (a, b) if rng.random() < 0.5 else (b, a)


def detector(
    rng: random.Random,
    panels: list[TPanel],
    size: tuple[int, int],
    r: Rates,
    adj: set[tuple[int, int]],
    thin: bool,
    f: float,
) -> tuple[list[dict[str, Json]], dict[str, Json]]:
    """COCO annotations (no ids yet) and the defects applied; `f` scales the rates by the
    page's difficulty."""
    n = len(panels)
    areas = sorted(p.box[2] * p.box[3] for p in panels)
    median = areas[n // 2]
    low_page = rng.random() < r.low_page
    r = dataclasses.replace(
        r, miss=r.miss * f, miss_small=min(0.8, r.miss_small * f), merge=r.merge * f,
        merge_thin=min(0.6, r.merge_thin * f),
    )  # fmt: skip
    missed = [
        k
        for k, p in enumerate(panels)
        if rng.random() < (r.miss_small if p.box[2] * p.box[3] < 0.5 * median else r.miss)
    ]
    merged: list[list[int]] = []
    used = set(missed)
    for a, b in sorted(adj, key=lambda _: rng.random()):
        if a not in used and b not in used and rng.random() < (r.merge_thin if thin else r.merge):
            merged.append([a, b])
            used |= {a, b}
    n_spur = 0
    if rng.random() < f:  # easy pages: mostly none
        n_spur = rng.choices((0, 1, 2), weights=r.spurious)[0] + (f > 1 and rng.random() < 0.5)
    boxes: dict[int, Box] = {k: panels[k].box for k in range(n) if k not in used}
    spurious: list[dict[str, Json]] = []
    for _ in range(n_spur):
        score = round(rng.uniform(0.3, 0.8), 4)
        splittable = [
            k for k in boxes if boxes[k] == panels[k].box and min(panels[k].box[2:]) >= 60
        ]
        if rng.random() < 0.45 and splittable:
            k = rng.choice(splittable)
            main, rest = _split_box(rng, panels[k].box, rng.uniform(0.58, 0.78))
            boxes[k] = main
            spurious.append({"kind": "split", "of": k, "box": list(rest), "score": score})
        else:
            k = rng.randrange(n)
            art = hp._inner_box(rng, panels[k].box, (0.25, 0.6), (0.25, 0.6))
            spurious.append({"kind": "art", "of": k, "box": list(art), "score": score})
    anns: list[dict[str, Json]] = []
    low: list[int] = []

    def panel_det(box: Box, score: float) -> None:
        if low_page:
            score = round(rng.uniform(0.2, 0.49), 4)
        anns.append({"category_id": 1, "bbox": hp._jitter(rng, box, size), "score": score})

    for k, box in boxes.items():
        s = _score(rng, r.low_score)
        low += [k] if s < 0.5 else []
        panel_det(box, s)
    for a, b in merged:
        panel_det(_union(panels[a].box, panels[b].box), _score(rng, r.low_score))
    for sp in spurious:
        panel_det(tuple(sp["box"]), sp["score"])  # type: ignore[arg-type]
    for p in panels:
        for ln in p.lines:
            if rng.random() < TEXT_DET_RECALL:
                anns.append(
                    {
                        "category_id": 4,
                        "bbox": hp._jitter(rng, ln.box, size, 3),
                        "score": round(rng.uniform(0.5, 0.99), 4),
                    }
                )
            if ln.bucket == "dialogue" and rng.random() < BALLOON_RATE:
                x, y, bw, bh = ln.box
                pad = rng.randint(3, 8)
                bx, by = max(0, x - pad), max(0, y - pad)
                bb = (bx, by, min(size[0], x + bw + pad) - bx, min(size[1], y + bh + pad) - by)
                anns.append(
                    {"category_id": 3, "bbox": list(bb), "score": round(rng.uniform(0.5, 0.95), 4)}
                )
        for _, cbox in p.characters:
            if rng.random() < 0.8:
                anns.append(
                    {
                        "category_id": 2,
                        "bbox": hp._jitter(rng, cbox, size, 5),
                        "score": round(rng.uniform(0.45, 0.98), 4),
                    }
                )
        for _, fbox in p.faces:
            if rng.random() < 0.7:
                anns.append(
                    {
                        "category_id": 7,
                        "bbox": hp._jitter(rng, fbox, size, 3),
                        "score": round(rng.uniform(0.45, 0.98), 4),
                    }
                )
    false_text = 0
    if rng.random() < FALSE_TEXT_PAGE:
        false_text = 1
        w, h = size
        if rng.random() < 0.5:  # a page number in the bottom margin
            fb: Box = (rng.randint(w // 3, 2 * w // 3), h - max(12, round(w * 0.03)), 24, 10)
        else:
            fb = hp._inner_box(rng, rng.choice(panels).box, (0.08, 0.2), (0.03, 0.08))
        anns.append({"category_id": 4, "bbox": list(fb), "score": round(rng.uniform(0.3, 0.7), 4)})
    rng.shuffle(anns)
    det_all = sum(a["category_id"] == 1 for a in anns)
    det_050 = sum(a["category_id"] == 1 and a["score"] >= 0.5 for a in anns)
    defects = {
        "missed": missed,
        "merged": merged,
        "spurious": spurious,
        "low_score": low,
        "low_page": low_page,
        "false_text": false_text,
        "count_all": det_all,
        "count": det_050,
    }
    return anns, defects


def vlm_plan(
    rng: random.Random, panels: list[TPanel], r: Rates, adj: set[tuple[int, int]], f: float
) -> tuple[list[dict[str, Json]], dict[str, Json]]:
    """The VLM's panels, in true order: each covers true panels (a part of one when split).

    `f` scales the rates by the page's difficulty.
    """
    n = len(panels)
    r = dataclasses.replace(
        r,
        omit_text=r.omit_text * f,
        omit_textless=min(0.9, r.omit_textless * f),
        vlm_merge=r.vlm_merge * f,
        vlm_split=r.vlm_split * f,
    )
    kept = [
        k
        for k, p in enumerate(panels)
        if rng.random() >= (r.omit_text if p.lines else r.omit_textless)
    ]
    if not kept:
        kept = [0]
    omitted = [k for k in range(n) if k not in kept]
    entries: list[dict[str, Json]] = []
    merged, split = [], []
    i = 0
    while i < len(kept):
        k = kept[i]
        nxt = kept[i + 1] if i + 1 < len(kept) else None
        if nxt == k + 1 and (k, nxt) in adj and rng.random() < r.vlm_merge:
            lines = panels[k].lines + panels[nxt].lines
            entries.append({"covers": [k, nxt], "part": None, "lines": lines})
            merged.append([k, nxt])
            i += 2
            continue
        lines = panels[k].lines
        if rng.random() < r.vlm_split:
            cut = rng.randint(0, len(lines))
            split.append(k)
            entries.append({"covers": [k], "part": 0, "lines": lines[:cut]})
            entries.append({"covers": [k], "part": 1, "lines": lines[cut:]})
        else:
            entries.append({"covers": [k], "part": None, "lines": lines})
        i += 1
    hallucinated = 0
    if rng.random() < r.hallucinate:
        hallucinated = 1
        entries.insert(rng.randint(0, len(entries)), {"covers": [], "part": None, "lines": []})
    return entries, {
        "omitted": omitted,
        "merged": merged,
        "split": split,
        "hallucinated": hallucinated,
    }


def _to_1000(box: Sequence[int], size: tuple[int, int], rng: random.Random, sd: float) -> list[int]:
    x, y, w, h = box
    q = lambda v, full: min(1000, max(0, round(v / full * 1000 + rng.gauss(0, sd))))  # noqa: E731
    return [q(y, size[1]), q(x, size[0]), q(y + h, size[1]), q(x + w, size[0])]


def vlm_reply(
    rng: random.Random,
    job: Job,
    panels: list[TPanel],
    entries: list[dict[str, Json]],
    old: bool,
    picker: hp._LinePicker,
    size: tuple[int, int],
) -> tuple[dict[str, Json], list[str], int]:
    """The stored analysis, the hallucinated lines and the number of null panel boxes."""
    null_at = (
        rng.randrange(len(entries))
        if not old and rng.random() < RATES[job.kind].null_box_page
        else -1
    )
    loose = 14.0 if rng.random() < 0.1 else 5.0
    foreign: list[str] = []
    out = []
    for i, e in enumerate(entries):
        covers = e["covers"]
        if covers:
            desc = " ".join(panels[k].description for k in covers)
            cap = " / ".join(panels[k].caption for k in covers)
            box: Sequence[int] = panels[covers[0]].box
            if len(covers) == 2:
                box = _union(panels[covers[0]].box, panels[covers[1]].box)
            elif e["part"] is not None:
                x, y, bw, bh = box  # halves, the first in reading order first
                halves = (
                    [(x, y, bw // 2, bh), (x + bw // 2, y, bw - bw // 2, bh)]
                    if bw >= bh
                    else [(x, y, bw, bh // 2), (x, y + bh // 2, bw, bh - bh // 2)]
                )
                if bw >= bh and job.rtl:
                    halves.reverse()
                box = halves[e["part"]]
        else:  # hallucinated
            desc, cap = (
                f"{rng.choice(hp.WHO)} {rng.choice(hp.DOES)} {rng.choice(hp.WHERE)}.",
                rng.choice(SHOTS),
            )
            hbox = hp._inner_box(rng, (0, 0, *size), (0.3, 0.8), (0.15, 0.4))
            box = hbox
            if rng.random() < 0.35 and (t := picker.pick("dialogue")):
                foreign.append(t)
                tbox = hp._inner_box(rng, hbox, (0.3, 0.6), (0.1, 0.2))
                e["lines"] = [Line(t, "dialogue", "dialogue", rng.choice(picker.names), tbox)]
        lines: list[Line] = e["lines"]
        chars = sorted({n for k in covers for n, _ in panels[k].characters})
        if old:
            out.append(
                {
                    "panel_number": i + 1,
                    "caption": cap,
                    "description": desc,
                    "speakers": [
                        {"character": ln.speaker, "dialogue": ln.text, "speech_type": ln.label}
                        for ln in lines
                    ],
                    "key_elements": [*chars, rng.choice(("a door", "rain", "a car", "smoke"))],
                    "actions": [rng.choice(hp.DOES)],
                }
            )
        else:
            out.append(
                {
                    "panel_number": i + 1,
                    "box_2d": None if i == null_at else _to_1000(box, size, rng, loose),
                    "description": desc,
                    "text_content": [
                        {
                            "label": ln.label,
                            "speaker": ln.speaker or None,
                            "text": ln.text,
                            "box_2d": _to_1000(ln.box, size, rng, 4.0),
                        }
                        for ln in lines
                    ],
                    "characters": [
                        {"name": nm, "box_2d": _to_1000(b, size, rng, 6.0)}
                        for k in covers
                        for nm, b in panels[k].characters
                    ],
                    "faces": [
                        {"character": nm, "box_2d": _to_1000(b, size, rng, 6.0)}
                        for k in covers
                        for nm, b in panels[k].faces
                    ],
                }
            )
    summary = f"{len(panels)} panels. " + " ".join(p.description for p in panels[:2])
    doc: dict[str, Json] = {"overall_summary": summary, "panels": out}
    if old:
        dialogue = [ln.text for p in panels for ln in p.lines if ln.bucket == "dialogue"][:3]
        doc["summary"] = {
            "characters": sorted({n for p in panels for n, _ in p.characters}),
            "setting": rng.choice(SETTINGS),
            "plot": summary,
            "dialogue": dialogue,
        }
    else:
        doc.update(
            canonical_id=f"images/{job.name}/JPG4CBZ/{job.number:04d}", model=rng.choice(hp.MODELS)
        )
        doc["usage"] = {
            "prompt_tokens": rng.randint(1100, 1800),
            "completion_tokens": rng.randint(300, 2500),
        }
        doc["processed_at"] = (
            f"2026-0{rng.randint(1, 3)}-{rng.randint(10, 28)}T12:{rng.randint(10, 59)}:00Z"
        )
    return doc, foreign, int(null_at >= 0)


def make_page(job: Job) -> dict[str, Json]:
    rng = random.Random(f"align:{job.kind}:{job.seed}:{job.index}")
    r = RATES[job.kind]
    size = job.size
    if rng.random() < 0.04:
        wd = round(size[0] * rng.uniform(0.85, 1.15))
        size = (wd, round(wd * rng.uniform(1.42, 1.58)))
    w, h = size
    thin = rng.random() < 0.35
    gap = rng.randint(2, 3) if thin else max(4, round(w * rng.uniform(0.007, 0.012)))
    boxes, style = layout(rng, w, h, _panel_count(rng), gap)
    if job.rtl:
        boxes = [(w - x - bw, y, bw, bh) for x, y, bw, bh in boxes]
    series = hp.Series(job.name, job.lang, job.upper, w, h)
    picker = hp._LinePicker(rng, series)
    manga = job.rtl and job.kind in LOOKS
    panels = _content(rng, boxes, picker, vertical=manga)
    adj = adjacent_pairs(boxes, gap)
    # one difficulty for both readers (dense, busy pages confound both), the VLM's redrawn
    # on a quarter of the pages
    level = rng.choices(DIFFICULTY, weights=DIFFICULTY_WEIGHTS)[0]
    vlevel = (
        rng.choices(DIFFICULTY, weights=DIFFICULTY_WEIGHTS)[0] if rng.random() < 0.25 else level
    )
    anns, det = detector(rng, panels, size, r, adj, thin, DIFFICULTY_FACTOR[level])
    entries, vdef = vlm_plan(rng, panels, r, adj, DIFFICULTY_FACTOR[vlevel])
    det["difficulty"], vdef["difficulty"] = level, vlevel
    old = rng.random() < r.vlm_old
    reply, foreign, nulls = vlm_reply(rng, job, panels, entries, old, picker, size)

    stem = f"{job.number:04d}"
    rel = f"images/{job.name}/JPG4CBZ/{stem}"
    image_path = os.path.join(job.out, *rel.split("/")) + ".jpg"
    vlm_path = os.path.join(job.out, "vlm", *rel.split("/")) + ".json"
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    os.makedirs(os.path.dirname(vlm_path), exist_ok=True)
    drawn = [
        hp.TruePanel(
            p.box,
            [hp.TrueLine(ln.label, ln.text, ln.speaker, ln.box) for ln in p.lines],
            p.characters,
            p.faces,
        )
        for p in panels
    ]
    hp._draw(image_path, size, drawn, f"align-draw:{job.seed}:{job.index}", manga=manga)
    with open(vlm_path, "w", encoding="utf-8") as fh:
        json.dump(
            reply, fh, ensure_ascii=rng.random() < 0.15, indent=2 if rng.random() < 0.6 else None
        )

    image_id = os.path.join(job.out, "images", job.name, f"JPG4CBZ_{stem}.jpg")
    image_rec: dict[str, Json] = {"id": image_id, "file_name": f"JPG4CBZ/{stem}.jpg"}
    if rng.random() >= COCO_SIZE_MISSING:
        image_rec.update(width=w, height=h)
    n_vlm = len(entries)
    changed = bool(
        det["missed"]
        or det["merged"]
        or det["low_score"]
        or any(s["score"] >= 0.5 for s in det["spurious"])
    )
    vchanged = bool(vdef["omitted"] or vdef["merged"] or vdef["split"] or vdef["hallucinated"])
    equal = det["count"] == n_vlm
    truth = {
        "image_path": image_path,
        "image_id": image_id,
        "canonical_id": rel,
        "vlm_path": vlm_path,
        "series": job.name,
        "kind": job.kind,
        "direction": "rtl" if job.rtl else "ltr",
        "schema": "old" if old else "production",
        "page_size": [w, h],
        "layout": style,
        "thin_gutter": thin,
        "panels": [
            {
                "order": k,
                "box": list(p.box),
                **{
                    b: [ln.text for ln in p.lines if ln.bucket == b]
                    for b in ("dialogue", "narration", "sfx")
                },
                "lines": [ln.text for ln in p.lines],
            }
            for k, p in enumerate(panels)
        ],
        "det": det,
        "vlm": {
            **vdef,
            "null_boxes": nulls,
            "foreign_lines": foreign,
            "panels": [
                {"covers": e["covers"], "part": e["part"], "lines": [ln.text for ln in e["lines"]]}
                for e in entries
            ],
        },
        "counts": {
            "true": len(panels),
            "det": det["count"],
            "det_all": det["count_all"],
            "vlm": n_vlm,
        },
        "equal_count": equal,
        "equal_by_coincidence": equal and (changed or vchanged),
    }
    return {"image": image_rec, "annotations": anns, "truth": truth, "manifest": (rel, image_path)}


def make(out: Path, pages: int, seed: int, kind: str, workers: int) -> list[dict[str, Json]]:
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    srng = random.Random(f"align-series:{seed}")
    shares = SHARES[kind]
    counts = [pages * s // sum(shares) for s in shares]
    counts[0] += pages - sum(counts)
    jobs: list[Job] = []
    for (name, lang, upper, rtl), count in zip(SERIES_SPECS, counts, strict=True):
        wd = srng.randrange(600, 801 if rtl else 1001, 4)
        size = (wd, round(wd * srng.uniform(1.42, 1.58)))
        for number in range(1, count + 1):
            jobs.append(Job(len(jobs), str(out), kind, name, lang, upper, rtl, size, number, seed))
    start = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(make_page, jobs, chunksize=20)
    else:
        results = [make_page(job) for job in jobs]
    annotations = hp.write_corpus(out, results, CATEGORIES)
    truths = [res["truth"] for res in results]
    print(
        f"{pages} pages ({kind}) in {time.perf_counter() - start:.1f}s under {out}; "
        f"{annotations} annotations"
    )
    import heldout_alignment_measure as ham

    print(ham.summarize(truths))
    return truths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the corpus")
    mk.add_argument("out", type=Path)
    mk.add_argument("--pages", type=int, default=2000)
    mk.add_argument("--seed", type=int, default=11)
    mk.add_argument("--kind", choices=sorted(RATES), default="disagree")
    mk.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ms = sub.add_parser("measure", help="measure the analyzer's pages against the truth")
    ms.add_argument("out", type=Path)
    ms.add_argument(
        "--dataspec_dir",
        "--dataspec-dir",
        required=True,
        help="emitted DataSpec folder or list .txt",
    )
    ms.add_argument("--csv", required=True, help="the analyzer's --output_csv")
    ms.add_argument("--skips", help="the analyzer's --dataspec_debug_skips_out")
    args = parser.parse_args(argv)
    if args.cmd == "make":
        if args.pages < 1:
            parser.error("--pages must be at least 1")
        make(args.out, args.pages, args.seed, args.kind, max(1, args.workers))
        return 0
    for path in (args.out / "truth.jsonl", args.dataspec_dir, args.csv, args.skips):
        if path is not None and not os.path.exists(path):
            parser.error(f"{path} not found")
    import heldout_alignment_measure as ham

    print(ham.measure(args.out, args.dataspec_dir, args.csv, args.skips))
    return 0


if __name__ == "__main__":
    sys.exit(main())
