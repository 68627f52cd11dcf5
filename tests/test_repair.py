"""Repair of broken VLM replies (`dataspec.normalize.repair`): each measured defect, replies
cut short, the public path (`decode_bytes` → `read_panels`), and a property over generated
production replies with one defect each.

Examples of the property: `DATASPEC_FUZZ_EXAMPLES` (default 300). A long run:
    DATASPEC_FUZZ_EXAMPLES=20000 python -m pytest tests/test_repair.py
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataspec.errors import DataSpecError, Note
from dataspec.normalize import PanelRecord, read_panels
from dataspec.normalize.decode import decode_bytes
from dataspec.normalize.repair import MAX_DEPTH, REPAIR_CODES, REPAIRS, repair_json

PAGE = (1000, 1500)

REPLY: dict[str, Any] = {
    "overall_summary": "Ana and Bob argue on a rooftop; Bob runs off.",
    "panels": [
        {
            "panel_number": 1,
            "box_2d": [20, 30, 480, 520],
            "description": "A rooftop at night. Ana points at the city.",
            "text_content": [
                {"label": "caption", "speaker": None, "text": "Meanwhile, uptown…", "box_2d": [25, 35, 80, 300]},
                {"label": "dialogue", "speaker": "Ana", "text": "It's Bob's turn!", "box_2d": [100, 60, 180, 260]},
            ],
            "characters": [{"name": "Ana", "box_2d": [90, 50, 470, 300]}],
            "faces": [{"character": "Ana", "box_2d": [100, 120, 160, 180]}],
        },
        {
            "panel_number": 2,
            "box_2d": [20, 540, 480, 980],
            "description": "Bob, arms crossed.",
            "text_content": [
                {"label": "dialogue", "speaker": "Bob", "text": "No. Not tonight.", "box_2d": [40, 600, 120, 900]},
                {"label": "thought", "speaker": "Bob", "text": "She knows…", "box_2d": [130, 600, 190, 800]},
            ],
            "characters": [{"name": "Bob", "box_2d": [60, 560, 470, 960]}],
            "faces": [],
        },
        {
            "panel_number": 3,
            "box_2d": [500, 30, 980, 980],
            "description": "Wide shot: Bob jumps to the next roof.",
            "text_content": [
                {"label": "dialogue", "speaker": "Ana", "text": "Bob! Come back!", "box_2d": [520, 50, 600, 400]},
                {"label": "sfx", "speaker": None, "text": "WHOOSH", "box_2d": [700, 500, 800, 900]},
            ],
            "characters": [
                {"name": "Ana", "box_2d": [600, 40, 970, 300]},
                {"name": "Bob", "box_2d": [550, 600, 900, 900]},
            ],
            "faces": [{"character": "Ana", "box_2d": [610, 100, 680, 170]}],
        },
        {
            "panel_number": 4,
            "box_2d": [500, 30, 980, 500],
            "description": "Ana alone.",
            "text_content": [{"label": "dialogue", "speaker": "Ana", "text": "Café crème — again.", "box_2d": [520, 50, 600, 480]}],
            "characters": [{"name": "Ana", "box_2d": [600, 40, 970, 480]}],
            "faces": [],
        },
    ],
}  # fmt: skip

OLD_REPLY: dict[str, Any] = {
    "panels": [
        {
            "panel_number": 1,
            "caption": "Meanwhile…",
            "description": "Ana on a roof.",
            "speakers": [{"character": "Ana", "dialogue": "Where is he?", "speech_type": "dialogue"}],
            "key_elements": ["roof", "moon"],
            "actions": ["Ana looks around"],
        },
        {
            "panel_number": 2,
            "caption": "",
            "description": "Bob hides.",
            "speakers": [
                {"character": "Bob", "dialogue": "Shh…", "speech_type": "whisper"},
                {"character": "Bob", "dialogue": "She won't see me.", "speech_type": "thought"},
            ],
            "key_elements": ["chimney"],
            "actions": ["Bob crouches"],
        },
        {
            "panel_number": 3,
            "caption": "Later.",
            "description": "Empty roof.",
            "speakers": [],
            "key_elements": [],
            "actions": [],
        },
    ]
}  # fmt: skip


def repaired(text: str) -> tuple[Any, list[str]]:
    """(value, note codes) of `repair_json`."""
    notes: list[Note] = []
    value = repair_json(text, notes)
    assert all(n.where == "$" and n.code in REPAIR_CODES for n in notes), notes
    codes = [n.code for n in notes]
    assert len(codes) == len(set(codes)), "one note per kind of repair"
    return value, codes


def read(raw: str | bytes) -> tuple[list[PanelRecord], list[str]]:
    """The public path: bytes → `decode_bytes` → `read_panels`; (records, note codes)."""
    notes: list[Note] = []
    obj = decode_bytes(raw.encode("utf-8") if isinstance(raw, str) else raw, notes)
    records, more = read_panels(obj, page_size=PAGE)
    return records, [n.code for n in notes + more]


def clean(doc: Any = REPLY) -> list[PanelRecord]:
    return read_panels(copy.deepcopy(doc), page_size=PAGE)[0]


def pretty(doc: Any = REPLY) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


def with_text(panel: int, entry: int, text: str) -> dict[str, Any]:
    doc = copy.deepcopy(REPLY)
    doc["panels"][panel]["text_content"][entry]["text"] = text
    return doc


def unescape_quotes(text: str) -> str:
    """JSON text with every `\\"` inside its strings written as a bare `"` (as models do)."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            out.append('"' if text[i + 1] == '"' else text[i : i + 2])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_codes_have_meanings() -> None:
    assert set(REPAIR_CODES) == set(REPAIRS) and all(REPAIRS.values())
    listed = {
        "markdown_fence", "markdown_marker", "unescaped_quote", "invalid_escape", "missing_comma",
        "trailing_comma", "python_literal", "js_undefined", "non_standard_number", "extra_value",
        "truncated",
    }  # fmt: skip
    assert listed <= set(REPAIR_CODES)


