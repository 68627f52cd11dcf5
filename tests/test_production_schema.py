"""The user's production VLM schema read completely, and the older producer's output.

`text_content` routed by label with speaker and box kept; `characters` and `faces`; box_2d
pixels only from a known page size; `canonical_id` naming the image; additive fields that
the first published 0.3 schema and a buckets-only reader still accept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from PIL import Image

import dataspec
from dataspec.cli import main
from dataspec.normalize import normalize, read_panels

ROOT = Path(__file__).resolve().parents[1]
FIRST_PUBLISHED = ROOT / "tests" / "data" / "dataspec-0.3-first-published.schema.json"


def production_reply() -> dict[str, Any]:
    """A reply as the user's worker stores it (`canonical_id`, `model`, `usage` added)."""
    return {
        "overall_summary": "Alana looks for the crew.",
        "canonical_id": "CalibreComics_extracted/Saga/JPG4CBZ/0001",
        "model": "gemini-2.5-flash",
        "usage": {"prompt_tokens": 1290, "completion_tokens": 412},
        "processed_at": "2026-03-02T10:00:00Z",
        "panels": [
            {
                "panel_number": 1,
                "box_2d": [0, 0, 500, 1000],
                "description": "An empty street at night.",
                "text_content": [
                    {
                        "label": "caption",
                        "speaker": None,
                        "text": "Later that night…",
                        "box_2d": [10, 600, 60, 990],
                    },
                    {
                        "label": "dialogue",
                        "speaker": "Alana",
                        "text": 'He said "run"!',
                        "box_2d": [100, 50, 200, 400],
                    },
                    {"label": "thought", "speaker": "Alana", "text": "Where is everyone?"},
                ],
                "characters": [{"name": "Alana", "box_2d": [100, 100, 480, 400]}],
                "faces": [{"character": "Alana", "box_2d": [120, 150, 200, 250]}],
            },
            {
                "panel_number": 2,
                "box_2d": [500, 0, 1000, 500],
                "text_content": [
                    {
                        "label": "sfx",
                        "speaker": None,
                        "text": "KRAKOOM",
                        "box_2d": [600, 100, 700, 300],
                    },
                    {"label": "whisper", "speaker": "Marko", "text": "psst"},
                    {"label": "shout", "speaker": "Marko", "text": "¡Corre!"},
                    {"label": "narration", "text": "   "},
                    {"label": "dialogue", "text": None},
                ],
            },
            {"panel_number": 3, "box_2d": [500, 500, 1000, 1000], "text_content": []},
        ],
    }


SIZE = (1000, 1500)


def test_text_content_routed_by_label_with_speakers_and_boxes() -> None:
    page, notes = normalize(production_reply(), page_size=SIZE)
    first, second, third = page.panels
    assert first.text.dialogue == ['He said "run"!', "Where is everyone?"]
    assert first.text.narration == ["Later that night…"]
    assert second.text.dialogue == ["psst", "¡Corre!"]  # whisper and an unknown label
    assert second.text.sfx == ["KRAKOOM"]
    assert second.text.narration == []  # blank text dropped
    assert third.text.is_empty() and third.text_items is None
    assert [(t.kind, t.label, t.speaker) for t in first.text_items or []] == [
        ("narration", "caption", None),
        ("dialogue", "dialogue", "Alana"),
        ("dialogue", "thought", "Alana"),
    ]
    items = first.text_items or []
    assert items[0].box == (600, 15, 390, 75)  # [ymin, xmin, ymax, xmax] / 1000 of 1000x1500
    assert items[2].box is None
    unknown = [n for n in notes if n.code == "text_label_unknown"]
    assert [n.where for n in unknown] == ["$.panels[1].text_content[2]"]
    assert first.characters is not None and first.characters[0].name == "Alana"
    assert first.characters[0].box == (100, 150, 300, 570)
    assert first.faces is not None and first.faces[0].character == "Alana"
    assert first.faces[0].box == (150, 180, 100, 120)
    assert first.description == "An empty street at night."


def test_read_panels_keeps_text_without_a_page_size_and_never_guesses_pixels() -> None:
    records, notes = read_panels(production_reply())
    assert [r.box for r in records] == [None, None, None]
    assert records[0].text.narration == ["Later that night…"]
    assert records[0].text_items is not None and records[0].text_items[1].speaker == "Alana"
    assert all(t.box is None for t in records[0].text_items)
    assert records[0].characters is not None and records[0].characters[0].box is None
    assert any(n.code == "needs_page_size" for n in notes)
    sized, _ = read_panels(production_reply(), page_size=SIZE)
    assert sized[0].box == (0, 0, 1000, 750)


