"""Reading a COCO dict by its located `annotations` array gives what reading the whole
file gives, on every shape the search takes and every one it must give up on."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import analyzer.coco.read as coco_read
from analyzer.coco import CocoError, CocoPages, load_coco
from analyzer.coco.layout import locate
from analyzer.coco.read import _is_annotation

_ARRAYS = (
    *("offsets", "boxes", "scores", "text_offsets", "text_boxes", "text_scores"),
    *("text_categories", "char_offsets", "char_boxes", "char_scores", "sizes"),
)


def _images(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "file_name": f"S/p{i}.jpg", "width": 800, "height": 1200} for i in range(n)]


def _anns(rng: random.Random, n: int, images: int) -> list[dict[str, Any]]:
    return [
        {
            "id": k,
            "image_id": rng.randrange(images),
            "category_id": rng.choice([1, 2, 4, 7]),
            "bbox": [rng.randint(0, 700), rng.randint(0, 1100), rng.randint(5, 90), 40],
            "score": round(rng.random(), 3),
            "area": 100,
        }
        for k in range(n)
    ]


_CATS = [{"id": 1, "name": "panel"}, {"id": 2, "name": "character"}, {"id": 4, "name": "text"}]
_CATS += [{"id": 7, "name": "face", "supercategory": "[x]"}]


def _shapes(rng: random.Random) -> dict[str, tuple[str, bool]]:
    """name -> (file text, whether the search should locate the array)."""
    images, anns = _images(20), _anns(rng, 300, 20)
    plain = {"images": images, "annotations": anns, "categories": _CATS}
    return {
        "images, annotations, categories": (json.dumps(plain), True),
        "compact": (json.dumps(plain, separators=(",", ":")), True),
        "indented": (json.dumps(plain, indent=2), True),
        "annotations first": (
            json.dumps({"annotations": anns, "images": images, "categories": _CATS}),
            True,
        ),
        "annotations last": (
            json.dumps({"info": {"v": [1, 2]}, "images": images, "annotations": anns}),
            True,
        ),
        "annotations alone": (json.dumps({"annotations": anns}), True),
        "empty annotations": (json.dumps({"images": images, "annotations": []}), True),
        "one annotation": (json.dumps({"images": images, "annotations": anns[:1]}), True),
        "key text in a file name": (
            json.dumps(
                {
                    "images": [*images, {"id": 99, "file_name": '"annotations": [x.jpg'}],
                    "annotations": anns,
                }
            ),
            True,
        ),
        "key first inside info": (
            json.dumps(
                {"info": {"annotations": [{"n": 1}]}, "images": images, "annotations": anns}
            ),
            False,
        ),
        # located from the first key to the last array's end: not one array, so its
        # slices do not decode and the file is read as a whole
        "annotations twice": (
            json.dumps(plain)[:-1] + ', "annotations": ' + json.dumps(anns[:5]) + "}",
            True,
        ),
        "bad annotation last": (
            json.dumps({"images": images, "annotations": [*anns, {"image_id": 1, "bbox": "x"}]}),
            False,
        ),
        "nan in the annotations": (
            json.dumps(
                {
                    "images": images,
                    "annotations": [*anns[:50], {**anns[50], "score": "s"}, *anns[51:]],
                }
            ),
            True,
        ),
        "bom": ("\ufeff" + json.dumps(plain), True),
    }


def _same(a: CocoPages, b: CocoPages) -> None:
    for name in _ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.ids == b.ids and a.paths == b.paths and a.annotations == b.annotations
    assert (a.panel_ids, a.text_ids, a.char_ids) == (b.panel_ids, b.text_ids, b.char_ids)
    assert a.problems == b.problems


def _whole(path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> CocoPages:
    with monkeypatch.context() as m:
        m.setattr(coco_read, "locate", lambda *a: None)  # the general path: every byte
        return load_coco(path, **kw)


@pytest.mark.parametrize("chunk", [4096, 1 << 20])
def test_located_and_whole_file_reads_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    for name, (text, located) in _shapes(random.Random(5)).items():
        path = tmp_path / "p.json"
        path.write_text(text, encoding="utf-8")
        view = memoryview(path.read_bytes())
        view = view[3:] if text.startswith("\ufeff") else view
        layout = locate(view, _is_annotation, lambda n: None)
        assert (layout is not None) == located, name
        if layout is not None:
            assert bytes(view[layout.start : layout.start + 1]) == b"["
            assert bytes(view[layout.end - 1 : layout.end]) == b"]"
            assert "annotations" not in json.loads(layout.rest), name
        seen: list[int] = []
        fast = load_coco(path, chunk_bytes=chunk, progress=seen.append)
        _same(fast, _whole(path, monkeypatch, chunk_bytes=chunk))
        assert sum(seen) == path.stat().st_size, name


def test_a_located_array_that_is_not_json_is_read_as_a_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the search locates the array; the bytes inside it are broken, so the whole-file
    # read gives its own verdict (here: not JSON), as without the search
    anns = json.dumps(_anns(random.Random(1), 50, 5))
    text = '{"images": [], "annotations": ' + anns[:400] + "{{" + anns[400:] + "}"
    path = tmp_path / "p.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CocoError) as fast:
        load_coco(path, chunk_bytes=256)
    with pytest.raises(CocoError) as whole:
        _whole(path, monkeypatch, chunk_bytes=256)
    assert str(fast.value) == str(whole.value)


def test_fuzzed_dicts_read_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    located = 0
    for n in range(40):
        images = _images(rng.randint(0, 8))
        anns = _anns(rng, rng.randint(0, 60), max(1, len(images)))
        keys: list[tuple[str, Any]] = [("images", images), ("annotations", anns)]
        keys += [("categories", _CATS)] if rng.random() < 0.7 else []
        keys += [("info", {"note": rng.choice(["]", "}", '"annotations": []', "[{"])})]
        rng.shuffle(keys)
        text = json.dumps(dict(keys), indent=rng.choice([None, 1]))
        if rng.random() < 0.3:  # cut short somewhere: both reads must refuse alike
            text = text[: rng.randint(1, len(text) - 1)]
        path = tmp_path / f"f{n}.json"
        path.write_text(text, encoding="utf-8")
        located += locate(memoryview(path.read_bytes()), _is_annotation, lambda n: None) is not None
        try:
            whole = _whole(path, monkeypatch, chunk_bytes=512)
        except CocoError as exc:
            with pytest.raises(CocoError) as fast:
                load_coco(path, chunk_bytes=512)
            assert str(fast.value) == str(exc), text
            continue
        _same(load_coco(path, chunk_bytes=512), whole)
    assert located >= 20  # the search takes most of them
