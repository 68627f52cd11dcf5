"""Command-line errors, sharding and merging."""

from __future__ import annotations

from pathlib import Path

import pytest
from analyzer_testlib import base_args, read_csv
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.merge import merge_command


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fast_only", "--allow_partial_match"], "--fast_only"),
        (["--emit_dataspec_everything", "--emit_dataspec_for", "perfect",
          "--dataspec_out_dir", "x"], "give one of them"),
        (["--emit_dataspec_all"], "needs --dataspec_out_dir"),
        (["--dataspec_min_det_score", "0.3"], "only apply to DataSpec emission"),
        (["--require_image_exists"], "only apply to DataSpec emission"),
        (["--emit_dataspec_all", "--dataspec_out_dir", "x", "--require_image_exists",
          "--dataspec_allow_missing_images"], "contradict"),
        (["--json_require_exists"], "only apply to the subset lists"),
        (["--emit_all_json_lists", "--json_list_out", "one.txt"], "one subset's list"),
        (["--shard", "3/3"], "need 0 <= I < N"),
        (["--shard", "half"], "is not I/N"),
    ],
)  # fmt: skip
def test_flag_conflicts_are_usage_errors(run_cli, base_corpus, tmp_path, extra, message) -> None:
    result = run_cli([*base_args(base_corpus, tmp_path), *extra])
    assert result.exit_code == 2
    assert message in result.stderr


def test_no_vlm_source_is_a_usage_error(run_cli, base_corpus, tmp_path) -> None:
    args = ["--coco", str(base_corpus.coco_path), "--output_csv", str(tmp_path / "a.csv")]
    result = run_cli(args)
    assert result.exit_code == 2 and "--vlm_dir, --vlm_map" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [(None, "cannot read"), (b"{not json", "not valid JSON"), (b"", "empty file")],
)
def test_unusable_predictions_exit_1_naming_the_file(
    run_cli, base_corpus, tmp_path, content, message
) -> None:
    coco = tmp_path / "predictions.json"
    if content is not None:
        coco.write_bytes(content)
    args = base_args(base_corpus, tmp_path)
    args[1] = str(coco)
    result = run_cli(args)
    assert result.exit_code == 1
    assert str(coco) in result.stderr and message in result.stderr
    assert main([*args, "--no_progress"]) == 1  # the function form returns the status


def test_shards_merge_to_the_unsharded_outputs(run_cli, base_corpus, tmp_path) -> None:
    def args(out: Path) -> list[str]:
        return [
            *base_args(base_corpus, out),
            "--emit_dataspec_everything",
            "--dataspec_out_dir",
            str(out / "ds"),
            "--dataspec_list_out",
            str(out / "list.txt"),
            "--dataspec_debug_skips_out",
            str(out / "skips.csv"),
            "--emit_json_list",
            "perfect",
            "--emit_vlm_map",
            str(out / "map.json"),
        ]

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert run_cli(args(whole)).exit_code == 0
    for i in range(3):
        result = run_cli([*args(parts), "--shard", f"{i}/3"])
        assert result.exit_code == 0, result.output
    assert (parts / "analysis.shard-00002-of-00003.csv").is_file()
    assert not (parts / "analysis.csv").exists()
    merged = CliRunner().invoke(merge_command, [str(parts), "--remove_shards"])
    assert merged.exit_code == 0, merged.output
    assert "merged 3 shards" in merged.stdout
    names = [
        "analysis.csv",
        "analysis_ambiguities.csv",
        "analysis_errors.csv",
        "analysis_perfect_matches.txt",
        "analysis_perfect_images.txt",
        "skips.csv",
        "map.json",
    ]
    for name in names:
        assert (parts / name).read_bytes() == (whole / name).read_bytes(), name
    want = (whole / "list.txt").read_text("utf-8").replace(str(whole), str(parts))
    assert (parts / "list.txt").read_text("utf-8") == want
    assert not list(parts.glob("*.shard-*"))
    assert len(read_csv(parts / "analysis.csv")) == base_corpus.pages


def test_merge_refuses_an_incomplete_set(run_cli, base_corpus, tmp_path) -> None:
    for i in (0, 2):
        assert run_cli([*base_args(base_corpus, tmp_path), "--shard", f"{i}/3"]).exit_code == 0
    result = CliRunner().invoke(merge_command, [str(tmp_path / "analysis.csv")])
    assert result.exit_code == 1
    assert "missing shard(s) 1 of 3" in result.stderr
    assert not (tmp_path / "analysis.csv").exists()
