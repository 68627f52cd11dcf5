"""Rendering pages and contact sheets from real JPEGs (and without them)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from PIL import Image

import dataspec
from dataspec.cli import main
from dataspec.render import COLOURS, contact_sheet, render_page
from tests.conftest import write_image


def make_page(tmp_path: Path, name: str = "0001") -> Path:
    write_image(tmp_path / "images" / "S" / f"{name}.jpg", size=(400, 600))
    page = dataspec.Page(
        page_image_path=f"S/{name}.jpg",
        panels=[
            dataspec.Panel(panel_coords=(210, 10, 180, 280), text=dataspec.PanelText(dialogue=["second"])),
            dataspec.Panel(panel_coords=(10, 10, 180, 280), text=dataspec.PanelText(dialogue=["first line of text"])),
        ],
        page_size=dataspec.PageSize(width=400, height=600),
    )
    return dataspec.dump(page, tmp_path / "pages" / f"{name}.json")


def test_render_draws_boxes_in_reading_order_colours(tmp_path: Path) -> None:
    page = dataspec.load(make_page(tmp_path))
    image = render_page(page, resolver=dataspec.ImageResolver(tmp_path / "images"))
    assert image.size == (400, 600)
    # the left panel is read first: its outline has the first colour, the right one the second
    assert image.getpixel((100, 10)) == COLOURS[0]
    assert image.getpixel((300, 10)) == COLOURS[1]
    background = image.getpixel((100, 500))  # page pixels outside panels untouched (JPEG ±3)
    assert all(abs(a - b) <= 3 for a, b in zip(background, (250, 250, 245), strict=True))


def test_missing_image_renders_on_a_canvas(tmp_path: Path) -> None:
    page = dataspec.load(make_page(tmp_path))
    image = render_page(page)  # relative path, no root: not found
    assert image.size == (400, 600)
    assert image.getpixel((300, 500)) == (200, 200, 200)


def test_contact_sheet_grid() -> None:
    sheet = contact_sheet([Image.new("RGB", (100, 150))] * 5, labels=["a"] * 5, cols=2, thumb=100)
    assert sheet.width == 2 * 108 + 8
    assert sheet.height == 3 * (150 + 18 + 8) + 8


def test_cli_render_single_and_sheet(tmp_path: Path) -> None:
    first = make_page(tmp_path)
    make_page(tmp_path, "0002")
    runner = CliRunner()
    out = tmp_path / "one.png"
    result = runner.invoke(main, ["render", str(first), "--image-root", str(tmp_path / "images"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (400, 600)
    result = runner.invoke(main, ["render", str(tmp_path / "pages"), "-o", str(out)])
    assert result.exit_code == 2 and "--contact-sheet" in result.output
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(main, ["render", str(tmp_path / "pages"), "--contact-sheet", "-o", str(sheet)])
    assert result.exit_code == 0 and "2 pages" in result.output
    assert Image.open(sheet).width > 400
