"""`python -m analyzer.subset`: the DataSpec JSONs of a perfect-match list, checked and copied.

The perfect-matches file lists image paths or VLM JSON paths, one per line (what
`--emit_json_list perfect` writes). A DataSpec JSON under --json_dir belongs to a listed
page when its `source.vlm_json_path` or `page_image_path` is a listed path (compared with
forward slashes, case folded), else when one of them, or the JSON's own path, has the
exact page key of a listed path (`dataspec.keys`). Each selected JSON must pass
dataspec's strict load; with --strict_paths its image must also resolve under
--image_root. Rejected JSONs and listed pages without a JSON are reported in
`<output_dir>/calibre_perfect_match_rejects.csv`.

Nothing is written outside --output_dir: copies mirror the tree below --json_dir (or,
for a list of JSONs, below the folder they share), and a copy that would go through a
symlink in the output tree is not made (a rejects row says why).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import msgspec

from dataspec import DataSpecError, ImageResolver, discover, load, windows_to_local
from dataspec.io import atomic_open, read_bytes
from dataspec.keys import norm_path, page_key

from .cli import flag, invoke
from .page_files import UnsafeOutputError, inside, write_if_changed
from .problems import write_csv

__all__ = ["LIST_NAME", "REJECTS_NAME", "SubsetResult", "main", "select", "subset"]

LIST_NAME = "calibre_perfect_match_jsons.txt"
"""The list `--write_list` writes in --output_dir."""
REJECTS_NAME = "calibre_perfect_match_rejects.csv"
"""Rejected JSONs and listed pages without a JSON, written in --output_dir."""


class _Source(msgspec.Struct):
    vlm_json_path: str | None = None


class _Head(msgspec.Struct):
    page_image_path: str = ""
    source: _Source | None = None


_HEAD = msgspec.json.Decoder(_Head)


@dataclass
class SubsetResult:
    """Which JSONs were selected, which rejected (and why), which listed pages had none."""

    entries: int = 0
    scanned: int = 0
    selected: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


def _read_lines(path: str) -> list[str]:
    try:
        raw = read_bytes(path)
    except DataSpecError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _under(path: str, root: str) -> bool:
    base = os.path.abspath(root)
    try:
        return os.path.commonpath([base, os.path.abspath(path)]) == base
    except ValueError:
        return False


def select(
    entries: Sequence[str],
    json_dir: str,
    *,
    image_root: str | None,
    strict_paths: bool,
    exclude: str | None = None,
    progress: bool = True,
) -> SubsetResult:
    """Select (and check) the DataSpec JSONs under `json_dir` of the listed pages."""
    result = SubsetResult(entries=len(entries))
    wanted_path: dict[str, str] = {}
    wanted_key: dict[str, str] = {}
    for line in entries:
        for form in (line, windows_to_local(line, image_root)):
            wanted_path.setdefault(norm_path(form), line)
        wanted_key.setdefault(page_key(line).exact, line)
    found: set[str] = set()
    try:
        files = discover(json_dir)
    except DataSpecError as exc:
        raise click.ClickException(str(exc)) from exc
    if exclude is not None:
        files = [f for f in files if not _under(str(f), exclude)]
    result.scanned = len(files)
    # --strict_paths: an image outside the root (absolute elsewhere, `..`, a symlink out)
    # is refused by the resolver itself
    resolver = ImageResolver(image_root, confine=strict_paths) if image_root else None
    bar: Any = (
        click.progressbar(files, label="scanning DataSpec JSONs", file=sys.stderr)
        if progress and files
        else contextlib.nullcontext(files)
    )
    with bar as items:
        for path in items:
            try:
                head = _HEAD.decode(read_bytes(path))
            except (DataSpecError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                result.rejected.append((str(path), f"not a DataSpec page: {exc}"))
                continue
            vlm = head.source.vlm_json_path if head.source else None
            forms = [f for f in (vlm, head.page_image_path) if f]
            entry: str | None = next(
                (wanted_path[norm_path(f)] for f in forms if norm_path(f) in wanted_path), None
            )
            if entry is None:
                rel = os.path.relpath(path, json_dir)
                keys = [page_key(f).exact for f in (*forms, rel)]
                entry = next((wanted_key[k] for k in keys if k in wanted_key), None)
            if entry is None:
                continue
            found.add(entry)
            why = _check(path, head.page_image_path, resolver, image_root, strict_paths)
            if why is None:
                result.selected.append(path)
            else:
                result.rejected.append((str(path), why))
    result.unmatched = [e for e in entries if e not in found]
    return result


def _check(
    path: Path,
    image: str,
    resolver: ImageResolver | None,
    image_root: str | None,
    strict_paths: bool,
) -> str | None:
    """Why a selected JSON is rejected, or None: strict load, then (strict) its image."""
    try:
        load(path)
    except DataSpecError as exc:
        return f"fails strict load: {exc.reason}"
    if not strict_paths:
        return None
    if resolver is None or image_root is None:
        return "no --image_root to check the image against"
    try:
        resolver.resolve(image, path)
    except DataSpecError as exc:
        if "outside the image roots" in exc.reason:
            return f"image outside --image_root {image_root}: {exc.reason}"
        return f"image not found under {image_root}: {image}"
    return None


def _copy_targets(selected: Sequence[Path], json_dir: str) -> list[str]:
    """Where the copies go (relative to --output_dir, POSIX form): the tree below
    `json_dir`, or for a list of JSONs the tree below the folder they all share."""
    if not selected:
        return []
    if os.path.isdir(json_dir):
        base = os.path.abspath(json_dir)
    else:
        base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in selected])
    return [Path(os.path.relpath(os.path.abspath(p), base)).as_posix() for p in selected]


@click.command(
    name="subset",
    context_settings={
        "help_option_names": ["-h", "--help"],
        "show_default": True,
        "max_content_width": 100,
    },
)
@flag("perfect_matches_file", required=True, help="Image or VLM JSON paths, one per line.")
@flag("json_dir", required=True, help="Folder (or .txt list) of DataSpec JSONs.")
@flag("image_root", help="Where page images live (needed by --strict_paths).")
@flag("output_dir", required=True, help="Where the list, copies and rejects CSV go.")
@flag("create_filtered_data", is_flag=True, help="Copy the selected JSONs, mirroring the tree.")
@flag("write_list", is_flag=True, help=f"Write <output_dir>/{LIST_NAME}.")
@flag("strict_paths", is_flag=True, help="Require each page's image under --image_root.")
@flag("dry_run", is_flag=True, help="Write nothing; print what would be done.")
@click.option(
    "--progress/--no_progress",
    " /--no-progress",
    "progress",
    default=True,
    help="Progress bar on stderr.",
)
def subset(
    perfect_matches_file: str,
    json_dir: str,
    image_root: str | None,
    output_dir: str,
    create_filtered_data: bool,
    write_list: bool,
    strict_paths: bool,
    dry_run: bool,
    progress: bool,
) -> None:
    """Select the DataSpec JSONs of the pages in a perfect-matches list."""
    if strict_paths and not image_root:
        raise click.UsageError("--strict_paths needs --image_root")
    if not os.path.exists(json_dir):
        raise click.ClickException(f"{json_dir}: --json_dir does not exist")
    entries = _read_lines(perfect_matches_file)
    result = select(
        entries,
        json_dir,
        image_root=image_root,
        strict_paths=strict_paths,
        exclude=output_dir if os.path.isdir(json_dir) else None,
        progress=progress,
    )
    click.echo(
        f"list entries: {result.entries}; DataSpec JSONs scanned: {result.scanned}; "
        f"selected: {len(result.selected)}; rejected: {len(result.rejected)}; "
        f"listed pages without a JSON: {len(result.unmatched)}"
    )
    for path, why in result.rejected[:5]:
        click.echo(f"rejected {path}: {why}", err=True)
    rejected = list(result.rejected)
    if create_filtered_data:
        sources: list[Path] = []
        targets: list[str] = []
        for src, rel in zip(result.selected, _copy_targets(result.selected, json_dir), strict=True):
            try:
                targets.append(inside(output_dir, rel))
                sources.append(src)
            except UnsafeOutputError as exc:  # never written outside --output_dir
                rejected.append((str(src), f"not copied: {exc}"))
        if not dry_run:
            copied = []
            for src, dst in zip(sources, targets, strict=True):
                try:
                    write_if_changed(dst, read_bytes(src))
                    copied.append(dst)
                except (DataSpecError, OSError) as exc:  # one file, not the run
                    rejected.append((str(src), f"not copied: {exc}"))
            targets = copied
    else:
        targets = [str(p) for p in result.selected]
    listed = [os.path.abspath(t) for t in targets]
    rejects = [*rejected, *((e, "no DataSpec JSON for this page") for e in result.unmatched)]
    verb = "would " if dry_run else ""
    if create_filtered_data:
        verb_copy = "would copy" if dry_run else "copied"
        click.echo(f"{verb_copy} {len(targets)} JSONs into {os.path.abspath(output_dir)}")
    if write_list:
        click.echo(
            f"{verb}write {os.path.join(os.path.abspath(output_dir), LIST_NAME)} "
            f"({len(listed)} paths)"
        )
    click.echo(
        f"{verb}write {os.path.join(os.path.abspath(output_dir), REJECTS_NAME)} "
        f"({len(rejects)} rows)"
    )
    if dry_run:
        for path in listed[:5]:
            click.echo(f"  e.g. {path}")
        return
    if write_list:
        with atomic_open(os.path.join(output_dir, LIST_NAME), "w", newline="\n") as fh:
            for path in listed:
                fh.write(path + "\n")
    write_csv(os.path.join(output_dir, REJECTS_NAME), ("path", "reason"), rejects)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `subset` with `argv` (default: sys.argv); returns the exit status."""
    return invoke(subset, argv, "python -m analyzer.subset")


if __name__ == "__main__":
    raise SystemExit(main())
