"""Retrieval quality (`python -m training.evaluate --retrieval`), the page look it leans on,
and its layout-only baseline, on a store of the trained checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.embed import main as embed_main
from training.evaluate import main as evaluate_main
from training.look import LOOK_DIM, page_look
from training.retrieval import alter, layout_grid, moved_boxes, text_queries
from training.search import Searcher
from training.store import Store
from training.synthetic import SyntheticCorpus


@pytest.fixture(scope="module")
def store(trained: Path, corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emb")
    argv = [
        "--checkpoint", str(trained / "best.pt"), "--json_dir", str(corpus.pages_dir),
        "--image_root", str(corpus.image_root), "--output_dir", str(out), "--no_progress",
    ]  # fmt: skip
    assert embed_main(argv) == 0
    return out


def test_looks_are_stored_unit_vectors(store: Path) -> None:
    looks = Store(store).array("page_look").astype(np.float32)
    assert looks.shape == (24, LOOK_DIM)
    assert np.allclose(np.linalg.norm(looks, axis=1), 1.0, atol=1e-2)


def test_look_ignores_brightness_and_finds_an_altered_copy(corpus: SyntheticCorpus) -> None:
    paths = sorted({str(p) for p in Path(corpus.image_root).rglob("*.jpg")})
    assert len(paths) >= 10
    rng = random.Random(3)
    with Image.open(paths[0]) as im:
        original = im.convert("RGB")
    dark = original.point(lambda v: int(v * 0.7) + 20)
    assert float(page_look(original) @ page_look(dark)) > 0.99
    gallery = []
    for p in paths:
        with Image.open(p) as im:
            gallery.append(page_look(im))
    matrix = np.stack(gallery)
    for k, p in enumerate(paths):
        with Image.open(p) as im:
            altered, _ = alter(im, rng)
        assert int(np.argmax(matrix @ page_look(altered))) == k, p
    flat = Image.new("RGB", (40, 60), (200, 200, 200))
    assert not page_look(flat).any()


def test_alter_is_seeded_and_changes_the_image(corpus: SyntheticCorpus) -> None:
    path = next(Path(corpus.image_root).rglob("*.jpg"))
    with Image.open(path) as im:
        a, change_a = alter(im, random.Random(5))
        b, change_b = alter(im, random.Random(5))
        size = im.size
    assert change_a == change_b and a.size == b.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.format == "JPEG" and a.size != size
    left, top, scale = change_a
    assert 0 <= left <= 0.04 * size[0] and 0 <= top <= 0.04 * size[1] and 0.6 <= scale <= 1.0


def test_layout_grid_and_moved_boxes() -> None:
    # the left half of a 100 x 200 page covered: cells of the left 8 columns
    boxes = np.array([[[0, 0, 50, 200], [0, 0, 0, 0]]])
    mask = np.array([[True, False]])
    grid = layout_grid(boxes, mask, np.array([[100, 200]]))
    cover = grid[0].reshape(16, 16)
    assert np.allclose(cover[:, :8], cover[0, 0]) and np.allclose(cover[:, 8:], cover[0, 15])
    assert cover[0, 0] > 0 > cover[0, 15]
    assert np.isclose(np.linalg.norm(grid[0]), 1.0)
    # cropping 10 px off the left and halving: the box moves and shrinks, clamped
    moved = moved_boxes(np.array([[20, 30, 40, 50], [0, 5, 10, 10]]), np.array([True, True]),
                        (10.0, 0.0, 0.5), (45, 100))  # fmt: skip
    assert np.allclose(moved[0], [5, 15, 20, 25])
    assert np.allclose(moved[1], [0, 2.5, 0, 5])  # wholly cropped off the left: zero width


def test_text_queries_are_spans_of_three_words_or_more(store: Path) -> None:
    s = Store(store)
    queries = text_queries(s, 50, seed=0)
    assert queries and queries == text_queries(s, 50, seed=0)
    for row, slot, span, whole in queries:
        assert span in whole and len(span.split()) >= 3
        assert s.page_meta(row)["panels"][slot]["lines"] == whole


def test_retrieval_report_beats_layout_only(store: Path, tmp_path: Path) -> None:
    report = tmp_path / "retrieval.json"
    assert evaluate_main(["--retrieval", "--store", str(store), "--report", str(report)]) == 0
    m = json.loads(report.read_text())
    assert m["pages"] == m["page_queries"] == 24
    assert m["page_recall@1_both"] >= 0.9 and m["page_recall@1_look"] >= 0.9
    assert 0.0 <= m["page_recall@1_layout_only"] <= 1.0
    assert m["text_queries"] > 0
    assert m["text_panel_recall@10"] > 2 * m["text_panel_recall@10_layout_only"]
    assert m["text_panel_recall@10_whole_text"] >= m["text_panel_recall@10"] - 0.1
    assert 0.0 <= m["text_spans_in_more_than_10_panels"] <= 1.0
    # the same seed gives the same figures
    again = tmp_path / "again.json"
    assert evaluate_main(["--retrieval", "--store", str(store), "--report", str(again)]) == 0
    b = json.loads(again.read_text())
    assert {k: v for k, v in m.items() if k != "seconds"} == {
        k: v for k, v in b.items() if k != "seconds"
    }


def test_image_search_finds_an_altered_page(store: Path, tmp_path: Path) -> None:
    searcher = Searcher(store)
    meta = searcher.store.page_meta(7)
    with Image.open(meta["image_path"]) as im:
        altered, _ = alter(im, random.Random(11))
    query = tmp_path / "scan.jpg"
    altered.save(query)
    assert searcher.by_image(query, 3)[0].row == 7


def test_retrieval_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        evaluate_main(["--retrieval", "--store", str(tmp_path), "--report", str(tmp_path / "r")])
        == 1
    )
    assert "no embedding store here" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
