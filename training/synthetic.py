"""A synthetic DataSpec corpus for tests, benchmarks and smoke runs.

    python -m training.synthetic OUT --pages 300 --seed 0

Draws page JPEGs with `dataspec.sample.generate_corpus` (under OUT/sample/images) and
writes one canonical DataSpec page per image from the generator's ground truth (under
OUT/pages/<Series>/JPG4CBZ/0001.json, plus the list OUT/pages.txt). The pages vary the
way real corpora do: a third keep panels in reading order without `reading_order`, a
third shuffle the panels and give `reading_order`, a third shuffle them and leave the
order to dataspec's layout heuristic; image paths are absolute, relative to the image
root, or Windows paths (`E:\\CalibreComics_extracted\\...`) that dataspec resolves.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import click

import dataspec
from dataspec.io import atomic_write_bytes

from .cli import CONTEXT, doc_help, flag, invoke, path_type


@dataclass(frozen=True)
class SyntheticCorpus:
    """Where `make_corpus` put things."""

    image_root: Path
    pages_dir: Path
    list_file: Path
    pages: list[Path]


def write_pages(sample_root: Path, out_dir: Path, *, seed: int = 0) -> list[Path]:
    """Canonical DataSpec pages from `sample_root/truth.jsonl`; returns their paths."""
    rng = random.Random(f"pages:{seed}")
    images = (sample_root / "images").resolve()
    written: list[Path] = []
    lines = (sample_root / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    for k, line in enumerate(lines):
        rec = json.loads(line)
        truth = [
            dataspec.Panel(
                panel_coords=tuple(p["bbox"]),
                text=dataspec.PanelText(
                    dialogue=p["dialogue"], narration=p["narration"], sfx=p["sfx"]
                ),
            )
            for p in rec["panels"]
        ]
        perm = list(range(len(truth)))
        variant = k % 3
        if variant:
            rng.shuffle(perm)
        panels = [truth[i] for i in perm]
        reading_order = None
        if variant == 1:
            where = {t: j for j, t in enumerate(perm)}
            reading_order = [where[t] for t in range(len(truth))]
        rel = rec["image"]
        style = k % 4
        if style == 0:
            image_path = str(images / rel)
        elif style == 2:
            image_path = "E:\\CalibreComics_extracted\\" + rel.replace("/", "\\")
        else:
            image_path = rel
        page = dataspec.Page(
            page_image_path=image_path,
            panels=panels,
            reading_order=reading_order,
            page_size=dataspec.PageSize(width=rec["width"], height=rec["height"])
            if k % 2 == 0
            else None,
        )
        target = out_dir / Path(rel).with_suffix(".json")
        dataspec.dump(page, target)
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
) -> SyntheticCorpus:
    """Generate page images and their DataSpec pages under `out`."""
    from dataspec.sample import generate_corpus

    root = Path(out)
    sample = generate_corpus(
        root / "sample", pages=pages, seed=seed, width=width, height=height, series=series
    )
    paths = write_pages(sample.root, root / "pages", seed=seed)
    list_file = root / "pages.txt"
    atomic_write_bytes(list_file, "".join(f"{p.resolve()}\n" for p in paths).encode())
    return SyntheticCorpus(sample.images_dir.resolve(), root / "pages", list_file, paths)


@click.command(name="training.synthetic", help=doc_help(__doc__), context_settings=CONTEXT)
@click.argument("out", type=path_type(file_okay=False))
@flag("pages", type=click.IntRange(min=1), default=300, help="Pages to draw.")
@flag("seed", type=int, default=0, help="Seeds the drawing and the page variants.")
@flag("width", type=int, default=800, help="Page width in pixels.")
@flag("height", type=int, default=1200, help="Page height in pixels.")
@flag(
    "series",
    type=click.IntRange(min=1),
    default=None,
    help="Number of series (books) [default: max(3, pages // 25)].",
)
def command(out: Path, pages: int, seed: int, width: int, height: int, series: int | None) -> int:
    corpus = make_corpus(out, pages=pages, seed=seed, width=width, height=height, series=series)
    print(f"image_root:     {corpus.image_root}")
    print(f"json_dir:       {corpus.pages_dir}")
    print(f"json_list_file: {corpus.list_file}")
    print(f"pages:          {len(corpus.pages)}")
    return 0  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.synthetic` with `argv`: write a corpus, print where."""
    return invoke(command, argv, "python -m training.synthetic")


if __name__ == "__main__":
    raise SystemExit(main())
