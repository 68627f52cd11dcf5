"""The published JSON Schema: committed file up to date, and the same verdicts as the strict loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

import dataspec
from dataspec.schema import SCHEMA_FILE, schema_bytes

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "schemas" / SCHEMA_FILE).read_bytes()
    assert committed == schema_bytes(), "run: dataspec schema --out schemas/" + SCHEMA_FILE


def test_schema_is_valid_draft_2020_12() -> None:
    schema = dataspec.json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "reading_order is a permutation" in schema["description"]


BASE: dict[str, Any] = {
    "page_image_path": "/data/S/0001.jpg",
    "panels": [
        {
            "panel_coords": [0, 0, 100, 200],
            "text": {"dialogue": ["Hi"], "narration": [], "sfx": []},
        },
        {"panel_coords": [100, 0, 100, 200]},
    ],
    "page_size": {"width": 200, "height": 300},
}


def with_(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        target: Any = doc
        keys = [int(k) if k.isdigit() else k for k in dotted.split("__")]
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return doc


GOOD = [
    BASE,  # minimal with size
    {"page_image_path": "rel/a.jpg", "panels": []},  # no panels, relative path
    with_(schema_version="0.3"),
    with_(reading_order=[1, 0]),
    with_(panels__0__score=0),  # integer score is a number
    with_(panels__0__panel_coords=[0.0, 0, 100.0, 200]),  # integral floats are integers
    with_(panels__1__description="Two men talk."),
    with_(panels__1__character_coords=[[110, 10, 20, 40]]),
    with_(source={"coco_image_id": "E:\\C\\S\\JPG4CBZ_0001.jpg", "anything": [1, 2]}),
    with_(extra_key={"nested": None}),  # unknown keys are allowed
    with_(panels__0__text={"dialogue": ["a  b"], "sfx": ["ZAP!"]}),  # inner spaces fine
    with_(page_size=None, reading_order=None),  # explicit nulls for optional fields
]

BAD = [
    {"panels": []},  # page_image_path required
    with_(page_image_path=""),  # empty path
    with_(page_image_path=None),  # null path
    with_(schema_version="0.2"),  # other version
    with_(schema_version=0.3),  # version as a number
    with_(panels={}),  # panels not a list
    with_(panels__0__panel_coords=[0, 0, 100]),  # three numbers
    with_(panels__0__panel_coords=[0, 0, 100, 200, 5]),  # five numbers
    with_(panels__0__panel_coords=[-1, 0, 100, 200]),  # negative x
    with_(panels__0__panel_coords=[0, 0, 0, 200]),  # zero width
    with_(panels__0__panel_coords=[0, 0, 100.5, 200]),  # fractional
    with_(panels__0__panel_coords=["0", 0, 100, 200]),  # string
    with_(panels__0__panel_coords=[True, 0, 100, 200]),  # bool is not an integer
    with_(panels__0__panel_coords=None),  # null box
    with_(panels__0__text={"dialogue": [""]}),  # empty line
    with_(panels__0__text={"dialogue": [" x"]}),  # leading space
    with_(panels__0__text={"dialogue": ["x\n"]}),  # trailing newline
    with_(panels__0__text={"dialogue": [5]}),  # number line
    with_(panels__0__text={"dialogue": "Hi"}),  # string, not list
    with_(panels__0__text="Hi"),  # text not an object
    with_(panels__0__score=1.01),  # score above 1
    with_(panels__0__score=-0.1),  # score below 0
    with_(panels__0__score="0.5"),  # score as string
    with_(panels__0__description=3),  # description not a string
    with_(panels__0__character_coords=[[0, 0, 0, 1]]),  # zero-width character
    with_(page_size={"width": 0, "height": 10}),  # zero page width
    with_(page_size={"width": 10}),  # missing height
    with_(page_size=[200, 300]),  # size as a list
    with_(reading_order=[0, -1]),  # negative index
    with_(reading_order="0,1"),  # not a list
    with_(source={"coco_image_id": 1.5}),  # id neither int nor str
    with_(source="coco"),  # source not an object
]

CROSS_FIELD = [
    with_(reading_order=[0, 0]),  # repeated index
    with_(reading_order=[0]),  # not all panels
    with_(reading_order=[0, 1, 2]),  # index beyond the panels
    with_(panels__1__panel_coords=[150, 0, 100, 200]),  # beyond page width
    with_(panels__0__character_coords=[[0, 250, 10, 100]]),  # character beyond page height
]


def strict_ok(doc: Any) -> bool:
    try:
        dataspec.loads(orjson.dumps(doc))
    except dataspec.DataSpecError:
        return False
    return True


def schema_ok(doc: Any) -> bool:
    validator = jsonschema.Draft202012Validator(dataspec.json_schema())
    return validator.is_valid(json.loads(json.dumps(doc)))


@pytest.mark.parametrize("doc", GOOD)
def test_good_pages_pass_both(doc: dict[str, Any]) -> None:
    assert strict_ok(doc) and schema_ok(doc)


@pytest.mark.parametrize("doc", BAD)
def test_bad_pages_fail_both(doc: dict[str, Any]) -> None:
    assert not strict_ok(doc)
    assert not schema_ok(doc)


@pytest.mark.parametrize("doc", CROSS_FIELD)
def test_cross_field_rules_are_the_loaders_alone(doc: dict[str, Any]) -> None:
    # JSON Schema cannot compare fields; the schema's description lists these rules
    assert schema_ok(doc)
    assert not strict_ok(doc)


def test_every_dumped_page_validates_against_the_schema(tmp_path: Path) -> None:
    page, _ = dataspec.normalize(
        {
            "image": "a.jpg",
            "size": [500, 800],
            "panels": [{"box_2d": [0, 0, 500, 500], "caption": "x"}],
        }
    )
    out = dataspec.dump(page, tmp_path / "p.json")
    assert schema_ok(json.loads(out.read_text("utf-8")))
