"""The lazy loader: items, labels, fast decode, bad pages, collate, sampler, split."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from PIL import Image, ImageFile

import dataspec
from training.batches import PagePairBatchSampler, collate
from training.config import ModelConfig
from training.crops import clamp_box, draft_scale, read_crops
from training.data import (
    IGNORE,
    PageDataset,
    PageItem,
    SkippedPage,
    order_candidates,
    page_key,
    split_by_book,
)
from training.synthetic import SyntheticCorpus

CFG = ModelConfig(image_size=64, max_tokens=32, vocab_size=2048)


def dataset(paths: list[Path], corpus: SyntheticCorpus, **kwargs: Any) -> PageDataset:
    return PageDataset(
        paths, image_root=str(corpus.image_root), config=kwargs.pop("config", CFG), **kwargs
    )


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/c/Saga/JPG4CBZ/0007.json", ("c/Saga/jpg4cbz", 7)),  # preserve_tree, image tail
        ("/c/Saga/JPG4CBZ_0007.json", ("c/Saga/jpg4cbz", 7)),  # preserve_tree, VLM name: same book
        ("/c/Saga/page_12a.json", ("c/Saga/page", 12)),  # text after the number
        ("/c/Saga/0003.jpg.json", ("c/Saga", 3)),  # chained image extension
        ("/c/Saga/cover.json", ("c/Saga", None)),  # no number: never paired as consecutive
        ("E:\\Comics\\Saga\\JPG4CBZ_0002.json", ("Comics/Saga/jpg4cbz", 2)),  # Windows path
    ],
)
def test_page_key(path: str, key: tuple[str, int | None]) -> None:
    assert page_key(path) == key


def _stated_order(path: str, boxes: list[Any], direction: str) -> list[Any]:
    """The order a page states: the true order (`boxes`) when it has a `reading_order` or
    reads left to right; else the layout heuristic's, read left to right (a right-to-left
    page without `reading_order` cannot say it is one)."""
    if direction == "ltr" or dataspec.load(path).reading_order is not None:
        return boxes
    return [boxes[i] for i in dataspec.reading_order(boxes)]


def test_items_carry_the_true_reading_order(
    corpus: SyntheticCorpus, truth: dict, directions: dict[str, str]
) -> None:
    # Pages give their order three ways (list order, reading_order, heuristic only): the
    # labels must give the generator's true order every time the page can state it.
    ds = dataset(corpus.pages, corpus)
    mirrored = 0
    for i in range(len(ds)):
        item = ds[(i, 3)]
        assert isinstance(item, PageItem), item
        rel = Path(item.meta.image_path).relative_to(corpus.image_root).as_posix()
        order = np.argsort(item.position.numpy())
        stated = _stated_order(item.meta.json_path, truth[rel], directions[rel])
        assert [item.meta.boxes[s] for s in order] == stated
        mirrored += stated != truth[rel]
        n = len(item.meta.boxes)
        assert item.crops.shape == (n, 3, 64, 64) and item.crops.dtype == torch.uint8
        assert item.tokens.shape == (n, 32) and item.comp.shape == (n, 8)
        assert not item.meta.lenient
    assert mirrored  # right-to-left pages without reading_order are among them
    with_order = [p for p in corpus.pages if dataspec.load(p).reading_order is not None]
    assert any(directions[_rel(p, corpus)] == "rtl" for p in with_order)


def _rel(page: Path, corpus: SyntheticCorpus) -> str:
    return page.relative_to(corpus.pages_dir).with_suffix(".jpg").as_posix()


def test_slot_order_is_seeded_by_epoch(corpus: SyntheticCorpus) -> None:
    ds = dataset(corpus.pages, corpus)
    many = next(i for i in range(len(ds)) if len(ds[i].meta.boxes) >= 4)
    a, b, c = ds[(many, 0)], ds[(many, 0)], ds[(many, 1)]
    assert torch.equal(a.position, b.position) and torch.equal(a.crops, b.crops)
    assert not torch.equal(a.position, c.position)


def test_composition_features_describe_the_box(corpus: SyntheticCorpus) -> None:
    item = dataset(corpus.pages[:2], corpus)[1]
    x, y, w, h = item.meta.boxes[0]
    fx, fy, fw, fh, area, log_aspect, cx, cy = item.comp[0].tolist()
    assert fx == pytest.approx(x / 400) and fy == pytest.approx(y / 600)
    assert fw == pytest.approx(w / 400) and fh == pytest.approx(h / 600)
    assert area == pytest.approx(fw * fh) and log_aspect == pytest.approx(np.log(w / h))
    assert (cx, cy) == (pytest.approx(fx + fw / 2), pytest.approx(fy + fh / 2))


@pytest.mark.parametrize(
    ("boxes", "letterbox", "scale"),
    [
        ([(0, 0, 700, 900)], True, 8),  # 900 / 64 = 14 → 1/8
        ([(0, 0, 700, 900), (0, 0, 200, 100)], True, 2),  # 200 / 64 = 3.1 → 1/2
        ([(0, 0, 200, 100)], False, 1),  # stretch: the short side 100 / 64 < 2 → full
        ([(0, 0, 300, 140)], False, 2),
        ([], True, 1),
    ],
)
def test_draft_scale_never_upscales_a_crop(boxes: list, letterbox: bool, scale: int) -> None:
    assert draft_scale(boxes, 64, letterbox) == scale


def test_fast_decode_matches_full_decode(corpus: SyntheticCorpus) -> None:
    ds = dataset(corpus.pages, corpus)
    scales = []
    for page_path in corpus.pages[:6]:
        page = dataspec.load(page_path, image_root=str(corpus.image_root))
        boxes = page.boxes()
        for letterbox in (True, False):
            fast = read_crops(page.page_image_path, boxes, 64, letterbox=letterbox)
            full = read_crops(page.page_image_path, boxes, 64, letterbox=letterbox, fast=False)
            assert full.scale == 1 and fast.boxes == full.boxes
            diff = np.abs(fast.pixels.astype(int) - full.pixels.astype(int)).mean()
            assert diff < 6, (page_path, diff)
            scales.append(fast.scale)
    assert max(scales) >= 2  # the reduced-scale path really ran
    assert ds.fast_decode


def test_boxes_are_clamped_to_the_page(
    corpus: SyntheticCorpus, tmp_path: Path, copy_page: Any
) -> None:
    page = dataspec.load(corpus.pages[1])
    panels = list(page.panels)
    panels[0] = panels[0].model_copy(update={"panel_coords": (350, 550, 400, 400)})
    path = copy_page(corpus.pages[1], tmp_path / "S" / "0001.json", panels=panels, page_size=None)
    item = dataset([path], corpus)[0]
    assert isinstance(item, PageItem)
    assert (350, 550, 50, 50) in item.meta.boxes
    assert clamp_box((500, 700, 10, 10), 400, 600) == (399, 599, 1, 1)


def test_max_panels_keeps_the_first_in_reading_order(
    corpus: SyntheticCorpus, truth: dict, directions: dict[str, str]
) -> None:
    ds = dataset(corpus.pages, corpus, config=ModelConfig(image_size=32, max_panels=2))
    for i in range(len(ds)):
        item = ds[i]
        rel = Path(item.meta.image_path).relative_to(corpus.image_root).as_posix()
        order = np.argsort(item.position.numpy())
        stated = _stated_order(item.meta.json_path, truth[rel], directions[rel])
        assert [item.meta.boxes[s] for s in order] == stated[:2]
        assert item.meta.panels_total == len(truth[rel])


def _write_truncated(src: str, dst: Path) -> Path:
    data = Path(src).read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) * 2 // 3])
    return dst


def test_truncated_image_loads_and_is_reported(
    corpus: SyntheticCorpus, tmp_path: Path, copy_page: Any
) -> None:
    page = dataspec.load(corpus.pages[1], image_root=str(corpus.image_root))
    image = _write_truncated(page.page_image_path, tmp_path / "img" / "cut.jpg")
    path = copy_page(corpus.pages[1], tmp_path / "S" / "0001.json", page_image_path=str(image))
    item = dataset([path], corpus)[0]
    assert isinstance(item, PageItem) and item.meta.truncated_image
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # switched on locally, then restored
    strict = dataset([path], corpus, allow_truncated=False)[0]
    assert isinstance(strict, SkippedPage) and "truncated" in strict.reason


def test_unusable_pages_are_skipped_with_a_reason_not_replaced(
    corpus: SyntheticCorpus, tmp_path: Path, copy_page: Any
) -> None:
    corrupt = tmp_path / "img" / "corrupt.jpg"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"\xff\xd8 this is not a JPEG")
    bad_json = tmp_path / "S" / "0003.json"
    bad_json.parent.mkdir()
    bad_json.write_text('{"panels": [', encoding="utf-8")
    pages = [
        copy_page(corpus.pages[1], tmp_path / "S" / "0001.json", page_image_path=str(corrupt)),
        copy_page(
            corpus.pages[1],
            tmp_path / "S" / "0002.json",
            page_image_path="Nowhere/JPG4CBZ/0999.jpg",
        ),
        bad_json,
    ]
    ds = dataset(pages, corpus)
    items = [ds[i] for i in range(3)]
    assert all(isinstance(it, SkippedPage) for it in items)
    for item, page, words in zip(
        items, pages, ("cannot read image", "image not found", ""), strict=True
    ):
        assert str(page) in item.reason and words in item.reason


def test_pixel_limit_skips_huge_images(corpus: SyntheticCorpus) -> None:
    item = dataset(corpus.pages[1:2], corpus, max_pixels=1000)[0]
    assert isinstance(item, SkippedPage) and "over the limit" in item.reason


def test_seed_style_variant_loads_leniently(corpus: SyntheticCorpus, tmp_path: Path) -> None:
    page = dataspec.load(corpus.pages[1])
    raw = {
        "image_path": page.page_image_path,
        "panels": [
            {"bbox": list(p.panel_coords), "dialogue": p.text.dialogue} for p in page.panels
        ],
    }
    path = tmp_path / "S" / "0001.json"
    path.parent.mkdir()
    path.write_text(json.dumps(raw), encoding="utf-8")
    item = dataset([path], corpus)[0]
    assert isinstance(item, PageItem) and item.meta.lenient
    assert sorted(item.meta.boxes) == sorted(page.boxes())


def test_zero_panel_page_is_padded_and_logged(
    corpus: SyntheticCorpus, tmp_path: Path, copy_page: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = copy_page(
        corpus.pages[1],
        tmp_path / "S" / "0001.json",
        panels=[],
        reading_order=None,
        reading_order_source=None,
    )
    with caplog.at_level(logging.WARNING):
        item = dataset([path], corpus)[0]
    assert isinstance(item, PageItem) and item.crops.shape[0] == 0
    batch = collate([item], max_panels=12)
    assert batch.panel_mask.shape == (1, 12) and not batch.panel_mask.any()
    assert batch.first_target.tolist() == [IGNORE]


def test_collate_builds_next_panel_targets(corpus: SyntheticCorpus) -> None:
    ds = dataset(corpus.pages, corpus, order_labels="any")
    items = [ds[(i, 1)] for i in range(6)]
    batch = collate([*items, SkippedPage(99, "x.json", "x.json: broken")], max_panels=12)
    assert len(batch) == 6 and len(batch.skipped) == 1
    assert batch.crops.shape[0] == batch.panel_mask.sum() == len(batch.texts)
    for row, item in enumerate(items):
        n = len(item.meta.boxes)
        if n < 2:
            assert (batch.next_target[row] == IGNORE).all()
            continue
        pos = item.position.tolist()
        for slot in range(n):
            target = batch.next_target[row, slot].item()
            if pos[slot] == n - 1:
                assert target == 12  # "end"
            else:
                assert pos[target] == pos[slot] + 1
        assert pos[batch.first_target[row]] == 0
        assert (batch.next_target[row, n:] == IGNORE).all()


def test_only_independent_orders_are_targets_by_default(
    corpus: SyntheticCorpus, tmp_path: Path
) -> None:
    """A page ordered by the layout heuristic (or without an order) teaches no order; one
    whose order comes from the VLM or a truth label does, with its direction target."""
    base = next(
        page
        for page in (orjson.loads(path.read_bytes()) for path in corpus.pages)
        if len(page["panels"]) >= 2
    )
    n = len(base["panels"])
    made = {}
    for name, extra in {
        "truth": {"reading_order": list(range(n))[::-1], "reading_order_source": "truth"},
        "vlm": {"reading_order": list(range(n)), "reading_order_source": "vlm"},
        "layout": {"reading_order": list(range(n)), "reading_order_source": "layout"},
        "none": {},
    }.items():
        page = {k: v for k, v in base.items() if not k.startswith("reading_order")} | extra
        made[name] = tmp_path / f"{name}.json"
        made[name].write_bytes(orjson.dumps(page))
    paths = list(made.values())
    for labels, taught in (("independent", {"truth", "vlm"}), ("any", set(made))):
        batch = collate([dataset(paths, corpus, order_labels=labels)[i] for i in range(4)], 16)
        for row, name in enumerate(made):
            has = bool((batch.next_target[row] >= 0).any())
            assert has == (name in taught), (labels, name)
            assert batch.pages[row].order_source == ("layout" if name == "none" else name)
            if name not in taught:
                assert batch.direction[row] == IGNORE
    with pytest.raises(ValueError, match="order_labels"):
        dataset(paths, corpus, order_labels="heuristic")


def test_order_candidates_rank_both_directions() -> None:
    boxes = [(0, 0, 10, 10), (20, 0, 10, 10), (0, 20, 10, 10), (20, 20, 10, 10)]
    ltr, direction = order_candidates(boxes, np.arange(4))  # the label is left to right
    assert ltr.tolist() == [[0, 1], [1, 0], [2, 3], [3, 2]] and direction == 0
    rtl = [boxes[i] for i in (1, 0, 3, 2)]  # the label reads right to left
    ranks, direction = order_candidates(rtl, np.array([3, 2, 1, 0]))  # slots reversed
    assert direction == 1
    assert ranks.tolist() == [[2, 3], [3, 2], [0, 1], [1, 0]]
    column = [(0, 0, 10, 10), (0, 20, 10, 10)]  # one column: both read alike, no target
    assert order_candidates(column, np.arange(2))[1] == IGNORE


def test_page_pairs_are_real_neighbours(corpus: SyntheticCorpus) -> None:
    ds = dataset(corpus.pages, corpus)
    sampler = PagePairBatchSampler(ds.keys, 4, seed=0)
    labels = set()
    for keys in sampler:
        batch = collate([ds[k] for k in keys], 12)
        for a, b, label in batch.pairs.tolist():
            ma, mb = batch.pages[a], batch.pages[b]
            labels.add(label)
            if label == 0:
                assert ma.book == mb.book and mb.number == ma.number + 1
            elif label == 1:
                assert ma.book == mb.book and ma.number == mb.number + 1
            else:
                assert ma.book != mb.book
    assert labels == {0, 1, 2}


def test_sampler_covers_each_page_once_and_keeps_pairs_together(corpus: SyntheticCorpus) -> None:
    keys = [page_key(p) for p in corpus.pages]
    sampler = PagePairBatchSampler(keys, 4, seed=1)
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i, e in b if e == epoch]
        assert sorted(flat) == list(range(len(keys))) and len(batches) == len(sampler)
        together = {
            (a, b)
            for batch in batches
            for a, _ in batch
            for b, _ in batch
            if keys[a][0] == keys[b][0] and keys[b][1] == keys[a][1] + 1
        }
        assert len(together) >= len(keys) // 2 - 3  # ~every page is in a pair
        orders.append(flat)
    assert orders[0] != orders[1]
    sampler.set_epoch(0)
    assert [i for b in sampler for i, _ in b] == orders[0]  # deterministic


def test_distributed_shards_are_disjoint_and_equal(corpus: SyntheticCorpus) -> None:
    keys = [page_key(p) for p in corpus.pages]
    shards = [list(PagePairBatchSampler(keys, 5, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == PagePairBatchSampler(keys, 5, world_size=2).__len__()
    seen = [i for shard in shards for b in shard for i, _ in b]
    assert set(seen) == set(range(len(keys)))


def test_split_keeps_books_whole_and_is_seeded() -> None:
    keys = [(f"book{b}", n) for b in range(5) for n in range(1, 11)]
    train, val = split_by_book(keys, 0.2, seed=3)
    assert len(val) == 10 and sorted(train + val) == list(range(50))
    assert len({keys[i][0] for i in val}) == 1
    assert split_by_book(keys, 0.2, seed=3) == (train, val)
    assert split_by_book(keys, 0.0, seed=3) == (list(range(50)), [])
    one_book = [("b", n) for n in range(10)]
    train, val = split_by_book(one_book, 0.3, seed=0)
    assert len(val) == 3 and len(train) == 7


def test_dataset_pickles_without_its_resolver(corpus: SyntheticCorpus) -> None:
    import pickle

    ds = dataset(corpus.pages[:2], corpus)
    assert isinstance(ds[0], PageItem)  # builds the resolver
    clone = pickle.loads(pickle.dumps(ds))
    assert isinstance(clone[1], PageItem)


def test_grayscale_and_png_pages_load(
    corpus: SyntheticCorpus, tmp_path: Path, copy_page: Any
) -> None:
    page = dataspec.load(corpus.pages[1], image_root=str(corpus.image_root))
    with Image.open(page.page_image_path) as im:
        gray, png = tmp_path / "g.jpg", tmp_path / "p.png"
        im.convert("L").save(gray)
        im.save(png)
    items = [
        dataset(
            [copy_page(corpus.pages[1], tmp_path / "S" / f"000{k}.json", page_image_path=str(img))],
            corpus,
        )[0]
        for k, img in enumerate((gray, png), 1)
    ]
    assert all(isinstance(it, PageItem) and it.crops.shape[1] == 3 for it in items)
