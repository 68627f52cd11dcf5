"""dataspec over a corpus of corrupt inputs: every bad file is named, the run goes on, counts add up."""

from __future__ import annotations

import csv
import json
import os
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import dataspec
from dataspec.cli import main
from dataspec.io import output_path
from dataspec.render import render_page
from tests.conftest import write_image

GOOD = {
    "image": "S/0001.jpg",
    "size": [800, 1200],
    "panels": [{"bbox": [10, 10, 300, 400], "text": "Hi"}],
}


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels (a decompression bomb's header, tiny file)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def corrupt_corpus(root: Path) -> dict[str, str | None]:
    """Write the bad (and a few good) page files; name → expected error text (None: loads)."""
    nested = "[" * 5000 + "]" * 5000
    cases: dict[str, tuple[bytes, str | None]] = {
        "invalid.json": (b"{'single': 'quotes'}", "not valid JSON"),
        "empty.json": (b"", "empty file"),
        "truncated.json": (json.dumps(GOOD).encode()[:40], "not valid JSON"),
        "bom.json": (b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), None),
        "cp1252.json": (
            json.dumps(GOOD, ensure_ascii=False).replace("Hi", "“Olé”").encode("cp1252"),
            None,
        ),
        "nan_inf.json": (
            b'{"image": "a.jpg", "size": [800, 1200], "panels": [{"bbox": [NaN, 0, 5, 5]}, {"bbox": [0, 0, Infinity, 5]}]}',
            None,
        ),
        "huge_numbers.json": (
            b'{"image": "a.jpg", "panels": [{"bbox": [1e308, 0, 1e309, 99999999999999999999999]}], "n": 123456789012345678901234567890}',
            None,
        ),
        "deep.json": (
            f'{{"image": "a.jpg", "panels": [], "x": {nested}}}'.encode(),
            "not valid JSON",
        ),
        "deep_900.json": (
            ('{"image": "a.jpg", "panels": [], "x": ' + "[" * 900 + "]" * 900 + "}").encode(),
            "nested too deeply",
        ),
        "strings.json": (
            b'{"image": "a.jpg", "width": "800", "height": "1200", "panels": [{"bbox": ["10", "10", "ten", "400"]}, {"bbox": "10 10 300 400"}]}',
            None,
        ),
        "zero_panels.json": (b'{"image": "a.jpg", "panels": []}', None),
        "outside.json": (
            b'{"image": "a.jpg", "size": [800, 1200], "panels": [{"bbox": [900, 10, 50, 50]}, {"bbox": [-50, -50, 100, 100]}, {"bbox": [10, 10, -5, 5]}]}',
            None,
        ),
        "list_of_pages.json": (json.dumps([GOOD, GOOD]).encode(), "not panels"),
        "number.json": (b"42", "expected a JSON object"),
    }
    expected: dict[str, str | None] = {}
    for name, (raw, error) in cases.items():
        (root / name).write_bytes(raw)
        expected[name] = error
    big = {
        "image": "a.jpg",
        "panels": [{"bbox": [i % 700, i % 1100, 10, 10], "text": "x" * 50} for i in range(150_000)],
    }
    (root / "very_large.json").write_text(json.dumps(big), "utf-8")  # ~15 MB
    expected["very_large.json"] = None
    return expected


def test_normalize_and_validate_over_corrupt_files(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    expected = corrupt_corpus(src)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["normalize", str(src), "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    with open(out / "normalize_skips.csv", newline="", encoding="utf-8") as fh:
        skips = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    written = {p.name for p in out.glob("*.json")}
    assert len(skips) + len(written) == len(expected)  # every file accounted for
    for name, error in expected.items():
        if error is None:
            assert name in written, skips.get(name)
            assert dataspec.load(out / name)  # strict: a valid canonical page
        else:
            assert name in skips, name
            assert error in skips[name]["reason"] and str(src / name) in skips[name]["error"]
    assert f"{len(expected)} files: {len(written)} written" in result.output
    # strict validation of the inputs names every bad file and still counts them all
    result = CliRunner().invoke(main, ["validate", str(src)])
    assert result.exit_code == 1
    assert f"{len(expected)} files:" in result.output
    for name in expected:
        if expected[name] is not None:
            assert f"INVALID {src / name}" in result.output


def test_bad_images_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "images"
    good = write_image(root / "S" / "0001.jpg", size=(400, 600))
    (root / "S" / "0002.jpg").write_bytes(b"this is not a JPEG")
    (root / "S" / "0003.jpg").write_bytes(good.read_bytes()[:300])  # truncated JPEG
    (root / "S" / "0004.png").write_bytes(png_header(100_000, 100_000))  # bomb header
    (root / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    unreadable = write_image(root / "S" / "0005.jpg")
    unreadable.chmod(0)
    pages = tmp_path / "pages"
    for n in range(1, 6):
        dataspec.dump(
            dataspec.Page(
                page_image_path=f"S/000{n}" + (".png" if n == 4 else ".jpg"),
                panels=[dataspec.Panel(panel_coords=(10, 10, 100, 100))],
            ),
            pages / f"000{n}.json",
        )
    dataspec.dump(dataspec.Page(page_image_path="S/0009.jpg"), pages / "0009.json")  # missing
    result = CliRunner().invoke(
        main, ["validate", str(pages), "--image-root", str(root), "--check-images"]
    )
    assert result.exit_code == 1 and "6 files: 4 valid, 2 invalid" in result.output
    assert "0009.json" in result.output and "image not found" in result.output
    assert "0002.jpg: not a readable image" in result.output  # a .jpg that is not an image
    # headers only: the truncated JPEG (its frame header survives), the bomb (a readable
    # header) and the unreadable file (tests run as root, who reads it anyway) pass here;
    # the trainer's loader is what decodes pixels and skips them (tests/training)
    # lenient normalization reads the image headers it can, and never decodes pixels
    page, _notes = dataspec.load_with_notes(pages / "0004.json", image_root=root)
    assert page.page_image_path.endswith("0004.png")
    # rendering stands in a canvas for images it cannot draw, and never allocates the bomb
    resolver = dataspec.ImageResolver(root)
    for n in (2, 3, 4, 5):
        page = dataspec.load(pages / f"000{n}.json")
        image = render_page(page, resolver=resolver, json_path=pages / f"000{n}.json")
        assert max(image.size) <= 1400
    assert Image.open(good).size == (400, 600)


def test_normalize_never_writes_outside_the_out_dir(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "p.json").write_text(json.dumps(GOOD), "utf-8")
    (src / "q.json").write_text(json.dumps(GOOD), "utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside, target_is_directory=True)  # a trap in the output tree
    result = CliRunner().invoke(main, ["normalize", str(src), "--out-dir", str(out)])
    assert result.exit_code == 0
    assert list(outside.iterdir()) == []
    assert "leads out of the output folder" in (out / "normalize_skips.csv").read_text("utf-8")
    assert dataspec.load(out / "q.json")
    for rel in ("../x.json", "/etc/x.json", "C:\\x.json", "a/../../x.json"):
        with pytest.raises(dataspec.DataSpecError, match="output folder"):
            output_path(out, rel)
    # a symlink at the file itself is replaced, its target untouched
    target = outside / "kept.json"
    target.write_text("keep", "utf-8")
    os.symlink(target, out / "link.json")
    dataspec.dump(dataspec.load(out / "q.json"), output_path(out, "link.json"))
    assert target.read_text("utf-8") == "keep" and not (out / "link.json").is_symlink()
