"""Crash safety: `python -m training` killed with SIGKILL in the middle of an epoch leaves
a loadable latest.pt (never a partial one), and `--resume` finishes the run exactly as an
uninterrupted run does: same epochs, same step numbers, same metrics, bit-identical weights.

Why exact equality holds after a mid-epoch kill: `--save_steps` checkpoints record the
batch position within the epoch and the epoch's running sums; the batch order is seeded
by (seed, epoch), the panel slot order by (seed, epoch, page), the masked panels and
dropout by (seed, epoch, step), and optimizer, scheduler and RNG states are restored; the
resumed run skips the batches already trained (without loading them) and goes on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.synthetic import SyntheticCorpus
from training.train import remove_stale_temps

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _argv(corpus: SyntheticCorpus, tiny: list[str], out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "training",
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--batch_size",
        "2",
        "--epochs",
        "3",
        "--val_fraction",
        "0.25",
        "--save_steps",
        "1",
        *tiny,
    ]


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("seconds", "pages_per_s")}
        for line in lines
    ]


def _peek(path: Path) -> dict[str, Any] | None:
    try:
        state = torch.load(path)
    except (FileNotFoundError, EOFError, RuntimeError):
        return None
    return {"epoch": state["epoch"], "position": state["position"], "step": state["step"]}


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path
) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    with (tmp_path / "reference.log").open("wb") as log:
        # the uninterrupted reference runs alongside (one thread each: same arithmetic)
        reference = subprocess.Popen(
            _argv(corpus, tiny, whole), env=ENV, stdout=subprocess.DEVNULL, stderr=log
        )
        victim = subprocess.Popen(
            _argv(corpus, tiny, killed),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _kill_inside_epoch_2(victim, killed)
            _resume_and_compare(corpus, tiny, killed, whole, reference, tmp_path)
        finally:
            for process in (victim, reference):
                if process.poll() is None:
                    process.kill()
                    process.wait()


def _kill_inside_epoch_2(victim: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        seen = _peek(out / "latest.pt")
        # a checkpoint inside epoch 2 (epoch 1 complete): kill it there
        if seen and seen["epoch"] == 1 and seen["position"] is not None:
            break
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"


def _resume_and_compare(
    corpus: SyntheticCorpus,
    tiny: list[str],
    killed: Path,
    whole: Path,
    reference: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    # what the kill left: a complete checkpoint that plain torch.load reads, mid-epoch 2
    state = torch.load(killed / "latest.pt")
    assert state["epoch"] == 1 and state["position"]["epoch"] == 1
    position = state["position"]["batch"]
    assert 1 <= position < 9  # 18 training pages, batch 2: 9 batches per epoch
    assert [r["epoch"] for r in state["history"]] == [1]
    assert not (killed / "metrics.jsonl").exists() or len(_records(killed)) == 1
    # a temp file a kill can leave while writing (never read; removed by the next run)
    (killed / ".latest.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")

    resumed = subprocess.run(
        [*_argv(corpus, tiny, killed), "--resume"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from epoch 1 batch {position} (step {state['step']})" in resumed.stderr
    assert reference.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    assert not list(killed.glob(".*.tmp"))
    again, original = _records(killed), _records(whole)
    assert [r["epoch"] for r in again] == [1, 2, 3]
    assert [r["step"] for r in again] == [r["step"] for r in original] == [9, 18, 27]
    assert again == original  # losses, validation metrics, counts: all identical
    final, reference_final = torch.load(killed / "latest.pt"), torch.load(whole / "latest.pt")
    assert final["epoch"] == reference_final["epoch"] == 3 and final["position"] is None
    for key, tensor in reference_final["model"].items():
        assert torch.equal(final["model"][key], tensor), key
    best, reference_best = torch.load(killed / "best.pt"), torch.load(whole / "best.pt")
    assert best["best"] == reference_best["best"]


def test_a_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(3)})
    with pytest.raises(Exception, match=r"lambda|pickle|Can.t"):
        save_checkpoint(path, {"epoch": 2, "weights": torch.zeros(3), "bad": lambda: 0})
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]  # no temp file left


def test_stale_temp_files_only_ours_are_removed(tmp_path: Path) -> None:
    ours = [".latest.pt.a1b2.tmp", ".epoch_12.pt.x.tmp", ".metrics.jsonl.q.tmp"]
    theirs = [".notes.txt.a.tmp", "latest.pt", ".latest.pt", "keep.tmp"]
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b"x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.bin"
    outside.write_bytes(b"precious")
    (tmp_path / ".best.pt.link.tmp").symlink_to(outside)  # a link is unlinked, not followed
    assert remove_stale_temps(tmp_path) == len(ours) + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs)
    assert outside.read_bytes() == b"precious"
