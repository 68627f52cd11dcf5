"""The analyzer's fast paths give the answers of the plain ones.

Boxes are converted by an inlined copy of dataspec's box rules, ltr pages reuse the layout
order `detections` found, image checks read a file's two ends in one open, COCO slices
are gathered by columns, chunk rows are gathered by array operations, and emission
checks each out-tree folder once per run. Each is compared here with the slow path it
replaces (or with the guarantee it must keep).
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from analyzer.align import Alignment
from analyzer.coco import load_coco
from analyzer.coco.collect import _Collector
from analyzer.emit import _by_rules, _in_pixels, _InLayoutOrder, build_page, detections
from analyzer.images import HEAD_BYTES, image_problem
from analyzer.page_files import (
    UnsafeOutputError,
    begin_output_run,
    end_output_run,
    inside,
    write_if_changed,
)
from analyzer.pool import _gather
from dataspec.imagesize import image_size
from dataspec.io import dumps
from dataspec.order import reading_order

_SPECIAL = (
    math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    0.5,
    -0.5,
    1e6,
    1e6 + 1,
    -1e6 - 0.5,
    1e308,
    -1e308,
    0.49999999999999994,
    2.5,
    1988.6,
    3057.5,
    5e-324,
)


def test_inlined_box_rules_are_dataspecs() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        k = rng.randint(0, 6)
        rows = [
            [
                rng.choice(_SPECIAL) if rng.random() < 0.35 else rng.uniform(-100, 3200)
                for _ in "xywh"
            ]
            for _ in range(k)
        ]
        boxes = np.array(rows, dtype=np.float64).reshape(-1, 4)
        scores = np.array([rng.choice([0.0, 0.5, 1.0, 1.5, -0.1, rng.random()]) for _ in range(k)])
        size = rng.choice([None, (1988, 3057), (1, 1), (0, 0), (10**6, 10**6)])
        threshold = rng.choice([0.0, 0.5, 0.9])
        fast = _in_pixels(boxes, scores, threshold, size)
        assert fast == _by_rules(boxes, scores, threshold, size)
        assert all(type(v) is int for d in fast for v in d.box)


def test_integer_boxes_go_through_the_rules_themselves() -> None:
    boxes = np.array([[10, 20, 30, 40], [-5, -5, 2, 2]], dtype=np.int64)
    scores = np.array([0.9, 0.9])
    assert _in_pixels(boxes, scores, 0.5, (100, 100)) == _by_rules(boxes, scores, 0.5, (100, 100))


def test_boxes_in_layout_order_keep_their_order() -> None:
    """`build_page` reuses `detections`' order for an ltr page: that order is the layout
    order of the sorted boxes (checked over grids, duplicates and random pages)."""
    rng = random.Random(1)
    for trial in range(4000):
        n = rng.randint(0, 9)
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(n):
            if trial % 3 == 0:
                box = (rng.randint(0, 8) * 50, rng.randint(0, 8) * 50, rng.randint(1, 5) * 50, 50)
            elif trial % 3 == 1 and boxes and rng.random() < 0.4:
                box = rng.choice(boxes)
            else:
                box = (
                    rng.randint(0, 2000),
                    rng.randint(0, 3000),
                    rng.randint(1, 900),
                    rng.randint(1, 900),
                )
            boxes.append(box)
        ordered = [boxes[i] for i in reading_order(boxes)]
        assert reading_order(ordered) == list(range(n))


def test_build_page_is_the_same_with_or_without_the_layout_shortcut() -> None:
    boxes = np.array([[10.0, 10, 400, 300], [420, 12, 400, 300], [10, 330, 810, 300]])
    dets = detections(boxes, np.array([0.9, 0.8, 0.7]), 0.5, (900, 700))
    assert type(dets) is _InLayoutOrder
    for direction in ("ltr", "rtl"):
        alignment = Alignment(method="none", placements=(), direction=direction)
        pages = [
            build_page(
                image_path="/x/S/0001.jpg",
                size=(900, 700),
                dets=given,
                vlm=[],
                alignment=alignment,
                min_confidence=0.9,
                image_id=1,
                vlm_json_path="/v/S/0001.json",
                match_tier="exact",
            )
            for given in (dets, list(dets))
        ]
        assert dumps(pages[0]) == dumps(pages[1])


# --- images -----------------------------------------------------------------------------------


def _jpeg(width: int, height: int, app_bytes: int = 0, end: bool = True) -> bytes:
    data = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9
    while app_bytes > 0:
        n = min(app_bytes, 60000)
        data += b"\xff\xe1" + struct.pack(">H", n + 2) + b"\0" * n
        app_bytes -= n
    data += b"\xff\xc0" + struct.pack(">HBHH", 17, 8, height, width) + b"\x03" + b"\0" * 9
    data += b"\xff\xda" + struct.pack(">H", 12) + b"\0" * 10 + b"\x11" * 5000
    return data + (b"\xff\xd9" if end else b"")


@pytest.mark.parametrize("app_bytes", [0, HEAD_BYTES - 40, HEAD_BYTES + 100, 70000])
def test_a_frame_header_anywhere_is_read(tmp_path: Path, app_bytes: int) -> None:
    """A JPEG whose frame header lies beyond the first read is still measured."""
    sound, bomb, cut = (tmp_path / f"{n}.jpg" for n in ("sound", "bomb", "cut"))
    sound.write_bytes(_jpeg(600, 900, app_bytes))
    bomb.write_bytes(_jpeg(20000, 20000, app_bytes))
    cut.write_bytes(_jpeg(600, 900, app_bytes, end=False))
    assert image_size(sound) == (600, 900)
    assert image_problem(str(sound)) is None
    assert "20000x20000" in (image_problem(str(bomb)) or "")
    assert "truncated JPEG" in (image_problem(str(cut)) or "")


@pytest.mark.parametrize("size", [HEAD_BYTES - 1, HEAD_BYTES, HEAD_BYTES + 1, HEAD_BYTES + 4096])
def test_files_around_the_head_size(tmp_path: Path, size: int) -> None:
    """Sound at exactly `size` bytes; cut short by one byte, truncated."""
    data = _jpeg(60, 90, size - len(_jpeg(60, 90)) - 4)
    assert len(data) == size
    sound, cut, empty = tmp_path / "sound.jpg", tmp_path / "cut.jpg", tmp_path / "empty.jpg"
    sound.write_bytes(data)
    cut.write_bytes(data[:-1])
    empty.write_bytes(b"")
    assert image_problem(str(sound)) is None
    assert image_problem(str(cut)) == "truncated JPEG (no end-of-image marker)"
    assert image_problem(str(empty)) == "empty file"


# --- emission writes --------------------------------------------------------------------------


def test_a_run_writes_missing_and_changed_files_and_keeps_the_others(tmp_path: Path) -> None:
    out = str(tmp_path / "ds")
    begin_output_run()
    try:
        first = inside(out, "S/JPG4CBZ/0001.json")
        assert write_if_changed(first, b'{"a":1}\n')
        old = os.stat(first).st_mtime_ns
        time.sleep(0.01)
        assert not write_if_changed(inside(out, "S/JPG4CBZ/0001.json"), b'{"a":1}\n')
        assert os.stat(first).st_mtime_ns == old  # untouched
        assert write_if_changed(inside(out, "S/JPG4CBZ/0001.json"), b'{"a":2}\n')  # same size
        assert write_if_changed(inside(out, "S/JPG4CBZ/0001.json"), b'{"a":22}\n')  # other size
        assert Path(first).read_bytes() == b'{"a":22}\n'
        assert not write_if_changed(first, b'{"a":22}\n')  # not right after `inside`
    finally:
        end_output_run()
    assert sorted(os.listdir(os.path.dirname(first))) == ["0001.json"]


def test_each_run_checks_the_out_tree_again(tmp_path: Path) -> None:
    """A folder found plain in one run is checked again in the next: a symlink put in its
    place between runs is refused."""
    out = tmp_path / "ds"
    begin_output_run()
    inside(str(out), "S/x.json")
    (out / "S").mkdir(parents=True)
    assert inside(str(out), "S/x.json") == str(out / "S" / "x.json")
    end_output_run()
    (out / "S").rmdir()
    (out / "S").symlink_to(tmp_path)
    begin_output_run()
    try:
        with pytest.raises(UnsafeOutputError, match="symlink"):
            inside(str(out), "S/x.json")
    finally:
        end_output_run()


# --- COCO and chunks --------------------------------------------------------------------------


def test_columns_and_one_by_one_give_the_same_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    images = [{"id": f"E:\\R\\S\\p{i}.jpg", "file_name": f"p{i}.jpg"} for i in range(30)]
    anns = [
        {
            "image_id": rng.choice(images)["id"],
            "category_id": rng.choice([1, 2, 3, 4, 5, 2**40]),
            "bbox": [rng.uniform(0, 900) for _ in "xywh"],
            **({"score": rng.random()} if rng.random() < 0.9 else {}),
        }
        for _ in range(500)
    ]
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"images": images, "annotations": anns}), encoding="utf-8")
    fast = load_coco(path, chunk_bytes=4096)
    monkeypatch.setattr(_Collector, "_add_columns", lambda self, anns: False)
    slow = load_coco(path, chunk_bytes=4096)
    for name in ("offsets", "boxes", "scores", "text_offsets", "text_boxes", "text_scores"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(fast.text_categories, slow.text_categories)
    assert np.array_equal(fast.char_boxes, slow.char_boxes)
    assert fast.problems == slow.problems and fast.ids == slow.ids


def test_gather_takes_each_pages_rows_in_order() -> None:
    counts = [3, 0, 2, 5, 1]
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    pages = np.array([3, 1, 0, 4, 2], dtype=np.int64)
    rows, out = _gather(offsets, pages)
    expected = [r for p in pages.tolist() for r in range(offsets[p], offsets[p + 1])]
    assert rows.tolist() == expected and rows.dtype == np.int64
    assert out.tolist() == [0, 5, 5, 8, 9, 11]
    rows, out = _gather(offsets, np.array([1], dtype=np.int64))
    assert rows.tolist() == [] and out.tolist() == [0, 0]
