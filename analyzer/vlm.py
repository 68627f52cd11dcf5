"""VLM side: the index of per-page VLM JSONs, the optional map, and per-page text stats.

The index holds paths and keys only; a VLM document is read when its page is processed
(`read_vlm`) and dropped afterwards. Text per panel comes from `dataspec.read_panels`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dataspec.errors import DataSpecError, Note
from dataspec.io import read_bytes
from dataspec.keys import PageKey, page_key
from dataspec.normalize import PanelRecord, read_panels, repair
from dataspec.normalize.decode import decode_bytes
from dataspec.paths import IMAGE_EXTS, windows_to_local

from .problems import Problem

__all__ = [
    "REPAIR_CODES",
    "VLM_MAX_BYTES",
    "MapEntry",
    "VlmFile",
    "VlmStats",
    "load_vlm_map",
    "locate_map_vlm",
    "read_vlm",
    "reply_repairs",
    "scan_vlm_dir",
    "vlm_dir_problem",
    "vlm_stats",
]


EMPTY_REPLY = "empty_reply"
"""`DataSpecError.code` of an empty model reply (dataspec's rule; an empty file is one too)."""

VLM_MAX_BYTES = 64 * 1024 * 1024
"""Largest VLM JSON read (64 MiB); one page's analysis is a few KiB, so a bigger file is
reported as a problem, never loaded into memory."""

REPAIR_CODES = frozenset(repair.REPAIR_CODES)
"""Note codes that mean a VLM reply was repaired to be read (the `vlm_repairs` column)."""

TRUNCATED = "truncated"
"""The note code of a reply cut short (read as far as it goes)."""


def reply_repairs(notes: Sequence[Note]) -> tuple[str, ...]:
    """The repair codes among a reply's notes, sorted, each once."""
    return tuple(sorted({n.code for n in notes if n.code in REPAIR_CODES}))


@dataclass(frozen=True, slots=True)
class VlmFile:
    """One VLM JSON: its local path, its path under `--vlm_dir` (if there), its page key."""

    path: str
    rel: str | None
    key: PageKey


def scan_vlm_dir(
    root: str | os.PathLike[str],
    progress: Callable[[int], None] | None = None,
    problems: list[Problem] | None = None,
) -> list[VlmFile]:
    """Every `*.json` under `root` (recursive, sorted by relative path).

    Keys are taken from the path relative to `root`. Symlinked folders are followed, but
    a folder already indexed (a symlink loop, or two links to one folder) is indexed once,
    under the first path met in sorted order. A folder that cannot be read is skipped and
    added to `problems`. `progress` gets a count per folder.
    """
    base = os.path.abspath(os.fspath(root))
    found: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        here = os.path.join(base, rel_dir) if rel_dir else base
        try:
            st = os.stat(here)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(here), key=lambda e: e.name)
        except OSError as exc:
            if problems is not None:
                why = f"folder not read: {exc.strerror or exc}; its VLM JSONs are not indexed"
                problems.append(Problem(here, "", why))
            continue
        subdirs: list[str] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir():
                    subdirs.append(rel)
                elif entry.name.lower().endswith(".json") and entry.is_file():
                    found.append((rel, entry.path))
            except OSError:
                continue
        stack.extend(reversed(subdirs))  # depth first, in name order
        if progress is not None:
            progress(len(entries))
    found.sort()
    return [VlmFile(path, rel, page_key(rel)) for rel, path in found]