# --- unescaped quotes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ('"He said "run" now"', 'He said "run" now'),
        ('"He said "hi""', 'He said "hi"'),
        ('"She yelled "STOP!", and "GO""', 'She yelled "STOP!", and "GO"'),
        ('"He said "run", "now""', 'He said "run", "now"'),
        ('""Run!" he said."', '"Run!" he said.'),
        ('"a "quoted" word: "this""', 'a "quoted" word: "this"'),
        ('"¡Qué "bueno"!"', '¡Qué "bueno"!'),
        ('"「これは "ペン" です」"', '「これは "ペン" です」'),
        ('"Wow 🎉 "party" 🎉"', 'Wow 🎉 "party" 🎉'),
        ('"Path C:\\\\temp "x""', 'Path C:\\temp "x"'),
    ],
)
def test_unescaped_quotes_inside_dialogue(written: str, meant: str) -> None:
    for layout in (
        '{{"text": {}, "speaker": "Ana"}}',
        '{{\n  "text": {},\n  "speaker": "Ana"\n}}',
        '{{"text": {}}}',
    ):
        value, codes = repaired(layout.format(written))
        assert value["text"] == meant
        assert "speaker" not in value or value["speaker"] == "Ana"
        assert codes == ["unescaped_quote"]


def test_unescaped_quotes_in_a_production_reply() -> None:
    doc = with_text(1, 0, 'He said "run", "now"')
    doc = copy.deepcopy(doc)
    doc["panels"][2]["text_content"][0]["text"] = '"Bob!" she yells. "Come "back"!"'
    doc["panels"][0]["description"] = 'A sign reads "OPEN".'
    text = "```json\n" + unescape_quotes(pretty(doc)) + "\n```"
    value, codes = repaired(text)
    assert value == doc
    assert codes == ["markdown_fence", "unescaped_quote"]
    records, codes = read(text)
    assert records == clean(doc) and "unescaped_quote" in codes


