"""Tests for `dataspec.imagesize.image_size` on real image files written with Pillow."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image, features

from dataspec.imagesize import image_size

SIZE = (321, 457)  # width != height, both odd, so a swapped or rounded size shows


def save(path: Path, size: tuple[int, int] = SIZE, mode: str = "RGB", **params: object) -> Path:
    """Write a real image with Pillow (format from the suffix, or `format=` in params)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (200, 30, 60) if mode == "RGB" else 128).save(path, **params)
    return path


def exif_block() -> Image.Exif:
    """An EXIF block with a few tags (written as an APP1 segment before SOF)."""
    exif = Image.Exif()
    exif[0x010F] = "DataSpec test camera"  # Make
    exif[0x0110] = "Model 1"  # Model
    exif[0x0131] = "Pillow"  # Software
    exif[0x0112] = 1  # Orientation
    return exif


def markers(data: bytes) -> list[int]:
    """JPEG marker codes up to the first start-of-frame (to check the test file's layout)."""
    out, pos = [], 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        out.append(marker)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            break
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return out


@pytest.mark.parametrize(
    ("name", "params"),
    [
        # baseline JPEG (SOF0)
        ("baseline.jpg", {"quality": 90}),
        # progressive JPEG (SOF2)
        ("progressive.jpg", {"progressive": True}),
        # baseline JPEG with an EXIF APP1 segment before SOF
        ("baseline_exif.jpg", {"exif": "exif"}),
        # progressive JPEG with an EXIF APP1 segment before SOF
        ("progressive_exif.jpg", {"progressive": True, "exif": "exif"}),
        # optimized Huffman tables, no JFIF quirks
        ("optimized.jpeg", {"optimize": True, "quality": 50}),
    ],
)
def test_jpeg(tmp_path: Path, name: str, params: dict[str, object]) -> None:
    """JPEG size is read from the SOF segment, past APP0/APP1/DQT/DHT."""
    if params.get("exif") == "exif":
        params = {**params, "exif": exif_block()}
    path = save(tmp_path / name, **params)
    if "exif" in params:
        found = markers(path.read_bytes())
        assert 0xE1 in found, "the test file must hold an EXIF APP1 segment"
        assert found.index(0xE1) < len(found) - 1, "the EXIF segment must come before SOF"
    if params.get("progressive"):
        assert markers(path.read_bytes())[-1] == 0xC2
    assert image_size(path) == SIZE


def test_jpeg_greyscale(tmp_path: Path) -> None:
    """A one-channel JPEG."""
    assert image_size(save(tmp_path / "grey.jpg", mode="L")) == SIZE


def test_jpeg_with_exif_thumbnail_of_another_size(tmp_path: Path) -> None:
    """An embedded EXIF thumbnail (its own SOF, inside APP1) does not give its size."""
    thumb = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 0, 0)).save(thumb, format="JPEG")
    main = io.BytesIO()
    Image.new("RGB", SIZE, (255, 255, 255)).save(main, format="JPEG")
    data = main.getvalue()
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x00" + b"\x00\x00\x00\x00"  # empty IFD0
    payload = b"Exif\x00\x00" + tiff + thumb.getvalue()
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    path = tmp_path / "thumb.jpg"
    path.write_bytes(data[:2] + app1 + data[2:])
    with Image.open(path) as check:  # Pillow agrees the file is the big image
        assert check.size == SIZE
    assert image_size(path) == SIZE


def test_jpeg_with_fill_bytes_before_marker(tmp_path: Path) -> None:
    """Extra 0xFF fill bytes before a marker are allowed by the JPEG standard."""
    main = io.BytesIO()
    Image.new("RGB", SIZE).save(main, format="JPEG")
    data = main.getvalue()
    path = tmp_path / "fill.jpg"
    path.write_bytes(data[:2] + b"\xff\xff\xff" + data[2:])
    assert image_size(path) == SIZE


@pytest.mark.parametrize("length", [b"\x00\x00", b"\x00\x01"])
def test_jpeg_with_bad_segment_length_terminates(tmp_path: Path, length: bytes) -> None:
    """An APP0 segment length below 2 (corrupt) gives an answer, not a hang or an error."""
    main = io.BytesIO()
    Image.new("RGB", SIZE).save(main, format="JPEG")
    data = bytearray(main.getvalue())
    assert data[2:4] == b"\xff\xe0"
    data[4:6] = length
    path = tmp_path / "bad.jpg"
    path.write_bytes(bytes(data))
    assert image_size(path) in (None, SIZE)


