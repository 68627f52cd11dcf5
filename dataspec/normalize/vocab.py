"""Key names shared by several rule modules (kept here so they import no rule module)."""

from __future__ import annotations

PANEL_LIST_KEYS = (
    "panels",
    "VLM_panels",
    "vlm_panels",
    "panels_vlm",
    "panel_detections",
    "rcnn_panels",
    "panel_boxes",
    "panel_list",
    "detections",
    "boxes",
    "segments",
    "annotations",
    "shapes",
)
"""Page keys holding the panel list, in the order tried (then any list of box-bearing dicts)."""
SIZE_PAIRS = (
    ("width", "height"),
    ("image_width", "image_height"),
    ("imageWidth", "imageHeight"),
    ("img_width", "img_height"),
    ("page_width", "page_height"),
)
SIZE_KEYS = ("page_size", "size", "image_size", "dimensions")
"""Page keys holding the page size: width/height pairs, then one value."""
NORMALIZED_FLAGS = ("normalized", "is_normalized", "relative")
"""Page keys whose `true` says the boxes are on 0-1 of the page."""
