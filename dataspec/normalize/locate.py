"""Finding the page: the panel list inside wrappers and model replies, and replies that hold
no page at all (an empty reply is told apart from a page without panels)."""

from __future__ import annotations

from typing import Any

from ..errors import DataSpecError, Note
from .boxes import (
    bare_box,
    read_box,
)
from .decode import parse_text
from .vocab import PANEL_LIST_KEYS

IMAGE_KEYS = (
    "page_image_path",
    "image_path",
    "image",
    "IMAGE_PATH",
    "imagePath",
    "img_path",
    "image_file",
    "source_image_path",
    "file_name",
    "filename",
)
"""Page keys holding the image path, in the order tried."""

WRAPPER_KEYS = (
    "result",
    "page",
    "data",
    "response",
    "output",
    "analysis",
    "content",
    "pages",
    "choices",  # a raw chat-completion reply: choices[0].message.content
    "message",
    "candidates",  # a raw Gemini reply: candidates[0].content.parts[0].text
    "parts",
    "text",
)
"""Keys whose value may be the page itself (their siblings are kept as page-level fields).

Tried in this order, only when the document has no panel list of its own.
"""

NOT_PANEL_KEYS = ("text_regions", "paddleocr_results", "ocr_results", "ocr", "words", "lines")
"""Box-bearing lists that are text (OCR results), never panels: kept as page fields."""

_MAX_DEPTH = 8


def _has_box(item: Any) -> bool:
    if isinstance(item, dict):
        return read_box(item) is not None
    return bare_box(item) is not None


def _panel_list(doc: dict[str, Any], notes: list[Note], where: str) -> tuple[str, list[Any]] | None:
    for key in PANEL_LIST_KEYS:
        value = doc.get(key)
        if isinstance(value, list):
            return key, value
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            notes.append(
                Note("panels_as_dict", f"{key!r} is an object: its values are the panels", where)
            )
            return key, list(value.values())
    for key, value in doc.items():
        if (
            key not in NOT_PANEL_KEYS
            and isinstance(value, list)
            and value
            and all(isinstance(v, dict) for v in value)
            and any(_has_box(v) for v in value)
        ):
            return str(key), value
    return None


def locate(
    obj: Any, notes: list[Note], where: str, depth: int
) -> tuple[dict[str, Any], list[Any] | None, str]:
    """(page-level fields, panel items or None, JSON path of the panel list)."""
    if depth > _MAX_DEPTH:
        raise DataSpecError("page nested too deeply in wrappers", where=where)
    if isinstance(obj, str):
        parsed = parse_text(obj, notes)
        notes.append(Note("json_in_string", "page given as JSON text", where))
        return locate(parsed, notes, where, depth + 1)
    if isinstance(obj, list):
        if obj and all(_has_box(v) for v in obj):
            notes.append(Note("bare_panel_list", "document is a bare list of panels", where))
            return {}, obj, where
        if len(obj) == 1:
            notes.append(Note("unwrapped_list", "one-element list unwrapped", where))
            return locate(obj[0], notes, f"{where}[0]", depth + 1)
        if not obj:
            return {}, [], where
        raise DataSpecError(f"a list of {len(obj)} items that are not panels", where=where)
    if not isinstance(obj, dict):
        raise DataSpecError(f"expected a JSON object, got {type(obj).__name__}", where=where)
    empty = _empty_reply(obj)
    if empty is not None:
        raise DataSpecError(f"empty reply ({empty})", where=where, code="empty_reply")
    found = _panel_list(obj, notes, where)
    if found is not None:
        key, items = found
        return obj, items, f"{where}.{key}"
    wrapper_error: DataSpecError | None = None
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if not isinstance(inner, dict | list | str):
            continue
        trial: list[Note] = []  # a wrapper not taken leaves no notes behind
        try:
            inner_fields, inner_items, inner_where = locate(
                inner, trial, f"{where}.{key}", depth + 1
            )
        except DataSpecError as exc:
            wrapper_error = wrapper_error or exc
            continue
        notes.extend(trial)
        notes.append(Note("unwrapped", f"page taken from {key!r}", where))
        merged = {k: v for k, v in obj.items() if k != key}
        merged.update(inner_fields)
        return merged, inner_items, inner_where
    if wrapper_error is not None and not any(k in obj for k in IMAGE_KEYS):
        raise wrapper_error  # e.g. {"pages": [two pages]}: say why, not "no image path"
    return obj, None, where


_REPLY_KEYS = ("message", "content", "response", "output")
_TOKEN_KEYS = ("completion_tokens", "output_tokens", "candidatesTokenCount")


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def _empty_reply(obj: dict[str, Any]) -> str | None:
    """Why a model reply with no panel list holds no answer at all; None if it may hold one.

    Empty: the first choice's (chat completion) or candidate's (Gemini) message or content
    null, empty or blank, no choices at all, a top-level reply field (`message`, `content`,
    `response`, `output`) null or empty, or zero completion tokens in `usage`.
    """
    if any(k in obj for k in PANEL_LIST_KEYS) or any(k in obj for k in IMAGE_KEYS):
        return None
    for key in ("choices", "candidates"):
        value = obj.get(key)
        if not isinstance(value, list):
            continue
        first = value[0] if value else None
        if not isinstance(first, dict):
            return f"{key} is empty"
        inner = first.get("message", first.get("content", first.get("text")))
        if _blank(inner):
            return f"{key}[0] has no message"
        if isinstance(inner, dict):
            content = inner.get("content", inner.get("parts"))
            if _blank(content):
                return f"{key}[0] message content is empty"
    for key in _REPLY_KEYS:
        if key in obj and _blank(obj[key]):
            return f"{key} is {'null' if obj[key] is None else 'empty'}"
    usage = obj.get("usage", obj.get("usageMetadata"))
    if isinstance(usage, dict):
        for key in _TOKEN_KEYS:
            if usage.get(key) == 0 and not isinstance(usage.get(key), bool):
                return f"usage.{key} is 0"
    return None
