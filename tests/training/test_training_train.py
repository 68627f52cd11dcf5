"""Whole CPU trainings through `training.train_cli.main` and `python -m training`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from training.config import ModelConfig
from training.synthetic import SyntheticCorpus
from training.train_cli import main

REPO = Path(__file__).resolve().parents[2]


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _learned(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of an epoch record that must be identical between identical runs."""
    flat: dict[str, float] = {}
    for key, value in record.items():
        if key in ("pages_per_s", "seconds"):
            continue
        for sub, number in value.items() if isinstance(value, dict) else [("", value)]:
            flat[f"{key}.{sub}"] = number
    return flat


def test_run_writes_config_metrics_and_checkpoints(trained: Path) -> None:
    config = json.loads((trained / "config.json").read_text())
    assert config["model"]["image_size"] == 64 and config["pages"]["found"] == 24
    assert config["pages"]["train"] + config["pages"]["val"] == 24
    records = _metrics(trained)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for r in records:
        assert set(r["train"]) == {"next", "mpm", "order", "direction", "total"}
        assert all(v > 0 for v in r["train"].values())
        for key in (
            "next_panel_acc",
            "chance_next_panel_acc",
            "heuristic_next_panel_acc",
            "order_exact",
            "kendall_tau",
            "loss_total",
        ):
            assert key in r["val"]
        assert r["pages_skipped"] == 0 and r["pages_per_s"] > 0 and r["pages"] > 0
    state = torch.load(trained / "latest.pt")  # plain torch.load: weights_only by default
    assert state["epoch"] == 3 and state["step"] == records[-1]["step"]
    assert set(state) >= {"model", "optimizer", "scheduler", "rng", "config", "args", "epoch"}
    assert ModelConfig.from_dict(state["config"]).dim == 32
    best = torch.load(trained / "best.pt")
    assert best["best"]["epoch"] == best["epoch"]
    assert not list(trained.glob(".*.tmp"))  # atomic writes leave no temp files


def test_train_loss_goes_down(trained: Path) -> None:
    records = _metrics(trained)
    assert records[-1]["train"]["total"] < records[0]["train"]["total"]


def test_resume_continues_exactly_where_it_stopped(
    trained: Path, corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path
) -> None:
    # Same command as the `trained` run, resumed from its epoch-2 checkpoint: epoch 3
    # must come out identical (seeded data order, slot order, masks and dropout).
    argv = [
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(tmp_path),
        "--batch_size",
        "4",
        "--epochs",
        "3",
        "--lr",
        "3e-3",
        "--val_fraction",
        "0.25",
        *tiny,
        "--resume",
        str(trained / "epoch_2.pt"),
    ]
    assert main(argv) == 0
    resumed, original = _metrics(tmp_path), _metrics(trained)
    assert [r["epoch"] for r in resumed] == [1, 2, 3]
    got, want = _learned(resumed[-1]), _learned(original[-1])
    # metrics with nothing to score (null, e.g. blind_* with no page the heuristic gets
    # wrong) are null in both; every number is the same
    unset = {k for k, v in want.items() if v is None}
    assert {k for k, v in got.items() if v is None} == unset
    numbers = {k: v for k, v in got.items() if k not in unset}
    assert numbers == pytest.approx({k: v for k, v in want.items() if k not in unset}, rel=1e-5)
    assert torch.load(tmp_path / "latest.pt")["epoch"] == 3

    # --resume without a path continues the output dir's latest.pt; done already → no-op
    assert main([*argv[:-2], "--resume"]) == 0
    assert len(_metrics(tmp_path)) == 3


def test_same_seed_same_run_and_hyphen_spellings(
    trained: Path, corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path
) -> None:
    hyphens = [f.replace("_", "-") if f.startswith("--") else f for f in tiny]
    argv = [
        "--json-dir",
        str(corpus.pages_dir),
        "--image-root",
        str(corpus.image_root),
        "--output-dir",
        str(tmp_path),
        "--batch-size",
        "4",
        "--epochs",
        "1",
        "--lr",
        "3e-3",
        "--val-fraction",
        "0.25",
        *hyphens,
    ]
    assert main(argv) == 0
    first = _learned(_metrics(tmp_path)[0])
    first.pop("lr.")  # a 1-epoch schedule decays differently from the 3-epoch one
    assert main([*argv, "--overwrite"]) == 0  # the folder holds the first run now
    again = _learned(_metrics(tmp_path)[0])
    again.pop("lr.")
    assert again == first


