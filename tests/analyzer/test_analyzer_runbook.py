"""The runbook's command lines, verbatim, with Windows paths swapped for a generated corpus."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from analyzer_testlib import read_csv, truth
from click.testing import CliRunner

import dataspec
from analyzer.outputs import CSV_COLUMNS, SKIP_COLUMNS
from analyzer.subset import LIST_NAME, REJECTS_NAME, subset
from dataspec.sample import SampleCorpus

# Copied verbatim from the runbook (seed-runbook.md, "End-to-end: runbook and one-liners").
STEP1 = r"""python benchmarks\detections\openrouter\create_perfect_match_filter_calibre_v2.py --coco "E:\CalibreComics\test_dections\predictions.json" --vlm_dir "E:\CalibreComics_analysis" --vlm_map "C:\Users\Richard\OneDrive\GIT\CoMix\perfect_match_training\all_vlm_jsons_calibre_training_map.json" --output_csv "calibre_rcnn_vlm_analysis_v2.csv" --num_workers 16 --fast_only"""
STEP2 = r"""python benchmarks\detections\openrouter\create_perfect_match_filter_calibre_v2.py --coco "E:\CalibreComics\test_dections\predictions.json" --vlm_dir "E:\CalibreComics_analysis" --vlm_map "C:\Users\Richard\OneDrive\GIT\CoMix\perfect_match_training\all_vlm_jsons_calibre_training_map.json" --output_csv "calibre_rcnn_vlm_analysis_v2.csv" --num_workers 8 --image_roots "E:\CalibreComics_extracted" --require_image_exists --min_text_coverage 0.6 --emit_dataspec_everything --dataspec_out_dir "C:\Users\Richard\OneDrive\GIT\CoMix\perfect_match_training\calibre_dataspec_all" --dataspec_min_det_score 0.5 --dataspec_list_out "C:\Users\Richard\OneDrive\GIT\CoMix\perfect_match_training\dataspec_all_list.txt" --dataspec_debug_skips_out "C:\Users\Richard\OneDrive\GIT\CoMix\perfect_match_training\dataspec_all_skips.csv" --dataspec_naming preserve_tree"""
LISTS = r"""python benchmarks\detections\openrouter\create_perfect_match_filter_calibre_v2.py --coco "E:\CalibreComics\test_dections\predictions.json" --vlm_dir "E:\CalibreComics_analysis" --output_csv "calibre_rcnn_vlm_analysis_v2.csv" --num_workers 8 --json_require_exists --emit_all_json_lists"""
SUBSET = r"""cd "C:\Users\Richard\OneDrive\GIT\CoMix"; python benchmarks\detections\openrouter\train_with_perfect_matches_parallel.py --perfect_matches_file "calibre_rcnn_vlm_analysis_perfect_matches.txt" --json_dir "E:\CalibreComics_dataspec_full" --image_root "E:\CalibreComics_extracted" --output_dir "E:\CalibreComics_perfect_match_subset" --create_filtered_data --write_list --strict_paths --dry_run"""

TRAINING = "C:\\Users\\Richard\\OneDrive\\GIT\\CoMix\\perfect_match_training"


def argv(line: str, swap: dict[str, str]) -> list[str]:
    """The flags of a runbook line (program and `cd …;` dropped), Windows paths swapped."""
    line = line.split("; ", 1)[1] if line.startswith("cd ") else line
    words = shlex.split(line)[2:]
    return [swap.get(w, w) for w in words]


@pytest.fixture
def swap(corpus: SampleCorpus, tmp_path: Path) -> dict[str, str]:
    """Runbook paths → this corpus; writes the VLM map the runbook names (Windows paths)."""
    work = tmp_path / "work"
    work.mkdir()
    data = json.loads(corpus.coco_path.read_text("utf-8"))
    mapping = {}
    for image in data["images"]:
        series = image["id"].split("\\")[-2]
        page = image["file_name"].split("\\")[-1].replace(".jpg", "")
        mapping[f"E:\\CalibreComics_extracted\\{series}\\JPG4CBZ\\{page}.jpg"] = (
            f"E:\\CalibreComics_analysis\\{series}\\JPG4CBZ_{page}.json"
        )
    map_path = tmp_path / "all_vlm_jsons_calibre_training_map.json"
    map_path.write_text(json.dumps(mapping), encoding="utf-8")
    return {
        "E:\\CalibreComics\\test_dections\\predictions.json": str(corpus.coco_path),
        "E:\\CalibreComics_analysis": str(corpus.vlm_dir),
        TRAINING + "\\all_vlm_jsons_calibre_training_map.json": str(map_path),
        "E:\\CalibreComics_extracted": str(corpus.images_dir),
        TRAINING + "\\calibre_dataspec_all": str(tmp_path / "calibre_dataspec_all"),
        TRAINING + "\\dataspec_all_list.txt": str(tmp_path / "dataspec_all_list.txt"),
        TRAINING + "\\dataspec_all_skips.csv": str(tmp_path / "dataspec_all_skips.csv"),
        "E:\\CalibreComics_dataspec_full": str(tmp_path / "calibre_dataspec_all"),
        "E:\\CalibreComics_perfect_match_subset": str(tmp_path / "subset"),
        "calibre_rcnn_vlm_analysis_perfect_matches.txt": str(
            work / "calibre_rcnn_vlm_analysis_v2_perfect_matches.txt"
        ),
    }


def test_step1_csv_with_map(run_cli, swap, corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path / "work")
    result = run_cli(argv(STEP1, swap))
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "work" / "calibre_rcnn_vlm_analysis_v2.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == corpus.pages
    assert {r["match_tier"] for r in rows} == {"map"}  # every page named by the map
    for row in rows:
        assert row["has_vlm_data"] == "True"
        assert Path(row["vlm_json_path"]).is_file()
        assert row["image_exists"] == "False"  # no --image_roots in step 1
    assert "subsets (share of matched pages):" in result.stdout
    assert "analyzing pages" in result.stderr  # the progress bar's label


def test_step2_emits_a_strict_corpus(run_cli, swap, corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path / "work")
    missing = next(corpus.images_dir.rglob("0003.jpg"))
    missing.unlink()  # one page without its image: skipped by --require_image_exists
    result = run_cli(argv(STEP2, swap))
    assert result.exit_code == 0, result.output
    listed = (tmp_path / "dataspec_all_list.txt").read_text("utf-8").splitlines()
    skips = read_csv(tmp_path / "dataspec_all_skips.csv")
    assert tuple(skips[0]) == SKIP_COLUMNS
    m = re.search(r"dataspec: matched (\d+) = emitted (\d+) \+ skipped (\d+)", result.stdout)
    assert m, result.stdout
    matched, emitted, skipped = map(int, m.groups())
    assert (matched, emitted, skipped) == (corpus.pages, len(listed), len(skips))
    assert "missing_image" in {s["reason"] for s in skips}
    out_dir = tmp_path / "calibre_dataspec_all"
    assert sorted(map(Path, listed)) == sorted(out_dir.rglob("*.json"))
    records = truth(corpus)
    for path in listed:
        page = dataspec.load(path)  # strict
        assert os.path.isabs(page.page_image_path) and os.path.isfile(page.page_image_path)
        assert page.page_size is not None and page.source is not None
        assert page.source.coco_image_id and page.source.vlm_json_path
        # panels in layout order; the reading order is the page's own direction's
        rec = records[Path(page.page_image_path).relative_to(corpus.images_dir).as_posix()]
        if rec["direction"] == "ltr":
            assert page.reading_order == list(range(len(page.panels)))
        else:
            assert page.reading_order == dataspec.reading_order(page.boxes(), rtl=True)
        # detections at the threshold, and missed panels found around their lettering
        assert all(p.inferred or (p.score is not None and p.score >= 0.5) for p in page.panels)
        assert all(p.score is None for p in page.panels if p.inferred)
        rel = Path(path).relative_to(out_dir)  # preserve_tree mirrors the VLM tree
        assert (corpus.vlm_dir / rel).is_file()


def test_lists_then_subset_tool(run_cli, swap, corpus, tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    monkeypatch.chdir(work)
    missing = next(corpus.images_dir.rglob("0002.jpg"))
    missing.unlink()
    assert run_cli(argv(STEP2, swap)).exit_code == 0
    result = run_cli(argv(LISTS, swap))
    assert result.exit_code == 0, result.output
    stem = "calibre_rcnn_vlm_analysis_v2"
    for name in ("perfect", "perfect_with_text", "near_perfect", "high_quality"):
        assert (work / f"{stem}_{name}_matches.txt").is_file()
        assert (work / f"{stem}_{name}_images.txt").is_file()
    perfect = (work / f"{stem}_perfect_matches.txt").read_text("utf-8").splitlines()
    rows = read_csv(work / f"{stem}.csv")
    assert len(perfect) == sum(r["is_perfect_match"] == "True" for r in rows)
    assert all(Path(p).is_file() and p.endswith(".json") for p in perfect)

    # the subset pipeline, dry run first: nothing is written
    subset_args = argv(SUBSET, swap)
    runner = CliRunner()
    dry = runner.invoke(subset, subset_args)
    assert dry.exit_code == 0, dry.output
    assert not (tmp_path / "subset").exists()
    assert "would write" in dry.stdout
    real = runner.invoke(subset, [a for a in subset_args if a != "--dry_run"])
    assert real.exit_code == 0, real.output
    chosen = (tmp_path / "subset" / LIST_NAME).read_text("utf-8").splitlines()
    assert chosen and all(str(tmp_path / "subset") in p for p in chosen)
    wanted = set(perfect)
    for path in chosen:
        page = dataspec.load(path)
        assert page.source is not None and page.source.vlm_json_path in wanted
        assert Path(page.page_image_path).is_file()
    rejects = read_csv(tmp_path / "subset" / REJECTS_NAME)
    assert len(chosen) + len(rejects) == len(perfect)


def test_hyphen_spellings_give_the_same_csv(run_cli, swap, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path / "work")
    args = argv(STEP1, swap)
    assert run_cli(args).exit_code == 0
    first = (tmp_path / "work" / "calibre_rcnn_vlm_analysis_v2.csv").read_bytes()
    hyphens = [a.replace("_", "-") if a.startswith("--") else a for a in args]
    assert "--vlm-map" in hyphens and "--num-workers" in hyphens
    result = run_cli(hyphens)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "work" / "calibre_rcnn_vlm_analysis_v2.csv").read_bytes() == first


def test_python_dash_m_smoke(swap, tmp_path) -> None:
    args = argv(STEP1, swap)
    proc = subprocess.run(
        [sys.executable, "-m", "analyzer", *args, "--num_workers", "2"],
        cwd=tmp_path / "work",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "work" / "calibre_rcnn_vlm_analysis_v2.csv").is_file()
    assert "match tiers: map" in proc.stdout
