"""Drawing pages: each panel's box, reading-order number and the start of its text.

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


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


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
    """The page with boxes, reading-order numbers and text starts drawn on it."""
    image, found, scale = page_image(
        page, resolver=resolver, json_path=json_path, max_side=max_side
    )
    draw = ImageDraw.Draw(image, "RGBA")
    line = max(2, round(max(image.size) / 400))
    big, small = _font(max(14, image.width // 28)), _font(max(11, image.width // 60))
    for rank, index in enumerate(page.order(rtl=rtl)):
        x, y, w, h = (v * scale for v in page.panels[index].panel_coords)
        colour = COLOURS[rank % len(COLOURS)]
        draw.rectangle((x, y, x + w, y + h), outline=(*colour, 255), width=line)
        label = str(rank + 1)
        box = draw.textbbox((0, 0), label, font=big)
        pad = line * 2
        draw.rectangle((x, y, x + box[2] + 2 * pad, y + box[3] + 2 * pad), fill=(*colour, 230))
        draw.text((x + pad, y + pad), label, fill=(255, 255, 255, 255), font=big)
        text = " | ".join(page.panels[index].text.lines())
        if text:
            snippet = text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…"
            while len(snippet) > 4 and draw.textlength(snippet, font=small) > w - 2 * pad:
                snippet = snippet[:-2] + "…"
            tb = draw.textbbox((0, 0), snippet, font=small)
            ty = y + h - tb[3] - 2 * pad
            draw.rectangle((x, ty, x + min(w, tb[2] + 2 * pad), y + h), fill=(0, 0, 0, 170))
            draw.text((x + pad, ty + pad), snippet, fill=(255, 255, 255, 255), font=small)
    if not found:
        draw.text((10, 10), f"image not found: {page.page_image_path}", fill=(0, 0, 0), font=small)
    return image


def contact_sheet(
    images: Sequence[Image.Image],
    *,
    labels: Sequence[str] | None = None,
    cols: int = 4,
    thumb: int = 360,
) -> Image.Image:
    """Thumbnails in a grid, each with an optional caption below."""
    if not images:
        raise DataSpecError("no pages to put on a contact sheet")
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    caption = 18 if labels else 0
    cell_h = round(thumb * 1.5) + caption
    sheet = Image.new("RGB", (cols * (thumb + 8) + 8, rows * (cell_h + 8) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    for i, im in enumerate(images):
        copy = im.copy()
        copy.thumbnail((thumb, cell_h - caption))
        cx, cy = 8 + (i % cols) * (thumb + 8), 8 + (i // cols) * (cell_h + 8)
        sheet.paste(copy, (cx + (thumb - copy.width) // 2, cy))
        if labels:
            text = labels[i] if len(labels[i]) <= 52 else "…" + labels[i][-51:]
            draw.text((cx, cy + cell_h - caption + 2), text, fill=(0, 0, 0), font=font)
    return sheet
