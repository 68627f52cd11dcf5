"""What a COCO file's records are read as, and what a load gives (`CocoPages`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import msgspec
import numpy as np

from dataspec.paths import IMAGE_EXTS, is_windows_path

from ..problems import Problem


class CocoError(Exception):
    """The predictions file cannot be used at all (unreadable, not JSON, wrong shape)."""


class _Image(msgspec.Struct, gc=False):
    id: int | str
    file_name: str | None = None
    width: float | None = None
    height: float | None = None


class _Ann(msgspec.Struct, gc=False):
    image_id: int | str
    category_id: int
    bbox: tuple[float, float, float, float]
    score: float = 1.0


class _Top(msgspec.Struct):
    images: msgspec.Raw = msgspec.Raw()
    annotations: msgspec.Raw = msgspec.Raw()
    categories: msgspec.Raw = msgspec.Raw()


_ANN_DECODER = msgspec.json.Decoder(list[_Ann])
_ANN_ITEM_DECODER = msgspec.json.Decoder(_Ann)
_IMAGES_DECODER = msgspec.json.Decoder(list[_Image])
_TOP_DECODER = msgspec.json.Decoder(_Top)


@dataclass
class CocoPages:
    """Every image of the predictions file with its panel and text detections, grouped
    compactly (each kind sorted by page, in file order within a page)."""

    ids: list[int | str]
    """COCO image id per page."""
    paths: list[str]
    """Image path per page as the file gives it ('' when it gives none)."""
    sizes: np.ndarray
    """(n, 2) int64 width, height per page; 0 where unknown."""
    offsets: np.ndarray
    """(n + 1,) int64: page i's detections are rows offsets[i]:offsets[i + 1]."""
    boxes: np.ndarray
    """(k, 4) float64 `[x, y, w, h]` of the panel detections, grouped by page."""
    scores: np.ndarray
    """(k,) float64 detection scores, same rows as `boxes`."""
    panel_ids: frozenset[int]
    text_offsets: np.ndarray
    """(n + 1,) int64: page i's text detections are rows text_offsets[i]:text_offsets[i + 1]."""
    text_boxes: np.ndarray
    """(m, 4) float64 `[x, y, w, h]` of the text detections (text, balloon, caption...),
    grouped by page."""
    text_scores: np.ndarray
    """(m,) float64 detection scores, same rows as `text_boxes`."""
    text_categories: np.ndarray
    """(m,) int32 category id of each text row (int64 when a text id does not fit int32):
    tells a balloon from the text inside it."""
    text_ids: frozenset[int]
    """Category ids collected as text (never a panel id)."""
    char_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    """(n + 1,) int64: page i's character detections are rows char_offsets[i]:[i + 1]."""
    char_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    """(c, 4) float64 `[x, y, w, h]` of the character detections, grouped by page."""
    char_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(c,) float64 detection scores, same rows as `char_boxes`."""
    char_ids: frozenset[int] = frozenset()
    """Category ids collected as characters (never a panel or text id)."""
    annotations: int = 0
    """Annotations read (all categories)."""
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def text_span(self, page: int) -> tuple[int, int]:
        """(first, end) rows of page `page` in the `text_*` arrays."""
        return int(self.text_offsets[page]), int(self.text_offsets[page + 1])

    def char_span(self, page: int) -> tuple[int, int]:
        """(first, end) rows of page `page` in the `char_*` arrays."""
        return int(self.char_offsets[page]), int(self.char_offsets[page + 1])

    def text_of(self, page: int) -> tuple[np.ndarray, np.ndarray]:
        """Page `page`'s text boxes (k, 4) and scores (k,): views into the arrays, no copy."""
        first, end = self.text_span(page)
        return self.text_boxes[first:end], self.text_scores[first:end]


def _split(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p]


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or os.path.splitext(value)[1].lower() in IMAGE_EXTS


def image_path(image_id: int | str, file_name: str | None) -> str:
    """The image path a COCO image record names, as complete as the record allows.

    Real detector output names an image by id `E:\\Root\\<Series>\\JPG4CBZ_0001.jpg` and
    file_name `JPG4CBZ\\0001.jpg`; the file is `<Series>/JPG4CBZ/0001.jpg`, so a relative
    file_name with another base name is joined to the id's folder (overlapping folders
    counted once). An absolute file_name wins; with no usable id, the file_name is used.
    """
    name = (file_name or "").strip()
    ident = image_id.strip() if isinstance(image_id, str) else ""
    if name and (os.path.isabs(name) or is_windows_path(name)):
        return name
    if not ident or not _looks_like_path(ident):
        return name or ident
    if not name:
        return ident
    id_parts, name_parts = _split(ident), _split(name)
    if not name_parts or id_parts[-1:] == name_parts[-1:]:
        return ident if len(id_parts) >= len(name_parts) else name
    folder = id_parts[:-1]
    overlap = 0
    for k in range(min(len(folder), len(name_parts) - 1), 0, -1):
        if folder[-k:] == name_parts[:k]:
            overlap = k
            break
    sep = "\\" if "\\" in ident else "/"
    head = ident[: len(ident) - len(id_parts[-1])].rstrip("\\/")
    for _ in range(overlap):
        head = head[: len(head) - len(_split(head)[-1])].rstrip("\\/")
    tail = sep.join(name_parts)
    return f"{head}{sep}{tail}" if head else tail
