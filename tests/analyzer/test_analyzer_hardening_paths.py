"""Path safety: nothing the inputs say makes a write land outside the output directory.

Hostile names come from the VLM tree (characters Windows refuses, device names, very
long names), from image paths when a map names a VLM JSON outside --vlm_dir (`..`,
absolute, drive paths), and from symlinks already in the output tree. The file system
outside the out dir is compared before and after. The subset tool's --strict_paths
refuses images outside --image_root, and it never writes outside --output_dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from analyzer_testlib import coco, read_csv, truth, write_coco
from click.testing import CliRunner

import dataspec
from analyzer.cli import analyze
from analyzer.coco import load_coco
from analyzer.page_files import MAX_PART_BYTES, UnsafeOutputError, inside, output_name
from analyzer.subset import LIST_NAME, REJECTS_NAME, subset
from dataspec.sample import SampleCorpus

REFUSED = re.compile(r'[<>:"|?*\x00-\x1f\\]')
DEVICE = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def snapshot(root: Path, skip: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under `root` except under `skip`: kind and content (links: the target)."""
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d != skip]
        for name in [*dirs, *files]:
            path = here / name
            if path.is_symlink():
                out[str(path)] = ("link", os.readlink(path).encode())
            elif path.is_file():
                out[str(path)] = ("file", path.read_bytes())
            elif path.is_dir():
                out[str(path)] = ("dir", b"")
    return out


def _intact(corpus: SampleCorpus) -> list[dict[str, Any]]:
    """Pages written when nothing is damaged (as many detections >= 0.5 as VLM panels)."""
    dets: dict[str, int] = {}
    for ann in coco(corpus)["annotations"]:
        if ann["category_id"] == 1 and ann["score"] >= 0.5:
            dets[ann["image_id"]] = dets.get(ann["image_id"], 0) + 1
    recs = sorted(truth(corpus).values(), key=lambda r: r["image"])
    out = []
    for rec in recs:
        doc = json.loads((corpus.vlm_dir / rec["vlm_json"]).read_text("utf-8"))
        if dets.get(rec["coco_image_id"], 0) == len(doc["panels"]) > 1:
            out.append(rec)
    return out


LONG = "L" * 240
HOSTILE_TREE = [  # (image id, VLM path under --vlm_dir)
    ('E:\\Root\\Evil: "Series"?\\JPG4CBZ_0001.jpg', 'Evil: "Series"?/JPG4CBZ_0001.json'),
    ("E:\\Root\\CON\\AUX.jpg", "CON/AUX.json"),
    ("E:\\Root\\Trailing. \\nul.jpg", "Trailing. /nul.json"),
    (f"E:\\Root\\{LONG}\\JPG4CBZ_0002.jpg", f"{LONG}/JPG4CBZ_0002.json"),
]
HOSTILE_MAPPED = [  # (image id, VLM path as the map gives it): the image path names the file
    ("E:\\..\\..\\..\\..\\Evil\\JPG4CBZ_0007.jpg", "../elsewhere/a/JPG4CBZ_0007.json"),
    ("/../../../etc/cron.d/JPG4CBZ_0008.jpg", "{abs}/elsewhere/b/JPG4CBZ_0008.json"),
    ("../../../../../../outside/x/JPG4CBZ_0009.jpg", "../elsewhere/c/JPG4CBZ_0009.json"),
    ("C:\\..\\..\\Windows\\System32\\JPG4CBZ_0010.jpg", "../elsewhere/d/JPG4CBZ_0010.json"),
]
MISSING_MAPPED = ("E:\\Root\\Gone\\JPG4CBZ_0011.jpg", "Z:\\nowhere\\..\\..\\JPG4CBZ_0011.json")


