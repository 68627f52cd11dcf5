"""Tests for the `dataspec` command line (schema, validate, normalize, render) on real files,
and the help (`-h`, a line per option, defaults) of every command line of the project."""

from __future__ import annotations

import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from PIL import Image

import dataspec
from dataspec.cli import main
from dataspec.render import contact_sheet
from tests.conftest import write_image, write_json


def run(*args: str | Path) -> Result:
    """Invoke the CLI in-process; stdout and stderr are both in `result.output`."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def summary(result: Result) -> tuple[int, int, int]:
    """(files, valid, invalid) from the `validate` summary line."""
    match = re.search(r"^(\d+) files: (\d+) valid, (\d+) invalid$", result.stdout, re.M)
    assert match, result.output
    files, valid, invalid = (int(g) for g in match.groups())
    return files, valid, invalid


def vlm_variant(image_path: str) -> dict[str, Any]:
    """A third-party VLM page: `image_path` and `VLM_panels` with `bbox` and `speakers`."""
    return {
        "image_path": image_path,
        "VLM_panels": [
            {
                "bbox": [10, 20, 380, 500],
                "speakers": [{"dialogue": "Who's there?", "speech_type": "speech"}],
                "caption": "A dark corridor.",
            },
            {
                "bbox": [410, 20, 380, 500],
                "speakers": [
                    {"dialogue": "KRAK!", "speech_type": "sfx"},
                    {"dialogue": "Later that night…", "speech_type": "narration"},
                ],
            },
        ],
    }


@pytest.fixture
def pages(tmp_path: Path, canonical: dict[str, Any]) -> Path:
    """A folder of three valid canonical pages, one in a nested folder."""
    root = tmp_path / "pages"
    for rel, image in (
        ("a.json", "Series/JPG4CBZ/0001.jpg"),
        ("b.json", "Series/JPG4CBZ/0002.jpg"),
        ("nested/deeper/c.json", "Series/JPG4CBZ/0003.jpg"),
    ):
        page = copy.deepcopy(canonical)
        page["page_image_path"] = image
        write_json(root / rel, page, ensure_ascii=False)
    return root


# --- schema ----------------------------------------------------------------------------------


def test_schema_prints_the_json_schema() -> None:
    """`schema` prints exactly the library's JSON Schema."""
    result = run("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == dataspec.json_schema()


def test_schema_out_writes_file(tmp_path: Path) -> None:
    """`schema --out F` writes the schema to F and nothing to stdout."""
    out = tmp_path / "sub" / "schema.json"
    result = run("schema", "--out", out)
    assert result.exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == dataspec.json_schema()
    assert result.stdout == ""
    assert str(out) in result.stderr


def test_version() -> None:
    """`--version` prints the package version."""
    result = run("--version")
    assert result.exit_code == 0
    assert dataspec.__version__ in result.output


# --- validate --------------------------------------------------------------------------------


def test_validate_valid_dir(pages: Path) -> None:
    """A folder of valid pages (nested included): exit 0 and the summary line."""
    result = run("validate", pages)
    assert result.exit_code == 0, result.output
    assert summary(result) == (3, 3, 0)
    assert "INVALID" not in result.output


def test_validate_one_invalid_page(pages: Path, canonical: dict[str, Any]) -> None:
    """One broken page: exit 1, the file named with the reason."""
    bad = copy.deepcopy(canonical)
    bad["reading_order"] = [0, 0]
    bad_path = write_json(pages / "nested" / "bad.json", bad)
    result = run("validate", pages)
    assert result.exit_code == 1
    assert summary(result) == (4, 3, 1)
    assert f"INVALID {bad_path}" in result.stderr
    assert "reading_order" in result.stderr


def test_validate_report_csv(pages: Path, canonical: dict[str, Any], tmp_path: Path) -> None:
    """`--report x.csv`: one row per file with path, valid, error, notes."""
    bad = copy.deepcopy(canonical)
    bad["panels"][0]["panel_coords"] = [10, 20, -5, 500]
    bad_path = write_json(pages / "bad.json", bad)
    report = tmp_path / "out" / "report.csv"
    result = run("validate", pages, "--report", report)
    assert result.exit_code == 1
    with report.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "valid", "error", "notes"]
    assert len(rows) == 4
    by_path = {Path(r["path"]).name: r for r in rows}
    assert by_path["bad.json"]["valid"] == "False"
    assert by_path["bad.json"]["path"] == str(bad_path)
    assert "panel_coords" in by_path["bad.json"]["error"]
    for name in ("a.json", "b.json", "c.json"):
        assert by_path[name]["valid"] == "True"
        assert by_path[name]["error"] == ""


