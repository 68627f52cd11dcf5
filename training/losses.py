"""The three CLOSURE-Lite objectives. Each returns a scalar; `closure_losses` returns a
dict of the weighted terms and their sum (`total`), which the trainer backpropagates.

Unlike the seed, every term carries a learning signal:
- next panel: cross-entropy over all other real panels of the page plus "end" (and, for
  the first panel, over all real panels); pages with one panel have nothing to choose
  and are left out;
- masked panel: InfoNCE between the prediction for a masked panel and the content
  embeddings of every real panel in the batch — the other panels are the negatives, so
  it cannot collapse to a constant (targets are centred on their batch mean first, which
  removes what all panels share and keeps the loss off its initial plateau). A masked
  panel whose text is unknown (`text_known: false`) is no target: its content has no text
  part to predict, so it is left out of the loss (it stays a negative for the others: its
  content is its crop and the "unknown" state marker, never an empty-text feature);
- page order: 3-way cross-entropy on real page pairs (forward / swapped / other book);
- reading direction: binary cross-entropy of the page's right-to-left belief on the pages
  whose order label is exactly one of the two layout candidates (left to right or right to
  left): what the page looks like must tell which holds.

Order targets (next panel, direction) come only from pages whose labels the dataset marks
as targets (`PageDataset(order_labels=...)`: by default orders independent of the layout
heuristic), so a model is never taught to copy the heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .batches import Batch


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term in `total` (0 switches a term off)."""

    next: float = 1.0
    mpm: float = 0.5
    order: float = 0.25
    mpm_temperature: float = 0.1
    direction: float = 1.0


def _zero(out: dict[str, torch.Tensor]) -> torch.Tensor:
    return out["page"].sum() * 0.0  # finite (logits hold -inf), keeps the graph


def next_panel_loss(out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Mean cross-entropy of every "what comes next" and "what comes first" choice."""
    rows = batch.next_target >= 0
    firsts = batch.first_target >= 0
    count = int(rows.sum()) + int(firsts.sum())
    if count == 0:
        return _zero(out)
    total = F.cross_entropy(
        out["next_logits"][rows].float(), batch.next_target[rows], reduction="sum"
    )
    total = total + F.cross_entropy(
        out["start_logits"][firsts].float(), batch.first_target[firsts], reduction="sum"
    )
    return total / count


def masked_panel_loss(out: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """InfoNCE: each masked panel's prediction against every real panel's content
    (centred on the batch mean, L2-normalized), at `temperature`. Masked panels whose
    text is unknown (`mpm_known` False) are not targets and are left out."""
    if "mpm_pred" not in out:
        return _zero(out)
    pred, index = out["mpm_pred"], out["mpm_index"]
    known = out.get("mpm_known")
    if known is not None:
        pred, index = pred[known], index[known]
    if index.numel() == 0:
        return _zero(out)
    pred = F.normalize(pred.float(), dim=-1)
    content = out["mpm_content"].float()
    content = F.normalize(content - content.mean(0, keepdim=True), dim=-1)
    logits = pred @ content.T / temperature
    return F.cross_entropy(logits, index)


def page_order_loss(out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Cross-entropy of forward / swapped / other-book on the batch's page pairs."""
    if batch.pairs.shape[0] == 0:
        return _zero(out)
    return F.cross_entropy(out["order_logits"].float(), batch.pairs[:, 2])


def direction_loss(out: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """Binary cross-entropy of the right-to-left belief on pages with a direction target."""
    target = batch.direction
    rows = target >= 0
    if "direction_logits" not in out or not bool(rows.any()):
        return _zero(out)
    logits = out["direction_logits"][rows].float()
    return F.binary_cross_entropy_with_logits(logits, target[rows].to(logits.dtype))


def closure_losses(
    out: dict[str, torch.Tensor], batch: Batch, weights: LossWeights
) -> dict[str, torch.Tensor]:
    """{"next", "mpm", "order", "direction"} (unweighted) and "total" (their weighted sum)."""
    terms = {
        "next": next_panel_loss(out, batch),
        "mpm": masked_panel_loss(out, weights.mpm_temperature),
        "order": page_order_loss(out, batch),
        "direction": direction_loss(out, batch),
    }
    terms["total"] = (
        weights.next * terms["next"]
        + weights.mpm * terms["mpm"]
        + weights.order * terms["order"]
        + weights.direction * terms["direction"]
    )
    return terms