def test_meaning_preserving_text_is_left_alone() -> None:
    """Apostrophes, escaped backslashes and quotes, non-ASCII: read exactly as JSON reads them."""
    doc = with_text(0, 1, "It's Bob's \"turn\" — C:\\new\\x ¡sí! 漢字 😀")
    text = pretty(doc)[:-1] + ",}"  # one defect: a trailing comma
    value, codes = repaired(text)
    assert value == doc and codes == ["trailing_comma"]
    assert (
        value["panels"][0]["text_content"][1]["text"] == doc["panels"][0]["text_content"][1]["text"]
    )


def test_a_quote_in_a_key_needs_its_colon() -> None:
    value, _ = repaired('{"a": 1, "b": "x" "y"}')  # not a key after the space: part of the text
    assert value == {"a": 1, "b": 'x" "y'}
    with pytest.raises(DataSpecError):  # a key that never ends at ':' is not read as a cut
        repair_json('{"panels": [{"box" [1, 2, 3, 4]}, {"box": [5, 6, 7, 8]}]}', [])


@pytest.mark.parametrize(
    "text",
    [
        # the dialogue may be `He said "wait", "stop": "now"` or end at `wait`: no guess
        '{"text": "He said "wait", "stop": "now"", "speaker": "Ana"}',
        # a string would hold what reads as a key (`"EXIT":`): part of it, or a lost comma?
        '{"text": "The sign "EXIT": left", "speaker": "Ana"}',
        # read the only way that fits, a key repeats
        '{"text": "a", "speaker": "x"y", "speaker": "Bob"}',
        '{"text": "Hi", "speaker": "A"", "speaker": "B"}',
    ],
)
def test_ambiguous_quotes_raise_rather_than_guess(text: str) -> None:
    with pytest.raises(DataSpecError, match="ambiguous"):
        repair_json(text, [])


def test_odd_quotes_are_read_where_nothing_else_fits() -> None:
    value, _ = repaired('{"text": "a 12" ruler", "speaker": "Ana", "n": 1, "d": "Doc "Ock""}')
    assert value == {"text": 'a 12" ruler', "speaker": "Ana", "n": 1, "d": 'Doc "Ock"'}
    value, _ = repaired('{\n "text": "a 12" ruler",\n "more": "the 6" nail"\n}')
    assert value == {"text": 'a 12" ruler', "more": 'the 6" nail'}


def test_raw_control_characters_in_strings() -> None:
    value, codes = repaired('{"text": "line one\nline\ttwo", "n": 1,}')
    assert value == {"text": "line one\nline\ttwo", "n": 1}
    assert codes == ["control_character", "trailing_comma"]
    with pytest.raises(DataSpecError, match="runs across lines"):  # a runaway, not a cut
        repair_json('{\n  "a": "x\n  "b": 1\n}', [])


# --- the other defects ---------------------------------------------------------------------


def test_fence_not_closed() -> None:
    value, codes = repaired("```json\n" + pretty()[:-1] + ",}")
    assert value == REPLY and codes == ["markdown_fence", "trailing_comma"]
    records, codes = read("Here is the analysis:\n```json\n" + pretty())
    assert records == clean() and "markdown_fence" in codes


def test_a_fence_after_bracketed_prose_is_where_the_json_starts() -> None:
    text = "Panels [1-4] below:\n```json\n" + pretty()[:-1] + ",}\n```"
    assert repaired(text) == (REPLY, ["markdown_fence", "trailing_comma"])


def test_fence_closed_with_a_defect_inside() -> None:
    text = (
        "Sure!\n```json\n"
        + pretty().replace('"panels":', '** "panels":')
        + "\n```\nHope this helps!"
    )
    value, codes = repaired(text)
    assert value == REPLY and codes == ["markdown_fence", "markdown_marker"]
    assert read(text)[0] == clean()


