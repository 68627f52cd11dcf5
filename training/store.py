"""The embedding store: a Zarr group of page and panel embeddings with one metadata row
per page, written in chunks as `training.embed` goes, resumable after a kill.

Layout of `EMB/embeddings.zarr` (N pages, P = the checkpoint's `max_panels` slots, D = its
`dim`; a page's panel slots hold its first P panels in reading order, so slot = reading
position):

| array | shape, dtype | holds |
|---|---|---|
| `page_embedding` | (N, D) float | the model's page embedding (attention pooling) |
| `page_image` | (N, D) float | the vision encoder on the whole page image (image queries) |
| `page_look` | (N, 256) float | the look (`training.look`: a normalised 16 x 16 grey thumbnail) |
| `panel_embedding` | (N, P, D) float | each panel's state in its page's context |
| `panel_vision`, `panel_text` | (N, P, D) float | vision / text encoder outputs (text: 0 if off) |
| `panel_mask` | (N, P) bool | the slot holds a panel |
| `panel_text_state` | (N, P) int8 | 0 present, 1 none, 2 unknown; -1 empty slot |
| `panel_box` | (N, P, 4) int32 | x, y, w, h in page pixels (clamped to the image) |
| `panel_index` | (N, P) int16 | the panel's index in the page's `panels` list; -1 empty slot |
| `panel_lines` | (N, P) str | the lettered text the text encoder read ("" when none or unknown) |
| `page_json_path`, `page_image_path` | (N,) str | the page file and its resolved image |
| `page_size` | (N, 2) int32 | image width, height |
| `page_panels_total` | (N,) int32 | panels on the page (may exceed P) |
| `page_input` | (N,) int64 | the page's position in the input list |
| `skipped_input`, `_path`, `_reason`, `_kind` | (M,) | pages that could not be embedded |

Strings are valid Unicode (`text_of`: undecodable bytes of a name as `\\udcXX`). Float
arrays are float16 unless the store was made with float32. Group attributes: `format`,
`version`, `dim`, `max_panels`, `dtype`, `chunk_pages`, `fingerprint` (checkpoint and input
digests, the loader settings), `model_config`, `checkpoint` (its path), `progress` (`inputs`
read, `pages` and `skipped` rows committed) and `complete`. Rows past `progress` are never
read: a run killed mid-chunk resumes from its last commit and rewrites them (Zarr writes
each file atomically).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .look import LOOK_DIM

FORMAT = "closure-lite-embeddings"
VERSION = 2
"""2: `page_look` added."""
STORE_NAME = "embeddings.zarr"
FLOAT_DTYPES = ("float16", "float32")

PAGE_FLOATS = ("page_embedding", "page_image", "page_look")
PANEL_FLOATS = ("panel_embedding", "panel_vision", "panel_text")
FLOATS = frozenset(PAGE_FLOATS + PANEL_FLOATS)
SKIP_ARRAYS = ("skipped_input", "skipped_path", "skipped_reason", "skipped_kind")


class StoreError(Exception):
    """A store that cannot be used as asked (names the folder and the problem)."""


def _zarr() -> Any:
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - zarr is a training requirement
        raise StoreError("the embedding store needs the `zarr` package (pip install zarr)") from exc
    return zarr


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inputs_digest(paths: Iterable[str | Path]) -> str:
    """sha256 of the input page paths in order (a resumed run must read the same list)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fsencode(str(p)) + b"\n")
    return h.hexdigest()


def store_path(path: str | Path) -> Path:
    """The Zarr group of an embedding folder (`EMB` or `EMB/embeddings.zarr`)."""
    path = Path(path)
    return path if path.name.endswith(".zarr") else path / STORE_NAME


@dataclass
class Rows:
    """Embedded pages of one batch, in the store's layout (see the module docstring)."""

    page_embedding: np.ndarray
    page_image: np.ndarray
    page_look: np.ndarray
    panel_embedding: np.ndarray
    panel_vision: np.ndarray
    panel_text: np.ndarray
    panel_mask: np.ndarray
    panel_text_state: np.ndarray
    panel_box: np.ndarray
    panel_index: np.ndarray
    panel_lines: np.ndarray
    page_json_path: np.ndarray
    page_image_path: np.ndarray
    page_size: np.ndarray
    page_panels_total: np.ndarray
    page_input: np.ndarray

    def __len__(self) -> int:
        return int(self.page_embedding.shape[0])


ROW_ARRAYS = tuple(Rows.__dataclass_fields__)


@dataclass
class Skip:
    """A page that could not be embedded."""

    input: int
    path: str
    reason: str
    kind: str


