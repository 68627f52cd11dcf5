"""`read_panels` per document: the general path against the fast path, in one run.

    python benchmarks/bench_normalize.py --docs 20000 --seed 0

Builds N documents of each schema in memory (seeded, no files), as JSON bytes: the old
VLM schema (caption, description, speakers, key_elements, actions, summary), the production
one (box_2d, text_content, characters, faces, the worker's fields) and canonical DataSpec
pages (panel_coords, text, text_items, characters, faces, score). About 6 panels a page
(3-10), 0-3 lettered lines a panel, about 4.5 KB of JSON a document. Each chunk of documents
is parsed with `orjson.loads` (timed: the floor, what reading the bytes costs at least), then
read with `read_panels(..., fast=False)` (the general path) and `read_panels(...)` (the fast
path, falling back where it must), one after the other, with the garbage collector off.
Prints µs per document for each and general / fast, and the share the fast path took; the
first 300 documents of each schema are checked to give equal results.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from dataspec.normalize import read_panels
from dataspec.normalize.fast import read_fast

W, H = 1000, 1500
PANELS = {3: 4, 4: 10, 5: 18, 6: 22, 7: 18, 8: 14, 9: 8, 10: 6}
"""Panels per page: weight."""
LINES = (30, 35, 22, 13)
"""Lettered lines per panel (0-3): weight."""
KINDS = (("dialogue", 55), ("thought", 10), ("caption", 12), ("narration", 8), ("sfx", 15))
NAMES = ("Bruce", "Jean", "Bodie", "Nadia", "Logan", "Izabel", "Kamala", "Mac", "Ororo")
WORDS = (
    "WHERE", "DID", "MAC", "GO", "RUN", "LOOK", "OUT", "THE", "SHIP", "IS", "BURNING", "WAIT",
    "NO", "WE", "CAN", "STILL", "SAVE", "HER", "NEVER", "AGAIN", "TONIGHT", "HURRY",
)  # fmt: skip
SHOTS = ("Close-up", "Wide shot", "Medium shot", "Low-angle shot", "Long shot", "Insert")
PLACES = ("a narrow alley", "a rain-soaked rooftop", "the harbour", "a crowded market")
ACTS = ("turns away", "reaches out a hand", "raises a fist", "points off-panel", "listens")
SFX = ("BLAM!", "KRAKOOM", "SKREEE", "THUD", "WHAM")
KIND_NAMES = ("dialogue", "narration", "sfx")


def _weighted(rng: random.Random, table: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def _line(rng: random.Random, kind: str) -> str:
    if kind == "sfx":
        return rng.choice(SFX)
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) + rng.choice("!?.")


def _layout(rng: random.Random) -> list[tuple[int, int, int, int]]:
    """Panel boxes [x, y, w, h] in rows on a W x H page."""
    n = _weighted(rng, list(PANELS.items()))
    rows, boxes = max(2, min(4, n // 2)), []
    per_row = [n // rows + (1 if r < n % rows else 0) for r in range(rows)]
    row_h = (H - 20) // rows
    for r, count in enumerate(per_row):
        col_w = (W - 20) // max(1, count)
        for c in range(count):
            boxes.append((10 + c * col_w, 10 + r * row_h, col_w - 10, row_h - 10))
    return boxes


def _b2d(box: tuple[int, int, int, int]) -> list[int]:
    x, y, w, h = box
    return [round(1000 * v / s) for v, s in ((y, H), (x, W), (y + h, H), (x + w, W))]


def _inner(rng: random.Random, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    bw, bh = rng.randint(w // 6, w // 2), rng.randint(h // 8, h // 3)
    return (rng.randint(x, x + w - bw), rng.randint(y, y + h - bh), bw, bh)


def _panel_content(rng: random.Random, cast: list[str]) -> dict[str, Any]:
    names = rng.sample(cast, rng.randint(0, min(2, len(cast))))
    lines = []
    for _ in range(_weighted(rng, list(enumerate(LINES)))):
        kind = _weighted(rng, KINDS)
        lines.append((kind, _line(rng, kind), rng.choice(names) if names else "Narrator"))
    shot, place = rng.choice(SHOTS), rng.choice(PLACES)
    caption = f"{shot} of {' and '.join(names) or 'the scene'} in {place}."
    actions = [f"{n} {rng.choice(ACTS)}" for n in names]
    description = " ".join(
        [caption, f"The background shows {place} in muted colours, rain streaking the panel."]
        + ["The light is low and cold; the figures are drawn in heavy ink with sharp shadows."]
        + ["Puddles reflect the neon signs, and the frame is tilted to add to the unease."]
        + [a + "." for a in actions]
        + ["Speech balloons carry the conversation." if lines else "No lettering."]
    )
    return dict(
        names=names, lines=lines, caption=caption, desc=description, acts=actions, place=place
    )


def old_doc(rng: random.Random) -> dict[str, Any]:
    """A reply in the old VLM schema."""
    cast = rng.sample(NAMES, rng.randint(1, 4))
    panels = []
    for k, _ in enumerate(_layout(rng)):
        c = _panel_content(rng, cast)
        panels.append(
            {
                "panel_number": k + 1,
                "caption": c["caption"],
                "description": c["desc"],
                "speakers": [
                    {"character": who, "dialogue": text, "speech_type": kind}
                    for kind, text, who in c["lines"]
                ],
                "key_elements": [*c["names"], c["place"].split(" ", 1)[1]],
                "actions": c["acts"],
            }
        )
    dialogue = [t for p in panels for s in p["speakers"] for t in [s["dialogue"]]]
    return {
        "overall_summary": f"{' and '.join(cast)} plan their escape in a melancholy scene.",
        "panels": panels,
        "summary": {
            "characters": sorted(cast),
            "setting": "a city",
            "plot": "an escape",
            "dialogue": dialogue,
        },
    }


def production_doc(rng: random.Random) -> dict[str, Any]:
    """A reply in the production schema, with the worker's fields."""
    cast = rng.sample(NAMES, rng.randint(1, 4))
    panels = []
    for k, box in enumerate(_layout(rng)):
        c = _panel_content(rng, cast)
        label = {"narration": "caption"}
        panels.append(
            {
                "panel_number": k + 1,
                "box_2d": _b2d(box),
                "description": c["desc"],
                "text_content": [
                    {
                        "label": label.get(kind, kind),
                        "speaker": who if kind in ("dialogue", "thought") else None,
                        "text": text,
                        "box_2d": _b2d(_inner(rng, box)) if rng.random() < 0.95 else None,
                    }
                    for kind, text, who in c["lines"]
                ],
                "characters": [{"name": n, "box_2d": _b2d(_inner(rng, box))} for n in c["names"]],
                "faces": [{"character": n, "box_2d": _b2d(_inner(rng, box))} for n in c["names"]],
            }
        )
    return {
        "canonical_id": f"Calibre/Series {rng.randint(1, 99)}/JPG4CBZ/{rng.randint(1, 40):04d}",
        "model": "gemini-2.5-flash",
        "overall_summary": f"{' and '.join(cast)} uncover an old secret in a tense scene.",
        "panels": panels,
        "usage": {"prompt_tokens": 1310, "completion_tokens": 700, "total_tokens": 2010},
        "processed_at": "2026-02-03T11:42:00Z",
    }


