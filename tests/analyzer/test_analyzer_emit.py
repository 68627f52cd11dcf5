"""DataSpec emission on generated corpora: pairing against truth, skip reasons, naming."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from analyzer_testlib import base_args, coco, read_csv, truth, write_coco

import dataspec
from analyzer.emit import SKIP_REASONS
from analyzer.page_files import inside, output_name
from dataspec.keys import norm_series
from dataspec.sample import SampleCorpus


def _iou(a: list[float] | tuple[int, ...], b: list[float] | tuple[int, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _text(panel: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    return panel["dialogue"], panel["narration"], panel["sfx"]


Texts = tuple[list[str], list[str], list[str]]


def _merged(rec: dict[str, Any]) -> list[tuple[Texts, Texts, list[int], Texts]]:
    """Each detector merge of the page (truth `det.merged`): the two panels' texts, the box
    holding both, and the text such a box holds (both panels' lines, in reading order)."""
    out = []
    for i, j in rec["det"]["merged"]:
        a, b = rec["panels"][i]["bbox"], rec["panels"][j]["bbox"]
        x0, y0 = min(a[0], b[0]), min(a[1], b[1])
        box = [x0, y0, max(a[0] + a[2], b[0] + b[2]) - x0, max(a[1] + a[3], b[1] + b[3]) - y0]
        ta, tb = _text(rec["panels"][i]), _text(rec["panels"][j])
        out.append((ta, tb, box, (ta[0] + tb[0], ta[1] + tb[1], ta[2] + tb[2])))
    return out


def _page_texts(rec: dict[str, Any]) -> list[Texts]:
    """Texts a written panel may carry: one true panel's, or a detector merge's (both)."""
    return [_text(p) for p in rec["panels"]] + [both for *_, both in _merged(rec)]


def _own(rec: dict[str, Any], box: Any) -> list[Texts]:
    """Texts of the true panel(s) a written panel's box shows: the best-overlapping true
    panel's, and for a box that is a detector merge of two panels either one's or both."""
    best = max(rec["panels"], key=lambda t: _iou(t["bbox"], box))
    own = [_text(best)]
    for ta, tb, merged_box, both in _merged(rec):
        if _iou(merged_box, box) > 0.8:
            own += [ta, tb, both]
    return own


def _emit(run_cli, corpus: SampleCorpus, out: Path, *extra: str) -> tuple[Any, list[str]]:
    args = [
        *base_args(corpus, out),
        "--emit_dataspec_everything",
        "--dataspec_out_dir",
        str(out / "ds"),
        "--dataspec_list_out",
        str(out / "list.txt"),
        "--dataspec_debug_skips_out",
        str(out / "skips.csv"),
        *extra,
    ]
    result = run_cli(args)
    assert result.exit_code == 0, result.output
    listed = (out / "list.txt").read_text("utf-8").splitlines()
    return result, listed


def _accounting(result: Any, listed: list[str], out: Path) -> Counter[str]:
    """Check matched = emitted + skipped; return the skip reasons."""
    m = re.search(r"dataspec: matched (\d+) = emitted (\d+) \+ skipped (\d+)", result.stdout)
    assert m, result.stdout
    matched, emitted, skipped = map(int, m.groups())
    skips = read_csv(out / "skips.csv")
    assert emitted == len(listed) and skipped == len(skips) and matched == emitted + skipped
    rows = read_csv(out / "analysis.csv")
    assert matched == sum(r["has_vlm_data"] == "True" for r in rows)
    ids = [json.loads(Path(p).read_text("utf-8"))["source"]["coco_image_id"] for p in listed]
    ids += [s["image_id"] for s in skips]
    assert sorted(ids) == sorted(r["image_id"] for r in rows if r["has_vlm_data"] == "True")
    for path in listed:
        dataspec.load(path)  # strict
    return Counter(s["reason"] for s in skips)


def _rel_image(corpus: SampleCorpus, page: dataspec.Page) -> str:
    return Path(page.page_image_path).relative_to(corpus.images_dir).as_posix()


def test_pairing_matches_truth(run_cli, base_corpus: SampleCorpus, tmp_path: Path) -> None:
    result, listed = _emit(run_cli, base_corpus, tmp_path)
    _accounting(result, listed, tmp_path)
    records = truth(base_corpus)
    checked = uneven_tops = known = placed = 0
    for path in listed:
        page = dataspec.load(path)
        rec = records[_rel_image(base_corpus, page)]
        texts = _page_texts(rec)
        for panel in page.panels:  # whatever is written comes from this page's own text
            got = (panel.text.dialogue, panel.text.narration, panel.text.sfx)
            assert got in texts or got == ([], [], [])
        # pages whose detector found each panel once; the VLM may still have merged, split
        # or left out panels (truth `vlm`): the pairing must place every detection anyway
        detected_as_drawn = not (rec["det"]["missed"] or rec["det"]["merged"])
        if not detected_as_drawn or len(rec["panels"]) != len(page.panels):
            continue
        for panel in page.panels:
            best = max(rec["panels"], key=lambda t: _iou(t["bbox"], panel.panel_coords))
            assert _iou(best["bbox"], panel.panel_coords) > 0.8
            placed += 1
            if not panel.knows_text():  # an unsure pair: its text is unknown, never guessed
                continue
            known += 1
            assert (panel.text.dialogue, panel.text.narration, panel.text.sfx) == _text(best)
        boxes = [p["bbox"] for p in rec["panels"]]
        uneven_tops += any(
            a[1] != b[1] and abs(a[1] - b[1]) <= 12 and a[0] + a[2] <= b[0]
            for a, b in itertools.pairwise(boxes)
        )
        checked += 1
    assert checked >= 25
    assert known >= 0.75 * placed  # most panels of these pages are paired with confidence
    assert uneven_tops >= 3  # rows whose panel tops differ by a few pixels were among them


def _twins(corpus: SampleCorpus) -> tuple[str, str]:
    names = sorted(p.name for p in corpus.vlm_dir.iterdir())
    pairs = [(a, b) for a in names for b in names if a < b and norm_series(a) == norm_series(b)]
    assert pairs, names
    return pairs[0]


def test_twins_stay_apart(run_cli, base_corpus: SampleCorpus, tmp_path: Path) -> None:
    a, b = _twins(base_corpus)
    _, listed = _emit(run_cli, base_corpus, tmp_path)
    rows = read_csv(tmp_path / "analysis.csv")
    for row in rows:
        series = row["image_id"].split("\\")[-2]
        assert Path(row["vlm_json_path"]).parent.name == series
        assert row["match_tier"] == "exact"
    ambiguities = read_csv(tmp_path / "analysis_ambiguities.csv")
    assert [(x["kind"], x["candidates"]) for x in ambiguities] == [("series_twins", f"{a} | {b}")]
    records = truth(base_corpus)
    for path in listed:
        page = dataspec.load(path)
        own = _page_texts(records[_rel_image(base_corpus, page)])
        for panel in page.panels:
            got = (panel.text.dialogue, panel.text.narration, panel.text.sfx)
            assert got in own or got == ([], [], [])


def test_missing_or_truncated_vlm_never_borrows(run_cli, corpus, tmp_path) -> None:
    a, b = _twins(corpus)
    gone = corpus.vlm_dir / a / "JPG4CBZ_0002.json"  # its twin's page 2 exists
    gone.unlink()
    cut = corpus.vlm_dir / b / "JPG4CBZ_0003.json"
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    out = tmp_path / "out"
    result, listed = _emit(run_cli, corpus, out, "--allow_partial_match")
    _accounting(result, listed, out)
    rows = {r["image_path"]: r for r in read_csv(out / "analysis.csv")}
    row_gone = next(r for p, r in rows.items() if f"\\{a}\\JPG4CBZ\\0002" in p)
    assert (row_gone["match_tier"], row_gone["vlm_json_path"]) == ("none", "")
    assert row_gone["has_vlm_data"] == "False" and row_gone["vlm_panels"] == "0"
    row_cut = next(r for p, r in rows.items() if f"\\{b}\\JPG4CBZ\\0003" in p)
    errors = read_csv(out / "analysis_errors.csv")
    if row_cut["has_vlm_data"] == "True":  # read as far as it goes (dataspec's repair)
        assert (row_cut["match_tier"], row_cut["vlm_json_path"]) == ("exact", str(cut))
        assert row_cut["vlm_truncated"] == "True" and row_cut["is_perfect_match"] == "False"
        assert "truncated" in row_cut["vlm_repairs"].split(";")
        assert any(e["file"] == str(cut) and "cut short" in e["problem"] for e in errors)
    else:
        assert row_cut["match_tier"] == "vlm_unreadable" and row_cut["quality_score"] == "0.0"
        assert any(e["file"] == str(cut) and "not valid JSON" in e["problem"] for e in errors)
    # no VLM data: not written; a cut reply: its closed panels are the page's first ones,
    # so whatever text is written on a panel is that panel's own (never a later panel's)
    assert not (out / "ds" / a / "JPG4CBZ_0002.json").exists()
    written = out / "ds" / b / "JPG4CBZ_0003.json"
    if written.exists():
        page = dataspec.load(written)
        rec = truth(corpus)[_rel_image(corpus, page)]
        for panel in page.panels:
            if panel.text.is_empty():
                continue
            got = (panel.text.dialogue, panel.text.narration, panel.text.sfx)
            assert got in _own(rec, panel.panel_coords)


def _pages(data: dict[str, Any]) -> list[str]:
    return sorted(img["id"] for img in data["images"])


def test_every_skip_reason(run_cli, corpus: SampleCorpus, tmp_path: Path) -> None:
    data = coco(corpus)
    ids = _pages(data)
    recs = {r["coco_image_id"]: r for r in truth(corpus).values()}
    panels = {
        i: [a for a in data["annotations"] if a["image_id"] == i and a["category_id"] == 1]
        for i in ids
    }
    usable = [i for i in ids if not recs[i]["vlm_panel_count_off"] and len(panels[i]) > 1]
    missing, bare, weak, boxed, blocked = usable[:5]
    # missing_image: the image file is gone
    (corpus.images_dir / recs[missing]["image"]).unlink()
    # no_detections: the image keeps its record but loses its annotations
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != bare]
    # no_dets_after_threshold: every panel below 0.5
    for ann in data["annotations"]:
        if ann["image_id"] == weak and ann["category_id"] == 1:
            ann["score"] = 0.2
    # zero_pairs: VLM panels with their own boxes, none overlapping a detection
    vlm_path = corpus.vlm_dir / recs[boxed]["vlm_json"]
    doc = json.loads(vlm_path.read_text("utf-8"))
    kept = [a for a in panels[boxed] if a["score"] >= 0.5]
    doc["panels"] = [{"bbox": [1, 1, 4, 4], "dialogue": ["X"]} for _ in kept]
    vlm_path.write_text(json.dumps(doc), encoding="utf-8")
    # exception: a folder sits where the output file must go
    out = tmp_path / "out"
    (out / "ds" / recs[blocked]["vlm_json"]).mkdir(parents=True)
    # output_collision: the same series folder again in upper case (one file on Windows)
    src = recs[usable[5]]
    twin = src["series"].upper()
    assert twin != src["series"]
    (corpus.vlm_dir / twin).mkdir()
    shutil.copy(
        corpus.vlm_dir / src["vlm_json"], corpus.vlm_dir / twin / Path(src["vlm_json"]).name
    )
    (corpus.images_dir / twin / "JPG4CBZ").mkdir(parents=True)
    shutil.copy(corpus.images_dir / src["image"], corpus.images_dir / twin / "JPG4CBZ")
    twin_id = src["coco_image_id"].replace(src["series"], twin)
    image = next(i for i in data["images"] if i["id"] == src["coco_image_id"])
    data["images"].append({**image, "id": twin_id})
    data["annotations"] += [
        {**a, "image_id": twin_id} for a in data["annotations"] if a["image_id"] == image["id"]
    ]
    write_coco(corpus, data)

    result, listed = _emit(run_cli, corpus, out, "--require_image_exists")
    reasons = _accounting(result, listed, out)
    assert set(reasons) == {
        "missing_image",
        "no_detections",
        "no_dets_after_threshold",
        "zero_pairs",
        "exception:IsADirectoryError",
        "output_collision",
    }
    skips = {s["image_id"]: s["reason"] for s in read_csv(out / "skips.csv")}
    assert skips[missing] == "missing_image"
    assert skips[bare] == "no_detections"
    assert skips[weak] == "no_dets_after_threshold"
    assert skips[boxed] == "zero_pairs"
    assert skips[blocked] == "exception:IsADirectoryError"
    assert {skips.get(twin_id), skips.get(src["coco_image_id"])} == {"output_collision", None}
    errors = read_csv(out / "analysis_errors.csv")
    assert any("IsADirectoryError" in e["problem"] for e in errors)

    out2 = tmp_path / "out2"
    result, listed = _emit(
        run_cli, corpus, out2, "--require_image_exists", "--dataspec_require_equal_counts"
    )
    assert "equal_count_mismatch" in _accounting(result, listed, out2)

    out3 = tmp_path / "out3"
    result = run_cli(
        [
            *base_args(corpus, out3),
            "--emit_dataspec_for",
            "perfect",
            "--dataspec_out_dir",
            str(out3 / "ds"),
            "--dataspec_list_out",
            str(out3 / "list.txt"),
            "--dataspec_debug_skips_out",
            str(out3 / "skips.csv"),
            "--dataspec_limit",
            "3",
        ]
    )
    assert result.exit_code == 0, result.output
    listed = (out3 / "list.txt").read_text("utf-8").splitlines()
    reasons = _accounting(result, listed, out3)
    assert len(listed) == 3
    assert {"not_selected", "dataspec_limit"} <= set(reasons)
    documented = {r.split(":")[0] for r in SKIP_REASONS}
    assert {r.split(":")[0] for r in reasons} <= documented


