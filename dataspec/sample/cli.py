"""``python -m dataspec.sample OUT``: the click command over `generate_corpus`."""

from __future__ import annotations

from pathlib import Path

import click

from .corpus import RTL_SHARE, SCHEMA_CHOICES, SchemaChoice, generate_corpus


@click.command(
    name="sample",
    context_settings={
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    },
)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pages", default=200, type=click.IntRange(min=1), help="Pages to generate.")
@click.option("--seed", default=0, type=int, help="Random seed: the same seed, the same files.")
@click.option("--width", default=800, type=click.IntRange(min=300), help="Page width in pixels.")
@click.option("--height", default=1200, type=click.IntRange(min=400), help="Page height in pixels.")
@click.option(
    "--series",
    default=None,
    type=click.IntRange(min=1),
    show_default="max(3, pages // 25)",
    help="Number of series.",
)
@click.option(
    "--schema",
    default="mixed",
    type=click.Choice(SCHEMA_CHOICES),
    help="VLM reply schema of every series (mixed: about half the pages in each).",
)
@click.option(
    "--rtl-share",
    default=RTL_SHARE,
    type=click.FloatRange(0.0, 1.0),
    help="Share of series read right to left (manga-like look).",
)
@click.option(
    "--disagreement/--no-disagreement",
    default=True,
    help="Detector and VLM disagree as real ones do (off: they mostly agree).",
)
def main(
    out: Path,
    pages: int,
    seed: int,
    width: int,
    height: int,
    series: int | None,
    schema: SchemaChoice,
    rtl_share: float,
    disagreement: bool,
) -> None:
    """Generate a deterministic synthetic comic corpus under the folder OUT (images,
    predictions.json, vlm/, truth.jsonl)."""
    c = generate_corpus(
        out,
        pages=pages,
        seed=seed,
        width=width,
        height=height,
        series=series,
        schema=schema,
        rtl_share=rtl_share,
        disagreement=disagreement,
    )
    click.echo(f"pages:       {c.pages}")
    click.echo(f"images:      {c.images_dir}")
    click.echo(f"predictions: {c.coco_path}")
    click.echo(f"vlm:         {c.vlm_dir}")
    click.echo(f"truth:       {c.truth_path}")
