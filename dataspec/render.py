"""Drawing pages: each panel's box, reading-order number and the start of its text.

A panel whose text is unknown (`text_known: false`: no VLM panel was paired with it) is
outlined dashed and tagged "text unknown"; an inferred panel (`inferred: true`: no
detection, the region a missed panel left) has "inferred" beside its number; the page's
`unpaired_text` (text no panel got)
is listed in a strip below the page; `reading_order_source` is tagged in the top-right
corner. Drawing is deterministic: the same page gives the same pixels.

Needs Pillow (the `analyzer` or `training` extra); `import dataspec` does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .errors import DataSpecError
from .models import Page
from .paths import ImageResolver

COLOURS = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40),
)  # fmt: skip
"""Panel outline colours, cycled in reading order."""

TEXT_CHARS = 48
"""How much of a panel's text is drawn."""

UNKNOWN_TAG = "text unknown"
"""The tag on a panel whose text is unknown."""

UNPAIRED_LINES = 12
"""At most this many `unpaired_text` entries are listed below the page; the rest are counted."""


_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> _Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: _Font, width: float) -> str:
    """`text` on one line, shortened (ending in "…") until it is at most `width` px wide.

    Runs of whitespace, newlines included, become one space: Pillow cannot measure
    multiline text, and a reply's text may hold newlines.
    """
    text = " ".join(text.split())
    while len(text) > 4 and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text


def _dashed_rectangle(
    draw: ImageDraw.ImageDraw,
    box: tuple[float, float, float, float],
    colour: tuple[int, int, int, int],
    width: int,
) -> None:
    """A dashed outline `width` px thick, inside `box` (as `rectangle(outline=...)` draws)."""
    x0, y0, x1, y1 = (round(v) for v in box)
    dash, gap = 4 * width, 3 * width
    for start, end, fixed, horizontal in (
        (x0, x1, y0, True),
        (x0, x1, y1 - width + 1, True),
        (y0, y1, x0, False),
        (y0, y1, x1 - width + 1, False),
    ):
        t = start
        while t <= end:
            stop = min(t + dash - 1, end)
            if horizontal:
                draw.rectangle((t, fixed, stop, fixed + width - 1), fill=colour)
            else:
                draw.rectangle((fixed, t, fixed + width - 1, stop), fill=colour)
            t += dash + gap


def _unpaired_lines(page: Page) -> list[str]:
    """One line per `unpaired_text` entry: its source panel and its text (or description)."""
    lines = []
    for item in page.unpaired_text or ():
        said = [t.text for t in item.text_items] if item.text_items else item.text.lines()
        if said:
            body = " | ".join(said)
        elif item.description:
            body = f"({item.description})"
        else:
            body = "(no text)"
        lines.append(f"vlm_panel {item.vlm_panel}: {body}")
    if len(lines) > UNPAIRED_LINES:
        rest = len(lines) - (UNPAIRED_LINES - 1)
        lines = [*lines[: UNPAIRED_LINES - 1], f"… and {rest} more"]
    return lines


