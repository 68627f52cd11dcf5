"""The Zarr embedding store of `python -m training.embed` (resume after a kill, refusals,
`--format npy`) and `python -m training.search` over it, on a trained checkpoint."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.embed import main as embed_main
from training.search import Searcher
from training.search import main as search_main
from training.store import ROW_ARRAYS, SKIP_ARRAYS, STORE_NAME, Store, StoreError
from training.synthetic import SyntheticCorpus

REPO = Path(__file__).resolve().parents[2]
KEYS = {"rank", "score", "kind", "row", "slot", "json_path", "image_path", "box", "lines"}


def _argv(trained: Path, corpus: SyntheticCorpus, out: Path, *extra: str) -> list[str]:
    return [
        "--checkpoint",
        str(trained / "best.pt"),
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--no_progress",
        *extra,
    ]


def _attrs(out: Path) -> dict[str, Any] | None:
    """The store's group attributes read straight from zarr.json (None while unreadable)."""
    try:
        with open(out / STORE_NAME / "zarr.json") as fh:
            return json.load(fh)["attributes"]
    except (OSError, ValueError, KeyError):
        return None


def _same_store(a: Path, b: Path) -> None:
    sa, sb = Store(a), Store(b)
    for key in ("progress", "complete", "fingerprint"):
        assert sa.attrs[key] == sb.attrs[key], key
    for name in (*ROW_ARRAYS, *SKIP_ARRAYS):
        x, y = sa.array(name), sb.array(name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), name