def _specs(n_pages: int, p: int, d: int, dtype: str) -> dict[str, tuple[tuple[int, ...], Any]]:
    return {
        "page_embedding": ((n_pages, d), dtype),
        "page_image": ((n_pages, d), dtype),
        "page_look": ((n_pages, LOOK_DIM), dtype),
        "panel_embedding": ((n_pages, p, d), dtype),
        "panel_vision": ((n_pages, p, d), dtype),
        "panel_text": ((n_pages, p, d), dtype),
        "panel_mask": ((n_pages, p), "bool"),
        "panel_text_state": ((n_pages, p), "int8"),
        "panel_box": ((n_pages, p, 4), "int32"),
        "panel_index": ((n_pages, p), "int16"),
        "panel_lines": ((n_pages, p), str),
        "page_json_path": ((n_pages,), str),
        "page_image_path": ((n_pages,), str),
        "page_size": ((n_pages, 2), "int32"),
        "page_panels_total": ((n_pages,), "int32"),
        "page_input": ((n_pages,), "int64"),
    }


_SKIP_SPECS: dict[str, Any] = {
    "skipped_input": "int64",
    "skipped_path": str,
    "skipped_reason": str,
    "skipped_kind": str,
}


@dataclass
class StoreWriter:
    """Appends rows to a store and commits them in chunks (`flush`)."""

    group: Any
    chunk_pages: int
    inputs: int = 0
    pages: int = 0
    skipped: int = 0
    _rows: list[Rows] = field(default_factory=list)
    _skips: list[Skip] = field(default_factory=list)
    _inputs_read: int = 0

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        dim: int,
        max_panels: int,
        dtype: str,
        chunk_pages: int,
        fingerprint: dict[str, Any],
        model_config: dict[str, Any],
        checkpoint: str,
        resume: bool,
    ) -> StoreWriter:
        """A new store at `path`, or with `resume` the unfinished one there (its
        fingerprint must equal `fingerprint`: same checkpoint, inputs and settings)."""
        zarr = _zarr()
        path = store_path(path)
        if dtype not in FLOAT_DTYPES:
            raise StoreError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
        if resume:
            group = zarr.open_group(str(path), mode="r+")
            attrs = dict(group.attrs)
            if attrs.get("format") != FORMAT:
                raise StoreError(f"{path}: not an embedding store of ours")
            if attrs.get("complete"):
                raise StoreError(f"{path}: the store is complete; nothing to resume")
            _check_version(path, attrs)
            theirs = attrs.get("fingerprint")
            if theirs != fingerprint:
                diff = sorted(
                    k
                    for k in set(theirs or {}) | set(fingerprint)
                    if (theirs or {}).get(k) != fingerprint.get(k)
                )
                raise StoreError(
                    f"{path}: cannot resume: the store was started with another "
                    f"{', '.join(diff)} (give the same checkpoint, pages and settings, or "
                    "--overwrite to start afresh)"
                )
            progress = attrs["progress"]
            writer = cls(group, int(attrs["chunk_pages"]))
            writer.inputs = writer._inputs_read = int(progress["inputs"])
            writer.pages, writer.skipped = int(progress["pages"]), int(progress["skipped"])
            for name in ROW_ARRAYS:
                array = group[name]
                array.resize((writer.pages, *array.shape[1:]))
            for name in SKIP_ARRAYS:
                group[name].resize((writer.skipped,))
            return writer
        group = zarr.open_group(str(path), mode="w")
        for name, (shape, kind) in _specs(0, max_panels, dim, dtype).items():
            chunks = (chunk_pages, *shape[1:])
            group.create_array(name, shape=shape, chunks=chunks, dtype=kind, fill_value=_fill(kind))
        for name, kind in _SKIP_SPECS.items():
            group.create_array(name, shape=(0,), chunks=(4096,), dtype=kind, fill_value=_fill(kind))
        group.attrs.update(
            {
                "format": FORMAT,
                "version": VERSION,
                "dim": dim,
                "max_panels": max_panels,
                "dtype": dtype,
                "chunk_pages": chunk_pages,
                "fingerprint": fingerprint,
                "model_config": model_config,
                "checkpoint": checkpoint,
                "progress": {"inputs": 0, "pages": 0, "skipped": 0},
                "complete": False,
            }
        )
        return cls(group, chunk_pages)

    def add(self, rows: Rows | None, skips: Sequence[Skip], inputs_read: int) -> None:
        """One batch: its embedded rows, its skipped pages, and the inputs read so far
        (the batch ends there); commits when a chunk's worth of rows is buffered."""
        if rows is not None and len(rows):
            self._rows.append(rows)
        self._skips.extend(skips)
        self._inputs_read = inputs_read
        if sum(len(r) for r in self._rows) >= self.chunk_pages:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows and skips, then commit them (one attribute write)."""
        group = self.group
        if self._rows:
            n = sum(len(r) for r in self._rows)
            start, end = self.pages, self.pages + n
            for name in ROW_ARRAYS:
                block = np.concatenate([getattr(r, name) for r in self._rows])
                array = group[name]
                array.resize((end, *array.shape[1:]))
                array[start:end] = block.astype(array.dtype) if name in FLOATS else block
            self.pages = end
        if self._skips:
            start, end = self.skipped, self.skipped + len(self._skips)
            columns = {
                "skipped_input": np.array([s.input for s in self._skips], np.int64),
                "skipped_path": texts_of([s.path for s in self._skips]),
                "skipped_reason": texts_of([s.reason for s in self._skips]),
                "skipped_kind": texts_of([s.kind for s in self._skips]),
            }
            for name, block in columns.items():
                group[name].resize((end,))
                group[name][start:end] = block
            self.skipped = end
        self._rows, self._skips = [], []
        self.inputs = self._inputs_read
        group.attrs["progress"] = {
            "inputs": self.inputs,
            "pages": self.pages,
            "skipped": self.skipped,
        }

    def finish(self) -> None:
        """Commit what is buffered and mark the store complete."""
        self.flush()
        self.group.attrs["complete"] = True


def text_of(value: str) -> str:
    """`value` as valid Unicode for a string array: the undecodable bytes of a file name
    (surrogate escapes) and lone surrogates become backslash escapes (`\\udcff`)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def texts_of(values: Sequence[str]) -> np.ndarray:
    """An object array of `text_of` each value."""
    out = np.empty(len(values), dtype=object)
    out[:] = [text_of(v) for v in values]
    return out