def test_validate_report_jsonl_lenient_notes(tmp_path: Path, canonical: dict[str, Any]) -> None:
    """`--report x.jsonl` with `--lenient`: JSON lines with booleans and note codes."""
    folder = tmp_path / "mixed"
    write_json(folder / "canon.json", canonical)
    write_json(folder / "vlm.json", vlm_variant("/data/Series/JPG4CBZ/0002.jpg"))
    (folder / "broken.json").write_text('{"image_path": "/x.jpg", "panels": [}}', encoding="utf-8")
    (folder / "cut.json").write_text('{"image_path": "/x.jpg", "panels": [', encoding="utf-8")
    report = tmp_path / "report.jsonl"
    result = run("validate", folder, "--lenient", "--report", report)
    assert result.exit_code == 1
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [Path(r["path"]).name for r in rows] == [
        "broken.json",
        "canon.json",
        "cut.json",
        "vlm.json",
    ]
    broken, canon, cut, vlm = rows
    assert broken["valid"] is False
    assert "not valid JSON" in broken["error"]
    assert cut["valid"] is False  # read (cut short), but no panel closed before the cut
    assert "cut before any panel closed" in cut["error"]
    assert "truncated" in cut["notes"].split(";")
    assert "4 files: 2 valid, 1 invalid, 1 with every panel dropped (exit 1)" in result.stdout
    assert canon == {"path": str(folder / "canon.json"), "valid": True, "error": "", "notes": ""}
    assert vlm["valid"] is True
    assert "image_key" in vlm["notes"].split(";")
    assert "image_key=2" in result.stdout  # vlm.json and cut.json


def test_validate_bad_report_suffix(pages: Path, tmp_path: Path) -> None:
    """A report that is neither .csv nor .jsonl is a usage error (exit 2), nothing written."""
    report = tmp_path / "report.txt"
    result = run("validate", pages, "--report", report)
    assert result.exit_code == 2
    assert "--report" in result.output
    assert not report.exists()


def test_validate_check_images_needs_root(pages: Path) -> None:
    """`--check-images` without `--image-root` is a usage error (exit 2)."""
    result = run("validate", pages, "--check-images")
    assert result.exit_code == 2
    assert "--image-root" in result.output


def test_validate_check_images(pages: Path, tmp_path: Path) -> None:
    """With an image root holding two of the three images: exit 1, the third page named."""
    images = tmp_path / "images"
    write_image(images / "Series" / "JPG4CBZ" / "0001.jpg")
    write_image(images / "Series" / "JPG4CBZ" / "0002.jpg")
    result = run("validate", pages, "--image-root", images, "--check-images")
    assert result.exit_code == 1
    assert summary(result) == (3, 2, 1)
    invalid = [line for line in result.stderr.splitlines() if line.startswith("INVALID")]
    assert len(invalid) == 1
    assert str(pages / "nested" / "deeper" / "c.json") in invalid[0]
    assert "0003.jpg" in invalid[0]


def test_validate_check_images_all_present(pages: Path, tmp_path: Path) -> None:
    """Every image under the root: exit 0."""
    images = tmp_path / "images"
    for n in (1, 2, 3):
        write_image(images / "Series" / "JPG4CBZ" / f"000{n}.jpg", (800, 1200))
    result = run("validate", pages, "--image-root", images, "--check-images")
    assert result.exit_code == 0, result.output
    assert summary(result) == (3, 3, 0)


