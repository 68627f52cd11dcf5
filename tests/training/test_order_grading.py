"""Reading order graded only against labels independent of the layout heuristic
(`training.evaluate`, `training.order_eval`, the trainer's validation), on real page
JPEGs from `dataspec.sample`, DataSpec pages written with `dataspec.dump` and a freshly
built model saved with the project's checkpoint code."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import dataspec
from training.checkpoint import save_checkpoint
from training.config import ModelConfig
from training.evaluate import main as evaluate_main
from training.model import build_model
from training.synthetic import SyntheticCorpus
from training.train_cli import main as train_main

CONFIG = ModelConfig(
    dim=32, num_heads=2, image_size=64, vocab_size=2048, max_tokens=32, context_layers=1
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built (untrained) model, saved as a checkpoint."""
    torch.manual_seed(0)
    model = build_model(CONFIG)
    path = tmp_path_factory.mktemp("fresh") / "fresh.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": CONFIG.to_dict(), "epoch": 0})
    return path


def _records(corpus: SyntheticCorpus) -> list[dict[str, Any]]:
    truth = corpus.image_root.parent / "truth.jsonl"
    return [json.loads(line) for line in truth.read_text(encoding="utf-8").splitlines()]


def _write(
    out: Path,
    rec: dict[str, Any],
    corpus: SyntheticCorpus,
    boxes: list[tuple[int, int, int, int]],
    order: list[int] | None,
    source: str | None,
) -> Path:
    page = dataspec.Page(
        page_image_path=str(corpus.image_root / rec["image"]),
        panels=[dataspec.Panel(panel_coords=b) for b in boxes],
        reading_order=order,
        reading_order_source=source,
    )
    return dataspec.dump(page, out / Path(rec["image"]).with_suffix(".json"))


