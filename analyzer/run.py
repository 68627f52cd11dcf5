"""Orchestration: load, match, process pages in parallel chunks, write every output.

The main process loads the detections and the VLM index, matches pages, and cuts the
pages (sorted by image path, so the order never depends on the input order or on the
number of workers) into chunks. A worker gets only its chunk: per page the image id and
path, size, matched VLM path, output name, and the page's panel boxes and scores as
arrays. Workers read VLM JSONs, resolve images, score pages and write DataSpec files;
the main process writes the CSV and lists in page order as chunks come back.
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import click
import numpy as np
import orjson

from dataspec.errors import DataSpecError, Note
from dataspec.imagesize import image_size
from dataspec.io import atomic_open, atomic_write_bytes, dumps
from dataspec.keys import norm_path, page_key
from dataspec.normalize.boxes import MAX_COORD
from dataspec.paths import ImageResolver

from .coco import CocoError, CocoPages, load_coco
from .emit import (
    UnsafeOutputError,
    build_page,
    collision_key,
    detections,
    inside,
    output_name,
    pair_panels,
    remove_stale_temps,
    write_if_changed,
)
from .images import image_problem, regular_file_problem
from .manifest import Manifest, ManifestError, load_manifest
from .match import AMBIGUITY_COLUMNS, MatchResult, image_key, match_pages
from .problems import PROBLEM_COLUMNS, Problem, echo_problems, shard_path, write_csv
from .score import SUBSETS, score_page, subsets_of
from .vlm import (
    EMPTY_REPLY,
    TRUNCATED,
    MapEntry,
    VlmFile,
    load_vlm_map,
    read_vlm,
    reply_repairs,
    scan_vlm_dir,
    vlm_stats,
)

__all__ = [
    "CSV_COLUMNS",
    "SKIP_COLUMNS",
    "EmitOptions",
    "Options",
    "RunError",
    "Summary",
    "list_paths",
    "run",
    "side_path",
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
CHUNK_PAGES = 400
"""Pages per worker task."""


class RunError(Exception):
    """A run cannot go on (unusable predictions file or VLM map)."""


@dataclass(frozen=True)
class EmitOptions:
    """What DataSpec emission writes and which pages it skips."""

    out_dir: str
    subsets: frozenset[str] | None = None
    """Subsets whose pages are written; None: every matched page."""
    min_det_score: float = 0.5
    require_equal_counts: bool = False
    require_image: bool = False
    keep_unpaired: bool = False
    naming: str = "preserve_tree"
    limit: int | None = None
    list_out: str | None = None
    skips_out: str | None = None


@dataclass(frozen=True)
class Options:
    """One analyzer run (the command line's flags, parsed)."""

    coco: str
    output_csv: str
    vlm_dir: str | None = None
    vlm_map: str | None = None
    manifest: str | None = None
    """CSV `canonical_id,absolute_image_path` (see `analyzer.manifest`)."""
    image_roots: tuple[str, ...] = ()
    num_workers: int = 1
    fuzzy: bool = False
    panel_category_ids: tuple[int, ...] = ()
    panel_category_names: tuple[str, ...] = ()
    min_det_score: float = 0.0
    min_text_coverage: float = 0.5
    caption_as_narration: bool = False
    json_lists: tuple[str, ...] = ()
    json_list_out: str | None = None
    json_require_exists: bool = False
    emit: EmitOptions | None = None
    emit_vlm_map: str | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    ambiguities_out: str | None = None
    errors_out: str | None = None
    progress: bool = True


# --- worker side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _WorkerConfig:
    image_roots: tuple[str, ...]
    min_det_score: float
    min_text_coverage: float
    caption_as_narration: bool
    emit: EmitOptions | None


class _Task(NamedTuple):
    page: int
    image_id: int | str
    image_path: str
    width: int
    height: int
    vlm_path: str | None
    tier: str
    key: str
    target: str | None
    pre_skip: str | None
    manifest_image: str | None
    """The image the manifest lists for the page's VLM JSON (tried first), if any."""


@dataclass
class _Chunk:
    tasks: list[_Task]
    offsets: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    emit: bool


class _Result(NamedTuple):
    page: int
    row: tuple[str, ...]
    matched: bool
    subsets: tuple[str, ...]
    exists: bool
    image: str
    """Resolved image path, else the path as given."""
    vlm_path: str
    coverage: float
    with_text: bool
    outcome: str | None
    """`emitted`, a skip reason, or None (not an emission candidate)."""
    output: str | None
    rcnn_count: int
    vlm_count: int
    problems: tuple[Problem, ...]
    repairs: tuple[str, ...] = ()
    """Repair codes of the VLM reply (`vlm_repairs`)."""
    truncated: bool = False
    empty: bool = False
    """The VLM JSON is an empty model reply."""


_STATE: dict[str, Any] = {}


def _init_worker(config: _WorkerConfig) -> None:
    _STATE["config"] = config
    _STATE["resolver"] = ImageResolver(list(config.image_roots) or None)


_EMBEDDED = "read as that block (a reply wrapped in prose, or a file cut short?)"
_TRUNCATED = (
    "reply cut short (truncated): read as far as it goes; never a perfect match, "
    "paired with detections by overlap only"
)


def _fmt(value: float) -> str:
    return repr(round(value, 4))


def _resolve(resolver: ImageResolver, task: _Task, problems: list[Problem]) -> str:
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
            found = str(resolver.resolve(image_path, json_path))
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


def _not_this_page(task: _Task, found: str) -> str | None:
    """Why an image found for a page cannot be its image (no regular file, another page)."""
    why = regular_file_problem(found)
    if why is None and task.image_path:
        want, got = page_key(task.image_path), page_key(found)
        if want.series and got.series and want.series_page != got.series_page:
            why = f"the image of another page ({got.series_page}, not {want.series_page})"
    return why


def _page_size(task: _Task, resolved: str) -> tuple[int, int] | None:
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


def _process_chunk(chunk: _Chunk) -> list[_Result]:
    config: _WorkerConfig = _STATE["config"]
    resolver: ImageResolver = _STATE["resolver"]
    out: list[_Result] = []
    for n, task in enumerate(chunk.tasks):
        lo, hi = int(chunk.offsets[n]), int(chunk.offsets[n + 1])
        out.append(
            _process_page(
                task, chunk.boxes[lo:hi], chunk.scores[lo:hi], config, resolver, chunk.emit
            )
        )
    return out


def _process_page(
    task: _Task,
    boxes: np.ndarray,
    scores: np.ndarray,
    config: _WorkerConfig,
    resolver: ImageResolver,
    emit: bool,
) -> _Result:
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
    mincov = config.min_text_coverage
    subsets: tuple[str, ...] = ()
    if records is not None:
        stats = vlm_stats(records)
        scored = score_page(rcnn, stats.panels, stats.with_text, mincov, truncated=truncated)
        subsets = subsets_of(scored, mincov)
        numbers = (
            stats.panels,
            _fmt(scored.ratio),
            _fmt(scored.coverage),
            stats.with_text,
            stats.dialogue,
            stats.narration,
            stats.sfx,
            _fmt(scored.score),
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
                boxes,
                scores,
                records,
                subsets,
                resolved,
                size,
                config.emit,
                problems,
                repairs,
            )
            rcnn_count = usable if usable >= 0 else rcnn_count
    return _Result(
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
    )


def _emit(
    task: _Task,
    boxes: np.ndarray,
    scores: np.ndarray,
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
    truncated = TRUNCATED in repairs
    try:
        dets = detections(boxes, scores, opts.min_det_score, size)
        if not dets:
            return "no_dets_after_threshold", None, 0
        if opts.require_equal_counts and len(dets) != len(records):
            return "equal_count_mismatch", None, len(dets)
        pairs, pairing = pair_panels(dets, records, by_order=not truncated)
        if not pairs and not opts.keep_unpaired:
            return "zero_pairs", None, len(dets)
        assert task.target is not None
        page = build_page(
            image_path=resolved or task.image_path or str(task.image_id),
            size=size,
            dets=dets,
            vlm=records,
            pairs=pairs,
            pairing=pairing,
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


# --- main side -------------------------------------------------------------------------------


class _Outcome(NamedTuple):
    """What emission did with one matched page (kept until the skip log is written)."""

    page: int
    resolved: str
    vlm_path: str
    outcome: str
    output: str | None
    rcnn_count: int
    vlm_count: int


def _outcome(r: _Result, outcome: str | None = None) -> _Outcome:
    return _Outcome(
        r.page,
        r.row[2],
        r.vlm_path,
        outcome or r.outcome or "",
        r.output,
        r.rcnn_count,
        r.vlm_count,
    )


@dataclass
class Summary:
    """What a run found and wrote (printed at the end)."""

    pages: int = 0
    matched: int = 0
    images_found: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    subsets: Counter[str] = field(default_factory=Counter)
    coverage_sum: float = 0.0
    with_text: int = 0
    emit: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: int = 0
    ambiguities: int = 0
    written: list[str] = field(default_factory=list)
    repairs: Counter[str] = field(default_factory=Counter)
    """Matched pages by repair code of their VLM reply."""
    repaired: int = 0
    """Matched pages whose VLM reply needed any repair."""
    truncated: int = 0
    empty: int = 0
    """Pages whose VLM JSON is an empty reply (unreadable)."""

    @property
    def emitted(self) -> int:
        """DataSpec files written."""
        return self.outcomes.get("emitted", 0)

    @property
    def skipped(self) -> int:
        """Matched pages not written, each with a reason."""
        return sum(v for k, v in self.outcomes.items() if k != "emitted")

    def lines(self) -> list[str]:
        """The printed summary."""

        def pct(n: int, d: int) -> str:
            return f"{100.0 * n / d:.1f}%" if d else "0.0%"

        out = [
            f"pages: {self.pages}; matched: {self.matched} ({pct(self.matched, self.pages)}); "
            f"images found: {self.images_found} ({pct(self.images_found, self.pages)})",
            "match tiers: " + ", ".join(f"{k} {v}" for k, v in sorted(self.tiers.items())),
            "subsets (share of matched pages):",
        ]
        for name in SUBSETS:
            n = self.subsets[name]
            out.append(f"  {name:<18} {n:>9}  {pct(n, self.matched):>6}")
        mean = self.coverage_sum / self.matched if self.matched else 0.0
        out.append(
            f"text coverage: mean {mean:.3f}; matched pages with any text {self.with_text} "
            f"({pct(self.with_text, self.matched)})"
        )
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.repairs.items()))
        out.append(
            f"vlm replies: repaired {self.repaired}"
            + (f" ({codes})" if codes else "")
            + f"; truncated {self.truncated}; empty replies {self.empty}"
        )
        if self.emit:
            reasons = ", ".join(
                f"{k} {v}" for k, v in sorted(self.outcomes.items()) if k != "emitted"
            )
            out.append(
                f"dataspec: matched {self.matched} = emitted {self.emitted} + skipped "
                f"{self.skipped}" + (f" ({reasons})" if reasons else "")
            )
        if self.ambiguities:
            out.append(f"ambiguities: {self.ambiguities} (see the ambiguities CSV)")
        if self.problems:
            out.append(f"bad input (run went on): {self.problems} (see the errors CSV)")
        return out


def _bar(enabled: bool, length: int, label: str) -> Any:
    """A click progress bar on stderr, or a context giving None when disabled."""
    if not enabled or length <= 0:
        return contextlib.nullcontext(None)
    return click.progressbar(length=length, label=label, file=sys.stderr)


def _sort_key(coco: CocoPages, i: int) -> tuple[str, str, str, str]:
    return (norm_path(coco.paths[i]), coco.paths[i], type(coco.ids[i]).__name__, str(coco.ids[i]))


def _slice(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    if shard is None:
        return 0, n
    index, count = shard
    return index * n // count, (index + 1) * n // count


def _targets(
    order: Sequence[int], coco: CocoPages, match: MatchResult, emit: EmitOptions
) -> tuple[dict[int, str], dict[int, str]]:
    """Output name per matched page, and `output_collision` for a name taken earlier."""
    names: dict[int, str] = {}
    seen: set[str] = set()
    skips: dict[int, str] = {}
    for page in order:
        vlm = match.vlm[page]
        if vlm is None:
            continue
        name = output_name(
            emit.naming, vlm_rel=vlm.rel, image_path=coco.paths[page], image_id=coco.ids[page]
        )
        names[page] = name
        key = collision_key(name)
        if key in seen:
            skips[page] = "output_collision"
        seen.add(key)
    return names, skips


@dataclass
class _Plan:
    """Everything a chunk needs besides the arrays: matches, output names, pre-set skips."""

    coco: CocoPages
    match: MatchResult
    names: dict[int, str]
    pre_skip: dict[int, str]
    manifest: Manifest | None = None

    def chunks(self, pages: Sequence[int], emit: bool) -> Iterator[_Chunk]:
        coco, match, manifest = self.coco, self.match, self.manifest
        for start in range(0, len(pages), CHUNK_PAGES):
            part = pages[start : start + CHUNK_PAGES]
            spans = [(int(coco.offsets[p]), int(coco.offsets[p + 1])) for p in part]
            tasks = []
            for p in part:
                vlm = match.vlm[p]
                tasks.append(
                    _Task(
                        page=p,
                        image_id=coco.ids[p],
                        image_path=coco.paths[p],
                        width=int(coco.sizes[p, 0]),
                        height=int(coco.sizes[p, 1]),
                        vlm_path=vlm.path if vlm is not None else None,
                        tier=match.tier[p],
                        key=match.key[p],
                        target=self.names.get(p),
                        pre_skip=self.pre_skip.get(p),
                        manifest_image=(
                            manifest.image_for(vlm.rel)
                            if manifest is not None and vlm is not None
                            else None
                        ),
                    )
                )
            rows = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in spans])
            offsets = np.zeros(len(part) + 1, dtype=np.int64)
            np.cumsum([hi - lo for lo, hi in spans], out=offsets[1:])
            yield _Chunk(tasks, offsets, coco.boxes[rows], coco.scores[rows], emit)


