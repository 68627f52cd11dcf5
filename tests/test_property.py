"""Property: any JSON value given to `normalize` yields a valid Page that round-trips, or DataSpecError.

Examples per property: `DATASPEC_FUZZ_EXAMPLES` (default 1500, sized for CI). A long run:
    DATASPEC_FUZZ_EXAMPLES=50000 python -m pytest tests/test_property.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataspec

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
any_json = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)

# Keys and values the normalizers look for, so generated documents reach the deep rules.
KEYS = [
    "image", "image_path", "page_image_path", "panels", "VLM_panels", "detections", "result",
    "data", "bbox", "box", "box_2d", "polygon", "segmentation", "panel_coords", "text",
    "speakers", "dialogue", "narration", "sfx", "caption", "speech_type", "panel_number",
    "reading_order", "page_size", "width", "height", "score", "bbox_format", "x", "y", "w", "h",
    "xmin", "ymax", "characters", "source", "counts", "size", "ocr",
]  # fmt: skip
numbers = st.one_of(
    st.integers(min_value=-50, max_value=3000),
    st.floats(min_value=-10, max_value=3000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["12", "0.5", "1e3", "x"]),
)
boxes = st.one_of(
    st.lists(numbers, min_size=2, max_size=8),
    st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=1, max_size=4),
)
words = st.sampled_from(
    ["xyxy", "xywh", "yolo", "sfx", "narration", "thought", "a.jpg", "  hi  ", ""]
)
shaped = st.recursive(
    st.one_of(scalars, numbers, boxes, words),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=6),
    ),
    max_leaves=40,
)


def check(value: Any, **kwargs: Any) -> None:
    try:
        page, notes = dataspec.normalize(value, **kwargs)
    except dataspec.DataSpecError:
        return
    assert isinstance(page, dataspec.Page)
    assert all(isinstance(n, dataspec.Note) for n in notes)
    data = dataspec.dumps(page)
    # the file is the JSON of `to_json_dict`, byte for byte (floats, escapes, key order)
    assert data == orjson.dumps(page.to_json_dict(), option=orjson.OPT_APPEND_NEWLINE)
    again = dataspec.loads(data)
    assert again == page
    assert dataspec.dumps(again) == data
    jsonschema.Draft202012Validator(SCHEMA).validate(page.to_json_dict())


SCHEMA = dataspec.json_schema()
EXAMPLES = int(os.environ.get("DATASPEC_FUZZ_EXAMPLES", "1500"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(any_json)
def test_any_json_value(value: Any) -> None:
    check(value)


@SETTINGS
@given(shaped, st.one_of(st.none(), st.tuples(st.integers(1, 3000), st.integers(1, 3000))))
def test_page_shaped_values(value: Any, page_size: tuple[int, int] | None) -> None:
    check(value, page_size=page_size, json_path="/corpus/Series/0001.json")


@SETTINGS
@given(shaped)
def test_read_panels_never_raises_anything_else(value: Any) -> None:
    from dataspec.normalize import read_panels

    try:
        records, _ = read_panels(value)
    except dataspec.DataSpecError:
        return
    for record in records:
        assert isinstance(record.text, dataspec.PanelText)
        assert record.box is None or all(isinstance(v, int) for v in record.box)


FILE_BYTES = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda b, cut: b[:cut],
        st.just(b'{"image": "a.jpg", "panels": [{"bbox": [1, 2, 3, 4], "text": "hi"}]}'),
        st.integers(0, 70),
    ),
    st.builds(
        lambda t, enc: t.encode(enc, "replace"),
        st.text(max_size=60),
        st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]),
    ),
)


@SETTINGS
@given(FILE_BYTES)
def test_any_file_bytes_load_or_name_the_file(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Series" / "0001.json"
        path.parent.mkdir()
        path.write_bytes(raw)
        for lenient in (True, False):
            try:
                page = dataspec.load(path, lenient=lenient)
            except dataspec.DataSpecError as exc:
                assert exc.file == str(path)
                continue
            assert dataspec.loads(dataspec.dumps(page)) == page
