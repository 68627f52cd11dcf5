"""Detector predictions in COCO form → one compact record per image.

Accepts a full COCO dict (`images`, `annotations`, `categories`) or a bare results list;
image ids may be integers or path strings. Panel detections and lettered-text detections
(text, balloon, caption: see `text_category_ids`) are kept, each kind as numpy arrays
grouped by image (about 40 bytes a detection; 44 for text, which keeps its category);
other categories (character, face) are dropped, though still counted in `annotations`.

The file is memory-mapped and decoded with msgspec into typed structs, the
`annotations` array in slices of `CHUNK_BYTES`, so the decoded objects of only one slice
exist at a time and decoded parts of the map are handed back to the OS. The array is
found by search (`layout.locate`), not by decoding the whole dict, so the map is
never in memory at once; a file the search cannot read plainly is decoded whole. The
heap the decode freed is given back at the end (`malloc_trim`). A slice whose
items do not fit the types (a string score, a 3-number bbox, NaN) is decoded again with
Python's json and each bad annotation is reported as a `Problem`, not fatal. A file
msgspec refuses as a whole (NaN literals outside the annotations) is read with Python's
json in one piece: slower and bigger, same result. So is a file that is not UTF-8
(read as cp1252, as dataspec reads VLM JSONs); a UTF-8 byte order mark is skipped.

Whatever the file holds, `load_coco` returns pages (each bad record reported as a
`Problem`) or raises `CocoError`; a file nested more deeply than JSON readers go (about
1000 levels) is a `CocoError`.
"""

from __future__ import annotations

from .categories import character_category_ids, panel_category_ids, text_category_ids
from .read import CHUNK_BYTES, load_coco
from .records import CocoError, CocoPages, image_path

__all__ = [
    "CHUNK_BYTES",
    "CocoError",
    "CocoPages",
    "character_category_ids",
    "image_path",
    "load_coco",
    "panel_category_ids",
    "text_category_ids",
]
