"""A synthetic DataSpec corpus for tests, benchmarks and smoke runs.

    python -m training.synthetic OUT --pages 300 --seed 0

Draws page JPEGs with `dataspec.sample.generate_corpus` (under OUT/sample/images) and
writes one canonical DataSpec page per image from the generator's ground truth (under
OUT/pages/<Series>/JPG4CBZ/0001.json, plus the list OUT/pages.txt). The pages vary the
way real corpora do: a third keep panels in reading order without `reading_order`, a
third shuffle the panels and give `reading_order` (source `truth`), a third shuffle them
and leave the order to dataspec's layout heuristic; image paths are absolute, relative to
the image root, or Windows paths (`E:\\CalibreComics_extracted\\...`) that dataspec resolves.
About 40% of the series read right to left.
"""

from __future__ import annotations

from pathlib import Path

import click

from dataspec.sample.corpus import RTL_SHARE
from dataspec.sample.pages import SyntheticCorpus, make_corpus, write_pages

from .cli import CONTEXT, doc_help, flag, invoke, path_type

__all__ = ["SyntheticCorpus", "command", "main", "make_corpus", "write_pages"]


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
@flag(
    "rtl_share",
    type=click.FloatRange(0.0, 1.0),
    default=RTL_SHARE,
    help="Share of series read right to left (manga-like).",
)
def command(
    out: Path, pages: int, seed: int, width: int, height: int, series: int | None, rtl_share: float
) -> int:
    corpus = make_corpus(
        out,
        pages=pages,
        seed=seed,
        width=width,
        height=height,
        series=series,
        rtl_share=rtl_share,
    )
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
