"""Strict load + validation throughput against a read + `json.loads` floor, in one run.

    python benchmarks/bench_load.py --pages 50000

Writes N canonical page files (3–9 panels with text, in 100 series folders) to a temp
folder, reads them all once to warm the page cache, then times, on one core:
  floor: open + read + json.loads per file (no validation at all)
  dataspec.load: open + read + strict v0.3 validation per file
and prints pages/s for each and their ratio (target: dataspec.load >= 0.5 x floor).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

import dataspec


def make_page(rng: random.Random, i: int) -> dict[str, Any]:
    """A realistic canonical page: 3–9 panels in rows, dialogue, captions, sfx, scores."""
    width, height = 1988, 3057
    n = rng.randint(3, 9)
    panels = []
    for k in range(n):
        row, col = divmod(k, 3)
        x, y = 40 + col * 640, 40 + row * 1000
        panels.append(
            {
                "panel_coords": [x, y, 600, 960],
                "text": {
                    "dialogue": [f"Line {k} of page {i}, said loudly!"] * rng.randint(0, 3),
                    "narration": ["Meanwhile, elsewhere..."] if rng.random() < 0.3 else [],
                    "sfx": ["BLAM!"] if rng.random() < 0.1 else [],
                },
                "score": round(rng.uniform(0.5, 1.0), 4),
            }
        )
    return {
        "schema_version": "0.3",
        "page_image_path": f"/data/comics/Series {i % 100:03d}/JPG4CBZ/{i:05d}.jpg",
        "panels": panels,
        "reading_order": list(range(n)),
        "page_size": {"width": width, "height": height},
        "source": {"coco_image_id": i, "vlm_json_path": f"vlm/Series {i % 100:03d}/{i:05d}.json"},
    }


def write_corpus(root: Path, pages: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for i in range(pages):
        path = root / f"Series {i % 100:03d}" / f"{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(make_page(rng, i)))  # as dataspec.dump writes
        paths.append(path)
    return paths


def floor(path: Path) -> Any:
    with open(path, "rb") as fh:
        return json.loads(fh.read())


def timed(fn: Callable[[Path], Any], paths: list[Path], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3, help="best of N timed passes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="dataspec-bench-"))
    try:
        t0 = time.perf_counter()
        paths = write_corpus(root, args.pages, args.seed)
        print(f"wrote {len(paths)} pages in {time.perf_counter() - t0:.1f}s under {root}")
        for p in paths:  # warm the page cache
            p.read_bytes()
        assert dataspec.load(paths[0]).panels, "corpus page failed to load"
        base = timed(floor, paths, args.repeats)
        ours = timed(dataspec.load, paths, args.repeats)
        print(f"floor  read + json.loads        : {base:10,.0f} pages/s")
        print(f"ours   dataspec.load (strict)   : {ours:10,.0f} pages/s")
        verdict = "meets" if ours >= 0.5 * base else "misses"
        print(f"ratio  ours / floor             : {ours / base:10.2f}  ({verdict} the 0.5 target)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
