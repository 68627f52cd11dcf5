"""Tests for the synthetic comic corpus generator (real files, no mocks).

A 60-page corpus checks the files, boxes, predictions and replies page by page; a 300-page
corpus (seed 0, the `make demo` one) checks the shares the user's data has: both VLM schemas,
about a third of pages with equal detector and VLM panel counts, 40% of series right to left,
dense pages up to 16 panels.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from pycocotools.coco import COCO

import dataspec
from dataspec.normalize import read_panels
from dataspec.sample import SampleCorpus, generate_corpus, main, make_corpus, write_pages
from dataspec.sample.layout import MAX_PANELS, adjacent

Box = list[int] | list[float]


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative POSIX path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _truth(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """The truth records of a corpus."""
    return [json.loads(line) for line in corpus.truth_path.read_text("utf-8").splitlines()]


def _reply(corpus: SampleCorpus, rec: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((corpus.vlm_dir / rec["vlm_json"]).read_text("utf-8"))
    return data


def _iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x, y, w, h]`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _union(a: Box, b: Box) -> list[float]:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    return [x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0]


def _ltr_boxes(rec: dict[str, Any]) -> list[list[int]]:
    """The page's true boxes as a left-to-right page would have them (RTL pages mirrored)."""
    boxes = [p["bbox"] for p in rec["panels"]]
    if rec["direction"] == "rtl":
        return [[rec["width"] - x - w, y, w, h] for x, y, w, h in boxes]
    return boxes


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


def _panel_dets(coco: dict[str, Any], min_score: float = 0.0) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in coco["annotations"]:
        if a["category_id"] == 1 and a["score"] >= min_score:
            out[a["image_id"]].append(a)
    return out


