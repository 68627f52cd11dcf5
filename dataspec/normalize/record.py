"""`PanelRecord`: one panel as a document gives it, the lenient path's output per panel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import Character, Face, PanelText, TextItem


@dataclass(frozen=True)
class PanelRecord:
    """One panel as a document gives it, box or not (e.g. a VLM panel with text only)."""

    index: int
    """Position in the document's panel list (before `panel_number` ordering)."""
    text: PanelText
    box: tuple[int, int, int, int] | None = None
    description: str | None = None
    score: float | None = None
    text_items: tuple[TextItem, ...] | None = None
    characters: tuple[Character, ...] | None = None
    faces: tuple[Face, ...] | None = None

    def details(self) -> dict[str, Any]:
        """The optional `Panel` fields this record fills (description, text items, …)."""
        out: dict[str, Any] = {}
        if self.description is not None:
            out["description"] = self.description
        for name in ("text_items", "characters", "faces"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value)
        return out
