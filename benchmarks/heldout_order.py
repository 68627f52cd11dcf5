"""The held-out check of learned reading order (issue 11): a model trained on true-labelled
pages, graded against true orders it did not see, beside the layout heuristic.

    python benchmarks/heldout_order.py make OUT --pages 560 --seed 21
    python benchmarks/heldout_order.py run OUT [--epochs 5]

`make` writes the `manga` kind of `heldout_alignment.py` (box_2d replies, 40% of the series
read right to left and drawn as manga: grey screentone, lettering in columns; nothing says
which way a page reads) and, from its truth, one DataSpec page per image: the true panels
(their order shuffled in the file), their lettered text, and the true order as
`reading_order` with `reading_order_source: "truth"`. Pages are split in turn, book by book:
five of every seven to `OUT/train.txt` (400 of 560), the other two to `OUT/eval.txt` (160),
so both hold every series. Nothing here imports `dataspec.sample` or the trainer to
make data.

`run` trains with the runbook's step-3 flags (`--batch_size 4 --num_workers 2 --num_heads 4
--temperature 0.1`) for `--epochs` epochs into `OUT/run`, evaluates on `OUT/eval.txt` with
`python -m training.evaluate --report`, and prints next-panel accuracy of the model and of
the layout heuristic (left to right, dataspec's default) on the right-to-left and the
left-to-right pages, with chance, seconds per epoch and training pages per second.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout_alignment as ha  # held-out corpus generator

Json = Any
TRAIN_FLAGS = ["--batch_size", "4", "--num_workers", "2", "--num_heads", "4"]
TRAIN_FLAGS += ["--temperature", "0.1"]
"""The runbook's step-3 flags (its paths swapped for this corpus's)."""


def page_of(truth: dict[str, Json], rng: random.Random) -> dict[str, Json]:
    """A DataSpec page from one truth record: true panels shuffled, the true order kept."""
    panels = truth["panels"]
    slots = list(range(len(panels)))
    rng.shuffle(slots)  # slots[k] = the true position of the panel written k-th
    written = [
        {
            "panel_coords": list(panels[t]["box"]),
            "text": {b: list(panels[t][b]) for b in ("dialogue", "narration", "sfx")},
        }
        for t in slots
    ]
    where = {t: k for k, t in enumerate(slots)}
    width, height = truth["page_size"]
    return {
        "schema_version": "0.3",
        "page_image_path": truth["image_path"],
        "panels": written,
        "reading_order": [where[t] for t in range(len(panels))],
        "reading_order_source": "truth",
        "page_size": {"width": width, "height": height},
        "source": {"canonical_id": truth["canonical_id"], "direction": truth["direction"]},
    }


def make(out: Path, pages: int, seed: int, workers: int) -> None:
    truths = ha.make(out, pages, seed, "manga", workers)
    rng = random.Random(f"order-pages:{seed}")
    lists: dict[str, list[str]] = {"train": [], "eval": []}
    for i, truth in enumerate(truths):  # book by book, page by page
        path = out / "pages" / f"{truth['canonical_id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(page_of(truth, rng), ensure_ascii=False), encoding="utf-8")
        lists["train" if i % 7 < 5 else "eval"].append(str(path))
    for name, paths in lists.items():
        (out / f"{name}.txt").write_text("\n".join(paths) + "\n", encoding="utf-8")
    rtl = sum(t["direction"] == "rtl" for t in truths)
    print(
        f"pages: {len(lists['train'])} train, {len(lists['eval'])} eval; "
        f"right to left {rtl} of {len(truths)}"
    )


def _run(cmd: Sequence[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def run(out: Path, epochs: int, device: str | None) -> None:
    run_dir = out / "run"
    flags = ["--device", device] if device else []
    started = time.perf_counter()
    _run(
        [sys.executable, "-m", "training", "--json_list_file", str(out / "train.txt"),
         "--image_root", str(out / "images"), "--output_dir", str(run_dir),
         "--epochs", str(epochs), *TRAIN_FLAGS, "--overwrite", "--no_progress", *flags]
    )  # fmt: skip
    train_s = time.perf_counter() - started
    report = out / "eval_report.json"
    _run(
        [sys.executable, "-m", "training.evaluate", "--checkpoint", str(run_dir / "best.pt"),
         "--json_list_file", str(out / "eval.txt"), "--image_root", str(out / "images"),
         "--report", str(report), "--no_progress", *flags]
    )  # fmt: skip
    print(summarize(out, run_dir, report, train_s))


def _direction(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return str(json.load(fh)["source"]["direction"])


def summarize(out: Path, run_dir: Path, report: Path, train_s: float) -> str:
    data = json.loads(report.read_text("utf-8"))
    tally: dict[str, dict[str, float]] = {}
    for entry in data["per_page"]:
        n = entry["panels_scored"]
        if not n:
            continue
        d = tally.setdefault(_direction(entry["json_path"]), {})
        for key in ("pages", "choices", "model", "heuristic", "chance"):
            d.setdefault(key, 0.0)
        d["pages"] += 1
        d["choices"] += n
        d["model"] += entry["model_next_correct"]
        d["heuristic"] += entry["heuristic_next_correct"]
        d["chance"] += 1.0  # a uniform guess among the n - 1 other panels and "end", n times
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").open(encoding="utf-8")]
    per_epoch = [e.get("seconds", 0.0) for e in epochs]
    pages_s = [e.get("pages_per_s", 0.0) for e in epochs]
    lines = [
        f"held-out next-panel accuracy on {out / 'eval.txt'} (true orders, never trained on):",
        f"{'pages':>24} {'pages':>6} {'choices':>8} {'model':>7} {'heuristic':>10} {'chance':>7}",
    ]
    for direction in ("rtl", "ltr"):
        d = tally.get(direction)
        if not d:
            continue
        c = max(d["choices"], 1.0)
        name = {"rtl": "right to left", "ltr": "left to right"}[direction]
        lines.append(
            f"{name:>24} {int(d['pages']):>6} {int(d['choices']):>8} {d['model'] / c:>7.3f} "
            f"{d['heuristic'] / c:>10.3f} {d['chance'] / c:>7.3f}"
        )
    if per_epoch and any(per_epoch):
        lines.append(f"seconds per epoch: {', '.join(f'{s:.0f}' for s in per_epoch)}")
    lines.append(
        f"training pages/s per epoch: {', '.join(f'{p:.1f}' for p in pages_s)}; "
        f"training wall {train_s:.0f} s on {os.cpu_count()} CPU(s)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="write the corpus and its true-labelled pages")
    mk.add_argument("out", type=Path)
    mk.add_argument("--pages", type=int, default=560)
    mk.add_argument("--seed", type=int, default=21)
    mk.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    rn = sub.add_parser("run", help="train, evaluate on the held-out pages, print the table")
    rn.add_argument("out", type=Path)
    rn.add_argument("--epochs", type=int, default=5)
    rn.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "make":
        make(args.out, args.pages, args.seed, max(1, args.workers))
    else:
        run(args.out, args.epochs, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
