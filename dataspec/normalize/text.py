"""Text rules: every panel-text variant found in the wild → dialogue / narration / sfx.

Lettered text (what is written on the page) goes into the three buckets. A VLM's
own words about the picture (`caption`, `description`, `key_elements`, `actions`) are
not lettered text: they become the panel's `description`, unless the caller asks for
the seed's behaviour (`caption_as_narration=True`). The table is in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Note

DIALOGUE, NARRATION, SFX = "dialogue", "narration", "sfx"

TEXT_DICT_KEYS: dict[str, str] = {
    "dialogue": DIALOGUE,
    "dialog": DIALOGUE,
    "speech": DIALOGUE,
    "thought": DIALOGUE,
    "thoughts": DIALOGUE,
    "narration": NARRATION,
    "narrations": NARRATION,
    "caption": NARRATION,
    "captions": NARRATION,
    "narrative": NARRATION,
    "sfx": SFX,
    "sound_effects": SFX,
    "sound_effect": SFX,
    "onomatopoeia": SFX,
}
"""Keys inside a `text` dict (lettered text only, so `caption` there means a caption box)."""

PANEL_TEXT_KEYS: dict[str, str] = {
    "dialogue": DIALOGUE,
    "dialog": DIALOGUE,
    "narration": NARRATION,
    "narrations": NARRATION,
    "captions": NARRATION,
    "sfx": SFX,
    "sound_effects": SFX,
    "ocr": DIALOGUE,
    "ocr_text": DIALOGUE,
    "ocr_lines": DIALOGUE,
    "texts": DIALOGUE,
}
"""Text keys directly on a panel. OCR-like keys count as dialogue."""

DESCRIPTION_KEYS = ("caption", "description", "key_elements", "actions")
"""A VLM's words about the picture, kept as the panel's `description`."""

SPEAKER_KEYS = ("speakers", "speech_bubbles", "balloons", "bubbles")
_LINE_KEYS = ("dialogue", "text", "line", "content", "value", "transcription", "ocr")
_KIND_KEYS = ("speech_type", "type", "kind", "category", "bubble_type")


def route_kind(kind: Any) -> str:
    """Bucket for a speaker entry's `speech_type`/`type` (thought, whisper… are dialogue)."""
    if not isinstance(kind, str):
        return DIALOGUE
    k = kind.lower()
    if "narrat" in k or "caption" in k:
        return NARRATION
    if any(w in k for w in ("sfx", "sound", "onomatopoeia", "effect")):
        return SFX
    return DIALOGUE


def clean_line(value: Any) -> str | None:
    """A stripped non-empty string from a string or number; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        return None
    text = clean_str(value).strip()
    return text or None


def clean_str(value: str) -> str:
    """The string with lone surrogates (from `\\ud800`-style escapes) replaced."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


@dataclass
class TextBuckets:
    """Lines collected for one panel, de-duplicated across sources, plus the description."""

    dialogue: list[str] = field(default_factory=list)
    narration: list[str] = field(default_factory=list)
    sfx: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    _origin: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, bucket: str, lines: list[str], source: str) -> None:
        """Add lines from one source; a line another source already gave is skipped."""
        target: list[str] = getattr(self, bucket)
        origin = self._origin.setdefault(bucket, {})
        for line in lines:
            if origin.setdefault(line, source) == source:
                target.append(line)

    def as_dict(self) -> dict[str, list[str]]:
        """The three text buckets."""
        return {DIALOGUE: self.dialogue, NARRATION: self.narration, SFX: self.sfx}


def _lines(value: Any, notes: list[Note], where: str) -> list[str]:
    """Strings out of a string, a number, a list, or dicts holding a line."""
    if isinstance(value, list | tuple):
        out: list[str] = []
        for i, item in enumerate(value):
            out.extend(_lines(item, notes, f"{where}[{i}]"))
        return out
    if isinstance(value, dict):
        for key in _LINE_KEYS:
            if key in value:
                return _lines(value[key], notes, f"{where}.{key}")
        if value:
            notes.append(Note("text_ignored", "object without a text field", where))
        return []
    line = clean_line(value)
    return [line] if line is not None else []


def extract_text(
    panel: dict[str, Any],
    notes: list[Note],
    where: str,
    *,
    caption_as_narration: bool = False,
) -> tuple[TextBuckets, set[str]]:
    """Collect a panel's text; returns the buckets and the keys consumed."""
    buckets = TextBuckets()
    used: set[str] = set()

    text = panel.get("text")
    if "text" in panel:
        used.add("text")
        if isinstance(text, dict):
            for key, value in text.items():
                bucket = TEXT_DICT_KEYS.get(str(key).lower())
                if bucket is None and str(key).lower() in SPEAKER_KEYS:
                    _speakers(value, buckets, notes, f"{where}.text.{key}")
                    continue
                if bucket is None:
                    notes.append(Note("text_ignored", f"unknown text key {key!r}", where))
                    continue
                buckets.add(bucket, _lines(value, notes, f"{where}.text.{key}"), f"text.{key}")
        else:
            buckets.add(DIALOGUE, _lines(text, notes, f"{where}.text"), "text")

    for key in SPEAKER_KEYS:
        if key in panel:
            used.add(key)
            _speakers(panel[key], buckets, notes, f"{where}.{key}")

    for key, bucket in PANEL_TEXT_KEYS.items():
        if key in panel:
            used.add(key)
            buckets.add(bucket, _lines(panel[key], notes, f"{where}.{key}"), key)

    for key in DESCRIPTION_KEYS:
        if key not in panel:
            continue
        used.add(key)
        lines = _lines(panel[key], notes, f"{where}.{key}")
        if key == "caption" and caption_as_narration:
            buckets.add(NARRATION, lines, key)
            continue
        if lines:
            joined = "; ".join(lines) if key in ("key_elements", "actions") else "\n".join(lines)
            label = {"key_elements": "Key elements: ", "actions": "Actions: "}.get(key, "")
            buckets.description.append(label + joined)
    return buckets, used


def _speakers(value: Any, buckets: TextBuckets, notes: list[Note], where: str) -> None:
    """Route each speaker entry's line by its speech type."""
    items = value if isinstance(value, list) else [value]
    for i, entry in enumerate(items):
        here = f"{where}[{i}]" if isinstance(value, list) else where
        if isinstance(entry, dict):
            kind = next((entry[k] for k in _KIND_KEYS if k in entry), None)
            line_key = next((k for k in _LINE_KEYS if k in entry), None)
            if line_key is None:
                continue
            lines = _lines(entry[line_key], notes, f"{here}.{line_key}")
            buckets.add(route_kind(kind), lines, "speakers")
        else:
            buckets.add(DIALOGUE, _lines(entry, notes, here), "speakers")
