"""Match tiers and ambiguities, on a generated corpus with files moved around."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analyzer_testlib import base_args, read_csv, truth

from dataspec.sample import SampleCorpus


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["image_path"]: r for r in read_csv(out / "analysis.csv")}


def _row(rows: dict[str, dict[str, str]], series: str, page: int) -> dict[str, str]:
    return next(r for p, r in rows.items() if f"\\{series}\\JPG4CBZ\\{page:04d}" in p)


def _plain_series(corpus: SampleCorpus) -> list[str]:
    """Series without a punctuation twin."""
    from dataspec.keys import norm_series

    names = sorted(p.name for p in corpus.vlm_dir.iterdir())
    norms = [norm_series(n) for n in names]
    return [n for n, k in zip(names, norms, strict=True) if norms.count(k) == 1]


def test_series_page_tier_for_another_spelling(run_cli, corpus, tmp_path) -> None:
    series = _plain_series(corpus)[0]
    respelled = series.lower().replace(" ", "_") + "!"
    (corpus.vlm_dir / series).rename(corpus.vlm_dir / respelled)
    one = corpus.vlm_dir / respelled / "JPG4CBZ_0001.json"
    one.rename(one.with_name("0001.json"))  # no container, page 1 zero-padded
    result = run_cli(base_args(corpus, tmp_path))
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path)
    row = _row(rows, series, 1)
    assert row["match_tier"] == "series_page"
    assert row["vlm_json_path"] == str(one.with_name("0001.json"))
    assert _row(rows, series, 2)["match_tier"] == "series_page"


def test_fuzzy_tier_only_when_asked(run_cli, corpus, tmp_path) -> None:
    series = next(s for s in _plain_series(corpus) if len(s.split()[0]) > 4)
    first, *rest = series.split(" ")
    fuzzy = " ".join([first[:-1], *rest])  # one letter short
    (corpus.vlm_dir / series).rename(corpus.vlm_dir / fuzzy)
    out1, out2 = tmp_path / "fast", tmp_path / "fuzzy"
    assert run_cli([*base_args(corpus, out1), "--fast_only"]).exit_code == 0
    assert _row(_rows(out1), series, 1)["match_tier"] == "none"
    assert run_cli([*base_args(corpus, out2), "--allow_partial_match"]).exit_code == 0
    row = _row(_rows(out2), series, 1)
    assert row["match_tier"] == "fuzzy"
    assert Path(row["vlm_json_path"]).parent.name == fuzzy


def test_two_vlm_files_for_one_page_are_reported(run_cli, corpus, tmp_path) -> None:
    series = _plain_series(corpus)[0]
    src = corpus.vlm_dir / series / "JPG4CBZ_0002.json"
    # the same exact key in another folder above the series (`<Series>/JPG4CBZ/0002.json`
    # would be the image's own path, which the canonical_id tier prefers)
    dup = corpus.vlm_dir / "batch 2" / series / "JPG4CBZ_0002.json"
    dup.parent.mkdir(parents=True)
    shutil.copy(src, dup)
    other = corpus.vlm_dir / series / "0001.json"  # same page as JPG4CBZ_0001, other key
    shutil.copy(corpus.vlm_dir / series / "JPG4CBZ_0001.json", other)
    result = run_cli(base_args(corpus, tmp_path))
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path)
    row = _row(rows, series, 2)
    assert (row["match_tier"], row["vlm_json_path"], row["has_vlm_data"]) == (
        "ambiguous",
        "",
        "False",
    )
    assert _row(rows, series, 1)["match_tier"] == "exact"
    kinds = {(a["kind"], a["candidates"]) for a in read_csv(tmp_path / "analysis_ambiguities.csv")}
    assert ("duplicate_vlm", f"{src} | {dup}") in kinds or (
        "duplicate_vlm",
        f"{dup} | {src}",
    ) in kinds
    assert any(k == "extra_vlm" and str(other) in c for k, c in kinds)
    assert "ambiguities:" in result.stdout


def test_twin_missing_a_page_is_not_filled_from_the_other(run_cli, corpus, tmp_path) -> None:
    from dataspec.keys import norm_series

    names = sorted(p.name for p in corpus.vlm_dir.iterdir())
    a, b = next((x, y) for x in names for y in names if x < y and norm_series(x) == norm_series(y))
    # page 5 of `a` loses its VLM JSON and `b` loses its image record for page 5, so b's
    # page-5 JSON is unclaimed: the series+page tier must not hand it to `a`.
    (corpus.vlm_dir / a / "JPG4CBZ_0005.json").unlink()
    data = json.loads(corpus.coco_path.read_text("utf-8"))
    gone = next(i["id"] for i in data["images"] if i["id"].endswith(f"{b}\\JPG4CBZ_0005.jpg"))
    data["images"] = [i for i in data["images"] if i["id"] != gone]
    data["annotations"] = [x for x in data["annotations"] if x["image_id"] != gone]
    corpus.coco_path.write_text(json.dumps(data), encoding="utf-8")
    assert run_cli(base_args(corpus, tmp_path)).exit_code == 0
    row = _row(_rows(tmp_path), a, 5)
    assert row["match_tier"] == "ambiguous" and row["vlm_json_path"] == ""
    kinds = [x["kind"] for x in read_csv(tmp_path / "analysis_ambiguities.csv")]
    assert kinds.count("series_twins") == 2  # the page row and the series row


def test_map_entry_to_a_missing_file_falls_through(run_cli, corpus, tmp_path) -> None:
    rec = next(iter(truth(corpus).values()))
    mapping = {
        rec["coco_image_id"]: "E:\\nowhere\\gone.json",
        "E:\\x\\unrelated.jpg": str(corpus.vlm_dir / rec["vlm_json"]),
    }
    map_path = tmp_path / "map.json"
    map_path.write_text(json.dumps(mapping), encoding="utf-8")
    result = run_cli([*base_args(corpus, tmp_path), "--vlm_map", str(map_path)])
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "analysis.csv")
    row = next(r for r in rows if r["image_id"] == rec["coco_image_id"])
    assert row["match_tier"] == "exact"
    errors = read_csv(tmp_path / "analysis_errors.csv")
    assert [(e["file"], e["problem"]) for e in errors] == [
        (str(map_path), "VLM JSON not found: E:\\nowhere\\gone.json")
    ]
    assert "warning:" in result.stderr
