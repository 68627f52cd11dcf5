"""Canonical DataSpec pages written from a sample corpus's truth (tests, benchmarks, smoke runs).

One page per image, from ``truth.jsonl``: the true panel boxes and their lettered text. The
pages vary the way real corpora do: a third keep the panels in reading order without
``reading_order``, a third shuffle the panels and give ``reading_order`` (with
``reading_order_source: "truth"``), a third shuffle them and leave the order to dataspec's
layout heuristic (no ``reading_order``, so no source either); image paths are absolute,
relative to the image root, or Windows paths (``E:\\CalibreComics_extracted\\...``) that
dataspec resolves. ``python -m training.synthetic`` is the command line of this module.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_write_bytes, dump
from ..models import Page, PageSize, Panel, PanelText
from .corpus import RTL_SHARE, generate_corpus
from .truth import COCO_ROOT

__all__ = ["SyntheticCorpus", "make_corpus", "write_pages"]

VARIANTS = ("in_order", "reading_order", "heuristic")
"""Page variants, taken in turn: list order, shuffled with ``reading_order``, shuffled."""


@dataclass(frozen=True)
class SyntheticCorpus:
    """Where `make_corpus` put things."""

    image_root: Path
    pages_dir: Path
    list_file: Path
    pages: list[Path]


def write_pages(sample_root: Path, out_dir: Path, *, seed: int = 0) -> list[Path]:
    """Canonical DataSpec pages from ``sample_root/truth.jsonl``; returns their paths."""
    rng = random.Random(f"pages:{seed}")
    images = (sample_root / "images").resolve()
    written: list[Path] = []
    lines = (sample_root / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    for k, line in enumerate(lines):
        rec = json.loads(line)
        truth = [
            Panel(
                panel_coords=tuple(p["bbox"]),
                text=PanelText(dialogue=p["dialogue"], narration=p["narration"], sfx=p["sfx"]),
            )
            for p in rec["panels"]
        ]
        perm = list(range(len(truth)))
        variant = VARIANTS[k % 3]
        if variant != "in_order":
            rng.shuffle(perm)
        panels = [truth[i] for i in perm]
        reading_order = None
        if variant == "reading_order":
            where = {t: j for j, t in enumerate(perm)}
            reading_order = [where[t] for t in range(len(truth))]
        rel = rec["image"]
        style = k % 4
        if style == 0:
            image_path = str(images / rel)
        elif style == 2:
            image_path = COCO_ROOT + "\\" + rel.replace("/", "\\")
        else:
            image_path = rel
        page = Page(
            page_image_path=image_path,
            panels=panels,
            reading_order=reading_order,
            reading_order_source="truth" if reading_order is not None else None,
            page_size=PageSize(width=rec["width"], height=rec["height"]) if k % 2 == 0 else None,
        )
        target = out_dir / Path(rel).with_suffix(".json")
        dump(page, target)
        written.append(target)
    return sorted(written)


def make_corpus(
    out: str | Path,
    *,
    pages: int = 300,
    seed: int = 0,
    width: int = 800,
    height: int = 1200,
    series: int | None = None,
    rtl_share: float = RTL_SHARE,
) -> SyntheticCorpus:
    """Generate page images (under ``out/sample``) and their DataSpec pages (``out/pages``,
    listed in ``out/pages.txt``)."""
    root = Path(out)
    sample = generate_corpus(
        root / "sample",
        pages=pages,
        seed=seed,
        width=width,
        height=height,
        series=series,
        rtl_share=rtl_share,
    )
    paths = write_pages(sample.root, root / "pages", seed=seed)
    list_file = root / "pages.txt"
    atomic_write_bytes(list_file, "".join(f"{p.resolve()}\n" for p in paths).encode())
    return SyntheticCorpus(sample.images_dir.resolve(), root / "pages", list_file, paths)
