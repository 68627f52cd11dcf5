"""The held-out alignment corpus (benchmarks/heldout_alignment.py): files well formed, truth
consistent with them, and `measure` right on a hand-built set of emitted pages."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import dataspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import heldout_alignment as ha
import heldout_alignment_measure as ham

CATEGORY_IDS = {1, 2, 3, 4, 7}


@pytest.fixture(scope="module", params=["disagree", "rtl"])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp(f"align_{request.param}")
    truths = ha.make(out, 30, 5, request.param, workers=1)
    return request.param, out, truths


def test_files_well_formed(corpus: Any) -> None:
    kind, out, truths = corpus
    assert len(truths) == 30
    coco = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert {c["id"] for c in coco["categories"]} == CATEGORY_IDS
    assert {c["name"] for c in coco["categories"]} >= {"panel", "text", "balloon", "face"}
    by_id = {t["image_id"]: t for t in truths}
    assert [im["id"] for im in coco["images"]] == [t["image_id"] for t in truths]
    for im in coco["images"]:
        assert isinstance(im["id"], str) and "JPG4CBZ_" in im["id"]
        assert im["file_name"].startswith("JPG4CBZ/")
    panels_all: Counter[str] = Counter()
    panels_050: Counter[str] = Counter()
    for a in coco["annotations"]:
        assert a["category_id"] in CATEGORY_IDS
        assert len(a["bbox"]) == 4 and all(isinstance(v, int) for v in a["bbox"])
        assert 0.0 <= a["score"] <= 1.0
        w, h = by_id[a["image_id"]]["page_size"]
        x, y, bw, bh = a["bbox"]
        assert bw >= 1 and bh >= 1 and x + bw <= w and y + bh <= h
        if a["category_id"] == 1:
            panels_all[a["image_id"]] += 1
            panels_050[a["image_id"]] += a["score"] >= 0.5
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"])
    with open(out / "manifest.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["canonical_id"] for r in rows] == [t["canonical_id"] for t in truths]

    equal = 0
    for t in truths:
        assert panels_all[t["image_id"]] == t["counts"]["det_all"]
        assert panels_050[t["image_id"]] == t["counts"]["det"]
        with Image.open(t["image_path"]) as im:
            assert list(im.size) == t["page_size"] and im.format == "JPEG"
        doc = json.loads(Path(t["vlm_path"]).read_text(encoding="utf-8"))
        assert (
            Path(t["vlm_path"]).relative_to(out / "vlm").with_suffix("").as_posix()
            == (t["canonical_id"])
        )
        assert len(doc["panels"]) == t["counts"]["vlm"] == len(t["vlm"]["panels"])
        assert [p["panel_number"] for p in doc["panels"]] == list(range(1, len(doc["panels"]) + 1))
        assert ham.vlm_lines(t["vlm_path"]) == [p["lines"] for p in t["vlm"]["panels"]]
        if t["schema"] == "old":
            assert kind == "disagree"
            assert "summary" in doc and "overall_summary" in doc
            for p in doc["panels"]:
                assert "box_2d" not in p and {"caption", "description", "speakers"} <= set(p)
                for s in p["speakers"]:
                    assert s["speech_type"] in {
                        "dialogue",
                        "thought",
                        "narration",
                        "caption",
                        "sfx",
                    }
        else:
            assert doc["canonical_id"] == t["canonical_id"]
            boxes = [p["box_2d"] for p in doc["panels"]]
            assert sum(b is None for b in boxes) == t["vlm"]["null_boxes"]
            for b in boxes:
                assert b is None or (len(b) == 4 and all(0 <= v <= 1000 for v in b))
        equal += t["counts"]["det"] == t["counts"]["vlm"]
        assert t["equal_count"] == (t["counts"]["det"] == t["counts"]["vlm"])
    assert f"({equal}/30)" in ham.summarize(truths)
    if kind == "rtl":
        assert all(t["schema"] == "production" for t in truths)


def test_truth_consistent(corpus: Any) -> None:
    kind, _, truths = corpus
    directions = Counter(t["direction"] for t in truths)
    assert directions["ltr"] and (directions["rtl"] or kind == "disagree")
    for t in truths:
        panels = t["panels"]
        assert 3 <= len(panels) <= 14 and [p["order"] for p in panels] == list(range(len(panels)))
        lines = [ln for p in panels for ln in p["lines"]]
        assert len(lines) == len(set(lines)), "lines are unique on a page"
        w, h = t["page_size"]
        for p in panels:
            assert 0 <= len(p["lines"]) <= 4
            assert Counter(p["lines"]) == Counter(p["dialogue"] + p["narration"] + p["sfx"])
            x, y, bw, bh = p["box"]
            assert bw >= 20 and bh >= 20 and x + bw <= w and y + bh <= h
        # the VLM panels: kept panels' lines once each, in order; omitted panels' lines nowhere
        vlm_lines = [ln for vp in t["vlm"]["panels"] for ln in vp["lines"]]
        foreign = t["vlm"]["foreign_lines"]
        omitted = set(t["vlm"]["omitted"])
        expected = [ln for k, p in enumerate(panels) if k not in omitted for ln in p["lines"]]
        assert [ln for ln in vlm_lines if ln not in foreign] == expected
        for vp in t["vlm"]["panels"]:
            if not vp["covers"]:
                assert all(ln in foreign for ln in vp["lines"])
            assert [ln for ln in vp["lines"] if ln not in foreign] == [
                ln for k in vp["covers"] for ln in panels[k]["lines"]
            ] or vp["part"] is not None
        # first panel of the page: leftmost (ltr) / rightmost (rtl) of the panels at its top
        top = [p for p in panels if abs(p["box"][1] - panels[0]["box"][1]) <= 3]
        first = panels[0]["box"]
        if t["direction"] == "rtl":
            assert first[0] + first[2] == max(p["box"][0] + p["box"][2] for p in top)
        else:
            assert first[0] == min(p["box"][0] for p in top)
        det = t["det"]
        merged = {k for pair in det["merged"] for k in pair}
        assert not merged & set(det["missed"])
    assert sum(not p["lines"] for t in truths for p in t["panels"]) > 0


def _page(t: dict[str, Any], texts: list[int], unknown: int | None, order: list[int]) -> Any:
    """The truth's panels as an emitted page; panel k gets true panel texts[k]'s text."""
    panels = []
    for k, p in enumerate(t["panels"]):
        src = t["panels"][texts[k]]
        if k == unknown:
            panels.append(dataspec.Panel(panel_coords=tuple(p["box"]), text_known=False))
            continue
        text = dataspec.PanelText(
            dialogue=src["dialogue"], narration=src["narration"], sfx=src["sfx"]
        )
        panels.append(dataspec.Panel(panel_coords=tuple(p["box"]), text=text, score=0.9))
    unpaired = None
    if unknown is not None:
        p = t["panels"][unknown]
        text = dataspec.PanelText(dialogue=p["dialogue"], narration=p["narration"], sfx=p["sfx"])
        unpaired = [dataspec.UnpairedText(vlm_panel=unknown, text=text)]
    w, h = t["page_size"]
    return dataspec.Page(
        page_image_path=t["image_path"],
        panels=panels,
        reading_order=order,
        reading_order_source="vlm",
        page_size=dataspec.PageSize(width=w, height=h),
        unpaired_text=unpaired,
        source=dataspec.Source(vlm_json_path=t["vlm_path"]),
    )


def test_measure_hand_built(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    truths = ha.make(out, 30, 9, "disagree", workers=1)
    usable = [t for t in truths if t["counts"]["det"] > 0]
    good = [t for t in usable if sum(bool(p["lines"]) for p in t["panels"]) >= 2]
    a, b, c = good[:3]
    n = {id(t): len(t["panels"]) for t in (a, b, c)}
    text_idx = {id(t): [k for k, p in enumerate(t["panels"]) if p["lines"]] for t in (a, b, c)}
    p, q = text_idx[id(b)][:2]
    swap = list(range(n[id(b)]))
    swap[p], swap[q] = q, p
    r = text_idx[id(c)][0]
    pages = [
        _page(a, list(range(n[id(a)])), None, list(range(n[id(a)]))),  # right
        _page(b, swap, None, list(range(n[id(b)]))),  # two panels' texts swapped
        _page(c, list(range(n[id(c)])), r, list(range(n[id(c)]))[::-1]),  # unknown + reversed
    ]
    ds = tmp_path / "ds"
    for i, page in enumerate(pages):
        dataspec.dump(page, ds / f"p{i}.json")
    with open(tmp_path / "analysis.csv", "w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image_path", "pairing_method", "pairing_confidence", "unpaired_detections"])
        for t, conf in zip((a, b, c), ("0.9", "0.2", "0.6"), strict=True):
            wr.writerow([t["image_path"], "alignment", conf, "0"])
    skipped = [t for t in usable if t not in (a, b, c)]
    with open(tmp_path / "skips.csv", "w", encoding="utf-8", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["image_path", "reason"])
        wr.writerows([t["image_path"], "zero_pairs"] for t in skipped)

    res = ham.measure_results(
        out, str(ds), str(tmp_path / "analysis.csv"), str(tmp_path / "skips.csv")
    )
    assert res.usable == len(usable) and res.files == 3 and not res.unloadable
    assert res.skips == Counter({"zero_pairs": len(skipped)})
    tal = res.tallies["analyzer"]["all"]
    lines = {id(x): sum(len(pp["lines"]) for pp in x["panels"]) for x in (a, b, c)}
    all_lines = sum(len(pp["lines"]) for x in usable for pp in x["panels"])
    text_panels = sum(len(text_idx[id(x)]) for x in (a, b, c)) - 1  # c's unknown panel is empty
    lost_b = len(b["panels"][p]["lines"]) + len(b["panels"][q]["lines"])
    lost_c = len(c["panels"][r]["lines"])
    assert (tal.pages, tal.emitted) == (len(usable), 3)
    assert (tal.text_panels, tal.wrong_panels, tal.foreign_panels) == (text_panels, 2, 0)
    assert tal.lines == all_lines
    assert tal.own == lines[id(a)] + lines[id(b)] - lost_b + lines[id(c)] - lost_c
    assert tal.on_wrong_only == lost_b
    assert (tal.unknown, tal.unknown_over_text, tal.false_empty) == (1, 1, 0)
    assert tal.in_unpaired == lost_c and tal.kept == tal.own + lost_c
    assert (tal.order_pages, tal.order_right) == (3, 2)
    assert tal.panels_right == sum(len(text_idx[id(x)]) for x in (a, b, c)) - 3
    assert res.csv_columns["pairing_method"].count("alignment") == 3
    assert sorted(x for x, _ in res.confidence_right) == [0.2, 0.6, 0.9]
    # the baselines see the corpus files only: (b) emits every usable page
    assert res.tallies["b: seed zip"]["all"].emitted == len(usable)
    eq = sum(x["counts"]["det"] == x["counts"]["vlm"] for x in usable)
    assert res.tallies["a: equal-or-skip"]["all"].emitted == eq
    text = ham.report(res)
    assert "1 usable pages emitted" in text and f"(3/{len(usable)})" in text
    assert f"({2}/{text_panels})" in text and "pairing_confidence: 3 numeric of" in text
    assert "unpaired_vlm_panels: ABSENT" in text


def test_rows_order() -> None:
    # two rows; the second row's right panel drawn a little higher than its left one
    boxes = [[300, 500, 200, 200], [10, 10, 480, 300], [10, 505, 280, 195]]
    assert ham.rows_order(boxes) == [1, 2, 0]
