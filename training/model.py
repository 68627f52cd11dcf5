"""CLOSURE-Lite "Simple" in one file.

    panel atoms   = gated fusion of a vision encoder (crop), a text encoder (lettered text)
                    and a composition encoder (box geometry), one atom per panel; a
                    modality the batch masks (text, unless the panel has known non-empty
                    text) adds nothing, and a learned text-state embedding tells "no
                    lettered text" from "text unknown"
    panel states  = a small transformer over the page's atoms (plus one page token)
    page          = attention pooling of panel states (`num_heads` heads, `temperature`)
    next panel    = bilinear(state_i, state_j) + an MLP on both boxes and their relation,
                    over every other real panel of the page, plus an "end" choice
    masked panel  = a panel's atom replaced by a mask token (its box kept); its content
                    is predicted from the page context (trained contrastively)
    page order    = a classifier on two page embeddings: forward / swapped / other book

The default encoders are trained from scratch and need no download. `vision_model` and
`text_model` in the config name local pretrained models loaded with `transformers`.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .batches import Batch
from .config import COMPOSITION_FEATURES, ModelConfig
from .data import MODALITIES, TEXT_PRESENT, TEXT_UNKNOWN

N_COMP = len(COMPOSITION_FEATURES)
N_PAIR = 2 * N_COMP + 8
N_LOOK = 10
"""Look statistics per page (`look_features`)."""
LOOK_GAIN = 8.0
"""The standardised look statistics enter the direction head at this gain: Adam moves a
weight by about the learning rate per step whatever its input's scale, so a larger input is
learnt in fewer steps (a few epochs of a few hundred pages, not dozens)."""
LOOK_MOMENTUM = 0.01
"""Weight of a batch in the running look statistics once 1 / LOOK_MOMENTUM pages are seen
(before that, every page seen weighs the same)."""
PRIOR_WEIGHT = 3.0
"""Initial weight of the layout heuristic's candidate orders in the next-panel scores."""


