"""Which COCO categories are panels, lettered text and characters: the caller's choice
resolved against the file's `categories`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .records import CocoError

DEFAULT_PANEL_ID = 1
DEFAULT_PANEL_NAME = "panel"
DEFAULT_TEXT_IDS = frozenset({3, 4})
"""Text categories of a file that names none: 3 balloon, 4 text (the Faster R-CNN's)."""
TEXT_NAMES = frozenset(
    {
        "text",
        "balloon",
        "speech balloon",
        "speech bubble",
        "bubble",
        "text bubble",
        "word balloon",
        "caption",
    }
)
"""Category names (as `_text_name` writes them) counted as lettered text by default.

"caption" is in: a caption box holds lettered text, and the VLM transcribes it (as
narration), so a panel's text count must include it to compare with the VLM's.
"""
DEFAULT_CHARACTER_IDS = frozenset({2})
"""Character category of a file that names none: 2 (the Faster R-CNN's)."""
CHARACTER_NAMES = frozenset({"character", "characters", "person", "figure"})
"""Category names (as `_text_name` writes them) of the drawn characters."""
_INT32, _INT64 = np.iinfo(np.int32), np.iinfo(np.int64)


def panel_category_ids(
    categories: Sequence[dict[str, Any]] | None,
    ids: Sequence[int] = (),
    names: Sequence[str] = (),
) -> frozenset[int]:
    """Category ids counted as panels.

    Given ids and/or names: those ids plus the ids of categories with those names (case
    insensitive). Given neither: the categories named "panel", or id 1 when the file names
    none. A name no category has is an error.
    """
    cats = [c for c in categories or () if isinstance(c, dict)]
    by_name: dict[str, set[int]] = {}
    for cat in cats:
        cid, name = cat.get("id"), cat.get("name")
        if isinstance(cid, int) and not isinstance(cid, bool) and isinstance(name, str):
            by_name.setdefault(name.strip().casefold(), set()).add(cid)
    if ids or names:
        out = set(ids)
        for name in names:
            found = by_name.get(name.strip().casefold())
            if not found:
                known = ", ".join(sorted(by_name)) or "none"
                raise CocoError(f"no category named {name!r} (categories: {known})")
            out |= found
        return frozenset(out)
    return frozenset(by_name.get(DEFAULT_PANEL_NAME, {DEFAULT_PANEL_ID}))


def _text_name(name: str) -> str:
    """A category name compared for text: case, `_`, `-` and runs of spaces ignored."""
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def text_category_ids(
    categories: Sequence[dict[str, Any]] | None,
    ids: Sequence[int] = (),
    names: Sequence[str] = (),
    panel_ids: frozenset[int] = frozenset(),
) -> frozenset[int]:
    """Category ids counted as lettered text (text, balloons, captions).

    Given ids and/or names: those ids plus the ids of categories with those names (case,
    `_`, `-` and spaces ignored); a name no category has is an error, and so is a chosen
    id that is also in `panel_ids`. Given neither: the categories named one of
    `TEXT_NAMES` when the file names any category, else `DEFAULT_TEXT_IDS` (3, 4); a
    default that is a panel id is left to the panels. Text ids are kept per detection as
    numbers, so one beyond int64 is an error when chosen, and ignored from the file.
    """
    cats = [c for c in categories or () if isinstance(c, dict)]
    by_name: dict[str, set[int]] = {}
    name_of: dict[int, str] = {}
    for cat in cats:
        cid, name = cat.get("id"), cat.get("name")
        if isinstance(cid, int) and not isinstance(cid, bool) and isinstance(name, str):
            by_name.setdefault(_text_name(name), set()).add(cid)
            name_of.setdefault(cid, name)
    if ids or names:
        out = set(ids)
        for name in names:
            found = by_name.get(_text_name(name))
            if not found:
                known = ", ".join(sorted(by_name)) or "none"
                raise CocoError(f"no category named {name!r} (categories: {known})")
            out |= found
        both = sorted(out & panel_ids)
        if both:
            named = ", ".join(
                f"{cid} ({name_of[cid]!r})" if cid in name_of else str(cid) for cid in both
            )
            what = "category" if len(both) == 1 else "categories"
            raise CocoError(f"{what} {named} cannot be both panel and text")
        huge = sorted(cid for cid in out if not _INT64.min <= cid <= _INT64.max)
        if huge:
            raise CocoError(f"text category id {huge[0]} is beyond int64")
        return frozenset(out)
    if by_name:
        found = set().union(*(group for name, group in by_name.items() if name in TEXT_NAMES))
    else:
        found = set(DEFAULT_TEXT_IDS)
    return frozenset(cid for cid in found - panel_ids if _INT64.min <= cid <= _INT64.max)


def character_category_ids(
    categories: Sequence[dict[str, Any]] | None, taken: frozenset[int] = frozenset()
) -> frozenset[int]:
    """Category ids of the drawn characters: those named one of `CHARACTER_NAMES` when the
    file names any category, else `DEFAULT_CHARACTER_IDS` (2); never an id in `taken`
    (the panel and text ones)."""
    named = [c for c in categories or () if isinstance(c, dict) and isinstance(c.get("name"), str)]
    found = {
        c["id"]
        for c in named
        if isinstance(c.get("id"), int)
        and not isinstance(c["id"], bool)
        and _text_name(c["name"]) in CHARACTER_NAMES
    }
    if not named:
        found = set(DEFAULT_CHARACTER_IDS)
    return frozenset(cid for cid in found - taken if _INT64.min <= cid <= _INT64.max)


@dataclass(frozen=True)
class _Choice:
    """The caller's panel and text categories, resolved against the file's."""

    panel_ids: Sequence[int]
    panel_names: Sequence[str]
    text_ids: Sequence[int]
    text_names: Sequence[str]

    def resolve(self, categories: Any) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        """(panel ids, text ids, character ids) for the file's `categories` value (any JSON)."""
        cats = categories if isinstance(categories, list) else None
        panels = panel_category_ids(cats, self.panel_ids, self.panel_names)
        text = text_category_ids(cats, self.text_ids, self.text_names, panels)
        return panels, text, character_category_ids(cats, panels | text)
