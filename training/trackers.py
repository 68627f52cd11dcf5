"""Optional experiment trackers, used only when asked for (`--report_to`) and installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRACKERS = ("none", "tensorboard", "wandb")


class Tracker:
    """Logs flat numeric metrics per epoch to TensorBoard or Weights & Biases."""

    def __init__(self, kind: str, output_dir: Path, config: dict[str, Any]) -> None:
        self.kind = kind
        self._run: Any = None
        if kind == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError(
                    "--report_to tensorboard needs the `tensorboard` package (not installed)"
                ) from exc
            self._run = SummaryWriter(str(output_dir / "tensorboard"))
        elif kind == "wandb":
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError(
                    "--report_to wandb needs the `wandb` package (not installed)"
                ) from exc
            self._run = wandb.init(project="closure-lite", dir=str(output_dir), config=config)
        elif kind != "none":
            raise ValueError(f"unknown tracker {kind!r}; choose from {TRACKERS}")

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record `metrics` at `step`."""
        if self.kind == "tensorboard":
            for key, value in metrics.items():
                self._run.add_scalar(key, value, step)
        elif self.kind == "wandb":
            self._run.log(metrics, step=step)

    def close(self) -> None:
        """Flush and close."""
        if self._run is not None:
            self._run.close() if self.kind == "tensorboard" else self._run.finish()