def test_runbook_command_line_verbatim(corpus: SyntheticCorpus, tmp_path: Path) -> None:
    # The runbook's step-3 flags exactly as written (list-file form), plus tiny sizes.
    runbook = [
        "--json_list_file",
        str(corpus.list_file),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(tmp_path / "closure_lite_simple_calibre_all"),
        "--batch_size",
        "4",
        "--epochs",
        "1",
        "--num_workers",
        "8",
        "--num_heads",
        "4",
        "--temperature",
        "0.1",
    ]
    extra = [
        "--image_size",
        "32",
        "--dim",
        "32",
        "--vocab_size",
        "1024",
        "--max_samples",
        "8",
        "--context_layers",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "training", *runbook, *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "closure_lite_simple_calibre_all"
    assert (run / "latest.pt").is_file() and len(_metrics(run)) == 1
    assert "epoch 1" in done.stderr


def _bad_corpus(corpus: SyntheticCorpus, root: Path, copy_page: Any) -> Path:
    """Six good pages, a seed-style variant, a zero-panel page and three unusable ones."""
    pages = root / "pages"
    for src in corpus.pages[:6]:
        rel = src.relative_to(corpus.pages_dir)
        (pages / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, pages / rel)
    src = corpus.pages[7]
    import dataspec

    page = dataspec.load(src)
    variant = {
        "image": page.page_image_path,
        "VLM_panels": [{"box": list(p.panel_coords), "text": p.text.dialogue} for p in page.panels],
    }
    (pages / "Bad" / "0001.json").parent.mkdir(parents=True)
    (pages / "Bad" / "0001.json").write_text(json.dumps(variant), encoding="utf-8")
    copy_page(
        src, pages / "Bad" / "0002.json", panels=[], reading_order=None, reading_order_source=None
    )
    corrupt = root / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not an image")
    copy_page(src, pages / "Bad" / "0003.json", page_image_path=str(corrupt))
    copy_page(src, pages / "Bad" / "0004.json", page_image_path="Gone/JPG4CBZ/0001.jpg")
    (pages / "Bad" / "0005.json").write_text("{not json", encoding="utf-8")
    return pages


def test_bad_pages_are_skipped_counted_and_listed(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path, copy_page: Any
) -> None:
    pages = _bad_corpus(corpus, tmp_path, copy_page)
    out = tmp_path / "run"
    argv = [
        "--json_dir",
        str(pages),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--val_fraction",
        "0",
        *tiny,
    ]
    assert main(argv) == 0
    record = _metrics(out)[0]
    assert record["pages_skipped"] == 3 and record["pages"] == 8
    assert record["lenient_pages"] == 1 and record["zero_panel_pages"] == 1
    with (out / "skipped_pages.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(Path(r["path"]).name for r in rows) == ["0003.json", "0004.json", "0005.json"]
    assert all(r["path"] in r["reason"] for r in rows)


def test_a_run_with_no_usable_page_fails_clearly(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "0001.json").write_text("[]", encoding="utf-8")
    argv = [
        "--json_dir",
        str(tmp_path / "p"),
        "--output_dir",
        str(tmp_path / "o"),
        "--epochs",
        "1",
        *tiny,
    ]
    assert main(argv) == 1
    assert "every training page was skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        pytest.param(["--output_dir", "o"], 2, "one of the arguments", id="no-source"),
        pytest.param(
            ["--json_dir", "d", "--json_list_file", "l.txt", "--output_dir", "o"],
            2,
            "not allowed with",
            id="two-sources",
        ),
        pytest.param(["--json_dir", "d"], 2, "--output_dir", id="no-output"),
        pytest.param(
            ["--json_dir", "d", "--output_dir", "o", "--batch_size", "0"],
            2,
            "--batch_size",
            id="batch-size",
        ),
        pytest.param(
            ["--json_dir", "d", "--output_dir", "o", "--dim", "30", "--num_heads", "4"],
            2,
            "divisible",
            id="heads",
        ),
        pytest.param(
            ["--json_dir", "/no/such/dir", "--output_dir", "o"], 1, "no such file", id="missing-dir"
        ),
        pytest.param(
            ["--json_dir", "d", "--output_dir", "o", "--resume", "/no/ck.pt"],
            1,
            "no such checkpoint",
            id="missing-checkpoint",
        ),
    ],
)
def test_usage_and_input_errors(
    argv: list[str],
    status: int,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    try:
        code = main([*argv, "--no_progress"])
    except SystemExit as exc:
        code = exc.code
    assert code == status
    assert message in capsys.readouterr().err


def test_tracker_only_when_installed(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        argv = [
            "--json_dir",
            str(corpus.pages_dir),
            "--image_root",
            str(corpus.image_root),
            "--output_dir",
            str(tmp_path),
            "--epochs",
            "1",
            "--max_samples",
            "4",
            "--report_to",
            "tensorboard",
            *tiny,
        ]
        assert main(argv) == 1
        assert "tensorboard" in capsys.readouterr().err
    else:
        pytest.skip("tensorboard is installed")
