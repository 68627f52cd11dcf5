"""DataSpec emission: detections + VLM panels → one canonical page file per matched page.

Boxes: panel detections at or above the score threshold, converted by dataspec's box
rules (clipped to the page, integer pixels; a box they drop does not count), put in
reading order by `dataspec.reading_order`.

Pairing (detections in reading order ↔ VLM panels in their order):

- every VLM panel has a box: pairs by overlap, greedily by IoU (≥ `PAIR_MIN_IOU`),
  one to one, highest first;
- otherwise, equal counts of a reply that was not cut short: the i-th detection gets the
  i-th VLM panel;
- otherwise (unequal counts, no VLM boxes) nothing is paired: which panel a VLM
  panel describes would be a guess.

A detection without a partner is written with empty text; a VLM panel without a partner is
left out (their counts are in `source.unpaired_detections` / `source.unpaired_vlm_panels`).
A page with no pair at all is skipped (`zero_pairs`) unless `keep_unpaired` is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from dataspec import Page, PageSize, Panel, PanelText, Source, reading_order
from dataspec.errors import Note
from dataspec.io import atomic_write_bytes
from dataspec.normalize import PanelRecord
from dataspec.normalize.boxes import BoxFrame, RawBox
from dataspec.paths import image_stem, is_windows_path

__all__ = [
    "PAIR_MIN_IOU",
    "SKIP_REASONS",
    "Detection",
    "UnsafeOutputError",
    "build_page",
    "collision_key",
    "detections",
    "inside",
    "output_name",
    "pair_panels",
    "remove_stale_temps",
    "write_if_changed",
]

PAIR_MIN_IOU = 0.3
"""Least IoU for a detection and a VLM box to be paired."""

SKIP_REASONS = {
    "not_selected": "not in the subsets chosen with --emit_dataspec_for",
    "dataspec_limit": "--dataspec_limit files were already written",
    "output_collision": "an earlier page (in page order) has the same output file",
    "missing_image": "image not found under --image_roots (with --require_image_exists)",
    "bad_image": "image found but not usable: unreadable, not an image, truncated, or more "
    "pixels than any page (with --require_image_exists; the file and why are in the errors CSV)",
    "no_detections": "no panel detections at all for this image",
    "no_dets_after_threshold": "no usable panel detection at or above --dataspec_min_det_score",
    "equal_count_mismatch": "detections ≠ VLM panels (with --dataspec_require_equal_counts)",
    "zero_pairs": "no detection could be paired with a VLM panel without guessing",
    "unsafe_output": "the output file would be written through a symlink in the out tree, or "
    "over a FIFO, socket or device: nothing written (the path is in the errors CSV)",
    "exception:<Type>": "building or writing the page raised <Type> (message in the errors CSV)",
}
"""Why a matched page was not written, checked in this order."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Detection:
    """One usable panel detection: its pixel box and score."""

    box: Box
    score: float


def detections(
    boxes: np.ndarray, scores: np.ndarray, threshold: float, size: tuple[int, int] | None
) -> list[Detection]:
    """Detections at or above `threshold`, in pixels by dataspec's box rules, in reading order."""
    frame = BoxFrame(size)
    notes: list[Note] = []
    kept: list[Detection] = []
    for values, score in zip(boxes.tolist(), scores.tolist(), strict=True):
        if score < threshold:
            continue
        box = frame.to_pixels(RawBox(tuple(values), "xywh", "bbox"), notes, "$")
        if box is not None:
            kept.append(Detection(box, min(max(float(score), 0.0), 1.0)))
    order = reading_order([d.box for d in kept])
    return [kept[i] for i in order]


def _iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def pair_panels(
    dets: Sequence[Detection], vlm: Sequence[PanelRecord], *, by_order: bool = True
) -> tuple[list[tuple[int, int]], str]:
    """(detection index, VLM index) pairs and the rule used: `overlap`, `order` or `none`.

    `by_order=False` (a truncated reply, whose panel count says nothing) pairs by overlap
    only.
    """
    if dets and vlm and all(r.box is not None for r in vlm):
        scored = sorted(
            (
                (-_iou(d.box, r.box), i, j)  # type: ignore[arg-type]
                for i, d in enumerate(dets)
                for j, r in enumerate(vlm)
            ),
        )
        used_d: set[int] = set()
        used_v: set[int] = set()
        pairs: list[tuple[int, int]] = []
        for neg, i, j in scored:
            if -neg < PAIR_MIN_IOU:
                break
            if i not in used_d and j not in used_v:
                used_d.add(i)
                used_v.add(j)
                pairs.append((i, j))
        return sorted(pairs), "overlap"
    if by_order and dets and len(dets) == len(vlm):
        return [(i, i) for i in range(len(dets))], "order"
    return [], "none"


