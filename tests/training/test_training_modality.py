"""Known and unknown text: an unknown text (`text_known: false`) is masked, never fed as
an empty text; "no lettered text" and "text unknown" are told apart; old checkpoints load.

Real page JPEGs (Pillow), real DataSpec pages (`dataspec.dump`), real torch steps.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from PIL import Image, ImageDraw

import dataspec
from training.batches import Batch, collate
from training.checkpoint import (
    ADDED_PARAMETERS,
    load_checkpoint,
    load_model,
    optimizer_state_for,
    save_checkpoint,
)
from training.config import ModelConfig
from training.data import (
    MODALITIES,
    TEXT_NONE,
    TEXT_PRESENT,
    TEXT_UNKNOWN,
    PageDataset,
    PageItem,
    panel_text,
)
from training.losses import LossWeights, closure_losses, masked_panel_loss
from training.model import ClosureLite, build_model
from training.text import HashTokenizer

CFG = ModelConfig(
    image_size=32,
    dim=32,
    num_heads=2,
    vocab_size=1024,
    max_tokens=16,
    context_layers=1,
    dropout=0.0,
)
KEY = "atomizer.text_state.weight"
BOXES = [(10, 10, 180, 280), (210, 10, 180, 280), (10, 310, 180, 280), (210, 310, 180, 280)]
COLOURS = [(200, 40, 40), (40, 160, 40), (40, 40, 200), (200, 180, 30)]
# panel index → text state on page 1; page 2 is the same page with panel 2 known-empty
STATES = {0: TEXT_PRESENT, 1: TEXT_NONE, 2: TEXT_UNKNOWN, 3: TEXT_PRESENT}


@dataclass(frozen=True)
class Pages:
    image_root: Path
    pages_dir: Path
    paths: list[Path]


def _image(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.new("RGB", (400, 600), (245, 245, 240))
    draw = ImageDraw.Draw(picture)
    for k, ((x, y, w, h), colour) in enumerate(zip(BOXES, COLOURS, strict=True)):
        draw.rectangle((x, y, x + w, y + h), outline=(0, 0, 0), width=4)
        draw.ellipse((x + 20 + 10 * k, y + 30, x + w - 30, y + h - 40 - shade), fill=colour)
    picture.save(path, quality=90)


def _page(image: Path, unknown: bool) -> dataspec.Page:
    text = dataspec.PanelText
    return dataspec.Page(
        page_image_path=str(image),
        panels=[
            dataspec.Panel(panel_coords=BOXES[0], text=text(dialogue=["Hello there, friend!"])),
            dataspec.Panel(panel_coords=BOXES[1]),  # known: no lettered text
            dataspec.Panel(panel_coords=BOXES[2], text_known=False if unknown else None),
            dataspec.Panel(panel_coords=BOXES[3], text=text(sfx=["BLAM"]), text_known=True),
        ],
        page_size=dataspec.PageSize(width=400, height=600),
    )


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Pages:
    """Book/JPG4CBZ/0001 (panels: text, known-empty, unknown, text) and 0002 (the same
    image and panels, but panel 2 known-empty), written with `dataspec.dump`."""
    root = tmp_path_factory.mktemp("modality")
    image = root / "images" / "Book" / "0001.jpg"
    _image(image, 0)
    paths = [
        dataspec.dump(
            _page(image, unknown=True), root / "pages" / "Book" / "JPG4CBZ" / "0001.json"
        ),
        dataspec.dump(
            _page(image, unknown=False), root / "pages" / "Book" / "JPG4CBZ" / "0002.json"
        ),
    ]
    assert dataspec.load(paths[0]).panels[2].knows_text() is False  # strict load accepts it
    return Pages(root / "images", root / "pages", paths)


def _dataset(pages: Pages, **kwargs: Any) -> PageDataset:
    return PageDataset(pages.paths, image_root=str(pages.image_root), config=CFG, **kwargs)


def _slot(item_or_batch: PageItem | Batch, panel: int, row: int = 0) -> int:
    meta = item_or_batch.meta if isinstance(item_or_batch, PageItem) else item_or_batch.pages[row]
    return meta.panel_index.index(panel)


@pytest.fixture(scope="module")
def batch(pages: Pages) -> Batch:
    """Page 1 alone, its panels in a seeded random slot order."""
    return collate([_dataset(pages)[(0, 1)]], CFG.max_panels)


def _model(seed: int = 0) -> ClosureLite:
    torch.manual_seed(seed)
    return build_model(CFG).eval()


def _with_tokens(batch: Batch, flat: int, text: str) -> Batch:
    """`batch` with the tokens and raw text of real panel `flat` replaced by `text`'s."""
    tokens = batch.tokens.clone()
    tokens[flat] = torch.from_numpy(HashTokenizer(CFG.vocab_size, CFG.max_tokens)([text])[0])
    texts = list(batch.texts)
    texts[flat] = text
    return replace(batch, tokens=tokens, texts=texts)


