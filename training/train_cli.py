"""`python -m training`: the trainer's command line (click), a thin layer over
`training.train.train`. Every flag has its underscore spelling (as in the runbook) and its
hyphen spelling, a help line and its default in `--help`. Usage errors exit 2; input that
cannot be used (a missing folder, a file that is not a checkpoint, an earlier run in
--output_dir) is an error naming it (exit 1)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from . import distributed, train
from .cli import (
    CONTEXT,
    Args,
    CLIError,
    args_of,
    doc_help,
    flag,
    invoke,
    path_type,
    progress_option,
    setup_logging,
    source_options,
)
from .config import ModelConfig
from .crops import DEFAULT_MAX_PIXELS
from .data import DEFAULT_MAX_JSON_BYTES, ORDER_LABELS
from .losses import LossWeights
from .trackers import TRACKERS

_MODEL = ModelConfig()
_WEIGHTS = LossWeights()
_POSITIVE = click.FloatRange(min=0, min_open=True)


def _model_options(f: Any) -> Any:
    """The model's flags (stored in every checkpoint; `--resume` uses the checkpoint's)."""
    options = [
        flag("num_heads", type=click.IntRange(min=1), default=_MODEL.num_heads,
             help="Attention-pooling heads (dim must be divisible by it)."),
        flag("temperature", type=_POSITIVE, default=_MODEL.temperature,
             help="Attention-pooling softmax temperature."),
        flag("dim", type=click.IntRange(min=8), default=_MODEL.dim,
             help="Width of panel atoms, panel states and page embeddings."),
        flag("context_layers", type=click.IntRange(min=0), default=_MODEL.context_layers,
             help="Transformer layers contextualizing panels within their page."),
        flag("dropout", type=click.FloatRange(0, 1, max_open=True), default=_MODEL.dropout,
             help="Dropout rate."),
        flag("max_panels", type=click.IntRange(min=1), default=_MODEL.max_panels,
             help="Panels per page kept (the first in reading order); pages padded to it."),
        flag("image_size", type=click.IntRange(min=16), default=_MODEL.image_size,
             help="Panel crops are resized to IMAGE_SIZE x IMAGE_SIZE."),
        flag("crop_mode", type=click.Choice(["letterbox", "stretch"]), default=_MODEL.crop_mode,
             help="letterbox keeps the panel's aspect and pads; stretch squashes (the seed)."),
        flag("vocab_size", type=click.IntRange(min=2), default=_MODEL.vocab_size,
             help="Hash buckets of the offline text tokenizer."),
        flag("max_tokens", type=click.IntRange(min=1), default=_MODEL.max_tokens,
             help="Tokens per panel text."),
        flag("rtl", is_flag=True, help="Right-to-left reading order (manga) for pages "
             "without a reading_order."),
        flag("vision_model", default=None, metavar="PATH",
             help="A local pretrained vision model instead of the small CNN "
             "(needs transformers; nothing is downloaded)."),
        flag("text_model", default=None, metavar="PATH",
             help="A local pretrained text model instead of the hashed n-gram encoder "
             "(needs transformers; nothing is downloaded)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def _objective_and_loading_options(f: Any) -> Any:
    """Loss weights, masking, and the loader's limits."""
    options = [
        flag("next_weight", type=float, default=_WEIGHTS.next,
             help="Weight of the next-panel loss (0 switches it off)."),
        flag("mask_weight", type=float, default=_WEIGHTS.mpm,
             help="Weight of the masked-panel loss (0 switches it off)."),
        flag("order_weight", type=float, default=_WEIGHTS.order,
             help="Weight of the page-order loss (0 switches it off)."),
        flag("direction_weight", type=float, default=_WEIGHTS.direction,
             help="Weight of the reading-direction loss (0 switches it off)."),
        flag("truth", type=click.Path(exists=True, dir_okay=False), default=None,
             metavar="FILE", help="A truth JSONL (true panel boxes in reading order per page) "
             "that validation grades reading order against, where it holds the page."),
        flag("trust_unsourced_orders", is_flag=True,
             help="Validation also grades a reading_order that names no source."),
        flag("order_labels", type=click.Choice(ORDER_LABELS), default="independent",
             help="Pages whose reading order is a training target: independent = ordered "
             "by the VLM or a truth label (reading_order_source vlm/truth), never the layout "
             "heuristic; any = every page, the heuristic's own orders included."),
        flag("mask_ratio", type=click.FloatRange(0, 1, min_open=True, max_open=True),
             default=0.25, help="Share of panels masked."),
        flag("mask_temperature", type=_POSITIVE, default=_WEIGHTS.mpm_temperature,
             help="Temperature of the masked-panel contrastive loss."),
        flag("max_image_pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS,
             help="Skip larger images (decompression-bomb guard)."),
        flag("full_decode", is_flag=True,
             help="Always decode JPEGs at full size (no reduced-scale fast path)."),
        flag("strict_images", is_flag=True, help="Skip truncated images instead of loading them."),
        flag("max_json_bytes", type=click.IntRange(min=1), default=DEFAULT_MAX_JSON_BYTES,
             help="Skip larger page files unread."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@click.command(name="training", help=doc_help(train.__doc__), context_settings=CONTEXT)
@source_options
@flag(
    "output_dir",
    type=path_type(file_okay=False),
    required=True,
    metavar="DIR",
    help="Run folder (created). One that already holds a run needs --resume or --overwrite.",
)
@flag("batch_size", type=click.IntRange(min=1), default=4, help="Pages per batch (per process).")
@flag(
    "epochs",
    type=click.IntRange(min=0),
    default=10,
    help="Epochs to train (in all, counting those a resumed checkpoint already did).",
)
@flag(
    "num_workers",
    type=click.IntRange(min=0),
    default=4,
    help="Loader processes (0: load in-process).",
)
@flag("lr", type=_POSITIVE, default=1e-3, help="Peak learning rate (AdamW).")
@flag("weight_decay", type=float, default=0.01, help="AdamW weight decay (matrices only).")
@flag(
    "warmup_steps",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Linear warm-up steps [default: 5% of all steps].",
)
@flag("grad_clip", type=float, default=1.0, help="Gradient norm clip (0: none).")
@flag("seed", type=int, default=0, help="Seeds the split, batch order, slots, masks, dropout.")
@flag(
    "val_fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    help="Share of pages (whole books) held out for validation.",
)
@flag(
    "save_every",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also keep epoch_N.pt every N epochs (0: only latest.pt and best.pt).",
)
@flag(
    "save_steps",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also write latest.pt every N optimizer steps within an epoch, so that --resume "
    "loses at most N steps (0: at the end of each epoch only).",
)
@flag(
    "resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    metavar="[CHECKPOINT]",
    help="Continue from OUTPUT_DIR/latest.pt, or from CHECKPOINT.",
)
@flag(
    "overwrite",
    is_flag=True,
    help="Start afresh in an --output_dir that holds a run: its "
    "checkpoints, metrics and lists are removed first.",
)
@flag("device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.")
@flag("amp", is_flag=True, help="Mixed precision (CUDA only).")
@progress_option
@flag(
    "report_to",
    type=click.Choice(TRACKERS),
    default="none",
    help="Experiment tracker (must be installed).",
)
@_model_options
@_objective_and_loading_options
def command(**params: Any) -> int:
    args = args_of(params)
    if args.resume is not None and args.overwrite:
        raise click.UsageError(
            "--resume continues the run in --output_dir and --overwrite replaces it: give one"
        )
    try:
        train.model_config(args)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return run(args)


def run(args: Args) -> int:
    """Train with parsed flags; the exit status (0 done, 1 input that cannot be used)."""
    try:
        info = distributed.setup(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    setup_logging(info.is_main)
    try:
        train.train(args, info)
    except (CLIError, train.UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output that cannot be written (full disk, a folder in the way)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run `python -m training` with `argv` (default: sys.argv); returns the exit status."""
    return invoke(command, argv, "python -m training")


if __name__ == "__main__":
    raise SystemExit(main())
