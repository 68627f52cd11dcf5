r"""Evaluate a checkpoint on a corpus; the same metrics serve training's validation.

    python -m training.evaluate --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --truth truth.jsonl --report report.json

Reading order is graded only against labels independent of the layout heuristic (the
analyzer often writes the heuristic's own order as `reading_order`, which would score
the heuristic at 1.0 by construction). A page is scored when --truth FILE holds it
(source truth_file: each panel takes the position of the true panel it covers most, i.e.
holds >= 50% of; panels covering none are not scored), else when its reading_order_source
is vlm or truth, else (with --trust_unsourced_orders) when it has a reading_order without
a source. Pages with source layout or model, an unsourced order, no reading_order, one
panel or none are left out and counted by reason. When no page can be scored the command
exits 1 naming the input and why; no report.

Model and heuristic (dataspec.reading_order, the run's direction) side by side on the
scored pages, and again where the heuristic's order differs from the label (blind_*):
- next_panel_acc: share of panels whose highest-scoring successor (another scored panel
  of the page, or "end" for the last) is the true one; chance_ is a uniform guess;
- order_exact: share of pages whose order, decoded greedily (best first panel, then the
  best unvisited successor), is exactly right (chance: mean 1/n!);
- kendall_tau: mean Kendall tau between decoded and true order (chance 0);
- page_order_acc: accuracy on page pairs (forward / swapped / other book).
--report FILE gets the summary, the counts and one entry per page (label source, orders,
next-panel hits of model and heuristic).

`python -m training.evaluate --retrieval --store EMB --report FILE` measures search
instead: page recall@1 of altered page images and text→panel recall@10, each beside a
layout-only baseline (`training.retrieval`; `--retrieval -h` lists its flags).
"""

from __future__ import annotations

import logging
import math
import sys
from collections import defaultdict
from typing import Any

import click
import orjson
import torch

from dataspec.io import atomic_write_bytes

from .cli import (
    CONTEXT,
    Args,
    SkipLog,
    args_of,
    checkpoint_option,
    doc_help,
    first_reasons,
    flag,
    inference_loader,
    invoke,
    json_text,
    loader_options,
    open_checkpoint,
    path_type,
    progress_option,
    source_of,
    source_options,
)
from .losses import LossWeights, closure_losses
from .model import ClosureLite, sample_mpm_mask
from .order_eval import (
    LEFT_OUT,
    TALLY_KEYS,
    OrderLabels,
    TruthFile,
    decode_order,
    finalize,
    kendall_tau,
    label_sources,
    left_out,
    nothing_scored,
    score_batch,
    unscored,
)
from .progress import Progress

