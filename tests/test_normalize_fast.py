"""The fast path of `read_panels` (`dataspec.normalize.fast`) gives exactly what the general
path gives: over every fixture and generated corpus, and over fuzzed documents."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from dataspec.errors import Note
from dataspec.models import Page, Panel
from dataspec.normalize import normalize, read_panels
from dataspec.normalize.decode import decode_bytes
from dataspec.normalize.fast import read_fast
from dataspec.sample import main as sample_main

ROOT = Path(__file__).resolve().parent.parent
SIZES: tuple[tuple[int, int] | None, ...] = (None, (800, 1200), (1000, 1500), (7, 3))
OPTIONS = list(itertools.product(SIZES, (False, True)))
"""Every (page_size, caption_as_narration) the comparisons run under."""


def _shape(value: Any) -> Any:
    """A comparable picture of a result, down to types, set fields and model extras."""
    if isinstance(value, BaseModel):
        fields = {k: _shape(v) for k, v in value.__dict__.items()}
        return (type(value).__name__, sorted(value.model_fields_set), fields, value.model_extra)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            [_shape(getattr(value, f.name)) for f in dataclasses.fields(value)],
        )
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_shape(v) for v in value])
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def _outcome(run: Callable[[], tuple[list[Any], list[Note]]]) -> Any:
    try:
        return _shape(run())
    except Exception as exc:  # the general path's errors must be the fast path's too
        return ("raised", type(exc).__name__, str(exc))


def check(doc: Any, page_size: tuple[int, int] | None, caption: bool) -> bool:
    """Assert `read_panels` with and without the fast path agree; True if the fast path took it."""
    before = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS) if _dumpable(doc) else None
    general = _outcome(
        lambda: read_panels(doc, page_size=page_size, caption_as_narration=caption, fast=False)
    )
    default = _outcome(lambda: read_panels(doc, page_size=page_size, caption_as_narration=caption))
    assert default == general, (page_size, caption)
    took = read_fast(doc, page_size, caption, None) is not None
    if before is not None:
        assert orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS) == before, "input changed"
    return took


def _dumpable(doc: Any) -> bool:
    try:
        orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sample corpora from `python -m dataspec.sample`: mixed, each schema, mostly agreeing."""
    base = tmp_path_factory.mktemp("fast_corpora")
    runs = {
        "mixed": ["--pages", "60", "--seed", "0"],
        "old": ["--pages", "30", "--seed", "1", "--schema", "old"],
        "production": ["--pages", "30", "--seed", "2", "--schema", "production"],
        "agree": ["--pages", "30", "--seed", "3", "--no-disagreement", "--width", "1000"],
    }
    out = {}
    for name, args in runs.items():
        sample_main.main([str(base / name), *args], standalone_mode=False)
        out[name] = base / name
    return out


def _load(path: Path) -> Any:
    return decode_bytes(path.read_bytes(), [])


def _vlm_docs(corpora: dict[str, Path]) -> list[tuple[str, Any]]:
    return [
        (f"{name}/{p.name}", _load(p))
        for name, root in corpora.items()
        for p in sorted((root / "vlm").rglob("*.json"))
    ]


def _canonical(doc: Any, size: tuple[int, int]) -> dict[str, Any]:
    """A canonical page as the analyzer writes one from a VLM reply's boxed panels."""
    records, _ = read_panels(doc, page_size=size)
    panels = [
        Panel(panel_coords=r.box, text=r.text, score=0.5 + r.index / 100, **r.details())
        for r in records
        if r.box is not None
    ]
    page = Page(
        page_image_path="a.jpg", panels=panels, page_size={"width": size[0], "height": size[1]}
    )
    return page.to_json_dict()


def test_every_example_file_and_the_canonical_fixture(canonical: dict[str, Any]) -> None:
    docs: list[Any] = [canonical]
    for path in sorted((ROOT / "examples").rglob("*.json")):
        try:
            doc = _load(path)
        except Exception:
            continue
        docs.append(doc)
        with contextlib.suppress(Exception):
            docs.append(normalize(doc, json_path=path)[0].to_json_dict())
    took = [check(doc, size, caption) for doc in docs for size, caption in OPTIONS]
    assert any(took)


def test_every_sample_corpus_file(corpora: dict[str, Path]) -> None:
    docs = _vlm_docs(corpora)
    took = {name: [check(doc, size, cap) for size, cap in OPTIONS] for name, doc in docs}
    share = sum(map(all, took.values())) / len(took)
    assert share >= 0.95, f"the fast path took only {share:.0%} of the sample replies"
    for root in corpora.values():  # the detector's COCO file: no page of the common shapes
        coco = _load(root / "predictions.json")
        assert not any(check(coco, size, cap) for size, cap in OPTIONS[:2])


