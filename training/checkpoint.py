"""Checkpoints: self-describing dicts of tensors and plain values, written atomically
(temp file + `os.replace`, via `dataspec.io.atomic_open`) and loadable with a plain
`torch.load(path)` (its default `weights_only=True` suffices)."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataspec.io import atomic_open

from .config import ModelConfig

FORMAT = "closure-lite/1"

log = logging.getLogger(__name__)

ADDED_PARAMETERS = {
    "atomizer.text_state.weight": "the text-state embedding (text present / none / unknown)",
    "next_head.prior": "the weights of the layout heuristic's candidate orders",
    "next_head.direction.0.weight": "the reading-direction head",
    "next_head.direction.0.bias": "the reading-direction head",
    "next_head.direction.2.weight": "the reading-direction head",
    "next_head.direction.2.bias": "the reading-direction head",
    "next_head.look_norm.shift": "the running look statistics of the reading-direction head",
    "next_head.look_norm.log_scale": "the running look statistics of the reading-direction head",
    "next_head.look_norm.seen": "the running look statistics of the reading-direction head",
}
"""Parameters newer than some checkpoints of this format, and what they are. A checkpoint
without them loads with them at zero (`load_model_state`), so the model computes what it
did before: for panels with text exactly so (panels without text, known-empty or unknown,
get no state marker until trained, and their text input is masked either way), the
candidate orders weigh nothing, and zero running look statistics leave the direction
head's input as it was."""


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


def not_ours(path: str | Path, why: str) -> ValueError:
    """The error for a file that is not a checkpoint this code can use."""
    return ValueError(f"{path} is not a CLOSURE-Lite checkpoint ({why})")


def _unreadable(path: str | Path, exc: Exception) -> str:
    """Why torch could not read `path`, in a few words (never torch's own advice)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        if isinstance(exc, pickle.UnpicklingError):
            return "a PyTorch file holding objects other than tensors and plain values"
        return "a damaged or truncated PyTorch file"
    if head.lstrip()[:1] in (b"{", b"["):
        return "a JSON file, not a PyTorch file"
    if head.startswith(b"\x80"):
        return "a pickle that is not a PyTorch checkpoint"
    return "not a PyTorch file"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; `ValueError` naming the file when it is not one of ours
    ("<path> is not a CLOSURE-Lite checkpoint (why)"; "no such checkpoint")."""
    if os.path.isdir(path):
        raise not_ours(path, "a folder")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # torch raises many types for a bad file
        raise not_ours(path, _unreadable(path, exc)) from None
    if not isinstance(state, dict):
        raise not_ours(path, f"a PyTorch file holding a {type(state).__name__}, not a dict")
    if state.get("format") != FORMAT:
        if "format" in state:
            why = f"format {str(state['format'])[:40]!r}, not {FORMAT!r}"
        elif state and all(isinstance(v, torch.Tensor) for v in state.values()):
            why = f"a bare state_dict ({len(state)} tensors), no {FORMAT!r} format tag"
        else:
            keys = ", ".join(map(str, list(state)[:5]))
            why = f"no {FORMAT!r} format tag; keys: {keys or 'none'}"
        raise not_ours(path, why)
    return state


def require(path: str | Path, state: dict[str, Any], keys: tuple[str, ...]) -> None:
    """`ValueError` (not ours) unless `state` has every one of `keys`."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise not_ours(path, f"format {FORMAT!r} but without {', '.join(missing)}")


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


def load_model_state(model: torch.nn.Module, weights: dict[str, Any], where: str) -> list[str]:
    """Load `weights` into `model`; returns the `ADDED_PARAMETERS` the weights lacked.

    Those are set to zero (see `ADDED_PARAMETERS`). Any other missing or unexpected key,
    or a shape that does not fit, is a `ValueError` naming `where`.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    added = [k for k in missing if k in ADDED_PARAMETERS]
    other = [k for k in missing if k not in ADDED_PARAMETERS]
    unexpected = [k for k in weights if k not in own]
    if other or unexpected:
        raise not_ours(
            where,
            f"its weights do not fit this model: missing {other[:5]}, unexpected {unexpected[:5]}",
        )
    full = {**weights, **{k: torch.zeros_like(own[k]) for k in added}}
    try:
        model.load_state_dict(full)
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3] or lines[:1]) or type(exc).__name__
        raise not_ours(where, f"its weights do not fit this model: {detail}") from None
    return added


