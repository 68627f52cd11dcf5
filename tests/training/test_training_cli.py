"""What a newcomer trips over, through the real command lines (`main(argv)` of
`python -m training`, `training.evaluate`, `training.embed`, `training.synthetic`):
every flag documented with its default; an earlier run never replaced unasked; a missing
--image_root named at the start; repeated skip messages capped; a file that is not a
checkpoint named as such; nothing scored or embedded is a failure naming the input."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import click
import pytest
import torch

import dataspec
from training import embed, evaluate, synthetic, train_cli
from training.checkpoint import FORMAT
from training.embed import main as embed_main
from training.evaluate import main as evaluate_main
from training.synthetic import SyntheticCorpus
from training.train_cli import main as train_main

COMMANDS = {
    "python -m training": train_cli.command,
    "python -m training.evaluate": evaluate.command,
    "python -m training.embed": embed.command,
    "python -m training.synthetic": synthetic.command,
}
MAINS = {
    "python -m training": train_cli.main,
    "python -m training.evaluate": evaluate.main,
    "python -m training.embed": embed.main,
    "python -m training.synthetic": synthetic.main,
}


def _source(corpus: SyntheticCorpus) -> list[str]:
    return ["--json_dir", str(corpus.pages_dir), "--image_root", str(corpus.image_root)]


def _train_argv(pages: Path, image_root: Path, out: Path, tiny: list[str]) -> list[str]:
    return [
        "--json_dir",
        str(pages),
        "--image_root",
        str(image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--val_fraction",
        "0",
        *tiny,
    ]


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_a_help_line_and_shows_its_default(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = COMMANDS[name]
    ctx = click.Context(command, info_name=name)
    options = [p for p in command.params if isinstance(p, click.Option) and p.name != "help"]
    assert len(options) >= 4
    for option in options:
        assert option.help and option.help.strip(), option.name
        assert option.show_default, option.name
        spellings = option.opts + option.secondary_opts
        for spelling in spellings:  # every underscore spelling has its hyphen twin
            if spelling.startswith("--") and "_" in spelling:
                assert spelling.replace("_", "-") in spellings, spelling
        record = option.get_help_record(ctx)
        assert record is not None
        default = option.get_default(ctx, call=False)  # None or a sentinel when there is none
        if isinstance(default, int | float | str) and default is not False:
            assert "default:" in record[1], (option.name, record)
    for flag in ("-h", "--help"):
        assert MAINS[name]([flag]) == 0
        shown = capsys.readouterr().out
        assert shown.startswith(f"Usage: {name}")
        for option in options:
            assert option.opts[0] in shown, option.opts[0]


def test_the_runbook_flags_are_options_of_the_trainer() -> None:
    names = {o for p in train_cli.command.params for o in p.opts}
    for flag in (
        "--json_list_file",
        "--json_dir",
        "--image_root",
        "--output_dir",
        "--batch_size",
        "--epochs",
        "--num_workers",
        "--num_heads",
        "--temperature",
        "--overwrite",
        "--resume",
    ):
        assert flag in names and (flag.replace("_", "-") in names), flag


# --------------------------------------------------------------------------- an earlier run


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize(
    "held", [("best.pt", "metrics.jsonl", "latest.pt"), ("metrics.jsonl",), ("epoch_3.pt",)]
)
def test_a_folder_holding_a_run_is_refused_and_left_byte_identical(
    held: tuple[str, ...],
    trained: Path,
    corpus: SyntheticCorpus,
    tiny: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for name in held:
        shutil.copy(trained / name, out / name)
    (out / "skipped_pages.csv").write_text("path,reason,kind\nmine,kept,page\n", "utf-8")
    (out / ".latest.pt.k1ll3d.tmp").write_bytes(b"a killed run's temp file")  # left alone too
    before = _outputs(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    assert train_main(_train_argv(corpus.pages_dir, corpus.image_root, out, tiny)) == 1
    err = capsys.readouterr().err
    assert f"--output_dir {out} already holds a run" in err
    assert "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert _outputs(out) == before  # nothing replaced, truncated, added or removed
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_overwrite_replaces_an_earlier_run_and_resume_with_it_is_a_usage_error(
    trained: Path,
    corpus: SyntheticCorpus,
    tiny: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for name in ("best.pt", "latest.pt", "metrics.jsonl", "epoch_3.pt", "config.json"):
        shutil.copy(trained / name, out / name)
    (out / "notes.txt").write_text("mine", "utf-8")
    argv = _train_argv(corpus.pages_dir, corpus.image_root, out, tiny)
    assert train_main([*argv, "--overwrite", "--resume"]) == 2
    assert "give one" in capsys.readouterr().err
    assert train_main([*argv, "--max_samples", "8", "--overwrite"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1]
    assert torch.load(out / "latest.pt")["epoch"] == 1
    assert not (out / "epoch_3.pt").exists()  # the earlier run's outputs went
    assert (out / "notes.txt").read_text("utf-8") == "mine"  # anything else stays
    # and a second run needs --resume (here: the run is done, nothing to do) or --overwrite
    assert train_main([*argv, "--max_samples", "8"]) == 1
    assert train_main([*argv, "--max_samples", "8", "--resume"]) == 0


# --------------------------------------------------------------------------- image roots, skips


def test_a_missing_image_root_is_named_before_anything_runs(
    trained: Path, corpus: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_images"
    roots = f"{corpus.image_root},{missing}"
    out = tmp_path / "run"
    train = ["--json_dir", str(corpus.pages_dir), "--image_root", roots, "--output_dir", str(out)]
    assert train_main([*train, "--no_progress"]) == 1
    assert f"--image_root {missing} does not exist" in capsys.readouterr().err
    assert not out.exists()

    a_file = tmp_path / "file.txt"
    a_file.write_text("x", "utf-8")
    common = ["--checkpoint", str(trained / "best.pt"), "--json_dir", str(corpus.pages_dir)]
    report = tmp_path / "r.json"
    assert evaluate_main([*common, "--image_root", str(a_file), "--report", str(report)]) == 1
    assert f"--image_root {a_file} is not a folder" in capsys.readouterr().err
    assert not report.exists()
    emb = tmp_path / "emb"
    assert embed_main([*common, "--image-root", roots, "--output_dir", str(emb)]) == 1
    assert f"--image_root {missing} does not exist" in capsys.readouterr().err
    assert not emb.exists()


def _pages_with_missing_images(
    corpus: SyntheticCorpus, root: Path, copy_page: Any, good: int, gone: int
) -> Path:
    pages = root / "pages"
    for src in corpus.pages[:good]:
        dst = pages / src.relative_to(corpus.pages_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    (pages / "Gone").mkdir(parents=True)
    for k in range(gone):
        copy_page(
            corpus.pages[k % len(corpus.pages)],
            pages / "Gone" / f"{k + 1:04d}.json",
            page_image_path=f"Gone/JPG4CBZ/{k + 1:04d}.jpg",
        )
    return pages


def test_repeated_skip_messages_are_capped_and_every_skip_is_listed(
    corpus: SyntheticCorpus,
    tiny: list[str],
    tmp_path: Path,
    copy_page: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pages = _pages_with_missing_images(corpus, tmp_path, copy_page, good=4, gone=9)
    out = tmp_path / "run"
    argv = _train_argv(pages, corpus.image_root, out, tiny)
    assert train_main([*argv, "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    shown = re.findall(r"skipped page \(page\): (\S+)", err)
    assert len(shown) == 5  # the first five, once: not again in epoch 2
    assert all("Gone" in s for s in shown)
    assert err.count("... and 4 more page skips like this") == 1
    assert str(out / "skipped_pages.csv") in err
    with (out / "skipped_pages.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 9 and all("image not found" in r["reason"] for r in rows)


def test_a_run_whose_every_page_is_skipped_still_lists_them(
    corpus: SyntheticCorpus,
    tiny: list[str],
    tmp_path: Path,
    copy_page: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pages = _pages_with_missing_images(corpus, tmp_path, copy_page, good=0, gone=7)
    out = tmp_path / "run"
    assert train_main(_train_argv(pages, corpus.image_root, out, tiny)) == 1
    err = capsys.readouterr().err
    assert "every training page was skipped in epoch 1" in err
    assert str(out / "skipped_pages.csv") in err
    with (out / "skipped_pages.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 7
    assert not (out / "best.pt").exists() and not (out / "metrics.jsonl").exists()
    # a failed run is no run: the same folder can be trained into again without a flag
    assert train_main(_train_argv(corpus.pages_dir, corpus.image_root, out, tiny)) == 0


# --------------------------------------------------------------------------- checkpoints


def _garbage(tmp_path: Path, trained: Path) -> dict[str, Path]:
    files = {}

    def put(name: str, data: bytes | None = None, obj: object = None) -> None:
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        else:
            torch.save(obj, path)
        files[name] = path

    put("random.pt", data=os.urandom(4096))
    put("empty.pt", data=b"")
    put("page.json", data=json.dumps({"page_image_path": "x.jpg", "panels": []}).encode())
    put("state_dict.pt", obj=torch.load(trained / "best.pt")["model"])
    put("list.pt", obj=[1, 2, 3])
    put("other_format.pt", obj={"format": "someone-else/2", "model": {}})
    put("no_model.pt", obj={"format": FORMAT, "epoch": 3})
    put("bad_config.pt", obj={"format": FORMAT, "model": {}, "config": {"dim": "wide"}})
    put("pickled_object.pt", obj=argparse.Namespace(weights=torch.ones(2)))
    truncated = (trained / "best.pt").read_bytes()
    put("truncated.pt", data=truncated[: len(truncated) // 2])
    return files


def test_a_file_that_is_not_a_checkpoint_is_named_plainly(
    trained: Path,
    corpus: SyntheticCorpus,
    tiny: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    train = _train_argv(corpus.pages_dir, corpus.image_root, tmp_path / "o", tiny)
    for name, path in _garbage(tmp_path, trained).items():
        common = ["--checkpoint", str(path), *_source(corpus), "--no_progress"]
        runs = [
            ("evaluate", evaluate_main, [*common, "--report", str(tmp_path / "r.json")]),
            ("embed", embed_main, [*common, "--output_dir", str(tmp_path / "emb")]),
            ("resume", train_main, [*train, "--resume", str(path)]),
        ]
        for cli, run, argv in runs:
            assert run(argv) == 1, (name, cli)
            err = capsys.readouterr().err
            assert f"{path} is not a CLOSURE-Lite checkpoint (" in err, (name, cli, err)
            assert "weights_only" not in err and "Traceback" not in err, (name, cli, err)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "emb").exists()
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- nothing to score


def test_evaluate_and_embed_with_no_usable_page_fail_naming_the_input(
    trained: Path,
    corpus: SyntheticCorpus,
    tmp_path: Path,
    copy_page: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pages = _pages_with_missing_images(corpus, tmp_path, copy_page, good=0, gone=3)
    listing = tmp_path / "gone.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(pages.rglob("*.json"))), "utf-8")
    report = tmp_path / "report.json"
    common = ["--checkpoint", str(trained / "best.pt"), "--image_root", str(corpus.image_root)]
    argv = [*common, "--json_list_file", str(listing), "--report", str(report)]
    assert evaluate_main(argv) == 1
    captured = capsys.readouterr()
    assert f"{listing}: no page could be scored (3 found: 3 skipped as unusable)" in captured.err
    assert "image not found" in captured.err
    assert "nan" not in captured.out.lower() and not report.exists()

    emb = tmp_path / "emb"
    assert embed_main([*common, "--json_dir", str(pages), "--output_dir", str(emb)]) == 1
    err = capsys.readouterr().err
    assert f"{pages}: no page could be embedded (3 found, 3 skipped as unusable)" in err
    assert not (emb / "page_embeddings.npy").exists() and not (emb / "index.csv").exists()
    with (emb / "skipped_pages.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 3


def _single_panel_pages(held_out: SyntheticCorpus, root: Path, copy_page: Any, n: int) -> Path:
    pages = root / "pages"
    shutil.copytree(held_out.pages_dir, pages)
    (pages / "Single").mkdir()
    for k, src in enumerate(held_out.pages[:n]):
        panel = dataspec.load(src).panels[0]
        single = pages / "Single" / f"{k + 1:04d}.json"
        copy_page(src, single, panels=[panel], reading_order=None, reading_order_source=None)
    return pages


def test_evaluate_summary_says_why_pages_were_not_scored(
    trained: Path,
    held_out: SyntheticCorpus,
    tmp_path: Path,
    copy_page: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pages = _single_panel_pages(held_out, tmp_path, copy_page, 3)
    report = tmp_path / "report.json"
    argv = [
        "--checkpoint",
        str(trained / "best.pt"),
        "--json_dir",
        str(pages),
        "--image_root",
        str(held_out.image_root),
        "--report",
        str(report),
        "--no_progress",
        "--truth",  # orders independent of the layout heuristic: the generator's truth
        str(held_out.image_root.parent / "truth.jsonl"),
    ]
    assert evaluate_main(argv) == 0
    out = capsys.readouterr().out
    single = 3 + sum(len(dataspec.load(p).panels) == 1 for p in held_out.pages)
    summary = f"pages 15 scored {15 - single} skipped 0 ({single} single-panel pages, nothing to"
    assert summary in out
    assert json.loads(report.read_text())["pages_single_panel"] == single

    only_single = tmp_path / "single.txt"
    only_single.write_text(
        "".join(f"{p}\n" for p in sorted((pages / "Single").glob("*.json"))), "utf-8"
    )
    argv = [*argv[:2], "--json_list_file", str(only_single), *argv[4:]]
    assert evaluate_main(argv) == 1
    err = capsys.readouterr().err
    assert f"{only_single}: no page could be scored" in err
    assert "3 single-panel pages, nothing to order" in err


# --------------------------------------------------------------------------- progress


def test_evaluate_and_embed_show_progress_unless_asked_not_to(
    trained: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--checkpoint", str(trained / "best.pt"), *_source(held_out)]
    report = ["--report", str(tmp_path / "r.json")]
    report += ["--truth", str(held_out.image_root.parent / "truth.jsonl")]
    emb = ["--output_dir", str(tmp_path / "emb")]
    assert evaluate_main([*common, *report]) == 0
    assert re.search(r"evaluate \[#+\] \d+/\d+", capsys.readouterr().err)
    assert embed_main([*common, *emb]) == 0
    assert re.search(r"embed \[#+\] \d+/\d+", capsys.readouterr().err)
    assert evaluate_main([*common, *report, "--no-progress"]) == 0
    assert "evaluate [" not in capsys.readouterr().err
    assert embed_main([*common, *emb, "--no_progress", "--overwrite"]) == 0
    assert "embed [" not in capsys.readouterr().err
