"""The model's arguments: everything needed to rebuild CLOSURE-Lite and feed it, carried by
every checkpoint (nanoGPT style), so evaluation and embedding need only the checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

CropMode = Literal["letterbox", "stretch"]

COMPOSITION_FEATURES = ("x", "y", "w", "h", "area", "log_aspect", "cx", "cy")
"""Per-panel composition features, each relative to the page size (aspect as log(w/h))."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input preprocessing of one CLOSURE-Lite model."""

    dim: int = 128
    """Width of panel atoms, panel states and page embeddings."""
    num_heads: int = 4
    """Heads of the attention pooling (and of the panel context encoder)."""
    temperature: float = 0.1
    """Softmax temperature of the attention pooling of panels into a page embedding."""
    context_layers: int = 2
    """Transformer layers that contextualize panels within their page."""
    dropout: float = 0.1
    image_size: int = 224
    """Panel crops are resized to image_size x image_size."""
    max_panels: int = 16
    """Panels per page kept (the first ones in reading order); pages are padded to this."""
    crop_mode: CropMode = "letterbox"
    """letterbox: keep the panel's aspect and pad; stretch: resize to a square (the seed)."""
    vocab_size: int = 16384
    """Hash buckets of the offline text tokenizer (id 0 is padding)."""
    max_tokens: int = 64
    """Tokens per panel text."""
    rtl: bool = False
    """Right-to-left reading (manga) for pages without a `reading_order`."""
    vision_model: str | None = None
    """A local pretrained vision model (transformers) instead of the small CNN."""
    text_model: str | None = None
    """A local pretrained text model (transformers) instead of the hashed n-gram encoder."""

    def __post_init__(self) -> None:
        checks = [
            (self.dim >= 8, f"dim must be >= 8, got {self.dim}"),
            (self.num_heads >= 1, f"num_heads must be >= 1, got {self.num_heads}"),
            (
                self.dim % max(self.num_heads, 1) == 0,
                f"dim {self.dim} must be divisible by num_heads {self.num_heads}",
            ),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.context_layers >= 0, "context_layers must be >= 0"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (self.image_size >= 16, f"image_size must be >= 16, got {self.image_size}"),
            (self.max_panels >= 1, f"max_panels must be >= 1, got {self.max_panels}"),
            (self.crop_mode in ("letterbox", "stretch"), f"unknown crop_mode {self.crop_mode!r}"),
            (self.vocab_size >= 2, "vocab_size must be >= 2"),
            (self.max_tokens >= 1, "max_tokens must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for config.json and checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from `to_dict` output; unknown keys are an error (a newer checkpoint)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}")
        return cls(**data)
