"""The README's first command end to end, small: sample → analyzer → train → evaluate → render → report."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    demo = runpy.run_path(str(ROOT / "scripts" / "demo.py"))
    out = tmp_path / "demo"
    demo["main"](["--out", str(out), "--pages", "40", "--heldout", "16", "--epochs", "1"])
    listing = (out / "train_dataspec_list.txt").read_text("utf-8").splitlines()
    assert len(listing) > 20 and all(Path(p).is_file() for p in listing)
    report = json.loads((out / "eval_report.json").read_text("utf-8"))
    assert "next_panel_acc" in json.dumps(report) and "heuristic_next_panel_acc" in json.dumps(
        report
    )
    assert (out / "closure_lite_simple_calibre_all" / "best.pt").is_file()
    assert Image.open(out / "pages.png").width > Image.open(out / "page.png").width // 2
    assert "<svg" in (out / "report.html").read_text("utf-8")


def test_the_demo_verdict_says_plainly_whether_the_model_beat_the_heuristic() -> None:
    verdict = runpy.run_path(str(ROOT / "scripts" / "demo.py"))["verdict"]
    won = verdict({"rtl": (0.97, 0.15), "ltr": (1.0, 1.0)})
    assert won.startswith("the model learnt") and "0.970 vs 0.150" in won
    assert "as good as the heuristic (1.000 vs 1.000)" in won
    lost = verdict({"rtl": (0.15, 0.15), "ltr": (0.90, 1.0)})
    assert lost.startswith("the model did not learn") and "worse than" in lost
    assert "no right-to-left page" in verdict({"ltr": (1.0, 1.0)})