def build_page(
    *,
    image_path: str,
    size: tuple[int, int] | None,
    dets: Sequence[Detection],
    vlm: Sequence[PanelRecord],
    pairs: Sequence[tuple[int, int]],
    pairing: str,
    image_id: int | str,
    vlm_json_path: str,
    match_tier: str,
    vlm_repairs: Sequence[str] = (),
    vlm_truncated: bool = False,
) -> Page:
    """The canonical page: every detection as a panel (in reading order), paired text on it.

    `source` holds the provenance; `vlm_repairs` (the repairs the VLM reply needed) and
    `vlm_truncated` (the reply was cut short) only when there are any.
    """
    partner = dict(pairs)
    panels: list[Panel] = []
    for i, det in enumerate(dets):
        j = partner.get(i)
        record = vlm[j] if j is not None else None
        panels.append(
            Panel(
                panel_coords=det.box,
                text=record.text if record is not None else PanelText(),
                score=det.score,
                **(record.details() if record is not None else {}),
            )
        )
    extra: dict[str, object] = {"match_tier": match_tier, "pairing": pairing}
    if len(dets) > len(pairs):
        extra["unpaired_detections"] = len(dets) - len(pairs)
    if len(vlm) > len(pairs):
        extra["unpaired_vlm_panels"] = len(vlm) - len(pairs)
    if vlm_repairs:
        extra["vlm_repairs"] = list(vlm_repairs)
    if vlm_truncated:
        extra["vlm_truncated"] = True
    return Page(
        page_image_path=image_path,
        panels=panels,
        reading_order=list(range(len(panels))),
        page_size=PageSize(width=size[0], height=size[1]) if size else None,
        source=Source.model_validate(
            {"coco_image_id": image_id, "vlm_json_path": vlm_json_path, **extra}
        ),
    )


# --- naming --------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[<>:"|?*\x00-\x1f\\]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)
MAX_PART_BYTES = 200
"""Longest file or folder name written (UTF-8 bytes); file systems allow 255."""
TAIL_PARTS = 3
"""Folders + file kept from the image path when the VLM JSON is not under --vlm_dir."""


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
    return [p for p in PurePosixPath(text).parts if p not in ("/", "", ".")]


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


def inside(out_dir: str, rel: str) -> str:
    """The absolute output path of `rel` under `out_dir`, checked on the file system.

    `UnsafeOutputError` when the path would leave the out dir, when a folder or the file
    on the way already exists as a symlink (a write through it could land anywhere), or
    when the file exists as a FIFO, socket or device. (A folder where the file should be
    is left to the write, which fails.) Only what lies below the out dir is checked: the
    out dir itself may be a symlink.
    """
    base = os.path.abspath(out_dir)
    full = os.path.abspath(os.path.join(base, *rel.split("/")))
    if full == base or os.path.commonpath([base, full]) != base:
        raise UnsafeOutputError(f"output {rel!r} leaves {base}")
    parts = os.path.relpath(full, base).split(os.sep)
    here = base
    for i, part in enumerate(parts):
        here = os.path.join(here, part)
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            break  # the rest is created by the write, as plain folders
        except OSError as exc:
            raise UnsafeOutputError(f"{here}: cannot check ({exc.strerror or exc})") from None
        if stat.S_ISLNK(mode):
            target = os.path.realpath(here)
            raise UnsafeOutputError(f"{here} is a symlink (to {target}): not written through")
        last = i == len(parts) - 1
        if last and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO would block
            raise UnsafeOutputError(f"{here} exists and is not a regular file")
        if not last and not stat.S_ISDIR(mode):
            raise UnsafeOutputError(f"{here} exists and is not a folder")
    return full


def write_if_changed(path: str, data: bytes) -> bool:
    """Write `data` atomically unless the file already holds exactly these bytes.

    Returns True when written. A rerun after a crash thus leaves the files the crashed run
    finished untouched (same bytes, same mtime) and writes the rest.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(len(data) + 1) == data:
                return False
    except OSError:
        pass
    atomic_write_bytes(path, data)
    return True


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
