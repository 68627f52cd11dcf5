"""The whole pipeline on a generated sample, in a few minutes on 2 CPU cores (`make demo`).

Generates a sample corpus (page JPEGs, COCO predictions, VLM JSONs), runs the analyzer
with the runbook's step-2 flags, trains CLOSURE-Lite for three epochs with the runbook's
step-3 flags, evaluates on a held-out corpus, renders pages, writes the analyzer report,
and prints where everything is. Each command is printed before it runs: they are the
command lines to use on real data.

    python scripts/demo.py [--out demo_out] [--pages 300] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PY = sys.executable


def run(args: list[str]) -> None:
    """Run one command, echoing it; stop the demo if it fails."""
    print(f"\n$ {shlex.join(['python' if a == PY else a for a in args])}", flush=True)
    start = time.perf_counter()
    subprocess.run(args, check=True)
    print(f"  ({time.perf_counter() - start:.1f} s)", flush=True)


def analyze(corpus: Path, out: Path, tag: str) -> tuple[Path, Path, Path]:
    """The runbook's step 2 over one corpus: CSV, DataSpec pages, list and skip log."""
    csv, pages = out / f"{tag}_analysis.csv", out / f"{tag}_dataspec"
    listing, skips = out / f"{tag}_dataspec_list.txt", out / f"{tag}_dataspec_skips.csv"
    run(
        [PY, "-m", "analyzer", "--coco", str(corpus / "predictions.json"),
         "--vlm_dir", str(corpus / "vlm"), "--output_csv", str(csv), "--num_workers", "2",
         "--image_roots", str(corpus / "images"), "--require_image_exists",
         "--min_text_coverage", "0.6", "--emit_dataspec_everything",
         "--dataspec_out_dir", str(pages), "--dataspec_min_det_score", "0.5",
         "--dataspec_list_out", str(listing), "--dataspec_debug_skips_out", str(skips),
         "--dataspec_naming", "preserve_tree"]
    )  # fmt: skip
    return csv, listing, skips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="everything goes here (replaced)")
    parser.add_argument("--pages", type=int, default=300, help="training corpus pages")
    parser.add_argument("--heldout", type=int, default=60, help="held-out corpus pages")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)

    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    train_corpus, held_corpus = out / "corpus", out / "heldout_corpus"
    run([PY, "-m", "dataspec.sample", str(train_corpus), "--pages", str(args.pages), "--seed", "0"])
    run(
        [PY, "-m", "dataspec.sample", str(held_corpus), "--pages", str(args.heldout), "--seed", "1"]
    )

    csv, listing, skips = analyze(train_corpus, out, "train")
    _, held_listing, _ = analyze(held_corpus, out, "heldout")
    run([PY, "-m", "dataspec", "validate", str(listing), "--image-root",
         str(train_corpus / "images"), "--check-images"])  # fmt: skip

    run_dir = out / "closure_lite_simple_calibre_all"
    run(
        [PY, "-m", "training", "--json_list_file", str(listing),
         "--image_root", str(train_corpus / "images"), "--output_dir", str(run_dir),
         "--batch_size", "4", "--epochs", str(args.epochs), "--num_workers", "2",
         "--num_heads", "4", "--temperature", "0.1"]
    )  # fmt: skip
    report = out / "eval_report.json"
    run(
        [PY, "-m", "training.evaluate", "--checkpoint", str(run_dir / "best.pt"),
         "--json_list_file", str(held_listing), "--image_root", str(held_corpus / "images"),
         "--truth", str(held_corpus / "truth.jsonl"), "--report", str(report)]
    )  # fmt: skip

    pages = [line for line in listing.read_text("utf-8").splitlines() if line.strip()]
    run([PY, "-m", "dataspec", "render", pages[0], "--image-root",
         str(train_corpus / "images"), "-o", str(out / "page.png")])  # fmt: skip
    sheet_list = out / "sheet_pages.txt"
    sheet_list.write_text("\n".join(pages[:: max(1, len(pages) // 12)][:12]) + "\n", "utf-8")
    run([PY, "-m", "dataspec", "render", str(sheet_list), "--image-root",
         str(train_corpus / "images"), "--contact-sheet",
         "-o", str(out / "pages.png")])  # fmt: skip
    run([PY, "-m", "analyzer.report", str(csv), "--skips", str(skips), "--dataspec_list",
         str(listing), "--run", str(run_dir), "--eval", str(report),
         "-o", str(out / "report.html")])  # fmt: skip

    metrics = json.loads(report.read_text("utf-8"))
    model = metrics.get("model", metrics)
    print(f"\n=== demo done in {time.perf_counter() - started:.0f} s; everything is under {out}")
    for name, where in [
        ("sample corpus (JPEGs, COCO, VLM JSONs, truth)", train_corpus),
        ("alignment CSV", csv),
        (
            "DataSpec pages / list / skip log",
            f"{out / 'train_dataspec'} · {listing.name} · {skips.name}",
        ),
        ("training run (config, metrics.jsonl, best.pt)", run_dir),
        ("held-out evaluation", report),
        ("a rendered page / a contact sheet", f"{out / 'page.png'} · {out / 'pages.png'}"),
        ("analyzer report (open in a browser)", out / "report.html"),
    ]:
        print(f"  {name:48s} {where}")
    keys = ("next_panel_acc", "chance_next_panel_acc", "heuristic_next_panel_acc", "order_exact")
    print("  held-out: " + ", ".join(f"{k}={_get(model, metrics, k)}" for k in keys))
    print(headline(metrics, held_corpus))


def headline(metrics: dict[str, Any], corpus: Path) -> str:
    """Next-panel accuracy of the model and the layout heuristic on the held-out pages, by
    reading direction, graded against the generator's true orders (`--truth`)."""
    direction: dict[str, str] = {}
    with open(corpus / "truth.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            image = str((corpus / "images" / rec["image"]).resolve())
            direction[image] = rec.get("direction", "ltr")
    tally: dict[str, list[int]] = {}
    for entry in metrics.get("per_page", []):
        n = entry.get("panels_scored") or 0
        if not n:
            continue
        d = direction.get(str(Path(entry["image"]).resolve()), "?")
        t = tally.setdefault(d, [0, 0, 0, 0])
        t[0] += 1
        t[1] += n
        t[2] += entry["model_next_correct"]
        t[3] += entry["heuristic_next_correct"]
    lines = [
        "  reading order on held-out pages, graded against the true orders (never trained on):"
    ]
    acc: dict[str, tuple[float, float]] = {}
    for d, name in (("rtl", "right to left (manga, no flag)"), ("ltr", "left to right")):
        if d in tally:
            pages, n, model, heur = tally[d]
            acc[d] = (model / n, heur / n)
            lines.append(
                f"    {name:32s} {pages:4d} pages: model {model / n:.3f}, "
                f"layout heuristic {heur / n:.3f} (next-panel accuracy)"
            )
    lines.append("  " + verdict(acc))
    return "\n".join(lines)


def verdict(acc: dict[str, tuple[float, float]]) -> str:
    """One plain sentence on what the model learnt, from (model, heuristic) accuracy by
    direction; it says so when the model did not beat the heuristic."""
    if "rtl" not in acc:
        return "no right-to-left page was scored: nothing shows what the heuristic cannot know"
    model, heur = acc["rtl"]
    ltr = acc.get("ltr")
    kept = ""
    if ltr is not None:
        how = "as good as" if ltr[0] >= ltr[1] - 0.02 else "worse than"
        kept = f"; on left-to-right pages it is {how} the heuristic ({ltr[0]:.3f} vs {ltr[1]:.3f})"
    if model > heur + 0.1:
        return (
            f"the model learnt from its labels which way a page reads, which the layout "
            f"heuristic cannot know: {model:.3f} vs {heur:.3f} on right-to-left pages{kept}"
        )
    return (
        f"the model did not learn the reading direction here: {model:.3f} vs the "
        f"heuristic's {heur:.3f} on right-to-left pages{kept} (train longer: --epochs)"
    )


def _get(model: dict[str, object], metrics: dict[str, object], key: str) -> str:
    value = model.get(key, metrics.get(key))
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