def canonical_doc(rng: random.Random) -> dict[str, Any]:
    """A canonical DataSpec page, as the analyzer writes one."""
    cast = rng.sample(NAMES, rng.randint(1, 4))
    panels = []
    for box in _layout(rng):
        c = _panel_content(rng, cast)
        kinds = {"thought": "dialogue", "caption": "narration"}
        items = [
            {
                "text": text,
                "kind": kinds.get(kind, kind),
                "label": kind,
                "box": list(_inner(rng, box)),
            }
            | ({"speaker": who} if kind in ("dialogue", "thought") else {})
            for kind, text, who in c["lines"]
        ]
        text = {k: [i["text"] for i in items if i["kind"] == k] for k in KIND_NAMES}
        panel: dict[str, Any] = {
            "panel_coords": list(box),
            "text": text,
            "score": round(rng.uniform(0.5, 1.0), 4),
            "description": c["desc"],
        }
        if items:
            panel["text_items"] = items
        if c["names"]:
            panel["characters"] = [{"name": n, "box": list(_inner(rng, box))} for n in c["names"]]
            panel["faces"] = [{"character": n, "box": list(_inner(rng, box))} for n in c["names"]]
        panels.append(panel)
    return {
        "schema_version": "0.3",
        "page_image_path": f"/data/comics/Series {rng.randint(1, 99)}/JPG4CBZ/0001.jpg",
        "panels": panels,
        "reading_order": list(range(len(panels))),
        "page_size": {"width": W, "height": H},
        "source": {"vlm_json_path": "vlm/Series/JPG4CBZ_0001.json"},
    }


SCHEMAS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "old": old_doc,
    "production": production_doc,
    "canonical": canonical_doc,
}
CHUNK = 500


def _time(fn: Callable[[Any], object], items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def run(schema: str, n: int, seed: int) -> dict[str, float]:
    """Seconds spent per method over `n` documents of `schema`, and what the fast path took."""
    rng = random.Random(f"{schema}:{seed}")
    make = SCHEMAS[schema]
    total = {"loads": 0.0, "general": 0.0, "fast": 0.0, "bytes": 0.0, "took": 0.0}

    def general(doc: Any) -> object:
        return read_panels(doc, page_size=(W, H), fast=False)

    def fast(doc: Any) -> object:
        return read_panels(doc, page_size=(W, H))

    for lo in range(0, n, CHUNK):
        raws = [orjson.dumps(make(rng)) for _ in range(min(CHUNK, n - lo))]
        total["bytes"] += sum(map(len, raws))
        gc.collect()
        gc.disable()
        try:
            total["loads"] += _time(orjson.loads, raws)
            docs = [orjson.loads(r) for r in raws]
            total["general"] += _time(general, docs)
            total["fast"] += _time(fast, docs)
        finally:
            gc.enable()
        total["took"] += sum(read_fast(d, (W, H), False, None) is not None for d in docs)
        if lo == 0:
            for doc in docs[:300]:
                assert fast(doc) == general(doc), "fast path differs from the general path"
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20000, help="documents per schema")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--schemas", default=",".join(SCHEMAS), help="comma-separated")
    args = parser.parse_args(argv)
    n = args.docs
    print(f"read_panels, page_size=({W}, {H}), {n} documents per schema, µs per document")
    head = ("schema", "KB/doc", "orjson", "general", "fast", "gen/fast", "fast took")
    print("{:<11} {:>6} {:>8} {:>9} {:>8} {:>9} {:>10}".format(*head))
    for schema in args.schemas.split(","):
        t = run(schema, n, args.seed)
        us = {k: t[k] / n * 1e6 for k in ("loads", "general", "fast")}
        print(
            f"{schema:<11} {t['bytes'] / n / 1000:>6.1f} {us['loads']:>8.1f} {us['general']:>9.1f}"
            f" {us['fast']:>8.1f} {us['general'] / us['fast']:>8.1f}x {t['took'] / n:>10.1%}"
        )


if __name__ == "__main__":
    main()