def test_older_schema_speakers_keep_their_names() -> None:
    old = {
        "panels": [
            {
                "panel_number": 1,
                "caption": "A city.",
                "speakers": [
                    {"character": "Cop", "dialogue": "NO ACTION.", "speech_type": "dialogue"},
                    {"character": "Narrator", "dialogue": "Meanwhile", "speech_type": "narration"},
                ],
            }
        ]
    }
    (record,), _ = read_panels(old)
    assert record.text.dialogue == ["NO ACTION."] and record.text.narration == ["Meanwhile"]
    assert [(t.speaker, t.label) for t in record.text_items or []] == [
        ("Cop", "dialogue"),
        ("Narrator", "narration"),
    ]
    assert record.description == "A city."


def test_new_fields_validate_against_both_schemas_and_a_buckets_only_reader(tmp_path: Path) -> None:
    page, _ = normalize(production_reply(), page_size=SIZE)
    path = dataspec.dump(page, tmp_path / "p.json")
    doc = json.loads(path.read_text("utf-8"))
    jsonschema.Draft202012Validator(dataspec.json_schema()).validate(doc)
    first_published = json.loads(FIRST_PUBLISHED.read_text("utf-8"))
    jsonschema.Draft202012Validator(first_published).validate(doc)  # 0.3 readers still accept
    # the user's own loader: panel_coords and the three buckets, nothing else
    texts = [
        [*p["text"]["dialogue"], *p["text"]["narration"], *p["text"]["sfx"]] for p in doc["panels"]
    ]
    assert texts[1] == ["psst", "¡Corre!", "KRAKOOM"]
    assert all(len(p["panel_coords"]) == 4 for p in doc["panels"])
    assert dataspec.load(path) == page  # strict round trip
    again, _ = normalize(doc)  # lenient over our own output changes nothing
    assert again.panels == page.panels


def test_strict_loader_checks_the_new_fields(tmp_path: Path) -> None:
    page, _ = normalize(production_reply(), page_size=SIZE)
    doc = page.to_json_dict()
    doc["panels"][0]["text_items"][0]["text"] = "Something else"
    with pytest.raises(dataspec.DataSpecError, match="text_items of kind 'narration'"):
        dataspec.loads(json.dumps(doc))
    doc = page.to_json_dict()
    doc["panels"][0]["faces"][0]["box"] = [900, 1400, 200, 200]
    with pytest.raises(dataspec.DataSpecError, match=r"faces\[0\].box.*outside the page"):
        dataspec.loads(json.dumps(doc))
    doc = page.to_json_dict()
    doc["panels"][0]["text_items"][0]["kind"] = "caption"
    with pytest.raises(dataspec.DataSpecError, match=r"text_items\[0\].kind"):
        dataspec.loads(json.dumps(doc))


def test_canonical_id_names_the_image(tmp_path: Path) -> None:
    root = tmp_path / "CalibreComics_extracted"
    image = root / "Saga" / "JPG4CBZ" / "0001.jpg"
    image.parent.mkdir(parents=True)
    Image.new("RGB", (1000, 1500), "white").save(image, "JPEG")
    vlm = tmp_path / "analysis" / "CalibreComics_extracted" / "Saga" / "JPG4CBZ" / "0001.json"
    vlm.parent.mkdir(parents=True)
    vlm.write_text(json.dumps(production_reply()), "utf-8")
    page, notes = dataspec.load_with_notes(vlm, image_root=root)
    assert page.page_image_path == str(image)
    assert page.page_size is not None and (page.page_size.width, page.page_size.height) == SIZE
    assert page.panels[0].panel_coords == (0, 0, 1000, 750)  # pixels from the image header
    assert page.source is not None and page.source.model_extra is not None
    assert page.source.model_extra["canonical_id"] == "CalibreComics_extracted/Saga/JPG4CBZ/0001"
    codes = {n.code for n in notes}
    assert {"image_path_from_canonical_id", "page_size_from_image"} <= codes
    unresolved, notes = dataspec.load_with_notes(vlm)
    assert unresolved.page_image_path == "CalibreComics_extracted/Saga/JPG4CBZ/0001"
    assert "image_path_inferred" not in {n.code for n in notes}


