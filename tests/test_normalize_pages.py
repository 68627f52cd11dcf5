"""Page rules on real files: wrappers, panel lists, image paths, encodings, broken files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

import dataspec
from dataspec.models import Character
from dataspec.normalize import read_panels
from tests.conftest import write_image, write_json

PANEL = {"bbox": [10, 20, 300, 400], "text": {"dialogue": ["Hi"]}}


def codes(notes: list[dataspec.Note]) -> set[str]:
    return {n.code for n in notes}


@pytest.mark.parametrize(
    "key",
    [
        "panels", "VLM_panels", "vlm_panels", "panels_vlm", "panel_detections", "rcnn_panels",
        "panel_boxes", "panel_list", "detections", "boxes", "segments", "annotations", "shapes",
        "whatever_the_tool_called_it",  # any list of box-bearing dicts
    ],
)  # fmt: skip
def test_panel_list_keys(key: str) -> None:
    page, _ = dataspec.normalize({"image_path": "a.jpg", key: [PANEL]})
    assert page.boxes() == [(10, 20, 300, 400)]
    assert page.panels[0].text.dialogue == ["Hi"]


def test_panel_boxes_as_bare_lists() -> None:
    page, _ = dataspec.normalize({"image": "a.jpg", "panel_boxes": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert page.boxes() == [(1, 2, 3, 4), (5, 6, 7, 8)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"page_image_path": "/x/a.jpg", "panels": []}, "/x/a.jpg"),
        ({"image_path": "a.jpg", "panels": []}, "a.jpg"),
        ({"image": "a.jpg", "panels": []}, "a.jpg"),
        ({"IMAGE_PATH": "E:\\Comics\\a.jpg", "panels": []}, "E:\\Comics\\a.jpg"),  # kept as given
        ({"image": {"file_name": "b.png", "width": 10, "height": 20}, "panels": []}, "b.png"),
        ({"imagePath": "c.jpg", "shapes": []}, "c.jpg"),  # LabelMe
        ({"image_path": "", "image": "d.jpg", "panels": []}, "d.jpg"),  # blank → next key
    ],
)
def test_image_path_keys(doc: dict[str, Any], expected: str) -> None:
    assert dataspec.normalize(doc)[0].page_image_path == expected


@pytest.mark.parametrize(
    "doc",
    [
        {"result": {"image": "a.jpg", "panels": [PANEL]}},
        {"page": {"image": "a.jpg", "panels": [PANEL]}},
        {"data": {"image": "a.jpg", "panels": [PANEL]}},
        {"image": "a.jpg", "result": {"panels": [PANEL]}},  # image beside the wrapper
        [{"image": "a.jpg", "panels": [PANEL]}],  # one-element list
        {"response": f'```json\n{{"image": "a.jpg", "panels": [{json.dumps(PANEL)}]}}\n```'},
        {"data": [{"result": {"image": "a.jpg", "panels": [PANEL]}}]},  # nested
    ],
)
def test_wrappers(doc: Any) -> None:
    page, _notes = dataspec.normalize(doc)
    assert page.page_image_path == "a.jpg"
    assert page.boxes() == [(10, 20, 300, 400)]


def test_bare_list_of_panels_infers_image_from_file_name(tmp_path: Path) -> None:
    file = write_json(tmp_path / "Series" / "0007.json", [PANEL, {"bbox": [400, 20, 300, 400]}])
    page, notes = dataspec.load_with_notes(file)
    assert page.page_image_path == "Series/0007.jpg"
    assert len(page.panels) == 2
    assert {"bare_panel_list", "image_path_inferred"} <= codes(notes)
    assert page.source is not None and page.source.original_path == str(file)


def test_inferred_image_is_resolved_under_an_image_root(tmp_path: Path) -> None:
    image = write_image(tmp_path / "root" / "Series" / "0007.png")
    file = write_json(tmp_path / "json" / "Series" / "0007.json", {"panels": [PANEL]})
    page = dataspec.load(file, lenient=True, image_root=tmp_path / "root")
    assert page.page_image_path == str(image)
    assert page.page_size is not None and page.page_size.width == 800  # from the PNG header


def test_unresolvable_image_is_an_error_naming_the_file(tmp_path: Path) -> None:
    file = write_json(tmp_path / "p.json", {"image": "missing.jpg", "panels": []})
    with pytest.raises(dataspec.DataSpecError, match="image not found") as info:
        dataspec.load(file, lenient=True, image_root=tmp_path)
    assert info.value.file == str(file)


def test_markdown_fenced_vlm_reply_file(tmp_path: Path) -> None:
    reply = (
        "Here is the analysis:\n```json\n"
        + json.dumps({"image": "a.jpg", "panels": [PANEL]})
        + "\n```\nDone."
    )
    file = tmp_path / "reply.json"
    file.write_text(reply, encoding="utf-8")
    page, notes = dataspec.load_with_notes(file)
    assert page.boxes() == [(10, 20, 300, 400)]
    assert "markdown_fence" in codes(notes)


def test_panel_number_orders_panels_and_accepts_strings() -> None:
    doc = {
        "image": "a.jpg",
        "panels": [
            {"panel_number": "3", "bbox": [0, 800, 10, 10]},
            {"panel_number": "1", "bbox": [0, 0, 10, 10]},
            {"panel_number": 2, "bbox": [0, 400, 10, 10]},
        ],
    }
    page, notes = dataspec.normalize(doc)
    assert [b[1] for b in page.boxes()] == [0, 400, 800]
    assert "panel_number_order" in codes(notes)


@pytest.mark.parametrize(
    ("content", "encoding", "code"),
    [
        (
            '{"image": "Ça.jpg", "panels": [{"bbox": [1,2,3,4], "text": "¡Olé!"}]}',
            "utf-8-sig",
            "utf8_bom",
        ),
        (
            '{"image": "Ça.jpg", "panels": [{"bbox": [1,2,3,4], "text": "¡Olé! “quoted”"}]}',
            "cp1252",
            "encoding_cp1252",
        ),
        (
            '{"image": "Ça.jpg", "panels": [{"bbox": [1,2,3,4], "text": "¡Olé!\x81"}]}',
            "latin-1",
            "encoding_latin1",
        ),
    ],
)
def test_encodings_are_read_with_a_note(
    tmp_path: Path, content: str, encoding: str, code: str
) -> None:
    file = tmp_path / "p.json"
    file.write_bytes(content.encode(encoding))
    page, notes = dataspec.load_with_notes(file)
    assert page.page_image_path == "Ça.jpg"
    assert page.panels[0].text.dialogue[0].startswith("¡Olé!")
    assert code in codes(notes)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b'{"image": "a.jpg", "pan', "cut short before any panel list"),  # truncated
        (b"\x00\x01garbage", "not valid JSON"),
        (b'"just a string"', "not valid JSON"),
        (b"42", "expected a JSON object"),
        (b'[{"a": 1}, {"b": 2}]', "not panels"),
        (b'{"panels": []}', None),  # no image path, but a file name to infer it from
    ],
)
def test_unparseable_files_raise_dataspec_error(
    tmp_path: Path, raw: bytes, message: str | None
) -> None:
    file = tmp_path / "p.json"
    file.write_bytes(raw)
    if message is None:
        assert dataspec.load(file, lenient=True).page_image_path == f"{tmp_path.name}/p.jpg"
        return
    with pytest.raises(dataspec.DataSpecError, match=message) as info:
        dataspec.load(file, lenient=True)
    assert info.value.file == str(file)


def test_nan_file_drops_nan_panel_and_keeps_nothing_non_json(tmp_path: Path) -> None:
    doc = {
        "image": "a.jpg",
        "confidence_map": float("nan"),
        "panels": [{"bbox": [float("nan"), 0, 5, 5]}, PANEL],
    }
    file = write_json(tmp_path / "p.json", doc)
    assert b"NaN" in file.read_bytes()
    page, notes = dataspec.load_with_notes(file)
    assert page.boxes() == [(10, 20, 300, 400)]
    assert {"non_standard_number", "nan_box", "non_finite_number"} <= codes(notes)
    out = dataspec.dump(page, tmp_path / "out.json")
    assert dataspec.load(out) == page


def test_coco_single_image_file() -> None:
    doc = {
        "images": [{"id": 1, "file_name": "S/0001.jpg", "width": 800, "height": 1200}],
        "categories": [{"id": 1, "name": "panel"}, {"id": 2, "name": "face"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [10, 20, 300, 400], "score": 0.9},
            {"image_id": 1, "category_id": 2, "bbox": [30, 40, 20, 20], "score": 0.8},
        ],
    }
    page, notes = dataspec.normalize(doc)
    assert page.page_image_path == "S/0001.jpg"
    assert page.boxes() == [(10, 20, 300, 400)] and page.panels[0].score == 0.9
    assert page.page_size is not None and page.page_size.height == 1200
    assert "non_panel_annotations" in codes(notes)
    doc["images"].append({"id": 2, "file_name": "x.jpg"})
    with pytest.raises(dataspec.DataSpecError, match="2 images"):
        dataspec.normalize(doc)


def test_document_reading_order_is_remapped_after_drops() -> None:
    doc = {
        "image": "a.jpg",
        "reading_order": [3, 1, 2],  # 1-based
        "panels": [{"bbox": [0, 0, 10, 10]}, {"bbox": [0, 0, 0, 10]}, {"bbox": [50, 0, 10, 10]}],
    }
    page, notes = dataspec.normalize(doc)
    assert page.reading_order == [1, 0]
    assert {"reading_order_one_based", "reading_order_remapped", "zero_area"} <= codes(notes)
    doc["reading_order"] = [0, 0, 1]
    page, notes = dataspec.normalize(doc)
    assert page.reading_order is None and "reading_order_dropped" in codes(notes)


def test_canonical_page_normalizes_to_itself(canonical: dict[str, Any]) -> None:
    page, notes = dataspec.normalize(canonical)
    assert page == dataspec.loads(orjson.dumps(canonical))
    assert notes == []


def test_unconsumed_keys_are_kept_and_scores_checked() -> None:
    doc = {
        "image": "a.jpg",
        "model": "gemini",
        "schema_version": "0.2",
        "panels": [
            {"bbox": [1, 2, 3, 4], "confidence": "0.75", "panel_id": "p1"},
            {"bbox": [1, 2, 3, 4], "score": 7},
        ],
    }
    page, notes = dataspec.normalize(doc)
    dumped = page.to_json_dict()
    assert dumped["model"] == "gemini" and dumped["schema_version"] == "0.3"
    assert dumped["panels"][0]["score"] == 0.75 and dumped["panels"][0]["panel_id"] == "p1"
    assert "score" not in dumped["panels"][1]
    assert {"score_dropped", "schema_version"} <= codes(notes)


def test_big_integers_and_surrogates_are_made_json_safe() -> None:
    doc = json.loads(
        '{"image": "a\\ud800.jpg", "huge": 123456789012345678901234567890, "panels": []}'
    )
    page, notes = dataspec.normalize(doc)
    assert page.to_json_dict()["huge"] == "123456789012345678901234567890"
    assert dataspec.loads(dataspec.dumps(page)) == page
    assert "big_integer" in codes(notes)


def test_raw_chat_completion_and_gemini_replies() -> None:
    page_json = json.dumps({"image": "a.jpg", "panels": [PANEL]})
    chat = {
        "id": "gen-1",
        "choices": [{"message": {"role": "assistant", "content": f"```json\n{page_json}\n```"}}],
    }
    gemini = {"candidates": [{"content": {"parts": [{"text": page_json}]}}]}
    for doc in (chat, gemini, {"pages": [json.loads(page_json)]}):
        page, _ = dataspec.normalize(doc)
        assert page.page_image_path == "a.jpg" and page.boxes() == [(10, 20, 300, 400)]
    with pytest.raises(dataspec.DataSpecError, match="not panels"):
        dataspec.normalize({"pages": [json.loads(page_json), json.loads(page_json)]})


def test_deep_nesting_is_a_dataspec_error_not_a_crash(tmp_path: Path) -> None:
    # regression: 900 levels parse (orjson allows 1024) but overflowed Python's recursion
    nested = "[" * 900 + "]" * 900
    file = tmp_path / "deep.json"
    file.write_text('{"image": "a.jpg", "panels": [], "x": ' + nested + "}", "utf-8")
    with pytest.raises(dataspec.DataSpecError, match="nested too deeply") as info:
        dataspec.load(file, lenient=True)
    assert info.value.file == str(file)
    from dataspec.normalize import read_panels

    records, _ = read_panels(json.loads('{"panels": [{"text": ' + nested + "}]}"))
    assert records[0].text.is_empty()  # nested lists of nothing: no text, no crash


def test_integers_beyond_float_range_drop_their_box() -> None:
    page, notes = dataspec.normalize(
        {"image": "a.jpg", "panels": [{"bbox": [10**400, 0, 1, 1]}, PANEL]}
    )
    assert page.boxes() == [(10, 20, 300, 400)] and "nan_box" in codes(notes)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # cut short: never a piece from inside it, the whole file read as far as it goes
        (b'{"image": "a.jpg", "panels": [{"bbox": [1, 2, 3, 4]}], "meta": [', "truncated"),
        (
            b'{"image": "a.jpg", "panels": [{"bbox": [1, 2, 3, 4]}]}\nHope this helps!',
            "embedded_json",
        ),  # prose after
        (
            b'Sure! {"image": "a.jpg", "panels": [{"bbox": [1, 2, 3, 4]}]}',
            "embedded_json",
        ),  # prose before
    ],
)
def test_embedded_json_is_taken_only_from_prose(tmp_path: Path, raw: bytes, code: str) -> None:
    file = tmp_path / "reply.json"
    file.write_bytes(raw)
    page, notes = dataspec.load_with_notes(file)
    assert page.boxes() == [(1, 2, 3, 4)] and code in codes(notes)
    assert "embedded_json" not in codes(notes) or code == "embedded_json"


def test_a_file_cut_inside_its_panel_list_keeps_the_panels_before_the_cut(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_bytes(b'{"image": "a.jpg", "panels": [{"bbox": [1, 2, 3, 4]}, {"bbox": [1, 2')
    page, notes = dataspec.load_with_notes(file)
    assert page.boxes() == [(1, 2, 3, 4)] and "truncated" in codes(notes)
    file.write_bytes(b'{"image": "a.jpg", "panels": [{"bbox": [1, 2')
    page, notes = dataspec.load_with_notes(file)
    assert page.panels == [] and "truncated" in codes(notes)


def test_old_schema_key_elements_that_are_the_pages_characters_become_named_characters() -> None:
    doc = {
        "summary": {"characters": ["Batman", "Robin"], "setting": "Gotham"},
        "panels": [
            {"panel_number": 1, "description": "x", "key_elements": ["batman", "rain", "Batman"]},
            {"panel_number": 2, "description": "y", "key_elements": ["a car"]},
            {"panel_number": 3, "characters": [{"name": "Alfred"}], "key_elements": ["Robin"]},
        ],
    }
    records, notes = read_panels(doc)
    assert [r.characters for r in records] == [
        (Character(name="Batman"),),
        None,
        (Character(name="Alfred"),),  # the panel's own list wins
    ]
    assert [n.where for n in notes if n.code == "characters_from_key_elements"] == ["$.panels[0]"]
    assert "Key elements: batman; rain; Batman" in (records[0].description or "")
    # without the page's character list, key elements are only description
    del doc["summary"]
    assert read_panels(doc)[0][0].characters is None
