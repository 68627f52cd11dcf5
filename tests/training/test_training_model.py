"""CLOSURE-Lite: every objective is a real learning signal for every encoder."""

from __future__ import annotations

import pytest
import torch

from training.batches import Batch, PagePairBatchSampler, collate
from training.config import ModelConfig
from training.data import PageDataset
from training.losses import (
    LossWeights,
    closure_losses,
    masked_panel_loss,
    next_panel_loss,
    page_order_loss,
)
from training.model import build_model, pair_features, sample_mpm_mask
from training.synthetic import SyntheticCorpus

CFG = ModelConfig(
    image_size=32,
    dim=32,
    num_heads=2,
    vocab_size=1024,
    max_tokens=16,
    context_layers=1,
    dropout=0.0,
)


@pytest.fixture(scope="module")
def batch(corpus: SyntheticCorpus) -> Batch:
    """Eight pages of three books, in pairs: every objective has examples."""
    ds = PageDataset(corpus.pages, image_root=str(corpus.image_root), config=CFG)
    keys = next(iter(PagePairBatchSampler(ds.keys, 8, seed=0)))
    out = collate([ds[k] for k in keys], CFG.max_panels)
    assert out.pairs.shape[0] and (out.next_target >= 0).any()
    return out


def _mask(batch: Batch, seed: int = 0) -> torch.Tensor:
    return sample_mpm_mask(batch.panel_mask, 0.25, torch.Generator().manual_seed(seed))


ENCODERS = ("atomizer.vision.", "atomizer.text.", "atomizer.comp.")


@pytest.mark.parametrize(
    "term",
    [
        pytest.param("next", id="next-panel"),
        pytest.param("mpm", id="masked-panel"),
        pytest.param("order", id="page-order"),
    ],
)
def test_every_term_gives_every_encoder_a_gradient(batch: Batch, term: str) -> None:
    torch.manual_seed(0)
    model = build_model(CFG)
    losses = closure_losses(model(batch, _mask(batch)), batch, LossWeights())
    assert losses[term].item() > 0
    losses[term].backward()
    for prefix in ENCODERS:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), (term, prefix)


def test_masked_panel_loss_is_not_a_tensor_against_itself(batch: Batch) -> None:
    # The seed compared a tensor with itself (always 0). Ours is InfoNCE against every
    # panel of the batch: near log(N) for an untrained model, and it depends on the mask.
    torch.manual_seed(0)
    model = build_model(CFG).eval()
    n = int(batch.panel_mask.sum())
    first = masked_panel_loss(model(batch, _mask(batch, 0)), 0.1).item()
    second = masked_panel_loss(model(batch, _mask(batch, 1)), 0.1).item()
    assert 0.2 * torch.log(torch.tensor(float(n))).item() < first and first != second


def test_next_panel_candidates_are_every_other_real_panel(batch: Batch) -> None:
    # The seed masked every candidate but the target (loss always 0). Ours: all other real
    # panels of the page and "end" are candidates; padding and the panel itself are not.
    model = build_model(CFG).eval()
    with torch.no_grad():
        out = model(batch)
    logits = out["next_logits"]
    for row in range(len(batch)):
        n = int(batch.panel_mask[row].sum())
        for i in range(n):
            finite = torch.isfinite(logits[row, i]).nonzero().flatten().tolist()
            assert finite == [j for j in range(n) if j != i] + [CFG.max_panels]
    assert next_panel_loss(out, batch).item() > 0.1


def test_page_order_labels_vary(batch: Batch) -> None:
    labels = batch.pairs[:, 2].tolist()
    assert {0, 1, 2} <= set(labels) or {0, 1} <= set(labels)
    model = build_model(CFG).eval()
    with torch.no_grad():
        assert page_order_loss(model(batch), batch).item() > 0.1


def test_pair_features_see_both_boxes_and_their_relation() -> None:
    comp = torch.tensor(
        [[[0.0, 0.0, 0.5, 0.5, 0.25, 0.0, 0.25, 0.25], [0.5, 0.0, 0.5, 0.5, 0.25, 0.0, 0.75, 0.25]]]
    )
    f = pair_features(comp)
    assert f.shape == (1, 2, 2, 24)
    assert torch.equal(f[0, 0, 1, :8], comp[0, 0]) and torch.equal(f[0, 0, 1, 8:16], comp[0, 1])
    dx, dy, gap_x, gap_y, _, _, overlap_x, overlap_y = f[0, 0, 1, 16:].tolist()
    assert (dx, dy, gap_x, overlap_y) == (0.5, 0.0, 0.0, 1.0)
    assert overlap_x == 0.0 and gap_y == -0.5


def test_a_page_without_panels_gives_finite_outputs(batch: Batch) -> None:
    empty = collate([], CFG.max_panels)
    model = build_model(CFG).eval()
    with torch.no_grad():
        out = model(empty)
    assert out["page"].shape == (0, CFG.dim)
    mask = torch.zeros_like(batch.panel_mask)
    with torch.no_grad():
        page = model(batch, mask)["page"]
    assert torch.isfinite(page).all()


