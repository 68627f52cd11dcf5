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
            dataspec.Panel(
                panel_coords=(210, 10, 180, 280), text=dataspec.PanelText(dialogue=["second"])
            ),
            dataspec.Panel(
                panel_coords=(10, 10, 180, 280),
                text=dataspec.PanelText(dialogue=["first line of text"]),
            ),
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
    result = runner.invoke(
        main, ["render", str(first), "--image-root", str(tmp_path / "images"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (400, 600)
    result = runner.invoke(main, ["render", str(tmp_path / "pages"), "-o", str(out)])
    assert result.exit_code == 2 and "--contact-sheet" in result.output
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(
        main, ["render", str(tmp_path / "pages"), "--contact-sheet", "-o", str(sheet)]
    )
    assert result.exit_code == 0 and "2 pages" in result.output
    assert Image.open(sheet).width > 400


def _pairing_page(tmp_path: Path, *, unknown: bool) -> dataspec.Page:
    """make_page's page; with `unknown`, its left panel's text is unknown and text is unplaced."""
    page = dataspec.load(make_page(tmp_path))
    if not unknown:
        return page
    data = page.to_json_dict()
    data["panels"][1] = {"panel_coords": [10, 10, 180, 280], "text_known": False}
    data["unpaired_text"] = [
        {"vlm_panel": 2, "text": {"dialogue": ["lost line"], "sfx": ["BANG"]}},
        {"vlm_panel": 3, "description": "A cat sleeps."},
    ]
    return dataspec.Page.model_validate(data)


def test_render_unknown_text_and_unpaired_text(tmp_path: Path) -> None:
    resolver = dataspec.ImageResolver(tmp_path / "images")
    plain = render_page(_pairing_page(tmp_path, unknown=False), resolver=resolver)
    page = _pairing_page(tmp_path, unknown=True)
    assert not page.panels[1].knows_text() and page.unpaired_text
    drawn = render_page(page, resolver=resolver)
    assert drawn.tobytes() != plain.tobytes()
    # the unpaired text is listed in a strip below the page: same width, taller
    assert drawn.width == plain.width and drawn.height > plain.height
    strip = drawn.crop((0, plain.height, drawn.width, drawn.height))
    assert len(strip.getcolors(1 << 16) or []) > 2  # lines written on it
    # the page above the strip: the unknown panel (left, read first) is dashed, the other solid
    top_left = [drawn.getpixel((x, 10)) for x in range(20, 180)]
    top_right = [drawn.getpixel((x, 10)) for x in range(230, 380)]
    assert COLOURS[0] in top_left and any(p != COLOURS[0] for p in top_left)
    assert all(p == COLOURS[1] for p in top_right)
    # deterministic
    assert render_page(page, resolver=resolver).tobytes() == drawn.tobytes()


def test_render_unknown_panel_without_unpaired_text_keeps_the_size(tmp_path: Path) -> None:
    page = _pairing_page(tmp_path, unknown=True).model_copy(update={"unpaired_text": None})
    image = render_page(page, resolver=dataspec.ImageResolver(tmp_path / "images"))
    assert image.size == (400, 600)


def test_render_shows_the_reading_order_source(tmp_path: Path) -> None:
    page = dataspec.load(make_page(tmp_path))
    resolver = dataspec.ImageResolver(tmp_path / "images")
    sourced = dataspec.Page.model_validate(
        {**page.to_json_dict(), "reading_order": [1, 0], "reading_order_source": "layout"}
    )
    plain = render_page(
        sourced.model_copy(update={"reading_order_source": None}), resolver=resolver
    )
    tagged = render_page(sourced, resolver=resolver)
    assert tagged.size == plain.size
    corner = (300, 0, 400, 30)
    assert tagged.crop(corner).tobytes() != plain.crop(corner).tobytes()
    assert tagged.crop((0, 100, 400, 600)).tobytes() == plain.crop((0, 100, 400, 600)).tobytes()


def test_render_text_with_newlines(tmp_path: Path) -> None:
    """Text holding newlines (as VLM replies do) is drawn on one line, in panels and the strip."""
    data = _pairing_page(tmp_path, unknown=True).to_json_dict()
    data["panels"][0]["text"] = {"dialogue": ["two\nlines"], "narration": ["a\n\nb"]}
    data["unpaired_text"][0]["text"] = {"dialogue": ["first\nsecond\r\nthird"]}
    data["unpaired_text"][1]["description"] = "A cat\nsleeps."
    page = dataspec.Page.model_validate(data)
    image = render_page(page, resolver=dataspec.ImageResolver(tmp_path / "images"))
    assert image.width == 400 and image.height > 600


def test_render_tags_an_inferred_panel(tmp_path: Path) -> None:
    """An inferred panel's number reads "N inferred"; the rest of the page is unchanged."""
    page = dataspec.load(make_page(tmp_path))
    resolver = dataspec.ImageResolver(tmp_path / "images")
    doc = page.to_json_dict()
    doc["panels"][0]["inferred"] = True  # the right-hand panel, read second
    inferred = dataspec.Page.model_validate(doc)
    plain = render_page(page, resolver=resolver)
    tagged = render_page(inferred, resolver=resolver)
    assert tagged.size == plain.size
    label = (210, 10, 390, 60)  # the top of the right-hand panel, where its number is
    assert tagged.crop(label).tobytes() != plain.crop(label).tobytes()
    left = (0, 0, 200, 600)
    assert tagged.crop(left).tobytes() == plain.crop(left).tobytes()
    assert render_page(inferred, resolver=resolver).tobytes() == tagged.tobytes()