class _Executor:
    """Runs chunks in this process (1 worker) or in a pool; results come in chunk order."""

    def __init__(self, config: _WorkerConfig, workers: int) -> None:
        self.config = config
        self.workers = workers
        self.pool: Any = None

    def __enter__(self) -> _Executor:
        if self.workers > 1:
            context = multiprocessing.get_context("spawn")
            self.pool = context.Pool(
                self.workers, initializer=_init_worker, initargs=(self.config,)
            )
        else:
            _init_worker(self.config)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            if exc[0] is None:
                self.pool.close()
            else:
                self.pool.terminate()
            self.pool.join()

    def map(self, chunks: Iterable[_Chunk]) -> Iterator[list[_Result]]:
        """Results of each chunk, in order; at most 3 chunks per worker in flight."""
        if self.pool is None:
            for chunk in chunks:
                yield _process_chunk(chunk)
            return
        pending: deque[Any] = deque()
        for chunk in chunks:
            pending.append(self.pool.apply_async(_process_chunk, (chunk,)))
            if len(pending) >= 3 * self.workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class _Lists:
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

    def add(self, result: _Result) -> None:
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


def _load(opts: Options) -> CocoPages:
    size = os.path.getsize(opts.coco) if os.path.isfile(opts.coco) else 0
    try:
        with _bar(opts.progress, size, "reading detections") as bar:
            return load_coco(
                opts.coco,
                category_ids=opts.panel_category_ids,
                category_names=opts.panel_category_names,
                progress=bar.update if bar is not None else None,
            )
    except CocoError as exc:
        raise RunError(f"{opts.coco}: {exc}") from exc


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
        if not os.path.isdir(opts.vlm_dir):
            raise RunError(f"{opts.vlm_dir}: --vlm_dir is not a directory")
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