def test_overlap_pairing_when_the_vlm_has_boxes(run_cli, corpus, tmp_path) -> None:
    recs = [r for r in truth(corpus).values() if len(r["panels"]) >= 4]
    rec = recs[0]
    order = [3, 0, 2, 1, *range(4, len(rec["panels"]))]  # the VLM lists them out of order
    doc = {
        "panels": [
            {
                "bbox": rec["panels"][i]["bbox"],
                "dialogue": rec["panels"][i]["dialogue"],
                "narration": rec["panels"][i]["narration"],
                "sfx": rec["panels"][i]["sfx"],
            }
            for i in order
        ]
    }
    (corpus.vlm_dir / rec["vlm_json"]).write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    _, listed = _emit(run_cli, corpus, out, "--dataspec_keep_unpaired")
    path = out / "ds" / rec["vlm_json"]
    assert str(path) in listed
    page = dataspec.load(path)
    assert page.source is not None and page.source.model_dump()["pairing"] == "overlap"
    paired = 0
    for panel in page.panels:
        best = max(rec["panels"], key=lambda t: _iou(t["bbox"], panel.panel_coords))
        if not panel.text.is_empty():
            assert (panel.text.dialogue, panel.text.narration, panel.text.sfx) == _text(best)
            paired += 1
    assert paired >= sum(1 for p in rec["panels"] if any(_text(p))) - 1