def test_canonical_pages_made_from_the_corpus(corpora: dict[str, Path]) -> None:
    pages = [
        _canonical(doc, size)
        for name, doc in _vlm_docs(corpora)
        if "canonical_id" in doc
        for size in ((800, 1200),)
    ]
    took = [check(page, size, cap) for page in pages for size, cap in OPTIONS]
    assert sum(took) / len(took) >= 0.95


# --- fuzz ------------------------------------------------------------------------------------

ODD_STRINGS = (
    "", "   ", " \t padded \n", "\x1cX\x1f", "\u00a0nbsp\u2028", "Café ✨", "日本語", "\ud800lone",
    "a\x00b", "NO ACTION.", "Bruce", "bruce ", "BRUCE",
)  # fmt: skip
ODD_LABELS = (
    "Dialogue", " thought ", "shout", "Narrator box", "sound effect", "SFX", "caption", "",
    "  ", "whisper", "sign", "thought-bubble", "Speech Bubble", None, 5, ["dialogue"],
)  # fmt: skip
ODD_VALUES: tuple[Any, ...] = (
    None, 0, -1, 1, 2.5, True, False, "x", "12", [], {}, [1, 2, 3], [[1, 2, 3, 4]], {"a": 1},
    math.nan, math.inf, 2**70, -(2**70), "  ", [None], ["a", None, 3],
)  # fmt: skip
BOXES: tuple[Any, ...] = (
    [0, 0, 1000, 1000], [10, 20, 30, 40], [100, 200, 100, 300], [500, 500, 400, 400],
    [0, 0, 0, 0], [-50, 10, 200, 300], [10, 20, 1001, 400], [10, 20, 10**7, 400],
    ["10", "20", "300", "400"], [10.5, 20.25, 300.75, 999.9], [math.nan, 0, 10, 10],
    [True, 0, 10, 10], [1, 2, 3], [1, 2, 3, 4, 5], "10, 20, 300, 400", None,
    [0.1, 0.1, 0.5, 0.5], [2**60, 0, 10, 10], [999, 999, 1000, 1000], [0, 0, 1, 1],
)  # fmt: skip
EXTRA_KEYS = (
    "bbox", "text", "dialogue", "ocr", "score", "confidence", "width", "height", "format",
    "normalized", "panel_num", "character_coords", "x", "y", "w", "h", "weird", "Text",
    "box", "caption", "summary", "page_size", "image", "reading_order", "type", "name",
    "speaker_name", "text_items", "panel_coords", "faces", "characters",
)  # fmt: skip


def _old_doc(rng: random.Random) -> dict[str, Any]:
    cast = rng.sample(["Bruce", "Jean", "Bodie", "Nadia", "Ana"], rng.randint(0, 4))
    panels = []
    for k in range(rng.randint(0, 7)):
        names = rng.sample(cast, min(len(cast), rng.randint(0, 2)))
        panels.append(
            {
                "panel_number": k + 1,
                "caption": f"Shot {k} of {' and '.join(names) or 'nobody'}.",
                "description": f"Panel {k}: the background shows an alley.",
                "speakers": [
                    {
                        "character": rng.choice([*cast, "Narrator"]),
                        "dialogue": rng.choice(["NO ACTION.", "RUN!", "Shot 0 of nobody.", "Hm."]),
                        "speech_type": rng.choice(
                            ["dialogue", "thought", "narration", "caption", "sfx"]
                        ),
                    }
                    for _ in range(rng.randint(0, 3))
                ],
                "key_elements": [*names, "alley"],
                "actions": [f"{n} runs" for n in names],
            }
        )
    return {
        "overall_summary": "Something happens.",
        "panels": panels,
        "summary": {"characters": cast, "setting": "alley", "plot": "p", "dialogue": ["RUN!"]},
    }


def _box_2d(rng: random.Random) -> list[int]:
    y, x = rng.randint(0, 900), rng.randint(0, 900)
    return [y, x, rng.randint(y + 1, 1000), rng.randint(x + 1, 1000)]


