"""The trainer's loader over a corpus of corrupt inputs: every bad page is skipped with a
reason naming its file (or, where the contract says so, loaded leniently / padded), the
run finishes, and the counts add up (pages = trained + skipped).

Page files: invalid, empty and truncated JSON, BOM, cp1252, NaN / Infinity literals, huge
numbers, 5000-deep nesting, a 20 MB file, strings where numbers belong, zero panels, boxes
off the page, negative boxes, JSON lists and scalars, an unreadable file, file names that
are not UTF-8. Images (under the
image root): a `.jpg` that is not an image, truncated JPEGs, decompression bombs (PNG
headers claiming 100000x100000 and 9000x9000 pixels), a symlink loop, a directory symlink
loop, a FIFO and an unreadable file.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import dataspec
from training.config import ModelConfig
from training.data import PageDataset, PageItem, SkippedPage
from training.embed import main as embed_main
from training.evaluate import main as evaluate_main
from training.synthetic import SyntheticCorpus

REPO = Path(__file__).resolve().parents[2]
CFG = ModelConfig(image_size=32, max_tokens=16, vocab_size=512)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def unreadable(path: Path) -> bool:
    """chmod 000 `path`; True when that really makes it unreadable (not so for root)."""
    os.chmod(path, 0)
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        return True
    return False


@dataclass
class Expect:
    """What the loader must make of one page file."""

    outcome: str
    """`skip` (with `kind`) or `item`."""
    kind: str = ""
    words: str = ""
    """Text the skip reason must contain (besides the file's path)."""
    check: Callable[[PageItem], bool] | None = None
    """For an item: what must hold of it."""


@dataclass
class BadCorpus:
    pages_dir: Path
    image_root: Path
    good: list[Path]
    expect: dict[Path, Expect]


def _lenient(*codes: str, panels: int | None = None) -> Callable[[PageItem], bool]:
    def check(item: PageItem) -> bool:
        ok = item.meta.lenient and all(c in item.meta.notes for c in codes)
        return ok and (panels is None or len(item.meta.boxes) == panels)

    return check


@pytest.fixture(scope="module")
def bad(corpus: SyntheticCorpus, tmp_path_factory: pytest.TempPathFactory) -> BadCorpus:
    root = tmp_path_factory.mktemp("bad")
    image_root = root / "images"
    shutil.copytree(corpus.image_root, image_root)
    pages_dir = root / "pages"
    good: list[Path] = []
    for src in corpus.pages[:8]:
        dst = pages_dir / src.relative_to(corpus.pages_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        good.append(dst)

    # a base page with several panels, its image resolved, with and without a page size
    src = next(p for p in corpus.pages if len(dataspec.load(p).panels) >= 3)
    page = dataspec.load(src, image_root=corpus.image_root)
    base = page.to_json_dict()
    base.pop("reading_order", None)
    base.pop("reading_order_source", None)  # a source only comes with an order
    n = len(base["panels"])
    image = Path(page.page_image_path)
    jpeg = image.read_bytes()
    with Image.open(image) as im:
        width, height = im.size
    sized = {**base, "page_size": {"width": width, "height": height}}
    unsized = {k: v for k, v in base.items() if k != "page_size"}

    bad_dir = pages_dir / "Bad"
    bad_dir.mkdir()
    expect: dict[Path, Expect] = {}

    def put(name: str, data: bytes | str | dict[str, Any], want: Expect) -> Path:
        path = bad_dir / name
        if isinstance(data, dict):
            data = json.dumps(data)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        expect[path] = want
        return path

    def coords(doc: dict[str, Any], literal: str, panel: int = 0) -> str:
        """`doc` as JSON text with panel `panel`'s coordinates replaced by `literal`."""
        doc = json.loads(json.dumps(doc))
        doc["panels"][panel]["panel_coords"] = "@@"
        return json.dumps(doc).replace('"@@"', literal)

    text = json.dumps(unsized)
    # --- page files
    put("invalid.json", "{not json", Expect("skip", "page", "not valid JSON"))
    put("empty.json", b"", Expect("skip", "page", "empty file"))
    put("truncated.json", text[: len(text) // 2], Expect("skip", "page", "JSON"))
    strict_whole = Expect("item", check=lambda it: len(it.meta.boxes) == n and not it.meta.lenient)
    put("bom.json", b"\xef\xbb\xbf" + text.encode(), strict_whole)  # strict: BOM allowed
    cp = json.loads(text)
    cp["panels"][0]["text"] = {"dialogue": ["Olé – “café”"]}
    put(
        "cp1252.json",
        json.dumps(cp, ensure_ascii=False).encode("cp1252"),
        Expect("item", check=_lenient("encoding_cp1252", panels=n)),
    )
    put("nan.json", coords(sized, "[NaN, 0, 10, 10]"), Expect("item", check=_lenient(panels=n - 1)))
    put(
        "infinity.json",
        coords(sized, "[0, 0, Infinity, 10]"),
        Expect("item", check=_lenient("non_standard_number", panels=n - 1)),
    )
    huge = json.loads(coords(sized, "[0, 0, 99999999999, 10]"))  # beyond 1e6 px
    put(
        "huge_numbers.json",
        coords(huge, "[0, 0, 1e400, 10]", 1),  # 1e400 overflows to Infinity
        Expect("item", check=_lenient("implausible_box", "nan_box", panels=n - 2)),
    )
    put(
        "huge_integer_extra.json",
        json.dumps({**unsized, "extra": 1}).replace('"extra": 1', '"extra": ' + "9" * 400),
        Expect("item", check=lambda it: it.meta.lenient),
    )
    put(
        "deep.json",
        json.dumps({**unsized, "extra": 1}).replace(
            '"extra": 1', '"extra": ' + "[" * 5000 + "]" * 5000
        ),
        Expect("skip", "page", "JSON"),
    )
    put(
        "large.json",
        {**unsized, "extra": "x" * 20_000_000},
        Expect("item", check=lambda it: len(it.meta.boxes) == n and not it.meta.lenient),
    )
    put(
        "numeric_strings.json",
        coords(sized, '["10", "20", "30", "40"]'),
        Expect("item", check=_lenient(panels=n)),
    )
    put(
        "word_strings.json",
        coords(sized, '["ten", "20", "a", "b"]'),
        Expect("item", check=_lenient("panel_dropped", panels=n - 1)),
    )
    put(
        "zero_panels.json",
        {**unsized, "panels": []},
        Expect("item", check=lambda it: not it.meta.boxes and not it.meta.lenient),
    )
    # off the page: with a page size the lenient load drops the panel; without one the
    # strict page loads and the loader, seeing the image, skips the page (labels untrustworthy)
    put(
        "outside_sized.json",
        coords(sized, f"[{width + 10}, 5, 50, 50]"),
        Expect("item", check=_lenient("outside_page", panels=n - 1)),
    )
    put(
        "outside_unsized.json",
        coords(unsized, f"[{width + 10}, 5, 50, 50]"),
        Expect("skip", "boxes", "wholly outside"),
    )
    put(
        "negative_clipped.json",
        coords(sized, "[-50, -50, 100, 100]"),
        Expect("item", check=_lenient("clipped", panels=n)),
    )
    put(
        "negative_unsized.json",
        coords(unsized, "[-50, -50, 100, 100]"),
        Expect("item", check=lambda it: (0, 0, 50, 50) in it.meta.boxes),
    )
    put(
        "negative_extent.json",
        coords(sized, "[10, 10, -5, 5]"),
        Expect("item", check=_lenient("negative_extent", panels=n - 1)),
    )
    put("list_of_one.json", json.dumps([unsized]), Expect("item", check=_lenient("unwrapped_list")))
    put("list_of_two.json", json.dumps([unsized, unsized]), Expect("skip", "page"))
    put("empty_list.json", "[]", Expect("skip", "page"))
    put("number.json", "42", Expect("skip", "page", "object"))
    # file names that are not UTF-8 (a Windows tool's cp1252 names, unpacked on Linux)
    put(os.fsdecode(b"caf\xe9.json"), "{not json", Expect("skip", "page", "not valid JSON"))
    put(os.fsdecode(b"\xff\xfe.json"), json.dumps([unsized]), Expect("item", check=_lenient()))
    locked_json = put("locked.json", text, strict_whole)  # root reads it anyway: then it loads
    if unreadable(locked_json):
        expect[locked_json] = Expect("skip", "page", "Permission denied")

    # --- images under the image root
    imgs = image_root / "Bad"
    imgs.mkdir()
    (imgs / "not_an_image.jpg").write_bytes(b"\xff\xd8 this is not a JPEG at all")
    (imgs / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3])
    (imgs / "header_only.jpg").write_bytes(jpeg[:200])
    (imgs / "bomb.png").write_bytes(png_claiming(100_000, 100_000))
    (imgs / "big.png").write_bytes(png_claiming(9000, 9000))  # 81 Mpx: over our 80 Mpx guard
    os.symlink("loop_b.jpg", imgs / "loop_a.jpg")
    os.symlink("loop_a.jpg", imgs / "loop_b.jpg")
    os.symlink(".", imgs / "around")  # a directory loop: the resolver's index must end
    os.mkfifo(imgs / "fifo.jpg")
    shutil.copy(image, imgs / "locked.jpg")
    locked_image = unreadable(imgs / "locked.jpg")

    def with_image(name: str, image_path: str, want: Expect, doc: dict[str, Any]) -> None:
        put(name, {**doc, "page_image_path": image_path}, want)

    with_image(
        "img_not_image.json",
        "Bad/not_an_image.jpg",
        Expect("skip", "image", "not_an_image.jpg"),
        unsized,
    )
    with_image(
        "img_truncated.json",
        "Bad/truncated.jpg",
        Expect("item", check=lambda it: it.meta.truncated_image and len(it.meta.boxes) == n),
        unsized,
    )
    with_image("img_header_only.json", "Bad/header_only.jpg", Expect("skip", "image"), unsized)
    with_image("img_bomb.json", "Bad/bomb.png", Expect("skip", "image", "bomb.png"), unsized)
    with_image(
        "img_big.json", "Bad/big.png", Expect("skip", "image", "decompression-bomb guard"), unsized
    )
    with_image(
        "img_loop.json", "Bad/loop_a.jpg", Expect("skip", "page", "image not found"), unsized
    )
    with_image("img_missing.json", "Bad/missing.jpg", Expect("skip", "page", "not found"), unsized)
    with_image("img_fifo.json", "Bad/fifo.jpg", Expect("skip", "page", "image not found"), unsized)
    # a page that needs the lenient load (which reads the image's header): must not block
    fifo_lenient = {"image": "Bad/fifo.jpg", "panels": [{"bbox": [1, 1, 20, 20]}]}
    put("img_fifo_lenient.json", fifo_lenient, Expect("skip", "page", "image not found"))
    with_image(
        "img_locked.json",
        "Bad/locked.jpg",
        Expect("skip", "image", "Permission denied")
        if locked_image
        else Expect("item", check=lambda it: len(it.meta.boxes) == n),
        unsized,
    )
    return BadCorpus(pages_dir, image_root, good, expect)


def test_every_bad_page_is_named_skipped_or_loaded_as_documented(bad: BadCorpus) -> None:
    paths = [*bad.good, *bad.expect]
    ds = PageDataset(paths, image_root=str(bad.image_root), config=CFG)
    for i, path in enumerate(paths):
        item = ds[(i, 0)]
        want = bad.expect.get(path, Expect("item", check=lambda it: not it.meta.lenient))
        if want.outcome == "skip":
            assert isinstance(item, SkippedPage), f"{path.name}: {item}"
            assert str(path) in item.reason, item.reason  # the reason names the file
            assert item.kind == want.kind, f"{path.name}: {item.kind} {item.reason}"
            assert want.words in item.reason, f"{path.name}: {item.reason}"
        else:
            assert isinstance(item, PageItem), f"{path.name}: {item}"
            assert want.check is not None and want.check(item), f"{path.name}: {item.meta}"


def test_page_file_size_limit(bad: BadCorpus) -> None:
    large = bad.pages_dir / "Bad" / "large.json"
    ds = PageDataset([large], image_root=str(bad.image_root), config=CFG, max_json_bytes=10**6)
    item = ds[0]
    assert isinstance(item, SkippedPage) and item.kind == "page"
    assert str(large) in item.reason and "over the page-file limit" in item.reason


def _count(names: list[str], expect: dict[Path, Expect], outcome: str) -> int:
    return sum(1 for p in expect if p.name in names and expect[p].outcome == outcome)


def test_a_real_run_over_the_corpus_finishes_and_counts_add_up(
    bad: BadCorpus, tiny: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = [
        "--json_dir",
        str(bad.pages_dir),
        "--image_root",
        str(bad.image_root),
        "--output_dir",
        str(out),
        "--batch_size",
        "4",
        "--epochs",
        "1",
        "--val_fraction",
        "0",
        *tiny,
        "--num_workers",
        "1",  # the pages are read in a worker process: nothing may kill it
    ]
    done = subprocess.run(
        [sys.executable, "-m", "training", *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = dataspec.discover(bad.pages_dir)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    skips = [p for p in bad.expect if bad.expect[p].outcome == "skip"]
    items = [p for p in found if p not in skips]
    assert record["pages"] + record["pages_skipped"] == len(found)
    assert record["pages_skipped"] == len(skips) and record["pages"] == len(items)
    zero = [p for p in items if p.name == "zero_panels.json"]
    assert record["zero_panel_pages"] == len(zero) == 1  # loaded, padded, counted: not skipped
    assert record["truncated_images"] == 1
    # paths are listed as they are on disk (a non-UTF-8 name keeps its bytes)
    with (out / "skipped_pages.csv").open(encoding="utf-8", errors="surrogateescape") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in rows) == sorted(map(str, skips))
    for row in rows:
        assert row["path"] in row["reason"]
        assert row["kind"] == bad.expect[Path(row["path"])].kind
    with (out / "lenient_pages.csv").open(encoding="utf-8", errors="surrogateescape") as fh:
        lenient = {r["path"]: r["notes"] for r in csv.DictReader(fh)}
    assert len(lenient) == record["lenient_pages"] > 0
    assert "outside_page" in lenient[str(bad.pages_dir / "Bad" / "outside_sized.json")]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    # evaluation and embedding over the same corpus finish too, with the same skips
    report = tmp_path / "report.json"
    source = ["--json_dir", str(bad.pages_dir), "--image_root", str(bad.image_root)]
    common = ["--checkpoint", str(out / "latest.pt"), *source, "--device", "cpu"]
    assert evaluate_main([*common, "--report", str(report)]) == 0
    evaluated = json.loads(report.read_text(encoding="utf-8"))  # valid UTF-8 JSON
    assert evaluated["pages"] + evaluated["pages_skipped"] == len(found)
    assert evaluated["pages_skipped"] == len(skips)
    assert embed_main([*common, "--output_dir", str(tmp_path / "emb")]) == 0
    with (tmp_path / "emb" / "skipped_pages.csv").open(
        encoding="utf-8", errors="surrogateescape"
    ) as fh:
        assert sorted(r["path"] for r in csv.DictReader(fh)) == sorted(map(str, skips))