def vlm_dir_problem(root: str | os.PathLike[str]) -> str | None:
    """Why `root` cannot be a `--vlm_dir` (missing, not a folder, no `*.json` under it),
    or None. Stops at the first JSON found; symlinked folders are followed, each once."""
    base = os.fspath(root)
    if not os.path.exists(base):
        return "no such folder"
    if not os.path.isdir(base):
        return "not a folder"
    seen: set[tuple[int, int]] = set()
    stack = [base]
    while stack:
        here = stack.pop()
        try:
            st = os.stat(here)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(here))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.name.lower().endswith(".json") and entry.is_file():
                    return None
            except OSError:
                continue
    return "holds no .json file (searched recursively)"


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One `--vlm_map` entry: an image path (None for a bare list item) and a VLM path."""

    image: str | None
    vlm: str
    where: str


_PAIR_IMAGE_KEYS = ("image", "image_path", "img", "page_image_path", "file_name")
_PAIR_VLM_KEYS = ("vlm", "vlm_json", "vlm_json_path", "json", "json_path", "vlm_path")


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTS


def _orient(a: str, b: str) -> tuple[str, str]:
    """(image, vlm) of a pair given either way round: the `.json` side is the VLM."""
    if a.lower().endswith(".json") and not b.lower().endswith(".json"):
        return b, a
    if _is_image(a) or b.lower().endswith(".json"):
        return a, b
    return (b, a) if _is_image(b) else (a, b)


def load_vlm_map(path: str | os.PathLike[str]) -> tuple[list[MapEntry], list[Problem]]:
    """Entries of a VLM map: `{image: vlm}` (either direction), a list of VLM paths, a list
    of `[image, vlm]` pairs, or a list of `{image…, vlm…}` objects.

    Raises `DataSpecError` when the file is unreadable or has none of these shapes;
    unusable entries are reported as problems.
    """
    file = os.fspath(path)
    notes: list[Note] = []
    obj = decode_bytes(read_bytes(file), notes) if os.path.exists(file) else None
    if obj is None:
        raise DataSpecError("no such file", file=file)
    if any(n.code == TRUNCATED for n in notes):  # its last entries would be lost unseen
        raise DataSpecError("the VLM map is cut short (not valid JSON)", file=file)
    entries: list[MapEntry] = []
    problems: list[Problem] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str) and value.strip():
                image, vlm = _orient(str(key), value.strip())
                entries.append(MapEntry(image, vlm, f"$[{key!r}]"))
            else:
                problems.append(Problem(file, f"$[{key!r}]", "value is not a path"))
        return entries, problems
    if not isinstance(obj, list):
        raise DataSpecError("a VLM map must be a JSON object or list", file=file)
    for i, item in enumerate(obj):
        where = f"$[{i}]"
        if isinstance(item, str) and item.strip():
            entries.append(MapEntry(None, item.strip(), where))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item):
            image, vlm = _orient(item[0], item[1])
            entries.append(MapEntry(image, vlm, where))
        elif isinstance(item, dict):
            named: str | None = next(
                (item[k] for k in _PAIR_IMAGE_KEYS if isinstance(item.get(k), str)), None
            )
            json_path: str | None = next(
                (item[k] for k in _PAIR_VLM_KEYS if isinstance(item.get(k), str)), None
            )
            if json_path:
                entries.append(MapEntry(named, json_path, where))
            else:
                problems.append(Problem(file, where, "object names no VLM JSON path"))
        else:
            problems.append(Problem(file, where, "not a path, a pair or an object"))
    return entries, problems


def locate_map_vlm(
    vlm: str,
    map_dir: str,
    vlm_dir: str | None,
    by_rel: dict[str, VlmFile],
) -> VlmFile | None:
    """The VLM file a map entry names, or None when it does not exist.

    Tried in order: the path itself when absolute (WSL-converted), the indexed file whose
    path under `--vlm_dir` is the longest tail (2+ parts) of the entry's path, the path
    relative to the map's folder.
    """
    local = windows_to_local(vlm, vlm_dir)
    candidates = [local] if os.path.isabs(local) else []
    candidates.append(os.path.join(map_dir, local))
    for i, candidate in enumerate(candidates):
        if i == len(candidates) - 1:  # the tails before the map-relative guess
            parts = [p for p in local.replace("\\", "/").split("/") if p and p != "."]
            for depth in range(len(parts), 1, -1):
                found = by_rel.get("/".join(parts[-depth:]))
                if found is not None:
                    return found
        if os.path.isfile(candidate):
            full = os.path.abspath(candidate)
            rel = _under(full, vlm_dir)
            if rel is not None and rel in by_rel:
                return by_rel[rel]
            return VlmFile(full, rel, page_key(rel if rel is not None else full))
    return None


def _under(path: str, root: str | None) -> str | None:
    """`path` relative to `root` (POSIX form) when it lies under it, else None."""
    if root is None:
        return None
    base = os.path.abspath(root)
    try:
        rel = os.path.relpath(path, base)
    except ValueError:  # another drive
        return None
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        return None
    return Path(rel).as_posix()


@dataclass(frozen=True, slots=True)
class VlmStats:
    """Per-page VLM numbers of the analysis CSV."""

    panels: int
    with_text: int
    dialogue: int
    narration: int
    sfx: int

    @property
    def text_coverage(self) -> float:
        """Share of VLM panels with any lettered text (0 when there are no panels)."""
        return self.with_text / self.panels if self.panels else 0.0


def read_vlm(
    path: str,
    *,
    page_size: tuple[int, int] | None = None,
    caption_as_narration: bool = False,
    notes: list[Note] | None = None,
) -> list[PanelRecord]:
    """The panels of one VLM JSON (dataspec's text rules); `notes` (if given) gets what
    reading had to repair (a BOM, cp1252, NaN literals, JSON taken from surrounding text,
    the repairs of `REPAIR_CODES`, a reply cut short: `truncated`).

    Raises `DataSpecError` naming the file for anything that cannot be read as one: not a
    regular file, larger than `VLM_MAX_BYTES`, unreadable, not JSON, nested too deeply,
    numbers beyond any range, no panel list. An empty model reply (an empty file, `message:
    null`, empty content, zero completion tokens) has `code == EMPTY_REPLY`.
    """
    notes = notes if notes is not None else []
    obj: Any = None
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DataSpecError(f"cannot read: {exc.strerror or exc}", file=path) from None
    if not stat.S_ISREG(st.st_mode):
        raise DataSpecError("not a regular file", file=path)
    if st.st_size > VLM_MAX_BYTES:
        raise DataSpecError(
            f"{st.st_size} bytes: larger than the {VLM_MAX_BYTES >> 20} MiB a page's VLM JSON "
            "may have (not read)",
            file=path,
        )
    try:
        raw = _read_regular(path, st.st_size)
        if not raw or raw.isspace():
            raise DataSpecError("empty reply (empty file)", file=path, code=EMPTY_REPLY)
        obj = decode_bytes(raw, notes)
        records, more = read_panels(
            obj, page_size=page_size, caption_as_narration=caption_as_narration
        )
        notes += more
    except DataSpecError as exc:
        if obj is None and exc.reason.startswith("empty file"):
            raise DataSpecError("empty reply (empty file)", file=path, code=EMPTY_REPLY) from None
        if exc.file is None:
            raise exc.renamed(path) from None
        raise
    except RecursionError:
        raise DataSpecError("unreadable VLM JSON (nested too deeply)", file=path) from None
    except (orjson.JSONDecodeError, ValueError, TypeError, ArithmeticError) as exc:
        raise DataSpecError(
            f"unreadable VLM JSON ({type(exc).__name__}: {exc})", file=path
        ) from None
    return records


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
"""Read-only; never blocking, should a FIFO take the place of the file just `stat`ed."""


def _read_regular(path: str, size: int) -> bytes:
    """The bytes of the regular file at `path` whose `stat` gave `size`: one open, one
    read when the size still holds (more reads only if it changed). `DataSpecError`
    naming the file when it cannot be read."""
    try:
        fd = os.open(path, _READ_FLAGS)
        try:
            data = os.read(fd, size + 1)
            if len(data) != size:  # grown, shrunk, or a short read: read to the end
                parts = [data]
                while more := os.read(fd, max(size, 1 << 16)):
                    parts.append(more)
                data = b"".join(parts)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataSpecError(f"cannot read: {exc.strerror or exc}", file=path) from exc
    return data


def vlm_stats(records: list[PanelRecord]) -> VlmStats:
    """Panel and text counts of a page's VLM panels (one pass over them)."""
    with_text = dialogue = narration = sfx = 0
    for r in records:
        text = r.text
        said, told, sounded = bool(text.dialogue), bool(text.narration), bool(text.sfx)
        dialogue += said
        narration += told
        sfx += sounded
        with_text += said or told or sounded  # `not text.is_empty()`
    return VlmStats(len(records), with_text, dialogue, narration, sfx)