def _production_doc(rng: random.Random) -> dict[str, Any]:
    cast = ["Logan", "Izabel", "Kamala"]
    panels = []
    for k in range(rng.randint(0, 7)):
        names = rng.sample(cast, rng.randint(0, 2))
        panels.append(
            {
                "panel_number": k + 1,
                "box_2d": _box_2d(rng),
                "description": f"Close-up {k}.",
                "text_content": [
                    {
                        "label": rng.choice(["dialogue", "caption", "thought", "sfx"]),
                        "speaker": rng.choice([*cast, None]),
                        "text": rng.choice(["HEY!", "LATER.", "BOOM", "Close-up 0."]),
                        "box_2d": rng.choice([_box_2d(rng), None]),
                    }
                    for _ in range(rng.randint(0, 3))
                ],
                "characters": [{"name": n, "box_2d": _box_2d(rng)} for n in names],
                "faces": [{"character": n, "box_2d": _box_2d(rng)} for n in names],
            }
        )
    return {
        "canonical_id": "C/Series/JPG4CBZ/0001",
        "model": "gemini-2.5-flash",
        "overall_summary": "A scene.",
        "panels": panels,
        "usage": {"prompt_tokens": 1300, "completion_tokens": 400, "total_tokens": 1700},
        "processed_at": "2026-02-01T00:00:00Z",
    }


def _canonical_doc(rng: random.Random) -> dict[str, Any]:
    doc = _production_doc(rng)
    return _canonical(doc, rng.choice([(800, 1200), (1000, 1500)]))


def _containers(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, dict | list):
        out.append(value)
        for v in value.values() if isinstance(value, dict) else value:
            _containers(v, out)
    return out


