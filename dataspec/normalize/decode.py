"""Reading JSON from the wild: BOMs, cp1252/latin-1, NaN literals, markdown-fenced replies,
then the repairs of broken VLM replies (`repair`)."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ..errors import DataSpecError, Note
from .repair import repair_json

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|json5)?[ \t]*\r?\n?(.*?)```", re.DOTALL)


def decode_bytes(raw: bytes, notes: list[Note]) -> Any:
    """Parse a file's bytes leniently; raises `DataSpecError` (without a file name) if it can't."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        notes.append(Note("utf8_bom", "UTF-8 byte order mark removed"))
    if not raw.strip():
        raise DataSpecError("empty file")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        first_error = str(exc)
    text, encoding = decode_text(raw)
    if encoding != "utf-8":
        code = "encoding_" + encoding.replace("-", "")
        notes.append(Note(code, f"file is not UTF-8: read as {encoding}"))
    return parse_text(text, notes, first_error=first_error)


def decode_text(raw: bytes) -> tuple[str, str]:
    """(text, encoding) of a file's bytes: UTF-8, else cp1252, else latin-1 (never fails)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def parse_text(text: str, notes: list[Note], *, first_error: str | None = None) -> Any:
    """Parse JSON text: strict, then with NaN/Infinity, then a fenced or embedded block,
    then `repair_json` (a reply cut before any panel list began stays an error)."""
    stripped = text.strip()
    if not stripped:
        raise DataSpecError("empty JSON text")
    value = _loads(stripped, notes)
    if value is not _FAIL:
        return value
    for block in _FENCE.findall(stripped):
        value = _loads(block.strip(), notes)
        if value is not _FAIL:
            notes.append(Note("markdown_fence", "JSON taken from a markdown code fence"))
            return value
    for open_ch, close_ch in (("{", "}"), ("[", "]")):
        start, end = stripped.find(open_ch), stripped.rfind(close_ch)
        before, after = stripped[:start], stripped[end + 1 :]
        # only prose around the block: JSON syntax beside it means the document was cut
        # short (or is something else) and the block is only a piece of it
        prose = not any(c in before for c in "{}[]") and not any(c in after for c in '{}[]"')
        if 0 <= start < end and (before or after) and prose:
            value = _loads(stripped[start : end + 1], notes)
            if value is not _FAIL:
                if "```" in before:  # a fence the reply never closed (e.g. cut short after)
                    notes.append(Note("markdown_fence", _UNCLOSED_FENCE))
                else:
                    notes.append(Note("embedded_json", "JSON taken from surrounding prose"))
                return value
    try:  # last: the repairs of broken replies (clean ones never get here)
        return repair_json(stripped, notes, require_panels=True)
    except DataSpecError as exc:
        detail = first_error or _strict_error(stripped)
        raise DataSpecError(f"not valid JSON ({detail}; not repairable: {exc.reason})") from None


_FAIL = object()
_UNCLOSED_FENCE = "JSON taken from a markdown code fence (no closing fence)"


def _loads(text: str, notes: list[Note]) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    seen: list[str] = []

    def constant(name: str) -> float:
        seen.append(name)
        return float(name.replace("Infinity", "inf"))

    try:
        value = json.loads(text, parse_constant=constant)
    except (json.JSONDecodeError, RecursionError):
        return _FAIL
    if seen:
        notes.append(Note("non_standard_number", f"JSON literals {sorted(set(seen))} read"))
    return value


def _strict_error(text: str) -> str:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    return "unknown error"
