"""`python -m training.evaluate` and `python -m training.embed` on a trained checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import dataspec
from training.embed import main as embed_main
from training.evaluate import decode_order, kendall_tau
from training.evaluate import main as evaluate_main
from training.synthetic import SyntheticCorpus


@pytest.mark.parametrize(
    ("a", "b", "tau"),
    [
        ([0, 1, 2, 3], [0, 1, 2, 3], 1.0),
        ([0, 1, 2, 3], [3, 2, 1, 0], -1.0),
        ([0, 1, 2], [1, 0, 2], 1 / 3),
        ([0], [0], 1.0),
    ],
)
def test_kendall_tau(a: list[int], b: list[int], tau: float) -> None:
    assert kendall_tau(a, b) == pytest.approx(tau)


def test_decode_order_is_greedy_over_unvisited_panels() -> None:
    nxt = np.full((3, 4), -1.0)
    nxt[2, 0], nxt[0, 2], nxt[0, 1] = 5.0, 4.0, 3.0  # 2 → 0 → (2 is visited) → 1
    assert decode_order(nxt, np.array([0.0, 1.0, 2.0]), 3) == [2, 0, 1]


def test_evaluate_report_on_held_out_pages(
    trained: Path, held_out: SyntheticCorpus, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    argv = [
        "--checkpoint",
        str(trained / "best.pt"),
        "--json_dir",
        str(held_out.pages_dir),
        "--image_root",
        str(held_out.image_root),
        "--report",
        str(report_path),
        "--truth",
        str(held_out.image_root.parent / "truth.jsonl"),
    ]
    assert evaluate_main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["pages"] == 12 and report["pages_skipped"] == 0
    # every page with panels to order is graded against the generator's truth
    multi = sum(len(dataspec.load(p).panels) >= 2 for p in held_out.pages)
    assert report["pages_scored"] == report["label_sources"]["truth_file"] == multi
    for key in (
        "next_panel_acc",
        "order_exact",
        "chance_next_panel_acc",
        "heuristic_next_panel_acc",
        "chance_order_exact",
        "heuristic_order_exact",
    ):
        assert 0.0 <= report[key] <= 1.0, key
    assert -1.0 <= report["kendall_tau"] <= 1.0  # a 3-epoch toy model can be below 0
    # Every panel has n candidates (n - 1 others + end): chance = pages / panels.
    assert report["chance_next_panel_acc"] == pytest.approx(
        report["pages_scored"] / report["panels_scored"]
    )
    # Synthetic left-to-right layouts are what dataspec's heuristic was built for: on
    # those pages it is exactly right; on right-to-left ones (read with --ltr, the run's
    # direction) it is blind, and those are the pages the blind_* metrics cover.
    direction = {}
    for line in (held_out.image_root.parent / "truth.jsonl").read_text().splitlines():
        rec = json.loads(line)
        direction[str(held_out.image_root / rec["image"])] = rec.get("direction", "ltr")
    scored = [r for r in report["per_page"] if r["label_source"] is not None]
    for r in scored:
        if direction[r["image"]] == "ltr":
            assert r["heuristic_next_correct"] == r["panels_scored"], r
            assert r["heuristic_order"] == r["label_order"] and not r["heuristic_blind"]
    assert report["pages_blind"] == sum(r["heuristic_blind"] for r in scored)
    # Three tiny epochs on 18 pages already beat chance on unseen pages.
    assert report["next_panel_acc"] > report["chance_next_panel_acc"] + 0.1


def test_evaluate_lists_skipped_pages_and_reads_a_list_file(
    trained: Path, held_out: SyntheticCorpus, tmp_path: Path
) -> None:
    listing = tmp_path / "list.txt"
    # a page with panels to order (a single-panel page alone scores nothing: exit 1)
    page = next(p for p in held_out.pages if len(dataspec.load(p).panels) >= 2)
    listing.write_text(f"{page}\n\n{tmp_path / 'gone.json'}\n", encoding="utf-8")
    (tmp_path / "gone.json").write_text("{}", encoding="utf-8")
    report_path = tmp_path / "r.json"
    argv = [
        "--checkpoint",
        str(trained / "latest.pt"),
        "--json_list_file",
        str(listing),
        "--image_root",
        str(held_out.image_root),
        "--report",
        str(report_path),
        "--truth",
        str(held_out.image_root.parent / "truth.jsonl"),
    ]
    assert evaluate_main(argv) == 0
    report = json.loads(report_path.read_text())
    assert report["pages"] == 1 and report["pages_skipped"] == 1
    assert report["pages_scored"] == 1
    assert "gone.json" in report["skipped"][0]["reason"]


def test_evaluate_rejects_a_file_that_is_not_a_checkpoint(
    held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    argv = [
        "--checkpoint",
        str(bogus),
        "--json_dir",
        str(held_out.pages_dir),
        "--report",
        str(tmp_path / "r.json"),
    ]
    assert evaluate_main(argv) == 1
    assert "x.pt" in capsys.readouterr().err


def test_embed_writes_arrays_and_index(
    trained: Path, held_out: SyntheticCorpus, tmp_path: Path
) -> None:
    out = tmp_path / "emb"
    argv = [
        "--checkpoint",
        str(trained / "best.pt"),
        "--json_dir",
        str(held_out.pages_dir),
        "--image_root",
        str(held_out.image_root),
        "--output_dir",
        str(out),
        "--format",
        "npy",
    ]
    assert embed_main(argv) == 0
    pages = np.load(out / "page_embeddings.npy")
    panels = np.load(out / "panel_embeddings.npy")
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    page_rows = [r for r in rows if r["kind"] == "page"]
    panel_rows = [r for r in rows if r["kind"] == "panel"]
    assert pages.shape == (12, 32) and panels.shape == (len(panel_rows), 32)
    assert len(page_rows) == 12 and np.isfinite(panels).all()
    first = [r for r in panel_rows if r["page_row"] == "1"]
    assert [int(r["reading_position"]) for r in first] == list(range(len(first)))
