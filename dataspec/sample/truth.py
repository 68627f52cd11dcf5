"""What is truly on a page, and the ``truth.jsonl`` record that says so.

A page is planned as a `PageSpec` (series, cast, direction, VLM schema, seed), drawn into
`DrawnPanel` s (box, lettered `Line` s, cast, detectable parts), and then described twice
with defects: by the detector (`detector.py`) and by the VLM (`vlm.py`). The truth record
keeps the panels in true reading order and lists every defect applied, so a test or a
benchmark can tell a right answer from a lucky one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Box = tuple[int, int, int, int]
"""An ``(x, y, w, h)`` pixel box."""

Direction = Literal["ltr", "rtl"]
"""Reading direction of a series: western left to right, or manga-like right to left."""
Schema = Literal["old", "production"]
"""The VLM reply schema of a series: the old one (no boxes) or the 2026 production one."""
DIRECTIONS: tuple[Direction, ...] = ("ltr", "rtl")
SCHEMAS: tuple[Schema, ...] = ("old", "production")

CATEGORIES: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "panel", "supercategory": "comic"},
    {"id": 2, "name": "character", "supercategory": "comic"},
    {"id": 3, "name": "balloon", "supercategory": "comic"},
    {"id": 4, "name": "text", "supercategory": "comic"},
    {"id": 5, "name": "face", "supercategory": "comic"},
)
"""The detector's COCO categories."""
PANEL, CHARACTER, BALLOON, TEXT, FACE = 1, 2, 3, 4, 5

COCO_ROOT = "E:\\CalibreComics_extracted"
"""Where the detector saw the images (a Windows drive; the image ids are not real paths)."""
COLLECTION = "CalibreComics_extracted"
"""The collection root's name, the first part of every production reply's ``canonical_id``."""
SUBDIR = "JPG4CBZ"


@dataclass
class Line:
    """One piece of lettered text: kind is dialogue, thought, narration or sfx."""

    kind: str
    text: str
    speaker: str
    box: Box | None = None
    """Where the letters are (the detector's text box; the production VLM's ``box_2d``)."""


@dataclass
class DrawnPanel:
    """A drawn panel: its box, text in reading order, cast, and detectable parts."""

    box: Box
    lines: list[Line] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    items: list[tuple[int, Box]] = field(default_factory=list)
    """(category, box) of every detectable part but the panel itself."""
    figures: list[tuple[str, Box]] = field(default_factory=list)
    """(name, box) of each character drawn."""
    faces: list[tuple[str, Box]] = field(default_factory=list)
    """(name, box) of each face drawn (a character facing away has none)."""

    @property
    def textless(self) -> bool:
        """No lettering at all: the kind of panel a VLM often leaves out."""
        return not self.lines


@dataclass(frozen=True)
class PageSpec:
    """What to draw for one page; everything random comes from ``seed``."""

    series: str
    page: int
    cast: tuple[str, ...]
    cover: bool
    seed: int
    direction: Direction = "ltr"
    schema: Schema = "old"
    disagreement: bool = True
    """Detector and VLM disagree the way real ones do; False: only the mild old defects."""
    tone: str = "dots"
    """Screentone of a right-to-left series: ``dots`` or ``lines``."""

    @property
    def rtl(self) -> bool:
        return self.direction == "rtl"


@dataclass
class DetDefects:
    """What the detector got wrong on a page (true panel indices, reading order)."""

    missed: list[int] = field(default_factory=list)
    merged: list[list[int]] = field(default_factory=list)
    spurious: list[dict[str, Any]] = field(default_factory=list)
    """``{"bbox", "score", "kind": "art" | "split", "panel"}`` per low-score false box."""

    def to_dict(self) -> dict[str, Any]:
        return {"missed": self.missed, "merged": self.merged, "spurious": self.spurious}


@dataclass
class VlmDefects:
    """What the VLM got wrong on a page.

    ``merged``, ``split`` and ``omitted`` name true panels (indices in reading order);
    ``hallucinated`` names positions in the reply's panel list (0-based). ``panels`` maps
    each reply panel to the true panels it shows (empty for a hallucinated one).
    """

    merged: list[list[int]] = field(default_factory=list)
    split: list[int] = field(default_factory=list)
    omitted: list[int] = field(default_factory=list)
    hallucinated: list[int] = field(default_factory=list)
    panels: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "merged": self.merged,
            "split": self.split,
            "omitted": self.omitted,
            "hallucinated": self.hallucinated,
        }


@dataclass(frozen=True)
class Names:
    """Where one page's files are, and what the detector calls its image."""

    image: str
    """Image path relative to ``images/`` (``<Series>/JPG4CBZ/0001.jpg``)."""
    vlm_json: str
    """VLM reply path relative to ``vlm/`` (``<Series>/JPG4CBZ_0001.json``)."""
    coco_image_id: str
    canonical_id: str
    """The production worker's id: the image path under the collection, no extension."""


def names_for(spec: PageSpec) -> Names:
    """The file names and ids of a page."""
    stem = f"{spec.page:04d}"
    return Names(
        image=f"{spec.series}/{SUBDIR}/{stem}.jpg",
        vlm_json=f"{spec.series}/{SUBDIR}_{stem}.json",
        coco_image_id=f"{COCO_ROOT}\\{spec.series}\\{SUBDIR}_{stem}.jpg",
        canonical_id=f"{COLLECTION}/{spec.series}/{SUBDIR}/{stem}",
    )


def truth_record(
    spec: PageSpec,
    names: Names,
    size: tuple[int, int],
    panels: list[DrawnPanel],
    det: DetDefects,
    vlm: VlmDefects,
) -> dict[str, Any]:
    """One line of ``truth.jsonl``: the page, its panels in true reading order, the defects."""
    return {
        "image": names.image,
        "series": spec.series,
        "page": spec.page,
        "width": size[0],
        "height": size[1],
        "coco_image_id": names.coco_image_id,
        "vlm_json": names.vlm_json,
        "vlm_panel_count_off": len(vlm.panels) != len(panels),
        "direction": spec.direction,
        "schema": spec.schema,
        "panels": [
            {
                "bbox": list(p.box),
                "dialogue": [ln.text for ln in p.lines if ln.kind in ("dialogue", "thought")],
                "narration": [ln.text for ln in p.lines if ln.kind == "narration"],
                "sfx": [ln.text for ln in p.lines if ln.kind == "sfx"],
            }
            for p in panels
        ],
        "det": det.to_dict(),
        "vlm": vlm.to_dict(),
        "vlm_panels": vlm.panels,
    }
