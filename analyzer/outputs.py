"""Output stage of the main process: every file a run writes besides the DataSpec pages.

The CSV's columns, the subset lists (written as results come in), the ambiguities and
errors CSVs, the DataSpec list, the skip log and the VLM map (written at the end, in page
order), their names, and the removal of temp files a killed run left beside them.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO, NamedTuple

import orjson

from dataspec.io import atomic_open, atomic_write_bytes

from .coco import CocoPages
from .match import AMBIGUITY_COLUMNS, MatchResult
from .options import Options, Summary
from .page_files import (
    UnsafeOutputError,
    begin_output_run,
    end_output_run,
    inside,
    remove_stale_temps,
)
from .problems import PROBLEM_COLUMNS, Problem, shard_path, write_csv
from .work import PageResult

__all__ = [
    "CSV_COLUMNS",
    "SKIP_COLUMNS",
    "Lists",
    "Outcome",
    "list_paths",
    "outcome_of",
    "remove_run_temps",
    "side_outputs",
    "side_path",
    "write_side_files",
]

CSV_COLUMNS = (
    "image_id",
    "image_path",
    "resolved_image_path",
    "image_exists",
    "vlm_json_path",
    "vlm_key",
    "has_vlm_data",
    "rcnn_panels",
    "vlm_panels",
    "panel_count_ratio",
    "text_coverage",
    "vlm_panels_with_text",
    "vlm_text_dialogue_panels",
    "vlm_text_narration_panels",
    "vlm_text_sfx_panels",
    "quality_score",
    "is_perfect_match",
    "match_tier",
    "vlm_repairs",
    "vlm_truncated",
    "pairing_method",
    "pairing_confidence",
    "unpaired_detections",
    "unpaired_vlm_panels",
)
SKIP_COLUMNS = (
    "image_id",
    "image_path",
    "resolved_image_path",
    "vlm_json_path",
    "reason",
    "rcnn_count",
    "vlm_count",
)


class Outcome(NamedTuple):
    """What emission did with one matched page (kept until the skip log is written)."""

    page: int
    resolved: str
    vlm_path: str
    outcome: str
    output: str | None
    rcnn_count: int
    vlm_count: int


def outcome_of(r: PageResult, outcome: str | None = None) -> Outcome:
    """The `Outcome` of a page result; `outcome` replaces the result's own."""
    return Outcome(
        r.page,
        r.row[2],
        r.vlm_path,
        outcome or r.outcome or "",
        r.output,
        r.rcnn_count,
        r.vlm_count,
    )


class Lists:
    """The subset lists (`--emit_json_list`): VLM JSON paths and image paths per subset."""

    def __init__(self, opts: Options, stack: contextlib.ExitStack) -> None:
        self.require = opts.json_require_exists
        self.files: dict[str, tuple[IO[str], IO[str]]] = {}
        self.paths: list[str] = []
        for name in opts.json_lists:
            matches, images = (shard_path(p, opts.shard) for p in list_paths(opts, name))
            self.files[name] = (
                stack.enter_context(atomic_open(matches, "w", newline="\n")),
                stack.enter_context(atomic_open(images, "w", newline="\n")),
            )
            self.paths += [matches, images]

    def add(self, result: PageResult) -> None:
        """List a matched page in each of its subsets that has a list."""
        if not result.matched or (self.require and not os.path.isfile(result.vlm_path)):
            return
        for name in result.subsets:
            handles = self.files.get(name)
            if handles is not None:
                handles[0].write(result.vlm_path + "\n")
                handles[1].write(result.image + "\n")


def list_paths(opts: Options, subset: str) -> tuple[str, str]:
    """(VLM JSON list, image list) of one subset.

    Default: `<csv stem>_<subset>_matches.txt` and `<csv stem>_<subset>_images.txt` beside
    the CSV; `--json_list_out DIR` puts them in DIR; `--json_list_out FILE.txt` (one subset
    only) names the VLM list, the image list being `FILE_images.txt`.
    """
    out = opts.json_list_out
    if out is not None and out.lower().endswith(".txt"):
        return out, f"{out[: -len('.txt')]}_images.txt"
    folder = out if out is not None else os.path.dirname(os.path.abspath(opts.output_csv))
    stem = os.path.splitext(os.path.basename(opts.output_csv))[0]
    return (
        os.path.join(folder, f"{stem}_{subset}_matches.txt"),
        os.path.join(folder, f"{stem}_{subset}_images.txt"),
    )


