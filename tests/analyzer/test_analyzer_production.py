"""The user's production VLM output, read completely: `box_2d` panels in pixels from the
image header, the `canonical_id` tier over a `<canonical_id>.json` tree, `--manifest`, and
the `vlm_repairs` / `vlm_truncated` columns.

Everything is real files on disk: a COCO predictions file with the user's mangled string
image ids (`…\\Saga\\JPG4CBZ_0001.jpg` names `…\\Saga\\JPG4CBZ\\0001.jpg`), VLM JSONs in the
production schema, and JPEGs written by Pillow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from analyzer_testlib import read_csv
from conftest import Runner
from PIL import Image

import dataspec
from analyzer.manifest import ManifestError, load_manifest
from analyzer.outputs import CSV_COLUMNS
from analyzer.vlm import read_vlm

ROOT = "E:\\CalibreComics_extracted"
COLLECTION = "CalibreComics_extracted"
W, H = 400, 600


def mangled(series: str, page: int) -> str:
    """The detector's image id: the image path with its last separator turned into `_`."""
    return f"{ROOT}\\{series}\\JPG4CBZ_{page:04d}.jpg"


def canonical(series: str, page: int) -> str:
    return f"{COLLECTION}/{series}/JPG4CBZ/{page:04d}"


def production(cid: str, boxes: list[list[float]]) -> dict[str, Any]:
    """A production-schema analysis (the worker's fields included), one panel per box."""
    return {
        "overall_summary": f"page {cid}",
        "panels": [
            {
                "panel_number": i + 1,
                "box_2d": box,
                "description": f"{cid} panel {i + 1}",
                "text_content": [
                    {"label": "dialogue", "speaker": "Alana", "text": f"Line {i + 1}."}
                ],
                "characters": [{"name": "Alana", "box_2d": box}],
                "faces": [],
            }
            for i, box in enumerate(boxes)
        ],
        "canonical_id": cid,
        "model": "vlm-2026",
        "usage": {"prompt_tokens": 1200, "completion_tokens": 310},
        "processed_at": "2026-02-01T10:00:00Z",
    }


# three detections on a 400 x 600 page; the VLM sees the top one and the bottom-left one
DETS = [[0, 0, 400, 300], [0, 300, 200, 300], [200, 300, 200, 300]]
BOX_2D = [[0, 0, 500, 1000], [500, 0, 1000, 500]]  # [ymin, xmin, ymax, xmax] on 0-1000


