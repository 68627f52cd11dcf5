"""Fixtures: a small synthetic corpus (page JPEGs from `dataspec.sample`, canonical
DataSpec pages built from its truth with `dataspec.Page` / `dataspec.dump`), its ground
truth, and tiny model settings so that real CPU training steps stay fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import dataspec
from training.synthetic import SyntheticCorpus, make_corpus

_TINY = [
    "--image_size",
    "64",
    "--dim",
    "32",
    "--num_heads",
    "2",
    "--vocab_size",
    "2048",
    "--max_tokens",
    "32",
    "--context_layers",
    "1",
    "--num_workers",
    "0",
    "--no_progress",
]


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Model and loader flags that keep a training step to milliseconds on a CPU."""
    return list(_TINY)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCorpus:
    """24 pages in 3 series (one of them right to left); a third keep list order without
    `reading_order`, a third are shuffled with `reading_order` (source `truth`), a third
    shuffled without it (layout heuristic);
    image paths absolute, relative to the image root, or Windows drive paths."""
    return make_corpus(
        tmp_path_factory.mktemp("corpus"), pages=24, seed=0, width=400, height=600, series=3
    )


@pytest.fixture(scope="session")
def truth(corpus: SyntheticCorpus) -> dict[str, list[tuple[int, int, int, int]]]:
    """Image path relative to the image root → true panel boxes in reading order."""
    out = {}
    for line in (corpus.image_root.parent / "truth.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["image"]] = [tuple(p["bbox"]) for p in rec["panels"]]
    return out


@pytest.fixture(scope="session")
def directions(corpus: SyntheticCorpus) -> dict[str, str]:
    """Image path relative to the image root → the page's reading direction (ltr/rtl)."""
    lines = (corpus.image_root.parent / "truth.jsonl").read_text().splitlines()
    return {rec["image"]: rec["direction"] for rec in map(json.loads, lines)}


@pytest.fixture
def copy_page() -> Any:
    """`copy_page(src, dst, **changes)`: a canonical page copied with fields replaced."""

    def copy(src: Path, dst: Path, **changes: Any) -> Path:
        page = dataspec.load(src)
        return dataspec.dump(page.model_copy(update=changes), dst)

    return copy


@pytest.fixture(scope="session")
def trained(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A finished 3-epoch CPU run on the corpus (epoch checkpoints kept): its output dir."""
    from training.train_cli import main

    out = tmp_path_factory.mktemp("run")
    argv = [
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--batch_size",
        "4",
        "--epochs",
        "3",
        "--lr",
        "3e-3",
        "--val_fraction",
        "0.25",
        "--save_every",
        "1",
        *tiny,
    ]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="session")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCorpus:
    """12 pages drawn with another seed: never seen in training."""
    return make_corpus(
        tmp_path_factory.mktemp("held_out"), pages=12, seed=1, width=400, height=600, series=2
    )
