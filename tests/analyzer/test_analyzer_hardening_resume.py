"""Crash safety: `python -m analyzer` killed with SIGKILL in the middle of DataSpec emission
leaves no partial or corrupt JSON, and running the same command again finishes the work
with outputs byte-identical to an uninterrupted run (no `--resume` needed: a page file
that already holds the right bytes is left alone, the temp files the killed run left
beside this command's outputs are removed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import dataspec
from dataspec.sample import generate_corpus

COPIES = 400
"""Copies of a 12-page corpus: 4800 pages, a few seconds of emission on one worker."""
REPO = Path(__file__).resolve().parents[2]


def build_corpus(root: Path, copies: int) -> list[str]:
    """Predictions + VLM JSONs (no pixels) of `copies` renamed copies of a small corpus.

    Returns the VLM JSON paths relative to vlm/ in page order.
    """
    base = generate_corpus(root / "base", pages=12, seed=3)
    data = json.loads(base.coco_path.read_text("utf-8"))
    recs = [json.loads(line) for line in base.truth_path.read_text("utf-8").splitlines()]
    by_image: dict[str, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images = {img["id"]: img for img in data["images"]}
    out: dict[str, Any] = {"images": [], "annotations": [], "categories": data["categories"]}
    rels = []
    for k in range(copies):
        for rec in recs:
            series = f"{rec['series']} v{k:03d}"
            rel = f"{series}/{Path(rec['vlm_json']).name}"
            dest = root / "vlm" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base.vlm_dir / rec["vlm_json"], dest)
            rels.append(rel)
            old = rec["coco_image_id"]
            new = old.replace(f"\\{rec['series']}\\", f"\\{series}\\")
            out["images"].append({**images[old], "id": new})
            for ann in by_image.get(old, []):
                out["annotations"].append({**ann, "image_id": new, "id": len(out["annotations"])})
    (root / "predictions.json").write_text(json.dumps(out), encoding="utf-8")
    shutil.rmtree(root / "base")
    return sorted(rels)


def command(root: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "analyzer",
        "--coco",
        str(root / "predictions.json"),
        "--vlm_dir",
        str(root / "vlm"),
        "--output_csv",
        str(out / "analysis.csv"),
        "--num_workers",
        "1",
        "--emit_dataspec_everything",
        "--emit_all_json_lists",
        "--json_list_out",
        str(out / "lists"),
        "--emit_vlm_map",
        str(out / "map.json"),
        "--dataspec_out_dir",
        str(out / "ds"),
        "--dataspec_list_out",
        str(out / "list.txt"),
        "--dataspec_debug_skips_out",
        str(out / "skips.csv"),
        "--no_progress",
    ]


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_emission_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    rels = build_corpus(root, COPIES)
    out = tmp_path / "out"
    argv = command(root, out)

    # the uninterrupted run, moved aside
    ref = run(argv)
    assert ref.returncode == 0, ref.stderr
    reference = tree(out)
    written = [line for line in reference["list.txt"].decode().splitlines() if line]
    assert len(written) > 1000
    out.rename(tmp_path / "reference")

    # the same command, killed with SIGKILL while it writes page files
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    first = Path(written[0])
    deadline = time.monotonic() + 60
    try:
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = sorted((out / "ds").rglob("*.json"))
    assert 0 < len(partial) < len(written), "the run was not interrupted during emission"
    for path in partial:  # no partial or corrupt page file
        dataspec.load(path)
    assert not (out / "list.txt").exists() and not (out / "skips.csv").exists()
    assert set(map(str, partial)) <= set(written)
    left = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert left, "the analysis CSV is written through a temp file: one must be left"
    before = {p: p.stat().st_mtime_ns for p in partial}

    # a temp file as a kill during a page write leaves it, and one of someone else's
    folder = out / "ds" / Path(rels[-1]).parent
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".{Path(rels[-1]).name}.k1ll3d_x.tmp").write_bytes(b'{"page_image_path": "x", "pa')
    foreign = out / "ds" / ".not-ours.json.abcdefgh.tmp"
    foreign.write_bytes(b"someone else's")

    # the same command again finishes the work
    again = run(argv)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ref.stdout
    assert foreign.exists()
    foreign.unlink()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert tree(out) == reference
    # pages the killed run finished are not written again
    assert {p: p.stat().st_mtime_ns for p in partial} == before
