"""Helpers for the analyzer tests: corpus copies, CSV and truth readers, common flags."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from dataspec.sample import SampleCorpus


def copy_corpus(corpus: SampleCorpus, dest: Path) -> SampleCorpus:
    """A private copy of a corpus under `dest`."""
    shutil.copytree(corpus.root, dest)
    return dataclasses.replace(
        corpus,
        root=dest,
        images_dir=dest / "images",
        coco_path=dest / "predictions.json",
        vlm_dir=dest / "vlm",
        truth_path=dest / "truth.jsonl",
    )


def read_csv(path: Path | str) -> list[dict[str, str]]:
    """Rows of a CSV as dicts."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def truth(corpus: SampleCorpus) -> dict[str, dict[str, Any]]:
    """Truth records by image path relative to images/."""
    lines = corpus.truth_path.read_text("utf-8").splitlines()
    return {rec["image"]: rec for rec in map(json.loads, lines)}


def coco(corpus: SampleCorpus) -> dict[str, Any]:
    """The corpus's predictions file, parsed."""
    data: dict[str, Any] = json.loads(corpus.coco_path.read_text("utf-8"))
    return data


def write_coco(corpus: SampleCorpus, data: dict[str, Any]) -> None:
    """Replace the corpus's predictions file."""
    corpus.coco_path.write_text(json.dumps(data), encoding="utf-8")


def base_args(corpus: SampleCorpus, out: Path) -> list[str]:
    """The common flags of a run over `corpus` writing under `out`."""
    return [
        "--coco",
        str(corpus.coco_path),
        "--vlm_dir",
        str(corpus.vlm_dir),
        "--image_roots",
        str(corpus.images_dir),
        "--output_csv",
        str(out / "analysis.csv"),
    ]
