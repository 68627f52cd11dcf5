r"""Evaluate a checkpoint on a corpus; the same metrics serve training's validation.

    python -m training.evaluate --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --report report.json

Metrics, over pages with at least two panels (one panel has nothing to order; the summary
line says how many pages were single-panel or had no panel):
- `next_panel_acc`: share of panels whose highest-scoring successor (another panel of
  the page, or "end" for the last) is the true one; `chance_next_panel_acc` is the
  expected share for a uniform guess among those candidates; `heuristic_next_panel_acc`
  is the share for dataspec's layout heuristic (`dataspec.reading_order`) alone;
- `order_exact`: share of pages whose whole order, decoded greedily (best first panel,
  then the best unvisited successor), is exactly right (and chance = mean 1/n!, and the
  heuristic's);
- `kendall_tau`: mean Kendall tau between decoded and true order (chance 0, heuristic);
- `page_order_acc`: accuracy on page pairs (forward / swapped / other book).
The truth is each page's `reading_order` when present, else the heuristic (so pages
without one score the heuristic at 1.0 by construction). When no page can be scored (all
skipped, single-panel or panel-less) the command exits 1 naming the input; no report.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
from collections import defaultdict
from typing import Any

import click
import numpy as np
import orjson
import torch

import dataspec
from dataspec.io import atomic_write_bytes

from .cli import (
    CONTEXT,
    Args,
    SkipLog,
    args_of,
    doc_help,
    first_reasons,
    flag,
    invoke,
    json_text,
    open_checkpoint,
    path_type,
    progress_option,
    source_of,
    source_options,
)
from .data import Batch, Collate, PageDataset, PagePairBatchSampler
from .losses import LossWeights, closure_losses
from .model import ClosureLite, sample_mpm_mask
from .progress import Progress

log = logging.getLogger(__name__)


def kendall_tau(a: list[int], b: list[int]) -> float:
    """Kendall tau-a between two rankings of the same items (1.0 when identical)."""
    n = len(a)
    if n < 2:
        return 1.0
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    return s / (n * (n - 1) / 2)


def decode_order(next_logits: np.ndarray, start_logits: np.ndarray, n: int) -> list[int]:
    """Greedy reading order of slots 0..n-1: best first panel, then best unvisited next."""
    seq = [int(np.argmax(start_logits[:n]))]
    seen = np.zeros(n, dtype=bool)
    seen[seq[0]] = True
    while len(seq) < n:
        row = np.where(seen, -np.inf, next_logits[seq[-1], :n])
        seq.append(int(np.argmax(row)))
        seen[seq[-1]] = True
    return seq


def _ranks(seq: list[int]) -> list[int]:
    out = [0] * len(seq)
    for rank, slot in enumerate(seq):
        out[slot] = rank
    return out


def _successors(seq: list[int], end: int) -> list[int]:
    out = [end] * len(seq)
    for a, b in itertools.pairwise(seq):
        out[a] = b
    return out


def score_batch(
    out: dict[str, torch.Tensor], batch: Batch, rtl: bool, tally: dict[str, float]
) -> None:
    """Add this batch's metric sums to `tally` (see `finalize`)."""
    nxt = out["next_logits"].float().cpu().numpy()
    start = out["start_logits"].float().cpu().numpy()
    target = batch.next_target.cpu().numpy()
    position = batch.position.cpu().numpy()
    end = nxt.shape[1]
    for row, meta in enumerate(batch.pages):
        n = len(meta.boxes)
        tally["pages"] += 1
        tally["panels"] += n
        if n < 2:
            tally["pages_single_panel" if n else "pages_no_panels"] += 1
            continue
        truth_seq = [int(s) for s in np.argsort(position[row, :n])]
        truth_next = [int(t) for t in target[row, :n]]
        cand = np.concatenate([nxt[row, :, :n], nxt[row, :, end:]], axis=1)[:n]
        pred_next = [int(k) if k < n else end for k in cand.argmax(1)]
        heur_seq = dataspec.reading_order(meta.boxes, rtl=rtl)
        heur_next = _successors(heur_seq, end)
        model_seq = decode_order(nxt[row], start[row], n)
        tally["pages_scored"] += 1
        tally["panels_scored"] += n
        tally["next_correct"] += sum(p == t for p, t in zip(pred_next, truth_next, strict=True))
        tally["heuristic_next_correct"] += sum(
            h == t for h, t in zip(heur_next, truth_next, strict=True)
        )
        tally["chance_next_correct"] += 1.0  # n panels, each 1/n: n-1 others + end
        tally["order_exact"] += float(model_seq == truth_seq)
        tally["heuristic_order_exact"] += float(heur_seq == truth_seq)
        tally["chance_order_exact"] += 1.0 / math.factorial(n)
        truth_rank = _ranks(truth_seq)
        tally["kendall_tau"] += kendall_tau(_ranks(model_seq), truth_rank)
        tally["heuristic_kendall_tau"] += kendall_tau(_ranks(heur_seq), truth_rank)
    if batch.pairs.shape[0]:
        pred = out["order_logits"].argmax(-1).cpu()
        tally["pairs"] += batch.pairs.shape[0]
        tally["pairs_correct"] += float((pred == batch.pairs[:, 2].cpu()).sum())


