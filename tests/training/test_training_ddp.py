"""`torchrun --nproc_per_node 2 -m training ...`: DDP over gloo with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from training.synthetic import SyntheticCorpus

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_cpu_processes(
    corpus: SyntheticCorpus, tiny: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "training",
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
        "--epochs",
        "2",
        "--batch_size",
        "2",
        "--device",
        "cpu",
        *tiny,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    train_pages, val_pages = config["pages"]["train"], config["pages"]["val"]
    # a distributed sampler: both ranks together see every training page each epoch (the
    # last batch may repeat so that the ranks take equal steps); validation exactly once
    assert all(train_pages <= r["pages"] <= train_pages + 2 for r in records)
    assert all(r["val"]["pages"] == val_pages for r in records)
    assert records[0]["step"] == config["steps_per_epoch"]
    assert (out / "latest.pt").is_file() and not list(out.glob(".*.tmp"))