def note_added(where: str, added: list[str]) -> None:
    """Log that a checkpoint predates `added` parameters and what was done about it."""
    if not added:
        return
    what = list(dict.fromkeys(ADDED_PARAMETERS[k] for k in added))
    effects = []
    if "atomizer.text_state.weight" in added:
        effects.append(
            "panels with text compute as before; panels without text, known-empty or "
            "unknown, get no text-state marker until trained, and their text input is "
            "masked either way"
        )
    if any(k.startswith("next_head.") and ".look_norm." not in k for k in added):
        effects.append("the reading order ignores the layout candidates until trained")
    if any(".look_norm." in k for k in added):
        effects.append(
            "the direction head sees the look statistics unstandardised, as it was trained, "
            "until training moves them"
        )
    log.warning(
        "%s predates %s: loaded with %s at zero (%s)",
        where,
        "; ".join(what),
        ", ".join(added),
        "; ".join(effects),
    )


def optimizer_state_for(
    saved: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    added: list[str],
) -> dict[str, Any]:
    """`saved`, an optimizer state written for `model` without the `added` parameters,
    remapped onto `optimizer` (built over all of `model`'s parameters, in the same
    groups): every old parameter keeps its moments, the added ones start without any.
    `ValueError` when the groups do not correspond."""
    if not added:
        return saved
    names = {id(p): n for n, p in model.named_parameters()}
    current = optimizer.state_dict()["param_groups"]
    group_names = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    old_groups = saved["param_groups"]
    kept = [[n for n in g if n not in added] for g in group_names]
    if len(old_groups) != len(kept) or any(
        len(o["params"]) != len(k) for o, k in zip(old_groups, kept, strict=False)
    ):
        raise ValueError("the optimizer state does not match the model's parameter groups")
    old_name = {
        i: n
        for o, k in zip(old_groups, kept, strict=True)
        for i, n in zip(o["params"], k, strict=True)
    }
    new_index = {
        n: i
        for c, g in zip(current, group_names, strict=True)
        for i, n in zip(c["params"], g, strict=True)
    }
    return {
        "state": {new_index[old_name[i]]: v for i, v in saved["state"].items()},
        "param_groups": [
            {**o, "params": c["params"]} for o, c in zip(old_groups, current, strict=True)
        ],
    }


def load_model(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Any, Any, dict[str, Any]]:
    """(model in eval mode on `device`, its ModelConfig, the checkpoint dict).

    A checkpoint older than some `ADDED_PARAMETERS` loads with them at zero, and a
    warning says so; weights that do not fit otherwise are a `ValueError`."""
    from .model import build_model

    state = load_checkpoint(path)
    require(path, state, ("model", "config"))
    config = model_config_of(path, state)
    if not isinstance(state["model"], dict):
        raise not_ours(path, "its 'model' entry is not a dict of weights")
    model = build_model(config)
    note_added(str(path), load_model_state(model, state["model"], str(path)))
    return model.to(device).eval(), config, state


def model_config_of(path: str | Path, state: dict[str, Any]) -> ModelConfig:
    """The checkpoint's `config` entry as a ModelConfig; `ValueError` (not ours) when it
    is not a usable model config."""
    raw = state.get("config")
    if not isinstance(raw, dict):
        raise not_ours(path, "its 'config' entry is not a dict")
    try:
        return ModelConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise not_ours(path, f"its model config is unusable: {exc}") from None
