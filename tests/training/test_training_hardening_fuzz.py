"""Property tests of the trainer's per-page path: any page file content, next to a real
image, gives a `PageItem` that obeys the loader's invariants or a `SkippedPage` whose
reason names the file — never an exception, and never the catch-all `error` kind (which
would be a bug, or a case no rule foresaw). And the hashed tokenizer on arbitrary text.

Examples per property: `DATASPEC_FUZZ_EXAMPLES` (default 1500, sized for CI: the
module runs in about 20 s on two cores). A long run:
    DATASPEC_FUZZ_EXAMPLES=50000 python -m pytest tests/training/test_training_hardening_fuzz.py
Any failure found becomes an explicit regression test at the bottom of this module.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from training.config import ModelConfig
from training.data import (
    SKIP_KINDS,
    TEXT_NONE,
    TEXT_PRESENT,
    TEXT_UNKNOWN,
    PageDataset,
    PageItem,
    SkippedPage,
)
from training.text import HashTokenizer

EXAMPLES = int(os.environ.get("DATASPEC_FUZZ_EXAMPLES", "1500"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
CFG = ModelConfig(image_size=16, max_tokens=12, vocab_size=257, max_panels=6)
WIDTH, HEIGHT = 120, 160


class Loader:
    """One page file rewritten per example, read by one `PageDataset` (as in training)."""

    def __init__(self, root: Path) -> None:
        self.image_root = root / "images"
        image = self.image_root / "Series" / "0001.jpg"
        image.parent.mkdir(parents=True)
        picture = Image.new("RGB", (WIDTH, HEIGHT), (240, 240, 235))
        ImageDraw.Draw(picture).rectangle((10, 10, 60, 70), outline=(0, 0, 0), width=3)
        picture.save(image, quality=80)
        picture.save(self.image_root / "Series" / "0002.png")
        self.image = image
        self.page = root / "pages" / "Series" / "0001.json"
        self.page.parent.mkdir(parents=True)
        self.dataset = PageDataset([self.page], image_root=str(self.image_root), config=CFG)

    def load(self, raw: bytes) -> PageItem | SkippedPage:
        self.page.write_bytes(raw)
        return self.dataset[(0, 1)]


@pytest.fixture(scope="module")
def loader() -> Iterator[Loader]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Loader(Path(tmp))


def check(loader: Loader, raw: bytes) -> None:
    item = loader.load(raw)
    if isinstance(item, SkippedPage):
        assert item.kind in SKIP_KINDS and item.kind != "error", item.reason
        assert str(loader.page) in item.reason
        return
    assert isinstance(item, PageItem)
    n = len(item.meta.boxes)
    assert n <= CFG.max_panels and n <= item.meta.panels_total
    assert item.crops.shape == (n, 3, CFG.image_size, CFG.image_size)
    assert item.crops.dtype == torch.uint8
    assert item.tokens.shape == (n, CFG.max_tokens)
    assert ((item.tokens >= 0) & (item.tokens < CFG.vocab_size)).all()
    assert item.comp.shape == (n, 8) and torch.isfinite(item.comp).all()
    assert sorted(item.position.tolist()) == list(range(n))
    assert item.text_state.shape == (n,) and item.modality_mask.shape == (n, 3)
    assert set(item.text_state.tolist()) <= {TEXT_PRESENT, TEXT_NONE, TEXT_UNKNOWN}
    assert item.modality_mask[:, 0].all() and item.modality_mask[:, 2].all()
    has_text = item.text_state == TEXT_PRESENT
    assert torch.equal(item.modality_mask[:, 1], has_text)
    assert not item.tokens[~has_text].any()  # no text fed for an empty or unknown text
    for x, y, w, h in item.meta.boxes:  # clamped to the page image, at least 1x1
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1
        assert x + w <= WIDTH and y + h <= HEIGHT


# --- strategies: page-shaped JSON, as tools in the wild write it

KEYS = [
    "page_image_path", "image", "image_path", "panels", "VLM_panels", "detections",
    "panel_coords", "bbox", "box", "box_2d", "polygon", "segmentation", "text", "dialogue",
    "narration", "sfx", "caption", "speakers", "reading_order", "page_size", "width",
    "height", "size", "score", "bbox_format", "panel_number", "schema_version", "annotations",
    "images", "categories", "character_coords", "description", "source", "x", "y", "w", "h",
]  # fmt: skip
numbers = st.one_of(
    st.integers(-200, 400),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.sampled_from(["12", "0.5", "1e3", "x", "", "10 10 50 50"]),
)
boxes = st.one_of(
    st.lists(numbers, min_size=0, max_size=6),
    st.tuples(
        st.integers(-50, 200), st.integers(-50, 200), st.integers(-5, 200), st.integers(-5, 200)
    ).map(list),
    st.lists(st.lists(numbers, min_size=2, max_size=2), max_size=4),
)
texts = st.one_of(
    st.text(max_size=20),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(
        st.sampled_from(["dialogue", "narration", "sfx"]),
        st.lists(st.text(max_size=8), max_size=2),
        max_size=3,
    ),
)
images = st.sampled_from(
    ["Series/0001.jpg", "Series/0002.png", "0001.jpg", "Series/0001", "E:\\Comics\\Series\\0001.jpg",
     "../Series/0001.jpg", "Series/none.jpg", "", "/", "Series", None, 5]
)  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=20,
)
panel = st.fixed_dictionaries(
    {},
    optional={
        "panel_coords": boxes,
        "bbox": boxes,
        "box_2d": boxes,
        "text": texts,
        "dialogue": texts,
        "score": numbers,
        "panel_number": numbers,
        "character_coords": st.lists(boxes, max_size=2),
        "extra": anything,
    },
)
page = st.fixed_dictionaries(
    {"panels": st.one_of(st.lists(panel, max_size=8), anything)},
    optional={
        "page_image_path": images,
        "image": images,
        "schema_version": st.sampled_from(["0.3", "0.2", 3, None]),
        "page_size": st.one_of(
            st.fixed_dictionaries({"width": numbers, "height": numbers}),
            st.just({"width": WIDTH, "height": HEIGHT}),
            anything,
        ),
        "reading_order": st.one_of(st.lists(st.integers(-2, 9), max_size=8), anything),
        "extra": anything,
    },
)
chars = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),  # lone
    st.sampled_from(["İ", "Σ", "ς", "\u0307", "ß", "'", "-", " ", "\n", "\x00", "a", "1"]),
)
# canonical v0.3 pages with hostile values: boxes on, across and off the image, page sizes
# that are not the image's, orders that are not permutations, any text
coordinate = st.one_of(st.integers(-300, 400), st.integers(-(2**40), 2**40))
canonical_panel = st.fixed_dictionaries(
    {
        "panel_coords": st.tuples(
            coordinate, coordinate, st.integers(-5, 400), st.integers(-5, 400)
        ),
        "text": st.fixed_dictionaries(
            {},
            optional={
                k: st.lists(st.lists(chars, max_size=12).map("".join), max_size=2)
                for k in ("dialogue", "narration", "sfx")
            },
        ),
    },
    optional={
        "score": st.floats(-1, 2),
        "text_known": st.sampled_from([True, False, None]),
        "character_coords": st.lists(
            st.tuples(coordinate, coordinate, st.integers(1, 50), st.integers(1, 50)), max_size=2
        ),
    },
)
canonical = st.fixed_dictionaries(
    {
        "schema_version": st.just("0.3"),
        "page_image_path": st.sampled_from(["Series/0001.jpg", "Series/0002.png", "0001.jpg"]),
        "panels": st.lists(canonical_panel, max_size=10),
    },
    optional={
        "page_size": st.one_of(
            st.just({"width": WIDTH, "height": HEIGHT}),
            st.fixed_dictionaries({"width": st.integers(1, 2000), "height": st.integers(1, 2000)}),
        ),
        "reading_order": st.lists(st.integers(-1, 10), max_size=10),
    },
)
documents = st.one_of(canonical, canonical, page, page.map(lambda p: [p]), anything)


def encode(doc: Any, how: str, cut: int) -> bytes:
    """The document as a file: JSON (NaN literals allowed), possibly damaged."""
    text = json.dumps(doc, allow_nan=True)
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "cp1252":
        return text.encode("cp1252", "replace")
    if how == "truncated":
        return text.encode()[: cut % (len(text) + 1)]
    if how == "fenced":
        return f"Here you go:\n```json\n{text}\n```\n".encode()
    return text.encode()


@SETTINGS
@given(
    documents,
    st.sampled_from(["plain", "plain", "bom", "cp1252", "truncated", "fenced"]),
    st.integers(0, 10_000),
)
def test_any_page_document_gives_an_item_or_a_named_skip(
    loader: Loader, doc: Any, how: str, cut: int
) -> None:
    check(loader, encode(doc, how, cut))


@SETTINGS
@given(st.binary(max_size=300))
def test_any_page_bytes_give_an_item_or_a_named_skip(loader: Loader, raw: bytes) -> None:
    check(loader, raw)


# --- the tokenizer

_WORD = re.compile(r"\w+|[^\w\s]+")


def reference_encode(tok: HashTokenizer, text: str) -> list[int]:
    """The tokenizer as first written (every word split off, then cut): the bounded
    version must give the same ids."""

    def ident(kind: str, token: str) -> int:
        data = f"{kind}\x1f{token}".encode("utf-8", "surrogatepass")
        return 1 + zlib.crc32(data) % (tok.vocab_size - 1)

    words = _WORD.findall(text.lower())
    ids = [ident("w", w) for w in words]
    if len(ids) < tok.max_tokens:
        ids += [ident("b", f"{a} {b}") for a, b in itertools.pairwise(words)]
    if len(ids) < tok.max_tokens:
        for word in words:
            padded = f"<{word}>"
            ids += [ident("c", padded[i : i + 3]) for i in range(len(padded) - 2)]
            if len(ids) >= tok.max_tokens:
                break
    return ids[: tok.max_tokens]


any_text = st.lists(chars, max_size=80).map("".join)


@settings(max_examples=EXAMPLES * 2, deadline=None)
@given(st.lists(any_text, max_size=4), st.integers(2, 5000), st.integers(1, 40))
def test_tokenizer_on_any_text(texts: list[str], vocab: int, max_tokens: int) -> None:
    tok = HashTokenizer(vocab, max_tokens)
    rows = tok(texts)
    assert rows.shape == (len(texts), max_tokens) and rows.dtype == np.int64
    assert ((rows >= 0) & (rows < vocab)).all()
    for row, text in zip(rows, texts, strict=True):
        ids = tok.encode(text)
        assert ids == reference_encode(tok, text)
        assert row[: len(ids)].tolist() == ids and not row[len(ids) :].any()
        assert all(i >= 1 for i in ids)  # 0 is padding only


# --- regressions: failures the properties found, and corpus cases kept beside them


def test_lone_surrogate_text_is_tokenized() -> None:
    # found by test_tokenizer_on_any_text: `str.encode()` raised UnicodeEncodeError
    tok = HashTokenizer(100, 8)
    assert tok.encode("a\ud800b") and tok(["\udfff"]).shape == (1, 8)


def test_huge_text_is_tokenized_from_its_first_words_only() -> None:
    # a 10 MB text once split into two million words to keep the first few
    tok = HashTokenizer(1000, 8)
    assert tok.encode("word " * 2_000_000) == tok.encode("word " * 8)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        # found by test_any_page_document_gives_an_item_or_a_named_skip: dataspec's resolver
        # raised IndexError for the image path "/" (a worker crash, so the whole run, before
        # the loader caught everything); now "/" names no file and the image is found from
        # the JSON's own name (pages/Series/0001.json → images/Series/0001.jpg)
        pytest.param(b'{"panels": [], "page_image_path": "/"}', None, id="image-path-root"),
        pytest.param(b'{"schema_version": "0.3", "page_image_path": "/", "panels": []}', None, id="image-path-root-strict"),
        # from the corrupt corpus
        pytest.param(b'{"schema_version": "0.3", "page_image_path": "Series/0001.jpg", "panels": [{"panel_coords": [200, 5, 10, 10]}]}', "boxes", id="box-wholly-right-of-the-image"),
        pytest.param(b'{"image": "Series/0001.jpg", "panels": [{"bbox": [5, 5, 20, 20], "text": "\\ud800"}]}', None, id="lone-surrogate-text"),
        pytest.param(b'{"schema_version": "0.3", "page_image_path": "Series/0001.jpg", "panels": [{"panel_coords": [0, 0, 1, 1]}], "page_size": {"width": 10000, "height": 10000}}', None, id="page-size-larger-than-the-image"),
    ],
)  # fmt: skip
def test_regressions(loader: Loader, raw: bytes, kind: str | None) -> None:
    check(loader, raw)
    item = loader.load(raw)
    if kind is None:
        assert isinstance(item, PageItem)
    else:
        assert isinstance(item, SkippedPage) and item.kind == kind, item