# --------------------------------------------------------------------------- the loader


def test_panel_text_tells_present_none_and_unknown() -> None:
    text = dataspec.PanelText
    box = (0, 0, 10, 10)
    assert panel_text(dataspec.Panel(panel_coords=box, text=text(dialogue=["Hi", "you"]))) == (
        "Hi you",
        TEXT_PRESENT,
    )
    assert panel_text(dataspec.Panel(panel_coords=box)) == ("", TEXT_NONE)
    assert panel_text(dataspec.Panel(panel_coords=box, text_known=True)) == ("", TEXT_NONE)
    assert panel_text(dataspec.Panel(panel_coords=box, text_known=False)) == ("", TEXT_UNKNOWN)


def test_items_and_batches_carry_the_text_state_and_modality_mask(pages: Pages) -> None:
    ds = _dataset(pages)
    first, second = ds[(0, 1)], ds[(1, 1)]
    assert isinstance(first, PageItem) and isinstance(second, PageItem)
    assert MODALITIES == ("vision", "text", "layout")
    for item, states in ((first, STATES), (second, {**STATES, 2: TEXT_NONE})):
        assert item.text_state.shape == (4,) and item.modality_mask.shape == (4, 3)
        for slot, panel in enumerate(item.meta.panel_index):
            state = states[panel]
            assert item.text_state[slot] == state, (panel, item.text_state)
            assert item.modality_mask[slot].tolist() == [True, state == TEXT_PRESENT, True]
            if state != TEXT_PRESENT:  # nothing to feed: no tokens, no text
                assert item.texts[slot] == "" and not item.tokens[slot].any()
            else:
                assert item.texts[slot] and item.tokens[slot].any()
    assert first.texts[_slot(first, 0)] == "Hello there, friend!"
    assert first.texts[_slot(first, 3)] == "BLAM"

    batch = collate([first, second], CFG.max_panels)
    p = CFG.max_panels
    assert batch.text_state.shape == (2, p) and batch.modality_mask.shape == (2, p, 3)
    assert batch.modality_mask.dtype == torch.bool
    assert (batch.text_state[~batch.panel_mask] == -1).all()
    assert not batch.modality_mask[~batch.panel_mask].any()
    assert batch.text_state[0, _slot(batch, 2)] == TEXT_UNKNOWN
    assert batch.text_state[1, _slot(batch, 2, row=1)] == TEXT_NONE
    real = batch.modality_mask[batch.panel_mask]
    assert real[:, 0].all() and real[:, 2].all()
    assert real[:, 1].tolist() == (batch.text_state[batch.panel_mask] == TEXT_PRESENT).tolist()
    moved = batch.to("cpu")
    assert torch.equal(moved.modality_mask, batch.modality_mask)