@pytest.fixture(scope="module")
def store(trained: Path, corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete store of the 24-page corpus (the output folder)."""
    out = tmp_path_factory.mktemp("emb")
    assert embed_main(_argv(trained, corpus, out)) == 0
    return out


@pytest.fixture(scope="module")
def searcher(store: Path) -> Searcher:
    return Searcher(store)


# --------------------------------------------------------------------------- embed


def test_store_layout(store: Path, corpus: SyntheticCorpus) -> None:
    s = Store(store)
    assert s.attrs["complete"] is True and s.n_pages == len(corpus.pages) == 24
    assert s.attrs["progress"] == {"inputs": 24, "pages": 24, "skipped": 0}
    assert s.array("page_embedding").shape == (24, s.dim)
    assert s.array("page_embedding").dtype == np.float16
    mask = s.array("panel_mask")
    assert mask.shape == (24, s.max_panels) and mask.any(axis=1).all()
    # empty slots hold the fill values; filled slots are reading positions 0..n-1
    assert (s.array("panel_index")[~mask] == -1).all()
    assert (s.array("panel_text_state")[~mask] == -1).all()
    for row in range(24):
        n = int(mask[row].sum())
        assert mask[row, :n].all() and not mask[row, n:].any()
    assert set(s.array("page_input").tolist()) == set(range(24))


def test_resume_after_sigkill_gives_the_same_store(
    trained: Path, corpus: SyntheticCorpus, tmp_path: Path
) -> None:
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    flags = ("--chunk_pages", "2", "--batch_size", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.embed", *_argv(trained, corpus, killed, *flags)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            attrs = _attrs(killed)
            if attrs is not None and attrs.get("progress", {}).get("pages", 0) >= 4:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(
                    f"embed exited ({proc.returncode}) before 4 pages were committed: {err}"
                )
            if time.monotonic() > deadline:
                pytest.fail("embed committed fewer than 4 pages in 180 s")
            time.sleep(0.005)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    attrs = _attrs(killed)
    assert attrs is not None
    at_kill = attrs["progress"]["pages"]
    if attrs["complete"] or at_kill >= len(corpus.pages):
        pytest.fail(
            f"the kill landed after the run had finished ({at_kill} of {len(corpus.pages)} "
            "pages committed): the resume was not tested"
        )
    assert 4 <= at_kill < 24, at_kill
    print(f"killed at {at_kill} pages")
    with pytest.raises(StoreError, match="unfinished"):
        Store(killed)
    assert Store(killed, partial=True).n_pages == at_kill

    assert embed_main(_argv(trained, corpus, killed, *flags, "--resume")) == 0
    assert embed_main(_argv(trained, corpus, whole, *flags)) == 0
    _same_store(killed, whole)
    assert Store(killed).n_pages == 24


def test_resume_with_other_settings_is_refused(
    trained: Path,
    corpus: SyntheticCorpus,
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "emb"
    shutil.copytree(store, out)
    # leave it as a kill would: 8 pages committed, rows past them stale, not complete
    path = out / STORE_NAME / "zarr.json"
    meta = json.loads(path.read_text())
    meta["attributes"]["complete"] = False
    meta["attributes"]["progress"] = {"inputs": 8, "pages": 8, "skipped": 0}
    path.write_text(json.dumps(meta))
    capsys.readouterr()
    assert embed_main(_argv(trained, corpus, out, "--resume", "--batch_size", "3")) == 1
    err = capsys.readouterr().err
    assert "cannot resume" in err and "batch_size" in err and str(out) in err
    assert embed_main(_argv(trained, corpus, out)) == 1  # unfinished: neither replaced
    assert "--resume" in capsys.readouterr().err
    assert embed_main(_argv(trained, corpus, out, "--resume")) == 0
    _same_store(out, store)


def test_complete_store_refusals(
    trained: Path,
    corpus: SyntheticCorpus,
    store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "emb"
    shutil.copytree(store, out)
    capsys.readouterr()
    assert embed_main(_argv(trained, corpus, out)) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err
    assert embed_main(_argv(trained, corpus, out, "--resume")) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "complete" in err
    assert embed_main(_argv(trained, corpus, out, "--resume", "--overwrite")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert Store(out).attrs["complete"] is True  # nothing was touched
    assert embed_main(_argv(trained, corpus, out, "--overwrite", "--dtype", "float32")) == 0
    s = Store(out)
    assert s.attrs["complete"] is True and s.n_pages == 24
    assert s.array("page_embedding").dtype == np.float32
    np.testing.assert_allclose(
        s.array("page_embedding"),
        Store(store).array("page_embedding").astype(np.float32),
        rtol=1e-2,
        atol=1e-2,
    )


def test_resume_without_a_store_is_refused(
    trained: Path, corpus: SyntheticCorpus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert embed_main(_argv(trained, corpus, out, "--resume")) == 1
    assert str(out) in capsys.readouterr().err
    assert embed_main(_argv(trained, corpus, out, "--resume", "--format", "npy")) == 2


def test_format_npy_writes_arrays_and_index(
    trained: Path, corpus: SyntheticCorpus, store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "npy"
    assert embed_main(_argv(trained, corpus, out, "--format", "npy")) == 0
    assert not (out / STORE_NAME).exists()
    pages = np.load(out / "page_embeddings.npy")
    panels = np.load(out / "panel_embeddings.npy")
    with (out / "index.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    page_rows = [r for r in rows if r["kind"] == "page"]
    panel_rows = [r for r in rows if r["kind"] == "panel"]
    s = Store(store)
    assert pages.shape == (24, s.dim) and pages.dtype == np.float32
    assert len(page_rows) == 24
    assert panels.shape == (len(panel_rows), s.dim) == (int(s.array("panel_mask").sum()), s.dim)
    assert np.isfinite(pages).all() and np.isfinite(panels).all()
    # the same model: the store's page embeddings agree with the .npy ones (float16)
    by_path = {r["json_path"]: int(r["row"]) for r in page_rows}
    order = [by_path[p] for p in s.array("page_json_path").tolist()]
    np.testing.assert_allclose(
        s.array("page_embedding").astype(np.float32), pages[order], rtol=1e-2, atol=1e-2
    )


# --------------------------------------------------------------------------- search


def _unique_text_panel(s: Store) -> tuple[int, int, str]:
    """(row, slot, lines) of a panel with present text found on no other panel."""
    metas = [s.page_meta(r) for r in range(s.n_pages)]
    counts = Counter(p["lines"] for m in metas for p in m["panels"] if p["text"] == "present")
    for m in metas:
        for p in m["panels"]:
            if p["text"] == "present" and p["lines"].strip() and counts[p["lines"]] == 1:
                return m["row"], p["slot"], p["lines"]
    pytest.fail("no panel in the store has text of its own")


def test_text_query_finds_the_panel(searcher: Searcher, store: Path) -> None:
    row, slot, lines = _unique_text_panel(searcher.store)
    results = searcher.by_text(lines, 10)
    assert (row, slot) in [(r.row, r.slot) for r in results]
    assert results[0].score > 0.99  # its own text-encoder embedding
    hit = next(r for r in results if (r.row, r.slot) == (row, slot))
    assert hit.lines == lines and hit.box == searcher.store.page_meta(row)["panels"][slot]["box"]
    pages = searcher.by_text(lines, 5, kind="pages")
    assert row in [r.row for r in pages] and len({r.row for r in pages}) == len(pages)


def test_text_query_cli_json(
    store: Path, searcher: Searcher, capsys: pytest.CaptureFixture[str]
) -> None:
    row, slot, lines = _unique_text_panel(searcher.store)
    capsys.readouterr()
    assert search_main(["--store", str(store), "--text", lines, "--k", "10", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert isinstance(results, list) and 1 <= len(results) <= 10
    for i, r in enumerate(results, 1):
        assert set(r) >= KEYS, set(r)
        assert r["rank"] == i and r["kind"] == "panel" and isinstance(r["slot"], int)
        assert len(r["box"]) == 4 and isinstance(r["score"], float)
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert (row, slot) in [(r["row"], r["slot"]) for r in results]


def test_similar_panels_of_a_stored_panel(searcher: Searcher) -> None:
    row, slot, _ = _unique_text_panel(searcher.store)
    json_path = searcher.store.page_meta(row)["json_path"]
    others = searcher.similar_panels(json_path, slot, 5)
    assert (row, slot) not in [(r.row, r.slot) for r in others] and len(others) == 5
    mine = searcher.similar_panels(json_path, slot, 5, include_self=True)
    assert (mine[0].row, mine[0].slot) == (row, slot) and mine[0].score > 0.99


def test_image_query_finds_the_page(searcher: Searcher, store: Path) -> None:
    s = searcher.store
    for row in (0, s.n_pages // 2, s.n_pages - 1):
        image = s.page_meta(row)["image_path"]
        results = searcher.by_image(image, 5)
        assert results[0].row == row and results[0].slot is None, (row, results[0])
        assert results[0].score > 0.99 and results[0].rank == 1


def test_image_query_cli(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = Store(store)
    image = s.page_meta(3)["image_path"]
    capsys.readouterr()
    assert search_main(["--store", str(store), "--image", image, "--k", "3", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 3 and set(results[0]) >= KEYS
    top = results[0]
    assert (top["rank"], top["row"], top["kind"], top["slot"], top["box"]) == (
        1,
        3,
        "page",
        None,
        None,
    )
    assert top["score"] > 0.99 and top["image_path"] == image and top["lines"] == ""


def test_page_query_excludes_itself_by_default(
    store: Path, searcher: Searcher, capsys: pytest.CaptureFixture[str]
) -> None:
    s = searcher.store
    row = 5
    page = s.page_meta(row)["json_path"]
    others = searcher.similar_pages(page, 5)
    assert len(others) == 5 and row not in [r.row for r in others]
    mine = searcher.similar_pages(page, 5, include_self=True)
    assert mine[0].row == row and mine[0].score > 0.99 and len(mine) == 5
    capsys.readouterr()
    assert search_main(["--store", str(store), "--page", page, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results and row not in [r["row"] for r in results]
    assert all(r["kind"] == "page" and set(r) >= KEYS for r in results)
    assert search_main(["--store", str(store), "--page", page, "--include_self", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results[0]["row"] == row and results[0]["json_path"] == page


def test_search_usage_errors(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert search_main(["--store", str(store)]) == 2
    assert "give a query" in capsys.readouterr().err
    assert search_main(["--store", str(store), "--panel", "0"]) == 2
    assert search_main(["--store", str(store), "--page", "x.json", "--text", "boom"]) == 2


def test_search_of_a_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert search_main(["--store", str(tmp_path), "--text", "boom"]) == 1
    assert "no embedding store" in capsys.readouterr().err