def _mlp(dims: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.GELU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- encoders


class SmallCNN(nn.Module):
    """Vision encoder trained from scratch: four strided convolutions, mean-pooled."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        widths = (32, 64, 128, 256)
        layers: list[nn.Module] = [
            nn.Conv2d(3, widths[0], 5, stride=4, padding=2),
            nn.GroupNorm(8, widths[0]),
            nn.GELU(),
        ]
        for a, b in itertools.pairwise(widths):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.GroupNorm(8, b), nn.GELU()]
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(widths[-1], dim)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 → (N, dim)."""
        x = crops.float() / 127.5 - 1.0
        return self.proj(self.features(x).mean(dim=(2, 3)))


class HashTextEncoder(nn.Module):
    """Text encoder for `HashTokenizer` ids: mean of n-gram embeddings, then an MLP."""

    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), _mlp([dim, dim, dim]))

    def forward(self, tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """(N, T) ids → (N, dim); an empty text gives the encoder's "no text" vector."""
        present = (tokens > 0).unsqueeze(-1)
        summed = (self.embed(tokens) * present).sum(1)
        return self.mlp(summed / present.sum(1).clamp(min=1))


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise RuntimeError(
            "--vision_model / --text_model load a local pretrained model with the "
            "`transformers` package, which is not installed (pip install transformers); "
            "without them the built-in CNN and hashed n-gram encoders need nothing"
        ) from exc
    return transformers


def _local_dir(path: str, what: str) -> str:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{what} {path!r} is not a local model folder (no downloads)")
    return path


class PretrainedVisionEncoder(nn.Module):
    """A local `transformers` vision model (e.g. ViT), pooled and projected to `dim`."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, path: str, dim: int) -> None:
        super().__init__()
        tf = _transformers()
        self.model = tf.AutoModel.from_pretrained(
            _local_dir(path, "--vision_model"), local_files_only=True
        )
        cfg = self.model.config
        self.input_size = getattr(cfg, "image_size", None)
        mean, std = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
        processor = Path(path) / "preprocessor_config.json"
        if processor.is_file():
            spec = json.loads(processor.read_text(encoding="utf-8"))
            mean, std = spec.get("image_mean", mean), spec.get("image_std", std)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.proj = nn.Linear(cfg.hidden_size, dim)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 → (N, dim)."""
        x = crops.float() / 255.0
        size = self.input_size
        if isinstance(size, int) and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        out = self.model(pixel_values=(x - self.mean) / self.std)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state[:, 0]
        return self.proj(pooled)


class PretrainedTextEncoder(nn.Module):
    """A local `transformers` text model (e.g. RoBERTa) with its tokenizer, mean-pooled."""

    def __init__(self, path: str, dim: int, max_tokens: int) -> None:
        super().__init__()
        tf = _transformers()
        folder = _local_dir(path, "--text_model")
        self.tokenizer = tf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = tf.AutoModel.from_pretrained(folder, local_files_only=True)
        self.max_tokens = max_tokens
        self.proj = nn.Linear(self.model.config.hidden_size, dim)

    def forward(self, tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Raw texts → (N, dim) (the hashed `tokens` are ignored)."""
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        ).to(self.proj.weight.device)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.proj((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))


# --------------------------------------------------------------------------- panels → page


class PanelAtomizer(nn.Module):
    """Per panel: vision, text and composition encoders, fused by learned gates.

    `batch.modality_mask` says which inputs a panel has: a masked one is zeroed before
    the gates, its gate is zeroed, and the remaining gated sum is scaled by
    3 / (inputs on), so a panel with vision and layout only is not scaled down. The text
    encoder runs only on panels whose text is on, so the tokens of an unknown (or empty)
    text never reach an atom. `text_state` (an embedding of `batch.text_state`, zero for
    panels with text) is added to the masked text slot of the gates' input and to the
    fused sum: "no lettered text" and "text unknown" are told apart, and neither is an
    all-zero dummy input.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.dim
        self.vision: nn.Module = (
            PretrainedVisionEncoder(cfg.vision_model, d) if cfg.vision_model else SmallCNN(d)
        )
        self.text: nn.Module = (
            PretrainedTextEncoder(cfg.text_model, d, cfg.max_tokens)
            if cfg.text_model
            else HashTextEncoder(cfg.vocab_size, d)
        )
        self.comp = _mlp([N_COMP, d, d])
        self.gate = nn.Linear(3 * d, 3 * d)
        self.norm = nn.LayerNorm(d)
        self.content = nn.Linear(2 * d, d)
        self.text_state = nn.Embedding(TEXT_UNKNOWN + 1, d, padding_idx=TEXT_PRESENT)
        with torch.no_grad():  # small, like the mask token; the TEXT_PRESENT row stays 0
            nn.init.normal_(self.text_state.weight, std=0.02)
            self.text_state.weight[TEXT_PRESENT].zero_()

    def _encode_text(self, batch: Batch, on: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(N, d) text features: the encoder's on the panels where `on`, zero elsewhere."""
        out = like.new_zeros(like.shape)
        index = on.nonzero().flatten()
        if index.numel():
            rows = index.tolist()
            encoded = self.text(batch.tokens[index], [batch.texts[i] for i in rows])
            out = out.to(encoded.dtype).index_put((index,), encoded)
        return out

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(vision (N, d), text (N, d)) encoder outputs of the real panels, before fusion;
        text is zero where the panel's text is off (unknown or none)."""
        v = self.vision(batch.crops)
        on = batch.modality_mask[batch.panel_mask]
        return v, self._encode_text(batch, on[:, 1], v)

    def forward(
        self, batch: Batch, encoded: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(atoms (B, P, d), content (N, d) of real panels, composition embedding (B, P, d));
        `encoded` is `encode(batch)` when the caller has it already."""
        comp = self.comp(batch.comp)
        b, p, d = comp.shape
        if batch.crops.shape[0] == 0:
            empty = comp.new_zeros((0, d))
            return comp.new_zeros((b, p, d)), empty, comp
        real = batch.panel_mask
        on = batch.modality_mask[real]  # (N, 3): vision, text, layout
        v, t = encoded if encoded is not None else self.encode(batch)
        c = comp[real]
        x = torch.stack([v, t.to(v.dtype), c.to(v.dtype)], 1)  # (N, 3, d)
        x = torch.where(on.unsqueeze(-1), x, torch.zeros_like(x))  # masked inputs: nothing
        state = self.text_state(batch.text_state[real].clamp(min=0)).to(x.dtype)
        vt = torch.cat([x[:, 0], x[:, 1] + state], -1)
        gates = torch.sigmoid(self.gate(torch.cat([vt, x[:, 2]], -1))).view(-1, len(MODALITIES), d)
        gates = gates * on.unsqueeze(-1)
        scale = (len(MODALITIES) / on.sum(1, keepdim=True).clamp(min=1)).to(x.dtype)
        fused = self.norm(scale * (gates * x).sum(1) + state)
        atoms = fused.new_zeros((b, p, d)).index_put((real.nonzero(as_tuple=True)), fused)
        return atoms, self.content(vt), comp


class PanelContext(nn.Module):
    """A transformer over a page's panel atoms and one learned page token."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.page_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02)
        self.encoder: nn.Module | None = None
        if cfg.context_layers:
            layer = nn.TransformerEncoderLayer(
                cfg.dim,
                cfg.num_heads,
                dim_feedforward=2 * cfg.dim,
                dropout=cfg.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(
                layer, cfg.context_layers, enable_nested_tensor=False
            )
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(
        self, atoms: torch.Tensor, panel_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(panel states (B, P, d), page-token state (B, d)); padding never attended to."""
        x = torch.cat([self.page_token.expand(atoms.shape[0], 1, -1), atoms], 1)
        if self.encoder is not None:
            pad = torch.cat([panel_mask.new_zeros((atoms.shape[0], 1)), ~panel_mask], 1)
            x = self.encoder(x, src_key_padding_mask=pad)
        x = self.norm(x)
        return x[:, 1:], x[:, 0]


class AttentionPool(nn.Module):
    """Learned queries (one per head) attend over panel states → one page embedding.

    Scores are scaled by 1/sqrt(head_dim) and divided by `temperature`; the page token
    is always attendable, so a page without panels still gets an embedding.
    """

    def __init__(self, dim: int, heads: int, temperature: float) -> None:
        super().__init__()
        self.heads, self.temperature = heads, temperature
        self.query = nn.Parameter(torch.randn(heads, dim // heads) * 0.02)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, states: torch.Tensor, page_state: torch.Tensor, panel_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(page embeddings (B, d), attention weights (B, heads, 1 + P))."""
        x = torch.cat([page_state.unsqueeze(1), states], 1)
        b, n, d = x.shape
        k = self.key(x).view(b, n, self.heads, d // self.heads)
        v = self.value(x).view(b, n, self.heads, d // self.heads)
        scores = torch.einsum("hc,bnhc->bhn", self.query, k) / (
            math.sqrt(d // self.heads) * self.temperature
        )
        keep = torch.cat([panel_mask.new_ones((b, 1)), panel_mask], 1)
        weights = scores.masked_fill(~keep.unsqueeze(1), float("-inf")).softmax(-1)
        pooled = torch.einsum("bhn,bnhc->bhc", weights, v).reshape(b, d)
        return self.norm(self.out(pooled)), weights


def pair_features(comp: torch.Tensor) -> torch.Tensor:
    """(B, P, 8) composition → (B, P, P, 24): both panels' features and their relation
    (centre offsets, gaps between edges, edge offsets, overlap along x and along y)."""
    b, p, f = comp.shape
    src = comp.unsqueeze(2).expand(b, p, p, f)
    dst = comp.unsqueeze(1).expand(b, p, p, f)
    xs, ys, ws, hs = src[..., 0], src[..., 1], src[..., 2], src[..., 3]
    xd, yd, wd, hd = dst[..., 0], dst[..., 1], dst[..., 2], dst[..., 3]

    def overlap(
        a0: torch.Tensor, al: torch.Tensor, b0: torch.Tensor, bl: torch.Tensor
    ) -> torch.Tensor:
        inter = torch.minimum(a0 + al, b0 + bl) - torch.maximum(a0, b0)
        return (inter / torch.minimum(al, bl).clamp(min=1e-4)).clamp(-1.0, 1.0)

    rel = torch.stack(
        [
            dst[..., 6] - src[..., 6],
            dst[..., 7] - src[..., 7],
            xd - (xs + ws),
            yd - (ys + hs),
            xd - xs,
            yd - ys,
            overlap(xs, ws, xd, wd),
            overlap(ys, hs, yd, hd),
        ],
        -1,
    )
    return torch.cat([src, dst, rel], -1)


def look_features(crops: torch.Tensor, panel_mask: torch.Tensor) -> torch.Tensor:
    """(B, N_LOOK) what a page looks like, averaged over its panels' crops: colour (mean and
    spread per channel, saturation) and texture (grey-level differences at one and two
    pixels, and a Laplacian, on a log scale: screentone and hatching are fine texture, flat
    colour is not), each scaled to about unit range. Fixed statistics, no weights: the
    reading-direction head learns what they mean."""
    b = panel_mask.shape[0]
    out = torch.zeros((b, N_LOOK), device=panel_mask.device)
    if crops.shape[0] == 0:
        return out
    x = crops.float() / 255.0
    g = x.mean(1)
    stats = [
        x.mean((2, 3)),
        x.std((2, 3)),
        (x.max(1).values - x.min(1).values).mean((1, 2)).unsqueeze(1),
    ]
    dx1 = (g[:, :, 1:] - g[:, :, :-1]).abs().mean((1, 2))
    dy1 = (g[:, 1:, :] - g[:, :-1, :]).abs().mean((1, 2))
    dx2 = (g[:, :, 2:] - g[:, :, :-2]).abs().mean((1, 2))
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2]
    lap = (lap - g[:, 1:-1, 2:]).abs().mean((1, 2))
    texture = torch.stack([dx1 + dy1, dx2, lap], 1).clamp(min=1e-4).log() / 4.0 + 1.0
    per_panel = torch.cat([torch.cat(stats, 1) * 4.0 - 2.0, texture], 1)
    rows = panel_mask.nonzero(as_tuple=True)[0]
    out = out.index_add(0, rows, per_panel.to(out.dtype))
    return out / panel_mask.sum(1, keepdim=True).clamp(min=1).to(out.dtype)


class LookNorm(nn.Module):
    """Standardises `look_features` by their running mean and spread over the training
    pages: the statistics sit far from zero and differ between kinds of page by a fraction
    of their value, and an uncentred input is learnt only as fast as a bias can cancel it.

    The buffers hold the shift and the log of the scale, so zeros (a checkpoint from before
    them, see `ADDED_PARAMETERS`) pass the statistics through unchanged. They move only in
    training mode, on pages with panels; evaluation uses them as they are.
    """

    def __init__(self, n: int = N_LOOK) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(n))
        self.register_buffer("log_scale", torch.zeros(n))
        self.register_buffer("seen", torch.zeros(()))
        self.shift: torch.Tensor
        self.log_scale: torch.Tensor
        self.seen: torch.Tensor

    def forward(self, look: torch.Tensor, has_panels: torch.Tensor) -> torch.Tensor:
        """(B, n) standardised statistics; `has_panels` (B,) marks the pages that update
        the running values."""
        if self.training and bool(has_panels.any()):
            with torch.no_grad():
                x = look[has_panels].float()
                n = float(x.shape[0])
                w = max(LOOK_MOMENTUM, n / (float(self.seen) + n))
                mean = self.shift + w * (x.mean(0) - self.shift)
                var = (1 - w) * torch.exp(-2 * self.log_scale) + w * ((x - mean) ** 2).mean(0)
                self.shift.copy_(mean)
                self.log_scale.copy_(-0.5 * var.clamp(min=1e-4).log())
                self.seen.add_(n)
        return (look - self.shift) * torch.exp(self.log_scale)


class NextPanelHead(nn.Module):
    """Scores for "which panel comes after panel i": every other real panel, or the end.

    score(i, j) = <W_q s_i, W_k s_j> / sqrt(d) + MLP(pair features of boxes i and j)
    + w_next * [j follows i in the layout order of the page's direction];
    end(i) and start(j) are MLPs of a panel's state and composition, plus w_end / w_start
    when i is last / j is first in that order. The direction is a belief, not a flag:
    p(right to left) = sigmoid(MLP(page embedding, standardised `look_features`)), learnt
    from what the page looks like (the labels say which candidate order held), and each
    candidate weighs by it.
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.pair = _mlp([N_PAIR, hidden, hidden, 1])
        self.end = _mlp([dim + N_COMP, hidden, 1])
        self.start = _mlp([dim + N_COMP, hidden, 1])
        self.direction = _mlp([dim + N_LOOK, hidden, 1])
        self.look_norm = LookNorm()
        self.prior = nn.Parameter(torch.full((3,), PRIOR_WEIGHT))
        """Weights of the candidate order for next, start and end."""

    def forward(
        self,
        states: torch.Tensor,
        comp: torch.Tensor,
        panel_mask: torch.Tensor,
        candidates: torch.Tensor,
        page: torch.Tensor,
        look: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(next logits (B, P, P + 1) with column P = end, start logits (B, P), direction
        logits (B,): log odds right to left).

        `candidates` (B, P, 2): slot ranks in the left-to-right and right-to-left layout
        orders (-1 padding); `look` (B, N_LOOK) the page's `look_features`. Padding
        candidates and panel i itself are -inf.
        """
        _b, p, d = states.shape
        scores = self.q(states) @ self.k(states).transpose(1, 2) / math.sqrt(d)
        scores = scores + self.pair(pair_features(comp)).squeeze(-1)
        look = LOOK_GAIN * self.look_norm(look, panel_mask.any(1)).to(page.dtype)
        direction = self.direction(torch.cat([page, look], -1)).squeeze(-1)
        rtl = torch.sigmoid(direction)
        n = panel_mask.sum(1, keepdim=True)
        follows, first, last = [], [], []
        for col in (0, 1):
            rank = candidates[..., col]
            follows.append((rank.unsqueeze(1) == rank.unsqueeze(2) + 1).to(states.dtype))
            first.append((rank == 0).to(states.dtype))
            last.append((rank == n - 1).to(states.dtype))
        w_rtl, w_ltr = rtl.view(-1, 1, 1), 1 - rtl.view(-1, 1, 1)
        scores = scores + self.prior[0] * (w_rtl * follows[1] + w_ltr * follows[0])
        eye = torch.eye(p, dtype=torch.bool, device=states.device)
        invalid = eye.unsqueeze(0) | ~panel_mask.unsqueeze(1)
        scores = scores.masked_fill(invalid, float("-inf"))
        own = torch.cat([states, comp], -1)
        w_rtl, w_ltr = w_rtl.squeeze(-1), w_ltr.squeeze(-1)
        end = self.end(own).squeeze(-1) + self.prior[2] * (w_rtl * last[1] + w_ltr * last[0])
        logits = torch.cat([scores, end.unsqueeze(-1)], -1)
        start = self.start(own).squeeze(-1) + self.prior[1] * (w_rtl * first[1] + w_ltr * first[0])
        start = start.masked_fill(~panel_mask, float("-inf"))
        return logits, start, direction


class ClosureLite(nn.Module):
    """CLOSURE-Lite "Simple": atomizer, panel context, attention pooling and three heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.dim
        self.atomizer = PanelAtomizer(config)
        self.context = PanelContext(config)
        self.pool = AttentionPool(d, config.num_heads, config.temperature)
        self.next_head = NextPanelHead(d)
        self.mask_token = nn.Parameter(torch.randn(d) * 0.02)
        self.mpm_head = nn.Sequential(nn.LayerNorm(d), _mlp([d, d, d]))
        self.order_head = _mlp([4 * d, d, 3], dropout=config.dropout)

    def forward(
        self, batch: Batch, mpm_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Everything the losses and metrics need.

        Keys: `states` (B, P, d), `page` (B, d), `next_logits` (B, P, P + 1),
        `start_logits` (B, P), `direction_logits` (B,), `order_logits` (K, 3); with a
        non-empty `mpm_mask` (B, P) also `mpm_pred` (M, d), `mpm_content` (N, d),
        `mpm_index` (M,) — which of the N real panels each masked one is — and
        `mpm_known` (M,) bool: False where the masked panel's text is unknown (its content
        has no text part: not a target).
        """
        atoms, content, comp = self.atomizer(batch)
        states, page_state = self.context(atoms, batch.panel_mask)
        page, _ = self.pool(states, page_state, batch.panel_mask)
        candidates = batch.candidates
        if candidates.shape[:2] != batch.panel_mask.shape:  # a batch built without them
            candidates = torch.full((*batch.panel_mask.shape, 2), -1, device=page.device)
        look = look_features(batch.crops, batch.panel_mask)
        next_logits, start_logits, direction = self.next_head(
            states, batch.comp, batch.panel_mask, candidates, page, look
        )
        pairs = batch.pairs
        a, b = page[pairs[:, 0]], page[pairs[:, 1]]
        out = {
            "states": states,
            "page": page,
            "next_logits": next_logits,
            "start_logits": start_logits,
            "direction_logits": direction,
            "order_logits": self.order_head(torch.cat([a, b, a * b, a - b], -1)),
        }
        if mpm_mask is not None and bool(mpm_mask.any()):
            hidden = self.mask_token + comp
            masked = torch.where(mpm_mask.unsqueeze(-1), hidden, atoms)
            masked_states, _ = self.context(masked, batch.panel_mask)
            flat_index = batch.panel_mask.flatten().cumsum(0).view_as(mpm_mask) - 1
            out["mpm_pred"] = self.mpm_head(masked_states[mpm_mask])
            out["mpm_content"] = content
            out["mpm_index"] = flat_index[mpm_mask]
            out["mpm_known"] = batch.text_state[mpm_mask] != TEXT_UNKNOWN
        return out

    @torch.no_grad()
    def embed(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The embeddings a search store keeps, in one pass: `page` (B, d), `states`
        (B, P, d) panel states in their page's context, `vision` and `text` (N, d) encoder
        outputs of the real panels (text zero where off), and `page_image` (B, d), the
        vision encoder on each whole page (`batch.page_crops`; (0, d) when the batch has
        none), comparable with `encode_images` of an image file."""
        encoded: tuple[torch.Tensor, torch.Tensor] | None = None
        if batch.crops.shape[0]:
            encoded = self.atomizer.encode(batch)
        atoms, _, _ = self.atomizer(batch, encoded)
        states, page_state = self.context(atoms, batch.panel_mask)
        page, _ = self.pool(states, page_state, batch.panel_mask)
        d = page.shape[-1]
        vision, text = encoded if encoded is not None else (page.new_zeros((0, d)),) * 2
        page_image = (
            self.atomizer.vision(batch.page_crops)
            if batch.page_crops.shape[0]
            else page.new_zeros((0, d))
        )
        return {
            "page": page,
            "states": states,
            "vision": vision,
            "text": text,
            "page_image": page_image,
        }

    @torch.no_grad()
    def encode_images(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) uint8 crops → (N, d) vision-encoder embeddings."""
        return self.atomizer.vision(crops)

    @torch.no_grad()
    def encode_texts(self, tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """(N, T) token ids of `texts` → (N, d) text-encoder embeddings (as panels get)."""
        return self.atomizer.text(tokens, texts)


def sample_mpm_mask(
    panel_mask: torch.Tensor, ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """Panels to mask: each real panel with probability `ratio`, at least one and never
    all of a page with two or more panels; none on pages with fewer."""
    noise = torch.rand(panel_mask.shape, generator=generator).to(panel_mask.device)
    counts = panel_mask.sum(1, keepdim=True)
    eligible = panel_mask & (counts >= 2)
    mask = eligible & (noise < ratio)
    rows = torch.arange(panel_mask.shape[0], device=panel_mask.device)
    lowest = noise.masked_fill(~panel_mask, 2.0).argmin(1)
    mask[rows, lowest] |= eligible[rows, lowest]
    full = mask.sum(1, keepdim=True) == counts
    highest = noise.masked_fill(~panel_mask, -1.0).argmax(1)
    mask[rows, highest] &= ~full.squeeze(1)
    return mask


def build_model(config: ModelConfig) -> ClosureLite:
    """A fresh model for `config` (pretrained encoders are loaded from their local path)."""
    return ClosureLite(config)
