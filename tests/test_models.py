"""The strict contract: canonical pages load, violations raise DataSpecError with file + JSON path."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import dataspec
from dataspec.models import unknown_keys


def test_public_api_is_exactly_this() -> None:
    assert sorted(dataspec.__all__) == sorted(
        [
            "SPEC_VERSION", "Box", "DataSpecError", "ImageResolver", "Note", "Page", "PageSize",
            "Panel", "PanelText", "Source", "UnpairedText", "discover", "dump", "dumps", "json_schema", "load",
            "load_with_notes", "loads", "normalize", "reading_order", "windows_to_local",
        ]
    )  # fmt: skip
    for name in dataspec.__all__:
        assert hasattr(dataspec, name)


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, dataspec; print(','.join(m for m in ('torch','numpy','PIL','click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_canonical_round_trip(tmp_path: Path, canonical: dict[str, Any]) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(canonical))
    page = dataspec.load(path)
    assert page.panels[0].text.dialogue == ["Hello!"]
    assert page.panels[1].character_coords == [(450, 100, 100, 300)]
    out = dataspec.dump(page, tmp_path / "out" / "p.json")
    assert dataspec.load(out) == page
    assert json.loads(out.read_text("utf-8")) == canonical
    # deterministic bytes, written atomically (no temp files left behind)
    first = out.read_bytes()
    dataspec.dump(dataspec.load(out), out)
    assert out.read_bytes() == first
    assert [p.name for p in out.parent.iterdir()] == ["p.json"]


def test_schema_version_absent_means_03_and_is_always_written(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    del canonical["schema_version"]
    page = dataspec.loads(orjson.dumps(canonical))
    assert page.schema_version == "0.3"
    assert orjson.loads(dataspec.dumps(page))["schema_version"] == "0.3"


def test_unknown_keys_survive_and_can_be_flagged(canonical: dict[str, Any]) -> None:
    canonical["detector"] = {"name": "rcnn", "version": 3}
    canonical["panels"][0]["area"] = 123
    canonical["panels"][0]["text"]["thought"] = ["hmm"]
    page = dataspec.loads(orjson.dumps(canonical))
    again = orjson.loads(dataspec.dumps(page))
    assert again["detector"] == {"name": "rcnn", "version": 3}
    assert again["panels"][0]["area"] == 123
    assert again["panels"][0]["text"]["thought"] == ["hmm"]
    assert unknown_keys(page) == ["$.detector", "$.panels[0].area", "$.panels[0].text.thought"]


def _mutate(canonical: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(canonical)
    target: Any = doc
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()

BAD = [
    # (dotted path to change, new value, JSON path expected in the message)
    ("page_image_path", _DELETE, "$.page_image_path"),  # required
    ("page_image_path", "", "$.page_image_path"),  # empty path
    ("page_image_path", 5, "$.page_image_path"),  # not a string
    ("schema_version", "0.2", "$.schema_version"),  # other versions are not this contract
    ("panels.0.panel_coords", [1, 2, 3], "$.panels[0].panel_coords[3]"),  # three numbers
    ("panels.0.panel_coords", [-1, 2, 3, 4], "$.panels[0].panel_coords[0]"),  # negative x
    ("panels.0.panel_coords", [1, 2, 0, 4], "$.panels[0].panel_coords[2]"),  # zero width
    ("panels.0.panel_coords", [1, 2, 3.5, 4], "$.panels[0].panel_coords[2]"),  # fractional
    ("panels.0.panel_coords", ["1", 2, 3, 4], "$.panels[0].panel_coords[0]"),  # string number
    ("panels.0.panel_coords", [True, 2, 3, 4], "$.panels[0].panel_coords[0]"),  # bool
    ("panels.0.text.dialogue", [""], "$.panels[0].text.dialogue[0]"),  # empty line
    ("panels.0.text.dialogue", [" padded "], "$.panels[0].text.dialogue[0]"),  # not stripped
    ("panels.0.text.dialogue", "Hello", "$.panels[0].text.dialogue"),  # not a list
    ("panels.0.score", 1.5, "$.panels[0].score"),  # score beyond 1
    ("panels.0.text", ["Hello"], "$.panels[0].text"),  # text must be an object
    ("page_size.width", 0, "$.page_size.width"),  # empty page
    ("reading_order", [0, 0], "$"),  # not a permutation
    ("reading_order", [0, 1, 2], "$"),  # too many indices
    ("panels.1.panel_coords", [410, 20, 400, 500], "$"),  # beyond page width 800
    ("panels", {"0": {}}, "$.panels"),  # panels must be a list
]


@pytest.mark.parametrize(("path", "value", "where"), BAD)
def test_strict_violations_name_file_and_json_path(
    tmp_path: Path, canonical: dict[str, Any], path: str, value: Any, where: str
) -> None:
    file = tmp_path / "bad.json"
    file.write_bytes(orjson.dumps(_mutate(canonical, path, value)))
    with pytest.raises(dataspec.DataSpecError) as info:
        dataspec.load(file)
    assert str(file) in str(info.value)
    assert info.value.where == where
    assert f"{file}: {where}: " in str(info.value)


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "Invalid JSON"),  # empty file
        (b'{"page_image_path": "a.jpg", "panels": [', "EOF"),  # truncated
        (b'{"page_image_path": "a.jpg", "x": NaN}', "NaN"),  # NaN literal
        (b"[1, 2]", "should be an object"),  # not an object
    ],
)
def test_strict_rejects_unparseable(tmp_path: Path, raw: bytes, needle: str) -> None:
    file = tmp_path / "bad.json"
    file.write_bytes(raw)
    with pytest.raises(dataspec.DataSpecError, match=needle) as info:
        dataspec.load(file)
    assert info.value.file == str(file)


def test_strict_accepts_integral_floats_like_json_schema(canonical: dict[str, Any]) -> None:
    canonical["panels"][0]["panel_coords"] = [10.0, 20.0, 380.0, 500.0]
    assert dataspec.loads(orjson.dumps(canonical)).panels[0].panel_coords == (10, 20, 380, 500)


def test_missing_file_is_a_dataspec_error(tmp_path: Path) -> None:
    with pytest.raises(dataspec.DataSpecError, match="cannot read"):
        dataspec.load(tmp_path / "nope.json")


def test_strict_load_with_page_size_and_image_root(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    from tests.conftest import write_image

    image = write_image(tmp_path / "root" / "Series" / "JPG4CBZ" / "0001.jpg")
    del canonical["page_size"]
    canonical["page_image_path"] = "Series/JPG4CBZ/0001.jpg"
    file = tmp_path / "p.json"
    file.write_bytes(orjson.dumps(canonical))
    page = dataspec.load(file, image_root=tmp_path / "root")
    assert page.page_image_path == str(image)
    with pytest.raises(dataspec.DataSpecError, match="outside the page"):
        dataspec.load(file, page_size=(500, 500))


def test_page_order_falls_back_to_layout(canonical: dict[str, Any]) -> None:
    canonical["reading_order"] = [1, 0]
    page = dataspec.loads(orjson.dumps(canonical))
    assert page.order() == [1, 0]
    del canonical["reading_order"]
    assert dataspec.loads(orjson.dumps(canonical)).order() == [0, 1]
    assert dataspec.loads(orjson.dumps(canonical)).order(rtl=True) == [1, 0]


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("character_coords", [[0, 0, 5, 5], [90, 0, 20, 5]], "character_coords[1]"),
        ("characters", [{"name": "A", "box": [0, 95, 5, 10]}], "characters[0].box"),
        ("faces", [{"character": "A"}, {"character": "B", "box": [99, 0, 2, 2]}], "faces[1].box"),
    ],
)
def test_a_box_past_the_page_is_named_by_its_path(field: str, value: Any, where: str) -> None:
    """The first box besides panel_coords that reaches past the page is named in the error,
    with its path and box; boxes inside it pass."""
    page = {
        "page_image_path": "a.jpg",
        "page_size": {"width": 100, "height": 100},
        "panels": [{"panel_coords": [0, 0, 100, 100], field: value}],
    }
    box = [b for b in (v.get("box") if isinstance(v, dict) else v for v in value) if b][-1]
    message = f"panels[0].{where}: box {box} lies outside the page 100x100"
    with pytest.raises(dataspec.DataSpecError, match=re.escape(message)):
        dataspec.loads(orjson.dumps(page))
    page["page_size"] = {"width": 200, "height": 200}
    assert dataspec.loads(orjson.dumps(page)).panels[0].box_outside(200, 200) is None


def test_text_must_be_the_text_items_by_kind() -> None:
    """`text` is exactly the texts of `text_items`, kind by kind and in order, on panels and
    on unpaired text; the error names where and which kind."""
    items = [
        {"text": "Run!", "kind": "dialogue"},
        {"text": "Later.", "kind": "narration"},
        {"text": "Now!", "kind": "dialogue"},
    ]
    good = {"dialogue": ["Run!", "Now!"], "narration": ["Later."]}
    page: dict[str, Any] = {
        "page_image_path": "a.jpg",
        "panels": [
            {"panel_coords": [0, 0, 5, 5]},
            {"panel_coords": [5, 0, 5, 5], "text": good, "text_items": items},
        ],
        "unpaired_text": [{"vlm_panel": 2, "text": good, "text_items": items}],
    }
    assert dataspec.loads(orjson.dumps(page)).panels[1].text.dialogue == ["Run!", "Now!"]
    for where, key in (("panels[1]", "panels"), ("unpaired_text[0]", "unpaired_text")):
        bad = copy.deepcopy(page)
        target = bad[key][-1 if key == "panels" else 0]
        target["text"] = {"dialogue": ["Now!", "Run!"], "narration": ["Later."]}
        message = f"{where}: text.dialogue is not the text_items of kind 'dialogue'"
        with pytest.raises(dataspec.DataSpecError, match=re.escape(message)):
            dataspec.loads(orjson.dumps(bad))
        target["text"] = {"dialogue": ["Run!", "Now!"]}
        with pytest.raises(dataspec.DataSpecError, match=re.escape("text.narration is not")):
            dataspec.loads(orjson.dumps(bad))


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ('"panels": [{"panel_coords": [0, 0, 5, 5], "x": [1, {"y": 99999999999999999999}]}]',
         "$.panels[0].x[1].y"),
        ('"panels": [{"panel_coords": [0, 0, 5, 5], "faces": [{"character": "A"}, '
         '{"character": "B", "n": -99999999999999999999}]}]', "$.panels[0].faces[1].n"),
        ('"panels": [], "unpaired_text": [{"vlm_panel": 0, "text": {"dialogue": ["a"]}, '
         '"text_items": [{"text": "a", "kind": "dialogue", "k": [18446744073709551616]}]}]',
         "$.unpaired_text[0].text_items[0].k[0]"),
    ],
)  # fmt: skip
def test_unknown_keys_with_integers_beyond_64_bits_are_refused_by_path(
    extra: str, where: str
) -> None:
    """An integer no 64-bit reader can hold, at any depth of an unknown key, is refused with
    its JSON path; the same page with a 64-bit integer there loads."""
    raw = f'{{"page_image_path": "a.jpg", "schema_version": "0.3", {extra}}}'
    with pytest.raises(dataspec.DataSpecError, match="not portable JSON") as info:
        dataspec.loads(raw)
    assert info.value.where == where
    fine = re.sub(r"-?\d{19,}", "9223372036854775807", raw)
    assert dataspec.loads(fine).page_image_path == "a.jpg"