def _strings(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """(container, key) of every string value."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        if isinstance(v, str):
            out.append((value, k))
        elif isinstance(v, dict | list):
            _strings(v, out)
    return out


def _mutate(rng: random.Random, doc: dict[str, Any]) -> Any:
    """One random change somewhere in `doc` (in place where it can; returns the document)."""
    panels = [p for p in doc.get("panels", []) if isinstance(p, dict)]
    op = rng.randrange(16)
    dicts = [c for c in _containers(doc, []) if isinstance(c, dict)]
    if op == 0 and dicts:  # drop a key
        d = rng.choice(dicts)
        if d:
            del d[rng.choice(list(d))]
    elif op == 1 and dicts:  # a value of the wrong type
        d = rng.choice(dicts)
        if d:
            d[rng.choice(list(d))] = copy.deepcopy(rng.choice(ODD_VALUES))
    elif op == 2 and dicts:  # an extra key
        rng.choice(dicts)[rng.choice(EXTRA_KEYS)] = copy.deepcopy(rng.choice((*ODD_VALUES, *BOXES)))
    elif op == 3:  # odd label
        entries = [
            e
            for p in panels
            for k in ("speakers", "text_content", "text_items")
            for e in p.get(k) or []
            if isinstance(e, dict)
        ]
        if entries:
            e = rng.choice(entries)
            e[rng.choice(["label", "speech_type", "kind"])] = rng.choice(ODD_LABELS)
    elif op == 4:  # whitespace, control characters, non-ascii, surrogates in a string
        spots = _strings(doc, [])
        if spots:
            c, k = rng.choice(spots)
            c[k] = rng.choice([c[k] + s for s in ODD_STRINGS] + list(ODD_STRINGS))
    elif op == 5:  # empty lists
        for p in rng.sample(panels, min(2, len(panels))):
            p[
                rng.choice(
                    ["speakers", "text_content", "characters", "faces", "key_elements", "actions"]
                )
            ] = []
    elif op == 6 and panels:  # panels as an object
        doc["panels"] = {str(i): p for i, p in enumerate(doc["panels"])}
    elif op == 7:  # a box: string numbers, huge, negative, reversed, NaN, wrong length
        holders = [d for d in dicts if "box_2d" in d or "box" in d or "panel_coords" in d]
        if holders:
            d = rng.choice(holders)
            key = next(k for k in ("box_2d", "box", "panel_coords") if k in d)
            d[key] = copy.deepcopy(rng.choice(BOXES))
    elif op == 8 and panels:  # panel numbers: duplicate, shuffled, strings, floats, big, missing
        choice = rng.randrange(6)
        for p in panels:
            n = p.get("panel_number", 1)
            n = n if isinstance(n, int) else 1
            p["panel_number"] = [1, rng.randint(1, 4), str(n), n + 0.5, 2**70, None][choice]
            if choice == 5 and rng.random() < 0.5:
                del p["panel_number"]
    elif op == 9 and len(panels) >= 2:  # a line repeated across panels and sources
        a, b = rng.sample(panels, 2)
        for p in (a, b):
            p["caption"] = "SAME LINE"
            key = "speakers" if "speakers" in p else "text_content"
            entry = {
                "speakers": {"character": "X", "dialogue": "SAME LINE", "speech_type": "narration"},
                "text_content": {"label": "caption", "text": "SAME LINE"},
            }[key]
            p.setdefault(key, []).append(entry) if isinstance(p.get(key, []), list) else None
    elif op == 10:  # the page's characters named in other cases, twice, as non-strings
        doc["summary"] = {
            "characters": rng.choice(
                [["bruce", "BRUCE", " Jean "], [1, None, "Ana"], "Bruce", ["Logan"], []]
            )
        }
        for p in panels:
            p["key_elements"] = rng.choice(
                [["Bruce", "bruce", "JEAN"], ["Logan", 3], ["Ana", None], "Bruce"]
            )
    elif op == 11:  # page-level size or format
        doc[rng.choice(["page_size", "width", "size", "bbox_format", "normalized", "image"])] = (
            rng.choice(
                [
                    {"width": 1000, "height": 1500},
                    {"width": 0, "height": 10},
                    [1000, 1500],
                    1000,
                    "xyxy",
                    True,
                    {"w": 5, "h": 5},
                    {"width": 800.0, "height": 1200},
                ]
            )
        )
    elif op == 12:  # wrappers: a result object, a one-element list, JSON text
        return rng.choice(
            [
                {"result": doc},
                [doc],
                orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode()
                if _dumpable(doc)
                else doc,
            ]
        )
    elif op == 13 and panels:  # a panel that is not an object, or an empty one
        doc["panels"].insert(
            rng.randint(0, len(doc["panels"])), rng.choice([{}, None, "panel", [10, 20, 30, 40]])
        )
    elif op == 14 and panels:  # characters and faces without names, as strings, with boxes only
        p = rng.choice(panels)
        p[rng.choice(["characters", "faces", "character_coords"])] = rng.choice(
            [
                [{"box_2d": [1, 2, 300, 400]}],
                ["Logan"],
                [{"name": "", "box_2d": None}],
                [{"character": "Logan", "box": [1, 2, 3, 4]}],
                [[10, 20, 30, 40]],
                [[0, 0, 5000, 5000]],
                [{"name": "A", "box": [1, 2, 3, 4], "box_2d": [1, 2, 3, 4]}],
            ]
        )
    elif op == 15 and panels:  # score, text_known, a canonical text dict
        p = rng.choice(panels)
        p[rng.choice(["score", "text_known", "text"])] = rng.choice(
            [
                0.5,
                1,
                0,
                1.5,
                -0.1,
                True,
                "0.9",
                math.nan,
                {"dialogue": ["A", " A "], "sfx": ["BOOM"]},
                {"dialogue": "A"},
                {"caption": ["X"]},
            ]
        )
    return doc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fuzzed_documents(seed: int) -> None:
    rng = random.Random(seed)
    makers = (_old_doc, _production_doc, _canonical_doc)
    took = fell_back = 0
    for i in range(240):
        doc: Any = makers[i % 3](rng)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            doc = _mutate(rng, doc) if isinstance(doc, dict) else doc
        for size, caption in rng.sample(OPTIONS, 3):
            if check(doc, size, caption):
                took += 1
            else:
                fell_back += 1
    assert took > 150 and fell_back > 150, (took, fell_back)  # both paths were exercised


def test_fast_false_runs_the_general_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataspec.normalize import pages

    def boom(*args: Any) -> None:
        raise AssertionError("fast path called")

    monkeypatch.setattr(pages, "read_fast", boom)
    doc = _old_doc(random.Random(5))
    read_panels(doc, fast=False)
    with pytest.raises(AssertionError):
        read_panels(doc)


def test_records_are_real_models() -> None:
    """Fast records behave as validated ones: dumps, copies, assignment, JSON."""
    doc = _production_doc(random.Random(3))
    fast_records, _ = read_panels(doc, page_size=(800, 1200))
    slow_records, _ = read_panels(doc, page_size=(800, 1200), fast=False)
    for f, s in zip(fast_records, slow_records, strict=True):
        assert f == s and f.details() == s.details()
        assert f.text.model_dump_json() == s.text.model_dump_json()
        for a, b in zip(f.text_items or (), s.text_items or (), strict=True):
            assert a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)
            assert a.model_copy() == b.model_copy()
            a.label = "changed"  # a set of fields that can grow, as pydantic's
            assert "label" in a.model_fields_set