def test_a_page_without_panels_has_empty_masks(pages: Pages, tmp_path: Path) -> None:
    empty = dataspec.dump(
        dataspec.Page(page_image_path=str(pages.image_root / "Book" / "0001.jpg"), panels=[]),
        tmp_path / "Book" / "0003.json",
    )
    item = PageDataset([empty], image_root=str(pages.image_root), config=CFG)[0]
    assert isinstance(item, PageItem)
    assert item.text_state.shape == (0,) and item.modality_mask.shape == (0, 3)
    batch = collate([item], CFG.max_panels)
    assert not batch.modality_mask.any() and (batch.text_state == -1).all()


# --------------------------------------------------------------------------- the model


@torch.no_grad()
def test_an_unknown_text_never_reaches_the_model(batch: Batch) -> None:
    # Two batches that differ only in the tokens (and raw text) of the unknown panel give
    # bit-identical atoms, content targets, panel states, page embeddings and losses.
    model = _model()
    unknown = _slot(batch, 2)  # one page: flat index == slot
    forbidden = _with_tokens(batch, unknown, "forbidden secret words nobody may read")
    assert not torch.equal(forbidden.tokens, batch.tokens)
    atoms, content, _ = model.atomizer(batch)
    atoms2, content2, _ = model.atomizer(forbidden)
    assert torch.equal(atoms, atoms2) and torch.equal(content, content2)
    mask = torch.zeros_like(batch.panel_mask)
    mask[0, _slot(batch, 0)] = True
    out, out2 = model(batch, mask), model(forbidden, mask)
    for key in ("states", "page", "next_logits", "start_logits", "mpm_pred", "mpm_content"):
        assert torch.equal(out[key], out2[key]), key
    weights = LossWeights()
    assert torch.equal(
        closure_losses(out, batch, weights)["total"],
        closure_losses(out2, forbidden, weights)["total"],
    )

    # The test can see text: unmask it and the forbidden text changes that atom, and the
    # text of a panel whose text is known changes its atom.
    shown = forbidden.modality_mask.clone()
    shown[0, unknown, 1] = True
    atoms3, _, _ = model.atomizer(replace(forbidden, modality_mask=shown))
    assert not torch.allclose(atoms3[0, unknown], atoms[0, unknown])
    present = _slot(batch, 0)
    atoms4, _, _ = model.atomizer(_with_tokens(batch, present, "something else entirely"))
    assert not torch.allclose(atoms4[0, present], atoms[0, present])


def test_no_gradient_reaches_the_embeddings_of_a_masked_panels_tokens(batch: Batch) -> None:
    model = _model().train()
    unknown = _slot(batch, 2)
    forbidden = _with_tokens(batch, unknown, "forbidden secret words nobody may read")
    text_on = forbidden.modality_mask[forbidden.panel_mask][:, 1]
    others = set(forbidden.tokens[text_on].flatten().tolist())
    only_forbidden = [i for i in forbidden.tokens[unknown].tolist() if i and i not in others]
    assert only_forbidden
    out = model(forbidden)
    (out["page"].sum() + out["next_logits"][torch.isfinite(out["next_logits"])].sum()).backward()
    grad = model.atomizer.text.embed.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # text of the known panels flows
    assert not grad[only_forbidden].any()


@torch.no_grad()
def test_masked_gates_are_zero_and_the_rest_renormalised(batch: Batch) -> None:
    # The atom of a panel without text is norm(3/2 * (g_v v + g_c c) + s) with the gates
    # computed from (v, s, c); a panel with text is fused exactly as before the change.
    model = _model()
    at = model.atomizer
    atoms, _, _ = at(batch)
    v = at.vision(batch.crops)
    c = at.comp(batch.comp)[batch.panel_mask]
    d = CFG.dim
    for panel, state in ((1, TEXT_NONE), (2, TEXT_UNKNOWN)):
        i = _slot(batch, panel)
        s = at.text_state.weight[state]
        g = torch.sigmoid(at.gate(torch.cat([v[i], s, c[i]]))).view(3, d)
        expected = at.norm(1.5 * (g[0] * v[i] + g[2] * c[i]) + s)
        torch.testing.assert_close(atoms[0, i], expected)
    for panel in (0, 3):
        i = _slot(batch, panel)
        t = at.text(batch.tokens[i : i + 1], [batch.texts[i]])[0]
        g = torch.sigmoid(at.gate(torch.cat([v[i], t, c[i]]))).view(3, d)
        torch.testing.assert_close(atoms[0, i], at.norm(g[0] * v[i] + g[1] * t + g[2] * c[i]))
    assert not at.text_state.weight[TEXT_PRESENT].any()