def test_validate_lenient_accepts_variant_strict_rejects(tmp_path: Path) -> None:
    """A third-party VLM page: strict exit 1, `--lenient` exit 0."""
    path = write_json(tmp_path / "vlm" / "JPG4CBZ_0001.json", vlm_variant("E:\\C\\0001.jpg"))
    strict = run("validate", path)
    assert strict.exit_code == 1
    assert str(path) in strict.stderr
    assert "page_image_path" in strict.stderr
    lenient = run("validate", path, "--lenient", "--notes")
    assert lenient.exit_code == 0, lenient.output
    assert summary(lenient) == (1, 1, 0)
    assert "[image_key]" in lenient.stderr  # --notes prints each coercion


def test_validate_forbid_unknown(canonical: dict[str, Any], tmp_path: Path) -> None:
    """Unknown keys pass by default and fail with `--forbid-unknown`, named by JSON path."""
    page = copy.deepcopy(canonical)
    page["panels"][1]["mood"] = "tense"
    path = write_json(tmp_path / "extra.json", page)
    assert run("validate", path).exit_code == 0
    result = run("validate", path, "--forbid-unknown")
    assert result.exit_code == 1
    assert "unknown keys: $.panels[1].mood" in result.stderr
    assert str(path) in result.stderr


def test_validate_forbid_unknown_ignores_source_extras(
    canonical: dict[str, Any], tmp_path: Path
) -> None:
    """`source` is free-form: its extra keys are not unknown."""
    page = copy.deepcopy(canonical)
    page["source"]["scanner"] = "Epson"
    path = write_json(tmp_path / "src.json", page)
    assert run("validate", path, "--forbid-unknown").exit_code == 0


def test_validate_missing_path_and_empty_dir(tmp_path: Path) -> None:
    """A missing path or a folder without JSON is a usage error (exit 2)."""
    missing = tmp_path / "nope"
    result = run("validate", missing)
    assert result.exit_code == 2
    assert str(missing) in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("validate", empty)
    assert result.exit_code == 2
    assert "no JSON files" in result.output