def finalize(tally: dict[str, float]) -> dict[str, float]:
    """Metric sums → rates (NaN where nothing was scored)."""

    def rate(num: str, den: str) -> float:
        return tally[num] / tally[den] if tally.get(den) else float("nan")

    metrics = {
        "next_panel_acc": rate("next_correct", "panels_scored"),
        "chance_next_panel_acc": rate("chance_next_correct", "panels_scored"),
        "heuristic_next_panel_acc": rate("heuristic_next_correct", "panels_scored"),
        "order_exact": rate("order_exact", "pages_scored"),
        "chance_order_exact": rate("chance_order_exact", "pages_scored"),
        "heuristic_order_exact": rate("heuristic_order_exact", "pages_scored"),
        "kendall_tau": rate("kendall_tau", "pages_scored"),
        "chance_kendall_tau": 0.0 if tally.get("pages_scored") else float("nan"),
        "heuristic_kendall_tau": rate("heuristic_kendall_tau", "pages_scored"),
        "page_order_acc": rate("pairs_correct", "pairs"),
    }
    for key in ("next", "mpm", "order", "total"):
        if tally.get("loss_batches"):
            metrics[f"loss_{key}"] = tally[f"loss_{key}"] / tally["loss_batches"]
    for key in (
        "pages",
        "pages_scored",
        "panels_scored",
        "pairs",
        "pages_skipped",
        "pages_single_panel",
        "pages_no_panels",
    ):
        metrics[key] = int(tally.get(key, 0))
    return metrics


TALLY_KEYS = (
    "pages",
    "panels",
    "pages_scored",
    "panels_scored",
    "pages_single_panel",
    "pages_no_panels",
    "next_correct",
    "heuristic_next_correct",
    "chance_next_correct",
    "order_exact",
    "heuristic_order_exact",
    "chance_order_exact",
    "kendall_tau",
    "heuristic_kendall_tau",
    "pairs",
    "pairs_correct",
    "pages_skipped",
    "loss_batches",
    "loss_next",
    "loss_mpm",
    "loss_order",
    "loss_total",
)
"""Every sum `evaluate_loader` keeps."""


@torch.no_grad()
def evaluate_loader(
    model: ClosureLite,
    loader: Any,
    device: torch.device,
    *,
    rtl: bool,
    weights: LossWeights | None = None,
    mask_ratio: float = 0.25,
    seed: int = 0,
    autocast: Any = None,
    skipped: list[tuple[str, str, str]] | None = None,
    progress: Progress | None = None,
    skip_log: SkipLog | None = None,
) -> dict[str, float]:
    """Metric sums (and mean losses when `weights` is given) over a loader; call
    `finalize` (after summing across ranks) to get rates. Skipped pages are counted
    and, when `skipped` is given, listed there as (path, reason, kind), and logged through
    `skip_log`; `progress` is advanced once per batch. The sums have the same keys on
    every rank (for `distributed.sum_across`)."""
    was_training = model.training
    model.eval()
    tally: dict[str, float] = defaultdict(float, dict.fromkeys(TALLY_KEYS, 0.0))
    generator = torch.Generator().manual_seed(seed)
    for batch in loader:
        if progress is not None:
            progress.update()
        tally["pages_skipped"] += len(batch.skipped)
        if skipped is not None:
            skipped.extend((s.json_path, s.reason, s.kind) for s in batch.skipped)
        if skip_log is not None:
            for s in batch.skipped:
                skip_log.add(s.json_path, s.reason, s.kind)
        if not len(batch):
            continue
        batch = batch.to(device)
        mask = sample_mpm_mask(batch.panel_mask, mask_ratio, generator) if weights else None
        with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
            out = model(batch, mask)
            if weights is not None:
                losses = closure_losses(out, batch, weights)
        if weights is not None:
            tally["loss_batches"] += 1
            for key, value in losses.items():
                tally[f"loss_{key}"] += float(value)
        score_batch(out, batch, rtl, tally)
    model.train(was_training)
    return dict(tally)