def hostile_corpus(corpus: SampleCorpus, tmp_path: Path) -> tuple[Path, list[str]]:
    """Adds pages with hostile names (copies of intact pages); returns the map and their ids."""
    data = coco(corpus)
    sources = iter(_intact(corpus)[5:])
    ids: list[str] = []
    mapping: dict[str, str] = {}

    def clone(image_id: str, vlm_dest: Path) -> None:
        rec = next(sources)
        vlm_dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus.vlm_dir / rec["vlm_json"], vlm_dest)
        image = next(i for i in data["images"] if i["id"] == rec["coco_image_id"])
        data["images"].append({"id": image_id, "width": image["width"], "height": image["height"]})
        for ann in [a for a in data["annotations"] if a["image_id"] == rec["coco_image_id"]]:
            data["annotations"].append({**ann, "image_id": image_id})
        ids.append(image_id)

    for image_id, rel in HOSTILE_TREE:
        clone(image_id, corpus.vlm_dir / rel)
    maps = tmp_path / "maps"
    maps.mkdir()
    for image_id, vlm in HOSTILE_MAPPED:
        vlm = vlm.format(abs=tmp_path)
        clone(image_id, (maps / vlm).resolve() if not os.path.isabs(vlm) else Path(vlm))
        mapping[image_id] = vlm
    mapping[MISSING_MAPPED[0]] = MISSING_MAPPED[1]
    data["images"].append({"id": MISSING_MAPPED[0]})  # a page the map sends nowhere
    write_coco(corpus, data)
    map_path = maps / "map.json"
    map_path.write_text(json.dumps(mapping), encoding="utf-8")
    return map_path, ids