def _tally(summary: Summary, r: _Result) -> None:
    summary.pages += 1
    summary.images_found += r.exists
    summary.tiers[r.row[_TIER_COLUMN]] += 1
    summary.empty += r.empty
    if r.matched:
        summary.repairs.update(r.repairs)
        summary.repaired += bool(r.repairs)
        summary.truncated += r.truncated
        summary.matched += 1
        summary.coverage_sum += r.coverage
        summary.with_text += r.with_text
        summary.subsets.update(r.subsets)


def run(opts: Options, echo: Callable[[str], None] = click.echo) -> Summary:
    """Run the analyzer (see `analyzer` docs); raises `RunError` when it cannot start."""
    problems: list[Problem] = []
    coco = _load(opts)
    problems += coco.problems
    echo(
        f"detections: {len(coco)} images, {coco.annotations} annotations, "
        f"{len(coco.scores)} panel detections (categories {sorted(coco.panel_ids)})"
    )
    manifest = _load_manifest(opts, problems)
    match = _match(opts, coco, problems, echo, manifest)
    order = sorted(range(len(coco)), key=lambda i: _sort_key(coco, i))
    names: dict[int, str] = {}
    pre_skip: dict[int, str] = {}
    if opts.emit is not None:
        names, pre_skip = _targets(order, coco, match, opts.emit)
    lo, hi = _slice(len(order), opts.shard)
    pages = order[lo:hi][: opts.limit] if opts.limit is not None else order[lo:hi]
    first_shard = opts.shard is None or opts.shard[0] == 0
    _remove_stale_temps(opts, [names[p] for p in pages if p in names])
    if not first_shard:
        problems = []  # problems of the shared input are reported by the first shard

    config = _WorkerConfig(
        image_roots=opts.image_roots,
        min_det_score=opts.min_det_score,
        min_text_coverage=opts.min_text_coverage,
        caption_as_narration=opts.caption_as_narration,
        emit=opts.emit,
    )
    plan = _Plan(coco, match, names, pre_skip, manifest)
    summary = Summary(emit=opts.emit is not None)
    limit = opts.emit.limit if opts.emit is not None else None
    outcomes: dict[int, _Outcome] = {}
    selected: list[_Result] = []
    vlm_map: dict[str, str] = {}
    page_problems: dict[int, tuple[Problem, ...]] = {}
    csv_path = shard_path(opts.output_csv, opts.shard)
    workers = max(1, min(opts.num_workers, os.cpu_count() or 1))

    with contextlib.ExitStack() as stack:
        executor = stack.enter_context(_Executor(config, workers))
        fh = stack.enter_context(atomic_open(csv_path, "w", newline=""))
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        lists = _Lists(opts, stack)
        bar = stack.enter_context(_bar(opts.progress, len(pages), "analyzing pages"))
        for results in executor.map(plan.chunks(pages, emit=limit is None)):
            for r in results:
                writer.writerow(r.row)
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
                    outcomes[r.page] = _outcome(r)
                elif opts.emit.subsets is None or opts.emit.subsets.intersection(r.subsets):
                    selected.append(r)
                else:
                    outcomes[r.page] = _outcome(r, "not_selected")
            if bar is not None:
                bar.update(len(results))
        if limit is not None:
            _emit_limited(executor, plan, selected, limit, outcomes, page_problems)
        summary.written += [csv_path, *lists.paths]

    for index in sorted(page_problems, key=lambda i: _sort_key(coco, i)):
        problems.extend(page_problems[index])
    rank = {page: pos for pos, page in enumerate(pages)}
    _write_side_files(opts, coco, match, rank, first_shard, problems, outcomes, vlm_map, summary)
    summary.problems = len(problems)
    summary.outcomes = Counter(o.outcome for o in outcomes.values())
    echo_problems(problems)
    return summary


