"""Orchestration: load, match, process pages in parallel chunks, write every output.

The main process loads the detections and the VLM index, matches pages, and cuts the
pages (sorted by image path, so the order never depends on the input order or on the
number of workers) into chunks. A worker gets only its chunk: per page the image id and
path, size, matched VLM path, output name, and the page's panel boxes and scores as
arrays. Workers read VLM JSONs, resolve images, score pages and write DataSpec files;
the main process writes the CSV and lists in page order as chunks come back.

The stages live in their own modules: `analyzer.pool` (page order, shard, output names,
chunks, the worker pool), `analyzer.page` (the worker side: one page's row and DataSpec
file; what it is handed and hands back is `analyzer.work`) and `analyzer.outputs` (the
CSV columns and every file besides the pages). The run's options and summary are
`analyzer.options`. This module glues the stages together.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import click

from dataspec.errors import DataSpecError
from dataspec.io import atomic_open
from dataspec.keys import page_key

from .coco import CocoError, CocoPages, load_coco
from .manifest import Manifest, ManifestError, load_manifest
from .match import MatchResult, match_pages
from .options import Options, Summary
from .outputs import (
    CSV_COLUMNS,
    SKIP_COLUMNS,
    Lists,
    Outcome,
    list_paths,
    outcome_of,
    remove_run_temps,
    side_path,
    write_side_files,
)
from .pairing import book_of
from .pool import Executor, Plan, output_targets, shard_slice, sort_key
from .problems import Problem, echo_problems, shard_path
from .vlm import MapEntry, VlmFile, load_vlm_map, scan_vlm_dir, vlm_dir_problem
from .work import PageResult, WorkerConfig

__all__ = [
    "CSV_COLUMNS",
    "SKIP_COLUMNS",
    "RunError",
    "list_paths",
    "run",
    "side_path",
]


class RunError(Exception):
    """A run cannot go on (unusable predictions file, VLM folder, VLM map or manifest)."""


def _bar(enabled: bool, length: int, label: str) -> Any:
    """A click progress bar on stderr, or a context giving None when disabled."""
    if not enabled or length <= 0:
        return contextlib.nullcontext(None)
    return click.progressbar(length=length, label=label, file=sys.stderr)


def _check_inputs(opts: Options) -> None:
    """The VLM folder, map and manifest are there: checked before the (long) COCO read."""
    if opts.vlm_dir is not None:
        why = vlm_dir_problem(opts.vlm_dir)
        if why is not None:
            raise RunError(f"{opts.vlm_dir}: --vlm_dir: {why}")
    for flag, path in (("--vlm_map", opts.vlm_map), ("--manifest", opts.manifest)):
        if path is not None and not os.path.isfile(path):
            why = "not a file" if os.path.exists(path) else "no such file"
            raise RunError(f"{path}: {flag}: {why}")


def _load(opts: Options) -> CocoPages:
    size = os.path.getsize(opts.coco) if os.path.isfile(opts.coco) else 0
    try:
        with _bar(opts.progress, size, "reading detections") as bar:
            coco = load_coco(
                opts.coco,
                category_ids=opts.panel_category_ids,
                category_names=opts.panel_category_names,
                text_category_ids=opts.text_category_ids,
                text_category_names=opts.text_category_names,
                progress=bar.update if bar is not None else None,
            )
    except CocoError as exc:
        raise RunError(f"{opts.coco}: {exc}") from exc
    if not len(coco):
        echo_problems(coco.problems)
        bad = f", {len(coco.problems)} bad records (the warnings above)" if coco.problems else ""
        raise RunError(
            f"{opts.coco}: --coco holds no usable COCO record: no image, and no annotation "
            f"with a usable image_id ({coco.annotations} annotations read{bad})"
        )
    return coco


def _load_manifest(opts: Options, problems: list[Problem]) -> Manifest | None:
    if opts.manifest is None:
        return None
    try:
        manifest = load_manifest(opts.manifest)
    except ManifestError as exc:
        raise RunError(str(exc)) from exc
    problems += manifest.problems
    return manifest


def _match(
    opts: Options,
    coco: CocoPages,
    problems: list[Problem],
    echo: Callable[[str], None],
    manifest: Manifest | None = None,
) -> MatchResult:
    vlm_files: list[VlmFile] = []
    if opts.vlm_dir is not None:
        echo(f"indexing VLM JSONs under {opts.vlm_dir} …")
        vlm_files = scan_vlm_dir(opts.vlm_dir, problems=problems)
    entries: list[MapEntry] = []
    if opts.vlm_map is not None:
        try:
            entries, map_problems = load_vlm_map(opts.vlm_map)
        except DataSpecError as exc:
            raise RunError(str(exc)) from exc
        problems += map_problems
    listed = f", {len(manifest)} manifest rows" if manifest is not None else ""
    echo(
        f"vlm: {len(vlm_files)} JSONs indexed, {len(entries)} map entries{listed}; matching pages …"
    )
    keys = [page_key(p or str(i)) for p, i in zip(coco.paths, coco.ids, strict=True)]
    match = match_pages(
        coco.ids,
        coco.paths,
        vlm_files,
        keys=keys,
        vlm_map=entries,
        map_file=opts.vlm_map,
        vlm_dir=opts.vlm_dir,
        fuzzy=opts.fuzzy,
        manifest=manifest.by_image if manifest is not None else None,
    )
    problems += match.problems
    return match


_TIER_COLUMN = CSV_COLUMNS.index("match_tier")


def _tally(summary: Summary, r: PageResult) -> None:
    summary.pages += 1
    summary.images_found += r.exists
    summary.tiers[r.row[_TIER_COLUMN]] += 1
    summary.empty += r.empty
    if r.matched:
        if r.repairs:
            summary.repairs.update(r.repairs)
            summary.repaired += 1
        summary.truncated += r.truncated
        summary.matched += 1
        summary.coverage_sum += r.coverage
        summary.with_text += r.with_text
        subsets = summary.subsets
        for name in r.subsets:
            subsets[name] += 1


def run(opts: Options, echo: Callable[[str], None] = click.echo) -> Summary:
    """Run the analyzer (see `analyzer` docs); raises `RunError` when it cannot start."""
    problems: list[Problem] = []
    _check_inputs(opts)
    workers = max(1, min(opts.num_workers, os.cpu_count() or 1))
    with contextlib.ExitStack() as stack:
        # a pool's workers start now: they import the analyzer while the inputs are read
        executor = stack.enter_context(Executor(workers))
        coco = _load(opts)
        problems += coco.problems
        echo(
            f"detections: {len(coco)} images, {coco.annotations} annotations, "
            f"{len(coco.scores)} panel detections (categories {sorted(coco.panel_ids)})"
        )
        manifest = _load_manifest(opts, problems)
        match = _match(opts, coco, problems, echo, manifest)
        order = sorted(range(len(coco)), key=lambda i: sort_key(coco, i))
        names: dict[int, str] = {}
        pre_skip: dict[int, str] = {}
        if opts.emit is not None:
            names, pre_skip = output_targets(order, coco, match, opts.emit)
        books = [book_of(coco.paths[p]) for p in order] if opts.shard is not None else []
        lo, hi = shard_slice(len(order), opts.shard, books)
        pages = order[lo:hi][: opts.limit] if opts.limit is not None else order[lo:hi]
        first_shard = opts.shard is None or opts.shard[0] == 0
        remove_run_temps(opts, [names[p] for p in pages if p in names])
        if not first_shard:
            problems = []  # problems of the shared input are reported by the first shard

        config = WorkerConfig(
            image_roots=opts.image_roots,
            min_det_score=opts.min_det_score,
            min_text_coverage=opts.min_text_coverage,
            caption_as_narration=opts.caption_as_narration,
            emit=opts.emit,
            text_evidence=len(coco.text_scores) > 0,
            char_evidence=len(coco.char_scores) > 0,
        )
        plan = Plan(coco, match, names, pre_skip, manifest)
        summary = Summary(emit=opts.emit is not None)
        limit = opts.emit.limit if opts.emit is not None else None
        outcomes: dict[int, Outcome] = {}
        selected: list[PageResult] = []
        vlm_map: dict[str, str] = {}
        page_problems: dict[int, tuple[Problem, ...]] = {}
        csv_path = shard_path(opts.output_csv, opts.shard)
        executor.start(config)
        fh = stack.enter_context(atomic_open(csv_path, "w", newline="", buffering=1 << 20))
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        lists = Lists(opts, stack)
        bar = stack.enter_context(_bar(opts.progress, len(pages), "analyzing pages"))
        for results in executor.map(plan.chunks(pages, emit=limit is None)):
            writer.writerows([r.row for r in results])
            for r in results:
                if lists.files:
                    lists.add(r)
                _tally(summary, r)
                if r.problems:
                    page_problems[r.page] = r.problems
                if not r.matched:
                    continue
                if opts.emit_vlm_map:
                    vlm_map[coco.paths[r.page] or str(coco.ids[r.page])] = r.vlm_path
                if opts.emit is None:
                    continue
                if limit is None:
                    outcomes[r.page] = outcome_of(r)
                elif opts.emit.subsets is None or opts.emit.subsets.intersection(r.subsets):
                    selected.append(r)
                else:
                    outcomes[r.page] = outcome_of(r, "not_selected")
            if bar is not None:
                bar.update(len(results))
        if limit is not None:
            _emit_limited(executor, plan, selected, limit, outcomes, page_problems)
        summary.written += [csv_path, *lists.paths]

    for index in sorted(page_problems, key=lambda i: sort_key(coco, i)):
        problems.extend(page_problems[index])
    rank = {page: pos for pos, page in enumerate(pages)}
    write_side_files(opts, coco, match, rank, first_shard, problems, outcomes, vlm_map, summary)
    summary.problems = len(problems)
    summary.outcomes = Counter(o.outcome for o in outcomes.values())
    echo_problems(problems)
    return summary


def _emit_limited(
    executor: Executor,
    plan: Plan,
    selected: list[PageResult],
    limit: int,
    outcomes: dict[int, Outcome],
    page_problems: dict[int, tuple[Problem, ...]],
) -> None:
    """Emit the selected pages in page order until `limit` files are written."""
    done = pos = 0
    while pos < len(selected) and done < limit:
        batch = selected[pos : pos + limit - done]
        pos += len(batch)
        priors = {r.page: r.rtl_prior for r in batch}
        for results in executor.map(plan.chunks([r.page for r in batch], True, priors)):
            for r in results:
                outcomes[r.page] = outcome_of(r)
                done += r.outcome == "emitted"
                if r.problems:
                    page_problems[r.page] = r.problems
    for r in selected[pos:]:
        outcomes[r.page] = outcome_of(r, "dataspec_limit")