def side_path(output_csv: str, suffix: str) -> str:
    """`dir/x.csv` → `dir/x_<suffix>` (the ambiguities and errors CSVs)."""
    base, _ = os.path.splitext(output_csv)
    return f"{base}_{suffix}"


def side_outputs(opts: Options) -> list[str]:
    """Every file of a run besides the DataSpec pages (shard names when sharded)."""
    paths = [
        opts.output_csv,
        opts.ambiguities_out or side_path(opts.output_csv, "ambiguities.csv"),
        opts.errors_out or side_path(opts.output_csv, "errors.csv"),
    ]
    for name in opts.json_lists:
        paths += list_paths(opts, name)
    if opts.emit is not None:
        paths += [p for p in (opts.emit.list_out, opts.emit.skips_out) if p]
    if opts.emit_vlm_map:
        paths.append(opts.emit_vlm_map)
    return [shard_path(p, opts.shard) for p in paths]


def remove_run_temps(opts: Options, targets: list[str]) -> None:
    """Remove the temp files a killed run of this command left beside its outputs.

    Page files count only in folders of the out tree that are safe to write to (no
    symlink on the way): nothing outside the out dir is ever removed.
    """
    paths = side_outputs(opts)
    if opts.emit is not None and os.path.isdir(opts.emit.out_dir):  # else none can be there
        folders: dict[str, list[str]] = {}
        for rel in targets:
            folders.setdefault(rel.rpartition("/")[0], []).append(rel)
        begin_output_run()  # each folder of the out tree checked once
        try:
            for rels in folders.values():
                try:
                    inside(opts.emit.out_dir, rels[0])
                except UnsafeOutputError:
                    continue
                paths += [os.path.join(opts.emit.out_dir, *rel.split("/")) for rel in rels]
        finally:
            end_output_run()
    remove_stale_temps(paths)


def write_side_files(
    opts: Options,
    coco: CocoPages,
    match: MatchResult,
    rank: dict[int, int],
    first_shard: bool,
    problems: list[Problem],
    outcomes: dict[int, Outcome],
    vlm_map: dict[str, str],
    summary: Summary,
) -> None:
    """Ambiguities, errors, DataSpec list, skip log and VLM map, all in page order."""
    page_rows = sorted((a for a in match.ambiguities if a.page in rank), key=lambda a: rank[a.page])
    rows = [a.row() for a in page_rows]
    if first_shard:
        rows += [a.row() for a in match.series_twins]
    summary.ambiguities = len(rows)
    amb_path = shard_path(
        opts.ambiguities_out or side_path(opts.output_csv, "ambiguities.csv"), opts.shard
    )
    err_path = shard_path(opts.errors_out or side_path(opts.output_csv, "errors.csv"), opts.shard)
    write_csv(amb_path, AMBIGUITY_COLUMNS, rows)
    write_csv(err_path, PROBLEM_COLUMNS, problems)
    summary.written += [amb_path, err_path]
    emit = opts.emit
    ordered = [outcomes[i] for i in sorted(outcomes, key=lambda i: rank[i])]
    if emit is not None and emit.list_out:
        path = shard_path(emit.list_out, opts.shard)
        with atomic_open(path, "w", newline="\n") as fh:
            for o in ordered:
                if o.outcome == "emitted" and o.output:
                    fh.write(o.output + "\n")
        summary.written.append(path)
    if emit is not None and emit.skips_out:
        path = shard_path(emit.skips_out, opts.shard)
        skips = (
            (
                str(coco.ids[o.page]),
                coco.paths[o.page],
                o.resolved,
                o.vlm_path,
                o.outcome,
                o.rcnn_count,
                o.vlm_count,
            )
            for o in ordered
            if o.outcome != "emitted"
        )
        write_csv(path, SKIP_COLUMNS, skips)
        summary.written.append(path)
    if opts.emit_vlm_map:
        path = shard_path(opts.emit_vlm_map, opts.shard)
        data = orjson.dumps(vlm_map, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        atomic_write_bytes(path, data + b"\n")
        summary.written.append(path)
