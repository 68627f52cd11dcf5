"""The run folder: its fixed output names, the files written into it (atomically), what
counts as an earlier run there (`--resume` / `--overwrite`), and stray temp files."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
from pathlib import Path
from typing import Any

import orjson

from dataspec.io import atomic_write_bytes

from .cli import output_bytes


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl: one JSON line per epoch record."""
    atomic_write_bytes(
        path, b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in history)
    )


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """A CSV (file names written back as their bytes, see `output_bytes`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, output_bytes(buf.getvalue()))


def write_skips(path: Path, skips: dict[str, list[str]]) -> None:
    """skipped_pages.csv: path, reason (naming the file), kind; sorted by path."""
    rows = [[p, *reason_kind] for p, reason_kind in sorted(skips.items())]
    write_csv(path, ["path", "reason", "kind"], rows)


def write_lenient(path: Path, lenient: dict[str, str]) -> None:
    """lenient_pages.csv: path, the lenient load's note codes."""
    write_csv(path, ["path", "notes"], [[p, n] for p, n in sorted(lenient.items())])


_TEMP = re.compile(
    r"^\.(latest\.pt|best\.pt|epoch_\d+\.pt|config\.json|metrics\.jsonl|skipped_pages\.csv"
    r"|lenient_pages\.csv)\..+\.tmp$"
)
"""Temp files of our atomic writes (`dataspec.io.atomic_open`) beside the run's outputs."""


def remove_stale_temps(out_dir: Path) -> int:
    """Delete the temp files a killed run left in `out_dir` (never read: every output is
    replaced by rename); returns how many. Only our own temp-file names are touched."""
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(out_dir):
            if _TEMP.match(entry.name) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


_OUTPUTS = re.compile(
    r"^(latest\.pt|best\.pt|epoch_\d+\.pt|config\.json|metrics\.jsonl|skipped_pages\.csv"
    r"|lenient_pages\.csv)$"
)
"""The run's own output names (fixed: never taken from inputs)."""

_RUN = re.compile(r"^(latest\.pt|best\.pt|epoch_\d+\.pt|metrics\.jsonl)$")
"""Outputs that mean a folder holds a run (one that failed before writing any has none)."""


def _names(out_dir: Path, pattern: re.Pattern[str]) -> list[str]:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return sorted(
            e.name
            for e in os.scandir(out_dir)
            if pattern.match(e.name) and not e.is_dir(follow_symlinks=False)
        )
    return []


def earlier_run(out_dir: Path) -> list[str]:
    """The checkpoints and metrics of a run already in `out_dir` (names; [] for none)."""
    return _names(out_dir, _RUN)


def refusal(out_dir: Path, held: list[str]) -> str:
    """Why a run into `out_dir`, which holds `held`, does not start."""
    listed = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
    listed = listed or "checkpoints or metrics, seen by rank 0"
    return (
        f"--output_dir {out_dir} already holds a run ({listed}); nothing was changed. "
        "Give --resume to continue it, --overwrite to replace it, or another --output_dir"
    )


def remove_outputs(out_dir: Path) -> str:
    """Delete an earlier run's outputs from `out_dir` (our output names only; a symlink
    is unlinked, never followed); returns the names removed, comma separated."""
    removed = []
    for name in _names(out_dir, _OUTPUTS):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out_dir / name)
            removed.append(name)
    return ", ".join(removed)
