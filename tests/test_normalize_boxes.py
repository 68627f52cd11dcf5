"""Box rules: each variant in the wild → `[x, y, w, h]` integer pixels, clipped, or dropped with a note."""

from __future__ import annotations

from typing import Any

import pytest

import dataspec
from dataspec.normalize.boxes import _rle_counts

W, H = 1000, 1500


def boxes_of(panel: dict[str, Any], **page: Any) -> tuple[list[tuple[int, ...]], set[str]]:
    doc = {"image_path": "a.jpg", "page_size": [W, H], "panels": [panel], **page}
    result, notes = dataspec.normalize(doc)
    return [p.panel_coords for p in result.panels], {n.code for n in notes}


CASES = [
    # (panel as found, expected [x, y, w, h])
    ({"panel_coords": [10, 20, 300, 400]}, (10, 20, 300, 400)),  # canonical
    ({"bbox": [10, 20, 300, 400]}, (10, 20, 300, 400)),  # COCO default reading
    ({"box": [10.4, 20.6, 300.2, 399.9]}, (10, 21, 301, 400)),  # corners rounded: 310.6 → 311
    ({"rect": ["10", "20", "300", "400"]}, (10, 20, 300, 400)),  # numbers as strings
    ({"bbox": "10, 20, 300, 400"}, (10, 20, 300, 400)),  # one string
    ({"bbox": [[10, 20, 300, 400]]}, (10, 20, 300, 400)),  # wrapped once
    ({"bbox": {"x": 10, "y": 20, "w": 300, "h": 400}}, (10, 20, 300, 400)),  # dict x,y,w,h
    ({"bbox": {"x": 10, "y": 20, "width": 300, "height": 400}}, (10, 20, 300, 400)),
    ({"bbox": {"xmin": 10, "ymin": 20, "xmax": 310, "ymax": 420}}, (10, 20, 300, 400)),
    ({"bbox": {"x1": 10, "y1": 20, "x2": 310, "y2": 420}}, (10, 20, 300, 400)),
    ({"x": 10, "y": 20, "width": 300, "height": 400}, (10, 20, 300, 400)),  # keys on the panel
    ({"xmin": 10, "ymin": 20, "xmax": 310, "ymax": 420}, (10, 20, 300, 400)),
    ({"bbox_xyxy": [10, 20, 310, 420]}, (10, 20, 300, 400)),  # explicit xyxy key
    ({"polygon": [[10, 20], [310, 20], [310, 420], [10, 420]]}, (10, 20, 300, 400)),
    ({"polygon": [10, 20, 310, 20, 310, 420, 10, 420]}, (10, 20, 300, 400)),  # flat polygon
    ({"points": [{"x": 10, "y": 20}, {"x": 310, "y": 420}]}, (10, 20, 300, 400)),
    ({"bbox": [[10, 20], [310, 420]]}, (10, 20, 300, 400)),  # two corner points
    ({"segmentation": [[10, 20, 310, 20, 310, 420, 10, 420]]}, (10, 20, 300, 400)),  # COCO
    ({"segmentation": [[10, 20, 100, 20, 100, 100], [200, 300, 310, 420, 250, 420]]}, (10, 20, 300, 400)),
    ({"box_2d": [100, 100, 500, 600]}, (100, 150, 500, 600)),  # Gemini: ymin,xmin,ymax,xmax /1000
    ({"bbox": [10, 20, 300, 400], "bbox_format": "xyxy"}, (10, 20, 290, 380)),  # panel hint
    ({"bbox": [500, 700, 200, 300], "format": "cxcywh"}, (400, 550, 200, 300)),  # centre form
]  # fmt: skip


@pytest.mark.parametrize(("panel", "expected"), CASES)
def test_box_variants(panel: dict[str, Any], expected: tuple[int, ...]) -> None:
    boxes, _ = boxes_of(panel)
    assert boxes == [expected]


def test_page_level_format_hint() -> None:
    boxes, _ = boxes_of({"bbox": [10, 20, 300, 400]}, bbox_format="x1y1x2y2")
    assert boxes == [(10, 20, 290, 380)]


def test_caller_box_format_overrides_document() -> None:
    doc = {
        "image": "a.jpg",
        "page_size": [W, H],
        "bbox_format": "xyxy",
        "panels": [{"bbox": [10, 20, 300, 400]}],
    }
    page, _ = dataspec.normalize(doc, box_format="xywh")
    assert page.panels[0].panel_coords == (10, 20, 300, 400)
    with pytest.raises(dataspec.DataSpecError, match="unknown box format"):
        dataspec.normalize(doc, box_format="zzz")


def test_xyxy_chosen_only_when_only_it_fits_the_page() -> None:
    # [600, 100, 900, 700] as xywh runs off a 1000-wide page; as xyxy it fits: whole doc is xyxy
    doc = {
        "image": "a.jpg",
        "page_size": [W, H],
        "panels": [{"bbox": [10, 20, 500, 700]}, {"bbox": [600, 100, 900, 700]}],
    }
    page, notes = dataspec.normalize(doc)
    assert page.boxes() == [(10, 20, 490, 680), (600, 100, 300, 600)]
    assert "bbox_read_as_xyxy" in {n.code for n in notes}


def test_ambiguous_boxes_stay_xywh_when_both_fit() -> None:
    doc = {
        "image": "a.jpg",
        "page_size": [W, H],
        "panels": [{"bbox": [10, 20, 300, 400]}, {"bbox": [400, 20, 500, 400]}],
    }
    page, notes = dataspec.normalize(doc)
    assert page.boxes() == [(10, 20, 300, 400), (400, 20, 500, 400)]
    assert "bbox_read_as_xyxy" not in {n.code for n in notes}