@dataclass
class Prod:
    """A small production-style corpus under `root`."""

    root: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def image_root(self) -> Path:
        return self.root / "images"

    @property
    def vlm_dir(self) -> Path:
        return self.root / "analysis"

    @property
    def coco_path(self) -> Path:
        return self.root / "predictions.json"

    def page(
        self,
        series: str,
        page: int,
        *,
        dets: list[list[float]] = DETS,
        size: bool = True,
        image: bool = True,
        vlm: dict[str, Any] | bytes | None = None,
        image_id: str | None = None,
    ) -> str:
        """Add a page: its JPEG, its COCO record and detections, its analysis; its id."""
        image_id = image_id or mangled(series, page)
        if image:
            path = self.image_root / series / "JPG4CBZ" / f"{page:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (W, H), "white").save(path, "JPEG")
        record: dict[str, Any] = {"id": image_id, "file_name": f"JPG4CBZ\\{page:04d}.jpg"}
        if size:
            record.update(width=W, height=H)
        self.images.append(record)
        for box in dets:
            self.annotations.append(
                {
                    "id": len(self.annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": box,
                    "score": 0.9,
                }
            )
        if vlm is not None:
            self.analysis(canonical(series, page), vlm)
        return image_id

    def analysis(self, rel: str, doc: dict[str, Any] | bytes) -> Path:
        path = self.vlm_dir / f"{rel}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
        return path

    def write(self, *, bare: bool = False) -> None:
        """The predictions file: a COCO dict, or (bare) only the annotations list."""
        data: Any = self.annotations
        if not bare:
            data = {
                "images": self.images,
                "annotations": self.annotations,
                "categories": [
                    {"id": 1, "name": "panel"},
                    {"id": 2, "name": "character"},
                    {"id": 4, "name": "text"},
                    {"id": 7, "name": "face"},
                ],
            }
        self.coco_path.write_text(json.dumps(data), encoding="utf-8")

    def args(self, out: Path, *extra: str, roots: bool = True) -> list[str]:
        out.mkdir(parents=True, exist_ok=True)
        args = [
            "--coco", str(self.coco_path),
            "--vlm_dir", str(self.vlm_dir),
            "--output_csv", str(out / "analysis.csv"),
            "--no_progress",
        ]  # fmt: skip
        if roots:
            args += ["--image_roots", str(self.image_root)]
        return [*args, *extra]


@pytest.fixture
def prod(tmp_path: Path) -> Prod:
    return Prod(tmp_path / "prod")


def rows_by_id(out: Path) -> dict[str, dict[str, str]]:
    return {r["image_id"]: r for r in read_csv(out / "analysis.csv")}


def emit(out: Path, *more: str) -> list[str]:
    return [
        "--emit_dataspec_everything",
        "--dataspec_out_dir", str(out / "ds"),
        "--dataspec_list_out", str(out / "list.txt"),
        "--dataspec_debug_skips_out", str(out / "skips.csv"),
        *more,
    ]  # fmt: skip


def emitted(out: Path) -> dict[str, dataspec.Page]:
    pages = [dataspec.load(p) for p in (out / "list.txt").read_text("utf-8").splitlines()]
    return {str(p.source.coco_image_id): p for p in pages if p.source is not None}


# --- 1. box_2d in pixels -------------------------------------------------------------------


def test_box_2d_pixels_from_the_image_header(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    """No size in the COCO record: the JPEG's header gives it, for the VLM boxes (pairing
    by overlap with unequal counts) and for the page written."""
    image_id = prod.page("Saga", 1, size=False, vlm=production(canonical("Saga", 1), BOX_2D))
    prod.write()
    out = tmp_path / "out"
    result = run_cli(prod.args(out, *emit(out)))
    assert result.exit_code == 0, result.output
    row = rows_by_id(out)[image_id]
    assert (row["match_tier"], row["rcnn_panels"], row["vlm_panels"]) == ("canonical_id", "3", "2")
    page = emitted(out)[image_id]
    assert page.page_size is not None and (page.page_size.width, page.page_size.height) == (W, H)
    assert page.source is not None
    extra = page.source.model_dump()
    assert extra["pairing"] == "overlap" and extra["unpaired_detections"] == 1
    described = {p.panel_coords: p.description for p in page.panels}
    assert described == {
        (0, 0, 400, 300): f"{canonical('Saga', 1)} panel 1",  # box_2d [0, 0, 500, 1000]
        (0, 300, 200, 300): f"{canonical('Saga', 1)} panel 2",  # box_2d [500, 0, 1000, 500]
        (200, 300, 200, 300): None,
    }
    assert "vlm_repairs" not in extra and "vlm_truncated" not in extra


def test_no_size_anywhere_leaves_the_vlm_boxes_unknown(
    run_cli: Runner, prod: Prod, tmp_path: Path
) -> None:
    """No size in the record and no image: box_2d is never guessed, so the page is aligned
    by order alone, and with unequal counts and no other evidence nothing is sure."""
    image_id = prod.page(
        "Saga", 1, size=False, image=False, vlm=production(canonical("Saga", 1), BOX_2D)
    )
    prod.write()
    out = tmp_path / "out"
    result = run_cli(prod.args(out, *emit(out)))
    assert result.exit_code == 0, result.output
    assert rows_by_id(out)[image_id]["image_exists"] == "False"
    skips = {s["image_id"]: s["reason"] for s in read_csv(out / "skips.csv")}
    assert skips == {image_id: "zero_pairs"}
    kept = tmp_path / "kept"
    assert run_cli(prod.args(kept, *emit(kept, "--dataspec_keep_unpaired"))).exit_code == 0
    page = emitted(kept)[image_id]
    assert page.page_size is None
    source = page.source.model_dump() if page.source is not None else {}
    assert source["pairing"] == "order" and source["pairing_confidence"] < 0.9
    assert all(p.description is None and not p.knows_text() for p in page.panels)
    assert page.unpaired_text is not None and len(page.unpaired_text) == 2  # nothing lost
    # read directly: the panels come without boxes (dataspec notes `needs_page_size`)
    doc = prod.vlm_dir / f"{canonical('Saga', 1)}.json"
    assert [r.box for r in read_vlm(str(doc))] == [None, None]
    assert [r.box for r in read_vlm(str(doc), page_size=(W, H))] == [
        (0, 0, 400, 300),
        (0, 300, 200, 300),
    ]


# --- 2. the canonical_id tier --------------------------------------------------------------


def _tree(prod: Prod) -> dict[str, str]:
    """Pages of three series (two of them punctuation twins) with a canonical tree."""
    ids = {}
    for series, pages in (("Saga", 3), ("X-Men 01", 2), ("X Men 01", 2)):
        for page in range(1, pages + 1):
            ids[f"{series}#{page}"] = prod.page(series, page, dets=DETS[:2])
            prod.analysis(canonical(series, page), production(canonical(series, page), BOX_2D))
    return ids


@pytest.mark.parametrize("bare", [False, True], ids=["coco_dict", "bare_results_list"])
def test_canonical_id_tier_over_a_canonical_tree(
    run_cli: Runner, prod: Prod, tmp_path: Path, bare: bool
) -> None:
    ids = _tree(prod)
    # the twin "X Men 01" lacks page 2's analysis, and "X-Men 01" page 2 is not in the
    # predictions: its JSON is free, and must not go to the twin's page 2
    (prod.vlm_dir / f"{canonical('X Men 01', 2)}.json").unlink()
    gone = ids.pop("X-Men 01#2")
    prod.images = [i for i in prod.images if i["id"] != gone]
    prod.annotations = [a for a in prod.annotations if a["image_id"] != gone]
    prod.write(bare=bare)
    out = tmp_path / "out"
    result = run_cli(prod.args(out))
    assert result.exit_code == 0, result.output
    rows = rows_by_id(out)
    assert tuple(read_csv(out / "analysis.csv")[0]) == CSV_COLUMNS
    for name, image_id in ids.items():
        row = rows[image_id]
        if name == "X Men 01#2":
            assert row["vlm_json_path"] == "" and row["match_tier"] != "canonical_id", row
            continue
        series, page = name.split("#")
        cid = canonical(series, int(page))
        assert row["match_tier"] == "canonical_id", row
        assert row["vlm_key"] == cid
        assert row["vlm_json_path"] == str(prod.vlm_dir / f"{cid}.json")
        assert (row["vlm_repairs"], row["vlm_truncated"]) == ("", "False")
    assert "canonical_id 5" in result.stdout


def test_canonical_id_prefers_the_longest_tail_and_reports_the_rest(
    run_cli: Runner, prod: Prod, tmp_path: Path
) -> None:
    image_id = prod.page("Saga", 1, vlm=production(canonical("Saga", 1), BOX_2D))
    short = prod.analysis("Saga/JPG4CBZ/0001", production("Saga/JPG4CBZ/0001", BOX_2D))
    old = prod.analysis("Saga/JPG4CBZ_0001", {"panels": [{"description": "old schema"}]})
    prod.write()
    out = tmp_path / "out"
    assert run_cli(prod.args(out)).exit_code == 0
    row = rows_by_id(out)[image_id]
    assert row["match_tier"] == "canonical_id"
    assert row["vlm_json_path"] == str(prod.vlm_dir / f"{canonical('Saga', 1)}.json")
    extra = [a for a in read_csv(out / "analysis_ambiguities.csv") if a["kind"] == "extra_vlm"]
    assert len(extra) == 1 and str(short) in extra[0]["candidates"]
    assert str(old) in extra[0]["candidates"]


def test_canonical_id_ambiguities_are_never_resolved(
    run_cli: Runner, prod: Prod, tmp_path: Path
) -> None:
    # two files for one page, neither spelled as the image path is
    twice = prod.page("Saga", 4)
    one = prod.analysis(f"{COLLECTION}/saga/JPG4CBZ/0004", production("a", BOX_2D))
    two = prod.analysis(f"{COLLECTION}/SAGA/JPG4CBZ/0004", production("b", BOX_2D))
    # one file for two pages (the same path on two drives)
    e_drive = prod.page("Saga", 5, vlm=production(canonical("Saga", 5), BOX_2D))
    f_drive = prod.page("Saga", 5, image=False, image_id=mangled("Saga", 5).replace("E:", "F:"))
    prod.write()
    out = tmp_path / "out"
    result = run_cli(prod.args(out))
    assert result.exit_code == 0, result.output
    rows = rows_by_id(out)
    for image_id in (twice, e_drive, f_drive):
        assert (rows[image_id]["match_tier"], rows[image_id]["vlm_json_path"]) == ("ambiguous", "")
    amb = {(a["kind"], a["image_id"]): a for a in read_csv(out / "analysis_ambiguities.csv")}
    dup = amb[("duplicate_vlm", twice)]
    assert set(dup["candidates"].split(" | ")) == {str(one), str(two)}
    assert dup["detail"].startswith("canonical_id")
    for image_id in (e_drive, f_drive):
        assert amb[("vlm_claimed_twice", image_id)]["detail"].startswith("canonical_id")


def test_old_layout_trees_keep_their_tiers(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    """A tree mirroring the detector's ids (`Saga/JPG4CBZ_0001.json`) is no canonical tree:
    the exact and series+page tiers match it as before."""
    exact = prod.page("Saga", 1)
    prod.analysis("Saga/JPG4CBZ_0001", production("x", BOX_2D))
    respelled = prod.page("Saga", 2)
    prod.analysis("Saga/2", production("y", BOX_2D))  # no container, no zero padding
    prod.write()
    for bare in (False, True):
        prod.write(bare=bare)
        out = tmp_path / f"out{bare}"
        assert run_cli(prod.args(out)).exit_code == 0
        rows = rows_by_id(out)
        assert rows[exact]["match_tier"] == "exact"
        assert rows[respelled]["match_tier"] == "series_page"


# --- 3. the manifest -----------------------------------------------------------------------


def test_manifest_images_and_matches(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    # (a) the listed image, outside every image root, is the page's image
    listed_id = prod.page("Saga", 1, image=False, vlm=production(canonical("Saga", 1), BOX_2D))
    elsewhere = tmp_path / "elsewhere" / "Saga" / "JPG4CBZ" / "0001.jpg"
    elsewhere.parent.mkdir(parents=True)
    Image.new("RGB", (W, H), "white").save(elsewhere, "JPEG")
    # (b) the analysis lives under another name: only the manifest ties it to the page
    renamed_id = prod.page("Saga", 7)
    renamed = "Renamed/Saga (2012)/JPG4CBZ/0007"
    prod.analysis(renamed, production(renamed, BOX_2D))
    # an image the manifest lists for a page that is another page's: not used
    wrong_id = prod.page("Saga", 3, image=False, vlm=production(canonical("Saga", 3), BOX_2D))
    prod.write()
    manifest = tmp_path / "manifest.csv"
    lines = [
        "canonical_id,absolute_image_path",
        f"{canonical('Saga', 1)},{elsewhere}",
        "",
        f"{renamed},{ROOT}\\Saga\\JPG4CBZ\\0007.jpg",
        f"{canonical('Saga', 3)},{prod.image_root / 'Saga' / 'JPG4CBZ' / '0007.jpg'}",
        "only-one-field",
        f"../outside/0001,{ROOT}\\x.jpg",
        f"{COLLECTION}/Saga/JPG4CBZ/0009,",
        "",
    ]
    manifest.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8"))
    out = tmp_path / "out"
    result = run_cli(prod.args(out, "--manifest", str(manifest)))
    assert result.exit_code == 0, result.output
    rows = rows_by_id(out)
    assert rows[listed_id]["resolved_image_path"] == str(elsewhere)
    assert rows[listed_id]["match_tier"] == "canonical_id"
    assert rows[renamed_id]["match_tier"] == "canonical_id"
    assert rows[renamed_id]["vlm_json_path"] == str(prod.vlm_dir / f"{renamed}.json")
    assert rows[renamed_id]["vlm_key"] == renamed
    assert rows[renamed_id]["resolved_image_path"].endswith("0007.jpg")
    assert rows[wrong_id]["resolved_image_path"] == ""
    errors = read_csv(out / "analysis_errors.csv")
    bad = {e["where"]: e["problem"] for e in errors if e["file"] == str(manifest)}
    assert set(bad) == {"line 6", "line 7", "line 8"}, errors
    assert "field" in bad["line 6"] and ".." in bad["line 7"] and "image" in bad["line 8"]
    assert any("another page" in e["problem"] and "manifest" in e["problem"] for e in errors)
    assert "3 manifest rows" in result.stdout
    # without the manifest the renamed analysis matches nothing
    plain = tmp_path / "plain"
    assert run_cli(prod.args(plain)).exit_code == 0
    assert rows_by_id(plain)[renamed_id]["match_tier"] == "none"
    assert rows_by_id(plain)[listed_id]["resolved_image_path"] == ""


def test_manifest_paths_compare_as_paths(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    """A COCO path and a manifest path compare as paths: slashes, case, extension, and a
    drive letter against its WSL form."""
    image_id = prod.page("Saga", 2)
    cid = "Moved/Saga/JPG4CBZ/0002"
    prod.analysis(cid, production(cid, BOX_2D))
    prod.write()
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"absolute_image_path,canonical_id,extra\n/mnt/e/calibrecomics_extracted/SAGA/jpg4cbz/0002.PNG,{cid},1\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert run_cli(prod.args(out, "--manifest", str(manifest))).exit_code == 0
    assert rows_by_id(out)[image_id]["match_tier"] == "canonical_id"
    loaded = load_manifest(str(manifest))
    assert len(loaded) == 1 and not loaded.problems
    assert loaded.image_for(f"{cid}.json") == "/mnt/e/calibrecomics_extracted/SAGA/jpg4cbz/0002.PNG"


def test_unusable_manifests(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    prod.page("Saga", 1, vlm=production(canonical("Saga", 1), BOX_2D))
    prod.write()
    missing = tmp_path / "nowhere.csv"
    result = run_cli(prod.args(tmp_path / "a", "--manifest", str(missing)))
    assert result.exit_code == 1 and str(missing) in result.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("canonical_id,absolute_image_path\n\nonly-one-field\n", encoding="utf-8")
    result = run_cli(prod.args(tmp_path / "b", "--manifest", str(empty)))
    assert result.exit_code == 1 and str(empty) in result.stderr
    assert "no usable row" in result.stderr
    with pytest.raises(ManifestError, match="no usable row"):
        load_manifest(str(empty))
    no_dir = [a for a in prod.args(tmp_path / "c") if a not in ("--vlm_dir", str(prod.vlm_dir))]
    map_path = tmp_path / "map.json"
    map_path.write_text("{}", encoding="utf-8")
    result = run_cli([*no_dir, "--vlm_map", str(map_path), "--manifest", str(empty)])
    assert result.exit_code == 2 and "--vlm_dir" in result.stderr


# --- 4. repairs, truncation, empty replies -------------------------------------------------


def _reply_page(prod: Prod, page: int, raw: bytes, panels: int) -> str:
    """A page whose analysis file holds `raw`, with `panels` detections."""
    image_id = prod.page("Saga", page, dets=DETS[:panels] if panels <= 3 else DETS)
    prod.analysis(canonical("Saga", page), raw)
    return image_id


def _doc(page: int, n: int = 2) -> dict[str, Any]:
    return production(canonical("Saga", page), BOX_2D[:n])


def _columns(out: Path, image_id: str) -> tuple[str, str, str]:
    row = rows_by_id(out)[image_id]
    return row["vlm_repairs"], row["vlm_truncated"], row["is_perfect_match"]


def test_fenced_reply_and_an_empty_one(run_cli: Runner, prod: Prod, tmp_path: Path) -> None:
    fenced = _reply_page(prod, 1, b"```json\n" + json.dumps(_doc(1)).encode() + b"\n```\n", 2)
    plain = _reply_page(prod, 2, json.dumps(_doc(2)).encode(), 2)
    empty_doc = {"canonical_id": canonical("Saga", 3), "model": "vlm-2026", "message": None}
    empty_doc["usage"] = {"prompt_tokens": 1200, "completion_tokens": 0}
    empty = _reply_page(prod, 3, json.dumps(empty_doc).encode(), 2)
    prod.write()
    out = tmp_path / "out"
    result = run_cli(prod.args(out, *emit(out)))
    assert result.exit_code == 0, result.output
    assert _columns(out, fenced) == ("markdown_fence", "False", "True")
    assert _columns(out, plain) == ("", "False", "True")
    row = rows_by_id(out)[empty]
    assert (row["match_tier"], row["has_vlm_data"], row["vlm_repairs"]) == (
        "vlm_unreadable",
        "False",
        "",
    )
    errors = [e for e in read_csv(out / "analysis_errors.csv") if e["file"] == row["vlm_json_path"]]
    assert errors and errors[0]["problem"].startswith("empty reply")
    pages = emitted(out)
    assert pages[fenced].source is not None
    assert pages[fenced].source.model_dump()["vlm_repairs"] == ["markdown_fence"]
    assert "vlm_repairs" not in pages[plain].source.model_dump()  # type: ignore[union-attr]
    assert re.search(r"vlm replies: repaired 1 \(markdown_fence 1\); truncated 0; "
                     r"empty replies 1", result.stdout), result.stdout  # fmt: skip


def test_unescaped_quote_reply_is_read_and_named(
    run_cli: Runner, prod: Prod, tmp_path: Path
) -> None:
    broken = json.dumps(_doc(1)).replace("panel 1", 'panel "one" 1', 1).encode()
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    image_id = _reply_page(prod, 1, broken, 2)
    prod.write()
    out = tmp_path / "out"
    result = run_cli(prod.args(out, *emit(out)))
    assert result.exit_code == 0, result.output
    repairs, truncated, perfect = _columns(out, image_id)
    assert "unescaped_quote" in repairs.split(";") and (truncated, perfect) == ("False", "True")
    page = emitted(out)[image_id]
    assert page.source is not None
    assert "unescaped_quote" in page.source.model_dump()["vlm_repairs"]
    assert "vlm_truncated" not in page.source.model_dump()


def test_truncated_reply_is_never_a_perfect_match(
    run_cli: Runner, prod: Prod, tmp_path: Path
) -> None:
    doc = _doc(1, 2)
    doc["panels"].append(
        {"panel_number": 3, "description": "cut right " + "here " * 40, "text_content": []}
    )
    raw = json.dumps(doc)
    cut = raw[: raw.index("here here") + 7].encode()  # inside the third panel's description
    path = prod.analysis(canonical("Saga", 1), cut)
    panels = len(read_vlm(str(path)))  # as many detections as panels read: counts agree
    image_id = prod.page("Saga", 1, dets=(DETS * 2)[:panels])
    prod.write()
    out = tmp_path / "out"
    result = run_cli(
        prod.args(out, *emit(out), "--emit_json_list", "perfect", "--emit_json_list", "low_quality")
    )
    assert result.exit_code == 0, result.output
    row = rows_by_id(out)[image_id]
    assert row["rcnn_panels"] == row["vlm_panels"] == str(panels)
    repairs, truncated, perfect = _columns(out, image_id)
    assert "truncated" in repairs.split(";") and (truncated, perfect) == ("True", "False")
    assert (out / "analysis_perfect_matches.txt").read_text("utf-8") == ""
    assert str(path) in (out / "analysis_low_quality_matches.txt").read_text("utf-8")
    errors = read_csv(out / "analysis_errors.csv")
    assert any(e["file"] == str(path) and "cut short" in e["problem"] for e in errors)
    assert re.search(r"truncated 1;", result.stdout), result.stdout
    page = emitted(out).get(image_id)
    if page is not None:  # paired by overlap only (never by order)
        assert page.source is not None
        src = page.source.model_dump()
        assert src["vlm_truncated"] is True and "truncated" in src["vlm_repairs"]
        assert src["pairing"] in ("overlap", "none")
    else:
        skips = {s["image_id"]: s["reason"] for s in read_csv(out / "skips.csv")}
        assert skips[image_id] == "zero_pairs"


def test_manifest_reader_details(tmp_path: Path) -> None:
    """No header (the first two columns), cp1252, quoted fields, repeated rows."""
    path = tmp_path / "m.csv"
    rows = [
        "CalibreComics_extracted/Café/JPG4CBZ/0001,E:\\CalibreComics_extracted\\Café\\JPG4CBZ\\0001.jpg",
        '"CalibreComics_extracted/A, B/JPG4CBZ/0002","E:\\CalibreComics_extracted\\A, B\\JPG4CBZ\\0002.jpg"',
        "CalibreComics_extracted/Café/JPG4CBZ/0001,E:\\CalibreComics_extracted\\Café\\JPG4CBZ\\0001.jpg",
        "CalibreComics_extracted/Café/JPG4CBZ/0001,E:\\elsewhere\\0001.jpg",
        "C:\\absolute\\id,E:\\x\\0003.jpg",
    ]
    path.write_bytes("\n".join(rows).encode("cp1252"))
    manifest = load_manifest(str(path))
    assert len(manifest) == 2
    assert manifest.image_for("calibrecomics_extracted/café/jpg4cbz/0001.json") == (
        "E:\\CalibreComics_extracted\\Café\\JPG4CBZ\\0001.jpg"
    )
    assert (
        manifest.image_for(
            "CalibreComics_extracted/A, B/JPG4CBZ/0002.json",
        )
        is not None
    )
    assert manifest.image_for("CalibreComics_extracted/A, B/JPG4CBZ/0002.txt") is None
    assert [(p.where, "already listed" in p.problem or "absolute" in p.problem)
            for p in manifest.problems] == [("line 4", True), ("line 5", True)]  # fmt: skip


def test_mangled_ids_stand_for_real_paths() -> None:
    from analyzer.match import real_paths

    assert real_paths("E:\\R\\Saga\\JPG4CBZ_0001.jpg", from_id=True) == [
        "E:/R/Saga/JPG4CBZ/0001.jpg"
    ]
    assert real_paths("E:\\R\\savage\\working_files_image-025.jpg", from_id=True) == [
        "E:/R/savage/working/files_image-025.jpg",
        "E:/R/savage/working_files/image-025.jpg",
    ]
    assert real_paths("E:\\R\\Saga\\JPG4CBZ\\0001.jpg", from_id=True) == [
        "E:/R/Saga/JPG4CBZ/0001.jpg"
    ]
    assert real_paths("E:\\R\\Saga\\page_01.jpg", from_id=False) == ["E:/R/Saga/page_01.jpg"]


def test_manifest_module_names_exist() -> None:
    import analyzer.manifest as module

    assert module.__all__ and all(hasattr(module, name) for name in module.__all__)