@pytest.mark.parametrize(
    ("name", "mode", "params"),
    [
        # truecolour PNG
        ("rgb.png", "RGB", {}),
        # greyscale PNG
        ("grey.png", "L", {}),
        # interlaced PNG
        ("interlaced.png", "RGB", {"interlace": 1}),
        # GIF (palette)
        ("image.gif", "RGB", {}),
        # 24-bit BMP
        ("image.bmp", "RGB", {}),
        # 8-bit BMP
        ("grey.bmp", "L", {}),
    ],
)
def test_png_gif_bmp(tmp_path: Path, name: str, mode: str, params: dict[str, object]) -> None:
    """PNG, GIF and BMP sizes from their fixed headers."""
    assert image_size(save(tmp_path / name, mode=mode, **params)) == SIZE


def test_bmp_top_down(tmp_path: Path) -> None:
    """A top-down BMP (negative height in the header) has a positive height."""
    path = save(tmp_path / "bottom_up.bmp")
    data = bytearray(path.read_bytes())
    data[22:26] = struct.pack("<i", -SIZE[1])
    path.write_bytes(bytes(data))
    assert image_size(path) == SIZE


needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")


@needs_webp
@pytest.mark.parametrize(
    ("params", "chunk"),
    [
        # lossy WebP: a simple VP8 chunk
        ({"lossless": False, "quality": 80}, b"VP8 "),
        # lossless WebP: a VP8L chunk
        ({"lossless": True}, b"VP8L"),
        # extended WebP (EXIF metadata): a VP8X chunk
        ({"lossless": False, "exif": "exif"}, b"VP8X"),
    ],
)
def test_webp(tmp_path: Path, params: dict[str, object], chunk: bytes) -> None:
    """WebP sizes from the VP8, VP8L and VP8X headers."""
    if params.get("exif") == "exif":
        params = {**params, "exif": exif_block().tobytes()}
    path = save(tmp_path / "image.webp", **params)
    assert path.read_bytes()[12:16] == chunk, "the test file must use the intended chunk"
    assert image_size(path) == SIZE


@needs_webp
def test_webp_with_alpha(tmp_path: Path) -> None:
    """Lossy WebP with an alpha channel (VP8X + ALPH)."""
    path = tmp_path / "alpha.webp"
    Image.new("RGBA", SIZE, (1, 2, 3, 100)).save(path, lossless=False)
    assert image_size(path) == SIZE


@pytest.mark.parametrize(
    "size",
    [
        # one pixel
        (1, 1),
        # a very wide strip
        (4000, 3),
        # a tall page at scan resolution
        (1988, 3057),
    ],
)
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif", ".bmp", ".webp"])
def test_sizes_across_formats(tmp_path: Path, size: tuple[int, int], suffix: str) -> None:
    """Extreme and typical sizes read back exactly in every format."""
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    path = save(tmp_path / f"page{suffix}", size=size)
    with Image.open(path) as check:
        assert check.size == size
    assert image_size(path) == size


def test_truncated_jpeg_does_not_raise(tmp_path: Path) -> None:
    """The first 100 bytes of a JPEG: None, or the right size, never an exception."""
    full = save(tmp_path / "full.jpg", exif=exif_block())
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:100])
    assert image_size(cut) in (None, SIZE)


@pytest.mark.parametrize("length", [2, 3, 4, 5, 10, 50, 150, 300, 600])
def test_truncated_jpeg_any_length(tmp_path: Path, length: int) -> None:
    """A JPEG cut anywhere before its SOF gives None; cut after it, the size."""
    data = save(tmp_path / "full.jpg", exif=exif_block()).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[:length])
    assert image_size(cut) in (None, SIZE)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # plain text
        ("notes.txt", b"hello, this is not an image\n"),
        # JSON with an image-like name
        ("page.jpg", b'{"panels": []}'),
        # an empty file
        ("empty.png", b""),
        # a PNG signature with nothing after it
        ("short.png", b"\x89PNG\r\n\x1a\n"),
        # a RIFF file that is not WebP
        ("sound.webp", b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 24),
        # just the JPEG start-of-image marker
        ("soi.jpg", b"\xff\xd8"),
        # JPEG SOI then end-of-image, no frame
        ("eoi.jpg", b"\xff\xd8\xff\xd9"),
    ],
)
def test_non_images_return_none(tmp_path: Path, name: str, data: bytes) -> None:
    """Files that are not (readable) images give None."""
    path = tmp_path / name
    path.write_bytes(data)
    assert image_size(path) is None


def test_missing_file_returns_none(tmp_path: Path) -> None:
    """A path that does not exist gives None."""
    assert image_size(tmp_path / "nope.jpg") is None


def test_directory_returns_none(tmp_path: Path) -> None:
    """A directory is not an image."""
    assert image_size(tmp_path) is None


def test_accepts_str_paths(tmp_path: Path) -> None:
    """A plain string path works as well as a Path."""
    path = save(tmp_path / "s.png")
    assert image_size(str(path)) == SIZE
