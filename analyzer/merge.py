"""`python -m analyzer.merge`: join the outputs of a sharded run (`--shard I/N`).

A shard writes `<name>.shard-IIIII-of-NNNNN<ext>` for each output `<name><ext>`. Given
the folders (or the output names) of a run, merge finds every shard group, checks that
all N shards are there, and writes `<name><ext>`: CSVs joined under one header, text
lists concatenated, JSON maps combined. Shards are in page order, so the merged files
equal those of an unsharded run.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import click
import orjson

from dataspec.io import atomic_open, atomic_write_bytes, read_bytes

from .cli import flag, invoke
from .outputs import CSV_COLUMNS, SKIP_COLUMNS

__all__ = ["MergeError", "find_groups", "main", "merge", "merge_group"]

_SHARD = re.compile(r"^(?P<base>.*)\.shard-(?P<i>\d{5})-of-(?P<n>\d{5})(?P<ext>\.[^.]*)?$")


class MergeError(Exception):
    """Shards missing, of different runs, or with different headers."""


@dataclass(frozen=True)
class _Group:
    target: str
    count: int
    shards: dict[int, str]


def find_groups(paths: Sequence[str]) -> list[_Group]:
    """Shard groups in the given folders, or of the given output names."""
    dirs = {os.path.abspath(p) for p in paths if os.path.isdir(p)}
    names = {os.path.abspath(p) for p in paths if not os.path.isdir(p)}
    found: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
    for folder in sorted(dirs | {os.path.dirname(n) for n in names}):
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            m = _SHARD.match(name)
            if not m:
                continue
            target = os.path.join(folder, m["base"] + (m["ext"] or ""))
            if folder in dirs or target in names:
                found[(target, int(m["n"]))][int(m["i"])] = os.path.join(folder, name)
    missing_names = names - {t for t, _ in found}
    if missing_names:
        raise MergeError("no shards found for " + ", ".join(sorted(missing_names)))
    counts: dict[str, list[int]] = defaultdict(list)
    for target, count in found:
        counts[target].append(count)
    for target, ns in sorted(counts.items()):
        if len(ns) > 1:
            raise MergeError(f"{target}: shards of runs with different N ({sorted(ns)})")
    return [_Group(t, n, shards) for (t, n), shards in sorted(found.items())]


def _check_complete(group: _Group) -> None:
    missing = [i for i in range(group.count) if i not in group.shards]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise MergeError(f"{group.target}: missing shard(s) {shown} of {group.count}")


def merge_group(group: _Group) -> int:
    """Write one merged output; returns its rows (CSV), lines (text) or keys (JSON)."""
    _check_complete(group)
    shards = [group.shards[i] for i in range(group.count)]
    ext = os.path.splitext(group.target)[1].lower()
    if ext == ".csv":
        return _merge_csv(group.target, shards)
    if ext == ".json":
        return _merge_json(group.target, shards)
    return _merge_lines(group.target, shards)


def _merge_csv(target: str, shards: Sequence[str]) -> int:
    rows = 0
    header: list[str] | None = None
    with atomic_open(target, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for shard in shards:
            with open(shard, encoding="utf-8", newline="") as fh:
                reader = csv.reader(fh)
                head = next(reader, None)
                if head is None:
                    raise MergeError(f"{shard}: empty CSV (no header)")
                if header is None:
                    header = head
                    writer.writerow(header)
                elif head != header:
                    raise MergeError(f"{shard}: header differs from {shards[0]}")
                for row in reader:
                    writer.writerow(row)
                    rows += 1
    return rows


def _merge_lines(target: str, shards: Sequence[str]) -> int:
    lines = 0
    with atomic_open(target, "w", newline="\n") as out:
        for shard in shards:
            with open(shard, encoding="utf-8") as fh:
                for line in fh:
                    out.write(line if line.endswith("\n") else line + "\n")
                    lines += 1
    return lines


def _merge_json(target: str, shards: Sequence[str]) -> int:
    merged: dict[str, object] = {}
    for shard in shards:
        data = orjson.loads(read_bytes(shard))
        if not isinstance(data, dict):
            raise MergeError(f"{shard}: not a JSON object")
        for key, value in data.items():
            if key in merged and merged[key] != value:
                raise MergeError(f"{shard}: {key!r} maps to another value in an earlier shard")
            merged[key] = value
    data_out = orjson.dumps(merged, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    atomic_write_bytes(target, data_out + b"\n")
    return len(merged)


def merge(paths: Sequence[str], *, remove_shards: bool = False) -> list[tuple[str, int, int]]:
    """Merge every shard group found; returns (output, shards, rows) per group."""
    groups = find_groups(paths)
    if not groups:
        raise MergeError("no shard files (*.shard-IIIII-of-NNNNN.*) found")
    for group in groups:  # every group complete before anything is written
        _check_complete(group)
    done = [(g.target, g.count, merge_group(g)) for g in groups]
    if remove_shards:
        for group in groups:
            for shard in group.shards.values():
                os.remove(shard)
    return done


def _report(target: str) -> list[str]:
    """A short summary of a merged analysis CSV or skip log."""
    with open(target, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        rows = list(reader)
    if header == CSV_COLUMNS:
        col = {name: i for i, name in enumerate(CSV_COLUMNS)}
        matched = sum(r[col["has_vlm_data"]] == "True" for r in rows)
        perfect = sum(r[col["is_perfect_match"]] == "True" for r in rows)
        tiers = Counter(r[col["match_tier"]] for r in rows)
        repaired = sum(bool(r[col["vlm_repairs"]]) for r in rows)
        truncated = sum(r[col["vlm_truncated"]] == "True" for r in rows)
        return [
            f"  pages {len(rows)}, matched {matched}, perfect {perfect}; tiers: "
            + ", ".join(f"{k} {v}" for k, v in sorted(tiers.items())),
            f"  vlm replies: repaired {repaired}; truncated {truncated}",
        ]
    if header == SKIP_COLUMNS:
        reasons = Counter(r[4] for r in rows)
        return ["  skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))]
    return []


@click.command(
    name="merge",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.argument("paths", nargs=-1, required=True)
@flag("remove_shards", is_flag=True, help="Delete the shard files after a successful merge.")
def merge_command(paths: tuple[str, ...], remove_shards: bool) -> None:
    """Join shard outputs: PATHS are folders holding them, or the unsharded output names."""
    try:
        done = merge(paths, remove_shards=remove_shards)
    except (MergeError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    for target, count, rows in done:
        click.echo(f"merged {count} shards → {target} ({rows})")
        if target.lower().endswith(".csv"):
            for line in _report(target):
                click.echo(line)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `merge` with `argv` (default: sys.argv); returns the exit status."""
    return invoke(merge_command, argv, "python -m analyzer.merge")


if __name__ == "__main__":
    raise SystemExit(main())