def test_normalized_coordinates_are_scaled_by_page_size() -> None:
    boxes, codes = boxes_of({"bbox": [0.1, 0.2, 0.5, 0.25]})
    assert boxes == [(100, 300, 500, 375)]
    assert "normalized_coords" in codes


def test_normalized_hint_and_caller_page_size() -> None:
    doc = {"image": "a.jpg", "bbox_format": "yolo", "panels": [{"bbox": [0.5, 0.5, 0.2, 0.1]}]}
    page, _ = dataspec.normalize(doc, page_size=(W, H))
    assert page.boxes() == [(400, 675, 200, 150)]
    assert page.page_size is not None and (page.page_size.width, page.page_size.height) == (W, H)


def test_normalized_without_page_size_drops_the_panel_with_a_note() -> None:
    page, notes = dataspec.normalize({"image": "a.jpg", "panels": [{"bbox": [0.1, 0.1, 0.2, 0.2]}]})
    assert page.panels == []
    assert "needs_page_size" in {n.code for n in notes}


def test_box_2d_needs_page_size() -> None:
    page, notes = dataspec.normalize({"image": "a.jpg", "panels": [{"box_2d": [1, 2, 3, 4]}]})
    assert page.panels == [] and "needs_page_size" in {n.code for n in notes}


@pytest.mark.parametrize(
    ("panel", "code"),
    [
        ({"bbox": [float("nan"), 20, 300, 400]}, "nan_box"),  # NaN coordinate
        ({"bbox": [10, 20, float("inf"), 400]}, "nan_box"),  # infinite extent
        ({"bbox": [10, 20, 0, 400]}, "zero_area"),  # zero width
        ({"bbox": [2000, 20, 300, 400]}, "outside_page"),  # right of the page
        ({"bbox": [10, -900, 300, 400]}, "outside_page"),  # above the page
        ({"bbox": [10, 20, -300, 400]}, "negative_extent"),  # negative width
        ({"bbox": [10, 20, 300]}, "panel_dropped"),  # three numbers
        ({"bbox": ["a", "b", "c", "d"]}, "panel_dropped"),  # not numbers
        ({"text": {"dialogue": ["hi"]}}, "panel_dropped"),  # no box at all
    ],
)
def test_bad_boxes_drop_their_panel_with_a_note(panel: dict[str, Any], code: str) -> None:
    boxes, codes = boxes_of(panel)
    assert boxes == []
    assert code in codes


def test_boxes_are_clipped_to_the_page() -> None:
    boxes, codes = boxes_of({"bbox": [-20, 1400, 1100, 300]})
    assert boxes == [(0, 1400, 1000, 100)]
    assert "clipped" in codes


def test_reversed_corners_are_swapped() -> None:
    boxes, codes = boxes_of({"bbox_xyxy": [310, 420, 10, 20]})
    assert boxes == [(10, 20, 300, 400)] and "corners_swapped" in codes


def test_page_size_from_image_header(tmp_path: Any) -> None:
    from tests.conftest import write_image

    image = write_image(tmp_path / "S" / "0001.jpg", size=(640, 960))
    doc = {"image_path": str(image), "panels": [{"bbox": [0.5, 0.5, 0.5, 0.5]}]}
    page, notes = dataspec.normalize(doc)
    assert page.page_size is not None and page.page_size.width == 640
    assert page.boxes() == [(320, 480, 320, 480)]
    assert "page_size_from_image" in {n.code for n in notes}


def test_rle_segmentation_matches_pycocotools() -> None:
    mask_utils = pytest.importorskip("pycocotools.mask")
    import numpy as np

    mask = np.zeros((H, W), dtype=np.uint8, order="F")
    mask[300:700, 100:450] = 1
    mask[650:900, 400:600] = 1
    rle = mask_utils.encode(mask)
    expected = [round(v) for v in mask_utils.toBbox(rle)]
    compressed = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    boxes, _ = boxes_of({"segmentation": compressed})
    assert list(boxes[0]) == expected == [100, 300, 500, 600]
    # uncompressed counts: column-major run lengths
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    boxes, _ = boxes_of({"segmentation": {"size": [H, W], "counts": counts}})
    assert list(boxes[0]) == expected
    assert _rle_counts(compressed["counts"]) == counts


def test_character_coords_are_normalized_too() -> None:
    panel = {"bbox": [0, 0, 500, 500], "characters": [{"bbox": [10, 10, 50, 80]}, {"box": "x"}]}
    page, notes = dataspec.normalize({"image": "a.jpg", "page_size": [W, H], "panels": [panel]})
    assert page.panels[0].character_coords == [(10, 10, 50, 80)]
    assert "character_dropped" in {n.code for n in notes}


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("XYXY_ABS", (10, 20, 290, 380)),  # detectron2 BoxMode names
        ("XYWH_ABS", (10, 20, 300, 400)),
        ("pascal_voc", (10, 20, 290, 380)),
        ("coco", (10, 20, 300, 400)),
    ],
)
def test_detector_format_names(hint: str, expected: tuple[int, ...]) -> None:
    boxes, _ = boxes_of({"bbox": [10, 20, 300, 400], "box_mode": hint})
    assert boxes == [expected]


def test_relative_xyxy_hint_scales() -> None:
    boxes, _ = boxes_of({"bbox": [0.1, 0.1, 0.5, 0.5]}, coordinate_system="XYXY_REL")
    assert boxes == [(100, 150, 400, 600)]
