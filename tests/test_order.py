"""Tests for `dataspec.order.reading_order` (and `reading_orders`): rows top-to-bottom, columns by reading direction."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataspec import order as order_module
from dataspec import reading_order
from dataspec.order import reading_orders

Box = list[int]


def in_order(boxes: list[Box], rtl: bool = False) -> list[Box]:
    """The boxes themselves, in the order `reading_order` gives."""
    return [boxes[i] for i in reading_order(boxes, rtl=rtl)]


# Page 1000 x 1500 px; boxes are [x, y, w, h].
TL, TR = [20, 20, 470, 700], [510, 20, 470, 700]
BL, BR = [20, 760, 470, 700], [510, 760, 470, 700]


def test_two_by_two_grid() -> None:
    """A 2x2 grid reads TL, TR, BL, BR whatever order the boxes are listed in."""
    assert reading_order([TL, TR, BL, BR]) == [0, 1, 2, 3]
    assert reading_order([BR, BL, TR, TL]) == [3, 2, 1, 0]
    assert in_order([BL, TR, BR, TL]) == [TL, TR, BL, BR]


def test_row_with_uneven_tops_is_one_row() -> None:
    """Tops differing by 2–5% of the page height (1500 px) stay one row, left to right."""
    left = [20, 60, 300, 600]  # 4% lower than the middle one
    middle = [340, 0, 300, 640]
    right = [660, 35, 320, 610]  # 2.3% lower
    below = [20, 700, 960, 700]
    boxes = [right, below, middle, left]
    assert in_order(boxes) == [left, middle, right, below]


def test_jitter_across_gutter_keeps_rows_apart() -> None:
    """Boxes overlapping the gutter by a few pixels (detector jitter) stay in their rows."""
    a = [0, 0, 480, 506]  # bottom 6 px past the next row's top
    b = [500, 0, 480, 498]
    c = [0, 500, 480, 500]
    d = [500, 496, 480, 504]  # top 4 px above the first row's bottom
    boxes = [d, c, b, a]
    assert in_order(boxes) == [a, b, c, d]


def test_jitter_across_vertical_gutter_keeps_columns_apart() -> None:
    """Side-by-side panels overlapping by a few pixels horizontally are still two columns."""
    left = [0, 0, 505, 700]
    right = [497, 10, 503, 690]
    assert in_order([right, left]) == [left, right]
    assert in_order([right, left], rtl=True) == [right, left]


def test_tall_panel_left_of_two_stacked() -> None:
    """Tall on the left beside two stacked panels: tall → upper → lower."""
    tall = [0, 0, 400, 1400]
    upper = [420, 0, 580, 680]
    lower = [420, 720, 580, 680]
    assert in_order([lower, upper, tall]) == [tall, upper, lower]


def test_tall_panel_right_of_two_stacked() -> None:
    """Tall on the right: upper → lower → tall."""
    upper = [0, 0, 580, 680]
    lower = [0, 720, 580, 680]
    tall = [600, 0, 400, 1400]
    assert in_order([tall, lower, upper]) == [upper, lower, tall]


def test_tall_panel_layout_below_a_row() -> None:
    """A tall-beside-stacked block under a full row: the row first, then the block."""
    top_left, top_right = [0, 0, 490, 400], [510, 0, 490, 400]
    tall = [0, 420, 400, 1000]
    upper = [420, 420, 580, 480]
    lower = [420, 920, 580, 500]
    boxes = [lower, tall, top_right, upper, top_left]
    assert in_order(boxes) == [top_left, top_right, tall, upper, lower]


def test_two_columns_whose_panels_do_not_line_up_read_column_by_column() -> None:
    """Two columns with a clean gutter between them, where the right column's first panel
    reaches a fifth of the way into the left column's third (so rows split there, but
    not through a gutter): each column top to bottom, the left one first (right first
    for manga)."""
    l1, l2, l3, l4 = (
        [28, 28, 412, 199],
        [28, 231, 412, 298],
        [28, 533, 412, 331],
        [28, 868, 412, 346],
    )
    r1, r2 = [444, 28, 316, 575], [444, 607, 316, 607]
    boxes = [r2, l3, r1, l4, l1, l2]
    assert in_order(boxes) == [l1, l2, l3, l4, r1, r2]
    assert in_order(boxes, rtl=True) == [r1, r2, l1, l2, l3, l4]


def test_rows_with_a_clean_gutter_stay_rows_beside_a_clean_column_cut() -> None:
    """A 2 x 2 grid has clean cuts both ways: rows win, as before."""
    assert in_order([BR, TL, BL, TR]) == [TL, TR, BL, BR]


def test_full_width_panel_between_rows() -> None:
    """A full-width panel between two rows is read between them."""
    r1a, r1b = [0, 0, 490, 400], [510, 0, 490, 400]
    wide = [0, 420, 1000, 300]
    r3a, r3b, r3c = [0, 740, 320, 400], [340, 740, 320, 400], [680, 740, 320, 400]
    boxes = [r3c, wide, r1b, r3a, r1a, r3b]
    assert in_order(boxes) == [r1a, r1b, wide, r3a, r3b, r3c]
    assert in_order(boxes, rtl=True) == [r1b, r1a, wide, r3c, r3b, r3a]


def test_rtl_reverses_within_rows_only() -> None:
    """Manga order: right to left inside a row, rows still top to bottom."""
    assert in_order([TL, TR, BL, BR], rtl=True) == [TR, TL, BR, BL]


def test_rtl_tall_panel_layout() -> None:
    """Manga with a tall panel on the right: tall first, then the stacked pair top-down."""
    upper = [0, 0, 580, 680]
    lower = [0, 720, 580, 680]
    tall = [600, 0, 400, 1400]
    assert in_order([upper, lower, tall], rtl=True) == [tall, upper, lower]


def test_empty_and_single() -> None:
    """No boxes → no order; one box → [0]."""
    assert reading_order([]) == []
    assert reading_order([], rtl=True) == []
    assert reading_order([[5, 5, 10, 10]]) == [0]
    assert reading_order([(5.5, 5.0, 10.0, 10.0)], rtl=True) == [0]


def test_overlapping_boxes_fall_back_to_centres() -> None:
    """Boxes no gutter separates (one inside another) are ordered by centre y, then x."""
    outer = [0, 0, 1000, 1000]
    inner_low = [400, 700, 100, 100]
    inner_high = [100, 100, 100, 100]
    order = in_order([inner_low, outer, inner_high])
    assert order == [inner_high, outer, inner_low]


LAYOUTS: list[list[Box]] = [
    # 2x2 grid
    [TL, TR, BL, BR],
    # tall panel left, two stacked right
    [[0, 0, 400, 1400], [420, 0, 580, 680], [420, 720, 580, 680]],
    # row, full-width panel, row of three
    [
        [0, 0, 490, 400],
        [510, 0, 490, 400],
        [0, 420, 1000, 300],
        [0, 740, 320, 400],
        [340, 740, 320, 400],
        [680, 740, 320, 400],
    ],
    # jittered rows
    [[0, 0, 480, 506], [500, 0, 480, 498], [0, 500, 480, 500], [500, 496, 480, 504]],
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rtl", [False, True])
def test_deterministic_and_input_order_invariant(layout: list[Box], rtl: bool) -> None:
    """Same input → same output; any listing of the same boxes reads the same boxes."""
    expected = in_order(layout, rtl)
    assert in_order(layout, rtl) == expected
    assert reading_order(layout, rtl=rtl) == reading_order([list(b) for b in layout], rtl=rtl)
    for perm in itertools.permutations(layout):
        assert in_order(list(perm), rtl) == expected


def test_input_order_invariant_on_random_pages() -> None:
    """Random shuffles of random distinct boxes always read the same boxes."""
    rng = random.Random(20240603)
    for _ in range(300):
        n = rng.randint(2, 9)
        boxes: list[Box] = []
        while len(boxes) < n:
            box = [rng.randint(0, 900), rng.randint(0, 1400), rng.randint(1, 500)]
            box.append(rng.randint(1, 700))
            if box not in boxes:
                boxes.append(box)
        shuffled = boxes[:]
        rng.shuffle(shuffled)
        assert in_order(shuffled) == in_order(boxes)
        assert in_order(shuffled, rtl=True) == in_order(boxes, rtl=True)


box_strategy = st.tuples(
    st.integers(0, 2000),
    st.integers(0, 3000),
    st.integers(1, 2000),
    st.integers(1, 3000),
)


@settings(max_examples=300, deadline=None)
@given(boxes=st.lists(box_strategy, max_size=14), rtl=st.booleans())
def test_output_is_a_permutation(boxes: list[tuple[int, int, int, int]], rtl: bool) -> None:
    """For any boxes (duplicates and overlaps included) the output is a permutation of range(n)."""
    order = reading_order(boxes, rtl=rtl)
    assert sorted(order) == list(range(len(boxes)))


@settings(max_examples=200, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(
            st.floats(0, 2000, allow_nan=False),
            st.floats(0, 3000, allow_nan=False),
            st.floats(0, 2000, allow_nan=False),
            st.floats(0, 3000, allow_nan=False),
        ),
        max_size=10,
    )
)
def test_output_is_a_permutation_for_float_and_degenerate_boxes(
    boxes: list[tuple[float, float, float, float]],
) -> None:
    """Float boxes, zero width or height included, still give a permutation."""
    assert sorted(reading_order(boxes)) == list(range(len(boxes)))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), boxes=st.lists(box_strategy, min_size=2, max_size=10, unique=True))
def test_input_order_invariance_property(
    data: st.DataObject, boxes: list[tuple[int, int, int, int]]
) -> None:
    """Any permutation of distinct boxes reads the same boxes in the same order."""
    shuffled = data.draw(st.permutations(boxes))
    assert in_order([list(b) for b in shuffled]) == in_order([list(b) for b in boxes])


def _one_direction(boxes: list[tuple[int, int, int, int]], rtl: bool) -> list[int]:
    """The cut walked for one direction only (the form `reading_orders` replaced): columns
    reversed before they are read, centres signed by the direction."""
    spans = [(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in boxes]

    def walk(idx: list[int], rows_first: bool) -> list[int]:
        if len(idx) <= 1:
            return idx
        first, second = (1, 0) if rows_first else (0, 1)
        split, chosen = order_module._groups(idx, spans, first), first
        if len(split) <= 1 or not order_module._clean(split, spans, first):
            other = order_module._groups(idx, spans, second)
            if len(other) > 1 and (len(split) <= 1 or order_module._clean(other, spans, second)):
                split, chosen = other, second
        if len(split) > 1:
            if chosen == 0 and rtl:
                split.reverse()
            return [i for band in split for i in walk(band, chosen == 0)]
        sign = -1.0 if rtl else 1.0
        return sorted(
            idx,
            key=lambda i: (
                (spans[i][1] + spans[i][3]) / 2,
                sign * (spans[i][0] + spans[i][2]) / 2,
                i,
            ),
        )

    return walk(list(range(len(boxes))), True)


@settings(max_examples=400, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(
            st.integers(0, 6).map(lambda k: k * 150),
            st.integers(0, 6).map(lambda k: k * 200),
            st.sampled_from([1, 140, 150, 300, 460]),
            st.sampled_from([1, 190, 200, 410, 600]),
        ),
        max_size=12,
    )
)
def test_both_directions_in_one_walk_match_one_direction_walks(
    boxes: list[tuple[int, int, int, int]],
) -> None:
    """`reading_orders` gives, on grid-like pages with ties, duplicates and overlaps, what
    walking the cuts once per direction gives."""
    assert reading_orders(boxes) == (_one_direction(boxes, False), _one_direction(boxes, True))
