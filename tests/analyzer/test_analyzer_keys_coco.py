"""Page keys and COCO loading (real files, generated or written here)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from analyzer_testlib import coco

from analyzer.coco import CocoError, image_path, load_coco, panel_category_ids
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