__all__ = [
    "LEFT_OUT",
    "TALLY_KEYS",
    "OrderLabels",
    "TruthFile",
    "decode_order",
    "evaluate",
    "evaluate_loader",
    "finalize",
    "kendall_tau",
    "main",
    "score_batch",
    "unscored",
]

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_loader(
    model: ClosureLite,
    loader: Any,
    device: torch.device,
    *,
    rtl: bool,
    labels: OrderLabels | None = None,
    weights: LossWeights | None = None,
    mask_ratio: float = 0.25,
    seed: int = 0,
    autocast: Any = None,
    skipped: list[tuple[str, str, str]] | None = None,
    progress: Progress | None = None,
    skip_log: SkipLog | None = None,
    per_page: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Metric sums (and mean losses when `weights` is given) over a loader; call
    `finalize` (after summing across ranks) to get rates. `labels` says which pages are
    scored for order and against what (default: `OrderLabels(loader.dataset)`, no truth
    file). Skipped pages are counted and, when `skipped` is given, listed there as (path,
    reason, kind), and logged through `skip_log`; `progress` is advanced once per batch;
    `per_page` gets one record per loaded page. The sums have the same keys on every rank
    (for `distributed.sum_across`)."""
    if labels is None:
        labels = OrderLabels(loader.dataset)
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
        score_batch(out, batch, rtl, tally, labels, per_page)
    model.train(was_training)
    return dict(tally)


@click.command(name="training.evaluate", help=doc_help(__doc__), context_settings=CONTEXT)
@checkpoint_option
@source_options
@flag(
    "report",
    type=path_type(dir_okay=False),
    required=True,
    metavar="FILE",
    help="Where to write the JSON report (metrics, counts, one entry per page, the first "
    "100 skipped pages).",
)
@flag(
    "truth",
    type=path_type(dir_okay=False),
    default=None,
    metavar="FILE",
    help="A JSONL truth file: per page image (`image` relative to --image_root or "
    "absolute, or `image_path`) the true panel boxes (`panels[].bbox` or `.box`, "
    "[x, y, w, h]) in reading order; the pages it holds are graded against it.",
)
@flag(
    "trust_unsourced_orders",
    is_flag=True,
    help="Also score pages whose reading_order has no reading_order_source (provenance "
    "unknown: it may be the layout heuristic's own order).",
)
@loader_options
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


def _cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def table(metrics: dict[str, Any]) -> list[str]:
    """The side-by-side lines: model, layout heuristic and chance on the scored pages,
    and on the pages where the heuristic's order differs from the label."""
    lines = [f"{'':26s} {'model':>9s} {'heuristic':>9s} {'chance':>9s}"]
    blind = metrics["pages_blind"]
    for prefix, title in (
        ("", f"scored pages ({metrics['pages_scored']})"),
        ("blind_", f"where the heuristic is blind ({blind} of {metrics['pages_scored']})"),
    ):
        lines.append(title)
        if prefix and not blind:
            lines.append("  (none: the heuristic's order is the label on every scored page)")
            continue
        for name in ("next_panel_acc", "order_exact", "kendall_tau"):
            row = [_cell(metrics[f"{who}{prefix}{name}"]) for who in ("", "heuristic_", "chance_")]
            lines.append(f"  {name:24s} {row[0]:>9s} {row[1]:>9s} {row[2]:>9s}")
    lines.append(f"{'page_order_acc':26s} {_cell(metrics['page_order_acc']):>9s}")
    sources = ", ".join(f"{n} {s}" for s, n in label_sources(metrics).items() if n)
    lines.append(f"order labels: {sources or 'none'}")
    return lines


def evaluate(args: Args) -> int:
    """Evaluate a checkpoint, write the report, print the headline numbers; the status."""
    opened = open_checkpoint(args)
    if opened is None:
        return 1
    model, config, state, paths, device = opened
    truth = None
    if args.truth is not None:
        try:
            truth = TruthFile.read(args.truth, args.image_root)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    config, dataset, loader = inference_loader(args, config, paths)
    rtl, sampler = config.rtl, loader.batch_sampler
    labels = OrderLabels(dataset, truth=truth, trust_unsourced=args.trust_unsourced_orders)
    skipped: list[tuple[str, str, str]] = []
    per_page: list[dict[str, Any]] = []
    skip_log = SkipLog(log)
    bar = Progress(len(sampler), "evaluate", enabled=args.progress)
    tally = evaluate_loader(
        model,
        loader,
        device,
        rtl=rtl,
        labels=labels,
        seed=args.seed,
        skipped=skipped,
        progress=bar,
        skip_log=skip_log,
        per_page=per_page,
    )
    bar.close()
    metrics = finalize(tally)
    source = source_of(args)
    if not metrics["pages_scored"]:
        skip_log.summary("not written: nothing was scored")
        first = first_reasons([r for _, r, _ in skipped])
        print(
            f"error: {nothing_scored(source, len(paths), metrics, first)}. No report written.",
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
        "truth": None if args.truth is None else json_text(str(args.truth)),
        "trust_unsourced_orders": bool(args.trust_unsourced_orders),
        "left_out": left_out(metrics),
        "label_sources": label_sources(metrics),
        "skipped": [
            {"path": json_text(p), "reason": json_text(r), "kind": k} for p, r, k in skipped[:100]
        ],
        "per_page": [
            {**r, "json_path": json_text(r["json_path"]), "image": json_text(r["image"])}
            for r in per_page
        ],
    }
    atomic_write_bytes(
        args.report, orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    print("\n".join(table(metrics)))
    why = unscored(metrics)
    print(
        f"pages {metrics['pages']} scored {metrics['pages_scored']} "
        f"skipped {metrics['pages_skipped']}{f' ({why})' if why else ''} → {args.report}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.evaluate` with `argv` (with `--retrieval`: the retrieval
    measures of `training.retrieval`); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--retrieval" in args:
        from .retrieval import main as retrieval_main

        return retrieval_main([a for a in args if a != "--retrieval"])
    return invoke(command, args, "python -m training.evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
