"""Alignment cost per page (`analyzer.align.align`) against the rule it replaced, in one run.

    python benchmarks/bench_align.py --pages 3000 --seed 0

Builds N pages in memory (seeded, no files): 3-14 true panels (mostly 5-8) in rows on a
1000 x 1500 page, 0-4 lettered lines per panel each with its box inside the panel. The
detector misses, merges and invents panels and boxes most lines (plus a false text box on
some pages); the VLM omits textless panels, merges, splits and invents panels. Each page
gets its VLM reply twice: old schema (`speakers[]`, no boxes) and production (`box_2d`,
`text_content[]`; one null box on a few pages). Then times, per page, on one core:

  align order      `align` on the old-schema panels (pair-HMM, both reading directions)
  align overlap    `align` on the production panels (Hungarian on IoU, merges)
  baseline         the rule `align` replaced (`_baseline`): greedy IoU pairing when every
                   VLM panel has a box, else pairing by position when the counts are equal
  read VLM JSON    for scale: `decode_bytes` + `read_panels` of the reply's bytes, what
                   `analyzer.vlm.read_vlm` does to every page after reading the file
  batched          `prepare` + `align_many` over 400 pages at a time, as the analyzer
                   aligns a chunk (mean per page only)

Detections are passed in reading order with score >= 0.5, as `analyzer.page` passes them;
the VLM panels are the `read_panels` records of the replies (made before timing). Each
page's time is its best of --repeats passes, with the cyclic collector off as in the
analyzer's workers. Prints mean, p50, p95, p99 µs per page and pages/s, for all pages and
by true panel count, then align's cost over the baseline's and its share of read + align.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.align import align, align_many, prepare
from analyzer.page import collector_paused
from dataspec import reading_order
from dataspec.errors import Note
from dataspec.normalize import PanelRecord, read_panels
from dataspec.normalize.decode import decode_bytes

Box = tuple[int, int, int, int]

W, H = 1000, 1500
COUNTS = {3: 3, 4: 6, 5: 12, 6: 14, 7: 14, 8: 12, 9: 7, 10: 5, 11: 3, 12: 2, 13: 1, 14: 1}
"""True panels per page: weight."""
LINES = (30, 30, 22, 12, 6)
"""Lettered lines per panel (0-4): weight."""
BUCKETS = ((3, 5), (6, 8), (9, 11), (12, 14))
MIN_SCORE = 0.5
"""Detections below this are dropped before alignment (`--dataspec_min_det_score`)."""
PAIR_MIN_IOU = 0.3
"""The replaced rule's least IoU for a pair (`analyzer.emit.PAIR_MIN_IOU` before `align`)."""

# detector
MISS = 0.08  # a panel not detected
DET_MERGE = 0.06  # two neighbours in a row detected as one box
SPURIOUS = (55, 30, 15)  # 0 / 1 / 2 extra boxes a page: weight
TEXT_RECALL = 0.87  # a lettered line gets a text box
FALSE_TEXT = 0.25  # a page with one text box on no line (page number, art)
# VLM, walking the true panels in reading order
OMIT_EMPTY, OMIT_LETTERED = 0.45, 0.03
VLM_MERGE = 0.10  # a panel and the next reported as one
VLM_SPLIT = 0.04  # a panel reported as two
INVENT = 0.03  # a page with a panel that is not there
NULL_BOX = 0.03  # production: a page with one panel's box_2d null

WORDS = ("WHERE", "DID", "MAC", "GO", "RUN", "LOOK", "OUT", "THE", "SHIP", "NOW", "WAIT", "NO")
KINDS = (("dialogue", 55), ("thought", 10), ("caption", 15), ("narration", 7), ("sfx", 13))
NAMES = ("Mac", "Ororo", "Alana", "Marko")


