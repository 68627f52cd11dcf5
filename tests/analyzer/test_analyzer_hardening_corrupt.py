"""A corpus of bad inputs through the runbook's step 2: the run finishes, each bad input is
named (file + problem) in the errors CSV, the skip log or the analysis CSV, the counts add
up, and every file written passes dataspec's strict load.

The corpus is the generated one with copies damaged in place: VLM JSONs (invalid, empty,
truncated, BOM, cp1252, NaN/Infinity, huge numbers, 5000 levels deep, tens of MB, a list,
strings for numbers, zero panels, ...), the predictions file (annotations for unknown
images, images without annotations, string/NaN/negative/out-of-page boxes, string scores)
and the image root (not an image, a truncated JPEG, a decompression-bomb header, a
symlink loop, a FIFO, an unreadable file).
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from analyzer_testlib import coco, read_csv, truth, write_coco
from click.testing import Result

import dataspec
from analyzer.coco import CocoError, load_coco
from analyzer.images import MAX_IMAGE_PIXELS, image_problem
from analyzer.problems import Problem
from analyzer.vlm import VLM_MAX_BYTES, read_vlm, scan_vlm_dir
from dataspec.sample import SampleCorpus

DEEP = 5000
LARGE_BYTES = 24 * 1024 * 1024


def png_header(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG that claims `width` x `height` pixels (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


Make = Callable[[dict[str, Any], bytes], bytes | None]
"""New bytes for a VLM JSON from its parsed content and its bytes (None: leave it)."""


@dataclass
class Expect:
    """What one damaged page must show: its CSV tier, skip reason and/or an error row."""

    name: str
    image: str
    """Image path relative to images/ (the truth key)."""
    tier: str | None = None
    reasons: tuple[str, ...] = ()
    """Allowed skip-log reasons ('emitted' when the page may be written)."""
    error_file: str | None = None
    error: str | None = None
    """A regex the errors CSV row for `error_file` must match."""
    check: Callable[[dataspec.Page], None] | None = None


@dataclass
class Bad:
    corpus: SampleCorpus
    expects: list[Expect] = field(default_factory=list)
    coco_errors: list[tuple[str, str]] = field(default_factory=list)
    """(where, regex) rows expected for the predictions file."""
    ghost_ids: list[str] = field(default_factory=list)


def _vlm_text(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def _has_cafe(page: dataspec.Page) -> None:
    lines = [line for p in page.panels for line in p.text.dialogue]
    assert any("Café crème — now!" in line for line in lines), lines


def _written_when_intact(corpus: SampleCorpus) -> set[str]:
    """Images whose panel detections (score >= 0.5) and VLM panels are as many: pairing by
    order writes them when nothing is damaged."""
    dets: dict[str, int] = {}
    for ann in coco(corpus)["annotations"]:
        if ann["category_id"] == 1 and ann["score"] >= 0.5:
            dets[ann["image_id"]] = dets.get(ann["image_id"], 0) + 1
    out = set()
    for rec in truth(corpus).values():
        panels = _vlm_text(corpus.vlm_dir / rec["vlm_json"])["panels"]
        if dets.get(rec["coco_image_id"], 0) == len(panels) > 1:
            out.add(rec["image"])
    return out


def damage(corpus: SampleCorpus, *, nan_literals: bool) -> Bad:
    """Damage a copy of the generated corpus in place; returns what each damage must show."""
    bad = Bad(corpus)
    recs = sorted(truth(corpus).values(), key=lambda r: r["image"])
    intact = _written_when_intact(corpus)
    written = [r for r in recs if r["image"] in intact]
    others = [r for r in recs if r["image"] not in intact]
    read = ("emitted",)  # readable despite the damage: written, strict

    def pick(reasons: tuple[str, ...]) -> dict[str, Any]:
        """A page not damaged yet; one written when intact if the damage must be read."""
        return (others if others and reasons != read else written).pop(0)

    def vlm_case(
        name: str,
        make: Make,
        *,
        tier: str | None = "vlm_unreadable",
        reasons: tuple[str, ...] = (),
        error: str | None = None,
        check: Callable[[dataspec.Page], None] | None = None,
    ) -> Path:
        rec = pick(reasons)
        path = corpus.vlm_dir / rec["vlm_json"]
        raw = path.read_bytes()
        data = make(json.loads(raw), raw)
        if data is not None:
            path.write_bytes(data)
        bad.expects.append(
            Expect(name, rec["image"], tier, reasons, str(path) if error else None, error, check)
        )
        return path

    def cp1252(doc: dict[str, Any], _: bytes) -> bytes:
        doc["panels"][0]["speakers"] = [{"character": "Ana", "dialogue": "Café crème — now!"}]
        return json.dumps(doc, ensure_ascii=False).encode("cp1252")

    def literals(old: str, new: str) -> Make:
        def make(_: dict[str, Any], raw: bytes) -> bytes:
            text = raw.decode("utf-8")
            assert old in text
            return text.replace(old, new).encode()

        return make

    def huge_int(doc: dict[str, Any], _: bytes) -> bytes:
        doc["panels"][0]["bbox"] = [10**30, 0, 10, 10]
        doc["panels"][1]["bbox"] = [0, 0, 10**400, 10]
        return json.dumps(doc).encode()

    def deep(doc: dict[str, Any], _: bytes) -> bytes:
        return (json.dumps(doc)[:-1] + ', "deep": ' + "[" * DEEP + "]" * DEEP + "}").encode()

    def large(doc: dict[str, Any], _: bytes) -> bytes:
        doc["padding"] = "x" * LARGE_BYTES
        return json.dumps(doc).encode()

    def strings(doc: dict[str, Any], _: bytes) -> bytes:
        for panel in doc["panels"]:
            panel["panel_number"] = str(panel["panel_number"])
            panel["bbox"] = ["10", "20", "abc", None]
        return json.dumps(doc).encode()

    def const(data: bytes | None) -> Make:
        return lambda _doc, _raw: data

    vlm_case("invalid", const(b'{"panels": [{"a": 1},, ]}'), error=r"not valid JSON")
    vlm_case("empty", const(b""), error=r"empty file")
    # cut in half: read as far as it goes (dataspec's repair, `truncated`) or unreadable;
    # named either way
    half = lambda _, raw: raw[: len(raw) // 2]  # noqa: E731
    vlm_case("truncated", half, tier=None, error=r"not valid JSON|cut short")

    def cut_after_panels(doc: dict[str, Any], _: bytes) -> bytes:
        return json.dumps({"panels": doc["panels"], "meta": [1, 2]}).encode()[:-4]

    # the cut falls after the panel list: a lenient reader may take that list; named either way
    vlm_case(
        "truncated_after_panels",
        cut_after_panels,
        tier=None,
        error=r"not valid JSON|surrounding|cut short|not panels",
    )
    vlm_case("bom", lambda _, raw: b"\xef\xbb\xbf" + raw, tier="map", reasons=read)
    # a reply wrapped in prose is read, and named (it might be a file cut short)
    prose = lambda _, raw: b"Here is the analysis:\n" + raw + b"\nHope this helps!"  # noqa: E731
    vlm_case("prose", prose, tier="map", reasons=read, error=r"surrounding prose")
    vlm_case("cp1252", cp1252, tier="map", reasons=read, check=_has_cafe)
    nan = literals('"panel_number": 1,', '"panel_number": NaN, "z": -Infinity,')
    vlm_case("nan_infinity", nan, tier="map", reasons=read)
    huge = literals('"panel_number": 1,', '"panel_number": 1e400, "n": -1e999,')
    vlm_case("huge_float", huge, tier="map", reasons=read)
    # read, or unreadable with a named reason (either way named, never a crash)
    vlm_case("huge_int", huge_int, tier=None, error=r".")
    vlm_case("deep", deep, error=r"not valid JSON|too deep|nested")
    vlm_case("large", large, tier="map", reasons=read)
    vlm_case("top_list", lambda doc, _: json.dumps(doc["panels"]).encode(), tier=None, error=".")
    vlm_case("strings_for_numbers", strings, tier="map", reasons=read)
    vlm_case("zero_panels", const(b'{"panels": []}'), tier="map", reasons=("zero_pairs",))
    vlm_case("null", const(b"null"), error=r"no panel list|JSON object")
    vlm_case("number", const(b"42"), error=r"no panel list|JSON object")
    vlm_case("binary", const(bytes(range(256)) * 4), error=r"not valid JSON")
    sparse = vlm_case("oversized", const(None), error=r"larger than")
    with open(sparse, "r+b") as fh:
        fh.truncate(VLM_MAX_BYTES + 1)  # a sparse file: nothing is written to disk

    # the predictions file
    data = coco(corpus)

    def anns_of(image_id: str) -> list[dict[str, Any]]:
        return [a for a in data["annotations"] if a["image_id"] == image_id]

    def page_case(name: str, reasons: tuple[str, ...]) -> list[dict[str, Any]]:
        rec = pick(reasons)
        bad.expects.append(Expect(name, rec["image"], "map", reasons))
        return anns_of(rec["coco_image_id"])

    gone = {id(a) for a in page_case("no_annotations", ("no_detections",))}
    data["annotations"] = [a for a in data["annotations"] if id(a) not in gone]
    for ann in page_case("all_boxes_out_of_page", ("no_dets_after_threshold",)):
        ann["bbox"] = [5000.0, 9000.0, 100.0, 100.0]
    for ann in page_case("all_boxes_negative", ("no_dets_after_threshold",)):
        ann["bbox"] = [-900.0, -900.0, 50.0, 50.0]
    odd: list[tuple[str, Any, str]] = [
        ("bbox", ["1", "2", "3", "4"], r"bbox .* not 4 finite numbers"),
        ("bbox", [1.0, 2.0, 3.0], r"bbox .* not 4 finite numbers"),
        ("score", "0.99", r"score '0\.99' is not a finite number"),
        ("category_id", "1", r"category_id '1' is not an integer"),
    ]
    if nan_literals:
        odd.append(("bbox", "NAN", r"bbox .* not 4 finite numbers"))
        odd.append(("score", "INF", r"score .* not a finite number"))
    first = page_case("odd_annotations", read)[0]  # the page keeps its good detections
    marked = [{**first, key: value, "id": 10**6 + n} for n, (key, value, _) in enumerate(odd)]
    data["annotations"] += marked
    ghost = "E:\\CalibreComics_extracted\\Ghost Series\\JPG4CBZ_0001.jpg"
    data["annotations"].append(
        {"id": 2 * 10**6, "image_id": ghost, "category_id": 1, "bbox": [1, 2, 3, 4]}
    )
    lonely = "E:\\CalibreComics_extracted\\Lonely\\JPG4CBZ_0009.jpg"
    data["images"].append({"id": lonely, "file_name": "JPG4CBZ\\0009.jpg"})
    bad.ghost_ids += [ghost, lonely]
    position = {id(a): i for i, a in enumerate(data["annotations"])}
    for (_, _, why), ann in zip(odd, marked, strict=False):
        bad.coco_errors.append((f"annotations[{position[id(ann)]}]", why))
    bad.coco_errors.append((f"annotations[{len(data['annotations']) - 1}]", r"not in `images`"))
    if nan_literals:
        text = json.dumps(data)
        text = text.replace('"NAN"', "NaN").replace('"INF"', "Infinity")
        corpus.coco_path.write_text(text, encoding="utf-8")
    else:
        write_coco(corpus, data)

    # the image root
    def image_case(name: str, reasons: tuple[str, ...], error: str | None) -> Path:
        rec = pick(read if name == "unreadable" else reasons)
        path = corpus.images_dir / rec["image"]
        bad.expects.append(Expect(name, rec["image"], "map", reasons, str(path), error))
        return path

    image_case("not_an_image", ("bad_image",), r"not an image").write_bytes(b"<html>404</html>")
    path = image_case("truncated_jpeg", ("bad_image",), r"truncated")
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    bomb = image_case("decompression_bomb", ("bad_image",), r"100000x100000")
    bomb.write_bytes(png_header(100_000, 100_000))
    # a hit that is no file is not used; nor is another series' page the resolver may offer
    # instead (the error row then names that file and this page's image path)
    not_file = r"symbolic links|not a regular file|another page"
    loop = image_case("symlink_loop", ("missing_image",), not_file)
    loop.unlink()
    os.symlink(loop.name, loop)
    fifo = image_case("fifo", ("missing_image",), not_file)
    fifo.unlink()
    os.mkfifo(fifo)
    locked = image_case("unreadable", ("bad_image",), r"cannot read")
    locked.chmod(0)
    if os.access(locked, os.R_OK):  # root reads it anyway: then it is a good page
        bad.expects[-1].reasons, bad.expects[-1].error = read, None
        bad.expects[-1].error_file = None
    os.symlink(".", corpus.images_dir / recs[0]["image"].split("/")[0] / "loop")
    os.symlink("..", corpus.vlm_dir / recs[0]["vlm_json"].split("/")[0] / "up")
    return bad


STEP2 = [
    "--num_workers",
    "8",
    "--require_image_exists",
    "--min_text_coverage",
    "0.6",
    "--emit_dataspec_everything",
    "--dataspec_min_det_score",
    "0.5",
    "--dataspec_min_pair_confidence",  # this test is about reading bad files, not pairing:
    "0",  # every aligned pair's text is written, so decoded text can be checked on panels
    "--dataspec_naming",
    "preserve_tree",
    "--no_progress",
]


def vlm_map(corpus: SampleCorpus, path: Path) -> Path:
    """The runbook's --vlm_map: Windows image paths → Windows VLM paths, every page."""
    mapping = {
        f"E:\\CalibreComics_extracted\\{Path(r['image']).parent.as_posix().replace('/', chr(92))}"
        f"\\{Path(r['image']).name}": f"E:\\CalibreComics_analysis\\{r['vlm_json'].replace('/', chr(92))}"
        for r in truth(corpus).values()
    }
    path.write_text(json.dumps(mapping), encoding="utf-8")
    return path


