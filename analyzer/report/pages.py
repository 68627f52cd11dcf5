"""Pages in the report: thumbnails, the full-size renders they link to, galleries, paths."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from dataspec import DataSpecError, ImageResolver, load
from dataspec.render import render_page

from ..images import image_problem
from ..page_files import write_if_changed
from .data import Row, page_json, row_key

__all__ = ["Assets", "Gallery", "path_html", "short_path"]

THUMB_WIDTH = 220
FULL_SIDE = 4096
"""Longest side of a full-size render (pages are drawn at their own size up to this)."""
PATH_CHARS = 64
"""Paths longer than this are shortened in the middle, at a separator."""

_SEGMENT = re.compile(r"[^/\\]*[/\\]|[^/\\]+$")
_RENDER = re.compile(r"^[A-Za-z0-9._-]*-[0-9a-f]{10}\.jpg$")
"""The name of a render this module writes (stale ones are removed)."""


def short_path(path: str, limit: int = PATH_CHARS) -> str:
    """`path` shortened in the middle at a separator: its first segment, "…", and as
    many whole trailing segments as fit in `limit` (at least the file name)."""
    if len(path) <= limit:
        return path
    parts = _SEGMENT.findall(path)
    if len(parts) < 3:
        return path
    head, sep = parts[0], parts[0][-1] if parts[0][-1:] in "/\\" else "/"
    tail: list[str] = [parts[-1]]
    for part in reversed(parts[1:-1]):
        if len(head) + 2 + len(part) + sum(map(len, tail)) > limit:
            break
        tail.insert(0, part)
    shown = f"{head}…{sep}{''.join(tail)}"
    return shown if len(tail) < len(parts) - 1 and len(shown) < len(path) else path


def path_html(path: str, limit: int = PATH_CHARS) -> str:
    """A path as `<span class="path" title="full path">shortened</span>`, a line break
    allowed after each separator (`<wbr>`)."""
    shown = "".join(escape(part) + "<wbr>" for part in _SEGMENT.findall(short_path(path, limit)))
    return f'<span class="path" title="{escape(path)}">{shown.removesuffix("<wbr>")}</span>'


class Assets:
    """The files beside the report: full-size renders in `<report stem>_files/`, and
    relative links from the report's folder to them and to any other file."""

    def __init__(self, report: str | Path) -> None:
        report = Path(os.path.abspath(report))
        self.base = report.parent
        self.folder = self.base / f"{report.stem}_files"
        self.written: set[str] = set()

    def link(self, target: str | Path) -> str:
        """`target` as an href relative to the report (a file: URL across drives)."""
        absolute = os.path.abspath(target)
        try:
            rel = os.path.relpath(absolute, self.base)
        except ValueError:  # another drive (Windows)
            return Path(absolute).as_uri()
        return quote(Path(rel).as_posix(), safe="/")

    def save(self, key: str, image: Image.Image) -> str:
        """Write `image` as the render of page `key` (atomically; unchanged bytes are
        left alone); returns its href."""
        digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", re.split(r"[/\\]", key)[-1].rsplit(".", 1)[0])
        name = f"{stem[:40]}-{digest}.jpg"
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_if_changed(str(self.folder / name), buf.getvalue())
        self.written.add(name)
        return self.link(self.folder / name)

    def prune(self) -> int:
        """Remove renders of earlier reports that this one does not link; returns how many."""
        removed = 0
        if self.folder.is_dir():
            for entry in sorted(self.folder.iterdir()):
                if _RENDER.match(entry.name) and entry.name not in self.written:
                    entry.unlink(missing_ok=True)
                    removed += 1
        return removed


class _Figure:
    """One page's thumbnail (a JPEG data URI) and, with assets, its links."""

    def __init__(self, uri: str | None, full: str | None, json: str | None) -> None:
        self.uri, self.full, self.json = uri, full, json


class Gallery:
    """Draws page figures; each page is rendered once per report."""

    def __init__(
        self,
        pages: dict[str, Path],
        resolver: ImageResolver | None,
        assets: Assets | None,
    ) -> None:
        self.pages, self.resolver, self.assets = pages, resolver, assets
        self._figures: dict[str, _Figure] = {}

    def _draw(self, row: Row) -> Image.Image | None:
        """The emitted page drawn with its panels (full size), else its bare image."""
        image_path = row.get("resolved_image_path") or row.get("image_path") or ""
        json_path = page_json(row, self.pages)
        try:
            if json_path is not None:
                page = load(json_path)
                return render_page(
                    page, resolver=self.resolver, json_path=json_path, max_side=FULL_SIDE
                )
            # not a file, a FIFO, not an image, cut short, a decompression bomb: nothing
            if not image_path or image_problem(image_path) is not None:
                return None
            with Image.open(image_path) as im:
                im.draft("RGB", (THUMB_WIDTH * 2, THUMB_WIDTH * 3))
                return im.convert("RGB")
        except (DataSpecError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None

    def figure(self, row: Row) -> _Figure:
        """The row's thumbnail and links (a render written on first use)."""
        key = row.get("resolved_image_path") or row.get("image_path") or ""
        if key in self._figures:
            return self._figures[key]
        image = self._draw(row)
        uri = full = json = None
        if image is not None:
            json_path = page_json(row, self.pages)
            if self.assets is not None:
                if json_path is not None:
                    full, json = self.assets.save(key, image), self.assets.link(json_path)
                else:
                    full = self.assets.link(key)
            image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 2))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=80)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        self._figures[key] = figure = _Figure(uri, full, json)
        return figure

    def html(
        self,
        title: str,
        rows: Sequence[Row],
        caption: Callable[[Row], str],
        *,
        total: int | None = None,
        element_id: str | None = None,
    ) -> str:
        """An `<h3>` and a grid of figures: thumbnail (a link to the full page), the path,
        `caption(row)` (HTML) and the links; `total`: how many there were to pick from."""
        cells = []
        for row in rows:
            fig = self.figure(row)
            path = row_key(row) or "?"
            if fig.uri is None:
                body = '<div class="missing">no image</div>'
            else:
                body = f'<img src="{fig.uri}" alt="{escape(path)}">'
                if fig.full is not None:
                    body = f'<a class="thumb" href="{escape(fig.full)}">{body}</a>'
            links = []
            if fig.full is not None:
                what = "full-size render" if fig.json is not None else "image"
                links.append(f'<a href="{escape(fig.full)}">{what}</a>')
            if fig.json is not None:
                links.append(f'<a href="{escape(fig.json)}">DataSpec JSON</a>')
            more = f"<br>{' · '.join(links)}" if links else ""
            cells.append(
                f"<figure>{body}<figcaption>{path_html(path)}<br>{caption(row)}{more}"
                "</figcaption></figure>"
            )
        of = f" of {total}" if total is not None else ""
        heading = f"<h3>{escape(title)} <small>({len(rows)}{of} shown)</small></h3>"
        ident = f" id='{escape(element_id)}'" if element_id else ""
        return f"{heading}<div class='grid'{ident}>{''.join(cells)}</div>"
