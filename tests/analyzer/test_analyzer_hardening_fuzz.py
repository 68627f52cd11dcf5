"""Fuzzing the analyzer's readers: any predictions file gives pages or a `CocoError`, any VLM
JSON gives panels or a `DataSpecError` naming the file, and any VLM content with any
detections gives a page that passes dataspec's strict load. Never another exception.

Examples per property: `DATASPEC_FUZZ_EXAMPLES` (default 1000: 3000 examples, about 15 s
for the module in CI, the same examples every run). A long run explores afresh each time:
    DATASPEC_FUZZ_EXAMPLES=50000 python -m pytest tests/analyzer/test_analyzer_hardening_fuzz.py

Inputs that once crashed a reader are kept as explicit regression tests at the end.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dataspec
from analyzer.align import align
from analyzer.coco import CocoError, CocoPages, load_coco
from analyzer.emit import build_page, detections
from analyzer.page_files import output_name
from analyzer.vlm import read_vlm, vlm_stats

_ENV = os.environ.get("DATASPEC_FUZZ_EXAMPLES")
EXAMPLES = int(_ENV or "1000")
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=_ENV is None,  # CI: reproducible; a long run: new examples each time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- JSON-ish values -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
numbers = st.one_of(
    st.integers(min_value=-50, max_value=3000),
    st.floats(min_value=-100, max_value=5000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=2**63, max_value=2**80),
    st.sampled_from(["12", "0.5", "x", "", None, True]),
)
ids = st.one_of(
    st.integers(min_value=-3, max_value=5),
    st.sampled_from(
        ["E:\\R\\S\\JPG4CBZ_0001.jpg", "S/0002.jpg", "a.jpg", "", "../../x.jpg", "CON"]
    ),
    st.text(max_size=6),
    numbers,
)
any_json = st.recursive(
    scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)
    ),
    max_leaves=12,
)
bbox = st.one_of(st.lists(numbers, min_size=0, max_size=5), numbers, any_json)


def maybe(d: dict[str, Any], present: list[bool]) -> dict[str, Any]:
    return {k: v for (k, v), keep in zip(d.items(), present, strict=False) if keep}


annotation = st.one_of(
    st.builds(
        maybe,
        st.fixed_dictionaries(
            {
                "image_id": ids,
                "category_id": st.one_of(st.integers(0, 3), numbers),
                "bbox": bbox,
                "score": numbers,
                "id": st.integers(0, 100),
                "segmentation": any_json,
            }
        ),
        st.lists(st.booleans(), min_size=6, max_size=6),
    ),
    any_json,
)
image = st.one_of(
    st.builds(
        maybe,
        st.fixed_dictionaries(
            {
                "id": ids,
                "file_name": st.one_of(st.none(), ids, st.sampled_from(["JPG4CBZ\\0001.jpg"])),
                "width": numbers,
                "height": numbers,
            }
        ),
        st.lists(st.booleans(), min_size=4, max_size=4),
    ),
    any_json,
)
category = st.one_of(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.integers(0, 3), numbers),
            "name": st.sampled_from(["panel", "Panel", "face", 3]),
        }
    ),
    any_json,
)
coco_doc = st.one_of(
    st.builds(
        maybe,
        st.fixed_dictionaries(
            {
                "images": st.one_of(st.lists(image, max_size=5), any_json),
                "annotations": st.one_of(st.lists(annotation, max_size=8), any_json),
                "categories": st.one_of(st.lists(category, max_size=3), any_json),
                "info": any_json,
            }
        ),
        st.lists(st.booleans(), min_size=4, max_size=4).map(lambda b: [b[0], True, *b[2:]]),
    ),
    st.lists(annotation, max_size=8),
    any_json,
)


def encode(value: Any, how: str) -> bytes:
    """JSON text as found in the wild: NaN literals, a BOM, cp1252, pretty printed."""
    text = json.dumps(value, indent=2 if how == "indent" else None, ensure_ascii=how == "ascii")
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if how == "cp1252":
        return text.encode("cp1252", "replace")
    return text.encode("utf-8", "surrogatepass")


def damage(raw: bytes, cut: int, flip: int, byte: int) -> bytes:
    """`raw` cut short and/or with one byte changed."""
    out = bytearray(raw[: cut % (len(raw) + 1)] if cut >= 0 else raw)
    if out and flip >= 0:
        out[flip % len(out)] = byte
    return bytes(out)


encodings = st.sampled_from(["plain", "indent", "ascii", "bom", "cp1252"])
mutations = st.tuples(st.integers(-1, 4000), st.integers(-1, 4000), st.integers(0, 255))


def file_bytes(docs: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(encode, docs, encodings),
        st.builds(lambda v, how, m: damage(encode(v, how), *m), docs, encodings, mutations),
        st.binary(max_size=120),
    )


# --- the COCO reader -----------------------------------------------------------------------------


def check_pages(pages: CocoPages, file: str) -> None:
    n = len(pages)
    assert len(pages.paths) == n and pages.sizes.shape == (n, 2)
    assert pages.offsets.shape == (n + 1,) and pages.offsets[0] == 0
    assert np.all(np.diff(pages.offsets) >= 0)
    assert pages.offsets[-1] == len(pages.scores) == len(pages.boxes)
    assert np.all(np.isfinite(pages.boxes)) and np.all(np.isfinite(pages.scores))
    assert np.all(pages.sizes >= 0)
    assert all(isinstance(i, int | str) and not isinstance(i, bool) for i in pages.ids)
    assert all(isinstance(p, str) for p in pages.paths)
    assert all(p.file == file for p in pages.problems)
    for path, image_id in zip(pages.paths, pages.ids, strict=True):
        for naming in ("preserve_tree", "hash"):
            output_name(naming, vlm_rel=None, image_path=path, image_id=image_id)


def load_or_name(raw: bytes, chunk_bytes: int) -> CocoPages | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "predictions.json")
        with open(path, "wb") as fh:
            fh.write(raw)
        try:
            pages = load_coco(path, chunk_bytes=chunk_bytes)
        except CocoError as exc:
            assert str(exc)
            return None
        check_pages(pages, path)
        return pages


@SETTINGS
@given(file_bytes(coco_doc), st.sampled_from([1, 64, 1 << 20]))
def test_any_predictions_file_gives_pages_or_a_coco_error(raw: bytes, chunk_bytes: int) -> None:
    load_or_name(raw, chunk_bytes)


@SETTINGS
@given(st.lists(annotation, max_size=30), st.sampled_from([1, 40, 200]), encodings)
def test_slicing_does_not_change_the_result(anns: list[Any], chunk_bytes: int, how: str) -> None:
    """Annotations decoded in small slices (cuts inside strings, nested lists) read the same."""
    raw = encode({"images": [], "annotations": anns}, how)
    whole, sliced = load_or_name(raw, 1 << 24), load_or_name(raw, chunk_bytes)
    assert (whole is None) == (sliced is None)
    if whole is not None and sliced is not None:
        assert whole.ids == sliced.ids and whole.paths == sliced.paths
        assert np.array_equal(whole.boxes, sliced.boxes)
        assert np.array_equal(whole.scores, sliced.scores)
        assert [p[1:] for p in whole.problems] == [p[1:] for p in sliced.problems]


# --- the VLM reader and the page built from it ---------------------------------------------------

VLM_KEYS = [
    "panels", "VLM_panels", "bbox", "box", "panel_coords", "text", "speakers", "dialogue",
    "narration", "sfx", "caption", "description", "speech_type", "character", "panel_number",
    "x", "y", "w", "h", "width", "height", "page_size", "image", "result", "data",
]  # fmt: skip
vlm_value = st.recursive(
    st.one_of(scalars, numbers, st.lists(numbers, min_size=4, max_size=4)),
    lambda c: st.one_of(
        st.lists(c, max_size=4), st.dictionaries(st.sampled_from(VLM_KEYS), c, max_size=5)
    ),
    max_leaves=25,
)
vlm_doc = st.one_of(
    st.fixed_dictionaries({"panels": st.lists(vlm_value, max_size=6)}),
    vlm_value,
    any_json,
)
det_boxes = st.lists(
    st.tuples(
        st.floats(-3000, 6000), st.floats(-3000, 6000), st.floats(-10, 6000), st.floats(-10, 6000)
    ),
    max_size=6,
)
sizes = st.one_of(st.none(), st.tuples(st.integers(1, 3000), st.integers(1, 3000)))


@SETTINGS
@given(
    file_bytes(vlm_doc),
    sizes,
    det_boxes,
    st.floats(0, 1),
    st.sampled_from(["img/S/JPG4CBZ/0001.jpg", "E:\\..\\x.jpg"]),
)
def test_any_vlm_json_gives_panels_or_names_the_file_and_pages_load(
    raw: bytes,
    size: tuple[int, int] | None,
    boxes: list[tuple[float, float, float, float]],
    threshold: float,
    image_path: str,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "JPG4CBZ_0001.json")
        with open(path, "wb") as fh:
            fh.write(raw)
        try:
            records = read_vlm(path, page_size=size)
        except dataspec.DataSpecError as exc:
            assert exc.file == path
            return
    vlm_stats(records)
    scores = np.linspace(0.0, 1.0, len(boxes)) if boxes else np.zeros(0)
    dets = detections(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), scores, threshold, size)
    alignment = align([d.box for d in dets], [d.score for d in dets], records)
    page = build_page(
        image_path=image_path,
        size=size,
        dets=dets,
        vlm=records,
        alignment=alignment,
        min_confidence=0.5,
        image_id="E:\\S\\JPG4CBZ_0001.jpg",
        vlm_json_path=path,
        match_tier="exact",
    )
    data = dataspec.dumps(page)
    assert dataspec.loads(data) == page


# --- regressions: inputs that crashed a reader before these tests -------------------------------

DEEP = 5000


@pytest.mark.parametrize(
    "raw, readable",
    [
        (  # RecursionError from msgspec: now a CocoError
            b'{"annotations": [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "x": '
            + b"[" * DEEP
            + b"]" * DEEP
            + b"}]}",
            False,
        ),
        (b"[" + b"[" * DEEP + b"]" * DEEP + b"]", False),  # a bare list, nested: the same
        (  # UnicodeDecodeError from msgspec: now read as cp1252
            '{"images": [{"id": "caf\u00e9.jpg"}], "annotations": []}'.encode("cp1252"),
            True,
        ),
        (  # OverflowError: a page size beyond int64; now reported, size unknown
            b'{"images": [{"id": 1, "width": 1e300, "height": 10}], "annotations": []}',
            True,
        ),
        (  # a bare results list with NaN: was "not a COCO dict" (the whole file refused)
            b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": NaN}]',
            True,
        ),
    ],
    ids=["deep_annotation", "deep_list", "cp1252", "huge_width", "nan_results_list"],
)
def test_coco_regressions(raw: bytes, readable: bool) -> None:
    assert (load_or_name(raw, 1 << 20) is not None) == readable


def test_coco_slices_not_utf8_regression() -> None:
    """A slice that is not UTF-8 after one that needed Python's json: was a `CocoError`
    with large slices and pages with small ones; now read as cp1252 either way."""
    raw = '{"images": [], "annotations": [{}, {"image_id": "\xa0"}]}'.encode("cp1252")
    for chunk in (1, 1 << 20):
        pages = load_or_name(raw, chunk)
        assert pages is not None and pages.ids == []
        assert [p.where for p in pages.problems] == ["annotations[0]", "annotations[1]"]


def test_coco_bom_regression(tmp_path: Path) -> None:
    """A UTF-8 byte order mark before the predictions: was "not a COCO dict"."""
    pages = load_or_name(b'\xef\xbb\xbf{"images": [{"id": 7}], "annotations": []}', 1 << 20)
    assert pages is not None and pages.ids == [7]


def test_coco_truncated_is_not_taken_from_its_inner_brackets() -> None:
    """A cut file is an error, not the `[]` found inside it."""
    assert load_or_name(b'{"images": [], "annotations": [', 1 << 20) is None


@pytest.mark.parametrize(
    "doc",
    [
        {"panels": [{"bbox": [10**30, 0, 10, 10]}]},  # OverflowError in the box rules
        {"panels": [{"bbox": [0, 0, 10**400, 10]}]},
    ],
)
def test_vlm_regressions(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    try:
        records = read_vlm(str(path))
    except dataspec.DataSpecError as exc:
        assert exc.file == str(path)
    else:
        assert all(r.box is None or all(math.isfinite(v) for v in r.box) for r in records)


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe{\x00}\x00"])
def test_vlm_bytes_that_are_no_json(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    with pytest.raises(dataspec.DataSpecError) as info:
        read_vlm(str(path))
    assert info.value.file == str(path)
