"""The alignment, one test per kind of disagreement between the detector and the VLM.

The page is a 2 x 3 grid (600 x 900 px), read left to right, top to bottom. Every lettered
line of a panel has a text box inside it, as the detector's text category would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest

import dataspec
from analyzer.align import Alignment, Part, align, assign, iou, text_counts
from analyzer.align.geometry import hole
from analyzer.emit import Detection, build_page
from dataspec import Page, PanelText
from dataspec.models import Character, TextItem
from dataspec.normalize import PanelRecord

Box = tuple[int, int, int, int]
FIRST_PUBLISHED = "dataspec-0.3-first-published.schema.json"
GRID: list[Box] = [(x, y, 300, 300) for y in (0, 300, 600) for x in (0, 300)]
LINES = [2, 1, 0, 3, 1, 2]


def _text_boxes(panels: list[Box], lines: list[int]) -> list[Box]:
    return [
        (p[0] + 20 + k * 60, p[1] + 20, 50, 30)
        for p, n in zip(panels, lines, strict=True)
        for k in range(n)
    ]


def _record(index: int, lines: int, box: Box | None = None, tag: str = "") -> PanelRecord:
    texts = [f"{tag or index}.{k}" for k in range(lines)]
    items = tuple(TextItem(text=t, kind="dialogue") for t in texts) or None
    return PanelRecord(index=index, text=PanelText(dialogue=texts), box=box, text_items=items)


VLM = [_record(i, n) for i, n in enumerate(LINES)]
TEXT = _text_boxes(GRID, LINES)


def _pairs(a: Alignment) -> dict[int, tuple[int, ...]]:
    return {p.det: tuple(q.vlm for q in p.parts) for p in a.placements}


def _build(dets: list[Box], vlm: list[PanelRecord], a: Alignment, confidence: float) -> Page:
    """The DataSpec page of a 600 x 900 grid page, its detections all scoring 0.95."""
    return build_page(
        image_path="/p.jpg",
        size=(600, 900),
        dets=[Detection(b, 0.95) for b in dets],
        vlm=vlm,
        alignment=a,
        min_confidence=confidence,
        image_id=1,
        vlm_json_path="/v.json",
        match_tier="exact",
    )


def _conf(a: Alignment) -> dict[int, float]:
    return {p.det: p.confidence for p in a.placements}


def test_agreeing_page_pairs_in_order_with_high_confidence() -> None:
    a = align(GRID, [0.95] * 6, VLM, TEXT)
    assert a.method == "order" and a.direction == "ltr"
    assert _pairs(a) == {i: (i,) for i in range(6)}
    assert a.confidence > 0.95


def test_detector_miss_leaves_the_vlm_panel_unpaired() -> None:
    dets = [b for k, b in enumerate(GRID) if k != 3]  # panel 3 (3 lines) not detected
    a = align(dets, [0.95] * 5, VLM, TEXT)  # its text boxes lie outside every detection
    assert _pairs(a) == {0: (0,), 1: (1,), 2: (2,), 3: (4,), 4: (5,)}
    assert a.confidence > 0.85


@pytest.mark.parametrize("missed", [1, 2, 3])
def test_a_missed_panel_is_placed_where_its_lettering_lies(missed: int) -> None:
    # five stacked panels with a line each: line counts cannot tell which one the detector
    # missed, but its text box lies in the gap it left in the reading order
    row: list[Box] = [(0, k * 180, 600, 170) for k in range(5)]
    dets = [b for k, b in enumerate(row) if k != missed]
    vlm = [_record(k, 1) for k in range(5)]
    a = align(dets, [0.95] * 4, vlm, _text_boxes(row, [1] * 5))
    kept = [k for k in range(5) if k != missed]
    assert _pairs(a) == {i: (k,) for i, k in enumerate(kept)}
    # counting the box on the page alone, every panel is as likely the missed one (the
    # best pairs skipped panel 0, at 0.20 to 0.79); the gap's lettering is trusted at
    # `LOCAL` 0.95, not more, since the order of a small box among panels can slip
    assert min(_conf(a).values()) > 0.7


def test_detector_merge_gets_both_texts() -> None:
    dets = [(0, 0, 600, 300), *GRID[2:]]  # panels 0 and 1 detected as one box
    a = align(dets, [0.95] * 5, VLM, TEXT)
    assert _pairs(a) == {0: (0, 1), 1: (2,), 2: (3,), 3: (4,), 4: (5,)}
    assert a.placements[0].kind == "detector_merge"
    assert a.confidence > 0.9


def test_spurious_low_score_box_is_left_out() -> None:
    dets = [*GRID, (320, 320, 60, 60)]  # a small box inside panel 3's art
    a = align(dets, [0.95] * 6 + [0.55], VLM, TEXT)
    got = _pairs(a)
    assert all(got[i] == (i,) for i in range(6))
    assert got.get(6, ()) == ()  # no VLM text on the spurious box
    assert min(_conf(a)[i] for i in range(6)) > 0.9


def test_vlm_merge_routes_the_lines_to_the_lettered_detection() -> None:
    # the VLM reports panels 2 (no text) and 3 (3 lines) as one panel
    vlm = [*VLM[:2], _record(2, 3, tag="m"), *VLM[4:]]
    a = align(GRID, [0.95] * 6, vlm, TEXT)
    got = _pairs(a)
    assert got[3] == (2,) and got[2] == ()
    assert a.placements[2].kind == "vlm_merge"
    assert got[4] == (3,) and got[5] == (4,)
    assert min(_conf(a)[i] for i in (2, 3, 4, 5)) > 0.8


def test_vlm_split_is_a_detection_with_two_vlm_panels() -> None:
    # the VLM splits panel 3 into two panels of 2 and 1 lines
    vlm = [*VLM[:3], _record(3, 2, tag="a"), _record(4, 1, tag="b"), *VLM[4:]]
    a = align(GRID, [0.95] * 6, vlm, TEXT)
    got = _pairs(a)
    assert got[3] == (3, 4) and got[4] == (5,) and got[5] == (6,)


def test_vlm_omission_of_a_textless_panel() -> None:
    vlm = [r for k, r in enumerate(VLM) if k != 2]
    a = align(GRID, [0.95] * 6, vlm, TEXT)
    got = _pairs(a)
    assert got[0] == (0,) and got[1] == (1,)
    assert got.get(2, ()) == ()  # the omitted panel gets no VLM text
    assert got[3] == (2,) and got[4] == (3,) and got[5] == (4,)
    assert min(_conf(a)[i] for i in (0, 1, 3, 4, 5)) > 0.9


def test_counts_equal_by_coincidence_are_not_paired_by_position() -> None:
    # panel 3 missed AND a spurious box in panel 5's corner: 6 detections, 6 VLM panels
    dets = [b for k, b in enumerate(GRID) if k != 3] + [(540, 840, 50, 50)]
    a = align(dets, [0.95] * 5 + [0.6], VLM, TEXT)
    got = _pairs(a)
    # position pairing would give detection 3 (panel 4) VLM panel 3's three lines
    assert got[3] == (4,) and got[4] == (5,)
    assert 3 not in {v for vs in got.values() for v in vs}
    assert got.get(5, ()) == ()


def test_ambiguous_page_has_low_confidence() -> None:
    # no text anywhere and unequal counts: which VLM panel is missing is a guess
    vlm = [_record(i, 0) for i in range(5)]
    a = align(GRID, [0.95] * 6, vlm, [])
    assert a.confidence < 0.6


def test_right_to_left_page_is_recognised_by_its_text() -> None:
    rtl = [1, 0, 3, 2, 5, 4]  # the VLM reads each row right to left
    vlm = [_record(k, LINES[i]) for k, i in enumerate(rtl)]
    a = align(GRID, [0.95] * 6, vlm, TEXT)
    assert a.direction == "rtl"
    assert _pairs(a) == {i: (rtl.index(i),) for i in range(6)}


def test_truncated_reply_pairs_its_prefix() -> None:
    a = align(GRID, [0.95] * 6, VLM[:3], TEXT, truncated=True)
    assert _pairs(a) == {0: (0,), 1: (1,), 2: (2,)}
    assert a.confidence > 0.8


# --- overlap ---------------------------------------------------------------------------------


def test_overlap_is_an_optimal_assignment_not_greedy() -> None:
    # greedy by IoU would take (0, 0) at 0.9 and leave detection 1 with nothing
    assert assign([[0.9, 0.8], [0.85, 0.0]]) == [(0, 1), (1, 0)]
    assert assign([[0.9, 0.1], [0.8, 0.7], [0.0, 0.0]]) == [(0, 0), (1, 1)]


def test_overlap_detector_merge_and_vlm_merge() -> None:
    boxed = [_record(i, n, box=b) for i, (n, b) in enumerate(zip(LINES, GRID, strict=True))]
    # detector merge of panels 0 and 1
    dets = [(0, 0, 600, 300), *GRID[2:]]
    a = align(dets, [0.95] * 5, boxed, TEXT)
    assert a.method == "overlap"
    assert _pairs(a)[0] == (0, 1) and a.placements[0].kind == "detector_merge"
    # VLM merge of panels 4 and 5 with boxed lines: each line goes where it is lettered
    items = (
        TextItem(text="left", kind="dialogue", box=(20, 620, 50, 30)),
        TextItem(text="right", kind="dialogue", box=(320, 620, 50, 30)),
    )
    merged = PanelRecord(
        index=4,
        text=PanelText(dialogue=["left", "right"]),
        box=(0, 600, 600, 300),
        text_items=items,
    )
    a = align(GRID, [0.95] * 6, [*boxed[:4], merged], TEXT)
    parts = {p.det: p.parts for p in a.placements}
    assert [(q.vlm, q.items) for q in parts[4]] == [(4, (0,))]
    assert [(q.vlm, q.items) for q in parts[5]] == [(4, (1,))]


def test_overlap_a_vlm_box_over_lettering_no_detection_holds_is_a_missed_panel() -> None:
    boxed = [_record(i, n, box=b) for i, (n, b) in enumerate(zip(LINES, GRID, strict=True))]
    dets = [b for k, b in enumerate(GRID) if k != 3]  # panel 3 (3 lines) not detected
    a = align(dets, [0.95] * 5, boxed, TEXT)
    assert a.method == "overlap"
    assert [(m.vlm, len(m.boxes), m.confidence) for m in a.missed] == [(3, 3, 1.0)]
    page = _build(dets, boxed, a, 0.9)
    assert [p.inferred for p in page.panels] == [None, None, None, True, None, None]
    assert page.panels[3].text.dialogue == ["3.0", "3.1", "3.2"]
    assert page.reading_order == [0, 1, 2, 3, 4, 5] and page.reading_order_source == "vlm"
    assert page.unpaired_text is None
    # a VLM box a third under a detection is less sure: 0.67, below the threshold
    wide = [*boxed[:3], _record(3, 3, box=(150, 300, 450, 300)), *boxed[4:]]
    b = align(dets, [0.95] * 5, wide, TEXT)
    assert [(m.vlm, len(m.boxes), m.confidence) for m in b.missed] == [(3, 3, 0.6667)]


def test_text_counts_and_iou() -> None:
    counts, orphans = text_counts(GRID[:2], TEXT)
    assert counts == [2, 1] and orphans == len(TEXT) - 3
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(1 / 3)


# --- the page written ------------------------------------------------------------------------


def test_page_marks_unknown_text_and_keeps_unplaced_text() -> None:
    dets = [b for k, b in enumerate(GRID) if k != 3]
    # the missed panel's region is not offered as a panel (the next test shows it is)
    a = dataclasses.replace(align(dets, [0.95] * 5, VLM, TEXT), missed=())
    page = _build(dets, VLM, a, 0.8)
    Page.model_validate(page.to_json_dict())
    assert [p.text.dialogue for p in page.panels][:2] == [["0.0", "0.1"], ["1.0"]]
    assert page.panels[2].knows_text() and page.panels[2].text.is_empty()
    assert page.unpaired_text is not None
    assert [u.vlm_panel for u in page.unpaired_text] == [3]
    assert page.unpaired_text[0].text.dialogue == ["3.0", "3.1", "3.2"]
    assert page.reading_order_source == "layout"
    assert page.source is not None and page.source.to_dict()["pairing"] == "order"
    # above every confidence, nothing is placed: every panel's text is unknown
    strict = _build(dets, VLM, a, 1.01)
    assert all(not p.knows_text() for p in strict.panels)
    assert strict.unpaired_text is not None and len(strict.unpaired_text) == 5


def test_a_missed_panel_with_boxed_lettering_becomes_an_inferred_panel() -> None:
    dets = [b for k, b in enumerate(GRID) if k != 3]  # its 3 text boxes lie in the hole
    a = align(dets, [0.95] * 5, VLM, TEXT)
    assert [(m.vlm, len(m.boxes)) for m in a.missed] == [(3, 3)]
    assert a.missed[0].confidence > 0.9

    def page(confidence: float) -> Page:
        return _build(dets, VLM, a, confidence)

    got = page(0.8)
    Page.model_validate(got.to_json_dict())
    doc = got.to_json_dict()
    jsonschema.Draft202012Validator(dataspec.json_schema()).validate(doc)
    first = json.loads((Path(__file__).parents[1] / "data" / FIRST_PUBLISHED).read_text("utf-8"))
    jsonschema.Draft202012Validator(first).validate(doc)  # 0.3 readers still accept it
    last = got.panels[3]  # in its layout place
    # the hole between its neighbours, gutters and 3 px of jitter included
    assert last.inferred is True and last.score is None
    assert last.panel_coords == (297, 297, 303, 306)
    assert last.text.dialogue == ["3.0", "3.1", "3.2"]
    assert got.unpaired_text is None
    assert got.reading_order == [0, 1, 2, 3, 4, 5]  # read where panel 3 was drawn
    assert [p.inferred for p in got.panels] == [None, None, None, True, None, None]
    # not sure enough of the skip: the text stays outside the panels, nothing inferred
    timid = page(min(1.0, a.missed[0].confidence + 0.001))
    assert len(timid.panels) == 5
    assert timid.unpaired_text is not None and 3 in [u.vlm_panel for u in timid.unpaired_text]


def test_a_missed_panel_on_a_right_to_left_page() -> None:
    # 2 x 3 panels listed in manga order (top row right to left); the detector missed the
    # top middle one, whose two lines it boxed
    boxes: list[Box] = [(x, y, 200, 300) for y in (0, 300) for x in (400, 200, 0)]
    lines = [1, 2, 1, 2, 1, 1]
    vlm = [_record(k, n) for k, n in enumerate(lines)]
    dets = [b for k, b in enumerate(boxes) if k != 1]
    a = align(dets, [0.95] * 5, vlm, _text_boxes(boxes, lines), rtl_prior=0.9)
    assert a.direction == "rtl"
    assert [(m.vlm, len(m.boxes)) for m in a.missed] == [(1, 2)]
    page = _build(dets, vlm, a, 0.9)
    assert [(p.panel_coords, p.inferred) for p in page.panels][:3] == [
        ((0, 0, 200, 300), None),
        ((197, 0, 206, 303), True),
        ((400, 0, 200, 300), None),
    ]
    assert page.panels[1].text.dialogue == ["1.0", "1.1"]
    assert page.reading_order == [2, 1, 0, 5, 4, 3]


def test_hole_is_the_empty_region_a_panel_could_fill() -> None:
    dets = [b for k, b in enumerate(GRID) if k != 3]
    assert hole([(320, 320, 50, 30)], dets, (600, 900)) == (297, 297, 303, 306)
    # without the page size the detections' outer bounds are the page's edges
    assert hole([(320, 320, 50, 30)], dets, None) == (297, 297, 303, 306)
    # a page number in the bottom margin: a strip no panel fits
    assert hole([(280, 905, 30, 12)], GRID, (600, 930)) is None
    # lettering that touches a detection is not in a hole
    assert hole([(280, 320, 50, 30)], dets, (600, 900)) is None
    # a gutter between two columns is too narrow
    gap = [(0, 0, 290, 900), (310, 0, 290, 900)]
    assert hole([(292, 400, 16, 10)], gap, (600, 900)) is None
    assert hole([], dets, (600, 900)) is None
    # the right-hand column is a split box whose upper piece reaches 2 px further left:
    # jitter, not a neighbour above the hole (which runs up to the full-width panel)
    above, below = (0, 0, 600, 290), (0, 610, 600, 290)
    left, upper, lower = (0, 300, 290, 300), (450, 300, 150, 150), (452, 450, 148, 150)
    boxes = [above, left, upper, lower, below]
    assert hole([(320, 520, 50, 20)], boxes, (600, 900)) == (287, 287, 168, 326)


def test_page_order_follows_the_vlm_boxes() -> None:
    rtl = [1, 0, 3, 2, 5, 4]
    boxed = [_record(k, LINES[i], box=GRID[i]) for k, i in enumerate(rtl)]
    a = align(GRID, [0.95] * 6, boxed, TEXT)
    page = _build(GRID, boxed, a, 0.8)
    assert page.reading_order == rtl and page.reading_order_source == "vlm"


def test_a_balloon_around_its_text_box_is_one_line() -> None:
    from analyzer.align.geometry import lettered

    balloon, text, other = (10, 10, 100, 60), (30, 25, 60, 30), (200, 10, 50, 30)
    assert lettered([balloon, text, other]) == [text, other]
    counts, orphans = text_counts([(0, 0, 300, 100)], [balloon, text, other])
    assert counts == [2] and orphans == 0


CAST = [1, 0, 2, 1, 2, 1]  # characters drawn per grid panel


def _cast_record(index: int, named: int) -> PanelRecord:
    chars = tuple(Character(name=f"C{index}.{k}") for k in range(named)) or None
    return PanelRecord(index=index, text=PanelText(), characters=chars)


def _figure_boxes(panels: list[Box], counts: list[int]) -> list[Box]:
    return [
        (p[0] + 30 + k * 120, p[1] + 100, 100, 180)
        for p, n in zip(panels, counts, strict=True)
        for k in range(n)
    ]


def test_named_characters_tell_which_panel_the_vlm_omitted() -> None:
    # no lettering anywhere; the VLM omits panel 1 (no characters) and names the others'
    vlm = [_cast_record(k, CAST[i]) for k, i in enumerate((0, 2, 3, 4, 5))]
    figures = _figure_boxes(GRID, CAST)
    blind = align(GRID, [0.95] * 6, vlm, [])
    seen = align(GRID, [0.95] * 6, vlm, [], char_boxes=figures)
    assert blind.confidence < 0.6  # without the figures: a guess
    assert _pairs(seen) == {0: (0,), 2: (1,), 3: (2,), 4: (3,), 5: (4,)} | (
        {1: ()} if 1 in _pairs(seen) else {}
    )
    # panels 0, 3, 4, 5 are sure; panel 2 might be a VLM merge of 1 and 2 (1 has no figure)
    assert min(_conf(seen)[i] for i in (0, 3, 4, 5)) > 0.95
    assert min(_conf(blind).get(i, 0.0) for i in (0, 3, 4, 5)) < 0.6
    # a detector without a character category: what the VLM names is no evidence
    assert _conf(align(GRID, [0.95] * 6, vlm, [], char_boxes=None)) == _conf(blind)


def test_vlm_merge_cut_by_the_text_boxes_with_its_chance() -> None:
    # the VLM reports panels 4 (1 line) and 5 (2 lines) as one panel of 3 items
    vlm = [*VLM[:4], _record(4, 3, tag="m")]
    a = align(GRID, [0.95] * 6, vlm, TEXT)
    by_det = {p.det: p for p in a.placements}
    assert by_det[4].kind == by_det[5].kind == "vlm_merge"
    assert by_det[4].parts[0].items == (0,) and by_det[5].parts[0].items == (1, 2)
    # with the boxes of panel 5 unseen, "all to panel 4" is the likelier cut, and unsure
    text = [b for b in TEXT if not (b[0] >= 300 and b[1] >= 600)]
    b = {p.det: p for p in align(GRID, [0.95] * 6, vlm, text).placements}
    assert b[4].parts == (Part(4),) and b[4].confidence < by_det[4].confidence
