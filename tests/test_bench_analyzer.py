"""benchmarks/bench_analyzer.py: the corpus has the user's shape, the floor reads every input,
and one small end-to-end run measures an analyzer run that emitted pages."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.images import image_problem
from analyzer.match import real_paths

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_analyzer as ba

PAGES = 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("bench_corpus")
    return root, ba.make_corpus(root, PAGES, seed=3)


def test_predictions_have_the_users_shape(corpus: tuple[Path, dict[str, Any]]) -> None:
    root, stats = corpus
    coco = json.loads((root / "predictions.json").read_text(encoding="utf-8"))
    assert {c["id"]: c["name"] for c in coco["categories"]} == {
        1: "panel",
        2: "character",
        4: "text",
        7: "face",
    }
    assert len(coco["images"]) == stats["pages"] == PAGES
    assert len(coco["annotations"]) == stats["annotations"]
    assert 24 <= stats["annotations"] / PAGES <= 32
    assert [a["id"] for a in coco["annotations"]] == list(range(1, stats["annotations"] + 1))
    ids = {im["id"] for im in coco["images"]}
    for ann in coco["annotations"]:
        assert ann["image_id"] in ids
        assert ann["category_id"] in (1, 2, 4, 7)
        assert all(type(v) is int for v in ann["bbox"]) and min(ann["bbox"][2:]) >= 1
    per_page: dict[str, int] = {}
    for ann in coco["annotations"]:
        if ann["category_id"] == 1:
            per_page[ann["image_id"]] = per_page.get(ann["image_id"], 0) + 1
    assert min(per_page.values()) >= 3 and max(per_page.values()) <= 10
    for im in coco["images"]:
        # the user's mangled id: the image path with its last separator turned into `_`
        head, _, name = im["id"].rpartition("/")
        assert name.startswith("JPG4CBZ_") and im["file_name"] == name.replace("_", "/", 1)
        real = f"{head}/{im['file_name']}"
        assert real in real_paths(im["id"], from_id=True)
        assert image_problem(real) is None  # a real JPEG: --require_image_exists keeps it


def test_vlm_files_and_manifest(corpus: tuple[Path, dict[str, Any]]) -> None:
    root, stats = corpus
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == PAGES
    production = old = 0
    sizes = []
    for row in rows:
        assert os.path.isfile(row["absolute_image_path"])
        cid = row["canonical_id"]
        assert row["absolute_image_path"] == f"{root.resolve()}/{cid}.jpg"
        series, number = cid.split("/")[1], cid.rsplit("/", 1)[1]
        new_path = root / "vlm" / f"{cid}.json"
        old_path = root / "vlm" / series / f"JPG4CBZ_{number}.json"
        assert new_path.exists() != old_path.exists()
        path = new_path if new_path.exists() else old_path
        raw = path.read_bytes()
        sizes.append(len(raw))
        assert b"\n" not in raw and b": " not in raw  # compact, as a model reply
        doc = json.loads(raw)
        panels = doc["panels"]
        assert 2 <= len(panels) <= 10
        if path == new_path:
            production += 1
            assert doc["canonical_id"] == cid and {"model", "usage", "processed_at"} <= set(doc)
            for p in panels:
                assert len(p["box_2d"]) == 4 and all(0 <= v <= 1000 for v in p["box_2d"])
                assert {"text_content", "characters", "faces"} <= set(p)
        else:
            old += 1
            assert all("box_2d" not in p and "speakers" in p for p in panels)
            assert "summary" in doc
    assert production == stats["production"] and old == PAGES - production
    assert sum(sizes) == stats["vlm_bytes"]
    assert 3500 <= stats["vlm_bytes"] / PAGES <= 5500
    assert 0.1 <= stats["equal"] / PAGES <= 0.45  # about a quarter: counts mostly disagree


def test_equal_counts_match_the_files(corpus: tuple[Path, dict[str, Any]]) -> None:
    root, stats = corpus
    coco = json.loads((root / "predictions.json").read_text(encoding="utf-8"))
    dets: dict[str, int] = {}
    for ann in coco["annotations"]:
        dets[ann["image_id"]] = dets.get(ann["image_id"], 0) + (ann["category_id"] == 1)
    equal = 0
    for im in coco["images"]:
        head, _, name = im["id"].rpartition("/")
        series, number = head.rsplit("/", 1)[1], name[len("JPG4CBZ_") : -len(".jpg")]
        cid = f"{ba.COLLECTION}/{series}/JPG4CBZ/{number}"
        path = root / "vlm" / f"{cid}.json"
        if not path.exists():
            path = root / "vlm" / series / f"JPG4CBZ_{number}.json"
        equal += dets[im["id"]] == len(json.loads(path.read_bytes())["panels"])
    assert equal == stats["equal"]


def test_same_seed_same_corpus(tmp_path: Path, corpus: tuple[Path, dict[str, Any]]) -> None:
    root, stats = corpus
    again = ba.make_corpus(tmp_path, PAGES, seed=3)
    assert {**again, "coco_bytes": 0} == {**stats, "coco_bytes": 0}  # ids hold the root
    one = (root / "predictions.json").read_text(encoding="utf-8")
    two = (tmp_path / "predictions.json").read_text(encoding="utf-8")
    assert one.replace(str(root.resolve()), "ROOT") == two.replace(str(tmp_path.resolve()), "ROOT")


def test_floor_and_baseline_parse_every_input(corpus: tuple[Path, dict[str, Any]]) -> None:
    root, _ = corpus
    assert ba.read_all("floor", str(root)) == PAGES + 2  # predictions, manifest, VLM JSONs
    assert ba.read_all("baseline", str(root)) == PAGES + 2


def test_flags() -> None:
    assert ba._flags(coco=Path("a b.json"), fast_only=True, num_workers=2) == [
        "--coco",
        "a b.json",
        "--fast_only",
        "--num_workers",
        "2",
    ]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="samples memory through /proc")
def test_end_to_end(tmp_path: Path) -> None:
    script = Path(ba.__file__)
    args = ["--pages", "40", "--workers", "2", "--out", str(tmp_path), "--no_baseline"]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "floor (read + orjson, 1 process)" in out and "analyzer CSV + DataSpec" in out
    emitted = int(out.split("DataSpec: ")[1].split(" pages emitted")[0])
    listed = (tmp_path / "out" / "emit" / "list.txt").read_text(encoding="utf-8").split("\n")
    assert emitted == len([ln for ln in listed if ln.strip()]) > 20
    for what in ("wall", "wall / floor", "peak RSS (sum)"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(what + " "))
        assert line.rstrip().endswith(("PASS", "FAIL"))
    assert "Calibre, 336,881 pages" in out and "all 1,215,620 pages" in out
    # the contract's own cost: every emitted page validated and written again, unchanged
    assert f"  {emitted:,} pages validated, serialized, written atomically" in out
    assert "left of the" in out and "the analyzer spends" in out
    written = tmp_path / "out" / "emit" / "dataspec_all"
    again = tmp_path / "out" / "contract"
    pages = sorted(p.relative_to(written) for p in written.rglob("*.json"))
    assert len(pages) == emitted and pages == sorted(
        p.relative_to(again) for p in again.rglob("*") if p.is_file()
    )
    assert all((again / p).read_bytes() == (written / p).read_bytes() for p in pages)


def test_keep_reuses_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = argparse.Namespace(out=str(tmp_path), pages=30, seed=1, keep=True)
    corpus, stats = ba._corpus(ns)
    assert "pages in" in capsys.readouterr().out
    (corpus / "predictions.json").write_text("kept", encoding="utf-8")
    assert ba._corpus(ns) == (corpus, stats)
    assert "corpus: reused" in capsys.readouterr().out
    assert (corpus / "predictions.json").read_text(encoding="utf-8") == "kept"


def test_a_failing_run_ends_the_benchmark(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    with pytest.raises(SystemExit, match="exit status 3") as exc:
        ba.run("x", cmd, tmp_path / "x")
    assert "boom" in str(exc.value)
    ok = ba.run("y", [sys.executable, "-c", "x = bytearray(50_000_000)"], tmp_path / "y")
    assert ok.wall > 0 and ok.cpu >= 0 and ok.rss_sum >= 50_000_000 and ok.procs >= 1


def test_an_emission_that_wrote_nothing_ends_the_benchmark(tmp_path: Path) -> None:
    header = ",".join(["has_vlm_data", "rcnn_panels", "vlm_panels", "match_tier", "image_exists"])
    (tmp_path / "a.csv").write_text(f"{header}\nTrue,5,5,exact,True\n", encoding="utf-8")
    (tmp_path / "list.txt").write_text("", encoding="utf-8")
    (tmp_path / "skips.csv").write_text("reason\nzero_pairs\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="0 pages listed"):
        ba._facts(tmp_path / "a.csv", tmp_path / "list.txt", tmp_path / "skips.csv", 1)


def test_earlier_outputs_are_set_aside_then_deleted_after_the_measuring(tmp_path: Path) -> None:
    """A run's folder starts new and empty: what an earlier run (or an interrupted
    benchmark) left is moved aside unread, and deleted only once the measuring is over."""
    out = tmp_path / "out" / "emit"
    (out / "ds").mkdir(parents=True)
    (out / "ds" / "old.json").write_text("{}", encoding="utf-8")
    left = tmp_path / "out" / ".stale-emit-1"  # an interrupted benchmark's
    left.mkdir()
    cmd = [sys.executable, "-c", "import os, sys; print(os.listdir(sys.argv[1]))", str(out)]
    got = ba.run("lister", cmd, out)
    assert got.wall > 0 and out.with_suffix(".log").read_text(encoding="utf-8").strip() == "[]"
    aside = sorted(p.name for p in (tmp_path / "out").glob(".stale-emit-*"))
    assert len(aside) == 2 and ".stale-emit-1" in aside  # nothing deleted while measuring
    ba._clear_stale()
    assert not list((tmp_path / "out").glob(".stale-*")) and out.is_dir()


def test_a_contract_floor_worker_that_fails_ends_the_benchmark(tmp_path: Path) -> None:
    """A page the models refuse stops its worker; the other is released from the common
    start, and the benchmark ends with the error named instead of waiting."""
    src = tmp_path / "pages"
    (src / "a").mkdir(parents=True)
    (src / "a" / "0001.json").write_text('{"panels": "none"}', encoding="utf-8")
    (src / "a" / "0002.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit, match="contract floor: ValidationError") as exc:
        ba.contract_floor(src, tmp_path / "again", 2)
    assert "Page" in str(exc.value)
    assert not list((tmp_path / "again").rglob("*.json"))
