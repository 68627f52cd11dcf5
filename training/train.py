r"""Train CLOSURE-Lite on DataSpec pages.

    python -m training --json_list_file LIST.txt --image_root IMAGES --output_dir RUN \
        --batch_size 4 --epochs 10 --num_workers 8 --num_heads 4 --temperature 0.1
    python -m training --json_dir PAGES --image_root IMAGES --output_dir RUN ...
    torchrun --nproc_per_node N -m training ...        # DDP: gloo on CPU, NCCL on GPU

RUN gets config.json, metrics.jsonl (one line per epoch: losses per term, validation
metrics, pages/s, pages skipped), latest.pt and best.pt (lowest validation loss; training
loss without a validation split), skipped_pages.csv when pages could not be used and
lenient_pages.csv when pages were read leniently. `--save_steps N` also writes latest.pt
every N steps within an epoch. `--resume` continues from RUN/latest.pt (or the checkpoint
given), mid-epoch too: the same batches, masks and dropout as an uninterrupted run.
Every file is written atomically (temp file + rename); a killed run leaves no partial
output, and its stray temp files are removed when the next run starts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import math
import os
import re
import sys
import time
import zlib
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import dataspec
from dataspec.io import atomic_write_bytes

from . import distributed
from .checkpoint import (
    load_checkpoint,
    load_model_state,
    note_added,
    optimizer_state_for,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .cli import (
    CLIError,
    add_source_args,
    discover_pages,
    flag,
    json_text,
    output_bytes,
    setup_logging,
)
from .config import ModelConfig
from .data import (
    DEFAULT_MAX_JSON_BYTES,
    DEFAULT_MAX_PIXELS,
    Batch,
    Collate,
    PageDataset,
    PagePairBatchSampler,
    page_key,
    split_by_book,
)
from .evaluate import evaluate_loader, finalize
from .losses import LossWeights, closure_losses
from .model import build_model, sample_mpm_mask
from .progress import Progress
from .trackers import TRACKERS, Tracker

log = logging.getLogger("training")

MODEL_FLAGS = (
    "dim",
    "num_heads",
    "temperature",
    "context_layers",
    "dropout",
    "image_size",
    "max_panels",
    "crop_mode",
    "vocab_size",
    "max_tokens",
    "rtl",
    "vision_model",
    "text_model",
)


def build_parser() -> argparse.ArgumentParser:
    """Every training flag; the runbook's spellings work verbatim, hyphens too."""
    defaults = ModelConfig()
    p = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_args(p)
    flag(p, "output_dir", type=Path, required=True, help="run folder (created)")
    flag(p, "batch_size", type=int, default=4, help="pages per batch (per process)")
    flag(p, "epochs", type=int, default=10)
    flag(p, "num_workers", type=int, default=4, help="loader processes (0: load in-process)")
    flag(p, "lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    flag(p, "weight_decay", type=float, default=0.01)
    flag(p, "warmup_steps", type=int, default=None, help="default: 5%% of all steps")
    flag(p, "grad_clip", type=float, default=1.0)
    flag(p, "seed", type=int, default=0)
    flag(
        p,
        "val_fraction",
        type=float,
        default=0.1,
        help="share of pages (whole books) held out for validation",
    )
    flag(
        p,
        "save_every",
        type=int,
        default=0,
        metavar="N",
        help="also keep epoch_N.pt every N epochs (0: only latest.pt and best.pt)",
    )
    flag(
        p,
        "save_steps",
        type=int,
        default=0,
        metavar="N",
        help="also write latest.pt every N optimizer steps within an epoch, so that "
        "--resume loses at most N steps (0: at the end of each epoch only)",
    )
    flag(
        p,
        "resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue from OUTPUT_DIR/latest.pt, or from CHECKPOINT",
    )
    flag(p, "device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    flag(p, "amp", action="store_true", help="mixed precision (CUDA only)")
    flag(p, "no_progress", action="store_true", help="no progress bars")
    flag(p, "report_to", choices=TRACKERS, default="none", help="experiment tracker")
    g = p.add_argument_group("model")
    flag(g, "num_heads", type=int, default=defaults.num_heads, help="attention-pooling heads")
    flag(
        g,
        "temperature",
        type=float,
        default=defaults.temperature,
        help="attention-pooling softmax temperature",
    )
    flag(g, "dim", type=int, default=defaults.dim)
    flag(g, "context_layers", type=int, default=defaults.context_layers)
    flag(g, "dropout", type=float, default=defaults.dropout)
    flag(g, "max_panels", type=int, default=defaults.max_panels)
    flag(g, "image_size", type=int, default=defaults.image_size)
    flag(g, "crop_mode", choices=("letterbox", "stretch"), default=defaults.crop_mode)
    flag(g, "vocab_size", type=int, default=defaults.vocab_size)
    flag(g, "max_tokens", type=int, default=defaults.max_tokens)
    flag(g, "rtl", action="store_true", help="right-to-left reading order (manga)")
    flag(
        g,
        "vision_model",
        default=None,
        metavar="PATH",
        help="local pretrained vision model (needs transformers)",
    )
    flag(
        g,
        "text_model",
        default=None,
        metavar="PATH",
        help="local pretrained text model (needs transformers)",
    )
    o = p.add_argument_group("objectives")
    flag(o, "next_weight", type=float, default=LossWeights.next)
    flag(o, "mask_weight", type=float, default=LossWeights.mpm)
    flag(o, "order_weight", type=float, default=LossWeights.order)
    flag(o, "mask_ratio", type=float, default=0.25, help="share of panels masked")
    flag(
        o,
        "mask_temperature",
        type=float,
        default=LossWeights.mpm_temperature,
        help="temperature of the masked-panel contrastive loss",
    )
    d = p.add_argument_group("loading")
    flag(
        d,
        "max_image_pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="skip larger images (decompression-bomb guard)",
    )
    flag(
        d,
        "full_decode",
        action="store_true",
        help="always decode JPEGs at full size (no reduced-scale fast path)",
    )
    flag(
        d,
        "strict_images",
        action="store_true",
        help="skip truncated images instead of loading them",
    )
    flag(
        d,
        "max_json_bytes",
        type=int,
        default=DEFAULT_MAX_JSON_BYTES,
        help="skip larger page files unread",
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and check ranges (usage errors exit with status 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    checks = [
        (args.batch_size >= 1, "--batch_size must be >= 1"),
        (args.epochs >= 0, "--epochs must be >= 0"),
        (args.num_workers >= 0, "--num_workers must be >= 0"),
        (args.lr > 0, "--lr must be > 0"),
        (0.0 <= args.val_fraction < 1.0, "--val_fraction must be in [0, 1)"),
        (0.0 < args.mask_ratio < 1.0, "--mask_ratio must be in (0, 1)"),
        (args.max_samples is None or args.max_samples >= 1, "--max_samples must be >= 1"),
        (args.save_every >= 0, "--save_every must be >= 0"),
        (args.save_steps >= 0, "--save_steps must be >= 0"),
        (args.max_json_bytes >= 1, "--max_json_bytes must be >= 1"),
        (args.max_image_pixels >= 1, "--max_image_pixels must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    try:
        model_config(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The model flags as a ModelConfig."""
    return ModelConfig(**{k: getattr(args, k) for k in MODEL_FLAGS})


def _jsonable(args: argparse.Namespace) -> dict[str, Any]:
    return {k: json_text(str(v)) if isinstance(v, Path | str) else v for k, v in vars(args).items()}


def _seed_for(*parts: object) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


def _lr_lambda(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _optimizer(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.lr)


def _loader(
    dataset: PageDataset,
    sampler: PagePairBatchSampler,
    args: argparse.Namespace,
    device: torch.device,
    persistent: bool,
) -> DataLoader:  # type: ignore[type-arg]
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.num_workers,
        collate_fn=Collate(dataset.config.max_panels),
        pin_memory=device.type == "cuda",
        persistent_workers=persistent and args.num_workers > 0,
    )


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_bytes(
        path, b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in history)
    )


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, output_bytes(buf.getvalue()))


def _write_skips(path: Path, skips: dict[str, list[str]]) -> None:
    rows = [[p, *reason_kind] for p, reason_kind in sorted(skips.items())]
    _write_csv(path, ["path", "reason", "kind"], rows)


def _write_lenient(path: Path, lenient: dict[str, str]) -> None:
    _write_csv(path, ["path", "notes"], [[p, n] for p, n in sorted(lenient.items())])


_LISTED = 10_000
"""At most this many skipped (and lenient) pages are listed; all are counted."""

_TEMP = re.compile(
    r"^\.(latest\.pt|best\.pt|epoch_\d+\.pt|config\.json|metrics\.jsonl|skipped_pages\.csv"
    r"|lenient_pages\.csv)\..+\.tmp$"
)
"""Temp files of our atomic writes (`dataspec.io.atomic_open`) beside the run's outputs."""


def remove_stale_temps(out_dir: Path) -> int:
    """Delete the temp files a killed run left in `out_dir` (never read: every output is
    replaced by rename); returns how many. Only our own temp-file names are touched."""
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(out_dir):
            if _TEMP.match(entry.name) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


class _Stats:
    """Per-epoch sums of a rank's losses and loader counts."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.skips: dict[str, list[str]] = {}
        """path → [reason, kind]"""
        self.lenient: dict[str, str] = {}
        """path → the lenient load's note codes"""

    def restore(self, position: dict[str, Any]) -> None:
        """Continue the sums and lists a mid-epoch checkpoint saved."""
        self.sums.update({k: float(v) for k, v in position["sums"].items()})
        self.skips.update({k: list(v) for k, v in position["skips"].items()})
        self.lenient.update(position["lenient"])

    def count(self, batch: Batch) -> None:
        s = self.sums
        s["pages"] += len(batch)
        s["pages_skipped"] += len(batch.skipped)
        s["truncated_images"] += sum(m.truncated_image for m in batch.pages)
        s["lenient_pages"] += sum(m.lenient for m in batch.pages)
        s["zero_panel_pages"] += sum(not m.boxes for m in batch.pages)
        s["pages_over_max_panels"] += sum(m.panels_total > len(m.boxes) for m in batch.pages)
        s["reduced_decodes"] += sum(m.decode_scale > 1 for m in batch.pages)
        for skip in batch.skipped:
            if skip.json_path not in self.skips and len(self.skips) < _LISTED:
                self.skips[skip.json_path] = [skip.reason, skip.kind]
                if len(self.skips) <= 5:
                    log.warning("skipped page: %s", skip.reason)
        for meta in batch.pages:
            if meta.lenient and meta.json_path not in self.lenient and len(self.lenient) < _LISTED:
                self.lenient[meta.json_path] = " ".join(meta.notes)


def main(argv: list[str] | None = None) -> int:
    """Train; returns the exit status (0 done, 1 bad input; 2 usage, via argparse)."""
    args = parse_args(argv)
    try:
        info = distributed.setup(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    setup_logging(info.is_main)
    try:
        train(args, info)
    except (CLIError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output that cannot be written (full disk, a folder in the way)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.cleanup()
    return 0


class UserError(Exception):
    """A run that cannot go on because of its input (bad resume, every page skipped)."""


def train(args: argparse.Namespace, info: distributed.DistInfo) -> None:
    """The whole run: data, model, epochs, validation, checkpoints, metrics."""
    out_dir: Path = args.output_dir
    device = info.device
    resume_state: dict[str, Any] | None = None
    if args.resume is not None:
        ckpt = out_dir / "latest.pt" if args.resume == "latest" else Path(args.resume)
        if ckpt.is_dir():
            ckpt = ckpt / "latest.pt"
        try:
            resume_state = load_checkpoint(ckpt)
        except ValueError as exc:
            raise UserError(f"--resume: {exc}") from None
        config = ModelConfig.from_dict(resume_state["config"])
        if config != model_config(args) and info.is_main:
            log.warning("resuming with the checkpoint's model config; model flags ignored")
    else:
        config = model_config(args)
    paths = discover_pages(args)
    keys = [page_key(p) for p in paths]
    train_idx, val_idx = split_by_book(keys, args.val_fraction, args.seed)
    loading = {
        "image_root": args.image_root,
        "config": config,
        "seed": args.seed,
        "fast_decode": not args.full_decode,
        "max_pixels": args.max_image_pixels,
        "allow_truncated": not args.strict_images,
        "strict_paths": args.strict_paths,
        "max_json_bytes": args.max_json_bytes,
    }
    train_ds = PageDataset([paths[i] for i in train_idx], **loading)
    val_ds = PageDataset([paths[i] for i in val_idx], **loading)
    sampler_args = {"seed": args.seed, "rank": info.rank, "world_size": info.world_size}
    train_sampler = PagePairBatchSampler(
        train_ds.keys, args.batch_size, shuffle=True, **sampler_args
    )
    val_sampler = PagePairBatchSampler(
        val_ds.keys, args.batch_size, shuffle=False, pad=False, **sampler_args
    )
    train_loader = _loader(train_ds, train_sampler, args, device, persistent=True)
    val_loader = _loader(val_ds, val_sampler, args, device, persistent=False)

    torch.manual_seed(args.seed)
    try:
        model = build_model(config).to(device)
    except (RuntimeError, OSError) as exc:  # a pretrained encoder that cannot be loaded
        raise UserError(str(exc)) from None
    optimizer = _optimizer(model, args)
    steps_per_epoch = len(train_sampler)
    total_steps = max(1, steps_per_epoch * args.epochs)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, total_steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(max(1, warmup), total_steps)
    )
    use_amp = bool(args.amp and device.type == "cuda")
    if args.amp and not use_amp and info.is_main:
        log.warning("--amp works on CUDA only; training in float32 on %s", device)
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    weights = LossWeights(
        args.next_weight, args.mask_weight, args.order_weight, args.mask_temperature
    )
    # what a mid-epoch checkpoint's batch position means: the same batches only under the
    # same batch size, seed, world size and training pages
    layout = {
        "batch_size": args.batch_size,
        "seed": args.seed,
        "world_size": info.world_size,
        "train_pages": len(train_ds),
        "pages_crc": zlib.crc32("\n".join(train_ds.paths).encode("utf-8", "surrogatepass")),
    }

    start_epoch, step, history = 0, 0, []
    best: dict[str, Any] = {"value": math.inf, "epoch": None}
    all_skips: dict[str, list[str]] = {}
    all_lenient: dict[str, str] = {}
    position: dict[str, Any] | None = None
    if resume_state is not None:
        source = str(ckpt)
        try:
            added = load_model_state(model, resume_state["model"], source)
            optimizer.load_state_dict(
                optimizer_state_for(resume_state["optimizer"], optimizer, model, added)
            )
        except ValueError as exc:
            raise UserError(f"--resume: {exc}") from None
        if info.is_main:
            note_added(source, added)
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        set_rng_state(resume_state["rng"])
        start_epoch, step = int(resume_state["epoch"]), int(resume_state["step"])
        best = dict(resume_state["best"])
        history = [r for r in resume_state.get("history", []) if r["epoch"] <= start_epoch]
        all_skips = {k: list(v) for k, v in resume_state.get("skips", {}).items()}
        all_lenient = dict(resume_state.get("lenient", {}))
        position = resume_state.get("position")
        if info.is_main:
            where = f" batch {position['batch']}" if position else ""
            log.info("resumed from epoch %d%s (step %d)", start_epoch, where, step)

    net: torch.nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        stale = remove_stale_temps(out_dir)
        if stale:
            log.info("removed %d temp file(s) an interrupted run left in %s", stale, out_dir)
        for tracker_dir in ("tensorboard", "wandb"):
            if args.report_to == tracker_dir and (out_dir / tracker_dir).is_symlink():
                raise UserError(
                    f"{out_dir / tracker_dir} is a symlink: refusing to write tracker files "
                    "outside the output directory"
                )
        run_config = {
            "model": config.to_dict(),
            "args": _jsonable(args),
            "loss_weights": asdict(weights),
            "pages": {"found": len(paths), "train": len(train_ds), "val": len(val_ds)},
            "world_size": info.world_size,
            "device": str(device),
            "amp": str(amp_dtype).removeprefix("torch.") if use_amp else None,
            "steps_per_epoch": steps_per_epoch,
            "versions": {
                "dataspec": dataspec.__version__,
                "spec": dataspec.SPEC_VERSION,
                "torch": torch.__version__,
            },
        }
        atomic_write_bytes(
            out_dir / "config.json",
            orjson.dumps(run_config, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE),
        )
        log.info(
            "%d pages: %d train, %d validation; %d steps/epoch on %s x%d",
            len(paths),
            len(train_ds),
            len(val_ds),
            steps_per_epoch,
            device,
            info.world_size,
        )
    try:
        tracker = Tracker(args.report_to if info.is_main else "none", out_dir, _jsonable(args))
    except RuntimeError as exc:
        raise UserError(str(exc)) from None

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp)

    def checkpoint(epochs_done: int, here: dict[str, Any] | None) -> dict[str, Any]:
        """Everything `--resume` needs; `here` is the position within an unfinished epoch."""
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epochs_done,
            "step": step,
            "config": config.to_dict(),
            "args": _jsonable(args),
            "rng": rng_state(),
            "best": best,
            "metrics": history[-1] if history else None,
            "history": history,
            "skips": all_skips,
            "lenient": all_lenient,
            "position": here,
        }

    for epoch in range(start_epoch, args.epochs):
        torch.manual_seed(_seed_for(args.seed, epoch, info.rank))  # resumable
        stats = _Stats()
        start_batch, seconds_before = 0, 0.0
        if position is not None and epoch == start_epoch:
            if position.get("layout") == layout:
                start_batch, seconds_before = int(position["batch"]), float(position["seconds"])
                if info.is_main:  # rank 0 carries the saved sums of every rank
                    stats.restore(position)
            elif info.is_main:
                log.warning(
                    "the checkpoint stopped within epoch %d under another batch size, seed, "
                    "world size or page list: that epoch starts again from its first batch",
                    epoch + 1,
                )
        position = None
        train_sampler.set_epoch(epoch, start_batch)
        n_batches = len(train_sampler.batches())
        done = start_batch
        net.train()
        bar = Progress(
            steps_per_epoch,
            f"epoch {epoch + 1}/{args.epochs}",
            enabled=info.is_main and not args.no_progress,
        )
        bar.done = start_batch
        started = time.perf_counter()
        for batch in train_loader:
            done += 1
            stats.count(batch)
            empty = len(batch) == 0
            if distributed.any_across(empty, info):
                bar.update()
                continue  # a batch of only unusable pages somewhere: every rank skips it
            batch = batch.to(device, non_blocking=True)
            generator = torch.Generator().manual_seed(_seed_for(args.seed, epoch, step, info.rank))
            mask = sample_mpm_mask(batch.panel_mask, args.mask_ratio, generator)
            # dropout seeded by the step: the same after a mid-epoch resume
            torch.manual_seed(_seed_for(args.seed, epoch, step, info.rank, "dropout"))
            with autocast():
                out = net(batch, mask)
                losses = closure_losses(out, batch, weights)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(losses["total"]).backward()
            scaler.unscale_(optimizer)
            if args.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            stats.sums["batches"] += 1
            for key, value in losses.items():
                stats.sums[f"loss_{key}"] += value.item()
            bar.update(loss=losses["total"].item(), next=losses["next"].item())
            if args.save_steps and step % args.save_steps == 0 and done < n_batches:
                # every rank reaches this step together (empty batches are skipped by all)
                sums = distributed.sum_across(dict(stats.sums), info)
                skips: dict[str, list[str]] = {}
                lenient: dict[str, str] = {}
                for rank_skips, rank_lenient in distributed.gather_objects(
                    (stats.skips, stats.lenient), info
                ):
                    skips.update(rank_skips)
                    lenient.update(rank_lenient)
                if info.is_main:
                    here = {
                        "epoch": epoch,
                        "batch": done,
                        "sums": sums,
                        "skips": skips,
                        "lenient": lenient,
                        "seconds": seconds_before + time.perf_counter() - started,
                        "layout": layout,
                    }
                    save_checkpoint(out_dir / "latest.pt", checkpoint(epoch, here))
        bar.close()
        seconds = seconds_before + time.perf_counter() - started
        train_sums = distributed.sum_across(dict(stats.sums), info)

        val_skips: list[tuple[str, str, str]] = []
        val_tally = evaluate_loader(
            model,
            val_loader,
            device,
            rtl=config.rtl,
            weights=weights,
            mask_ratio=args.mask_ratio,
            seed=args.seed,
            autocast=autocast(),
            skipped=val_skips,
        )
        val = finalize(distributed.sum_across(val_tally, info))
        listed = (stats.skips, stats.lenient, [(p, [r, k]) for p, r, k in val_skips])
        for rank_skips, rank_lenient, rank_val in distributed.gather_objects(listed, info):
            for path, reason_kind in [*rank_skips.items(), *rank_val]:
                if path not in all_skips and len(all_skips) < _LISTED:
                    all_skips[path] = reason_kind
            for path, notes in rank_lenient.items():
                if path not in all_lenient and len(all_lenient) < _LISTED:
                    all_lenient[path] = notes

        batches = max(1.0, train_sums.get("batches", 0.0))
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": scheduler.get_last_lr()[0],
            "train": {
                k: train_sums.get(f"loss_{k}", 0.0) / batches
                for k in ("next", "mpm", "order", "total")
            },
            "val": val,
            "pages": int(train_sums.get("pages", 0)),
            "pages_per_s": train_sums.get("pages", 0.0) / max(seconds, 1e-9),
            "pages_skipped": int(train_sums.get("pages_skipped", 0)),
            "val_pages_skipped": val["pages_skipped"],
            "truncated_images": int(train_sums.get("truncated_images", 0)),
            "lenient_pages": int(train_sums.get("lenient_pages", 0)),
            "zero_panel_pages": int(train_sums.get("zero_panel_pages", 0)),
            "pages_over_max_panels": int(train_sums.get("pages_over_max_panels", 0)),
            "reduced_decodes": int(train_sums.get("reduced_decodes", 0)),
            "seconds": seconds,
        }
        if train_sums.get("pages", 0) == 0 and train_sums.get("pages_skipped", 0) > 0:
            raise UserError(
                f"every training page was skipped in epoch {epoch + 1}; first reasons: "
                + "; ".join(reason for reason, _ in list(all_skips.values())[:3])
            )
        history.append(record)
        # best: lowest validation loss; training loss when there is no usable validation
        criterion = val.get("loss_total", math.nan)
        if math.isnan(criterion):
            criterion = record["train"]["total"]
        improved = not math.isnan(criterion) and criterion < best["value"]
        if improved:
            best = {"value": criterion, "epoch": epoch + 1}
        if info.is_main:
            state = checkpoint(epoch + 1, None)
            save_checkpoint(out_dir / "latest.pt", state)
            if improved:
                save_checkpoint(out_dir / "best.pt", state)
            if args.save_every and (epoch + 1) % args.save_every == 0:
                save_checkpoint(out_dir / f"epoch_{epoch + 1}.pt", state)
            _write_metrics(out_dir / "metrics.jsonl", history)
            if all_skips:
                _write_skips(out_dir / "skipped_pages.csv", all_skips)
            if all_lenient:
                _write_lenient(out_dir / "lenient_pages.csv", all_lenient)
            tracker.log(_flat(record), step)
            log.info(
                "epoch %d: loss %.4f (next %.4f mpm %.4f order %.4f) | val next-panel acc %.3f "
                "(chance %.3f, heuristic %.3f) | %.1f pages/s | %d skipped",
                epoch + 1,
                record["train"]["total"],
                record["train"]["next"],
                record["train"]["mpm"],
                record["train"]["order"],
                val["next_panel_acc"],
                val["chance_next_panel_acc"],
                val["heuristic_next_panel_acc"],
                record["pages_per_s"],
                record["pages_skipped"] + record["val_pages_skipped"],
            )
        distributed.barrier(info)
    tracker.close()


def _flat(record: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(
                {f"{key}/{k}": float(v) for k, v in value.items() if isinstance(v, int | float)}
            )
        elif isinstance(value, int | float):
            out[key] = float(value)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