def unscored(metrics: dict[str, float], *, skipped: bool = False) -> str:
    """Why loaded pages were not scored, e.g. "8 single-panel pages, nothing to order"
    (and, with `skipped`, how many pages could not be used at all)."""
    parts = []
    if metrics["pages_single_panel"]:
        n = metrics["pages_single_panel"]
        parts.append(f"{n} single-panel page{'s' if n != 1 else ''}, nothing to order")
    if metrics["pages_no_panels"]:
        n = metrics["pages_no_panels"]
        parts.append(f"{n} page{'s' if n != 1 else ''} without panels")
    if skipped and metrics["pages_skipped"]:
        parts.append(f"{metrics['pages_skipped']} skipped as unusable")
    return "; ".join(parts)


@click.command(name="training.evaluate", help=doc_help(__doc__), context_settings=CONTEXT)
@flag(
    "checkpoint",
    type=path_type(),
    required=True,
    metavar="FILE",
    help="A latest.pt or best.pt of a training run.",
)
@source_options
@flag(
    "report",
    type=path_type(dir_okay=False),
    required=True,
    metavar="FILE",
    help="Where to write the JSON report (metrics, counts, the first 100 skipped pages).",
)
@flag("batch_size", type=click.IntRange(min=1), default=8, help="Pages per batch.")
@flag(
    "num_workers",
    type=click.IntRange(min=0),
    default=0,
    help="Loader processes (0: load in-process).",
)
@flag("device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.")
@click.option(
    "--rtl/--ltr",
    "rtl",
    default=None,
    show_default=True,
    help="Right-to-left or left-to-right heuristic order [default: as trained].",
)
@flag("seed", type=int, default=0, help="Seeds the panel slot order.")
@progress_option
def command(**params: Any) -> int:
    return evaluate(args_of(params))  # fmt: skip


def evaluate(args: Args) -> int:
    """Evaluate a checkpoint, write the report, print the headline numbers; the status."""
    opened = open_checkpoint(args)
    if opened is None:
        return 1
    model, config, state, paths, device = opened
    rtl = config.rtl if args.rtl is None else args.rtl
    if rtl != config.rtl:
        config = type(config)(**{**config.to_dict(), "rtl": rtl})
    dataset = PageDataset(
        paths,
        image_root=args.image_root,
        config=config,
        seed=args.seed,
        strict_paths=args.strict_paths,
    )
    sampler = PagePairBatchSampler(dataset.keys, args.batch_size, shuffle=False, seed=args.seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.num_workers,
        collate_fn=Collate(config.max_panels),
    )
    skipped: list[tuple[str, str, str]] = []
    skip_log = SkipLog(log)
    bar = Progress(len(sampler), "evaluate", enabled=args.progress)
    tally = evaluate_loader(
        model,
        loader,
        device,
        rtl=rtl,
        seed=args.seed,
        skipped=skipped,
        progress=bar,
        skip_log=skip_log,
    )
    bar.close()
    metrics = finalize(tally)
    source = source_of(args)
    if not metrics["pages_scored"]:
        skip_log.summary("not written: nothing was scored")
        first = first_reasons([r for _, r, _ in skipped])
        print(
            f"error: {source}: no page could be scored ({len(paths)} found: "
            f"{unscored(metrics, skipped=True)}){f'; first: {first}' if first else ''}. "
            "No report written.",
            file=sys.stderr,
        )
        return 1
    skip_log.summary(f"the first 100 are listed in {args.report}")
    report: dict[str, Any] = {
        **metrics,
        "checkpoint": json_text(str(args.checkpoint)),
        "epoch": state.get("epoch"),
        "source": json_text(str(source)),
        "pages_found": len(paths),
        "rtl": rtl,
        "skipped": [
            {"path": json_text(p), "reason": json_text(r), "kind": k} for p, r, k in skipped[:100]
        ],
    }
    atomic_write_bytes(
        args.report, orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    for key in (
        "next_panel_acc",
        "chance_next_panel_acc",
        "heuristic_next_panel_acc",
        "order_exact",
        "kendall_tau",
        "page_order_acc",
    ):
        value = metrics[key]
        print(f"{key:26s} {'n/a (no page pairs)' if math.isnan(value) else f'{value:.4f}'}")
    why = unscored(metrics)
    print(
        f"pages {metrics['pages']} scored {metrics['pages_scored']} "
        f"skipped {metrics['pages_skipped']}{f' ({why})' if why else ''} → {args.report}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.evaluate` with `argv`; returns the exit status."""
    return invoke(command, argv, "python -m training.evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