@dataclass(frozen=True)
class Case:
    """One page, ready to time."""

    panels: int
    """True panel count (the bucket)."""
    dets: list[Box]
    scores: list[float]
    text_boxes: list[Box]
    old: list[PanelRecord]
    prod: list[PanelRecord]
    old_raw: bytes
    prod_raw: bytes


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _cuts(rng: random.Random, total: float, n: int) -> list[float]:
    shares = [rng.uniform(0.6, 1.4) for _ in range(n)]
    return [total * s / sum(shares) for s in shares]


def _layout(rng: random.Random, n: int) -> list[list[Box]]:
    """Rows (top to bottom) of panel boxes (left to right) filling the page."""
    n_rows = max(-(-n // 4), min(6, round(n / rng.uniform(2.0, 3.2))))
    sizes = [1] * n_rows
    for _ in range(n - n_rows):
        sizes[rng.choice([r for r in range(n_rows) if sizes[r] < 4])] += 1
    margin, gutter = rng.randint(30, 50), rng.randint(10, 24)
    rows, y = [], float(margin)
    for size, row_h in zip(sizes, _cuts(rng, H - 2 * margin, len(sizes)), strict=True):
        row, x = [], float(margin)
        for col_w in _cuts(rng, W - 2 * margin, size):
            row.append((round(x), round(y), round(col_w) - gutter, round(row_h) - gutter))
            x += col_w
        rows.append(row)
        y += row_h
    return rows


def _jitter(rng: random.Random, b: Box, px: int) -> Box:
    x, y = b[0] + rng.randint(-px, px), b[1] + rng.randint(-px, px)
    return (
        max(x, 0),
        max(y, 0),
        max(b[2] + rng.randint(-px, px), 8),
        max(b[3] + rng.randint(-px, px), 8),
    )


def _union(a: Box, b: Box) -> Box:
    x, y = min(a[0], b[0]), min(a[1], b[1])
    return (x, y, max(a[0] + a[2], b[0] + b[2]) - x, max(a[1] + a[3], b[1] + b[3]) - y)


def _line_box(rng: random.Random, p: Box) -> Box:
    w = min(rng.randint(80, 300), p[2] - 10)
    h = min(rng.randint(30, 90), p[3] - 10)
    return (p[0] + rng.randint(5, p[2] - w - 5), p[1] + rng.randint(5, p[3] - h - 5), w, h)


def _detector(
    rng: random.Random, rows: list[list[Box]], lines: list[list[tuple[str, str, Box]]]
) -> tuple[list[Box], list[float], list[Box]]:
    """Detections in reading order with score >= MIN_SCORE, and the text boxes."""
    found: list[tuple[Box, float]] = []
    for row in rows:
        c = 0
        while c < len(row):
            if c + 1 < len(row) and rng.random() < DET_MERGE:
                found.append((_union(row[c], row[c + 1]), rng.uniform(0.6, 0.95)))
                c += 2
                continue
            if rng.random() >= MISS:
                score = rng.uniform(0.4, 0.8) if rng.random() < 0.04 else rng.uniform(0.8, 0.99)
                found.append((row[c], score))
            c += 1
    flat = [b for row in rows for b in row]
    for _ in range(_weighted(rng, tuple(enumerate(SPURIOUS)))):
        host = rng.choice(flat)
        if rng.random() < 0.55:  # a box in the art
            w, h = int(host[2] * rng.uniform(0.3, 0.6)), int(host[3] * rng.uniform(0.3, 0.6))
            box = (
                host[0] + rng.randint(0, host[2] - w),
                host[1] + rng.randint(0, host[3] - h),
                w,
                h,
            )
        else:  # the right part of a panel split off
            w = int(host[2] * rng.uniform(0.22, 0.42))
            box = (host[0] + host[2] - w, host[1], w, host[3])
        found.append((box, rng.uniform(0.3, 0.8)))
    kept = [(_jitter(rng, b, 5), round(s, 4)) for b, s in found if s >= MIN_SCORE]
    order = reading_order([b for b, _ in kept])
    texts = [_jitter(rng, b, 3) for ls in lines for _, _, b in ls if rng.random() < TEXT_RECALL]
    if rng.random() < FALSE_TEXT:
        texts.append((rng.randint(400, 560), rng.randint(1440, 1470), 40, 24))
    return [kept[i][0] for i in order], [kept[i][1] for i in order], texts


def _vlm(
    rng: random.Random, flat: list[Box], lines: list[list[tuple[str, str, Box]]]
) -> list[tuple[Box, list[tuple[str, str, Box]]]]:
    """The VLM's panels in its order: (box, lines)."""
    out: list[tuple[Box, list[tuple[str, str, Box]]]] = []
    k = 0
    while k < len(flat):
        if rng.random() < (OMIT_LETTERED if lines[k] else OMIT_EMPTY):
            k += 1
        elif k + 1 < len(flat) and rng.random() < VLM_MERGE:
            out.append((_union(flat[k], flat[k + 1]), lines[k] + lines[k + 1]))
            k += 2
        elif rng.random() < VLM_SPLIT:
            b, cut = flat[k], len(lines[k]) // 2
            top = (b[0], b[1], b[2], b[3] // 2)
            out += [
                (top, lines[k][:cut]),
                ((b[0], b[1] + b[3] // 2, b[2], b[3] - b[3] // 2), lines[k][cut:]),
            ]
            k += 1
        else:
            out.append((flat[k], lines[k]))
            k += 1
    if rng.random() < INVENT:
        host = rng.choice(flat)
        out.insert(rng.randint(0, len(out)), (host, [("dialogue", "NOT ON THE PAGE.", host)]))
    return [(_jitter(rng, b, 8), ls) for b, ls in out]


def _b2d(b: Box) -> list[int]:
    """[ymin, xmin, ymax, xmax] on 0-1000 of the page."""
    return [
        round(b[1] * 1000 / H),
        round(b[0] * 1000 / W),
        round((b[1] + b[3]) * 1000 / H),
        round((b[0] + b[2]) * 1000 / W),
    ]


def _old_schema(panels: list[tuple[Box, list[tuple[str, str, Box]]]]) -> dict[str, Any]:
    return {
        "overall_summary": "The crew argue on a rooftop, then run for the ship.",
        "panels": [
            {
                "panel_number": n + 1,
                "caption": "Medium shot of two people on a rooftop at night.",
                "description": "Two people talk. The city glows behind them.",
                "key_elements": ["Mac", "Ororo", "rooftop"],
                "actions": ["Mac points off-panel"],
                "speakers": [
                    {"character": _speaker(kind, text), "dialogue": text, "speech_type": kind}
                    for kind, text, _ in ls
                ],
            }
            for n, (_, ls) in enumerate(panels)
        ],
        "summary": {"characters": ["Mac", "Ororo"], "setting": "a rooftop", "plot": "a chase"},
    }


def _production(
    rng: random.Random, panels: list[tuple[Box, list[tuple[str, str, Box]]]]
) -> dict[str, Any]:
    null = rng.randrange(len(panels)) if panels and rng.random() < NULL_BOX else -1
    return {
        "overall_summary": "The crew argue on a rooftop, then run for the ship.",
        "panels": [
            {
                "panel_number": n + 1,
                "box_2d": None if n == null else _b2d(b),
                "description": "Two people talk. The city glows behind them.",
                "text_content": [
                    {
                        "label": kind,
                        "speaker": _speaker(kind, text),
                        "text": text,
                        "box_2d": _b2d(lb),
                    }
                    for kind, text, lb in ls
                ],
                "characters": [{"name": "Mac", "box_2d": _b2d(b)}],
                "faces": [{"character": "Mac", "box_2d": _b2d((b[0] + 10, b[1] + 10, 60, 60))}],
            }
            for n, (b, ls) in enumerate(panels)
        ],
        "canonical_id": "CalibreComics_extracted/Saga 001/JPG4CBZ/0001",
        "model": "vlm-2026",
        "usage": {"prompt_tokens": 1200, "completion_tokens": 310},
        "processed_at": "2026-02-01T10:00:00Z",
    }


def _speaker(kind: str, text: str) -> str | None:
    return NAMES[len(text) % len(NAMES)] if kind in ("dialogue", "thought") else None


def make_case(rng: random.Random, i: int) -> Case:
    n = _weighted(rng, tuple(COUNTS.items()))
    rows = _layout(rng, n)
    flat = [b for row in rows for b in row]
    lines = [
        [
            (
                _weighted(rng, KINDS),
                f"{' '.join(rng.choices(WORDS, k=rng.randint(2, 7)))} {i}.{k}!",
                _line_box(rng, p),
            )
            for _ in range(_weighted(rng, tuple(enumerate(LINES))))
        ]
        for k, p in enumerate(flat)
    ]
    dets, scores, texts = _detector(rng, rows, lines)
    panels = _vlm(rng, flat, lines)
    old_raw = json.dumps(_old_schema(panels), indent=2).encode()
    prod_raw = json.dumps(_production(rng, panels), indent=2).encode()
    return Case(n, dets, scores, texts, _read(old_raw), _read(prod_raw), old_raw, prod_raw)


def _read(raw: bytes) -> list[PanelRecord]:
    notes: list[Note] = []
    records, _ = read_panels(decode_bytes(raw, notes), page_size=(W, H))
    return records


# --- the rule align replaced -----------------------------------------------------------------


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _baseline(dets: Sequence[Box], vlm: Sequence[PanelRecord]) -> tuple[list[tuple[int, int]], str]:
    """Greedy IoU pairs when every VLM panel has a box, else by position when counts agree."""
    if dets and vlm and all(r.box is not None for r in vlm):
        scored = sorted(
            (-_iou(d, r.box), i, j)  # type: ignore[arg-type]
            for i, d in enumerate(dets)
            for j, r in enumerate(vlm)
        )
        used_d: set[int] = set()
        used_v: set[int] = set()
        pairs: list[tuple[int, int]] = []
        for neg, i, j in scored:
            if -neg < PAIR_MIN_IOU:
                break
            if i not in used_d and j not in used_v:
                used_d.add(i)
                used_v.add(j)
                pairs.append((i, j))
        return sorted(pairs), "overlap"
    if dets and len(dets) == len(vlm):
        return [(i, i) for i in range(len(dets))], "order"
    return [], "none"


# --- timing ----------------------------------------------------------------------------------


def _per_page(fn: Callable[[Case], object], cases: list[Case], repeats: int) -> list[float]:
    """µs per page, each page's best of `repeats` passes."""
    best = [float("inf")] * len(cases)
    clock = time.perf_counter_ns
    for _ in range(repeats):
        gc.collect()
        with collector_paused():  # as the analyzer's workers run a chunk
            for n, case in enumerate(cases):
                start = clock()
                fn(case)
                best[n] = min(best[n], (clock() - start) / 1000)
    return best


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    s = sorted(values)

    def q(p: float) -> float:
        return s[min(len(s) - 1, int(p * len(s)))]

    return sum(s) / len(s), q(0.5), q(0.95), q(0.99)


def _read_notes(raw: bytes) -> object:
    notes: list[Note] = []
    return read_panels(decode_bytes(raw, notes), page_size=(W, H))


MODES: tuple[tuple[str, Callable[[Case], object]], ...] = (
    ("align order (old schema)", lambda c: align(c.dets, c.scores, c.old, c.text_boxes)),
    ("baseline, old schema", lambda c: _baseline(c.dets, c.old)),
    ("align overlap (production)", lambda c: align(c.dets, c.scores, c.prod, c.text_boxes)),
    ("baseline, production", lambda c: _baseline(c.dets, c.prod)),
    ("read VLM JSON, old schema", lambda c: _read_notes(c.old_raw)),
    ("read VLM JSON, production", lambda c: _read_notes(c.prod_raw)),
)


CHUNK = 400
"""Pages a worker aligns together (`analyzer.pool.CHUNK_PAGES`)."""


def _batched(cases: list[Case], schema: str, repeats: int) -> float:
    """Mean µs per page of aligning `cases` in batches of `CHUNK`, best of `repeats`."""
    best, old = float("inf"), schema == "old"
    for _ in range(repeats):
        gc.collect()
        with collector_paused():
            start = time.perf_counter()
            for lo in range(0, len(cases), CHUNK):
                batch = cases[lo : lo + CHUNK]
                vlm = [c.old if old else c.prod for c in batch]
                align_many(
                    [
                        prepare(c.dets, c.scores, v, c.text_boxes)
                        for c, v in zip(batch, vlm, strict=True)
                    ]
                )
            best = min(best, time.perf_counter() - start)
    return best / len(cases) * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N passes, per page")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    cases = [make_case(rng, i) for i in range(args.pages)]
    equal = sum(len(c.dets) == len(c.old) for c in cases) / len(cases)
    sample = cases[:200]  # each reply schema takes the method it is timed for
    methods = {
        "old": sorted({align(c.dets, c.scores, c.old, c.text_boxes).method for c in sample}),
        "production": sorted(
            {align(c.dets, c.scores, c.prod, c.text_boxes).method for c in sample}
        ),
    }
    print(
        f"{len(cases)} pages (seed {args.seed}) in {time.perf_counter() - t0:.1f}s: "
        f"{sum(len(c.dets) for c in cases) / len(cases):.1f} detections, "
        f"{sum(len(c.old) for c in cases) / len(cases):.1f} VLM panels a page; "
        f"counts equal on {equal:.1%}; align methods {methods}"
    )

    times = {name: _per_page(fn, cases, args.repeats) for name, fn in MODES}
    print(
        f"\n{'µs per page':<28} {'panels':>6} {'pages':>6} {'mean':>8} {'p50':>8} "
        f"{'p95':>8} {'p99':>8} {'pages/s':>9}"
    )
    for name, _ in MODES:
        groups = [("all", list(range(len(cases))))] + [
            (f"{lo}-{hi}", [n for n, c in enumerate(cases) if lo <= c.panels <= hi])
            for lo, hi in BUCKETS
        ]
        for label, idx in groups:
            if not idx:
                continue
            mean, p50, p95, p99 = _stats([times[name][n] for n in idx])
            print(
                f"{name if label == 'all' else '':<28} {label:>6} {len(idx):>6} {mean:>8.1f} "
                f"{p50:>8.1f} {p95:>8.1f} {p99:>8.1f} {1e6 / mean:>9,.0f}"
            )

    def avg(name: str) -> float:
        return sum(times[name]) / len(cases)

    batched = {schema: _batched(cases, schema, args.repeats) for schema in ("old", "production")}
    print(
        f"\nbatched as the analyzer runs it ({CHUNK} pages a batch, prepare + align_many), "
        f"mean µs per page: old schema {batched['old']:.1f} "
        f"({avg('align order (old schema)') / batched['old']:.1f}x faster than one page at a "
        f"time), production {batched['production']:.1f}"
    )

    print()
    for schema, mode in (
        ("old schema", "align order (old schema)"),
        ("production", "align overlap (production)"),
    ):
        base, read = f"baseline, {schema}", f"read VLM JSON, {schema}"
        print(
            f"{schema:<11} align / baseline: {avg(mode) / avg(base):6.1f}x "
            f"(+{avg(mode) - avg(base):.0f} µs a page); "
            f"align / (read VLM JSON + align): {avg(mode) / (avg(read) + avg(mode)):.0%}"
        )


if __name__ == "__main__":
    main()
