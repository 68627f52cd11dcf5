"""Text rules: lettered text into dialogue / narration / sfx; a VLM's picture words into description."""

from __future__ import annotations

from typing import Any

import pytest

import dataspec
from dataspec.normalize import read_panels


def text_of(panel: dict[str, Any], **options: Any) -> dataspec.Panel:
    doc = {"image": "a.jpg", "panels": [{"bbox": [0, 0, 10, 10], **panel}]}
    page, _ = dataspec.normalize(doc, **options)
    return page.panels[0]


CASES = [
    # (panel text fields as found, expected (dialogue, narration, sfx))
    ({"text": {"dialogue": ["Hi"], "narration": ["Later"], "sfx": ["BAM"]}}, (["Hi"], ["Later"], ["BAM"])),
    ({"text": {"caption": "Meanwhile"}}, ([], ["Meanwhile"], [])),  # caption inside text: lettered
    ({"text": {"captions": ["A", "B"]}}, ([], ["A", "B"], [])),
    ({"text": {"sound_effects": ["KRAK"]}}, ([], [], ["KRAK"])),
    ({"text": ["Hi", "there"]}, (["Hi", "there"], [], [])),  # text list → dialogue
    ({"text": "Hello"}, (["Hello"], [], [])),  # text string → dialogue
    ({"speakers": [{"character": "A", "dialogue": "Hi", "speech_type": "dialogue"}]}, (["Hi"], [], [])),
    ({"speakers": [{"character": "A", "dialogue": "Hmm", "speech_type": "thought"}]}, (["Hmm"], [], [])),
    ({"speakers": [{"character": "A", "text": "psst", "type": "whisper"}]}, (["psst"], [], [])),
    ({"speakers": [{"dialogue": "Later", "speech_type": "narration"}]}, ([], ["Later"], [])),
    ({"speakers": [{"dialogue": "Later", "speech_type": "Caption"}]}, ([], ["Later"], [])),
    ({"speakers": [{"dialogue": "Once", "speech_type": "narrator"}]}, ([], ["Once"], [])),
    ({"speakers": [{"dialogue": "BOOM", "speech_type": "SFX"}]}, ([], [], ["BOOM"])),
    ({"speakers": [{"dialogue": "zzz", "speech_type": "sound"}]}, ([], [], ["zzz"])),
    ({"speakers": [{"dialogue": "POW", "speech_type": "onomatopoeia"}]}, ([], [], ["POW"])),
    ({"speakers": [{"dialogue": "THUD", "type": "sound_effect"}]}, ([], [], ["THUD"])),
    ({"dialogue": ["Hi"], "narration": "Later", "sfx": ["BAM"]}, (["Hi"], ["Later"], ["BAM"])),
    ({"captions": ["Meanwhile"]}, ([], ["Meanwhile"], [])),  # panel-level captions: lettered
    ({"sound_effects": "BLAM"}, ([], [], ["BLAM"])),
    ({"ocr": "WHAT?"}, (["WHAT?"], [], [])),  # OCR-like fields → dialogue
    ({"ocr_text": ["A", "B"]}, (["A", "B"], [], [])),
    ({"ocr_lines": [{"text": "line 1"}, {"text": "line 2"}]}, (["line 1", "line 2"], [], [])),
    ({"texts": ["x"]}, (["x"], [], [])),
    ({"text": {"dialogue": ["  Hi  ", "", "   "]}}, (["Hi"], [], [])),  # stripped; blanks dropped
    ({"dialogue": [42, 3.5, None, True]}, (["42", "3.5"], [], [])),  # numbers kept as text
    ({"dialogue": ["Hi"], "speakers": [{"dialogue": "Hi"}, {"dialogue": "Bye"}]}, (["Hi", "Bye"], [], [])),
    ({"dialogue": ["No!", "No!"]}, (["No!", "No!"], [], [])),  # repeats within one source stay
]  # fmt: skip


@pytest.mark.parametrize(("panel", "expected"), CASES)
def test_text_variants(panel: dict[str, Any], expected: tuple[list[str], ...]) -> None:
    text = text_of(panel).text
    assert (text.dialogue, text.narration, text.sfx) == expected


def test_vlm_caption_is_description_not_narration() -> None:
    panel = text_of(
        {
            "caption": "A man runs down a street.",
            "description": "Night, rain.",
            "key_elements": ["man", "street"],
            "actions": ["running"],
            "speakers": [{"character": "Man", "dialogue": "Hurry!", "speech_type": "dialogue"}],
        }
    )
    assert panel.text.narration == []
    assert panel.text.dialogue == ["Hurry!"]
    assert panel.description == (
        "A man runs down a street.\nNight, rain.\nKey elements: man; street\nActions: running"
    )


def test_caption_as_narration_restores_the_seed_behaviour() -> None:
    panel = text_of({"caption": "A man runs."}, caption_as_narration=True)
    assert panel.text.narration == ["A man runs."]
    assert panel.description is None


def test_read_panels_keeps_boxless_vlm_panels_in_panel_number_order() -> None:
    vlm = {
        "panels": [
            {"panel_number": "2", "speakers": [{"dialogue": "second", "speech_type": "dialogue"}]},
            {"panel_number": 1, "caption": "first panel", "speakers": []},
            {"panel_number": 3, "bbox": [0, 0, 10, 10], "text": {"sfx": ["BANG"]}},
        ]
    }
    records, notes = read_panels(vlm)
    assert [r.index for r in records] == [1, 0, 2]
    assert [r.text.lines() for r in records] == [[], ["second"], ["BANG"]]
    assert records[0].description == "first panel"
    assert [r.box for r in records] == [None, None, (0, 0, 10, 10)]
    assert "panel_number_order" in {n.code for n in notes}