@torch.no_grad()
def test_no_lettered_text_and_unknown_text_give_different_atoms(pages: Pages) -> None:
    # Pages 1 and 2 have the same image, boxes and texts; only panel 2 differs: unknown on
    # page 1, known to have no text on page 2. The feeds of the two are the same (no
    # tokens, text masked); only the text state tells them apart.
    ds = _dataset(pages, shuffle_slots=False)
    batch = collate([ds[0], ds[1]], CFG.max_panels)
    assert batch.pages[0].panel_index == batch.pages[1].panel_index
    assert torch.equal(batch.tokens[:4], batch.tokens[4:])
    assert torch.equal(batch.modality_mask[0], batch.modality_mask[1])
    atoms, _, _ = _model().atomizer(batch)
    two = _slot(batch, 2)
    for panel in (0, 1, 3):
        k = _slot(batch, panel)
        torch.testing.assert_close(atoms[0, k], atoms[1, k])
    assert not torch.allclose(atoms[0, two], atoms[1, two])


def test_unknown_text_panels_are_no_masked_panel_targets(batch: Batch) -> None:
    model = _model()
    only_unknown = torch.zeros_like(batch.panel_mask)
    only_unknown[0, _slot(batch, 2)] = True
    out = model(batch, only_unknown)
    assert out["mpm_known"].tolist() == [False]
    loss = masked_panel_loss(out, 0.1)
    assert torch.isfinite(loss) and loss.item() == 0.0
    for panel in (0, 1):  # text, and known to have none: real targets
        mask = torch.zeros_like(batch.panel_mask)
        mask[0, _slot(batch, panel)] = True
        out = model(batch, mask)
        assert out["mpm_known"].tolist() == [True]
        assert masked_panel_loss(out, 0.1).item() > 0.1
    both = only_unknown.clone()
    both[0, _slot(batch, 0)] = True
    out = model(batch, both)
    pred, index = out["mpm_pred"], out["mpm_index"]
    known = out["mpm_known"]
    one = {**out, "mpm_pred": pred[known], "mpm_index": index[known]}
    one.pop("mpm_known")
    torch.testing.assert_close(masked_panel_loss(out, 0.1), masked_panel_loss(one, 0.1))


def test_training_steps_on_pages_with_unknown_text_are_finite(pages: Pages) -> None:
    ds = _dataset(pages)
    batch = collate([ds[(0, 0)], ds[(1, 0)]], CFG.max_panels)
    assert batch.pairs.shape[0]
    torch.manual_seed(0)
    model = build_model(CFG).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = torch.zeros_like(batch.panel_mask)
    mask[:, 0] = True
    mask[0, _slot(batch, 2)] = True
    totals = []
    for _ in range(3):
        losses = closure_losses(model(batch, mask), batch, LossWeights())
        assert all(torch.isfinite(v) for v in losses.values()), losses
        opt.zero_grad()
        losses["total"].backward()
        grad = model.atomizer.text_state.weight.grad
        assert grad is not None
        assert not grad[TEXT_PRESENT].any() and grad[TEXT_NONE].any() and grad[TEXT_UNKNOWN].any()
        opt.step()
        totals.append(losses["total"].item())
    assert not model.atomizer.text_state.weight[TEXT_PRESENT].any()
    assert totals[-1] < totals[0]