def _true_boxes(rec: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    return [(b[0], b[1], b[2], b[3]) for b in (p["bbox"] for p in rec["panels"])]


def _evaluate(checkpoint: Path, source: list[str], corpus: SyntheticCorpus, *more: str) -> int:
    argv = ["--checkpoint", str(checkpoint), *source, "--image_root", str(corpus.image_root)]
    return evaluate_main([*argv, "--no_progress", *more])


# --------------------------------------------------------------------------- independent math


def _successors(seq: list[int]) -> dict[int, int | None]:
    return {a: (seq[k + 1] if k + 1 < len(seq) else None) for k, a in enumerate(seq)}


def _tau(pred: list[int], label: list[int]) -> float:
    """Kendall tau-a from concordant and discordant pairs."""
    rp = {p: k for k, p in enumerate(pred)}
    rl = {p: k for k, p in enumerate(label)}
    pairs = list(itertools.combinations(label, 2))
    score = sum(1 if (rp[a] - rp[b]) * (rl[a] - rl[b]) > 0 else -1 for a, b in pairs)
    return score / len(pairs)


def _hits(pred: list[int], label: list[int]) -> int:
    sp, sl = _successors(pred), _successors(label)
    return sum(sp[i] == sl[i] for i in label)


def _coverage_label(
    boxes: list[tuple[int, int, int, int]], truth: list[tuple[int, int, int, int]]
) -> list[int]:
    """The spec, written out: each panel takes the position of the true panel it holds
    the largest share (>= 50%) of; panels holding none are dropped; ties in layout order."""
    layout = dataspec.reading_order(boxes)
    rank = {p: k for k, p in enumerate(layout)}
    position = {}
    for p, (x, y, w, h) in enumerate(boxes):
        shares = []
        for t, (tx, ty, tw, th) in enumerate(truth):
            ix = max(0, min(x + w, tx + tw) - max(x, tx))
            iy = max(0, min(y + h, ty + th) - max(y, ty))
            shares.append((ix * iy / (tw * th), -t))
        share, neg_t = max(shares)
        if share >= 0.5:
            position[p] = -neg_t
    return sorted(position, key=lambda p: (position[p], rank[p]))


# --------------------------------------------------------------------------- the refusal


def test_refuses_to_grade_a_corpus_whose_orders_all_come_from_the_heuristic(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pages = tmp_path / "pages"
    made = {"layout": 0, "none": 0, "single": 0}
    for k, rec in enumerate(_records(held_out)):
        boxes = _true_boxes(rec)
        if len(boxes) < 2:
            made["single"] += 1
            _write(pages, rec, held_out, boxes, None, None)
        elif k % 2:  # what the analyzer emits when the VLM's order could not be used
            made["layout"] += 1
            _write(pages, rec, held_out, boxes, dataspec.reading_order(boxes), "layout")
        else:
            made["none"] += 1
            _write(pages, rec, held_out, boxes, None, None)
    assert made["layout"] and made["none"]
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(pages.rglob("*.json"))), "utf-8")
    report = tmp_path / "report.json"
    source = ["--json_list_file", str(listing)]
    assert _evaluate(checkpoint, source, held_out, "--report", str(report)) == 1
    err = capsys.readouterr().err
    total = sum(made.values())
    assert (
        f"{listing}: no page has an order independent of the layout heuristic ({total} pages:"
        in err
    )
    assert f"{made['layout']} order from the layout heuristic" in err
    assert f"{made['none']} no reading_order" in err
    assert "give --truth FILE or pages with reading_order_source vlm/truth" in err
    assert "Traceback" not in err and not report.exists()

    # orders without a source are not trusted either, unless asked
    unsourced = tmp_path / "unsourced"
    n_multi = 0
    for rec in _records(held_out):
        boxes = _true_boxes(rec)
        n_multi += len(boxes) >= 2
        _write(unsourced, rec, held_out, boxes, list(range(len(boxes))), None)
    source = ["--json_dir", str(unsourced)]
    assert _evaluate(checkpoint, source, held_out, "--report", str(report)) == 1
    err = capsys.readouterr().err
    assert f"{n_multi} reading_order of unknown source (--trust_unsourced_orders" in err
    assert not report.exists()
    more = ("--report", str(report), "--trust_unsourced_orders")
    assert _evaluate(checkpoint, source, held_out, *more) == 0
    graded = json.loads(report.read_text())
    assert graded["pages_scored"] == graded["label_sources"]["unsourced"] == n_multi
    assert graded["trust_unsourced_orders"] is True


# --------------------------------------------------------------------------- by source

SOURCES = ("vlm", "truth", "layout", "model", None, "none")
"""Per multi-panel page, in turn: the order a page gets and its source (`None`: an order
without a source; "none": no reading_order)."""


