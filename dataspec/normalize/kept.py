"""Fields no rule read: kept as they are, made JSON-safe, so nothing is lost."""

from __future__ import annotations

import math
from typing import Any

from ..errors import Note
from .text import clean_str


def kept_fields(
    obj: dict[str, Any], skip: set[str], notes: list[Note], where: str
) -> dict[str, Any]:
    """Keys no rule consumed, kept (JSON-safe) so nothing is lost."""
    return {
        clean_str(str(k)): sanitize(v, notes, f"{where}.{k}")
        for k, v in obj.items()
        if k not in skip
    }


_INT64 = 2**63


def sanitize(value: Any, notes: list[Note], where: str) -> Any:
    """A JSON-safe copy: NaN/Infinity → null, out-of-range integers → text."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        notes.append(Note("non_finite_number", f"{value} replaced by null", where))
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if -_INT64 <= value < _INT64:
            return value
        notes.append(Note("big_integer", "integer beyond 64 bits kept as text", where))
        return str(value)
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, dict):
        return {clean_str(str(k)): sanitize(v, notes, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v, notes, f"{where}[{i}]") for i, v in enumerate(value)]
    return value
