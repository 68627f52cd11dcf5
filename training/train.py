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

An --output_dir that already holds a run (latest.pt, best.pt, epoch_N.pt or
metrics.jsonl) is refused, nothing in it touched, unless `--resume` continues that run or
`--overwrite` replaces it (the earlier run's outputs are removed when the new run starts
writing). Every --image_root must exist. Skipped pages are logged, the first five of each
kind, then "... and N more like this"; all are listed in skipped_pages.csv.
"""

from __future__ import annotations

import logging
import math
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
from .batches import Batch, Collate, PagePairBatchSampler
from .checkpoint import (
    load_checkpoint,
    load_model_state,
    model_config_of,
    not_ours,
    note_added,
    optimizer_state_for,
    require,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .cli import (
    Args,
    SkipLog,
    check_image_roots,
    discover_pages,
    first_reasons,
    json_text,
)
from .config import ModelConfig
from .data import PageDataset, page_key, split_by_book
from .evaluate import evaluate_loader, finalize
from .losses import LossWeights, closure_losses
from .model import build_model, sample_mpm_mask
from .order_eval import (
    OrderLabels,
    TruthFile,
    label_sources,
    left_out,
    no_independent_labels,
    unscored,
)
from .progress import Progress
from .rundir import (
    earlier_run,
    refusal,
    remove_outputs,
    remove_stale_temps,
    write_lenient,
    write_metrics,
    write_skips,
)
from .trackers import Tracker

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


def model_config(args: Args) -> ModelConfig:
    """The model flags as a ModelConfig."""
    return ModelConfig(**{k: getattr(args, k) for k in MODEL_FLAGS})


def _jsonable(args: Args) -> dict[str, Any]:
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


def _optimizer(model: torch.nn.Module, args: Args) -> torch.optim.Optimizer:
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
    args: Args,
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


_LISTED = 10_000
"""At most this many skipped (and lenient) pages are listed; all are counted."""

RESUME_KEYS = ("model", "config", "optimizer", "scheduler", "scaler", "rng", "epoch", "step")
"""What `--resume` needs of a checkpoint besides the format tag."""


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

    def count(self, batch: Batch, skip_log: SkipLog) -> None:
        s = self.sums
        s["pages"] += len(batch)
        s["pages_skipped"] += len(batch.skipped)
        s["truncated_images"] += sum(m.truncated_image for m in batch.pages)
        s["lenient_pages"] += sum(m.lenient for m in batch.pages)
        s["zero_panel_pages"] += sum(not m.boxes for m in batch.pages)
        s["pages_over_max_panels"] += sum(m.panels_total > len(m.boxes) for m in batch.pages)
        s["reduced_decodes"] += sum(m.decode_scale > 1 for m in batch.pages)
        for skip in batch.skipped:
            skip_log.add(skip.json_path, skip.reason, skip.kind)
            if skip.json_path not in self.skips and len(self.skips) < _LISTED:
                self.skips[skip.json_path] = [skip.reason, skip.kind]
        for meta in batch.pages:
            if meta.lenient and meta.json_path not in self.lenient and len(self.lenient) < _LISTED:
                self.lenient[meta.json_path] = " ".join(meta.notes)


class UserError(Exception):
    """A run that cannot go on because of its input (bad resume, every page skipped)."""


def train(args: Args, info: distributed.DistInfo) -> None:
    """The whole run: data, model, epochs, validation, checkpoints, metrics."""
    out_dir: Path = args.output_dir
    device = info.device
    check_image_roots(args.image_root)
    if args.resume is None and not args.overwrite:
        held = earlier_run(out_dir) if info.is_main else []
        if distributed.any_across(bool(held), info):
            raise UserError(refusal(out_dir, held))
    resume_state: dict[str, Any] | None = None
    if args.resume is not None:
        ckpt = out_dir / "latest.pt" if args.resume == "latest" else Path(args.resume)
        if ckpt.is_dir():
            ckpt = ckpt / "latest.pt"
        try:
            resume_state = load_checkpoint(ckpt)
            require(ckpt, resume_state, RESUME_KEYS)
            config = model_config_of(ckpt, resume_state)
        except ValueError as exc:
            raise UserError(f"--resume: {exc}") from None
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
        "order_labels": args.order_labels,
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
    val_labels = _order_labels(val_ds, args)

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
        args.next_weight,
        args.mask_weight,
        args.order_weight,
        args.mask_temperature,
        args.direction_weight,
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
        except ValueError as exc:
            raise UserError(f"--resume: {exc}") from None
        try:
            optimizer.load_state_dict(
                optimizer_state_for(resume_state["optimizer"], optimizer, model, added)
            )
            scheduler.load_state_dict(resume_state["scheduler"])
            scaler.load_state_dict(resume_state["scaler"])
            set_rng_state(resume_state["rng"])
            start_epoch, step = int(resume_state["epoch"]), int(resume_state["step"])
            best = dict(resume_state["best"])
            history = [r for r in resume_state.get("history", []) if r["epoch"] <= start_epoch]
            all_skips = {k: list(v) for k, v in resume_state.get("skips", {}).items()}
            all_lenient = dict(resume_state.get("lenient", {}))
            position = resume_state.get("position")
            if position is not None and not isinstance(position, dict):
                raise TypeError("its batch position is not a dict")
        except (ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError) as exc:
            why = f"its training state does not restore: {type(exc).__name__} {exc}"[:300]
            raise UserError(f"--resume: {not_ours(ckpt, why)}") from None
        if info.is_main:
            note_added(source, added)
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
        if args.overwrite and args.resume is None:
            removed = remove_outputs(out_dir)
            if removed:
                log.info("--overwrite: removed the earlier run's %s from %s", removed, out_dir)
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

    skip_log = SkipLog(log, enabled=info.is_main)
    skips_csv = out_dir / "skipped_pages.csv"
    said_no_labels = False

    def skip_summary() -> None:
        kinds = [kind for _, kind in all_skips.values()]
        skip_log.summary(f"every one is listed in {skips_csv}", kinds)

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
            enabled=info.is_main and args.progress,
        )
        bar.done = start_batch
        started = time.perf_counter()
        for batch in train_loader:
            done += 1
            stats.count(batch, skip_log)
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
            skip_log=skip_log,
            labels=val_labels,
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
                for k in ("next", "mpm", "order", "direction", "total")
            },
            "val": val,
            "pages": int(train_sums.get("pages", 0)),
            "pages_per_s": train_sums.get("pages", 0.0) / max(seconds, 1e-9),
            "pages_skipped": int(train_sums.get("pages_skipped", 0)),
            "val_pages_skipped": val["pages_skipped"],
            "val_order_pages": val["pages_scored"],
            "val_order_left_out": left_out(val),
            "val_order_label_sources": label_sources(val),
            "truncated_images": int(train_sums.get("truncated_images", 0)),
            "lenient_pages": int(train_sums.get("lenient_pages", 0)),
            "zero_panel_pages": int(train_sums.get("zero_panel_pages", 0)),
            "pages_over_max_panels": int(train_sums.get("pages_over_max_panels", 0)),
            "reduced_decodes": int(train_sums.get("reduced_decodes", 0)),
            "seconds": seconds,
        }
        if train_sums.get("pages", 0) == 0 and train_sums.get("pages_skipped", 0) > 0:
            if info.is_main:
                write_skips(skips_csv, all_skips)
                skip_summary()
            raise UserError(
                f"every training page was skipped in epoch {epoch + 1}; first reasons: "
                + first_reasons([reason for reason, _ in all_skips.values()])
                + f" (every skipped page: {skips_csv})"
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
            write_metrics(out_dir / "metrics.jsonl", history)
            if all_skips:
                write_skips(skips_csv, all_skips)
            if all_lenient:
                write_lenient(out_dir / "lenient_pages.csv", all_lenient)
            tracker.log(_flat(record), step)
            if no_independent_labels(val) and not said_no_labels:
                said_no_labels = True
                log.warning(
                    "validation: no page has an order independent of the layout heuristic "
                    "(%d pages: %s), so reading order is not graded (grading the heuristic "
                    "against its own order says nothing); give validation pages with "
                    "reading_order_source vlm/truth",
                    val["pages"],
                    unscored(val),
                )
            log.info(
                "epoch %d: loss %.4f (next %.4f mpm %.4f order %.4f) | %s | %.1f pages/s "
                "| %d skipped",
                epoch + 1,
                record["train"]["total"],
                record["train"]["next"],
                record["train"]["mpm"],
                record["train"]["order"],
                _val_order(val),
                record["pages_per_s"],
                record["pages_skipped"] + record["val_pages_skipped"],
            )
        distributed.barrier(info)
    skip_summary()
    tracker.close()


def _order_labels(dataset: PageDataset, args: Args) -> OrderLabels:
    """Validation's order grading (`training.order_eval`): pages whose order is
    independent of the layout heuristic; a truth file and unsourced orders when the run's
    flags give them (`truth`, `trust_unsourced_orders`)."""
    truth = None
    truth_path = getattr(args, "truth", None)
    if truth_path is not None:
        try:
            truth = TruthFile.read(truth_path, args.image_root)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    trust = bool(getattr(args, "trust_unsourced_orders", False))
    return OrderLabels(dataset, truth=truth, trust_unsourced=trust)


def _val_order(val: dict[str, Any]) -> str:
    """The epoch line's validation order numbers: model against heuristic and chance on
    the independently labelled pages, or why there are none."""
    if not val["pages_scored"]:
        return f"val order: none graded ({unscored(val, skipped=True) or 'no pages'})"
    text = (
        f"val next-panel acc {val['next_panel_acc']:.3f} (heuristic "
        f"{val['heuristic_next_panel_acc']:.3f}, chance {val['chance_next_panel_acc']:.3f}; "
        f"{val['pages_scored']} pages"
    )
    if val["pages_blind"]:
        text += (
            f", heuristic blind on {val['pages_blind']}: model "
            f"{val['blind_next_panel_acc']:.3f} vs {val['heuristic_blind_next_panel_acc']:.3f}"
        )
    return text + ")"


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
