"""Worker stage: one page in, one CSV row (and maybe one DataSpec file) out.

A worker gets a `Chunk` (the pages' tasks plus their panel boxes and scores as arrays).
Per page it resolves the image, reads the VLM JSON and pairs its panels with the
detections (`pairing`: a chunk's alignments are solved together), scores the page, builds
the CSV row and, when emitting, runs the emission checks in the order of `SKIP_REASONS`
and writes the DataSpec file. Everything here is top-level so that "spawn" workers can
import it.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from dataspec.errors import DataSpecError, Note
from dataspec.imagesize import image_size
from dataspec.io import dumps
from dataspec.keys import page_key
from dataspec.normalize.boxes import MAX_COORD
from dataspec.paths import ImageResolver

from .emit import build_page
from .images import image_problem, regular_file_problem
from .match import image_key
from .options import EmitOptions
from .page_files import UnsafeOutputError, inside, write_if_changed
from .pairing import Found, PageRead, Paired, Pending, pair, share_direction, solve_pending
from .problems import Problem, csv_float
from .score import score_page, subsets_of
from .vlm import EMPTY_REPLY, TRUNCATED, read_vlm, reply_repairs, vlm_stats
from .work import Chunk, PageResult, Task, WorkerConfig

__all__ = ["collector_paused", "init_worker", "process_chunk"]


_STATE: dict[str, Any] = {}


def init_worker(config: WorkerConfig) -> None:
    """Set up this process as a worker (the pool's initializer; also run in-process)."""
    _STATE["config"] = config
    _STATE["resolver"] = ImageResolver(list(config.image_roots) or None)


_EMBEDDED = "read as that block (a reply wrapped in prose, or a file cut short?)"
_TRUNCATED = (
    "reply cut short (truncated): read as far as it goes; never a perfect match, "
    "its panels aligned as the first ones of the page"
)


def _resolve(resolver: ImageResolver, task: Task, problems: list[Problem]) -> str:
    """The page's image found under the roots, '' when none.

    A hit that is no regular file (a FIFO, a symlink loop), or the image of another page
    (another series or page number than the predictions name: the resolver's guess from
    the VLM JSON's name when the page's own image is missing), counts as none and is
    reported: a page never gets another page's image. When none is found, something
    unusable at the path the predictions name is reported too.
    """
    if not (task.image_path or task.vlm_path):
        return ""
    tries: list[tuple[str | None, str | None, str]] = []
    listed = task.manifest_image
    if listed and image_key(listed) != image_key(task.image_path):  # the manifest's first
        tries.append((listed, None, f"listed in the manifest for {task.vlm_path}"))
    tries.append(
        (task.image_path or None, task.vlm_path, f"found for {task.image_path or task.vlm_path}")
    )
    for image_path, json_path, how in tries:  # the same checks for each
        try:
            found = resolver.find(image_path, json_path)  # `resolve` without the Path
        except DataSpecError:
            continue
        why = _not_this_page(task, found)
        if why is None:
            return found
        problems.append(Problem(found, "", f"{how} but {why}: not used"))
    unusable = _unusable_entry(resolver, task.image_path)
    if unusable is not None:
        problems.append(Problem(unusable[0], "", f"{unusable[1]}: not used as an image"))
    return ""


def _not_this_page(task: Task, found: str) -> str | None:
    """Why an image found for a page cannot be its image (no regular file, another page)."""
    why = regular_file_problem(found)
    if why is None and task.image_path:
        want, got = page_key(task.image_path), page_key(found)
        if want.series and got.series and want.series_page != got.series_page:
            why = f"the image of another page ({got.series_page}, not {want.series_page})"
    return why


def _page_size(task: Task, resolved: str) -> tuple[int, int] | None:
    """The page's size: the COCO image record's, else the resolved image's header (read
    once, no pixel decode); None when neither gives one (VLM `box_2d` stays unknown)."""
    if task.width and task.height:
        return (task.width, task.height)
    if not resolved:
        return None
    size = image_size(resolved)
    if size is None or max(size) > MAX_COORD:
        return None
    return size


def _unusable_entry(resolver: ImageResolver, image_path: str) -> tuple[str, str] | None:
    """Something at the path the predictions name (its last 3 or 2 parts under a root)
    that is no usable file (a FIFO, a symlink loop), and why; None when nothing is there."""
    parts = [p for p in image_path.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    for root in resolver.roots:
        for depth in (3, 2):
            if len(parts) < depth:
                continue
            candidate = os.path.join(root, *parts[-depth:])
            if os.path.lexists(candidate):
                why = regular_file_problem(candidate)
                if why is not None:
                    return candidate, why
    return None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while (back as it was after): a chunk's pages
    make many objects that live until it ends and next to no cycles, so collecting while
    they pile up only costs time (about a tenth of a worker's)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def process_chunk(chunk: Chunk) -> list[PageResult]:
    """Results of a chunk's pages, in order (needs `init_worker` first)."""
    with collector_paused():
        return _process(chunk)


def _process(chunk: Chunk) -> list[PageResult]:
    config: WorkerConfig = _STATE["config"]
    resolver: ImageResolver = _STATE["resolver"]
    out: list[PageRead] = []
    for n, task in enumerate(chunk.tasks):
        lo, hi = int(chunk.offsets[n]), int(chunk.offsets[n + 1])
        tlo, thi = int(chunk.text_offsets[n]), int(chunk.text_offsets[n + 1])
        clo, chi = int(chunk.char_offsets[n]), int(chunk.char_offsets[n + 1])
        found = Found(
            chunk.boxes[lo:hi],
            chunk.scores[lo:hi],
            chunk.text_boxes[tlo:thi],
            chunk.text_scores[tlo:thi],
            chunk.char_boxes[clo:chi],
            chunk.char_scores[clo:chi],
        )
        out.append(_read(task, found, config, resolver))
    solve_pending(out)
    share_direction(out)
    return [_finish(r, config, chunk.emit) for r in out]


def _read(task: Task, found: Found, config: WorkerConfig, resolver: ImageResolver) -> PageRead:
    scores = found.scores
    problems: list[Problem] = []
    resolved = _resolve(resolver, task, problems)
    rcnn = int(np.count_nonzero(scores >= config.min_det_score))
    size = _page_size(task, resolved) if task.vlm_path else None
    records = None
    tier = task.tier
    repairs: tuple[str, ...] = ()
    truncated = empty = False
    if task.vlm_path:
        notes: list[Note] = []
        try:
            records = read_vlm(
                task.vlm_path,
                page_size=size,
                caption_as_narration=config.caption_as_narration,
                notes=notes,
            )
            repairs = reply_repairs(notes)
            truncated = TRUNCATED in repairs
            for n in notes:
                if n.code == "embedded_json":
                    problems.append(Problem(task.vlm_path, n.where, f"{n.message}: {_EMBEDDED}"))
                elif n.code == TRUNCATED:
                    problems.append(Problem(task.vlm_path, n.where, f"{n.message}: {_TRUNCATED}"))
        except DataSpecError as exc:
            problems.append(Problem(exc.file or task.vlm_path, exc.where or "", exc.reason))
            tier = "vlm_unreadable"
            empty = exc.code == EMPTY_REPLY
        except Exception as exc:  # a document no rule expected: reported, never fatal
            problems.append(Problem(task.vlm_path, "", f"{type(exc).__name__}: {exc}"))
            tier = "vlm_unreadable"
    read = PageRead(
        task, found, problems, resolved, rcnn, size, records, tier, repairs, truncated, empty
    )
    if records is not None:
        try:
            paired = pair(found, records, size, config, truncated)
            if isinstance(paired, Pending):
                read.pending = paired
            else:
                read.paired = paired
        except Exception as exc:  # reported, never fatal: the page is still scored
            problems.append(Problem(task.vlm_path or "", "", f"{type(exc).__name__}: {exc}"))
    return read


def _finish(read: PageRead, config: WorkerConfig, emit: bool) -> PageResult:
    """Score the page, build its CSV row and, when emitting, write its DataSpec file."""
    task, problems, resolved, rcnn, size = (
        read.task,
        read.problems,
        read.resolved,
        read.rcnn,
        read.size,
    )
    records, tier, repairs, truncated, empty = (
        read.records,
        read.tier,
        read.repairs,
        read.truncated,
        read.empty,
    )
    scores, paired = read.found.scores, read.paired
    pairing = paired.columns(len(records)) if paired is not None and records is not None else None
    mincov = config.min_text_coverage
    subsets: tuple[str, ...] = ()
    if records is not None:
        stats = vlm_stats(records)
        scored = score_page(rcnn, stats.panels, stats.with_text, mincov, truncated=truncated)
        subsets = subsets_of(scored, mincov)
        numbers = (
            stats.panels,
            csv_float(scored.ratio),
            csv_float(scored.coverage),
            stats.with_text,
            stats.dialogue,
            stats.narration,
            stats.sfx,
            csv_float(scored.score),
            scored.perfect,
        )
        coverage = scored.coverage
    else:
        numbers = (0, "0.0", "0.0", 0, 0, 0, 0, "0.0", False)
        coverage = 0.0
    row = tuple(
        str(v)
        for v in (
            task.image_id,
            task.image_path,
            resolved,
            bool(resolved),
            task.vlm_path or "",
            task.key,
            records is not None,
            rcnn,
            *numbers,
            tier,
            ";".join(repairs),
            truncated,
            *(pairing or ("", "", "", "")),
        )
    )
    outcome = output = None
    rcnn_count = vlm_count = 0
    if records is not None and config.emit is not None:
        rcnn_count = int(np.count_nonzero(scores >= config.emit.min_det_score))
        vlm_count = len(records)
        if emit:
            outcome, output, usable = _emit(
                task,
                scores,
                paired,
                records,
                subsets,
                resolved,
                size,
                config.emit,
                problems,
                repairs,
            )
            rcnn_count = usable if usable >= 0 else rcnn_count
    return PageResult(
        page=task.page,
        row=row,
        matched=records is not None,
        subsets=subsets,
        exists=bool(resolved),
        image=resolved or task.image_path,
        vlm_path=task.vlm_path or "",
        coverage=coverage,
        with_text=records is not None and any(not r.text.is_empty() for r in records),
        outcome=outcome,
        output=output,
        rcnn_count=rcnn_count,
        vlm_count=vlm_count,
        problems=tuple(problems),
        repairs=repairs,
        truncated=truncated,
        empty=empty,
        rtl_prior=paired.prior if paired is not None else None,
    )


def _emit(
    task: Task,
    scores: np.ndarray,
    paired: Paired | None,
    records: list[Any],
    subsets: tuple[str, ...],
    resolved: str,
    size: tuple[int, int] | None,
    opts: EmitOptions,
    problems: list[Problem],
    repairs: tuple[str, ...] = (),
) -> tuple[str, str | None, int]:
    """(outcome, written path, usable detections or -1) of one matched page.

    The checks run in the order of `SKIP_REASONS`. `size` is the page's (`_page_size`).
    """
    if opts.subsets is not None and not opts.subsets.intersection(subsets):
        return "not_selected", None, -1
    if task.pre_skip is not None:
        return task.pre_skip, None, -1
    if opts.require_image and not resolved:
        return "missing_image", None, -1
    bad_image = image_problem(resolved) if resolved else None
    if bad_image is not None:
        problems.append(Problem(resolved, "", bad_image))
        if opts.require_image:
            return "bad_image", None, -1
    if len(scores) == 0:
        return "no_detections", None, 0
    if paired is None:
        return "exception:AlignmentError", None, -1  # the error is in the errors CSV
    truncated = TRUNCATED in repairs
    dets = paired.dets
    try:
        if not dets:
            return "no_dets_after_threshold", None, 0
        if opts.require_equal_counts and len(dets) != len(records):
            return "equal_count_mismatch", None, len(dets)
        if not paired.alignment.confident(paired.threshold) and not opts.keep_unpaired:
            return "zero_pairs", None, len(dets)
        assert task.target is not None
        page = build_page(
            image_path=resolved or task.image_path or str(task.image_id),
            size=size,
            dets=dets,
            vlm=records,
            alignment=paired.alignment,
            min_confidence=paired.threshold,
            image_id=task.image_id,
            vlm_json_path=task.vlm_path or "",
            match_tier=task.tier,
            vlm_repairs=repairs,
            vlm_truncated=truncated,
        )
        data = dumps(page)
        try:
            path = inside(opts.out_dir, task.target)
        except UnsafeOutputError as exc:
            where = os.path.join(os.path.abspath(opts.out_dir), *task.target.split("/"))
            problems.append(Problem(where, "", str(exc)))
            return "unsafe_output", None, len(dets)
        write_if_changed(path, data)
    except Exception as exc:  # any failure of one page is logged, never fatal
        problems.append(
            Problem(task.vlm_path or task.image_path, "", f"{type(exc).__name__}: {exc}")
        )
        return f"exception:{type(exc).__name__}", None, -1
    return "emitted", path, len(dets)