def test_validate_txt_list(pages: Path, tmp_path: Path) -> None:
    """A .txt list of pages is validated like the files it names."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{pages / 'a.json'}\n\n{pages / 'nested' / 'deeper' / 'c.json'}\n")
    result = run("validate", listing)
    assert result.exit_code == 0
    assert summary(result) == (2, 2, 0)


# --- normalize -------------------------------------------------------------------------------


@pytest.fixture
def wild(tmp_path: Path, canonical: dict[str, Any]) -> Path:
    """A tree of page variants, nested, with one file cut short and one unparseable."""
    root = tmp_path / "wild"
    write_json(root / "canon.json", canonical)
    write_json(root / "Series" / "JPG4CBZ_0001.json", vlm_variant("/data/Series/0001.jpg"))
    write_json(
        root / "Series" / "vol 2" / "0002.json",
        {
            "page": {
                "image": "/data/Series/vol 2/0002.png",
                "width": 800,
                "height": 1200,
                "panels": [{"box": {"x1": 0.0, "y1": 0.0, "x2": 0.5, "y2": 0.25}, "ocr": "Hi"}],
                "normalized": True,
            }
        },
    )
    full = json.dumps(canonical)
    (root / "Series" / "truncated.json").write_text(full[: len(full) // 2], encoding="utf-8")
    (root / "Series" / "broken.json").write_text('{"image": "a.jpg", "panels": [}}', "utf-8")
    return root


def test_normalize_mirrors_tree(wild: Path, tmp_path: Path) -> None:
    """Output mirrors the input tree, strict-loadable; the file cut short is written flagged
    (the panels that closed before the cut), the unparseable one logged as skipped."""
    out = tmp_path / "out"
    result = run("normalize", wild, "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert "4 written" in result.stdout
    assert "1 skipped" in result.stdout
    assert "truncated=1" in result.stdout

    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == [
        "Series/JPG4CBZ_0001.json",
        "Series/truncated.json",
        "Series/vol 2/0002.json",
        "canon.json",
    ]
    cut = dataspec.load(out / "Series" / "truncated.json")
    assert cut.source is not None and cut.source.model_extra == {"truncated": True}
    whole = dataspec.load(wild / "canon.json")
    assert cut.panels == whole.panels[: len(cut.panels)]
    assert len(cut.panels) < len(whole.panels)
    for rel in written:
        page = dataspec.load(out / rel)  # strict
        assert page.schema_version == "0.3"
        assert page.source is not None
        assert Path(page.source.original_path or "").name == Path(rel).name

    vlm = dataspec.load(out / "Series" / "JPG4CBZ_0001.json")
    assert vlm.page_image_path == "/data/Series/0001.jpg"
    assert [p.panel_coords for p in vlm.panels] == [(10, 20, 380, 500), (410, 20, 380, 500)]
    assert vlm.panels[0].text.dialogue == ["Who's there?"]
    assert vlm.panels[1].text.sfx == ["KRAK!"]
    assert vlm.panels[1].text.narration == ["Later that night…"]
    assert vlm.panels[0].description == "A dark corridor."

    wrapped = dataspec.load(out / "Series" / "vol 2" / "0002.json")
    assert wrapped.page_size is not None
    assert (wrapped.page_size.width, wrapped.page_size.height) == (800, 1200)
    assert wrapped.panels[0].panel_coords == (0, 0, 400, 300)

    with (out / "normalize_skips.csv").open(encoding="utf-8", newline="") as fh:
        skips = list(csv.DictReader(fh))
    assert len(skips) == 1
    assert skips[0]["path"] == str(wild / "Series" / "broken.json")
    assert skips[0]["reason"].startswith("not valid JSON")
    assert "broken.json" in result.stderr


def test_normalize_canonical_round_trip(wild: Path, tmp_path: Path) -> None:
    """A canonical page comes out equal to what the strict loader reads from the input."""
    out = tmp_path / "out"
    assert run("normalize", wild, "--out-dir", out).exit_code == 0
    before = dataspec.load(wild / "canon.json")
    after = dataspec.load(out / "canon.json")
    assert after.panels == before.panels
    assert after.reading_order == before.reading_order
    assert after.page_image_path == before.page_image_path


def test_normalize_skip_log_option(wild: Path, tmp_path: Path) -> None:
    """`--skip-log F` writes the skip CSV to F instead of the output folder."""
    out, log = tmp_path / "out", tmp_path / "logs" / "skips.csv"
    result = run("normalize", wild, "--out-dir", out, "--skip-log", log)
    assert result.exit_code == 0
    assert not (out / "normalize_skips.csv").exists()
    with log.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["path"]).name for r in rows] == ["broken.json"]


def test_normalize_txt_list(wild: Path, tmp_path: Path) -> None:
    """A .txt list: outputs mirror the files' tree below their common folder."""
    listing = tmp_path / "lists" / "pages.txt"
    listing.parent.mkdir()
    listing.write_text(
        "\n".join(
            [
                str(wild / "Series" / "JPG4CBZ_0001.json"),
                "",
                str(wild / "Series" / "vol 2" / "0002.json"),
                str(wild / "Series" / "JPG4CBZ_0001.json"),  # duplicate: once
            ]
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = run("normalize", listing, "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert "2 files: 2 written" in result.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == ["JPG4CBZ_0001.json", "vol 2/0002.json"]
    for rel in written:
        dataspec.load(out / rel)
    with (out / "normalize_skips.csv").open(encoding="utf-8", newline="") as fh:
        assert list(csv.DictReader(fh)) == []


def test_normalize_with_image_root(tmp_path: Path) -> None:
    """With `--image-root` the image is resolved (absolute path) and sized from its header."""
    images = tmp_path / "images"
    image = write_image(images / "Series" / "JPG4CBZ" / "0001.jpg", (800, 1200))
    src = write_json(
        tmp_path / "vlm" / "Series" / "JPG4CBZ_0001.json",
        vlm_variant("E:\\CalibreComics_extracted\\Series\\JPG4CBZ\\0001.jpg"),
    )
    out = tmp_path / "out"
    result = run("normalize", src, "--out-dir", out, "--image-root", images)
    assert result.exit_code == 0, result.output
    page = dataspec.load(out / "JPG4CBZ_0001.json", image_root=images, page_size=(800, 1200))
    assert page.page_image_path == str(image)
    written = dataspec.load(out / "JPG4CBZ_0001.json")
    assert written.page_image_path == str(image)
    assert written.page_size is not None
    assert (written.page_size.width, written.page_size.height) == (800, 1200)


def test_normalize_same_name_in_two_input_dirs_is_not_lost(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    """Two input folders holding the same relative file: no output silently overwrites another."""
    first, second = copy.deepcopy(canonical), copy.deepcopy(canonical)
    first["page_image_path"] = "/data/A/0001.jpg"
    second["page_image_path"] = "/data/B/0001.jpg"
    write_json(tmp_path / "in1" / "p.json", first)
    write_json(tmp_path / "in2" / "p.json", second)
    out = tmp_path / "out"
    result = run("normalize", tmp_path / "in1", tmp_path / "in2", "--out-dir", out)
    match = re.search(r"(\d+) written", result.stdout)
    assert match, result.output
    outputs = list(out.rglob("*.json"))
    # every page reported as written is a file of its own
    assert len(outputs) == int(match.group(1))
    images = {dataspec.load(p).page_image_path for p in outputs}
    assert len(images) == len(outputs)


# --- what a newcomer trips over: -h, help and defaults, exits, messages ----------------------


def owned_commands() -> list[tuple[str, click.Command]]:
    """Every command line of dataspec and the analyzer: (name, click command)."""
    from analyzer.cli import analyze
    from analyzer.merge import merge_command
    from analyzer.report.cli import main as report
    from analyzer.subset import subset
    from dataspec.sample import main as sample

    commands: list[tuple[str, click.Command]] = [
        ("python -m analyzer", analyze),
        ("python -m analyzer.merge", merge_command),
        ("python -m analyzer.report", report),
        ("python -m analyzer.subset", subset),
        ("python -m dataspec.sample", sample),
        ("dataspec", main),
    ]
    assert isinstance(main, click.Group)
    commands += [(f"dataspec {name}", cmd) for name, cmd in sorted(main.commands.items())]
    return commands


def _shows_a_default(option: click.Option, ctx: click.Context) -> bool:
    """Whether the option has a default worth showing: a number, a string, or a flag on
    (not None, unset, an unset flag or an empty list)."""
    default = option.get_default(ctx, call=False)
    return isinstance(default, int | float | str) and default is not False


@pytest.mark.parametrize("name,command", owned_commands(), ids=lambda v: getattr(v, "name", v))
def test_every_option_has_help_and_shows_its_default(name: str, command: click.Command) -> None:
    ctx = click.Context(command, info_name=name, **command.context_settings)
    assert "-h" in ctx.help_option_names, name
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option)]
    assert options, name
    for option in options:
        assert option.help and option.help.strip(), f"{name} {option.opts[0]}: no help"
        record = option.get_help_record(ctx)
        assert record is not None, f"{name} {option.opts[0]}: hidden"
        if _shows_a_default(option, ctx):
            assert "[default:" in record[1], f"{name} {option.opts[0]}: default not shown"
    # and the rendered --help says it too
    result = CliRunner().invoke(command, ["-h"], prog_name=name)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {name}")


def test_dataspec_dash_h_like_the_analyzer() -> None:
    """`dataspec -h` and `dataspec <command> -h` print help, as `python -m analyzer -h` does."""
    result = run("-h")
    assert result.exit_code == 0, result.output
    assert "Commands:" in result.stdout and "validate" in result.stdout
    for command in ("schema", "validate", "normalize", "render"):
        result = run(command, "-h")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Usage: dataspec {command}")
    shown = run("render", "-h").stdout
    assert "[default: 48" in shown and "[default: 4" in shown


def test_dash_h_from_the_shell() -> None:
    """The installed entry points, in a real process."""
    for argv in (["-m", "dataspec", "-h"], ["-m", "dataspec.sample", "-h"]):
        proc = subprocess.run(
            [sys.executable, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("Usage: ")
        assert "[default:" in proc.stdout or "Commands:" in proc.stdout


def test_normalize_with_every_file_skipped_fails_naming_the_input(tmp_path: Path) -> None:
    src = tmp_path / "replies"
    write_json(src / "ints.json", [1, 2])
    (src / "prose.json").write_text("I could not read this page, sorry.", encoding="utf-8")
    out = tmp_path / "out"
    result = run("normalize", src, "--out-dir", out)
    assert result.exit_code == 1, result.output
    assert "nothing written" in result.stderr and str(src) in result.stderr
    log = out / "normalize_skips.csv"
    assert str(log) in result.stderr
    with log.open(encoding="utf-8", newline="") as fh:  # the skip log is still written
        rows = list(csv.DictReader(fh))
    assert sorted(Path(r["path"]).name for r in rows) == ["ints.json", "prose.json"]


def test_normalize_with_some_files_skipped_is_fine(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    src = tmp_path / "replies"
    write_json(src / "ok.json", canonical)
    write_json(src / "ints.json", [1, 2])
    result = run("normalize", src, "--out-dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "1 written" in result.stdout and "1 skipped" in result.stdout


def test_strict_validate_of_a_fenced_reply_hints_at_lenient(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    fenced = tmp_path / "reply.json"
    fenced.write_text("```json\n" + json.dumps(canonical) + "\n```\n", encoding="utf-8")
    result = run("validate", fenced)
    assert result.exit_code == 1
    assert str(fenced) in result.stderr and "--lenient" in result.stderr
    assert "code fence" in result.stderr
    assert run("validate", "--lenient", fenced).exit_code == 0
    plain = write_json(tmp_path / "broken.json", {"panels": "nope"})
    assert "--lenient" not in run("validate", plain).stderr  # no hint where it would not help


def test_contact_sheet_says_how_many_of_the_pages_it_shows(
    tmp_path: Path, canonical: dict[str, Any]
) -> None:
    src = tmp_path / "pages"
    for i in range(5):
        write_json(src / f"p{i}.json", canonical)
    write_json(src / "z_bad.json", [1, 2])  # sorted last
    result = run("render", src, "--contact-sheet", "--limit", "3", "-o", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert "3 of 6 pages; --limit 3" in result.stdout
    titled = Image.open(tmp_path / "s.png")  # the sheet says it too, in a line on top
    plain = contact_sheet([Image.new("RGB", (400, 600))] * 3, labels=["a"] * 3, cols=4)
    assert titled.size == (plain.width, plain.height + 24)
    result = run("render", src, "--contact-sheet", "-o", tmp_path / "all.png")
    assert result.exit_code == 0, result.output
    assert "5 of 6 pages; 1 skipped" in result.stdout
    whole = tmp_path / "five"
    for i in range(5):
        write_json(whole / f"p{i}.json", canonical)
    result = run("render", whole, "--contact-sheet", "-o", tmp_path / "five.png")
    assert "(5 pages)" in result.stdout and " of " not in result.stdout


def test_image_not_found_without_a_root_says_so() -> None:
    """No image root: the message says none was given (and names the flag), no empty list."""
    for image in ("Series/JPG4CBZ/0001.jpg", "E:\\Comics\\Series\\0001.jpg"):
        with pytest.raises(dataspec.DataSpecError) as info:
            dataspec.ImageResolver(None).resolve(image)
        message = str(info.value)
        assert "no image root was given" in message and "--image_roots" in message
        assert "tried  " not in message and "index of each root" not in message