def test_older_producer_output_is_read_with_notes() -> None:
    doc = {
        "page_image_path": "/d/S/0001.jpg",
        "page_size": [800, 1200],
        "reading_order": ["0→1", "1→2"],
        "panels": [
            {"panel_coords": [0, 0, 400, 600], "confidence": 0.9},
            {"panel_coords": [400, 0, 400, 600], "confidence": 0.8},
            {"panel_coords": [0, 600, 800, 600], "confidence": 0.7},
        ],
    }
    page, notes = normalize(doc)
    assert page.reading_order == [0, 1, 2]
    assert page.page_size is not None and page.page_size.width == 800
    assert [p.score for p in page.panels] == [0.9, 0.8, 0.7]
    codes = [n.code for n in notes]
    assert "reading_order_edges" in codes and "page_size_list" in codes
    assert codes.count("score_key") == 3
    doc["reading_order"] = ["2->0", "0->1"]
    assert normalize(doc)[0].reading_order == [2, 0, 1]
    doc["reading_order"] = ["0→1", "0→2"]  # a fork is no reading order
    page, notes = normalize(doc)
    assert page.reading_order is None and "reading_order_dropped" in {n.code for n in notes}


def test_read_panels_keeps_to_the_coco_panel_category() -> None:
    coco = {
        "images": [{"id": 1, "file_name": "S/0001.jpg", "width": 800, "height": 1200}],
        "categories": [{"id": 1, "name": "panel"}, {"id": 4, "name": "text"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 400, 600], "score": 0.9},
            {"image_id": 1, "category_id": 4, "bbox": [10, 10, 50, 20], "score": 0.9},
            {"image_id": 1, "category_id": 1, "bbox": [400, 0, 400, 600], "score": 0.8},
        ],
    }
    records, notes = read_panels(coco)
    assert [r.box for r in records] == [(0, 0, 400, 600), (400, 0, 400, 600)]
    assert "non_panel_annotations" in {n.code for n in notes}


def test_ocr_results_are_text_not_panels_and_source_image_path_names_the_image() -> None:
    doc = {
        "source_image_path": "/d/S/0001.jpg",
        "text_regions": [{"bbox": [10, 10, 50, 20], "text": "HELLO"}],
        "paddleocr_results": [{"box": [[1, 1], [9, 1], [9, 9], [1, 9]], "text": "HI"}],
    }
    page, _ = normalize(doc)
    assert page.page_image_path == "/d/S/0001.jpg"
    assert page.panels == []
    assert page.model_extra is not None and page.model_extra["text_regions"][0]["text"] == "HELLO"
    with pytest.raises(dataspec.DataSpecError, match="no panel list"):
        read_panels(doc)


def test_wild_values_of_the_production_schema() -> None:
    doc = {
        "summary": {"plot": "x"},
        "panels": {
            "1": {
                "box_2d": ["0", "0", "500", "1000"],
                "text_content": [{"label": "dialogue", "text": ["A", "B"]}],
            },
            "2": {"box_2d": None, "text_content": None, "characters": None},
        },
    }
    records, notes = read_panels(doc, page_size=SIZE)
    assert records[0].box == (0, 0, 1000, 750)
    assert records[0].text.dialogue == ["A", "B"]
    assert records[1].box is None and records[1].text.is_empty()
    assert "panels_as_dict" in {n.code for n in notes}


@pytest.mark.parametrize(
    "reply",
    [
        {
            "choices": [{"message": None, "finish_reason": "stop"}],
            "usage": {"completion_tokens": 0},
        },
        {"choices": [{"message": {"role": "assistant", "content": None}}]},
        {"choices": [{"message": {"role": "assistant", "content": "  "}}]},
        {"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]},
        {"choices": []},
        {"message": None, "usage": {"completion_tokens": 0}},
        {"model": "gemini-2.5-flash", "usage": {"completion_tokens": 0}, "finish_reason": "stop"},
    ],
)
def test_empty_replies_are_a_named_error(reply: dict[str, Any]) -> None:
    with pytest.raises(dataspec.DataSpecError, match="empty reply") as info:
        read_panels(reply)
    assert info.value.code == "empty_reply"


def test_validate_lenient_fails_files_whose_every_panel_was_dropped(tmp_path: Path) -> None:
    folder = tmp_path / "vlm"
    folder.mkdir()
    (folder / "0001.json").write_text(json.dumps(production_reply()), "utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["validate", str(folder), "--lenient"])
    assert result.exit_code == 1
    assert "1 files: 0 valid, 0 invalid, 1 with every panel dropped" in result.stdout
    assert "0001.json: the document lists 3 panels; none was kept" in result.stderr
    out = tmp_path / "out"
    result = runner.invoke(
        main, ["normalize", str(folder), "--out-dir", str(out), "--page-size", "1000x1500"]
    )
    assert result.exit_code == 0, result.output
    page = dataspec.load(out / "0001.json")
    assert page.panels[1].text.sfx == ["KRAKOOM"]
    bad = runner.invoke(
        main, ["normalize", str(folder), "--out-dir", str(out), "--page-size", "wide"]
    )
    assert bad.exit_code == 2 and "WIDTHxHEIGHT" in bad.output
