"""Path safety. With `strict_paths` (`PageDataset(strict_paths=True)`, `--strict_paths` on
`python -m training`, `training.evaluate` and `training.embed`) a page whose image resolves
outside the image roots — an absolute path elsewhere, `..`, a symlink leading out — is
refused and skipped with the reason. And whatever sits in the output directory, the run's
writes stay inside it: a symlink named like an output is replaced (the rename replaces the
link itself), never written through; the outside target is untouched.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import dataspec
from training.config import ModelConfig
from training.data import PageDataset, PageItem, SkippedPage
from training.embed import main as embed_main
from training.evaluate import main as evaluate_main
from training.synthetic import SyntheticCorpus
from training.train_cli import main as train_main

CFG = ModelConfig(image_size=32, max_tokens=16, vocab_size=512)
OUTPUTS = (
    "latest.pt",
    "best.pt",
    "epoch_1.pt",
    "config.json",
    "metrics.jsonl",
    "skipped_pages.csv",
    "lenient_pages.csv",
)


@dataclass
class Escapes:
    image_root: Path
    pages_dir: Path
    inside: list[Path]
    """Pages whose images lie under the image root (one of them read leniently)."""
    outside: dict[str, Path]
    """How the page's image escapes the root → the page."""
    secret: Path
    """The image outside the root."""


@pytest.fixture(scope="module")
def escapes(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory) -> Escapes:
    root = tmp_path_factory.mktemp("paths")
    image_root = root / "images"
    shutil.copytree(corpus.image_root, image_root)
    secret = root / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    src = corpus.pages[1]
    page = dataspec.load(src, image_root=corpus.image_root)
    shutil.copy(page.page_image_path, secret)
    (image_root / "Escape").mkdir()
    (image_root / "Escape" / "0001.jpg").symlink_to(secret)
    rel_inside = Path(page.page_image_path).relative_to(corpus.image_root).as_posix()

    pages_dir = root / "pages"
    pages_dir.mkdir()

    def write(name: str, **changes: Any) -> Path:
        return dataspec.dump(page.model_copy(update=changes), pages_dir / name)

    inside = [
        write("inside_0001.json", page_image_path=rel_inside),
        write("inside_0002.json", page_image_path=str(image_root / rel_inside)),
    ]
    lenient = pages_dir / "inside_0003.json"
    raw = {"image": rel_inside, "panels": [{"bbox": list(p.panel_coords)} for p in page.panels]}
    lenient.write_text(json.dumps(raw), encoding="utf-8")
    inside.append(lenient)
    outside = {
        "absolute": write("abs_0001.json", page_image_path=str(secret)),
        "dotdot": write("dotdot_0001.json", page_image_path=os.path.relpath(secret, image_root)),
        "symlink": write("link_0001.json", page_image_path="Escape/0001.jpg"),
    }
    return Escapes(image_root, pages_dir, inside, outside, secret)


def test_loader_refuses_images_outside_the_roots_with_strict_paths(escapes: Escapes) -> None:
    paths = [*escapes.inside, *escapes.outside.values()]
    loose = PageDataset(paths, image_root=str(escapes.image_root), config=CFG)
    assert all(isinstance(loose[i], PageItem) for i in range(len(paths)))  # the default
    strict = PageDataset(paths, image_root=str(escapes.image_root), config=CFG, strict_paths=True)
    for i, path in enumerate(paths):
        item = strict[i]
        if path in escapes.inside:
            assert isinstance(item, PageItem), item
        else:
            assert isinstance(item, SkippedPage), path
            assert item.kind == "page" and str(path) in item.reason
            assert "outside the image roots" in item.reason


def test_strict_paths_needs_an_image_root(
    escapes: Escapes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="image root"):
        PageDataset(escapes.inside, image_root=None, config=CFG, strict_paths=True)
    argv = ["--json_dir", str(escapes.pages_dir), "--output_dir", str(tmp_path / "o")]
    assert train_main([*argv, "--strict_paths", "--no_progress"]) == 1
    assert "--strict_paths needs --image_root" in capsys.readouterr().err