# --------------------------------------------------------------------------- runs and checkpoints


@pytest.fixture(scope="module")
def run(pages: Pages, tiny: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch `python -m training` run on the two pages."""
    from training.train_cli import main

    out = tmp_path_factory.mktemp("modality_run")
    argv = [
        "--json_dir",
        str(pages.pages_dir),
        "--image_root",
        str(pages.image_root),
        "--output_dir",
        str(out),
        "--batch_size",
        "2",
        "--epochs",
        "1",
        "--val_fraction",
        "0",
        *tiny,
    ]
    assert main(argv) == 0
    return out


def test_a_run_trains_on_pages_with_unknown_text(run: Path) -> None:
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["pages"] == 2 and record["pages_skipped"] == 0
    assert all(isinstance(v, float) and v == v and abs(v) < 1e6 for v in record["train"].values())
    assert KEY in load_checkpoint(run / "latest.pt")["model"]


def _old_style(state: dict[str, Any]) -> dict[str, Any]:
    """`state` as the code before the text-state embedding wrote it: no such weight, and
    an optimizer (the trainer's groups) over the remaining parameters, one step taken."""
    from training.train import _optimizer

    old = build_model(ModelConfig.from_dict(state["config"]))
    del old.atomizer.text_state
    old.load_state_dict({k: v for k, v in state["model"].items() if k != KEY})
    opt = _optimizer(old, SimpleNamespace(weight_decay=0.01, lr=1e-3))
    torch.manual_seed(1)
    for p in old.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    return {**state, "model": old.state_dict(), "optimizer": opt.state_dict()}


@pytest.fixture(scope="module")
def old_checkpoint(run: Path) -> Path:
    state = _old_style(load_checkpoint(run / "latest.pt"))
    assert KEY not in state["model"]
    return save_checkpoint(run.parent / f"{run.name}_old.pt", state)


def test_an_old_checkpoint_loads_with_the_text_state_at_zero(
    old_checkpoint: Path, pages: Pages, caplog: pytest.LogCaptureFixture
) -> None:
    assert KEY in ADDED_PARAMETERS
    with caplog.at_level(logging.WARNING, logger="training.checkpoint"):
        model, config, _ = load_model(old_checkpoint)
    assert any("predates" in r.getMessage() and KEY in r.getMessage() for r in caplog.records)
    assert not model.atomizer.text_state.weight.any()
    # panels with text compute what the old model computed: norm(g_v v + g_t t + g_c c)
    batch = collate(
        [PageDataset(pages.paths, image_root=str(pages.image_root), config=config)[0]],
        config.max_panels,
    )
    at = model.atomizer
    with torch.no_grad():
        atoms, _, _ = at(batch)
        v = at.vision(batch.crops)
        t = at.text(batch.tokens, batch.texts)
        c = at.comp(batch.comp)[batch.panel_mask]
        g = torch.sigmoid(at.gate(torch.cat([v, t, c], -1))).chunk(3, -1)
        old_atoms = at.norm(g[0] * v + g[1] * t + g[2] * c)
    for panel in (0, 3):
        i = _slot(batch, panel)
        torch.testing.assert_close(atoms[0, i], old_atoms[i])
    unknown = _slot(batch, 2)  # ...and an unknown text is no longer fed as an empty one
    assert not torch.allclose(atoms[0, unknown], old_atoms[unknown])


def test_evaluate_and_embed_use_an_old_checkpoint_and_mark_text_states(
    old_checkpoint: Path, pages: Pages, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.embed import main as embed_main
    from training.evaluate import main as evaluate_main

    source = ["--json_dir", str(pages.pages_dir), "--image_root", str(pages.image_root)]
    report = tmp_path / "report.json"
    # the pages have no reading_order: their true order (the boxes as listed) comes from
    # a truth file in the held-out benchmarks' format
    truth = tmp_path / "truth.jsonl"
    image = str(pages.image_root / "Book" / "0001.jpg")
    truth.write_text(
        json.dumps({"image_path": image, "panels": [{"box": list(b)} for b in BOXES]}) + "\n",
        encoding="utf-8",
    )
    argv = ["--checkpoint", str(old_checkpoint), *source, "--report", str(report)]
    assert evaluate_main([*argv, "--truth", str(truth)]) == 0
    assert json.loads(report.read_text())["pages"] == 2
    assert json.loads(report.read_text())["pages_scored"] == 2
    assert "predates" in capsys.readouterr().err
    emb = tmp_path / "emb"
    assert (
        embed_main(
            [
                "--checkpoint",
                str(old_checkpoint),
                *source,
                "--output_dir",
                str(emb),
                "--format",
                "npy",
            ]
        )
        == 0
    )
    with (emb / "index.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "panel"]
    names = {TEXT_PRESENT: "present", TEXT_NONE: "none", TEXT_UNKNOWN: "unknown"}
    first = {int(r["panel_index"]): r["text"] for r in rows if r["json_path"].endswith("0001.json")}
    second = {
        int(r["panel_index"]): r["text"] for r in rows if r["json_path"].endswith("0002.json")
    }
    assert first == {k: names[s] for k, s in STATES.items()}
    assert second == {**first, 2: "none"}


def test_an_old_checkpoint_resumes_with_its_optimizer_moments(
    old_checkpoint: Path,
    pages: Pages,
    tiny: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from training.train import _optimizer
    from training.train_cli import main

    old = load_checkpoint(old_checkpoint)
    model = build_model(ModelConfig.from_dict(old["config"]))
    opt = _optimizer(model, SimpleNamespace(weight_decay=0.01, lr=1e-3))
    opt.load_state_dict(optimizer_state_for(old["optimizer"], opt, model, [KEY]))
    reference = build_model(ModelConfig.from_dict(old["config"]))
    del reference.atomizer.text_state
    ref_opt = _optimizer(reference, SimpleNamespace(weight_decay=0.01, lr=1e-3))
    ref_opt.load_state_dict(old["optimizer"])
    params = dict(model.named_parameters())
    for name, p in reference.named_parameters():
        torch.testing.assert_close(opt.state[params[name]]["exp_avg"], ref_opt.state[p]["exp_avg"])
    assert params[KEY] not in opt.state
    with pytest.raises(ValueError, match="parameter groups"):
        optimizer_state_for(old["optimizer"], opt, model, [KEY, "atomizer.gate.weight"])

    argv = [
        "--json_dir",
        str(pages.pages_dir),
        "--image_root",
        str(pages.image_root),
        "--output_dir",
        str(tmp_path),
        "--batch_size",
        "2",
        "--epochs",
        "2",
        "--val_fraction",
        "0",
        "--resume",
        str(old_checkpoint),
        *tiny,
    ]
    assert main(argv) == 0
    assert "predates" in capsys.readouterr().err
    state = load_checkpoint(tmp_path / "latest.pt")
    assert state["epoch"] == 2 and KEY in state["model"]
    assert state["model"][KEY].any()  # trained from zero
    assert not state["model"][KEY][TEXT_PRESENT].any()


def test_weights_that_do_not_fit_are_refused(
    run: Path, pages: Pages, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training.evaluate import main as evaluate_main

    state = load_checkpoint(run / "latest.pt")
    state["model"] = {k: v for k, v in state["model"].items() if k != "atomizer.gate.weight"}
    bad = save_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(ValueError, match=r"do not fit.*atomizer\.gate\.weight"):
        load_model(bad)
    source = ["--json_dir", str(pages.pages_dir), "--image_root", str(pages.image_root)]
    argv = ["--checkpoint", str(bad), *source, "--report", str(tmp_path / "r.json")]
    assert evaluate_main(argv) == 1
    assert "do not fit" in capsys.readouterr().err
