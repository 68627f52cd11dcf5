"""Tests for the synthetic comic corpus generator (real files, no mocks)."""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO

from dataspec.sample import SampleCorpus, generate_corpus, main

Box = list[int] | list[float]


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _truth(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """The truth records of a corpus."""
    return [json.loads(line) for line in corpus.truth_path.read_text("utf-8").splitlines()]


def _iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _tall_side(boxes: list[list[int]]) -> str | None:
    """'left'/'right' if reading order holds a tall panel beside two stacked ones, else None."""
    for i in range(len(boxes) - 2):
        for tall, top, bottom in (
            (boxes[i], boxes[i + 1], boxes[i + 2]),  # tall on the left: read first
            (boxes[i + 2], boxes[i], boxes[i + 1]),  # tall on the right: read last
        ):
            stacked = top[0] == bottom[0] and top[1] + top[3] < bottom[1]
            spans = tall[1] <= top[1] and tall[1] + tall[3] >= bottom[1] + bottom[3]
            if stacked and spans:
                if tall[0] + tall[2] <= top[0]:
                    return "left" if tall is boxes[i] else "wrong-order"
                if top[0] + top[2] <= tall[0]:
                    return "right" if tall is boxes[i + 2] else "wrong-order"
    return None


def _same_row(a: list[int], b: list[int]) -> bool:
    """``b`` lies right of ``a`` and their vertical spans overlap by over 80%."""
    overlap = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return a[0] + a[2] <= b[0] and overlap > 0.8 * min(a[3], b[3])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    """A 60-page corpus shared by the read-only checks."""
    return generate_corpus(tmp_path_factory.mktemp("corpus"), pages=60, seed=11)


@pytest.fixture(scope="module")
def truth(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """Truth records of the shared corpus."""
    return _truth(corpus)


def test_determinism(tmp_path: Path) -> None:
    a = generate_corpus(tmp_path / "a", pages=30, seed=5)
    b = generate_corpus(tmp_path / "b", pages=30, seed=5)
    c = generate_corpus(tmp_path / "c", pages=30, seed=6)
    fa, fb, fc = _files(a.root), _files(b.root), _files(c.root)
    assert fa == fb
    assert len(fa) == 2 * 30 + 2
    assert fa["truth.jsonl"] != fc["truth.jsonl"]
    assert fa["predictions.json"] != fc["predictions.json"]
    assert not any(".tmp" in name for name in fa)


def test_layout_and_paths(corpus: SampleCorpus, truth: list[dict[str, Any]]) -> None:
    assert corpus.pages == len(truth) == 60
    assert [r["image"] for r in truth] == sorted(r["image"] for r in truth)
    pages: dict[str, list[int]] = defaultdict(list)
    for r in truth:
        pages[r["series"]].append(r["page"])
        assert r["image"] == f"{r['series']}/JPG4CBZ/{r['page']:04d}.jpg"
        assert r["vlm_json"] == f"{r['series']}/JPG4CBZ_{r['page']:04d}.json"
        assert (corpus.images_dir / r["image"]).is_file()
        assert (corpus.vlm_dir / r["vlm_json"]).is_file()
    assert len(pages) >= 3
    for numbers in pages.values():
        assert numbers == list(range(1, len(numbers) + 1))


def test_jpegs_open_with_stated_size(corpus: SampleCorpus, truth: list[dict[str, Any]]) -> None:
    for r in truth:
        with Image.open(corpus.images_dir / r["image"]) as im:
            assert im.format == "JPEG"
            assert im.size == (r["width"], r["height"]) == (800, 1200)


def test_truth_boxes_inside_page_and_disjoint(truth: list[dict[str, Any]]) -> None:
    counts = set()
    for r in truth:
        boxes = [p["bbox"] for p in r["panels"]]
        counts.add(len(boxes))
        for x, y, w, h in boxes:
            assert all(isinstance(v, int) for v in (x, y, w, h))
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= r["width"] and y + h <= r["height"]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert _iou(a, b) == 0.0, (r["image"], a, b)
    assert 1 in counts and max(counts) >= 7


def test_reading_order_and_layout_variety(truth: list[dict[str, Any]]) -> None:
    staggered = False
    sides = set()
    for r in truth:
        boxes = [p["bbox"] for p in r["panels"]]
        side = _tall_side(boxes)
        assert side != "wrong-order", r["image"]
        if side:
            sides.add(side)
        for a, b in itertools.pairwise(boxes):
            same_row = _same_row(a, b)
            if same_row and 2 <= abs(a[1] - b[1]) <= 12:
                staggered = True
            if not side and not same_row:  # next row: starts below the previous panel's top
                assert b[1] > a[1], r["image"]
    assert staggered
    assert sides == {"left", "right"}


def test_punctuation_twins(truth: list[dict[str, Any]]) -> None:
    groups: dict[str, set[str]] = defaultdict(set)
    for r in truth:
        groups[re.sub(r"[^a-z0-9]", "", r["series"].lower())].add(r["series"])
    twins = [names for names in groups.values() if len(names) > 1]
    assert len(twins) == 1 and len(twins[0]) == 2
    ids = {r["coco_image_id"] for r in truth if r["series"] in twins[0]}
    assert len(ids) == sum(1 for r in truth if r["series"] in twins[0])


def test_coco_predictions(corpus: SampleCorpus, truth: list[dict[str, Any]]) -> None:
    coco = COCO(str(corpus.coco_path))
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {
        1: "panel",
        2: "character",
        3: "balloon",
        4: "text",
        5: "face",
    }
    assert sorted(coco.getImgIds()) == sorted(r["coco_image_id"] for r in truth)
    ann_ids = [a["id"] for a in coco.dataset["annotations"]]
    assert len(ann_ids) == len(set(ann_ids))
    exact = spurious = 0
    for r in truth:
        img = coco.loadImgs([r["coco_image_id"]])[0]
        assert img["id"].startswith("E:\\CalibreComics_extracted\\" + r["series"] + "\\")
        assert img["file_name"] == f"JPG4CBZ\\{r['page']:04d}.jpg"
        assert (img["width"], img["height"]) == (r["width"], r["height"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        for a in anns:
            x, y, w, h = a["bbox"]
            assert x >= 0 and y >= 0
            assert x + w <= r["width"] + 1e-6 and y + h <= r["height"] + 1e-6
            assert a["area"] == pytest.approx(w * h, abs=0.05)
            assert 0.0 < a["score"] < 1.0
        panels = [a for a in anns if a["category_id"] == 1]
        strong = [a for a in panels if a["score"] >= 0.75]
        spurious += len(panels) - len(strong)
        assert all(a["score"] <= 0.45 for a in panels if a not in strong)
        true_boxes = [p["bbox"] for p in r["panels"]]
        for a in strong:
            assert max(_iou(a["bbox"], t) for t in true_boxes) > 0.8
        assert len(true_boxes) - 2 <= len(strong) <= len(true_boxes)
        exact += len(strong) == len(true_boxes)
    assert exact >= 0.7 * len(truth)
    assert spurious > 0
    assert {a["category_id"] for a in coco.dataset["annotations"]} == {1, 2, 3, 4, 5}


def test_vlm_matches_truth(corpus: SampleCorpus, truth: list[dict[str, Any]]) -> None:
    off = 0
    for r in truth:
        vlm = json.loads((corpus.vlm_dir / r["vlm_json"]).read_text("utf-8"))
        assert isinstance(vlm["overall_summary"], str) and isinstance(vlm["summary"], dict)
        panels = vlm["panels"]
        assert [p["panel_number"] for p in panels] == list(range(1, len(panels) + 1))
        lettered = [t for p in r["panels"] for t in p["narration"] + p["dialogue"] + p["sfx"]]
        spoken = [s["dialogue"] for p in panels for s in p["speakers"]]
        assert sorted(spoken) == sorted(lettered)
        for p in panels:
            assert p["caption"] and p["caption"] not in lettered
            assert isinstance(p["key_elements"], list) and isinstance(p["actions"], list)
            for s in p["speakers"]:
                assert s["speech_type"] in {"dialogue", "thought", "narration", "sfx"}
        if r["vlm_panel_count_off"]:
            off += 1
            assert abs(len(panels) - len(r["panels"])) == 1
            continue
        assert len(panels) == len(r["panels"])
        for p, t in zip(panels, r["panels"], strict=True):
            by_type: dict[str, list[str]] = defaultdict(list)
            for s in p["speakers"]:
                kind = "dialogue" if s["speech_type"] == "thought" else s["speech_type"]
                by_type[kind].append(s["dialogue"])
            assert by_type["dialogue"] == t["dialogue"]
            assert by_type["narration"] == t["narration"]
            assert by_type["sfx"] == t["sfx"]
    assert 1 <= off <= 10
    assert any(
        not (p["dialogue"] or p["narration"] or p["sfx"]) for r in truth for p in r["panels"]
    )


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        main, [str(out), "--pages", "4", "--seed", "2", "--width", "600", "--height", "900"]
    )
    assert result.exit_code == 0, result.output
    assert str(out / "truth.jsonl") in result.output
    rows = [json.loads(line) for line in (out / "truth.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == 4
    with Image.open(out / "images" / rows[0]["image"]) as im:
        assert im.size == (600, 900)
    assert json.loads((out / "predictions.json").read_text("utf-8"))["images"]


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=0)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=3, width=100)