def test_vlm_and_truth_orders_are_scored_and_the_rest_left_out(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pages = tmp_path / "pages"
    labels: dict[str, tuple[str, list[int], list[int]]] = {}  # json → source, label, layout
    expect = {"vlm": 0, "truth": 0, "layout": 0, "model": 0, "unsourced": 0, "none": 0}
    single = multi = 0
    for rec in _records(held_out):
        boxes = _true_boxes(rec)
        n = len(boxes)
        layout = dataspec.reading_order(boxes)
        if n < 2:
            single += 1
            _write(pages, rec, held_out, boxes, [0] * n, "vlm")
            continue
        source = SOURCES[multi % len(SOURCES)]
        multi += 1
        true = list(range(n))
        if source == "truth":  # a hand label that disagrees with the heuristic
            order = list(reversed(layout))
        elif source == "layout":
            order = layout
        else:
            order = true
        path = _write(
            pages,
            rec,
            held_out,
            boxes,
            None if source == "none" else order,
            None if source in (None, "none") else source,
        )
        expect["unsourced" if source is None else source] += 1
        if source in ("vlm", "truth"):
            labels[str(path)] = (source, order, layout)
    report_path = tmp_path / "report.json"
    source_flags = ["--json_dir", str(pages)]
    assert _evaluate(checkpoint, source_flags, held_out, "--report", str(report_path)) == 0
    out = capsys.readouterr().out
    report = json.loads(report_path.read_text())

    assert report["pages_scored"] == expect["vlm"] + expect["truth"] == len(labels)
    assert report["label_sources"] == {
        "vlm": expect["vlm"],
        "truth": expect["truth"],
        "truth_file": 0,
        "unsourced": 0,
    }
    assert report["left_out"] == {
        "no_panels": 0,
        "single_panel": single,
        "layout": expect["layout"],
        "model": expect["model"],
        "unsourced": expect["unsourced"],
        "no_reading_order": expect["none"],
        "truth_uncovered": 0,
        "unreadable": 0,
    }
    assert report["pages_left_out"] == sum(report["left_out"].values())
    assert report["pages"] == report["pages_scored"] + report["pages_left_out"]

    # the heuristic, scored by hand on the same pages
    hits = panels = exact = 0
    taus = []
    blind = [p for p, (_, order, layout) in labels.items() if order != layout]
    for _, order, layout in labels.values():
        hits += _hits(layout, order)
        panels += len(order)
        exact += layout == order
        taus.append(_tau(layout, order))
    assert report["panels_scored"] == panels
    assert report["heuristic_next_panel_acc"] == pytest.approx(hits / panels)
    assert report["heuristic_order_exact"] == pytest.approx(exact / len(labels))
    assert report["heuristic_kendall_tau"] == pytest.approx(sum(taus) / len(taus))
    assert report["pages_blind"] == len(blind) == expect["truth"]
    assert report["heuristic_blind_order_exact"] == 0.0
    blind_panels = sum(len(labels[p][1]) for p in blind)
    blind_hits = sum(_hits(labels[p][2], labels[p][1]) for p in blind)
    assert report["heuristic_blind_next_panel_acc"] == pytest.approx(blind_hits / blind_panels)

    # the per-page list: every loaded page, scored ones with their orders
    per_page = {r["json_path"]: r for r in report["per_page"]}
    assert len(per_page) == report["pages"]
    for path, (source, order, layout) in labels.items():
        r = per_page[path]
        assert r["label_source"] == source and r["left_out"] is None
        assert r["label_order"] == order and r["heuristic_order"] == layout
        assert r["panels_scored"] == r["panels"] == len(order)
        assert r["heuristic_next_correct"] == _hits(layout, order)
        assert sorted(r["model_order"]) == sorted(order)
        assert r["model_next_correct"] <= len(order)
        assert r["model_agrees_with_heuristic"] == (r["model_order"] == layout)
        assert r["heuristic_blind"] == (order != layout)
        assert r["image"] == str(
            held_out.image_root / Path(path).relative_to(pages).with_suffix(".jpg")
        )
    left = [r for r in per_page.values() if r["label_source"] is None]
    assert all(r["left_out"] and r["label_order"] is None for r in left)
    assert sum(r["model_next_correct"] for r in per_page.values() if r["label_source"]) == round(
        report["next_panel_acc"] * panels
    )
    # side by side on stdout, with what was left out and why
    assert "heuristic" in out and "where the heuristic is blind" in out
    assert f"{expect['layout']} order from the layout heuristic" in out


# --------------------------------------------------------------------------- truth files


def _reshaped(rec: dict[str, Any], j: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """The true boxes as a detector might see them: a panel split in two overlapping
    parts, a speck covering nothing, two panels merged, or as they are; list shuffled."""
    boxes = _true_boxes(rec)
    kind = j % 4
    if kind == 0:
        x, y, w, h = boxes[0]
        boxes[0:1] = [(x, y, w * 6 // 10, h), (x + w * 4 // 10, y, w - w * 4 // 10, h)]
    elif kind == 1:
        x, y, w, h = boxes[-1]
        boxes.append((x + w // 3, y + h // 3, 8, 8))
    elif kind == 2 and len(boxes) >= 3:
        (ax, ay, aw, ah), (bx, by, bw, bh) = boxes[0], boxes[1]
        x0, y0 = min(ax, bx), min(ay, by)
        x1, y1 = max(ax + aw, bx + bw), max(ay + ah, by + bh)
        boxes[0:2] = [(x0, y0, x1 - x0, y1 - y0)]
    rng.shuffle(boxes)
    return boxes


def test_truth_file_scoring_matches_an_independent_computation(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path
) -> None:
    rng = random.Random(7)
    pages = tmp_path / "pages"
    expected: dict[str, tuple[list[int], list[int]]] = {}  # json → label, heuristic
    uncovered = single = 0
    for j, rec in enumerate(_records(held_out)):
        boxes = _reshaped(rec, j, rng)
        # the page's own order is the heuristic's: the truth file must win over it
        path = _write(pages, rec, held_out, boxes, dataspec.reading_order(boxes), "layout")
        label = _coverage_label(boxes, _true_boxes(rec))
        if j % 4 == 0:  # both parts of the split panel hold 60% of it: both are scored
            assert len(label) == len(boxes)
        elif j % 4 == 1:  # the speck holds no true panel's half: left out
            assert len(label) == len(boxes) - 1
        if len(boxes) < 2:
            single += 1
        elif len(label) < 2:
            uncovered += 1
        else:
            layout = [p for p in dataspec.reading_order(boxes) if p in label]
            expected[str(path)] = (label, layout)
    assert len(expected) >= 8

    truth = held_out.image_root.parent / "truth.jsonl"
    report_path = tmp_path / "report.json"
    source = ["--json_dir", str(pages)]
    more = ("--truth", str(truth), "--report", str(report_path))
    assert _evaluate(checkpoint, source, held_out, *more) == 0
    report = json.loads(report_path.read_text())
    assert report["pages_scored"] == report["label_sources"]["truth_file"] == len(expected)
    assert report["left_out"]["single_panel"] == single
    assert report["left_out"]["truth_uncovered"] == uncovered
    assert report["left_out"]["layout"] == 0  # graded by the truth file instead

    per_page = {r["json_path"]: r for r in report["per_page"] if r["label_source"]}
    assert set(per_page) == set(expected)
    hits = panels = exact = 0
    taus, model_taus, model_exact = [], [], 0
    blind = blind_hits = blind_panels = 0
    for path, (label, layout) in expected.items():
        r = per_page[path]
        assert r["label_order"] == label and r["heuristic_order"] == layout, path
        assert r["panels_scored"] == len(label)
        assert r["heuristic_next_correct"] == _hits(layout, label)
        assert sorted(r["model_order"]) == sorted(label)
        hits += _hits(layout, label)
        panels += len(label)
        exact += layout == label
        taus.append(_tau(layout, label))
        model_taus.append(_tau(r["model_order"], label))
        model_exact += r["model_order"] == label
        if layout != label:
            blind += 1
            blind_hits += _hits(layout, label)
            blind_panels += len(label)
    assert report["panels_scored"] == panels
    assert report["heuristic_next_panel_acc"] == pytest.approx(hits / panels)
    assert report["heuristic_order_exact"] == pytest.approx(exact / len(expected))
    assert report["heuristic_kendall_tau"] == pytest.approx(sum(taus) / len(taus))
    assert report["order_exact"] == pytest.approx(model_exact / len(expected))
    assert report["kendall_tau"] == pytest.approx(sum(model_taus) / len(model_taus))
    model_hits = sum(r["model_next_correct"] for r in per_page.values())
    assert report["next_panel_acc"] == pytest.approx(model_hits / panels)
    assert report["chance_next_panel_acc"] == pytest.approx(len(expected) / panels)
    assert report["pages_blind"] == blind
    if blind:
        assert report["heuristic_blind_next_panel_acc"] == pytest.approx(blind_hits / blind_panels)

    # the held-out benchmarks' format (absolute image_path, panels[].box) reads the same
    bench = tmp_path / "bench_truth.jsonl"
    with bench.open("w", encoding="utf-8") as fh:
        for rec in _records(held_out):
            panels_out = [{"box": p["bbox"], "order": k} for k, p in enumerate(rec["panels"])]
            panels_out.reverse()  # listed in any order: `order` says which comes first
            image = str(held_out.image_root / rec["image"])
            fh.write(json.dumps({"image_path": image, "panels": panels_out}) + "\n")
    again_path = tmp_path / "again.json"
    more = ("--truth", str(bench), "--report", str(again_path))
    assert _evaluate(checkpoint, source, held_out, *more) == 0
    again = json.loads(again_path.read_text())
    for key in ("pages_scored", "heuristic_next_panel_acc", "next_panel_acc", "kendall_tau"):
        assert again[key] == report[key], key
    assert again["per_page"] == report["per_page"]


def test_a_truth_file_that_cannot_be_used_is_named(
    checkpoint: Path, held_out: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "truth.jsonl"
    bad.write_text('{"image": "a.jpg", "panels": [{"bbox": [0, 0, 10, 10]}]}\n{"image": 3}\n')
    report = tmp_path / "r.json"
    source = ["--json_dir", str(held_out.pages_dir)]
    assert (
        _evaluate(checkpoint, source, held_out, "--truth", str(bad), "--report", str(report)) == 1
    )
    err = capsys.readouterr().err
    assert f"--truth {bad}:2" in err and not report.exists()
    missing = tmp_path / "gone.jsonl"
    assert (
        _evaluate(checkpoint, source, held_out, "--truth", str(missing), "--report", str(report))
        == 1
    )
    assert f"--truth {missing}: cannot read" in capsys.readouterr().err


# --------------------------------------------------------------------------- validation


def _sourced_corpus(corpus: SyntheticCorpus, out: Path, source: str | None) -> Path:
    for rec in _records(corpus):
        boxes = _true_boxes(rec)
        order = list(range(len(boxes))) if source is not None else None
        if source == "layout":
            order = dataspec.reading_order(boxes)
        _write(out, rec, corpus, boxes, order, source)
    return out


def _train(pages: Path, corpus: SyntheticCorpus, out: Path, tiny: list[str]) -> int:
    argv = [
        "--json_dir",
        str(pages),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--batch_size",
        "4",
        "--epochs",
        "2",
        "--val_fraction",
        "0.34",
        *tiny,
    ]
    return train_main(argv)


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_validation_grades_only_independent_orders_and_says_when_there_are_none(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    heuristic_only = _sourced_corpus(corpus, tmp_path / "layout_pages", "layout")
    run = tmp_path / "run_layout"
    assert _train(heuristic_only, corpus, run, tiny) == 0
    err = capsys.readouterr().err
    assert err.count("validation: no page has an order independent of the layout") == 1
    for record in _metrics(run):
        val = record["val"]
        assert record["val_order_pages"] == val["pages_scored"] == 0
        left = record["val_order_left_out"]
        assert left["layout"] + left["single_panel"] + left["no_panels"] == val["pages"] > 0
        assert left["layout"] > 0
        # the metric names stay (the HTML report reads them), with nothing to report
        for key in ("next_panel_acc", "heuristic_next_panel_acc", "order_exact"):
            assert key in val and val[key] is None

    vlm = _sourced_corpus(corpus, tmp_path / "vlm_pages", "vlm")
    run = tmp_path / "run_vlm"
    assert _train(vlm, corpus, run, tiny) == 0
    err = capsys.readouterr().err
    assert "no page has an order independent" not in err
    for record in _metrics(run):
        val = record["val"]
        multi = val["pages"] - record["val_order_left_out"]["single_panel"]
        assert record["val_order_pages"] == val["pages_scored"] == multi > 0
        assert record["val_order_label_sources"]["vlm"] == multi
        assert 0.0 <= val["heuristic_next_panel_acc"] <= 1.0
        assert 0.0 <= val["next_panel_acc"] <= 1.0
