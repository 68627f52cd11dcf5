"""Problems met on the way (bad input that did not stop the run), and CSV helpers."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import click

from dataspec.io import atomic_open

__all__ = ["PROBLEM_COLUMNS", "Problem", "echo_problems", "shard_path", "write_csv"]

PROBLEM_COLUMNS = ("file", "where", "problem")


class Problem(NamedTuple):
    """One piece of bad input: the file, where in it, and what is wrong."""

    file: str
    where: str
    problem: str

    def __str__(self) -> str:
        where = f" {self.where}" if self.where else ""
        return f"{self.file}{where}: {self.problem}"


def write_csv(path: str | os.PathLike[str], header: Sequence[str], rows: Iterable[Any]) -> int:
    """Write a CSV atomically (header first); returns the number of rows."""
    count = 0
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def echo_problems(problems: Sequence[Problem], limit: int = 5) -> None:
    """Print the first few problems on stderr, and how many there were."""
    for problem in problems[:limit]:
        click.echo(f"warning: {problem}", err=True)
    if len(problems) > limit:
        click.echo(f"warning: … {len(problems) - limit} more problems", err=True)
    sys.stderr.flush()


def shard_path(path: str | os.PathLike[str], shard: tuple[int, int] | None) -> str:
    """`out/x.csv` → `out/x.shard-00003-of-00016.csv` for shard (3, 16); unchanged without."""
    text = os.fspath(path)
    if shard is None:
        return text
    index, count = shard
    base, ext = os.path.splitext(text)
    return f"{base}.shard-{index:05d}-of-{count:05d}{ext}"


def csv_float(value: float) -> str:
    """A CSV cell of a float: rounded to 4 places, shortest form."""
    return repr(round(value, 4))