def _step2(run_cli: Callable[[list[str]], Result], corpus: SampleCorpus, out: Path) -> Result:
    """The runbook's step 2 (its flags, this corpus's paths)."""
    out.mkdir(parents=True, exist_ok=True)
    return run_cli(
        [
            "--coco",
            str(corpus.coco_path),
            "--vlm_dir",
            str(corpus.vlm_dir),
            "--vlm_map",
            str(vlm_map(corpus, out / "all_vlm_jsons_calibre_training_map.json")),
            "--output_csv",
            str(out / "analysis.csv"),
            "--image_roots",
            str(corpus.images_dir),
            "--dataspec_out_dir",
            str(out / "ds"),
            "--dataspec_list_out",
            str(out / "list.txt"),
            "--dataspec_debug_skips_out",
            str(out / "skips.csv"),
            *STEP2,
        ]
    )


@pytest.mark.parametrize("nan_literals", [False, True], ids=["typed", "nan_literals"])
def test_corrupt_corpus_runs_to_the_end(run_cli, corpus, tmp_path, nan_literals) -> None:
    bad = damage(corpus, nan_literals=nan_literals)
    out = tmp_path / "out"
    result = _step2(run_cli, corpus, out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output

    rows = {r["image_path"]: r for r in read_csv(out / "analysis.csv")}
    skips = {s["image_path"]: s for s in read_csv(out / "skips.csv")}
    errors = read_csv(out / "analysis_errors.csv")
    listed = (out / "list.txt").read_text("utf-8").splitlines()
    emitted = {dataspec.load(p).source.coco_image_id: p for p in listed}  # type: ignore[union-attr]

    # the counts add up
    m = re.search(r"dataspec: matched (\d+) = emitted (\d+) \+ skipped (\d+)", result.stdout)
    assert m, result.stdout
    matched, n_emitted, n_skipped = map(int, m.groups())
    assert matched == sum(r["has_vlm_data"] == "True" for r in rows.values())
    assert (n_emitted, n_skipped) == (len(listed), len(skips))
    assert matched == n_emitted + n_skipped
    assert sorted(map(Path, listed)) == sorted((out / "ds").rglob("*.json"))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not [s for s in skips.values() if s["reason"].startswith("exception:")], skips

    # every damaged page shows what happened to it, naming the file
    path_of = {r["image"]: r["coco_image_id"] for r in truth(corpus).values()}
    for exp in bad.expects:
        image_id = path_of[exp.image]
        row = next(r for r in rows.values() if r["image_id"] == image_id)
        if exp.tier is not None:
            assert row["match_tier"] == exp.tier, (exp.name, row)
        if "emitted" in exp.reasons and image_id in emitted:
            outcome = "emitted"
        else:
            skip = next((s for s in skips.values() if s["image_id"] == image_id), None)
            outcome = skip["reason"] if skip else row["match_tier"]
        if exp.reasons:
            assert outcome in exp.reasons, (exp.name, outcome, row)
        if exp.error_file is not None:
            hits = [
                e
                for e in errors
                if (e["file"].startswith(exp.error_file) or row["image_path"] in e["problem"])
                and re.search(exp.error or ".", e["problem"])
            ]
            if exp.tier is None and exp.name not in ("truncated_after_panels", "truncated"):
                assert row["has_vlm_data"] == "True" or hits, (exp.name, row, errors)
            else:
                assert hits, (exp.name, exp.error_file, errors)
        if exp.check is not None and outcome == "emitted":
            exp.check(dataspec.load(emitted[image_id]))
    for where, why in bad.coco_errors:
        hits = [e for e in errors if e["file"] == str(corpus.coco_path) and e["where"] == where]
        assert hits and re.search(why, hits[0]["problem"]), (where, why, hits)
    by_id = {r["image_id"]: r for r in rows.values()}
    for ghost in bad.ghost_ids:  # pages of their own, matched to nothing
        assert by_id[ghost]["match_tier"] == "none", by_id[ghost]
    # the symlink loops under the roots neither hang the run nor duplicate VLM files
    assert not [r for r in rows.values() if "/up/" in r["vlm_json_path"]]
    amb = read_csv(out / "analysis_ambiguities.csv")
    assert not [a for a in amb if "/up/" in a["candidates"]]


def test_the_damaged_files_one_by_one(corpus, tmp_path) -> None:
    """The readers and the image check name the problem of each damaged file directly."""
    bad = damage(corpus, nan_literals=True)
    records = truth(corpus)
    vlm = {e.name: corpus.vlm_dir / records[e.image]["vlm_json"] for e in bad.expects}
    for name in ("invalid", "empty", "deep", "null", "binary", "oversized"):
        with pytest.raises(dataspec.DataSpecError) as info:
            read_vlm(str(vlm[name]))
        assert info.value.file == str(vlm[name])
    notes: list[dataspec.Note] = []
    try:  # a file cut in half: read as far as it goes, and said so, or unreadable
        read_vlm(str(vlm["truncated"]), notes=notes)
        assert "truncated" in {n.code for n in notes}
    except dataspec.DataSpecError as exc:
        assert exc.file == str(vlm["truncated"])
    for name in ("bom", "cp1252", "nan_infinity", "huge_float", "large", "strings_for_numbers"):
        assert read_vlm(str(vlm[name]))
    assert read_vlm(str(vlm["zero_panels"])) == []
    image = {e.name: corpus.images_dir / e.image for e in bad.expects}
    assert "not an image" in (image_problem(str(image["not_an_image"])) or "")
    assert "truncated" in (image_problem(str(image["truncated_jpeg"])) or "")
    assert "100000x100000" in (image_problem(str(image["decompression_bomb"])) or "")
    assert MAX_IMAGE_PIXELS < 100_000 * 100_000
    assert image_problem(str(image["symlink_loop"]))
    assert "not a regular file" in (image_problem(str(image["fifo"])) or "")
    intact = corpus.images_dir / sorted(truth(corpus))[-1]
    assert image_problem(str(intact)) is None
    # the VLM index follows neither loop twice
    rels = [f.rel or "" for f in scan_vlm_dir(corpus.vlm_dir)]
    assert len(rels) == len(set(rels)) and not [r for r in rels if "/up/" in r]
    # a folder of VLM JSONs that cannot be read is named (root reads it anyway)
    locked = corpus.vlm_dir / "Locked"
    locked.mkdir()
    (locked / "JPG4CBZ_0001.json").write_text('{"panels": []}', encoding="utf-8")
    locked.chmod(0)
    try:
        problems: list[Problem] = []
        found = {f.rel for f in scan_vlm_dir(corpus.vlm_dir, problems=problems)}
        if os.access(locked, os.R_OK | os.X_OK):
            assert "Locked/JPG4CBZ_0001.json" in found and not problems
        else:
            assert [p.file for p in problems] == [str(locked)]
            assert "not read" in problems[0].problem
    finally:
        locked.chmod(0o755)
    # the predictions file loads, each bad annotation reported
    pages = load_coco(corpus.coco_path)
    wheres = {p.where for p in pages.problems}
    assert {w for w, _ in bad.coco_errors} <= wheres


@pytest.mark.parametrize(
    "content, why",
    [
        (b"", r"empty"),
        (b"\x00\x01\x02", r"not a COCO|not valid JSON"),
        (b'{"images": [], "annotations": [', r"not valid JSON|truncated"),
        (b'{"annotations": ' + b"[" * DEEP + b"]" * DEEP + b"}", r"nested too deeply"),
        (
            b'[{"image_id": 1, "category_id": 1, "bbox": ' + b"[" * DEEP + b"]" * DEEP + b"}]",
            r"nested too deeply",
        ),
        (b'"just a string"', r"not a COCO"),
        (b'{"annotations": {"a": 1}}', r"not a JSON array"),
    ],
    ids=["empty", "binary", "truncated", "deep", "deep_list", "string", "annotations_object"],
)
def test_unusable_predictions_exit_1_naming_the_file(
    run_cli, corpus, tmp_path, content: bytes, why: str
) -> None:
    corpus.coco_path.write_bytes(content)
    with pytest.raises(CocoError, match=why):
        load_coco(corpus.coco_path)
    out = tmp_path / "out"
    result = _step2(run_cli, corpus, out)
    assert result.exit_code == 1
    assert str(corpus.coco_path) in result.output and "Traceback" not in result.output
    assert not (out / "analysis.csv").exists()  # nothing half-written either


@pytest.mark.parametrize(
    "content",
    [
        "\ufeff{json}",
        "{json}".encode("cp1252"),
    ],
    ids=["bom", "cp1252"],
)
def test_predictions_with_a_bom_or_in_cp1252_are_read(corpus, content: str | bytes) -> None:
    data = coco(corpus)
    data["images"][0]["file_name"] = "JPG4CBZ\\0001 café.jpg"
    text = json.dumps(data, ensure_ascii=False)
    raw = content.replace("{json}", text).encode() if isinstance(content, str) else None
    corpus.coco_path.write_bytes(raw if raw is not None else text.encode("cp1252"))
    pages = load_coco(corpus.coco_path)
    assert len(pages) == corpus.pages and not pages.problems
    assert any(p.endswith("0001 café.jpg") for p in pages.paths)


def test_huge_page_sizes_in_the_predictions_are_reported(corpus) -> None:
    data = coco(corpus)
    data["images"][0]["width"] = 1e300
    data["images"][1]["height"] = 10**30
    write_coco(corpus, data)
    pages = load_coco(corpus.coco_path)
    assert len(pages) == corpus.pages
    wheres = {p.where: p.problem for p in pages.problems}
    assert set(wheres) == {"images[0]", "images[1]"}
    assert all("page size" in why for why in wheres.values())


def test_a_missing_image_is_never_replaced_by_another_pages(run_cli, corpus, tmp_path) -> None:
    """The page's own image is gone and one other series has a page with its number: the
    image resolver may offer that one (guessing from the VLM JSON's name); it is refused."""
    recs = sorted(truth(corpus).values(), key=lambda r: r["image"])
    by_page: dict[int, list[dict[str, Any]]] = {}
    for rec in recs:
        by_page.setdefault(rec["page"], []).append(rec)
    lost = next(group[0] for group in by_page.values() if len(group) == 2)
    (corpus.images_dir / lost["image"]).unlink()
    out = tmp_path / "out"
    result = _step2(run_cli, corpus, out)
    assert result.exit_code == 0, result.output
    row = next(r for r in read_csv(out / "analysis.csv") if r["image_id"] == lost["coco_image_id"])
    assert row["resolved_image_path"] == "" and row["image_exists"] == "False", row
    skip = next(s for s in read_csv(out / "skips.csv") if s["image_id"] == lost["coco_image_id"])
    assert skip["reason"] == "missing_image"
    for path in (out / "list.txt").read_text("utf-8").splitlines():
        page = dataspec.load(path)
        assert page.source is not None and page.source.coco_image_id != lost["coco_image_id"]


def test_the_report_skips_thumbnails_of_bad_images(corpus, tmp_path) -> None:
    """`analyzer.report` draws no thumbnail for a bomb, a cut JPEG, a non-image or a FIFO."""
    from analyzer.report import build_report

    good = corpus.images_dir / sorted(truth(corpus))[0]
    bad = {
        "bomb.png": png_header(100_000, 100_000),
        "cut.jpg": good.read_bytes()[:2000],
        "text.jpg": b"not an image",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    os.mkfifo(tmp_path / "fifo.jpg")
    names = [*bad, "fifo.jpg", "loop.jpg"]
    os.symlink("loop.jpg", tmp_path / "loop.jpg")
    rows = [
        {
            "image_path": str(tmp_path / name),
            "resolved_image_path": str(tmp_path / name),
            "has_vlm_data": "True",
            "panel_count_ratio": "1.0",
            "text_coverage": "1.0",
            "quality_score": "4.0",
            "is_perfect_match": "True",
            "match_tier": "exact",
        }
        for name in names
    ]
    rows.append({**rows[0], "image_path": str(good), "resolved_image_path": str(good)})
    html = build_report(rows, samples=10)
    galleries = html.count("<h3>")  # the rows are in several subsets
    assert galleries and html.count("data:image/jpeg;base64,") == galleries  # the good one
    assert html.count("no image") == galleries * len(names)
