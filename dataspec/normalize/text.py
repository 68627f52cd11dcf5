"""Text rules: every panel-text variant found in the wild → dialogue / narration / sfx.

Lettered text (what is written on the page) goes into the three buckets. A VLM's
own words about the picture (`caption`, `description`, `key_elements`, `actions`) are
not lettered text: they become the panel's `description`, unless the caller asks for
the seed's behaviour (`caption_as_narration=True`). Entries of `text_content` (the
production VLM schema) and `speakers` (the older one) are routed by their label; their
speaker, label and box are kept per line (`TextBuckets.items`). The table is in README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Note
from .boxes import RawBox, may_hold_box, read_box

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

ENTRY_KEYS = ("text_content", "speakers", "speech_bubbles", "balloons", "bubbles")
"""Panel keys holding a list of lettered entries (`{label, speaker, text, box_2d}` and kin)."""

_LINE_KEYS = ("dialogue", "text", "line", "content", "value", "transcription", "ocr")
_KIND_KEYS = ("label", "speech_type", "type", "kind", "category", "bubble_type")
_SPEAKER_KEYS = ("speaker", "character", "name", "speaker_name")

LABELS: dict[str, str] = {
    **dict.fromkeys(("dialogue", "dialog", "speech", "thought", "thoughts", "whisper"), DIALOGUE),
    **dict.fromkeys(("caption", "captions", "narration", "narrator", "narrative"), NARRATION),
    **dict.fromkeys(("sfx", "sound", "sound_effect", "sound_effects", "onomatopoeia"), SFX),
}
"""An entry's label (lower case, spaces and hyphens as `_`) → its bucket."""


def route_label(label: Any) -> tuple[str, bool]:
    """(bucket, known) for an entry's label; unknown labels (shout, sign…) are dialogue.

    Labels outside `LABELS` that name narration or a sound (`narrator_box`, `sound effect`)
    count as known; no label at all is dialogue, and known.
    """
    if not isinstance(label, str) or not label.strip():
        return DIALOGUE, True
    k = label.strip().lower().replace(" ", "_").replace("-", "_")
    if k in LABELS:
        return LABELS[k], True
    if "narrat" in k or "caption" in k:
        return NARRATION, True
    if any(w in k for w in ("sfx", "sound", "onomatopoeia", "effect")):
        return SFX, True
    return DIALOGUE, False


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


@dataclass(frozen=True)
class LineDetail:
    """What an entry said about its line besides the text."""

    label: str | None = None
    speaker: str | None = None
    box: RawBox | None = None


@dataclass
class TextBuckets:
    """Lines collected for one panel, de-duplicated across sources, plus the description.

    `items` holds every kept line in the order met, as (bucket, line, detail or None).
    """

    dialogue: list[str] = field(default_factory=list)
    narration: list[str] = field(default_factory=list)
    sfx: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    items: list[tuple[str, str, LineDetail | None]] = field(default_factory=list)
    _origin: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(
        self, bucket: str, lines: list[str], source: str, detail: LineDetail | None = None
    ) -> None:
        """Add lines from one source; a line another source already gave is skipped."""
        target: list[str] = getattr(self, bucket)
        origin = self._origin.setdefault(bucket, {})
        for line in lines:
            if origin.setdefault(line, source) == source:
                target.append(line)
                self.items.append((bucket, line, detail))

    def has_detail(self) -> bool:
        """True when some line came with a label, a speaker or a box."""
        return any(detail is not None for _, _, detail in self.items)

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
    if isinstance(panel.get("text_items"), list):  # canonical detail first: it names the kinds
        used.add("text_items")
        _entries(panel["text_items"], buckets, notes, f"{where}.text_items", canonical=True)

    text = panel.get("text")
    if "text" in panel:
        used.add("text")
        if isinstance(text, dict):
            for key, value in text.items():
                bucket = TEXT_DICT_KEYS.get(str(key).lower())
                if bucket is None and str(key).lower() in ENTRY_KEYS:
                    _entries(value, buckets, notes, f"{where}.text.{key}")
                    continue
                if bucket is None:
                    notes.append(Note("text_ignored", f"unknown text key {key!r}", where))
                    continue
                buckets.add(bucket, _lines(value, notes, f"{where}.text.{key}"), f"text.{key}")
        else:
            buckets.add(DIALOGUE, _lines(text, notes, f"{where}.text"), "text")

    for key in ENTRY_KEYS:
        if key in panel:
            used.add(key)
            _entries(panel[key], buckets, notes, f"{where}.{key}")

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


def _entries(
    value: Any, buckets: TextBuckets, notes: list[Note], where: str, *, canonical: bool = False
) -> None:
    """Route each lettered entry's line by its label, keeping label, speaker and box.

    `canonical`: DataSpec `text_items`, routed by their `kind`, boxes `[x, y, w, h]`.
    """
    items = value if isinstance(value, list) else [value]
    for i, entry in enumerate(items):
        here = f"{where}[{i}]" if isinstance(value, list) else where
        if not isinstance(entry, dict):
            buckets.add(DIALOGUE, _lines(entry, notes, here), "entries")
            continue
        line_key = next((k for k in _LINE_KEYS if k in entry), None)
        if line_key is None:
            continue
        lines = _lines(entry[line_key], notes, f"{here}.{line_key}")
        if not lines:
            continue
        kind = next((entry[k] for k in _KIND_KEYS if k in entry), None)
        bucket, known = route_label(kind)
        if canonical and entry.get("kind") in (DIALOGUE, NARRATION, SFX):
            bucket, known = entry["kind"], True
        if not known:
            notes.append(Note("text_label_unknown", f"label {kind!r} read as dialogue", here))
        speaker = None
        for key in _SPEAKER_KEYS:
            if key in entry and (speaker := clean_line(entry[key])) is not None:
                break
        label = clean_line(kind) if isinstance(kind, str) else None
        raw = read_box(entry) if may_hold_box(entry) else None
        if canonical and raw is not None and raw.layout == "ambiguous":
            raw = RawBox(raw.values, "xywh", raw.key)
        detail = LineDetail(label, speaker, raw)
        buckets.add(bucket, lines, "entries", detail)