@pytest.mark.parametrize(
    "written",
    [
        '** "panels":',
        '**"panels"**:',
        '__"panels"__:',
        '- "panels":',
        '> "panels":',
        '# "panels":',
        '"panels": **',
    ],
)
def test_markdown_markers_before_a_key(written: str) -> None:
    text = pretty().replace('"panels":', written, 1)
    value, codes = repaired(text)
    assert value == REPLY and codes == ["markdown_marker"]
    records, codes = read(text)
    assert records == clean() and "markdown_marker" in codes


def test_markdown_bullets_before_items() -> None:
    value, codes = repaired('{"key_elements": [\n  - "roof",\n  - "moon"\n], "n": - 1}')
    assert value == {"key_elements": ["roof", "moon"], "n": 1}
    assert codes == ["markdown_marker"]
    value, _ = repaired('{"n": -1, "m": -2.5e1}')  # a minus sign is no bullet
    assert value == {"n": -1, "m": -25.0}


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("\\'Run!\\'", "'Run!'"),
        ("\\x41", "\\x41"),
        ("\\u12 and \\u12zz", "\\u12 and \\u12zz"),
        ("\\q", "\\q"),
        ('ok \\u00e9 \\ud83d\\ude00 \\n \\/ \\\\ \\"', 'ok é 😀 \n / \\ "'),
    ],
)
def test_invalid_escapes(written: str, meant: str) -> None:
    text = pretty(with_text(0, 1, "@@")).replace("@@", written)
    value, codes = repaired(text + "\n```")  # strict JSON rejects the whole reply (the fence)
    assert value["panels"][0]["text_content"][1]["text"] == meant
    bad = (
        written.count("\\'") + written.count("\\x") + written.count("\\u12") + written.count("\\q")
    )
    assert codes == (["invalid_escape"] if bad else [])
    assert value == with_text(0, 1, meant)


def test_lone_surrogate_escape_is_kept_for_clean_str() -> None:
    value, codes = repaired('{"text": "a\\ud83d b", "x": 1,}')
    assert value == {"text": "a\ud83d b", "x": 1} and codes == ["trailing_comma"]


def test_missing_commas_between_properties_and_items() -> None:
    text = pretty()
    broken = re.sub(r'",(\s+"box_2d")', r'"\1', text)  # after a string
    broken = re.sub(r"\],(\s+\"text_content\")", r"]\1", broken)  # after a list
    broken = re.sub(r"\},(\s+\{)", r"}\1", broken)  # between items
    broken = broken.replace('"panel_number": 2,', '"panel_number": 2')  # after a number
    assert broken.count(",") < text.count(",") - 10
    value, codes = repaired(broken)
    assert value == REPLY and codes == ["missing_comma"]
    compact = json.dumps(REPLY).replace('", "box_2d"', '" "box_2d"').replace("}, {", "} {")
    assert repaired(compact) == (REPLY, ["missing_comma"])
    assert read(broken)[0] == clean()


def test_trailing_commas() -> None:
    text = apply("trailing_commas", pretty(), 0)
    assert text.count(",") > pretty().count(",") + 30
    value, codes = repaired(text)
    assert value == REPLY and codes == ["trailing_comma"]
    assert read(text)[0] == clean()


def test_python_and_javascript_literals() -> None:
    text = pretty().replace("null", "None", 1).replace("null", "undefined", 1)
    text = text.replace('"overall_summary"', '"ok": True, "empty": False, "overall_summary"')
    value, codes = repaired(text)
    assert value == {"ok": True, "empty": False, **REPLY}
    assert codes == ["python_literal", "js_undefined"]
    assert read(text)[0] == clean()
    with pytest.raises(DataSpecError, match="unknown word"):
        repair_json('{"a": nil}', [])


def test_nan_and_infinity() -> None:
    value, codes = repaired('{"a": NaN, "b": Infinity, "c": -Infinity, "d": [1, 2,]}')
    assert math.isnan(value["a"]) and value["b"] == math.inf and value["c"] == -math.inf
    assert codes == ["trailing_comma", "non_standard_number"]
    doc = copy.deepcopy(REPLY)
    doc["panels"][1]["box_2d"] = [math.nan, 540, 480, math.inf]
    text = pretty(doc)[:-1] + ",}"
    assert "NaN" in text and "Infinity" in text
    records, codes = read(text)
    assert "non_standard_number" in codes and "trailing_comma" in codes
    assert [r.box for r in records if r.index != 1] == [r.box for r in clean() if r.index != 1]


