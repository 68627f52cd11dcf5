"""`python -m analyzer.report`: the command line."""

from __future__ import annotations

from pathlib import Path

import click

from dataspec import DataSpecError, discover, load
from dataspec.io import atomic_write_bytes

from .data import read_csv
from .document import build_report
from .pages import Assets
from .train_section import read_eval, read_run

__all__ = ["index_pages", "main"]


def index_pages(dataspec_list: str | None) -> dict[str, Path]:
    """`page_image_path` → DataSpec file, for the files of an emitted list or folder."""
    if not dataspec_list:
        return {}
    out: dict[str, Path] = {}
    for path in discover(dataspec_list):
        try:
            out[load(path).page_image_path] = path
        except DataSpecError as exc:
            click.echo(f"warning: {exc}", err=True)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("analysis_csv", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--skips", type=click.Path(exists=True, dir_okay=False), help="--dataspec_debug_skips_out CSV."
)
@click.option(
    "--dataspec_list",
    "--dataspec-list",
    help="Emitted pages (list file or folder): drawn with their panels.",
)
@click.option("--image_root", "--image-root", help="Image root for relative page paths.")
@click.option(
    "--min_text_coverage",
    "--min-text-coverage",
    type=click.FloatRange(0, 1),
    help="The analyzer's --min_text_coverage [default: the one the CSV's scores were "
    "computed with, else 0.5].",
)
@click.option(
    "--samples", default=6, show_default=True, help="Thumbnails per subset and per skip reason."
)
@click.option(
    "--least_confident",
    "--least-confident",
    default=12,
    show_default=True,
    type=click.IntRange(min=0),
    help="Least confident emitted pages drawn in the Pairing section.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Training run folder (python -m training --output_dir): curves from its metrics.jsonl.",
)
@click.option(
    "--eval",
    "eval_report",
    type=click.Path(exists=True, dir_okay=False),
    help="Evaluation report (python -m training.evaluate --report): its metrics.",
)
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="HTML file to write; full-size renders go to <stem>_files/ beside it.",
)
def main(
    analysis_csv: str,
    skips: str | None,
    dataspec_list: str | None,
    image_root: str | None,
    min_text_coverage: float | None,
    samples: int,
    least_confident: int,
    run_dir: str | None,
    eval_report: str | None,
    out: str,
) -> None:
    """Write one offline HTML report of an analyzer run (and of a training run)."""
    rows = read_csv(analysis_csv)
    skip_rows = read_csv(skips) if skips else []
    run = read_run(run_dir) if run_dir else None
    evaluation = read_eval(eval_report) if eval_report else None
    for problem in (run.problems if run else [])[:5]:
        click.echo(f"warning: {run_dir}/metrics.jsonl: {problem}", err=True)
    if evaluation is not None and evaluation.problem:
        click.echo(f"warning: {eval_report}: {evaluation.problem}", err=True)
    inputs = [
        (what, path)
        for what, path in (
            ("analysis CSV", analysis_csv),
            ("skip log", skips),
            ("DataSpec pages", dataspec_list),
            ("image root", image_root),
            ("training run", run_dir),
            ("evaluation", eval_report),
        )
        if path
    ]
    assets = Assets(out)
    document = build_report(
        rows,
        skip_rows,
        pages=index_pages(dataspec_list),
        image_root=image_root,
        min_coverage=min_text_coverage,
        samples=samples,
        least_confident_pages=least_confident,
        title=f"analyzer report: {Path(analysis_csv).name}",
        assets=assets,
        run=run,
        evaluation=evaluation,
        inputs=inputs,
    )
    atomic_write_bytes(out, document.encode("utf-8"))  # after the renders it links to
    assets.prune()
    renders = f", {len(assets.written)} renders in {assets.folder}" if assets.written else ""
    click.echo(f"wrote {out} ({len(rows)} pages, {len(skip_rows)} skips{renders})")
