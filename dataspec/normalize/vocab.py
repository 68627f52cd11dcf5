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