@pytest.fixture(scope="module")
def strict_run(
    escapes: Escapes, tiny: list[str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A 1-epoch `--strict_paths` run into an output dir whose every output name is a
    symlink to a file outside it: (output dir, the folder of outside files)."""
    base = tmp_path_factory.mktemp("strict_run")
    out, targets = base / "run", base / "targets"
    out.mkdir()
    targets.mkdir()
    for name in OUTPUTS:
        (targets / name).write_bytes(b"outside: must stay as it is")
        (out / name).symlink_to(targets / name)
    (targets / "stale").write_bytes(b"outside: must stay as it is")
    (out / ".latest.pt.dead.tmp").symlink_to(targets / "stale")  # a "stale temp" link
    argv = [
        "--json_dir",
        str(escapes.pages_dir),
        "--image_root",
        str(escapes.image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--val_fraction",
        "0",
        "--save_every",
        "1",
        "--strict_paths",
        "--overwrite",  # links named like outputs: a run's outputs, for the refusal check
        *tiny,
    ]
    assert train_main(argv) == 0
    return out, targets


def test_trainer_with_strict_paths_skips_and_lists_escaping_pages(
    strict_run: tuple[Path, Path], escapes: Escapes
) -> None:
    out, _ = strict_run
    with (out / "skipped_pages.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in rows) == sorted(map(str, escapes.outside.values()))
    assert all("outside the image roots" in r["reason"] and r["kind"] == "page" for r in rows)
    record = json.loads((out / "metrics.jsonl").read_text())
    assert record["pages"] == len(escapes.inside) and record["pages_skipped"] == 3


def test_outputs_replace_symlinks_and_never_write_through_them(
    strict_run: tuple[Path, Path],
) -> None:
    out, targets = strict_run
    for name in OUTPUTS:
        assert not (out / name).is_symlink() and (out / name).is_file(), name
    for target in targets.iterdir():
        assert target.read_bytes() == b"outside: must stay as it is", target
    assert not (out / ".latest.pt.dead.tmp").exists()  # the link went, not its target


def test_tracker_folder_that_is_a_symlink_is_refused(
    escapes: Escapes, tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "tensorboard").symlink_to(tmp_path / "elsewhere")
    argv = [
        "--json_dir",
        str(escapes.pages_dir),
        "--image_root",
        str(escapes.image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "1",
        "--report_to",
        "tensorboard",
        *tiny,
    ]
    assert train_main(argv) == 1
    assert "is a symlink" in capsys.readouterr().err
    assert not list((tmp_path / "elsewhere").iterdir())


def test_evaluate_and_embed_with_strict_paths(
    strict_run: tuple[Path, Path], escapes: Escapes, tmp_path: Path
) -> None:
    checkpoint = strict_run[0] / "latest.pt"
    source = ["--json_dir", str(escapes.pages_dir), "--image_root", str(escapes.image_root)]
    report = tmp_path / "report.json"
    common = ["--checkpoint", str(checkpoint), *source, "--device", "cpu", "--strict_paths"]
    assert evaluate_main([*common, "--report", str(report)]) == 0
    skipped = json.loads(report.read_text())["skipped"]
    assert sorted(s["path"] for s in skipped) == sorted(map(str, escapes.outside.values()))
    assert all("outside the image roots" in s["reason"] for s in skipped)

    emb = tmp_path / "emb"
    emb.mkdir()
    (tmp_path / "target.csv").write_bytes(b"outside")
    (emb / "index.csv").symlink_to(tmp_path / "target.csv")
    # an index.csv already there is refused unasked; --overwrite replaces the link itself
    assert embed_main([*common, "--output_dir", str(emb), "--format", "npy"]) == 1
    assert embed_main([*common, "--output_dir", str(emb), "--format", "npy", "--overwrite"]) == 0
    assert (tmp_path / "target.csv").read_bytes() == b"outside"
    assert not (emb / "index.csv").is_symlink()
    with (emb / "skipped_pages.csv").open(encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 3
    with (emb / "index.csv").open(encoding="utf-8") as fh:
        pages = {r["json_path"] for r in csv.DictReader(fh)}
    assert pages == set(map(str, escapes.inside))
