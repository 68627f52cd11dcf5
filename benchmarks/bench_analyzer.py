"""Benchmark `python -m analyzer` on a generated corpus, against a naive baseline.

    python benchmarks/bench_analyzer.py --pages 50000 --workers 2

Writes a corpus of COCO predictions (about 21 annotations a page, Windows-path image ids
as real detector output has) and one VLM JSON per page, no images, under --out. Then,
each in a fresh process: the baseline (one process, `json.load` of the predictions and of
every VLM JSON) and the analyzer (CSV only, and CSV + DataSpec emission). Prints
pages/s, wall time, peak RSS (main process and largest worker) and the ratio to the
baseline, and the time the user's 336,881-page run would take at that rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

USER_PAGES = 336_881
COCO_ROOT = "E:\\CalibreComics_extracted"
WIDTH, HEIGHT = 1988, 3057
LINES = (
    "WE HAVE TO FIND THE SHIP.",
    "WHERE DID MAC GO?",
    "RUN!",
    "I SHOULD HAVE TOLD HER...",
    "LOOK OUT, ORORO!",
    "HOW LONG DO WE HAVE?",
)


def _panels(rng: random.Random) -> list[tuple[float, float, float, float]]:
    """A grid page: rows of 1-3 panels, row tops jittered by a few pixels."""
    n_rows = rng.randint(2, 4)
    row_h = (HEIGHT - 100) / n_rows
    boxes = []
    for r in range(n_rows):
        n = rng.randint(1, 3)
        w = (WIDTH - 100) / n
        for c in range(n):
            boxes.append((50 + c * w, 50 + r * row_h + rng.uniform(0, 8), w - 20, row_h - 20))
    return boxes


def make_corpus(root: Path, pages: int, seed: int = 0) -> tuple[Path, Path]:
    """Write predictions.json and vlm/<Series>/JPG4CBZ_<page>.json; returns their paths."""
    rng = random.Random(seed)
    vlm_dir = root / "vlm"
    coco_path = root / "predictions.json"
    root.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    with open(coco_path.with_suffix(".tmp"), "w", encoding="utf-8") as ann_fh:
        ann_id = 0
        for i in range(pages):
            series = f"Series {i // 40:05d} (20{i % 20:02d})"
            page = i % 40 + 1
            image_id = f"{COCO_ROOT}\\{series}\\JPG4CBZ_{page:04d}.jpg"
            images.append(
                {
                    "id": image_id,
                    "file_name": f"JPG4CBZ\\{page:04d}.jpg",
                    "width": WIDTH,
                    "height": HEIGHT,
                }
            )
            boxes = _panels(rng)
            dets: list[tuple[int, tuple[float, ...], float]] = [
                (1, b, rng.uniform(0.6, 0.99)) for b in boxes
            ]
            dets += [
                (rng.randint(2, 5), boxes[0], rng.uniform(0.3, 0.9)) for _ in range(21 - len(dets))
            ]
            for cat, box, score in dets:
                ann_id += 1
                ann = {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": [round(v, 2) for v in box],
                    "score": round(score, 4),
                    "area": round(box[2] * box[3], 2),
                }
                ann_fh.write(("," if ann_id > 1 else "") + json.dumps(ann))
            vlm = {
                "overall_summary": "The cast argue on a rooftop.",
                "panels": [
                    {
                        "panel_number": k + 1,
                        "caption": "Medium shot of two people on a rooftop.",
                        "description": "Two people talk. The background shows a city at night.",
                        "key_elements": ["Mac", "Ororo", "rooftop"],
                        "actions": ["Mac points off-panel"],
                        "speakers": [
                            {
                                "character": "Mac",
                                "dialogue": rng.choice(LINES),
                                "speech_type": "dialogue",
                            }
                            for _ in range(rng.randint(0, 2))
                        ],
                    }
                    for k in range(len(boxes))
                ],
            }
            path = vlm_dir / series / f"JPG4CBZ_{page:04d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(vlm, indent=2), encoding="utf-8")
    with open(coco_path, "w", encoding="utf-8") as out:
        out.write('{"images": ' + json.dumps(images) + ', "annotations": [')
        with open(coco_path.with_suffix(".tmp"), encoding="utf-8") as fh:
            shutil.copyfileobj(fh, out)
        out.write(
            '], "categories": [{"id": 1, "name": "panel"}, {"id": 2, "name": "character"},'
            ' {"id": 3, "name": "balloon"}, {"id": 4, "name": "text"},'
            ' {"id": 5, "name": "face"}]}'
        )
    coco_path.with_suffix(".tmp").unlink()
    return coco_path, vlm_dir


def _baseline(coco: str, vlm_dir: str) -> int:
    """The naive way: one process, json.load everything."""
    with open(coco, encoding="utf-8") as fh:
        data = json.load(fh)
    n = 0
    for dirpath, _, files in os.walk(vlm_dir):
        for name in files:
            with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                json.load(fh)
            n += 1
    return len(data["images"]) + 0 * n


def _measure(argv: list[str]) -> None:
    """Child mode: run one thing, print its wall time and exit status as JSON."""
    start = time.perf_counter()
    if argv[0] == "baseline":
        _baseline(argv[1], argv[2])
        status = 0
    else:
        from analyzer.cli import main

        status = main(argv[1:])
    print(json.dumps({"wall": time.perf_counter() - start, "status": status}))


def _descendants(root: int) -> list[int]:
    """Process ids below `root` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, parent in parents.items() if parent == pid]
        out += kids
        todo += kids
    return out


