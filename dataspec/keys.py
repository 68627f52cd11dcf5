"""The page key: where a page sits (series, page), read from any of its paths.

The analyzer matches image paths with VLM JSON paths by it; the trainer finds a page's
book and page number by it (consecutive pages for the page-order objective).

A path is read from its end: the file stem is the page, generic container folders
(`JPG4CBZ`, `pages`, `images`, …, see `dataspec.paths.CONTAINERS`) are skipped, and the
nearest other folder is the series. A stem such as `JPG4CBZ_0001` counts as the container `JPG4CBZ`
plus the page `0001`, so `<Series>/JPG4CBZ/0001.jpg` and `<Series>/JPG4CBZ_0001.json`
are the same page.

Two keys come out of it:

- the *exact key*: the series folder exactly as written, the container names (lower
  case) and the page stem exactly as written: `X-Men 01/jpg4cbz/0001`. Punctuation twins
  ("X-Men 01" and "X Men 01") have different exact keys. The folders above the series
  (`parents`) break ties between equal exact keys.
- the *series+page key*: the series folder reduced to lower-case letters and digits, and
  the page number without zero padding: `xmen01#1`. Twins share it, so it is only used
  when one spelling of the series exists on each side (see `analyzer.match`).
- `book` and `number`: the folders down to the containers, and the page stem's last
  number (`Saga/JPG4CBZ_0007.json` → `Saga/jpg4cbz`, 7).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from dataspec.paths import alnum, image_stem, is_container, is_windows_path

__all__ = [
    "PageKey",
    "norm_path",
    "norm_series",
    "page_key",
    "page_number",
]


_PREFIX = re.compile(r"^([A-Za-z0-9]+)[ _\-.]+(.+)$")
_TRAILING_NUMBER = re.compile(r"^\D*?(\d+)$")
_LAST_NUMBER = re.compile(r"(\d+)\D*$")


def norm_series(name: str) -> str:
    """A series folder name reduced to lower-case letters and digits (`X-Men 01` → `xmen01`)."""
    return alnum(name)


@functools.lru_cache(maxsize=16384)
def page_number(stem: str) -> str:
    """The page part of the series+page key: `0012` → `12`, `p3` → `3`, else letters+digits."""
    match = _TRAILING_NUMBER.match(stem)
    if match:
        return str(int(match.group(1)))
    return alnum(stem)


def norm_path(path: str) -> str:
    """A path compared as text: forward slashes, case folded (for map and list look-ups)."""
    return path.replace("\\", "/").casefold()


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page sits: its series folder, container folders and page stem."""

    series: str
    """The series folder exactly as written ('' when the path has none)."""
    containers: tuple[str, ...]
    """Generic container names between series and page, lower case, outermost first."""
    stem: str
    """The page stem exactly as written, container prefix removed (`0001`)."""
    parents: tuple[str, ...]
    """Folders above the series, nearest first (tie-breaker for equal exact keys)."""

    @property
    def exact(self) -> str:
        """`<series>/<containers…>/<stem>`, case and punctuation kept."""
        return "/".join((self.series, *self.containers, self.stem))

    @property
    def series_norm(self) -> str:
        """The series name as letters and digits."""
        return alnum(self.series)

    @property
    def book(self) -> str:
        """Folders above the series, the series and its containers: one book's pages share it."""
        return "/".join((*reversed(self.parents), self.series, *self.containers))

    @property
    def number(self) -> int | None:
        """The last number in the page stem (`0007` → 7, `page_12a` → 12), or None."""
        found = _LAST_NUMBER.search(self.stem)
        return int(found.group(1)) if found else None

    @property
    def series_page(self) -> str:
        """`<normalized series>#<page number>`."""
        return f"{alnum(self.series)}#{page_number(self.stem)}"


_NO_KEY = PageKey("", (), "", ())


@functools.lru_cache(maxsize=16384)
def _page_stem(name: str) -> tuple[str | None, str]:
    """(its container prefix in lower case or None, the page stem) of a file name:
    `JPG4CBZ_0001.jpg` → (`jpg4cbz`, `0001`)."""
    stem = image_stem(name)
    match = _PREFIX.match(stem)
    if match and is_container(match.group(1)):
        return match.group(1).lower(), match.group(2)
    return None, stem


def page_key(path: str) -> PageKey:
    """The page key of an image path or VLM JSON path (Windows or POSIX, any depth)."""
    text = path.replace("\\", "/")
    if is_windows_path(path):
        text = text[2:]
    parts = [p for p in text.split("/") if p and p != "."]
    if not parts:
        return _NO_KEY
    prefix, stem = _page_stem(parts[-1])
    i = len(parts) - 2
    while i >= 0 and is_container(parts[i]):
        i -= 1
    containers = [p.lower() for p in parts[i + 1 : -1]]
    if prefix is not None:
        containers.append(prefix)
    series = parts[i] if i >= 0 else ""
    parents = tuple(reversed(parts[:i])) if i > 0 else ()
    return PageKey(series, tuple(containers), stem, parents)