def _emit(corpus: SampleCorpus, out: Path, map_path: Path, *extra: str) -> Any:
    args = [
        "--coco",
        str(corpus.coco_path),
        "--vlm_dir",
        str(corpus.vlm_dir),
        "--vlm_map",
        str(map_path),
        "--output_csv",
        str(out / "analysis.csv"),
        "--emit_dataspec_everything",
        "--dataspec_keep_unpaired",  # about where files land: every page is written
        "--dataspec_out_dir",
        str(out / "ds"),
        "--dataspec_list_out",
        str(out / "list.txt"),
        "--dataspec_debug_skips_out",
        str(out / "skips.csv"),
        "--no_progress",
        *extra,
    ]
    result = CliRunner().invoke(analyze, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _check_out_tree(out_dir: Path, listed: list[str], allowed_links: set[Path]) -> None:
    """Every listed file and every file in the out tree lies inside it; names are safe."""
    real = os.path.realpath(out_dir)
    for path in listed:
        assert os.path.commonpath([real, os.path.realpath(path)]) == real, path
        dataspec.load(path)
        for part in Path(path).relative_to(out_dir).parts:
            assert not REFUSED.search(part) and not DEVICE.match(part), part
            assert part not in ("..", ".") and len(part.encode()) <= MAX_PART_BYTES, part
            assert part == part.rstrip(" ."), part
    for dirpath, dirs, files in os.walk(out_dir):
        for name in [*dirs, *files]:
            path = Path(dirpath) / name
            if path.is_symlink():
                assert path in allowed_links, path


@pytest.mark.parametrize("naming", ["preserve_tree", "hash"])
def test_no_write_lands_outside_the_out_dir(agreeing_corpus, tmp_path, monkeypatch, naming) -> None:
    # 13 intact pages are cloned or linked: more than the real shape's third of 60 pages
    corpus = agreeing_corpus
    monkeypatch.chdir(corpus.root)  # a relative write would land in the snapshot
    map_path, hostile = hostile_corpus(corpus, tmp_path)
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    (outside / "linked_dir").mkdir(parents=True)
    victim = outside / "victim.json"
    victim.write_bytes(b"ORIGINAL")
    # symlinks already in the out tree, where outputs of two intact pages would go
    intact = _intact(corpus)
    dir_page = intact[0]
    file_page = next(r for r in intact if r["series"] != dir_page["series"])
    links: set[Path] = set()
    if naming == "preserve_tree":
        dir_link = out / "ds" / Path(dir_page["vlm_json"]).parent
        file_link = out / "ds" / file_page["vlm_json"]
    else:  # flat: only a file can be in the way
        paths = _image_paths(corpus)
        image_id = file_page["coco_image_id"]
        name = output_name("hash", vlm_rel=None, image_path=paths[image_id], image_id=image_id)
        dir_link, file_link = None, out / "ds" / name
    if dir_link is not None:
        dir_link.parent.mkdir(parents=True, exist_ok=True)
        dir_link.symlink_to(outside / "linked_dir", target_is_directory=True)
        links.add(dir_link)
        # a temp file named like an output's, beyond the link: never removed through it
        stale = outside / "linked_dir" / f".{Path(dir_page['vlm_json']).name}.abcdefgh.tmp"
        stale.write_bytes(b"not ours")
    file_link.parent.mkdir(parents=True, exist_ok=True)
    file_link.symlink_to(victim)
    links.add(file_link)
    before = snapshot(tmp_path, out)

    result = _emit(corpus, out, map_path, "--dataspec_naming", naming)

    assert snapshot(tmp_path, out) == before  # nothing outside the out dir changed
    listed = (out / "list.txt").read_text("utf-8").splitlines()
    _check_out_tree(out / "ds", listed, links)
    skips = {s["image_id"]: s for s in read_csv(out / "skips.csv")}
    errors = read_csv(out / "analysis_errors.csv")
    m = re.search(r"dataspec: matched (\d+) = emitted (\d+) \+ skipped (\d+)", result.stdout)
    assert m and int(m[1]) == int(m[2]) + int(m[3]) and int(m[2]) == len(listed)
    # the refused writes are named
    unsafe = [file_page["coco_image_id"]] + ([dir_page["coco_image_id"]] if dir_link else [])
    for image_id in unsafe:
        assert skips[image_id]["reason"] == "unsafe_output", skips.get(image_id)
    assert any("symlink" in e["problem"] and e["file"] == str(file_link) for e in errors)
    if dir_link is not None:
        assert any("symlink" in e["problem"] and str(dir_link) in e["file"] for e in errors)
    # every hostile page is written, under a safe name
    emitted = {json.loads(Path(p).read_text("utf-8"))["source"]["coco_image_id"]: p for p in listed}
    for image_id in hostile:
        assert image_id in emitted, (image_id, skips.get(image_id))
    if naming == "preserve_tree":
        rel = {i: Path(emitted[i]).relative_to(out / "ds").as_posix() for i in hostile}
        assert rel[HOSTILE_TREE[0][0]] == "Evil_ _Series__/JPG4CBZ_0001.json"
        assert rel[HOSTILE_TREE[1][0]] == "CON_/AUX_.json"
        assert rel[HOSTILE_TREE[2][0]] == "Trailing/nul_.json"
        assert rel[HOSTILE_MAPPED[0][0]] == "_/Evil/JPG4CBZ_0007.json"
        assert rel[HOSTILE_MAPPED[1][0]] == "etc/cron.d/JPG4CBZ_0008.json"
    else:
        assert all(Path(emitted[i]).parent == out / "ds" for i in hostile)
    # the map entry naming nothing that exists is reported, not followed
    assert any(e["file"] == str(map_path) and "JPG4CBZ_0011" in e["problem"] for e in errors)


def _image_paths(corpus: SampleCorpus) -> dict[str, str]:
    """Image id → image path, as the analyzer reads the predictions file."""
    pages = load_coco(corpus.coco_path)
    return {str(i): p for i, p in zip(pages.ids, pages.paths, strict=True)}


@pytest.mark.parametrize("rel", ["../x.json", "a/../../x.json", "a/b/../../..", "", "."])
def test_inside_refuses_paths_that_leave(tmp_path: Path, rel: str) -> None:
    with pytest.raises(UnsafeOutputError):
        inside(str(tmp_path / "out"), rel)


def test_inside_joins_an_absolute_name_below_the_out_dir(tmp_path: Path) -> None:
    assert inside(str(tmp_path), "/etc/x.json") == str(tmp_path / "etc" / "x.json")


def test_inside_refuses_symlinks_and_fifos_on_the_way(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "link").symlink_to(out / "real")  # even one that stays inside
    (out / "real" / "file.json").symlink_to(tmp_path / "elsewhere.json")
    os.mkfifo(out / "real" / "fifo.json")
    (out / "real" / "plain").write_text("x")
    for rel in ("link/x.json", "real/file.json", "real/fifo.json", "real/plain/x.json"):
        with pytest.raises(UnsafeOutputError):
            inside(str(out), rel)
    assert inside(str(out), "real/new/x.json") == str(out / "real" / "new" / "x.json")
    # the out dir itself may be a symlink (a scratch folder elsewhere)
    (tmp_path / "alias").symlink_to(out)
    assert inside(str(tmp_path / "alias"), "real/x.json") == str(tmp_path / "alias/real/x.json")


# --- the subset tool ---------------------------------------------------------------------------


def _page_json(path: Path, image: str, vlm: str) -> None:
    page = dataspec.Page(
        page_image_path=image,
        panels=[dataspec.Panel(panel_coords=(0, 0, 10, 10))],
        reading_order=[0],
        source=dataspec.Source.model_validate({"vlm_json_path": vlm}),
    )
    dataspec.dump(page, path)


def test_subset_strict_paths_and_output_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "images"
    (root / "S").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("0001.jpg", "0002.jpg"):
        (root / "S" / name).write_bytes(b"\xff\xd8jpeg\xff\xd9")
    (outside / "0003.jpg").write_bytes(b"\xff\xd8jpeg\xff\xd9")
    (outside / "0005.jpg").write_bytes(b"\xff\xd8jpeg\xff\xd9")
    (root / "S" / "0004.jpg").symlink_to(outside / "0003.jpg")  # inside by name only
    json_dir = tmp_path / "ds"
    pages = {
        "good": str(root / "S" / "0001.jpg"),
        "relative": "S/0002.jpg",
        "absolute_outside": str(outside / "0003.jpg"),
        "dotdot": str(root / ".." / "outside" / "0005.jpg"),
        "symlink_out": str(root / "S" / "0004.jpg"),
    }
    listed = []
    for name, image in pages.items():
        vlm = f"/vlm/{name}/JPG4CBZ_0001.json"
        _page_json(json_dir / name / "JPG4CBZ_0001.json", image, vlm)
        listed.append(vlm)
    perfect = tmp_path / "perfect.txt"
    perfect.write_text("\n".join(listed) + "\n", encoding="utf-8")
    out = tmp_path / "subset"
    # a symlink in the output tree where the copy of "relative" would go
    (out / "relative").mkdir(parents=True)
    (out / "relative" / "JPG4CBZ_0001.json").symlink_to(outside / "victim.json")
    before = snapshot(tmp_path, out)

    args = [
        "--perfect_matches_file",
        str(perfect),
        "--json_dir",
        str(json_dir),
        "--image_root",
        str(root),
        "--output_dir",
        str(out),
        "--create_filtered_data",
        "--write_list",
        "--strict_paths",
        "--no_progress",
    ]
    result = CliRunner().invoke(subset, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path, out) == before
    assert not (outside / "victim.json").exists()
    chosen = (out / LIST_NAME).read_text("utf-8").splitlines()
    assert chosen == [str(out / "good" / "JPG4CBZ_0001.json")]
    rejects = {Path(r["path"]).parent.name: r["reason"] for r in read_csv(out / REJECTS_NAME)}
    for name in ("absolute_outside", "dotdot", "symlink_out"):
        assert "outside" in rejects[name] and "--image_root" in rejects[name], rejects[name]
    assert "symlink" in rejects["relative"]
    assert set(rejects) == {"absolute_outside", "dotdot", "symlink_out", "relative"}

    # without --strict_paths the images are not checked, and still nothing leaves --output_dir
    loose = [a for a in args if a != "--strict_paths"]
    result = CliRunner().invoke(subset, loose, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path, out) == before
    assert len((out / LIST_NAME).read_text("utf-8").splitlines()) == 4


def test_subset_copies_from_a_list_stay_in_the_output_dir(tmp_path: Path) -> None:
    """A .txt list as --json_dir: copies mirror the folders below the one the JSONs share
    (before, the "copies" overwrote the listed files in place)."""
    src = tmp_path / "src"
    for series in ("A", "B"):
        _page_json(src / series / "0001.json", f"/img/{series}/0001.jpg", f"/v/{series}/0001.json")
    json_list = tmp_path / "list.txt"
    json_list.write_text(f"{src}/A/0001.json\n{src}/B/0001.json\n", encoding="utf-8")
    perfect = tmp_path / "perfect.txt"
    perfect.write_text("/v/A/0001.json\n/v/B/0001.json\n", encoding="utf-8")
    out = tmp_path / "out"
    before = snapshot(tmp_path, out)
    args = [
        "--perfect_matches_file",
        str(perfect),
        "--json_dir",
        str(json_list),
        "--output_dir",
        str(out),
        "--create_filtered_data",
        "--write_list",
        "--no_progress",
    ]
    result = CliRunner().invoke(subset, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path, out) == before
    chosen = (out / LIST_NAME).read_text("utf-8").splitlines()
    assert chosen == [str(out / "A" / "0001.json"), str(out / "B" / "0001.json")]
    for path in chosen:
        dataspec.load(path)