def _screentone(path: Path, rec: dict[str, Any]) -> float:
    """Median over panels of the median 8x8-block standard deviation of the grey level inside
    the panel: a fine dot or line pattern scores high, flat colour near zero (JPEG noise)."""
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"), dtype=np.float32)
    values = []
    for x, y, w, h in (p["bbox"] for p in rec["panels"]):
        inner = grey[y + 10 : y + h - 10, x + 10 : x + w - 10]
        bh, bw = inner.shape[0] // 8 * 8, inner.shape[1] // 8 * 8
        if bh and bw:
            blocks = inner[:bh, :bw].reshape(bh // 8, 8, bw // 8, 8).std(axis=(1, 3))
            values.append(float(np.median(blocks)))
    return float(np.median(values))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    """A 60-page corpus shared by the read-only checks."""
    return generate_corpus(tmp_path_factory.mktemp("corpus"), pages=60, seed=11)


@pytest.fixture(scope="module")
def truth(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """Truth records of the shared corpus."""
    return _truth(corpus)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    """The demo's corpus: 300 pages, seed 0."""
    return generate_corpus(tmp_path_factory.mktemp("big"), pages=300, seed=0)


@pytest.fixture(scope="module")
def big_truth(big: SampleCorpus) -> list[dict[str, Any]]:
    return _truth(big)


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
    # the pages written from the truth too (absolute image paths name their own root)
    pa, pb = write_pages(a.root, tmp_path / "pa"), write_pages(b.root, tmp_path / "pb")
    root_a, root_b = str(a.root.resolve()).encode(), str(b.root.resolve()).encode()
    assert [p.read_bytes().replace(root_a, b"R") for p in pa] == [
        p.read_bytes().replace(root_b, b"R") for p in pb
    ]


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


def test_a_series_has_one_direction_and_one_schema(truth: list[dict[str, Any]]) -> None:
    per_series: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r in truth:
        assert r["direction"] in ("ltr", "rtl") and r["schema"] in ("old", "production")
        per_series[r["series"]].add((r["direction"], r["schema"]))
    assert all(len(kinds) == 1 for kinds in per_series.values())


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
    """In left-to-right terms (right-to-left pages mirrored back): rows top to bottom, panels
    left to right, a tall panel read first on the left, last on the right."""
    staggered = False
    sides = set()
    for r in truth:
        boxes = _ltr_boxes(r)
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


def test_rtl_order_is_the_mirror(big_truth: list[dict[str, Any]]) -> None:
    """The true order is dataspec's layout order read in the page's direction; on a
    right-to-left page with a row of two or more panels, reading it left to right differs."""
    differs = Counter()
    for r in big_truth:
        boxes = [p["bbox"] for p in r["panels"]]
        rtl = r["direction"] == "rtl"
        assert dataspec.reading_order(boxes, rtl=rtl) == list(range(len(boxes))), r["image"]
        plain_grid = _tall_side(_ltr_boxes(r)) is None
        if rtl and plain_grid and any(_same_row(b, a) for a, b in itertools.pairwise(boxes)):
            differs[dataspec.reading_order(boxes, rtl=False) != list(range(len(boxes)))] += 1
    assert differs[True] >= 30 and differs[False] == 0


def test_rtl_pages_look_different(big: SampleCorpus, big_truth: list[dict[str, Any]]) -> None:
    """Screentone over right-to-left panels (the real JPEG's local variance), flat colour on
    western ones; vertical lettering: balloons taller than wide."""
    tone: dict[str, list[float]] = defaultdict(list)
    for r in big_truth[::5]:
        tone[r["direction"]].append(_screentone(big.images_dir / r["image"], r))
    assert len(tone["rtl"]) >= 10 and len(tone["ltr"]) >= 10
    assert min(tone["rtl"]) > 15.0, sorted(tone["rtl"])[:5]
    assert max(tone["ltr"]) < 5.0, sorted(tone["ltr"])[-5:]
    direction = {r["coco_image_id"]: r["direction"] for r in big_truth}
    aspect: dict[str, list[float]] = defaultdict(list)
    for a in json.loads(big.coco_path.read_text("utf-8"))["annotations"]:
        if a["category_id"] == 3:  # balloon
            aspect[direction[a["image_id"]]].append(a["bbox"][3] / a["bbox"][2])
    assert np.median(aspect["rtl"]) > 1.2 and np.median(aspect["ltr"]) < 0.8


def test_punctuation_twins(truth: list[dict[str, Any]]) -> None:
    groups: dict[str, set[str]] = defaultdict(set)
    for r in truth:
        groups[re.sub(r"[^a-z0-9]", "", r["series"].lower())].add(r["series"])
    twins = [names for names in groups.values() if len(names) > 1]
    assert len(twins) == 1 and len(twins[0]) == 2
    ids = {r["coco_image_id"] for r in truth if r["series"] in twins[0]}
    assert len(ids) == sum(1 for r in truth if r["series"] in twins[0])


def test_coco_predictions(corpus: SampleCorpus, truth: list[dict[str, Any]]) -> None:
    """Every strong panel box is a true panel or a recorded merge of two; the count is the
    truth's less what was missed or merged; every weak box is a recorded spurious one."""
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
    spurious = merged = 0
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
        weak = sorted(a["bbox"] for a in panels if a["score"] < 0.5)
        assert len(strong) + len(weak) == len(panels)
        assert weak == sorted(s["bbox"] for s in r["det"]["spurious"])
        assert all(s["kind"] in ("art", "split") for s in r["det"]["spurious"])
        true_boxes = [p["bbox"] for p in r["panels"]]
        merges = [_union(true_boxes[i], true_boxes[j]) for i, j in r["det"]["merged"]]
        for i, j in r["det"]["merged"]:
            assert j == i + 1 and adjacent([tuple(b) for b in true_boxes], i, j)
        for a in strong:
            assert max(_iou(a["bbox"], t) for t in true_boxes + merges) > 0.8
        missed, n_merged = r["det"]["missed"], len(r["det"]["merged"])
        assert len(strong) == len(true_boxes) - len(missed) - n_merged, r["image"]
        spurious += len(weak)
        merged += n_merged
    assert spurious > 0 and merged > 0
    assert {a["category_id"] for a in coco.dataset["annotations"]} == {1, 2, 3, 4, 5}


def _lettered(panels: list[dict[str, Any]]) -> list[str]:
    return [t for p in panels for t in p["narration"] + p["dialogue"] + p["sfx"]]


def test_vlm_replies_in_both_schemas_follow_the_truth(
    corpus: SampleCorpus, truth: list[dict[str, Any]]
) -> None:
    """Each reply lists the true panels in true reading order, as its defects say, and
    `dataspec.normalize.read_panels` reads each schema: every lettered line, nothing else."""
    seen = Counter()
    for r in truth:
        reply = _reply(corpus, r)
        size = (r["width"], r["height"])
        panels = reply["panels"]
        assert isinstance(reply["overall_summary"], str)
        assert [p["panel_number"] for p in panels] == list(range(1, len(panels) + 1))
        shows = r["vlm_panels"]
        assert len(shows) == len(panels)
        assert r["vlm_panel_count_off"] == (len(panels) != len(r["panels"]))
        shown = [i for s in shows for i in s]
        assert shown == sorted(shown)  # the true reading order
        assert sorted(set(shown) | set(r["vlm"]["omitted"])) == list(range(len(r["panels"])))
        assert [k for k, s in enumerate(shows) if not s] == r["vlm"]["hallucinated"]
        for k in r["vlm"]["omitted"]:
            assert not _lettered([r["panels"][k]])  # only panels without lettering
        records, _ = read_panels(reply, page_size=size)
        got = [t for rec in records for t in rec.text.narration + rec.text.dialogue + rec.text.sfx]
        assert sorted(got) == sorted(_lettered(r["panels"]))
        for rec, s in zip(records, shows, strict=True):
            if len(s) == 1 and s[0] not in r["vlm"]["split"]:  # one whole panel
                t = r["panels"][s[0]]
                assert rec.text.dialogue == t["dialogue"] and rec.text.sfx == t["sfx"]
                assert rec.text.narration == t["narration"]
        if r["schema"] == "old":
            assert set(reply) == {"overall_summary", "panels", "summary"}
            assert set(reply["summary"]) == {"characters", "setting", "plot", "dialogue"}
            assert all(rec.box is None for rec in records)
            for p in panels:
                assert set(p) == {
                    "panel_number",
                    "caption",
                    "description",
                    "speakers",
                    "key_elements",
                    "actions",
                }
                assert p["caption"] and p["caption"] not in _lettered(r["panels"])
                for s in p["speakers"]:
                    assert set(s) == {"character", "dialogue", "speech_type"}
                    assert s["speech_type"] in {
                        "dialogue",
                        "thought",
                        "narration",
                        "caption",
                        "sfx",
                    }
        else:
            assert {"canonical_id", "model", "usage", "processed_at"} <= set(reply)
            assert reply["canonical_id"] == (
                f"CalibreComics_extracted/{r['series']}/JPG4CBZ/{r['page']:04d}"
            )
            for p in panels:
                assert {"box_2d", "description", "text_content", "characters", "faces"} <= set(p)
                assert all(0 <= v <= 1000 for v in p["box_2d"])
                for t in p["text_content"]:
                    assert t["label"] in {"dialogue", "caption", "thought", "sfx"}
            for rec, s in zip(records, shows, strict=True):
                assert rec.box is not None  # box_2d read into page pixels
                if len(s) == 1 and s[0] not in r["vlm"]["split"]:
                    ious = [_iou(list(rec.box), t["bbox"]) for t in r["panels"]]
                    assert ious.index(max(ious)) == s[0] and max(ious) > 0.6
        seen[r["schema"]] += 1
        seen.update(k for k, v in r["vlm"].items() if v)
    assert seen["old"] >= 10 and seen["production"] >= 10
    assert seen["merged"] and seen["split"] and seen["omitted"]


def test_shares_over_300_pages(big: SampleCorpus, big_truth: list[dict[str, Any]]) -> None:
    """The user's shape: about a third of pages with equal detector (score >= 0.5) and VLM
    counts, half the pages in each schema, 40% of series right to left, 3-16 panels."""
    dets = _panel_dets(json.loads(big.coco_path.read_text("utf-8")), 0.5)
    n = len(big_truth)
    equal = sum(len(dets[r["coco_image_id"]]) == len(r["vlm_panels"]) for r in big_truth)
    assert 0.2 <= equal / n <= 0.5, equal / n
    schemas = Counter(r["schema"] for r in big_truth)
    assert 0.35 <= schemas["old"] / n <= 0.65, schemas
    series = {r["series"]: r["direction"] for r in big_truth}
    rtl = sum(d == "rtl" for d in series.values()) / len(series)
    assert 0.3 <= rtl <= 0.5, series
    panels = sum(len(r["panels"]) for r in big_truth)
    missed = sum(len(r["det"]["missed"]) for r in big_truth)
    assert 0.05 <= missed / panels <= 0.12
    counts = Counter(len(r["panels"]) for r in big_truth)
    assert max(counts) <= MAX_PANELS == 16
    assert sum(v for k, v in counts.items() if k >= 13) >= 5  # a few dense pages
    assert any(r["vlm"]["hallucinated"] for r in big_truth)


def test_no_disagreement_restores_the_agreeing_corpus(tmp_path: Path) -> None:
    """`disagreement=False`: detectors find almost every panel, never merge, and the VLM is
    off by one on a few pages only."""
    c = generate_corpus(tmp_path / "c", pages=60, seed=11, disagreement=False, schema="old")
    rows = _truth(c)
    dets = _panel_dets(json.loads(c.coco_path.read_text("utf-8")), 0.5)
    exact = sum(len(dets[r["coco_image_id"]]) == len(r["panels"]) for r in rows)
    assert exact >= 0.7 * len(rows)
    assert not any(r["det"]["merged"] or r["vlm"]["omitted"] for r in rows)
    off = [r for r in rows if r["vlm_panel_count_off"]]
    assert 1 <= len(off) <= 10
    assert all(abs(len(r["vlm_panels"]) - len(r["panels"])) == 1 for r in off)
    assert {r["schema"] for r in rows} == {"old"}


def test_written_pages_claim_truth_only_with_an_order(tmp_path: Path) -> None:
    c = make_corpus(tmp_path, pages=12, seed=3, width=400, height=600, series=3)
    assert len(c.pages) == 12 and c.list_file.read_text("utf-8").count("\n") == 12
    lines = (c.image_root.parent / "truth.jsonl").read_text("utf-8").splitlines()
    rows = {r["image"]: r for r in map(json.loads, lines)}
    sources = Counter()
    for path in c.pages:
        page = dataspec.load(path)
        rel = path.relative_to(c.pages_dir).with_suffix(".jpg").as_posix()
        if page.reading_order is None:
            assert page.reading_order_source is None
        else:
            assert page.reading_order_source == "truth"
            ordered = [page.panels[i].panel_coords for i in page.reading_order]
            assert [list(b) for b in ordered] == [p["bbox"] for p in rows[rel]["panels"]]
        sources[page.reading_order_source] += 1
    assert sources == {"truth": 4, None: 8}


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
    out2 = tmp_path / "cli2"
    args = [str(out2), "--pages", "6", "--schema", "production", "--rtl-share", "1"]
    result = CliRunner().invoke(main, [*args, "--no-disagreement"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out2 / "truth.jsonl").read_text("utf-8").splitlines()]
    assert {(r["schema"], r["direction"]) for r in rows} == {("production", "rtl")}
    assert CliRunner().invoke(main, [str(out2), "--schema", "new"]).exit_code == 2


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=0)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=3, width=100)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=3, rtl_share=1.5)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, pages=3, schema="new")  # type: ignore[arg-type]


def test_training_synthetic_is_the_same_generator() -> None:
    import training.synthetic as synthetic
    from dataspec.sample import pages

    assert synthetic.make_corpus is pages.make_corpus
    assert synthetic.write_pages is pages.write_pages
    assert synthetic.SyntheticCorpus is pages.SyntheticCorpus


def test_the_contract_does_not_import_the_generator() -> None:
    import subprocess
    import sys

    code = "import sys, dataspec, dataspec.normalize; print('dataspec.sample' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