def test_mpm_mask_masks_some_but_never_all_panels_of_a_page(batch: Batch) -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = sample_mpm_mask(batch.panel_mask, 0.9, gen)
        counts = batch.panel_mask.sum(1)
        masked = mask.sum(1)
        assert not (mask & ~batch.panel_mask).any()
        assert ((masked >= 1) | (counts < 2)).all() and (masked < counts.clamp(min=1)).all()


def test_missing_transformers_is_a_clear_error() -> None:
    pytest.importorskip("torch")
    try:
        import transformers  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="transformers"):
            build_model(ModelConfig(vision_model="/nonexistent"))
    else:
        with pytest.raises(FileNotFoundError, match="not a local model folder"):
            build_model(ModelConfig(vision_model="/nonexistent"))


@pytest.mark.parametrize("term", ["next", "mpm", "order"])
def test_every_term_can_be_driven_down(batch: Batch, term: str) -> None:
    # A learning signal, not a constant: a few steps on one batch lower each term a lot.
    torch.manual_seed(0)
    model = build_model(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        value = closure_losses(model(batch, _mask(batch)), batch, LossWeights())[term]
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_look_norm_standardises_by_running_statistics_and_holds_still_in_eval() -> None:
    from training.model import N_LOOK, LookNorm

    norm = LookNorm().eval()
    x = torch.randn(64, N_LOOK) * 0.05 - 1.7  # far from zero, small spread: like saturation
    torch.testing.assert_close(norm(x, torch.ones(64, dtype=torch.bool)), x)  # eval: as is
    norm.train()
    gen = torch.Generator().manual_seed(0)
    has = torch.ones(8, dtype=torch.bool)
    for _ in range(100):
        out = norm(torch.randn(8, N_LOOK, generator=gen) * 0.05 - 1.7, has)
    assert norm.seen.item() == 800
    torch.testing.assert_close(norm.shift, torch.full((N_LOOK,), -1.7), atol=0.01, rtol=0)
    torch.testing.assert_close(
        torch.exp(-norm.log_scale), torch.full((N_LOOK,), 0.05), atol=0.01, rtol=0
    )
    assert out.mean().abs() < 0.5 and 0.5 < out.std() < 1.5
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    norm(torch.full((4, N_LOOK), 100.0), torch.zeros(4, dtype=torch.bool))  # no panels
    norm.eval()
    norm(torch.full((4, N_LOOK), 100.0), torch.ones(4, dtype=torch.bool))  # evaluation
    for k, v in norm.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_the_direction_head_learns_a_small_difference_of_look_in_few_steps(
    batch: Batch,
) -> None:
    # The same pages twice: as drawn (left to right) and a shade greyer (right to left).
    # The look statistics differ by a fraction of their value; the head must still learn it.
    import dataclasses

    from training.losses import direction_loss

    b = batch.panel_mask.shape[0]
    grey = (batch.crops.float() * 0.85 + 0.15 * 128).to(batch.crops.dtype)
    twice = {
        name: torch.cat([getattr(batch, name)] * 2)
        for name in [
            "tokens",
            "comp",
            "panel_mask",
            "position",
            "next_target",
            "first_target",
            "text_state",
            "modality_mask",
            "candidates",
        ]
    }
    both = dataclasses.replace(
        batch,
        **twice,
        crops=torch.cat([batch.crops, grey]),
        texts=[*batch.texts, *batch.texts],
        pages=[*batch.pages, *batch.pages],
        direction=torch.cat([torch.zeros(b), torch.ones(b)]).long(),
    )
    torch.manual_seed(0)
    model = build_model(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        model.train()
        value = direction_loss(model(both), both)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    model.eval()
    with torch.no_grad():
        rtl = torch.sigmoid(model(both)["direction_logits"])
    assert (rtl[:b] < 0.5).all() and (rtl[b:] > 0.5).all(), rtl
    assert losses[-1] < 0.3, losses


def test_weights_from_before_the_look_norm_load_with_the_statistics_unchanged() -> None:
    from training.checkpoint import ADDED_PARAMETERS, load_model_state
    from training.model import N_LOOK

    trained = build_model(CFG)
    trained.next_head.look_norm.train()
    trained.next_head.look_norm(torch.randn(8, N_LOOK) - 2, torch.ones(8, dtype=torch.bool))
    weights = {k: v for k, v in trained.state_dict().items() if ".look_norm." not in k}
    model = build_model(CFG).eval()
    added = load_model_state(model, weights, "old.pt")
    assert sorted(added) == sorted(k for k in ADDED_PARAMETERS if ".look_norm." in k)
    look = torch.randn(3, N_LOOK) - 2
    torch.testing.assert_close(
        model.next_head.look_norm(look, torch.ones(3, dtype=torch.bool)), look
    )