@pytest.mark.parametrize(
    "second", ['{"panels": []}', "\n\n" + json.dumps(REPLY), ',\n{"note": "done"}', "[1]"]
)
def test_a_second_value_is_dropped(second: str) -> None:
    value, codes = repaired(pretty() + second)
    assert value == REPLY and codes == ["extra_value"]
    assert read(pretty() + second)[0] == clean()


def test_prose_or_a_fence_after_the_value_needs_no_repair_note() -> None:
    assert repaired("```json\n" + pretty()[:-1] + ",}\n```\nDone.")[1] == [
        "markdown_fence",
        "trailing_comma",
    ]
    assert repaired(pretty()[:-1] + ",}\nHope this helps!")[1] == [
        "embedded_json",
        "trailing_comma",
    ]


@pytest.mark.parametrize(
    "raw", [b"", b"  \n ", b"```json\n```", b"```", b"Sorry, I can't help with that."]
)
def test_empty_or_json_free_replies_raise(raw: bytes) -> None:
    with pytest.raises(DataSpecError, match=r"empty|not valid JSON"):
        read(raw)


@pytest.mark.parametrize(
    "text",
    [
        '{"panels": [{"a": 1},, ]}',  # two commas: not a defect models write
        "{'panels': []}",  # single quotes
        '{"panels": []}}',  # unbalanced
        '"a": 1}, {"panels": []}',  # a piece of a document
        '{"a": 01}',
        '{"a": 1 2}',
        '{"a" 1}',
        '{"panels": [' + "[" * (MAX_DEPTH + 5),
    ],
)
def test_unreadable_text_raises_dataspec_error(text: str) -> None:
    with pytest.raises(DataSpecError):
        repair_json(text, [])
    with pytest.raises(DataSpecError, match="not valid JSON"):
        read(text)


def test_huge_integers_and_deep_text_never_crash() -> None:
    with pytest.raises(DataSpecError):
        repair_json('{"n": ' + "9" * 5000 + ",}", [])
    value, _ = repaired('{"n": ' + "9" * 30 + ",}")
    assert value == {"n": int("9" * 30)}
    deep = '{"panels": [], "x": ' + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + ",}"
    assert repaired(deep)[0]["panels"] == []


# --- replies cut short ---------------------------------------------------------------------


def cut_at(text: str, marker: str, offset: int = 0, nth: int = 1) -> str:
    """`text` cut `offset` characters after the `nth` occurrence of `marker` begins (-1: last)."""
    i = -1
    for _ in range(nth):
        i = text.index(marker, i + 1)
    if nth == -1:
        i = text.rindex(marker)
    return text[: i + offset]


def assert_cut(text: str, doc: Any, kept: int) -> None:
    value, codes = repaired(text)
    assert value["panels"] == doc["panels"][:kept]
    assert "truncated" in codes
    records, codes = read(text)
    assert records == clean(doc)[:kept] and "truncated" in codes


@pytest.mark.parametrize(
    ("marker", "offset", "nth", "kept"),
    [
        ('"text": "Bob! Come', 12, 1, 2),  # inside a panel's text
        ("540,", 2, 1, 1),  # inside a panel box
        ("970", 1, -1, 3),  # inside a character box of the last panel
        ('"panel_number": 3', -8, 1, 2),  # between panels, after the comma
        ('"panel_number": 3', -14, 1, 2),  # between panels, right after the closing brace
        ('"text_content"', 6, 3, 2),  # inside a key
        ('"description"', 14, 2, 1),  # after a key, before its value
        ('"Ana"', 3, 1, 0),  # inside the first panel
        ("\n  ]\n}", 4, 1, 4),  # after the panel list
    ],
)
def test_a_cut_keeps_exactly_the_panels_closed_before_it(
    marker: str, offset: int, nth: int, kept: int
) -> None:
    text = cut_at(pretty(), marker, offset, nth)
    assert_cut(text, REPLY, kept)
    assert_cut("```json\n" + text, REPLY, kept)  # inside a fence