def test_hash_naming_is_flat_and_unique(run_cli, base_corpus, tmp_path) -> None:
    _, listed = _emit(run_cli, base_corpus, tmp_path, "--dataspec_naming", "hash")
    assert listed and len(set(listed)) == len(listed)
    assert all(Path(p).parent == tmp_path / "ds" for p in listed)
    assert all(re.search(r"_[0-9a-f]{10}\.json$", p) for p in listed)


@pytest.mark.parametrize(
    "vlm_rel, image_path",
    [
        ("../../etc/x.json", "a.jpg"),
        (None, "E:\\..\\..\\x.jpg"),
        (None, "/../../a/b/c.jpg"),
        (None, 'E:\\Root\\Sa<ga>:"|?*\\JPG4CBZ\\0001.jpg'),
        ("Series. /JPG4CBZ_0001.json", "x.jpg"),
    ],
)
def test_names_stay_inside_the_out_dir(
    tmp_path: Path, vlm_rel: str | None, image_path: str
) -> None:
    for naming in ("preserve_tree", "hash"):
        rel = output_name(naming, vlm_rel=vlm_rel, image_path=image_path, image_id=1)
        full = Path(inside(str(tmp_path), rel))
        assert tmp_path in full.parents
        assert not re.search(r'[<>:"|?*]', rel)


def test_same_outputs_for_one_or_two_workers(run_cli, base_corpus, tmp_path) -> None:
    outs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        _emit(
            run_cli,
            base_corpus,
            out,
            "--num_workers",
            workers,
            "--emit_all_json_lists",
            "--json_list_out",
            str(out / "lists"),
        )
        outs.append(out)
    files = [sorted(p.relative_to(o) for p in o.rglob("*") if p.is_file()) for o in outs]
    assert files[0] == files[1]
    for rel in files[0]:
        text = [(o / rel).read_text("utf-8").replace(str(o), "OUT") for o in outs]
        assert text[0] == text[1], rel
