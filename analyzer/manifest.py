"""`--manifest`: the user's page list, CSV `canonical_id,absolute_image_path`.

A canonical id is the image's path relative to its collection root without extension
(`CalibreComics_extracted/Saga/JPG4CBZ/0001`); its analysis is `<canonical_id>.json` under
`--vlm_dir`. The manifest serves twice: the page whose VLM JSON is `<canonical_id>.json`
tries the listed image first, and a page whose image path is a listed one matches that
canonical id's JSON (the `canonical_id` tier).

The file: a header row naming the two columns (any order, more columns allowed; without
such a header the first two columns are taken as these), UTF-8 with or without a byte
order mark (else read as cp1252), blank lines skipped, Windows paths as written. A row
that cannot be used is reported as a problem and skipped; a missing file, or one without
a single usable row, is a `ManifestError`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field

from dataspec.paths import is_windows_path

from .match import canonical_key, image_key
from .problems import Problem

__all__ = ["Manifest", "ManifestError", "load_manifest"]

ID_COLUMN = "canonical_id"
IMAGE_COLUMN = "absolute_image_path"


class ManifestError(Exception):
    """The manifest cannot be used at all (missing, unreadable, no usable row)."""


@dataclass
class Manifest:
    """The usable rows of a manifest, keyed both ways."""

    path: str
    by_image: dict[str, str] = field(default_factory=dict)
    """`image_key(image path)` → canonical id (`/` separators, case as written)."""
    images: dict[str, str] = field(default_factory=dict)
    """`canonical_key(canonical id)` → image path as written."""
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def image_for(self, vlm_rel: str | None) -> str | None:
        """The listed image of the VLM JSON at `vlm_rel` under --vlm_dir, if listed."""
        if not vlm_rel or not vlm_rel.lower().endswith(".json"):
            return None
        return self.images.get(canonical_key(vlm_rel[:-5]))


def _text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ManifestError(f"{path}: --manifest cannot be read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _bad_id(cid: str) -> str | None:
    """Why a canonical id cannot name a file under --vlm_dir, or None."""
    parts = cid.replace("\\", "/").split("/")
    if cid.startswith(("/", "\\")) or is_windows_path(cid):
        return "canonical_id is an absolute path"
    if ".." in parts:
        return "canonical_id climbs out of --vlm_dir (..)"
    if not canonical_key(cid):
        return "canonical_id is empty"
    return None


def load_manifest(path: str) -> Manifest:
    """Read a manifest; bad rows become problems (`line N`), never fatal."""
    if not os.path.isfile(path):
        raise ManifestError(f"{path}: --manifest: no such file")
    manifest = Manifest(path)
    problems = manifest.problems
    reader = csv.reader(io.StringIO(_text(path), newline=""))
    id_col, image_col = 0, 1
    header_seen = False
    for row in reader:
        line = reader.line_num
        fields = [f.strip() for f in row]
        if not any(fields):
            continue
        if not header_seen:
            header_seen = True
            names = [f.lstrip("\ufeff").casefold() for f in fields]
            if ID_COLUMN in names and IMAGE_COLUMN in names:
                id_col, image_col = names.index(ID_COLUMN), names.index(IMAGE_COLUMN)
                continue
            if ID_COLUMN in names or IMAGE_COLUMN in names:
                problems.append(
                    Problem(path, f"line {line}", f"header lacks {ID_COLUMN} or {IMAGE_COLUMN}")
                )
                continue
            # no header: the first two columns, and this row is data
        if len(fields) <= max(id_col, image_col):
            problems.append(Problem(path, f"line {line}", f"{len(fields)} field(s), not 2"))
            continue
        cid, image = fields[id_col], fields[image_col]
        why = _bad_id(cid) if cid else "no canonical_id"
        if why is None and not image:
            why = "no image path"
        key = canonical_key(cid)
        if why is None and key in manifest.images:
            if image_key(manifest.images[key]) == image_key(image):
                continue  # the same row again
            why = f"canonical_id already listed (with {manifest.images[key]}): row not used"
        if why is not None:
            problems.append(Problem(path, f"line {line}", why))
            continue
        cid = cid.replace("\\", "/").strip("/")
        manifest.images[key] = image
        ikey = image_key(image)
        if ikey in manifest.by_image:
            problems.append(
                Problem(
                    path,
                    f"line {line}",
                    f"image already listed as {manifest.by_image[ikey]}: "
                    "its page matches neither by the manifest",
                )
            )
            manifest.by_image[ikey] = ""
        else:
            manifest.by_image[ikey] = cid
    if not manifest.images:
        raise ManifestError(
            f"{path}: --manifest has no usable row (want {ID_COLUMN},{IMAGE_COLUMN})"
        )
    return manifest
