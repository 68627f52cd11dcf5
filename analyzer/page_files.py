"""DataSpec page files: their names (`output_name`, one per `--dataspec_naming`), the checks
that keep every name inside the output folder and apart from the others in a run
(`inside`), writing a page only when its bytes changed (`write_if_changed`), and the temp
files a killed run left (`remove_stale_temps`)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from dataspec.io import write_atomic
from dataspec.paths import image_stem, is_windows_path, posix_parts

__all__ = [
    "MAX_PART_BYTES",
    "TAIL_PARTS",
    "UnsafeOutputError",
    "begin_output_run",
    "collision_key",
    "end_output_run",
    "inside",
    "output_name",
    "remove_stale_temps",
    "write_if_changed",
]

_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f\\]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
MAX_PART_BYTES = 200
"""Longest file or folder name written (UTF-8 bytes); file systems allow 255."""
TAIL_PARTS = 3
"""Folders + file kept from the image path when the VLM JSON is not under --vlm_dir."""


@functools.lru_cache(maxsize=16384)
def _safe_part(part: str) -> str:
    """A path part that is legal on Windows and POSIX and cannot climb out of a folder.

    Characters Windows refuses become `_`, trailing dots and spaces go, a device name
    (`CON`, `nul.json`, `COM1`…) gets a `_`, and a name longer than `MAX_PART_BYTES`
    is cut, keeping its extension and a hash of the whole name (so cut names stay apart).
    """
    cleaned = _UNSAFE.sub("_", part).rstrip(" .")
    if cleaned in ("", ".", ".."):
        return "_"
    match = _RESERVED.match(cleaned)
    if match:
        cleaned = f"{match.group(1)}_{match.group(2) or ''}"
    if len(cleaned.encode("utf-8")) > MAX_PART_BYTES:
        stem, ext = os.path.splitext(cleaned)
        ext = ext if len(ext.encode("utf-8")) <= 16 else ""
        digest = hashlib.sha1(cleaned.encode("utf-8")).hexdigest()[:10]
        room = MAX_PART_BYTES - len(ext.encode("utf-8")) - len(digest) - 1
        cut = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
        cleaned = f"{cut}_{digest}{ext}"
    return cleaned


def _parts(path: str) -> list[str]:
    text = path.replace("\\", "/")
    if is_windows_path(path):
        text = text[2:]
    return [p for p in posix_parts(text) if p not in ("/", "", ".")]


def _with_json(name: str) -> str:
    return image_stem(name) + ".json"


def output_name(naming: str, *, vlm_rel: str | None, image_path: str, image_id: int | str) -> str:
    """The output file, relative to the out dir (POSIX form).

    `preserve_tree`: the VLM JSON's path under --vlm_dir, else the last `TAIL_PARTS` parts
    of the image path with `.json`. `hash`: flat, `<series>_<stem>_<hash>.json` where the
    hash is of the image id and path. Every part is made safe (`_safe_part`: no `..`, no
    drive, no characters or device names Windows refuses, at most `MAX_PART_BYTES`), so
    the name always lies inside the out dir; `inside` checks the file system on the way.
    """
    if naming == "hash":
        parts = _parts(image_path) or [str(image_id)]
        series = parts[-2] if len(parts) > 1 else ""
        stem = _with_json(parts[-1])[: -len(".json")]
        digest = hashlib.sha1(f"{image_id}\0{image_path}".encode()).hexdigest()[:10]
        name = "_".join(p for p in (series, stem, digest) if p)
        return _safe_part(name + ".json")
    if vlm_rel:
        parts = [_safe_part(p) for p in _parts(vlm_rel)]
        return "/".join(parts)
    parts = _parts(image_path)[-TAIL_PARTS:] or [str(image_id)]
    parts[-1] = _with_json(parts[-1])
    return "/".join(_safe_part(p) for p in parts)


def collision_key(rel: str) -> str:
    """Output names that would be one file on a case-insensitive file system compare equal."""
    return unicodedata.normalize("NFC", rel).casefold()


class UnsafeOutputError(ValueError):
    """An output path that would leave the out dir or write through a symlink."""


class _Checks:
    """What `inside` learned during one run (`begin_output_run`): out dirs made absolute,
    folders found to be plain folders, and the last output file's `lstat` (for
    `write_if_changed`)."""

    def __init__(self) -> None:
        self.bases: dict[str, str] = {}
        self.folders: set[str] = set()
        self.last: tuple[str, os.stat_result | None] | None = None


_RUN: _Checks | None = None


def begin_output_run() -> None:
    """From now until `end_output_run`, `inside` checks each folder of an out tree once
    (the analyzer never makes a symlink, so a folder found plain stays plain) and tells
    `write_if_changed` what it found at the file. Called at the start of each run."""
    global _RUN
    _RUN = _Checks()


def end_output_run() -> None:
    """Back to checking every folder on every call."""
    global _RUN
    _RUN = None


def inside(out_dir: str, rel: str) -> str:
    """The absolute output path of `rel` under `out_dir`, checked on the file system.

    `UnsafeOutputError` when the path would leave the out dir, when a folder or the file
    on the way already exists as a symlink (a write through it could land anywhere), or
    when the file exists as a FIFO, socket or device. (A folder where the file should be
    is left to the write, which fails.) Only what lies below the out dir is checked: the
    out dir itself may be a symlink. During a run (`begin_output_run`) a folder found
    plain is not checked again.
    """
    run = _RUN
    base = run.bases.get(out_dir) if run is not None else None
    if base is None:
        base = os.path.abspath(out_dir)
        if run is not None:
            run.bases[out_dir] = base
    parts = rel.split("/")
    plain = "" not in parts and "." not in parts and ".." not in parts
    if plain and os.sep == "/" and not base.startswith("//"):  # (a `//` root: the long way)
        full = base + rel if base == "/" else base + "/" + rel  # what the checks below give
    else:
        full = os.path.abspath(os.path.join(base, *parts))
        if full == base or os.path.commonpath([base, full]) != base:
            raise UnsafeOutputError(f"output {rel!r} leaves {base}")
        parts = os.path.relpath(full, base).split(os.sep)
    folders = run.folders if run is not None else None
    here = base
    found: os.stat_result | None = None
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        last = i == len(parts) - 1
        if not last and folders is not None and here in folders:
            continue
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            break  # the rest is created by the write, as plain folders
        except OSError as exc:
            raise UnsafeOutputError(f"{here}: cannot check ({exc.strerror or exc})") from None
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.path.realpath(here)
            raise UnsafeOutputError(f"{here} is a symlink (to {target}): not written through")
        if last and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO would block
            raise UnsafeOutputError(f"{here} exists and is not a regular file")
        if not last and not stat.S_ISDIR(mode):
            raise UnsafeOutputError(f"{here} exists and is not a folder")
        if last:
            found = st
        elif folders is not None:
            folders.add(here)
    if run is not None:
        run.last = (full, found)
    return full


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def write_if_changed(path: str, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes.

    Returns True when written. A rerun after a crash thus leaves the files the crashed run
    finished untouched (same bytes, same mtime) and writes the rest. Right after `inside`
    checked `path` in a run, its `lstat` is used: a missing file or one of another size is
    written without being opened.
    """
    run = _RUN
    known = None
    if run is not None:
        known, run.last = run.last, None
    checked = known is not None and known[0] == path
    if checked:
        st = known[1] if known is not None else None
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
            write_atomic(path, data)
            return True
    if _holds(path, data, checked):
        return False
    write_atomic(path, data)
    return True


def _holds(path: str, data: bytes, checked: bool = False) -> bool:
    """True when the file at `path` is a regular file of exactly these bytes (`checked`:
    its `lstat` just said a regular file of that size)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return False
    try:
        if not checked:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
                return False
        have = os.read(fd, len(data) + 1)
        while 0 < len(have) < len(data):  # a short read (network file systems)
            more = os.read(fd, len(data) + 1 - len(have))
            if not more:
                break
            have += more
        return have == data
    except OSError:
        return False
    finally:
        os.close(fd)


_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
"""A temp file of `dataspec.io.atomic_open`: `.<target name>.<8 random chars>.tmp`."""


def remove_stale_temps(paths: Iterable[str]) -> int:
    """Remove the temp files a killed run left beside these output files; returns how many.

    Only temp files named after one of `paths` are touched (`.<name>.<random>.tmp` in the
    same folder), so runs writing other files into the same folders (other shards) are
    never disturbed.
    """
    by_dir: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        folder, name = os.path.split(os.path.abspath(path))
        by_dir[folder].add(name)
    removed = 0
    for folder, names in sorted(by_dir.items()):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            match = _TEMP.match(entry.name)
            if match is None or match["name"] not in names:
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
    return removed
