"""Scores, VLM map shapes, and the smaller flags (--limit, missing images, roots, categories)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from analyzer_testlib import base_args, coco, read_csv, truth

import dataspec
from analyzer.score import PageScore, quality_score, score_page, subsets_of
from analyzer.vlm import MapEntry, load_vlm_map


@pytest.mark.parametrize(
    "ratio, coverage, panels, expected",
    [
        (1.0, 0.8, 6, 4.0),  # +2 ratio, +1 coverage, +1 panel count
        (1.15, 0.8, 6, 3.0),  # ratio only in [0.8, 1.2]: +1
        (1.0, 0.45, 6, 3.5),  # coverage within 0.2 below the minimum: +0.5
        (1.0, 0.2, 18, 2.5),  # no coverage point, 16-20 panels: +0.5
        (0.5, 0.0, 0, 0.0),
    ],
)
def test_quality_score(ratio: float, coverage: float, panels: int, expected: float) -> None:
    assert quality_score(ratio, coverage, panels, 0.6) == expected


def test_subsets() -> None:
    assert subsets_of(score_page(5, 5, 5, 0.6), 0.6) == (
        "perfect",
        "perfect_with_text",
        "high_quality",
    )
    assert subsets_of(score_page(10, 11, 3, 0.6), 0.6) == ("near_perfect", "medium_quality")
    assert subsets_of(score_page(5, 9, 0, 0.6), 0.6) == ("low_quality",)
    assert subsets_of(PageScore(1.0, 0.5, 3.5, False), 0.6) == ("near_perfect", "medium_quality")
    assert score_page(0, 0, 0, 0.6) == PageScore(0.0, 0.0, 0.0, False)  # 0 = 0 is not perfect


def test_vlm_map_shapes(tmp_path: Path) -> None:
    def entries(obj: object) -> list[MapEntry]:
        path = tmp_path / "map.json"
        path.write_text(json.dumps(obj), encoding="utf-8")
        found, problems = load_vlm_map(path)
        assert problems == []
        return found

    forward = entries({"S/0001.jpg": "v/S/JPG4CBZ_0001.json"})
    backward = entries({"v/S/JPG4CBZ_0001.json": "S/0001.jpg"})
    pairs = entries([["v/S/JPG4CBZ_0001.json", "S/0001.jpg"]])
    objects = entries([{"image_path": "S/0001.jpg", "vlm_json": "v/S/JPG4CBZ_0001.json"}])
    for found in (forward, backward, pairs, objects):
        assert [(e.image, e.vlm) for e in found] == [("S/0001.jpg", "v/S/JPG4CBZ_0001.json")]
    assert [(e.image, e.vlm) for e in entries(["v/S/JPG4CBZ_0001.json"])] == [
        (None, "v/S/JPG4CBZ_0001.json")
    ]


def test_a_cut_short_vlm_map_is_an_error_not_a_shorter_map(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text('["v/S/JPG4CBZ_0001.json", "v/S/JPG4CBZ_0002.json", "v/S/JPG4C', "utf-8")
    with pytest.raises(dataspec.DataSpecError, match=r"map\.json: the VLM map is cut short"):
        load_vlm_map(path)


def test_vlm_map_as_a_list_of_paths(run_cli, corpus, tmp_path) -> None:
    paths = sorted(str(p) for p in corpus.vlm_dir.rglob("*.json"))
    map_path = tmp_path / "list.json"
    map_path.write_text(json.dumps(paths), encoding="utf-8")
    args = [a for a in base_args(corpus, tmp_path) if a not in ("--vlm_dir", str(corpus.vlm_dir))]
    result = run_cli([*args, "--vlm_map", str(map_path)])
    assert result.exit_code == 0, result.output
    assert {r["match_tier"] for r in read_csv(tmp_path / "analysis.csv")} == {"map"}


def test_limit_roots_and_missing_images(run_cli, corpus, tmp_path) -> None:
    rec = sorted(truth(corpus).values(), key=lambda r: r["image"])[0]
    (corpus.images_dir / rec["image"]).unlink()
    args = base_args(corpus, tmp_path)
    args[args.index("--image_roots") + 1] = f"{tmp_path / 'nowhere'};{corpus.images_dir}"
    result = run_cli(
        [
            *args,
            "--limit",
            "5",
            "--emit_dataspec_all",
            "--dataspec_out_dir",
            str(tmp_path / "ds"),
            "--dataspec_allow_missing_images",
            "--dataspec_keep_unpaired",
        ]
    )
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "analysis.csv")
    assert len(rows) == 5
    assert [r["image_exists"] for r in rows].count("False") == 1
    assert all(r["resolved_image_path"].startswith(str(corpus.images_dir)) for r in rows[1:])
    page = dataspec.load(tmp_path / "ds" / rec["vlm_json"])
    assert page.page_image_path == rows[0]["image_path"]  # as the COCO file gives it
    assert page.page_size is not None  # from the COCO record


def test_panel_category_names_and_a_bare_results_list(run_cli, corpus, tmp_path) -> None:
    data = coco(corpus)
    results = tmp_path / "results.json"
    results.write_text(json.dumps(data["annotations"]), encoding="utf-8")
    args = base_args(corpus, tmp_path)
    args[1] = str(results)
    result = run_cli([*args, "--panel_category_id", "1", "--panel_category_id", "3"])
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "analysis.csv")
    assert len(rows) == corpus.pages
    counted = {r["image_id"]: int(r["rcnn_panels"]) for r in rows}
    for image_id, n in counted.items():
        want = [a for a in data["annotations"] if a["image_id"] == image_id]
        assert n == sum(a["category_id"] in (1, 3) for a in want)
    assert all(r["match_tier"] == "exact" for r in rows)  # ids are paths: keys still work

    bad = run_cli([*args, "--panel_category_names", "gutter"])
    assert bad.exit_code == 1 and "no category named 'gutter'" in bad.stderr


@pytest.mark.parametrize(
    "module",
    [
        "cli",
        "coco",
        "emit",
        "match",
        "merge",
        "options",
        "outputs",
        "page",
        "page_files",
        "pairing",
        "pool",
        "problems",
        "report",
        "run",
        "score",
        "subset",
        "vlm",
        "work",
    ],
)
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(f"analyzer.{module}")
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)
