"""Page keys and COCO loading (real files, generated or written here)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from analyzer_testlib import coco

from analyzer.coco import (
    CocoError,
    CocoPages,
    image_path,
    load_coco,
    panel_category_ids,
    text_category_ids,
)
from dataspec.keys import page_key
from dataspec.sample import SampleCorpus


@pytest.mark.parametrize(
    "a, b",
    [
        # the real layout: COCO id, image on disk, VLM JSON
        ("E:\\Root\\Saga #12\\JPG4CBZ_0001.jpg", "Saga #12/JPG4CBZ/0001.jpg"),
        ("Saga #12/JPG4CBZ/0001.jpg", "Saga #12/JPG4CBZ_0001.json"),
        # generic containers in any case and nesting
        ("Saga #12/pages/0003.png", "Saga #12/Pages_0003.json"),
        ("/mnt/e/x/Saga #12/jpg4cbz/0001.JPG", "Saga #12/JPG4CBZ_0001.json"),
    ],
)
def test_same_page_same_exact_key(a: str, b: str) -> None:
    assert page_key(a).exact == page_key(b).exact


@pytest.mark.parametrize(
    "a, b",
    [
        ("X-Men 01/JPG4CBZ/0001.jpg", "X Men 01/JPG4CBZ_0001.json"),  # punctuation twins
        ("Saga/JPG4CBZ/1.jpg", "Saga/JPG4CBZ_0001.json"),  # zero padding
        ("saga/0001.jpg", "Saga/JPG4CBZ_0001.json"),  # case, container
    ],
)
def test_exact_keys_differ_but_series_page_keys_agree(a: str, b: str) -> None:
    ka, kb = page_key(a), page_key(b)
    assert ka.exact != kb.exact
    assert ka.series_page == kb.series_page


def test_key_parts() -> None:
    key = page_key("E:\\CalibreComics_extracted\\Pub\\Saga #12\\images\\JPG4CBZ_007.jpg")
    assert key.series == "Saga #12"
    assert key.containers == ("images", "jpg4cbz")
    assert key.stem == "007"
    assert key.parents == ("Pub", "CalibreComics_extracted")
    assert key.series_page == "saga12#7"


@pytest.mark.parametrize(
    "image_id, file_name, expected",
    [
        (  # real detector output: id folder + file_name
            "E:\\R\\X-Men 01\\JPG4CBZ_0001.jpg",
            "JPG4CBZ\\0001.jpg",
            "E:\\R\\X-Men 01\\JPG4CBZ\\0001.jpg",
        ),
        (  # file_name repeating the id's last folder
            "E:\\R\\X-Men 01\\JPG4CBZ_0001.jpg",
            "X-Men 01\\JPG4CBZ\\0001.jpg",
            "E:\\R\\X-Men 01\\JPG4CBZ\\0001.jpg",
        ),
        (7, "Saga/JPG4CBZ/0001.jpg", "Saga/JPG4CBZ/0001.jpg"),  # integer id
        ("Saga/JPG4CBZ/0001.jpg", "0001.jpg", "Saga/JPG4CBZ/0001.jpg"),  # same base name
        ("17", None, "17"),  # no path at all
        ("E:\\R\\a.jpg", "/data/R/a.jpg", "/data/R/a.jpg"),  # absolute file_name wins
    ],
)
def test_image_path(image_id: int | str, file_name: str | None, expected: str) -> None:
    assert image_path(image_id, file_name) == expected


def test_load_generated_corpus(base_corpus: SampleCorpus) -> None:
    data = coco(base_corpus)
    pages = load_coco(base_corpus.coco_path)
    assert pages.panel_ids == {1}
    assert len(pages) == len(data["images"]) == base_corpus.pages
    assert pages.annotations == len(data["annotations"])
    want = Counter(a["image_id"] for a in data["annotations"] if a["category_id"] == 1)
    for i, image_id in enumerate(pages.ids):
        assert pages.offsets[i + 1] - pages.offsets[i] == want[image_id]
    first = next(a for a in data["annotations"] if a["category_id"] == 1)
    page = pages.ids.index(first["image_id"])
    rows = pages.boxes[pages.offsets[page] : pages.offsets[page + 1]]
    assert any(np.allclose(r, first["bbox"]) for r in rows)
    assert pages.problems == []


def test_small_slices_give_the_same_result(base_corpus: SampleCorpus) -> None:
    whole = load_coco(base_corpus.coco_path)
    sliced = load_coco(base_corpus.coco_path, chunk_bytes=300)
    assert sliced.ids == whole.ids
    assert np.array_equal(sliced.offsets, whole.offsets)
    assert np.array_equal(sliced.boxes, whole.boxes)
    assert np.array_equal(sliced.scores, whole.scores)


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_bare_list_integer_ids_and_a_cut_inside_a_string(tmp_path: Path) -> None:
    anns = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
        # an id holding the cut pattern: slicing must not break here
        {"image_id": "a}, {b.jpg", "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.8},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 3, 3], "score": 0.7},
    ] * 20
    path = _write(tmp_path / "results.json", anns)
    for chunk in (16, 100, 10_000):
        pages = load_coco(path, chunk_bytes=chunk)
        assert pages.ids == [1, "a}, {b.jpg", 2]
        assert list(np.diff(pages.offsets)) == [20, 20, 0]  # category 2 is no panel


def test_bad_annotations_are_reported_and_skipped(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "images": [{"id": 1, "file_name": "S/0001.jpg", "width": 100, "height": 200}],
            "annotations": [
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10], "score": 0.9},
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": "high"},
                {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": float("nan")},
                {"image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]},  # no score: 1.0
            ],
            "categories": [{"id": 1, "name": "panel"}],
        }
    )
    path = tmp_path / "p.json"
    path.write_text(text, encoding="utf-8")  # json.dumps writes NaN as a bare literal
    pages = load_coco(path)
    assert list(pages.scores) == [0.9, 1.0]
    wheres = [p.where for p in pages.problems]
    assert wheres == ["annotations[1]", "annotations[2]", "annotations[3]"]
    assert all(p.file == str(path) for p in pages.problems)
    assert pages.sizes.tolist() == [[100, 200]]


def test_categories_by_name_and_id() -> None:
    cats = [{"id": 3, "name": "Panel"}, {"id": 1, "name": "character"}, {"id": 9, "name": "frame"}]
    assert panel_category_ids(cats) == {3}
    assert panel_category_ids(None) == {1}
    assert panel_category_ids(cats, names=["frame", "panel"]) == {3, 9}
    assert panel_category_ids(cats, ids=[1]) == {1}
    with pytest.raises(CocoError, match="no category named 'gutter'"):
        panel_category_ids(cats, names=["gutter"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b'{"images": [], "annotations": [{"image_id": 1', "not valid JSON"),
        (b'[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}, {"imag', "not valid JSON"),
        (b'"just a string"', "not a COCO dict or results list"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CocoError, match=message):
        load_coco(path)


# --- text detections (text, balloon, caption) ----------------------------------------------------

USER_CATEGORIES = [
    {"id": 1, "name": "panel"},
    {"id": 2, "name": "character"},
    {"id": 3, "name": "balloon"},
    {"id": 4, "name": "text"},
    {"id": 7, "name": "face"},
]


def _ann(image_id: int | str, cat: int, bbox: list[float], score: float = 0.9) -> dict:
    return {"image_id": image_id, "category_id": cat, "bbox": bbox, "score": score}


def _check_text_arrays(pages: CocoPages) -> None:
    n, m = len(pages), len(pages.text_scores)
    assert pages.text_offsets.shape == (n + 1,) and pages.text_offsets.dtype == np.int64
    assert pages.text_offsets[0] == 0 and pages.text_offsets[-1] == m
    assert pages.text_boxes.shape == (m, 4) and pages.text_boxes.dtype == np.float64
    assert pages.text_scores.dtype == np.float64
    assert pages.text_categories.shape == (m,) and pages.text_categories.dtype == np.int32
    assert set(pages.text_categories.tolist()) <= pages.text_ids
    assert not pages.text_ids & pages.panel_ids


def _text_rows(pages: CocoPages, page: int) -> list[tuple[int, list[float], float]]:
    first, end = pages.text_span(page)
    return [
        (int(c), b.tolist(), float(s))
        for c, b, s in zip(
            pages.text_categories[first:end],
            pages.text_boxes[first:end],
            pages.text_scores[first:end],
            strict=True,
        )
    ]


def test_generated_corpus_text_detections(base_corpus: SampleCorpus) -> None:
    """The sample detector names balloon (3) and text (4): both kept, grouped per image."""
    data = coco(base_corpus)
    pages = load_coco(base_corpus.coco_path)
    _check_text_arrays(pages)
    assert pages.panel_ids == {1} and pages.text_ids == {3, 4}
    want = Counter(a["image_id"] for a in data["annotations"] if a["category_id"] in (3, 4))
    assert sum(want.values()) > 0
    for i, image_id in enumerate(pages.ids):
        assert np.diff(pages.text_span(i)) == [want[image_id]]
        kept = [a for a in data["annotations"] if a["image_id"] == image_id]
        kept = [a for a in kept if a["category_id"] in (3, 4)]
        assert _text_rows(pages, i) == [(a["category_id"], a["bbox"], a["score"]) for a in kept]
    sliced = load_coco(base_corpus.coco_path, chunk_bytes=300)
    assert np.array_equal(sliced.text_offsets, pages.text_offsets)
    assert np.array_equal(sliced.text_boxes, pages.text_boxes)
    assert np.array_equal(sliced.text_scores, pages.text_scores)
    assert np.array_equal(sliced.text_categories, pages.text_categories)


def test_full_coco_text_and_balloon_by_name(tmp_path: Path) -> None:
    images = [{"id": 10, "file_name": "S/0001.jpg"}, {"id": 11, "file_name": "S/0002.jpg"}]
    anns = [
        _ann(10, 1, [0, 0, 100, 100]),
        _ann(10, 4, [5, 5, 20, 10], 0.8),
        _ann(10, 2, [1, 1, 30, 60]),  # character: dropped
        _ann(10, 3, [4, 4, 30, 20], 0.7),
        _ann(10, 7, [2, 2, 8, 8]),  # face: dropped
        _ann(11, 4, [50, 50, 10, 10], 0.6),  # a page with text and no panel
        _ann(10, 4, [60, 60, 10, 10], 0.5),
    ]
    path = _write(
        tmp_path / "p.json", {"images": images, "annotations": anns, "categories": USER_CATEGORIES}
    )
    for chunk in (32, 10_000):
        pages = load_coco(path, chunk_bytes=chunk)
        _check_text_arrays(pages)
        assert pages.ids == [10, 11]
        assert pages.annotations == 7
        assert pages.problems == []
        assert pages.panel_ids == {1} and pages.text_ids == {3, 4}
        assert pages.boxes.tolist() == [[0, 0, 100, 100]]
        assert list(np.diff(pages.offsets)) == [1, 0]
        assert pages.text_offsets.tolist() == [0, 3, 4]
        assert _text_rows(pages, 0) == [
            (4, [5, 5, 20, 10], 0.8),
            (3, [4, 4, 30, 20], 0.7),
            (4, [60, 60, 10, 10], 0.5),
        ]
        assert _text_rows(pages, 1) == [(4, [50, 50, 10, 10], 0.6)]
        boxes, scores = pages.text_of(1)
        assert boxes.shape == (1, 4) and scores.tolist() == [0.6]
        assert np.shares_memory(boxes, pages.text_boxes)  # a view, not a copy
        assert np.shares_memory(scores, pages.text_scores)


def test_user_categories_and_name_spellings() -> None:
    real = [  # the user's Faster R-CNN: no balloon category
        {"id": 1, "name": "panel"},
        {"id": 2, "name": "character"},
        {"id": 4, "name": "text"},
        {"id": 7, "name": "face"},
    ]
    assert text_category_ids(real, panel_ids=frozenset({1})) == {4}
    spelled = [
        {"id": 1, "name": "Panel"},
        {"id": 5, "name": "Speech_Bubble"},
        {"id": 6, "name": "word-balloon"},
        {"id": 8, "name": "  CAPTION "},
        {"id": 9, "name": "text  bubble"},
        {"id": 10, "name": "onomatopoeia"},
        {"id": 11, "name": "textbox"},
    ]
    assert text_category_ids(spelled) == {5, 6, 8, 9}
    assert text_category_ids([]) == {3, 4}  # a list naming nothing: the default ids
    assert text_category_ids(None, panel_ids=frozenset({3})) == {4}  # a panel id stays a panel
    assert text_category_ids(spelled, names=["speech bubble", "ONOMATOPOEIA"]) == {5, 10}
    assert text_category_ids(spelled, ids=[42]) == {42}


def test_bare_results_list_default_text_ids(tmp_path: Path) -> None:
    anns = [
        _ann("a.jpg", 1, [0, 0, 10, 10]),
        _ann("a.jpg", 2, [0, 0, 3, 3]),
        _ann("a.jpg", 3, [1, 1, 4, 4], 0.4),
        _ann("b.jpg", 4, [2, 2, 5, 5], 0.3),
        _ann("b.jpg", 7, [2, 2, 5, 5], 0.3),
    ]
    path = _write(tmp_path / "results.json", anns)
    pages = load_coco(path)
    _check_text_arrays(pages)
    assert pages.panel_ids == {1} and pages.text_ids == {3, 4}
    assert pages.ids == ["a.jpg", "b.jpg"]
    assert _text_rows(pages, 0) == [(3, [1, 1, 4, 4], 0.4)]
    assert _text_rows(pages, 1) == [(4, [2, 2, 5, 5], 0.3)]
    # panels chosen as 1 and 3 (as --panel_category_id does): 3 is a panel, not text
    both = load_coco(path, category_ids=[1, 3])
    assert both.panel_ids == {1, 3} and both.text_ids == {4}
    assert list(np.diff(both.offsets)) == [2, 0]
    assert _text_rows(both, 0) == [] and _text_rows(both, 1) == [(4, [2, 2, 5, 5], 0.3)]


def test_explicit_text_categories(tmp_path: Path) -> None:
    anns = [
        _ann(1, 1, [0, 0, 10, 10]),
        _ann(1, 2, [0, 0, 3, 3]),
        _ann(1, 3, [1, 1, 4, 4]),
        _ann(1, 4, [2, 2, 5, 5]),
    ]
    path = _write(
        tmp_path / "p.json",
        {"images": [{"id": 1}], "annotations": anns, "categories": USER_CATEGORIES},
    )
    only_text = load_coco(path, text_category_names=["TEXT"])
    assert only_text.text_ids == {4} and only_text.text_categories.tolist() == [4]
    by_id = load_coco(path, text_category_ids=[2], text_category_names=["balloon"])
    assert by_id.text_ids == {2, 3} and by_id.text_categories.tolist() == [2, 3]
    bare = _write(tmp_path / "bare.json", anns)
    assert load_coco(bare, text_category_ids=[4]).text_ids == {4}
    assert load_coco(path, text_category_ids=[99]).text_boxes.shape == (0, 4)  # not in the file
    with pytest.raises(CocoError, match=r"category 1 \('panel'\) cannot be both panel and text"):
        load_coco(path, text_category_ids=[1, 4])
    with pytest.raises(CocoError, match=r"category 3 \('balloon'\) cannot be both"):
        load_coco(path, category_ids=[1, 3], text_category_names=["balloon"])
    with pytest.raises(CocoError, match="beyond int64"):
        load_coco(path, text_category_ids=[2**70])


def test_unknown_text_category_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.json",
        {"images": [], "annotations": [_ann(1, 4, [0, 0, 1, 1])], "categories": USER_CATEGORIES},
    )
    with pytest.raises(CocoError, match="no category named 'thought'"):
        load_coco(path, text_category_names=["thought"])
    with pytest.raises(CocoError, match="no category named 'text'"):  # a bare list names none
        load_coco(
            _write(tmp_path / "bare.json", [_ann(1, 4, [0, 0, 1, 1])]), text_category_names=["text"]
        )


def test_text_on_an_image_without_panels_or_listing(tmp_path: Path) -> None:
    images = [{"id": "p1.jpg", "width": 100, "height": 200}, {"id": "p2.jpg"}]
    anns = [
        _ann("p1.jpg", 1, [0, 0, 50, 50]),
        _ann("p2.jpg", 4, [1, 2, 3, 4], 0.5),
        _ann("ghost.jpg", 3, [5, 6, 7, 8], 0.25),  # not in `images`: a page of its own
    ]
    path = _write(
        tmp_path / "p.json", {"images": images, "annotations": anns, "categories": USER_CATEGORIES}
    )
    pages = load_coco(path)
    _check_text_arrays(pages)
    assert pages.ids == ["p1.jpg", "p2.jpg", "ghost.jpg"]
    assert pages.offsets.tolist() == [0, 1, 1, 1]
    assert pages.text_offsets.tolist() == [0, 0, 1, 2]
    assert _text_rows(pages, 1) == [(4, [1, 2, 3, 4], 0.5)]
    assert _text_rows(pages, 2) == [(3, [5, 6, 7, 8], 0.25)]
    assert [(p.where, p.problem) for p in pages.problems] == [
        ("annotations[2]", "image_id 'ghost.jpg' is not in `images`; a page of its own")
    ]
    empty = pages.text_of(0)
    assert empty[0].shape == (0, 4) and empty[1].shape == (0,)


@pytest.mark.parametrize("whole_file_json", [False, True])
def test_bad_text_annotations_are_reported(tmp_path: Path, whole_file_json: bool) -> None:
    """Typed slices (msgspec), lenient slices and whole-file json all report a bad text box."""
    anns = [
        _ann(1, 4, [0, 0, 10, 10], 0.9),
        _ann(1, 4, [0, 0, 10], 0.9),  # 3 numbers
        _ann(1, 3, [0, 0, 10, 10], "high"),  # type: ignore[arg-type]
        _ann(1, 4, [0, 0, 10, 10], float("nan")),
        _ann(1, 3, [5, 5, 10, 10]) | {"score": None},
        {"image_id": 1, "category_id": 4, "bbox": [5, 5, 10, 10]},  # no score: 1.0
        _ann(1, 2, [0, 0, 10], 0.9),  # a bad character: reported too, as before
    ]
    doc: dict = {"images": [{"id": 1}], "annotations": anns, "categories": USER_CATEGORIES}
    if whole_file_json:
        doc["info"] = {"nan": float("nan")}  # msgspec refuses the whole file
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    pages = load_coco(path)
    _check_text_arrays(pages)
    assert pages.text_scores.tolist() == [0.9, 1.0]
    assert pages.text_categories.tolist() == [4, 4]
    wheres = [p.where for p in pages.problems]
    assert wheres == [f"annotations[{i}]" for i in (1, 2, 3, 4, 6)]
    assert pages.annotations == 7


def test_infinite_text_box(tmp_path: Path) -> None:
    """1e999 (infinity) in a text box or a panel score: reported the same, others kept."""
    path = tmp_path / "p.json"
    path.write_text(
        '{"images": [{"id": 1}], "categories": [{"id": 4, "name": "text"}, {"id": 1, "name": "panel"}],'
        ' "annotations": ['
        '{"image_id": 1, "category_id": 4, "bbox": [1, 2, 3, 1e999], "score": 0.5},'
        '{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 1e999},'
        '{"image_id": 1, "category_id": 4, "bbox": [1, 2, 3, 4], "score": 0.5}]}',
        encoding="utf-8",
    )
    pages = load_coco(path)
    assert [p.where for p in pages.problems] == ["annotations[0]", "annotations[1]"]
    assert all("finite" in p.problem for p in pages.problems)
    assert pages.text_boxes.tolist() == [[1, 2, 3, 4]] and pages.text_categories.tolist() == [4]
    assert len(pages.scores) == 0


def test_panels_unchanged_by_text_choice(base_corpus: SampleCorpus) -> None:
    default = load_coco(base_corpus.coco_path)
    for kwargs in ({"text_category_ids": [2, 5]}, {"text_category_names": ["text"]}):
        other = load_coco(base_corpus.coco_path, **kwargs)  # type: ignore[arg-type]
        assert other.ids == default.ids and other.paths == default.paths
        assert other.panel_ids == default.panel_ids
        assert np.array_equal(other.offsets, default.offsets)
        assert np.array_equal(other.boxes, default.boxes)
        assert np.array_equal(other.scores, default.scores)
        assert other.annotations == default.annotations
    data = coco(base_corpus)
    panels = [a for a in data["annotations"] if a["category_id"] == 1]
    assert len(default.scores) == len(panels)
    assert sorted(default.scores.tolist()) == sorted(a["score"] for a in panels)


def test_text_ids_beyond_int64_in_the_file_are_ignored(tmp_path: Path) -> None:
    huge = 2**70
    doc = {
        "images": [{"id": 1}],
        "annotations": [_ann(1, huge, [0, 0, 1, 1]), _ann(1, 4, [0, 0, 2, 2])],
        "categories": [{"id": huge, "name": "text"}, {"id": 4, "name": "caption"}],
    }
    pages = load_coco(_write(tmp_path / "p.json", doc))
    assert pages.text_ids == {4} and pages.text_categories.tolist() == [4]


def test_typed_path_reports_a_non_finite_text_box() -> None:
    """The msgspec struct path checks text boxes as it does panels (msgspec itself refuses
    1e999, so the structs are built here)."""
    from analyzer.coco.collect import _Collector
    from analyzer.coco.records import _Ann

    collector = _Collector("f.json", frozenset({1}), {}, frozenset({4}))
    inf = float("inf")
    collector.add_structs(
        [
            _Ann(1, 4, (0, 0, inf, 1), 0.5),
            _Ann(1, 4, (0, 0, 1, 1), inf),
            _Ann(2, 4, (0, 0, 1, 1), 0.5),
            _Ann(2, 7, (0, 0, inf, 1), 0.5),  # a face: dropped unchecked, as before
        ]
    )
    assert [p.where for p in collector.problems] == ["annotations[0]", "annotations[1]"]
    assert collector.index == {1: 0, 2: 1}
    offsets, boxes, scores, cats = collector.text.grouped(2)
    assert offsets.tolist() == [0, 0, 1] and scores.tolist() == [0.5]
    assert boxes.tolist() == [[0, 0, 1, 1]]
    assert cats is not None and cats.tolist() == [4]


@pytest.mark.parametrize("whole_file_json", [False, True])
def test_character_detections_are_kept_apart(tmp_path: Path, whole_file_json: bool) -> None:
    anns = [
        _ann("a.jpg", 1, [0, 0, 10, 10]),
        _ann("a.jpg", 2, [1, 1, 3, 3], 0.7),
        _ann("b.jpg", 2, [2, 2, 5, 5], 0.6),
        _ann("b.jpg", 7, [2, 2, 2, 2], 0.9),  # a face: not a character box
        _ann("b.jpg", 4, [4, 4, 2, 2], 0.8),
    ]
    text = json.dumps(anns)
    if whole_file_json:  # a NaN literal: the file is read whole through Python's json
        text = text[:-1] + ', {"image_id": "c.jpg", "category_id": 9, "bbox": [0, 0, 1, 1], '
        text += '"score": NaN}]'
    path = tmp_path / "results.json"
    path.write_text(text, encoding="utf-8")
    pages = load_coco(path)
    assert pages.char_ids == {2} and pages.text_ids == {3, 4}
    rows = [
        (pages.char_boxes[lo:hi].tolist(), pages.char_scores[lo:hi].tolist())
        for lo, hi in (pages.char_span(i) for i in range(2))
    ]
    assert rows == [([[1, 1, 3, 3]], [0.7]), ([[2, 2, 5, 5]], [0.6])]
    # a file naming its categories: characters by name, whatever their id
    named = {
        "images": [{"id": 5, "file_name": "a.jpg"}],
        "categories": [
            {"id": 1, "name": "panel"},
            {"id": 9, "name": "Character"},
            {"id": 2, "name": "face"},
        ],
        "annotations": [
            {"image_id": 5, "category_id": 9, "bbox": [1, 1, 2, 2], "score": 0.9},
            {"image_id": 5, "category_id": 2, "bbox": [1, 1, 1, 1], "score": 0.9},
        ],
    }
    pages = load_coco(_write(tmp_path / "named.json", named))
    assert pages.char_ids == {9} and pages.char_boxes.tolist() == [[1, 1, 2, 2]]