def test_a_cut_in_the_summary_before_the_panels() -> None:
    assert repaired('{"overall_summary": "Ana and B') == ({}, ["truncated"])
    assert repaired('{"overall_summary": "abc", "panels": [') == (
        {"overall_summary": "abc", "panels": []},
        ["truncated"],
    )
    assert repaired('{"pan') == ({}, ["truncated"])
    with pytest.raises(DataSpecError, match="cut short before any panel list"):
        read('```json\n{\n  "overall_summary": "Ana and B')
    records, codes = read('{"overall_summary": "abc", "panels": [')
    assert records == [] and "truncated" in codes


def test_a_cut_in_an_old_schema_reply() -> None:
    text = cut_at(pretty(OLD_REPLY), '"She won', 5)
    assert_cut(text, OLD_REPLY, 1)
    assert_cut(cut_at(pretty(OLD_REPLY), '"Later', 0), OLD_REPLY, 2)


def test_a_cut_inside_a_wrapper_keeps_the_wrapped_panels() -> None:
    text = json.dumps({"result": REPLY})
    value, codes = repaired(cut_at(text, '"panel_number": 3', 4))
    assert value == {
        "result": {"overall_summary": REPLY["overall_summary"], "panels": REPLY["panels"][:2]}
    }
    assert codes == ["truncated"]
    value, _ = repaired(cut_at(json.dumps([REPLY]), '"panel_number": 2', 4))
    assert value == [{"overall_summary": REPLY["overall_summary"], "panels": REPLY["panels"][:1]}]
    value, _ = repaired(cut_at(json.dumps(REPLY["panels"]), '"panel_number": 2', 4))
    assert value == REPLY["panels"][:1]  # a bare list of panels


def test_the_cut_note_says_what_was_kept() -> None:
    notes: list[Note] = []
    repair_json(cut_at(pretty(), '"text": "Bob! Come', 12), notes)
    assert notes == [
        Note(
            "truncated",
            "reply cut short: 2 complete panel item(s) kept, the incomplete one dropped",
        )
    ]


@pytest.mark.parametrize(
    ("doc", "indent"), [(REPLY, 2), (REPLY, None), (OLD_REPLY, 2), ({"result": REPLY}, None)]
)
def test_every_cut_is_a_prefix_of_the_panels_or_an_error(doc: Any, indent: int | None) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=indent is None)
    full = clean(doc)
    lengths = set()
    for k in range(1, len(text)):
        try:
            records, codes = read(text[:k])
        except DataSpecError as exc:
            assert "cut short before any panel list" in str(exc), (k, text[:k])
            continue
        assert records == full[: len(records)], (k, text[:k])
        assert "truncated" in codes
        lengths.add(len(records))
    assert lengths == set(range(len(full) + 1))


# --- the property: any one defect reads as the clean reply, or raises ----------------------

LETTERS = "abcxyzABCXYZ0129 \"'\\,.!?:-éü—…漢字が😀🎉"
texts = st.text(alphabet=st.sampled_from(LETTERS), min_size=1, max_size=24)
names = st.one_of(
    st.none(), st.sampled_from(["Ana", "Bob", "O'Neil", 'Doc "Ock"', "Zoë", "ボブ"]), texts
)


@st.composite
def box_2d(draw: st.DrawFn) -> list[int]:
    y1, y2 = sorted(draw(st.lists(st.integers(0, 1000), min_size=2, max_size=2, unique=True)))
    x1, x2 = sorted(draw(st.lists(st.integers(0, 1000), min_size=2, max_size=2, unique=True)))
    return [y1, x1, y2, x2]


