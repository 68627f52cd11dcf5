"""`python -m analyzer`: the runbook's command line, a thin layer over `analyzer.run`.

Every flag has its underscore spelling (as in the runbook) and its hyphen spelling.
Flag conflicts are usage errors (exit 2); input that cannot be used is an error naming
the file (exit 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.core import ParameterSource

from dataspec.paths import split_roots

from .emit import MIN_CONFIDENCE, SKIP_REASONS
from .options import EmitOptions, Options
from .run import RunError, run
from .score import SUBSETS

__all__ = ["analyze", "flag", "invoke", "main", "parse_shard"]

F = Callable[..., Any]


def flag(name: str, *, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """`click.option` declared as `--name` and `--name-with-hyphens`."""
    decls = [f"--{name}"]
    if "_" in name:
        decls.append(f"--{name.replace('_', '-')}")
    return click.option(*decls, dest or name, **kwargs)


def parse_shard(value: str | None) -> tuple[int, int] | None:
    """`I/N` → (I, N) with 0 ≤ I < N; None stays None."""
    if value is None:
        return None
    try:
        index_text, count_text = value.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not I/N (e.g. 0/16)", param_hint="--shard"
        ) from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: need 0 <= I < N", param_hint="--shard")
    return index, count


def _given(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


_EMIT_ONLY = (
    "dataspec_out_dir",
    "dataspec_min_det_score",
    "dataspec_min_pair_confidence",
    "dataspec_require_equal_counts",
    "require_image_exists",
    "dataspec_allow_missing_images",
    "dataspec_naming",
    "dataspec_list_out",
    "dataspec_debug_skips_out",
    "dataspec_limit",
    "dataspec_keep_unpaired",
)


def _check(ctx: click.Context, p: dict[str, Any]) -> None:
    """Flag conflicts → `click.UsageError` (exit 2)."""
    if not p["vlm_dir"] and not p["vlm_map"]:
        raise click.UsageError("give --vlm_dir, --vlm_map or both")
    if p["manifest"] and not p["vlm_dir"]:
        raise click.UsageError(
            "--manifest names analyses as <canonical_id>.json under --vlm_dir: give --vlm_dir"
        )
    if p["fast_only"] and p["allow_partial_match"]:
        raise click.UsageError(
            "--fast_only turns off the fuzzy tier that --allow_partial_match asks for"
        )
    every = p["emit_dataspec_everything"] or p["emit_dataspec_all"]
    if every and p["emit_dataspec_for"]:
        raise click.UsageError(
            "--emit_dataspec_for selects subsets; --emit_dataspec_everything/--emit_dataspec_all "
            "select every matched page: give one of them"
        )
    emitting = every or bool(p["emit_dataspec_for"])
    if emitting and not p["dataspec_out_dir"]:
        raise click.UsageError("DataSpec emission needs --dataspec_out_dir")
    if not emitting:
        stray = [f"--{n}" for n in _EMIT_ONLY if _given(ctx, n)]
        if stray:
            raise click.UsageError(
                f"{', '.join(stray)} only apply to DataSpec emission: add "
                "--emit_dataspec_everything, --emit_dataspec_all or --emit_dataspec_for TIER"
            )
    if p["require_image_exists"] and p["dataspec_allow_missing_images"]:
        raise click.UsageError(
            "--require_image_exists and --dataspec_allow_missing_images contradict each other"
        )
    lists = p["emit_all_json_lists"] or bool(p["emit_json_list"])
    if not lists:
        stray = [f"--{n}" for n in ("json_list_out", "json_require_exists") if _given(ctx, n)]
        if stray:
            raise click.UsageError(
                f"{', '.join(stray)} only apply to the subset lists: add --emit_json_list TIER "
                "or --emit_all_json_lists"
            )
    n_lists = len(SUBSETS) if p["emit_all_json_lists"] else len(set(p["emit_json_list"]))
    out = p["json_list_out"]
    if out and out.lower().endswith(".txt") and n_lists > 1:
        raise click.UsageError(
            "--json_list_out FILE.txt holds one subset's list; give a folder for several"
        )


_SKIP_HELP = ", ".join(SKIP_REASONS)


@click.command(
    name="analyzer",
    context_settings={
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    },
)
@flag("coco", required=True, help="Detector predictions (COCO dict or results list).")
@flag("vlm_dir", help="Folder of per-page VLM JSONs (searched recursively).")
@flag("vlm_map", help="JSON map image path → VLM JSON path (either direction) or a list.")
@flag(
    "manifest",
    help="CSV canonical_id,absolute_image_path: images of <canonical_id>.json analyses.",
)
@flag("image_roots", multiple=True, help="Image root(s), comma/semicolon separated; repeatable.")
@flag("output_csv", required=True, help="Per-page analysis CSV.")
@flag(
    "num_workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes (capped at the CPU count).",
)
@flag("fast_only", is_flag=True, help="No fuzzy matching (the default unless asked for).")
@flag("allow_partial_match", is_flag=True, help="Add the fuzzy series tier.")
@flag("panel_category_id", type=int, multiple=True, help="Panel category id; repeatable.")
@flag("panel_category_names", multiple=True, help="Panel category names, comma separated.")
@flag(
    "text_category_id",
    type=int,
    multiple=True,
    help="Lettered-text (text, balloon) category id; repeatable [default: by name, else 3 and 4].",
)
@flag("text_category_names", multiple=True, help="Lettered-text category names, comma separated.")
@flag(
    "min_det_score",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Detections counted in rcnn_panels (the CSV).",
)
@flag(
    "min_text_coverage",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Text coverage for the full score point and for perfect_with_text.",
)
@flag("caption_as_narration", is_flag=True, help="Read a VLM panel's `caption` as narration.")
@flag(
    "emit_json_list",
    type=click.Choice(SUBSETS),
    multiple=True,
    help="Write the VLM JSON and image lists of a subset; repeatable.",
)
@flag("emit_all_json_lists", is_flag=True, help="Write the lists of every subset.")
@flag("json_list_out", help="Folder for the lists (or FILE.txt for a single subset).")
@flag("json_require_exists", is_flag=True, help="Lists hold only VLM JSONs that exist on disk.")
@flag("emit_dataspec_everything", is_flag=True, help="Write a DataSpec file per matched page.")
@flag("emit_dataspec_all", is_flag=True, help="Same as --emit_dataspec_everything.")
@flag(
    "emit_dataspec_for",
    type=click.Choice(SUBSETS),
    multiple=True,
    help="Write DataSpec files for the pages of a subset; repeatable.",
)
@flag("dataspec_out_dir", help="Where DataSpec files go.")
@flag(
    "dataspec_min_det_score",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Detections used as panels.",
)
@flag(
    "dataspec_min_pair_confidence",
    type=click.FloatRange(0, 1),
    default=MIN_CONFIDENCE,
    show_default=True,
    help="Least confidence of a detection/VLM panel pair for its text to go on the panel.",
)
@flag(
    "dataspec_require_equal_counts",
    is_flag=True,
    help="Skip pages whose detection and VLM panel counts differ.",
)
@flag("require_image_exists", is_flag=True, help="Skip pages whose image is not found.")
@flag(
    "dataspec_allow_missing_images",
    is_flag=True,
    help="Write pages whose image is not found, with the path as given (the default).",
)
@flag(
    "dataspec_naming",
    type=click.Choice(["preserve_tree", "hash"]),
    default="preserve_tree",
    show_default=True,
    help="Output file names.",
)
@flag("dataspec_list_out", help="Text file listing every DataSpec file written.")
@flag("dataspec_debug_skips_out", help=f"CSV of skipped pages with a reason: {_SKIP_HELP}.")
@flag("dataspec_limit", type=click.IntRange(min=1), help="Write at most this many files.")
@flag(
    "dataspec_keep_unpaired",
    is_flag=True,
    help="Write pages with no confident detection/VLM pair too (panels of unknown text).",
)
@flag("emit_vlm_map", help="Write a JSON map image path → VLM JSON of the matched pages.")
@flag("limit", type=click.IntRange(min=1), help="Process only the first N pages (page order).")
@flag("shard", help="Run slice I of N (0-based, e.g. 3/16); join shards with analyzer.merge.")
@flag("ambiguities_out", help="Ambiguities CSV [default: <output_csv>_ambiguities.csv].")
@flag("errors_out", help="Bad-input CSV [default: <output_csv>_errors.csv].")
@click.option(
    "--progress/--no_progress",
    " /--no-progress",
    "progress",
    default=True,
    help="Progress bars on stderr.",
)
@click.pass_context
def analyze(ctx: click.Context, **p: Any) -> None:
    """Join detector panels with VLM panel text: a per-page CSV, subset lists, DataSpec files."""
    _check(ctx, p)
    shard = parse_shard(p["shard"])
    every = p["emit_dataspec_everything"] or p["emit_dataspec_all"]
    emit = None
    if every or p["emit_dataspec_for"]:
        emit = EmitOptions(
            out_dir=p["dataspec_out_dir"],
            subsets=None if every else frozenset(p["emit_dataspec_for"]),
            min_det_score=p["dataspec_min_det_score"],
            min_pair_confidence=p["dataspec_min_pair_confidence"],
            require_equal_counts=p["dataspec_require_equal_counts"],
            require_image=p["require_image_exists"],
            keep_unpaired=p["dataspec_keep_unpaired"],
            naming=p["dataspec_naming"],
            limit=p["dataspec_limit"],
            list_out=p["dataspec_list_out"],
            skips_out=p["dataspec_debug_skips_out"],
        )
    names = tuple(n.strip() for v in p["panel_category_names"] for n in v.split(",") if n.strip())
    text_names = tuple(
        n.strip() for v in p["text_category_names"] for n in v.split(",") if n.strip()
    )
    lists = SUBSETS if p["emit_all_json_lists"] else tuple(dict.fromkeys(p["emit_json_list"]))
    opts = Options(
        coco=p["coco"],
        output_csv=p["output_csv"],
        vlm_dir=p["vlm_dir"],
        vlm_map=p["vlm_map"],
        manifest=p["manifest"],
        image_roots=tuple(split_roots(list(p["image_roots"]))),
        num_workers=p["num_workers"],
        fuzzy=p["allow_partial_match"],
        panel_category_ids=tuple(p["panel_category_id"]),
        panel_category_names=names,
        text_category_ids=tuple(p["text_category_id"]),
        text_category_names=text_names,
        min_det_score=p["min_det_score"],
        min_text_coverage=p["min_text_coverage"],
        caption_as_narration=p["caption_as_narration"],
        json_lists=lists,
        json_list_out=p["json_list_out"],
        json_require_exists=p["json_require_exists"],
        emit=emit,
        emit_vlm_map=p["emit_vlm_map"],
        limit=p["limit"],
        shard=shard,
        ambiguities_out=p["ambiguities_out"],
        errors_out=p["errors_out"],
        progress=p["progress"],
    )
    if p["require_image_exists"] and not opts.image_roots:
        click.echo(
            "warning: --require_image_exists without --image_roots: only absolute "
            "image paths can be found",
            err=True,
        )
    try:
        summary = run(opts)
    except RunError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in summary.lines():
        click.echo(line)
    for path in summary.written:
        click.echo(f"wrote {os.path.abspath(path)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv); returns the exit status."""
    return invoke(analyze, argv, "python -m analyzer")


def invoke(command: click.Command, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a click command as a function: errors shown as click shows them, status returned."""
    try:
        command.main(
            args=list(argv) if argv is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return 0
