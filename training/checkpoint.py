"""Checkpoints: self-describing dicts of tensors and plain values, written atomically
(temp file + `os.replace`, via `dataspec.io.atomic_open`) and loadable with a plain
`torch.load(path)` (its default `weights_only=True` suffices)."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataspec.io import atomic_open

FORMAT = "closure-lite/1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (plus the format tag) to `path` atomically and durably: a temp file
    beside it, flushed to disk, then renamed over it (a symlink at `path` is replaced,
    never followed). A kill at any moment leaves the previous checkpoint or the new one."""
    with atomic_open(path, "wb") as fh:
        torch.save({"format": FORMAT, **state}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; `ValueError` naming the file when it is not one of ours."""
    try:
        state = torch.load(path, map_location=map_location)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a CLOSURE-Lite checkpoint (format {FORMAT!r})")
    return state


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states, as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss = random.getstate()
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode on `device`, its ModelConfig, the checkpoint dict)."""
    from .config import ModelConfig
    from .model import build_model

    state = load_checkpoint(path)
    config = ModelConfig.from_dict(state["config"])
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config, state
