"""What a newcomer trips over: runs that used nothing fail naming the input; the progress
bar of the predictions file ends at 100%."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from analyzer_testlib import base_args, coco, read_csv, write_coco
from conftest import Runner

from analyzer.coco import load_coco
from dataspec.sample import SampleCorpus

REPO = Path(__file__).resolve().parents[2]


def _args(coco_path: Path | str, vlm_dir: Path | str, out: Path) -> list[str]:
    return [
        "--coco",
        str(coco_path),
        "--vlm_dir",
        str(vlm_dir),
        "--output_csv",
        str(out / "analysis.csv"),
    ]


# --- 1. exits that said "fine" when nothing useful happened ---------------------------------


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2, 3]",
        '{"annotations": []}',
        '[{"image_id": null, "category_id": 1, "bbox": [1, 2, 3, 4]}]',
    ],
    ids=["ints", "no-annotations", "no-usable-image-id"],
)
def test_coco_without_a_usable_record_fails_naming_the_file(
    run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path, content: str
) -> None:
    predictions = tmp_path / "predictions.json"
    predictions.write_text(content, encoding="utf-8")
    result = run_cli(_args(predictions, base_corpus.vlm_dir, tmp_path))
    assert result.exit_code == 1, result.output
    assert str(predictions) in result.stderr
    assert "no usable COCO record" in result.stderr
    assert not (tmp_path / "analysis.csv").exists()  # no empty CSV left behind
    assert "pages: 0" not in result.stdout


def test_some_bad_records_are_still_a_run(
    run_cli: Runner, corpus: SampleCorpus, tmp_path: Path
) -> None:
    """Partial success stays success: bad records reported, the good pages analyzed."""
    data = coco(corpus)
    data["annotations"][:3] = [1, "two", None]
    write_coco(corpus, data)
    result = run_cli(base_args(corpus, tmp_path))
    assert result.exit_code == 0, result.output
    assert len(read_csv(tmp_path / "analysis.csv")) == corpus.pages
    assert "bad input (run went on): 3" in result.stdout


def test_empty_vlm_dir_fails_naming_it(
    run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path
) -> None:
    empty = tmp_path / "vlm"
    empty.mkdir()
    result = run_cli(_args(base_corpus.coco_path, empty, tmp_path))
    assert result.exit_code == 1, result.output
    assert str(empty) in result.stderr and "no .json file" in result.stderr
    assert "matched: 0" not in result.stdout


def test_vlm_dir_without_a_json_file_fails_naming_it(
    run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path
) -> None:
    vlm = tmp_path / "vlm"
    (vlm / "Series" / "deeper").mkdir(parents=True)
    (vlm / "Series" / "notes.txt").write_text("not an analysis", encoding="utf-8")
    (vlm / "Series" / "deeper" / "page.json.bak").write_text("{}", encoding="utf-8")
    result = run_cli(_args(base_corpus.coco_path, vlm, tmp_path))
    assert result.exit_code == 1, result.output
    assert str(vlm) in result.stderr and "no .json file" in result.stderr


def test_one_json_deep_down_is_enough(
    run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path
) -> None:
    vlm = tmp_path / "vlm"
    (vlm / "a" / "b").mkdir(parents=True)
    (vlm / "a" / "b" / "JPG4CBZ_0001.JSON").write_text("{}", encoding="utf-8")
    result = run_cli(_args(base_corpus.coco_path, vlm, tmp_path))
    assert result.exit_code == 0, result.output


def test_missing_vlm_dir_is_reported_before_the_coco_file_is_read(
    run_cli: Runner, tmp_path: Path
) -> None:
    """Garbage predictions and no VLM folder: the VLM folder is what the message is about,
    and the predictions were never read (no "reading detections")."""
    garbage = tmp_path / "predictions.json"
    garbage.write_bytes(b"\x00\xff garbage, not JSON at all \x89PNG")
    missing = tmp_path / "no_such_vlm_dir"
    result = run_cli(_args(garbage, missing, tmp_path))
    assert result.exit_code == 1, result.output
    assert str(missing) in result.stderr and "--vlm_dir" in result.stderr
    assert "no such folder" in result.stderr
    assert str(garbage) not in result.stderr
    assert "reading detections" not in result.stderr


def test_vlm_dir_that_is_a_file(run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path) -> None:
    not_dir = tmp_path / "vlm.json"
    not_dir.write_text("{}", encoding="utf-8")
    result = run_cli(_args(tmp_path / "unread.json", not_dir, tmp_path))
    assert result.exit_code == 1
    assert str(not_dir) in result.stderr and "not a folder" in result.stderr


def test_missing_vlm_map_is_reported_before_the_coco_file_is_read(
    run_cli: Runner, base_corpus: SampleCorpus, tmp_path: Path
) -> None:
    garbage = tmp_path / "predictions.json"
    garbage.write_bytes(b"garbage")
    missing = tmp_path / "map.json"
    args = [*_args(garbage, base_corpus.vlm_dir, tmp_path), "--vlm_map", str(missing)]
    result = run_cli(args)
    assert result.exit_code == 1
    assert f"{missing}: --vlm_map: no such file" in result.stderr
    assert "reading detections" not in result.stderr


# --- 3. the "reading detections" bar ends at 100% ------------------------------------------


def _reported(path: Path, chunk_bytes: int) -> list[int]:
    counts: list[int] = []
    load_coco(path, progress=counts.append, chunk_bytes=chunk_bytes)
    return counts


@pytest.mark.parametrize("chunk_bytes", [300, 1 << 24], ids=["many-slices", "one-slice"])
def test_progress_adds_up_to_the_file_size(
    base_corpus: SampleCorpus, tmp_path: Path, chunk_bytes: int
) -> None:
    """Dict (images before annotations), bare list with a BOM, NaN literals (read whole
    by Python's json): the counts always add up to the file's size, none negative."""
    data = json.loads(base_corpus.coco_path.read_text("utf-8"))
    bare = tmp_path / "bare.json"
    bare.write_bytes(b"\xef\xbb\xbf" + json.dumps(data["annotations"], indent=1).encode())
    nan = tmp_path / "nan.json"
    data["images"][0]["width"] = float("nan")
    nan.write_text(json.dumps(data), encoding="utf-8")
    for path in (base_corpus.coco_path, bare, nan):
        counts = _reported(path, chunk_bytes)
        assert all(n > 0 for n in counts), path
        assert sum(counts) == os.path.getsize(path), path
    assert len(_reported(base_corpus.coco_path, 300)) > 3  # progress as it goes


def test_the_bar_on_a_terminal_ends_at_100(base_corpus: SampleCorpus, tmp_path: Path) -> None:
    """`python -m analyzer` with stderr on a pseudo-terminal: both bars reach 100%."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer",
            *_args(base_corpus.coco_path, base_corpus.vlm_dir, tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    frames = text.replace("\r", "\n").splitlines()
    for label in ("reading detections", "analyzing pages"):
        shown = [f for f in frames if label in f]
        assert shown, frames
        assert shown[-1].rstrip().endswith("100%"), shown