def _hwm(pid: int) -> int:
    """Peak RSS (VmHWM) of a live process in bytes, 0 if unknown."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _run(args: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh process; sample peak RSS of it and its workers."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--_measure", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peaks: dict[int, int] = {}
    while proc.poll() is None:
        for pid in [proc.pid, *(_descendants(proc.pid) if os.path.isdir("/proc") else [])]:
            peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
        time.sleep(0.2)
    out, err = proc.communicate()
    line = out.strip().splitlines()[-1] if out.strip() else "{}"
    result: dict[str, Any] = json.loads(line)
    if result.get("status") != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{out[-2000:]}\n{err[-2000:]}")
    main_peak = peaks.pop(proc.pid, 0) or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["rss"] = main_peak
    result["worker_rss"] = max(peaks.values(), default=0)
    result["total_rss"] = main_peak + sum(peaks.values())
    return result


def main() -> None:
    """Generate (or reuse) the corpus, measure, print."""
    if len(sys.argv) > 1 and sys.argv[1] == "--_measure":
        _measure(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="/tmp/bench_analyzer")
    parser.add_argument("--keep", action="store_true", help="Reuse a corpus already there.")
    ns = parser.parse_args()
    root = Path(ns.out)
    corpus = root / f"corpus_{ns.pages}"
    coco, vlm_dir = corpus / "predictions.json", corpus / "vlm"
    if not (ns.keep and coco.exists()):
        shutil.rmtree(corpus, ignore_errors=True)
        start = time.perf_counter()
        make_corpus(corpus, ns.pages)
        print(
            f"corpus: {ns.pages} pages in {time.perf_counter() - start:.1f} s "
            f"({coco.stat().st_size / 1e6:.0f} MB predictions)"
        )
    out = root / "out"
    shutil.rmtree(out, ignore_errors=True)
    base = _run(["baseline", str(coco), str(vlm_dir)])
    common = [
        "analyzer",
        "--coco",
        str(coco),
        "--vlm_dir",
        str(vlm_dir),
        "--no_progress",
        "--num_workers",
        str(ns.workers),
    ]
    csv_only = _run([*common, "--output_csv", str(out / "a.csv"), "--fast_only"])
    emit = _run(
        [
            *common,
            "--output_csv",
            str(out / "b.csv"),
            "--emit_dataspec_everything",
            "--dataspec_out_dir",
            str(out / "ds"),
            "--dataspec_list_out",
            str(out / "list.txt"),
        ]
    )
    mb = 2**20
    print(
        f"{'run':<36} {'wall s':>7} {'pages/s':>8} {'main RSS':>9} {'worker RSS':>10} "
        f"{'all RSS':>8} {'speed':>6} {'337K est.':>9}"
    )
    for name, r in (
        ("baseline (json.load, 1 process)", base),
        (f"analyzer CSV, {ns.workers} workers", csv_only),
        (f"analyzer CSV+DataSpec, {ns.workers} workers", emit),
    ):
        rate = ns.pages / r["wall"]
        print(
            f"{name:<36} {r['wall']:>7.1f} {rate:>8.0f} {r['rss'] / mb:>7.0f}MB "
            f"{r['worker_rss'] / mb:>8.0f}MB {r['total_rss'] / mb:>6.0f}MB "
            f"{base['wall'] / r['wall']:>5.2f}x {USER_PAGES / rate / 60:>6.1f}min"
        )
    print(
        "speed: baseline wall time / this wall time; all RSS: sum of per-process peaks; "
        "337K est.: the user's 336,881 pages at this rate"
    )


if __name__ == "__main__":
    main()