def _fill(kind: Any) -> Any:
    if kind is str:
        return ""
    if kind == "bool":
        return False
    if kind in ("int8", "int16"):
        return -1
    return 0


def store_state(path: str | Path) -> str | None:
    """None when `path` holds no store; else "complete" or "unfinished"."""
    path = store_path(path)
    if not (path / "zarr.json").exists():
        return None
    try:
        group = _zarr().open_group(str(path), mode="r")
    except Exception:  # a broken or foreign group: treat it as unfinished, never replaced
        return "unfinished"
    return "complete" if group.attrs.get("complete") else "unfinished"


def _check_version(path: Path, attrs: dict[str, Any]) -> None:
    if attrs.get("version") != VERSION:
        raise StoreError(
            f"{path}: made by another version of training.embed (store version "
            f"{attrs.get('version')}, this one reads {VERSION}): embed again with --overwrite"
        )


class Store:
    """A complete (or, with `partial`, committed part of a) store, read lazily."""

    def __init__(self, path: str | Path, *, partial: bool = False) -> None:
        zarr = _zarr()
        self.path = store_path(path)
        if not (self.path / "zarr.json").exists():
            raise StoreError(f"{self.path}: no embedding store here (run training.embed)")
        try:
            self.group = zarr.open_group(str(self.path), mode="r")
        except Exception as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
        attrs = dict(self.group.attrs)
        if attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path}: not an embedding store of ours")
        _check_version(self.path, attrs)
        if not attrs.get("complete") and not partial:
            raise StoreError(
                f"{self.path}: the store is unfinished (training.embed was stopped); "
                "finish it with training.embed --resume"
            )
        self.attrs = attrs
        self.dim = int(attrs["dim"])
        self.max_panels = int(attrs["max_panels"])
        self.n_pages = int(attrs["progress"]["pages"])
        self.n_skipped = int(attrs["progress"]["skipped"])

    def array(self, name: str) -> np.ndarray:
        """A whole array, committed rows only."""
        n = self.n_skipped if name in SKIP_ARRAYS else self.n_pages
        return np.asarray(self.group[name][:n])

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a page-axis array."""
        stop = min(stop, self.n_pages)
        return np.asarray(self.group[name][start:stop])

    def chunks(self, name: str) -> Iterable[tuple[int, np.ndarray]]:
        """(first row, block) over a page-axis array, one storage chunk at a time."""
        step = int(self.attrs["chunk_pages"])
        for start in range(0, self.n_pages, step):
            yield start, self.rows(name, start, start + step)

    def page_meta(self, row: int) -> dict[str, Any]:
        """One page's metadata row and its panels (slots in reading order)."""
        g = self.group
        mask = np.asarray(g["panel_mask"][row])
        boxes = np.asarray(g["panel_box"][row])
        index = np.asarray(g["panel_index"][row])
        states = np.asarray(g["panel_text_state"][row])
        lines = np.asarray(g["panel_lines"][row])
        width, height = (int(v) for v in np.asarray(g["page_size"][row]))
        from .data import TEXT_STATES

        return {
            "row": row,
            "json_path": str(g["page_json_path"][row]),
            "image_path": str(g["page_image_path"][row]),
            "width": width,
            "height": height,
            "panels_total": int(g["page_panels_total"][row]),
            "panels": [
                {
                    "slot": s,
                    "reading_position": s,
                    "panel_index": int(index[s]),
                    "box": [int(v) for v in boxes[s]],
                    "text": TEXT_STATES[int(states[s])],
                    "lines": str(lines[s]),
                }
                for s in range(len(mask))
                if mask[s]
            ],
        }
