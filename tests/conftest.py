"""Shared test helpers: real image files written with Pillow, JSON files written as found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (800, 1200), fmt: str | None = None) -> Path:
    """A real image file (JPEG unless the suffix or `fmt` says otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, (250, 250, 245))
    image.save(path, format=fmt or None) if fmt else image.save(path)
    return path


def write_json(path: Path, obj: Any, **kwargs: Any) -> Path:
    """`obj` as a JSON file (Python's json module, so NaN is written as the NaN literal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, **kwargs), encoding=kwargs.pop("encoding", "utf-8"))
    return path


@pytest.fixture
def canonical() -> dict[str, Any]:
    """A valid canonical v0.3 page as a dict."""
    return {
        "schema_version": "0.3",
        "page_image_path": "/data/comics/Series/JPG4CBZ/0001.jpg",
        "panels": [
            {
                "panel_coords": [10, 20, 380, 500],
                "text": {"dialogue": ["Hello!"], "narration": ["Meanwhile…"], "sfx": []},
                "score": 0.97,
            },
            {
                "panel_coords": [410, 20, 380, 500],
                "text": {"dialogue": [], "narration": [], "sfx": ["BLAM!"]},
                "character_coords": [[450, 100, 100, 300]],
                "description": "A man fires a gun.",
            },
        ],
        "reading_order": [0, 1],
        "page_size": {"width": 800, "height": 1200},
        "source": {"coco_image_id": 17, "vlm_json_path": "vlm/Series/JPG4CBZ_0001.json"},
    }