def _side_outputs(opts: Options) -> list[str]:
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


def _remove_stale_temps(opts: Options, targets: list[str]) -> None:
    """Remove the temp files a killed run of this command left beside its outputs.

    Page files count only in folders of the out tree that are safe to write to (no
    symlink on the way): nothing outside the out dir is ever removed.
    """
    paths = _side_outputs(opts)
    if opts.emit is not None:
        folders: dict[str, list[str]] = {}
        for rel in targets:
            folders.setdefault(rel.rpartition("/")[0], []).append(rel)
        for rels in folders.values():
            try:
                inside(opts.emit.out_dir, rels[0])
            except UnsafeOutputError:
                continue
            paths += [os.path.join(opts.emit.out_dir, *rel.split("/")) for rel in rels]
    remove_stale_temps(paths)


def _emit_limited(
    executor: _Executor,
    plan: _Plan,
    selected: list[_Result],
    limit: int,
    outcomes: dict[int, _Outcome],
    page_problems: dict[int, tuple[Problem, ...]],
) -> None:
    """Emit the selected pages in page order until `limit` files are written."""
    done = pos = 0
    while pos < len(selected) and done < limit:
        batch = selected[pos : pos + limit - done]
        pos += len(batch)
        for results in executor.map(plan.chunks([r.page for r in batch], emit=True)):
            for r in results:
                outcomes[r.page] = _outcome(r)
                done += r.outcome == "emitted"
                if r.problems:
                    page_problems[r.page] = r.problems
    for r in selected[pos:]:
        outcomes[r.page] = _outcome(r, "dataspec_limit")


def _write_side_files(
    opts: Options,
    coco: CocoPages,
    match: MatchResult,
    rank: dict[int, int],
    first_shard: bool,
    problems: list[Problem],
    outcomes: dict[int, _Outcome],
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