entries = st.fixed_dictionaries(
    {
        "label": st.sampled_from(["dialogue", "caption", "thought", "sfx"]),
        "speaker": names,
        "text": texts,
        "box_2d": box_2d(),
    }
)
panels = st.fixed_dictionaries(
    {
        "box_2d": box_2d(),
        "description": texts,
        "text_content": st.lists(entries, max_size=3),
        "characters": st.lists(
            st.fixed_dictionaries({"name": texts, "box_2d": box_2d()}), max_size=2
        ),
        "faces": st.lists(
            st.fixed_dictionaries({"character": texts, "box_2d": box_2d()}), max_size=1
        ),
    }
)


@st.composite
def replies(draw: st.DrawFn) -> dict[str, Any]:
    items = draw(st.lists(panels, min_size=1, max_size=6))
    numbered = [{"panel_number": i + 1, **p} for i, p in enumerate(items)]
    return {"overall_summary": draw(texts), "panels": numbered}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def in_strings(text: str) -> list[bool]:
    """For each index of `text` (valid JSON): whether it lies inside a string (quotes too)."""
    mask = [False] * (len(text) + 1)
    for m in _STRING.finditer(text):
        mask[m.start() : m.end()] = [True] * (m.end() - m.start())
    return mask


def sub_outside(text: str, pattern: str, repl: str) -> str:
    """`re.sub` of the matches that start outside the strings of `text`."""
    mask = in_strings(text)
    return re.sub(pattern, lambda m: m.group(0) if mask[m.start()] else m.expand(repl), text)


def drop_a_comma(text: str, pick: int, before: str) -> str:
    """`text` without one comma (outside strings) that is followed by `before` (a regex)."""
    mask = in_strings(text)
    spots = [m.start() for m in re.finditer(r",(?=\s*" + before + ")", text) if not mask[m.start()]]
    if not spots:
        return text
    i = spots[pick % len(spots)]
    return text[:i] + text[i + 1 :]


DEFECTS = [
    "unescaped_quotes",
    "trailing_commas",
    "fence",
    "fence_not_closed",
    "bold_panels_key",
    "missing_property_comma",
    "missing_item_comma",
    "python_none",
    "second_object",
    "truncated",
]


def apply(defect: str, text: str, pick: int) -> str:
    if defect == "unescaped_quotes":
        return unescape_quotes(text)
    if defect == "trailing_commas":
        return sub_outside(text, r"(?<=[^\s\[{])(\s*)(?=[}\]])", r",\1")
    if defect == "fence":
        return "```json\n" + text + "\n```"
    if defect == "fence_not_closed":
        return "```json\n" + text
    if defect == "bold_panels_key":
        return text.replace('"panels":', '** "panels":', 1)
    if defect == "missing_property_comma":
        return drop_a_comma(text, pick, '"')
    if defect == "missing_item_comma":
        return drop_a_comma(text, pick, r"[{\d]")
    if defect == "python_none":
        return sub_outside(text, r"\bnull\b", "None")
    if defect == "second_object":
        return text + "\n\n" + json.dumps({"note": "done"})
    assert defect == "truncated"
    return text[: 1 + pick % (len(text) - 1)]


@settings(
    max_examples=int(os.environ.get("DATASPEC_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    reply=replies(),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
    defect=st.sampled_from(DEFECTS),
    pick=st.integers(0, 10**6),
)
def test_one_defect_reads_as_the_clean_reply_or_raises(
    reply: dict[str, Any], indent: int | None, ascii_only: bool, defect: str, pick: int
) -> None:
    text = json.dumps(reply, indent=indent, ensure_ascii=ascii_only)
    full = clean(reply)
    broken = apply(defect, text, pick)
    try:
        records, codes = read(broken)
    except DataSpecError:
        assert defect in ("truncated", "unescaped_quotes"), (defect, broken)
        return
    if defect == "truncated":
        assert records == full[: len(records)], broken
    else:
        assert records == full, broken
        assert "truncated" not in codes, broken