def _with_unpaired_strip(image: Image.Image, page: Page, font: _Font) -> Image.Image:
    """`image` with a strip below it listing the text no panel got (unchanged when none)."""
    lines = _unpaired_lines(page)
    if not lines:
        return image
    n = len(page.unpaired_text or ())
    header = f"text not placed on any panel ({n} VLM panel{'s' if n != 1 else ''}):"
    probe = ImageDraw.Draw(image)
    step = math.ceil(probe.textbbox((0, 0), "Ág", font=font)[3]) + 4
    pad = 6
    strip = Image.new("RGB", (image.width, 2 * pad + step * (len(lines) + 1)), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    draw.line((0, 0, strip.width, 0), fill=(120, 120, 120), width=2)
    room = strip.width - 2 * pad
    draw.text((pad, pad), _fit(draw, header, font, room), fill=(0, 0, 0), font=font)
    for k, text in enumerate(lines, start=1):
        draw.text((pad, pad + k * step), _fit(draw, text, font, room), fill=(90, 30, 30), font=font)
    out = Image.new("RGB", (image.width, image.height + strip.height), (255, 255, 255))
    out.paste(image, (0, 0))
    out.paste(strip, (0, image.height))
    return out


def page_image(
    page: Page,
    *,
    resolver: ImageResolver | None = None,
    json_path: str | Path | None = None,
    max_side: int = 1400,
) -> tuple[Image.Image, bool, float]:
    """(the page's image in RGB at most `max_side` px, found?, image px per page px).

    A grey canvas stands in when the image is missing, unreadable or over Pillow's
    decompression-bomb limit.
    """
    try:
        if resolver is not None:
            path = resolver.resolve(page.page_image_path, json_path)
        else:
            path = Path(page.page_image_path)
        with Image.open(path) as im:
            full = im.size
            im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale
            image = im.convert("RGB")
        image.thumbnail((max_side, max_side))
        return image, True, image.width / full[0]
    except (DataSpecError, OSError, Image.DecompressionBombError):
        if page.page_size is not None:
            size = (page.page_size.width, page.page_size.height)
        else:
            right = max((x + w for x, _, w, _ in page.boxes()), default=800)
            bottom = max((y + h for _, y, _, h in page.boxes()), default=1200)
            size = (right + 20, bottom + 20)
        scale = min(1.0, max_side / max(size))
        canvas = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        return Image.new("RGB", canvas, (200, 200, 200)), False, scale


def render_page(
    page: Page,
    *,
    resolver: ImageResolver | None = None,
    json_path: str | Path | None = None,
    rtl: bool = False,
    max_side: int = 1400,
) -> Image.Image:
    """The page with boxes, reading-order numbers and text starts drawn on it.

    Panels with unknown text get a dashed outline and a "text unknown" tag; a page with
    `unpaired_text` comes back taller, with those lines in a strip below the image.
    """
    image, found, scale = page_image(
        page, resolver=resolver, json_path=json_path, max_side=max_side
    )
    draw = ImageDraw.Draw(image, "RGBA")
    line = max(2, round(max(image.size) / 400))
    big, small = _font(max(14, image.width // 28)), _font(max(11, image.width // 60))
    pad = line * 2
    for rank, index in enumerate(page.order(rtl=rtl)):
        panel = page.panels[index]
        x, y, w, h = (v * scale for v in panel.panel_coords)
        colour = COLOURS[rank % len(COLOURS)]
        if panel.knows_text():
            draw.rectangle((x, y, x + w, y + h), outline=(*colour, 255), width=line)
        else:
            _dashed_rectangle(draw, (x, y, x + w, y + h), (*colour, 255), line)
        label = f"{rank + 1} inferred" if panel.inferred else str(rank + 1)
        box = draw.textbbox((0, 0), label, font=big)
        draw.rectangle((x, y, x + box[2] + 2 * pad, y + box[3] + 2 * pad), fill=(*colour, 230))
        draw.text((x + pad, y + pad), label, fill=(255, 255, 255, 255), font=big)
        if not panel.knows_text():
            tag = _fit(draw, UNKNOWN_TAG, small, w - 2 * pad)
            tb = draw.textbbox((0, 0), tag, font=small)
            ty = y + h - tb[3] - 2 * pad
            draw.rectangle((x, ty, x + min(w, tb[2] + 2 * pad), y + h), fill=(90, 90, 90, 220))
            draw.text((x + pad, ty + pad), tag, fill=(255, 230, 120, 255), font=small)
            continue
        text = " ".join(" | ".join(panel.text.lines()).split())
        if text:
            snippet = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
            snippet = _fit(draw, snippet, small, w - 2 * pad)
            tb = draw.textbbox((0, 0), snippet, font=small)
            ty = y + h - tb[3] - 2 * pad
            draw.rectangle((x, ty, x + min(w, tb[2] + 2 * pad), y + h), fill=(0, 0, 0, 170))
            draw.text((x + pad, ty + pad), snippet, fill=(255, 255, 255, 255), font=small)
    if page.reading_order_source is not None:
        tag = f"order: {page.reading_order_source}"
        tb = draw.textbbox((0, 0), tag, font=small)
        x0 = image.width - tb[2] - 2 * pad
        draw.rectangle((x0, 0, image.width, tb[3] + 2 * pad), fill=(255, 255, 255, 220))
        draw.text((x0 + pad, pad), tag, fill=(0, 0, 0, 255), font=small)
    if not found:
        draw.text((10, 10), f"image not found: {page.page_image_path}", fill=(0, 0, 0), font=small)
    image = _with_unpaired_strip(image, page, small)
    return image


def contact_sheet(
    images: Sequence[Image.Image],
    *,
    labels: Sequence[str] | None = None,
    cols: int = 4,
    thumb: int = 360,
    title: str | None = None,
) -> Image.Image:
    """Thumbnails in a grid, each with an optional caption below; an optional `title`
    line (e.g. "48 of 241 pages") above the grid."""
    if not images:
        raise DataSpecError("no pages to put on a contact sheet")
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    caption = 18 if labels else 0
    cell_h = round(thumb * 1.5) + caption
    top = 24 if title else 0
    width = cols * (thumb + 8) + 8
    sheet = Image.new("RGB", (width, top + rows * (cell_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    if title:
        draw.text((8, 6), _fit(draw, title, _font(14), width - 16), fill=(0, 0, 0), font=_font(14))
    for i, im in enumerate(images):
        copy = im.copy()
        copy.thumbnail((thumb, cell_h - caption))
        cx, cy = 8 + (i % cols) * (thumb + 8), top + 8 + (i // cols) * (cell_h + 8)
        sheet.paste(copy, (cx + (thumb - copy.width) // 2, cy))
        if labels:
            text = labels[i] if len(labels[i]) <= 52 else "…" + labels[i][-51:]
            draw.text((cx, cy + cell_h - caption + 2), text, fill=(0, 0, 0), font=font)
    return sheet
