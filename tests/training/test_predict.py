"""`python -m training.predict`: pages written with the model's order, through the real
command line, a freshly built model saved with the project's checkpoint code, and real
page JPEGs from `dataspec.sample`."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from PIL import Image

import dataspec
from training import predict
from training.checkpoint import save_checkpoint
from training.config import ModelConfig
from training.model import build_model
from training.predict import main as predict_main
from training.synthetic import SyntheticCorpus

REPO = Path(__file__).resolve().parents[2]
MAX_PANELS = 4
"""Fewer than many synthetic pages hold: the rest must follow in the page's own order."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = ModelConfig(
        dim=32,
        num_heads=2,
        image_size=64,
        vocab_size=2048,
        max_tokens=32,
        context_layers=1,
        max_panels=MAX_PANELS,
    )
    torch.manual_seed(0)
    model = build_model(config)
    path = tmp_path_factory.mktemp("fresh") / "fresh.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": config.to_dict(), "epoch": 0})
    return path


def _argv(checkpoint: Path, corpus: SyntheticCorpus, out: Path, *more: str) -> list[str]:
    return [
        "--checkpoint",
        str(checkpoint),
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--out_dir",
        str(out),
        "--no_progress",
        *more,
    ]


def test_predict_writes_pages_the_strict_loader_reads_with_the_models_order(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # one page that cannot be read: it is logged, the rest are written
    pages = tmp_path / "pages"
    shutil.copytree(held_out.pages_dir, pages)
    broken = pages / "Broken" / "JPG4CBZ" / "0001.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json", encoding="utf-8")
    corpus = SyntheticCorpus(held_out.image_root, pages, held_out.list_file, held_out.pages)
    out = tmp_path / "predicted"
    assert predict_main(_argv(checkpoint, corpus, out)) == 0
    stdout = capsys.readouterr().out
    inputs = sorted(p for p in pages.rglob("*.json") if p != broken)
    listed = (out / "predicted_pages.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(listed) == sorted(str(out / p.relative_to(pages)) for p in inputs)
    over = 0
    for src in inputs:
        original = dataspec.load(src, image_root=held_out.image_root)
        written = out / src.relative_to(pages)  # the input tree, mirrored
        page = dataspec.load(written)  # strict, and no image root needed: path resolved
        assert page.reading_order_source == "model"
        assert page.reading_order is not None
        assert sorted(page.reading_order) == list(range(len(page.panels)))
        assert page.boxes() == original.boxes()
        assert page.page_image_path == original.page_image_path
        assert Path(page.page_image_path).is_file()
        if len(page.panels) > MAX_PANELS:  # beyond what the model sees: the page's order
            over += 1
            seen = set(page.reading_order[:MAX_PANELS])
            assert seen == set(original.order()[:MAX_PANELS])
            rest = [i for i in original.order() if i not in seen]
            assert page.reading_order[MAX_PANELS:] == rest
    assert over > 0
    with (out / "skipped_pages.csv").open(encoding="utf-8") as fh:
        skips = list(csv.DictReader(fh))
    assert [(r["path"], r["kind"]) for r in skips] == [(str(broken), "page")]
    assert str(broken) in skips[0]["reason"]
    assert f"{len(inputs)} pages written" in stdout and "1 skipped" in stdout
    assert not list(out.rglob("*.tmp"))


def test_predict_refuses_a_folder_that_is_not_empty(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "predicted"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    assert predict_main(_argv(checkpoint, held_out, out)) == 1
    err = capsys.readouterr().err
    assert f"--out_dir {out} is not empty (notes.txt)" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == ["notes.txt"]  # nothing written

    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "x.jpg").write_bytes(b"x")
    argv = _argv(checkpoint, held_out, tmp_path / "new", "--render_disagreements", str(renders))
    assert predict_main(argv) == 1
    assert f"--render_disagreements {renders} is not empty" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

    # the inputs' own folder is never an output folder, --overwrite or not
    argv = _argv(checkpoint, held_out, held_out.pages_dir, "--overwrite")
    before = {p: p.read_bytes() for p in held_out.pages}
    assert predict_main(argv) == 1
    assert "folder of the input pages" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in held_out.pages} == before

    assert predict_main(_argv(checkpoint, held_out, out, "--overwrite")) == 0
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"  # other files stay
    assert (out / "predicted_pages.txt").is_file()


def test_predict_renders_where_model_and_heuristic_disagree(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, renders = tmp_path / "predicted", tmp_path / "renders"
    argv = _argv(checkpoint, held_out, out, "--render-disagreements", str(renders))
    assert predict_main([*argv, "--max_renders", "2"]) == 0
    stdout = capsys.readouterr().out
    written = [Path(p) for p in (out / "predicted_pages.txt").read_text().splitlines()]
    disagree = [
        p
        for p in written
        if (page := dataspec.load(p)).reading_order != dataspec.reading_order(page.boxes())
    ]
    assert disagree, "a fresh model agrees with the heuristic everywhere?"
    assert f"differs from the layout heuristic's on {len(disagree)}" in stdout
    drawn = sorted(renders.rglob("*.jpg"))
    assert len(drawn) == min(2, len(disagree))
    expected = {str((renders / p.relative_to(out)).with_suffix(".jpg")) for p in disagree}
    assert {str(p) for p in drawn} <= expected
    for path in drawn:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.width > image.height  # two pages side by side

    everything = tmp_path / "all"
    argv = _argv(checkpoint, held_out, tmp_path / "p2", "--render_disagreements", str(everything))
    assert predict_main(argv) == 0
    assert len(list(everything.rglob("*.jpg"))) == min(50, len(disagree))


def test_predict_with_no_usable_page_fails_naming_the_input(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pages = tmp_path / "pages"
    for k, src in enumerate(held_out.pages[:2]):
        page = dataspec.load(src)
        gone = page.model_copy(update={"page_image_path": f"Gone/{k}.jpg"})
        dataspec.dump(gone, pages / f"{k:04d}.json")
    corpus = SyntheticCorpus(held_out.image_root, pages, held_out.list_file, [])
    out = tmp_path / "predicted"
    assert predict_main(_argv(checkpoint, corpus, out)) == 1
    err = capsys.readouterr().err
    assert f"{pages}: no page could be predicted (2 found, 2 skipped)" in err
    assert "image not found" in err
    with (out / "skipped_pages.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert not (out / "predicted_pages.txt").exists()


def test_predict_help_documents_every_flag(capsys: pytest.CaptureFixture) -> None:
    command = predict.command
    ctx = click.Context(command, info_name="python -m training.predict")
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    names = {o for p in options for o in p.opts + p.secondary_opts}
    for flag in ("--checkpoint", "--json_list_file", "--json_dir", "--image_root", "--out_dir",
                 "--overwrite", "--render_disagreements", "--max_renders"):  # fmt: skip
        assert flag in names, flag
    for option in options:
        assert option.help and option.help.strip(), option.name
        assert option.show_default, option.name
        spellings = option.opts + option.secondary_opts
        for spelling in spellings:
            if spelling.startswith("--") and "_" in spelling:
                assert spelling.replace("_", "-") in spellings, spelling
        record = option.get_help_record(ctx)
        assert record is not None
        default = option.get_default(ctx, call=False)
        if isinstance(default, int | float | str) and default is not False:
            assert "default:" in record[1], (option.name, record)
    for flag in ("-h", "--help"):
        assert predict_main([flag]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith("Usage: python -m training.predict")
        for option in options:
            assert option.opts[0] in shown, option.opts[0]
        assert re.search(
            r"--max_renders, --max-renders[^\n]*\n(?:[^\n]*\n)*?[^\n]*default:\s*50", shown
        )
    done = subprocess.run(
        [sys.executable, "-m", "training.predict", "-h"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "--render_disagreements" in done.stdout
