"""Training loader throughput against a full-decode baseline, and training step time.

    python benchmarks/bench_training.py                    # CPU
    python benchmarks/bench_training.py --device cuda      # step time on a GPU too

Draws a synthetic corpus of real-size pages (1988x3057 JPEGs, 3-9 panels, with
`training.synthetic`) in a temp folder, reads every file once to warm the page cache, then
on one core (in-process, `num_threads` 1 for the loader part):
  loader, full decode: `PageDataset(fast_decode=False)` pages/s: decode the whole JPEG,
                       then crop and resize every panel (the same resampling as ours)
  loader, fast       : `PageDataset()` pages/s: reduced-scale JPEG decode when every crop
                       is downscaled anyway; the ratio fast / full (target >= 2.5)
  (for reference: full decode with Pillow's approximate two-step resize, reducing_gap=2)
and the mean time of one training step (forward, three losses, backward, AdamW) on a
batch of `--batch_size` pages at `--image_size`, on `--device`.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import torch

from training.batches import Collate, PagePairBatchSampler
from training.config import ModelConfig
from training.data import PageDataset
from training.distributed import resolve_device
from training.losses import LossWeights, closure_losses
from training.model import build_model, sample_mpm_mask
from training.synthetic import make_corpus


def loader_rate(ds: PageDataset, rounds: int) -> float:
    """Pages per second of `ds[i]` over every page, best of `rounds` passes."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(len(ds)):
            ds[i]
        best = max(best, len(ds) / (time.perf_counter() - start))
    return best


def step_time(ds: PageDataset, device: torch.device, batch_size: int, steps: int) -> float:
    """Mean seconds per training step (after two warm-up steps), data excluded."""
    cfg = ds.config
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collate = Collate(cfg.max_panels)
    sampler = PagePairBatchSampler(ds.keys, batch_size, seed=0)
    batches = [collate([ds[k] for k in keys]).to(device) for keys in sampler][: steps + 2]
    gen = torch.Generator().manual_seed(0)
    times = []
    for k in range(steps + 2):
        batch = batches[k % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        mask = sample_mpm_mask(batch.panel_mask, 0.25, gen)
        losses = closure_losses(model(batch, mask), batch, LossWeights())
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= 2:
            times.append(time.perf_counter() - start)
    return statistics.mean(times)


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--width", type=int, default=1988)
    ap.add_argument("--height", type=int, default=3057)
    ap.add_argument("--image_size", type=int, default=224)
    ap.add_argument("--crop_mode", choices=("letterbox", "stretch"), default="letterbox")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    args = ap.parse_args()
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        ap.error(str(exc))

    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        corpus = make_corpus(
            Path(tmp), pages=args.pages, seed=0, width=args.width, height=args.height
        )
        for path in corpus.image_root.rglob("*.jpg"):
            path.read_bytes()  # warm the page cache
        cfg = ModelConfig(image_size=args.image_size, crop_mode=args.crop_mode)
        root = str(corpus.image_root)
        full = PageDataset(corpus.pages, image_root=root, config=cfg, fast_decode=False)
        fast = PageDataset(corpus.pages, image_root=root, config=cfg)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        full_rate = loader_rate(full, args.rounds)
        fast_rate = loader_rate(fast, args.rounds)
        gap = PageDataset(
            corpus.pages, image_root=root, config=cfg, fast_decode=False, reducing_gap=2.0
        )
        gap_rate = loader_rate(gap, args.rounds)
        torch.set_num_threads(threads)
        scales = collections.Counter(fast[i].meta.decode_scale for i in range(len(fast)))
        panels = sum(len(fast[i].meta.boxes) for i in range(len(fast)))
        step = step_time(fast, device, args.batch_size, args.steps)

    print(
        f"corpus: {args.pages} pages {args.width}x{args.height}, {panels} panels, crops "
        f"{args.image_size}px {args.crop_mode}"
    )
    shown = ", ".join(f"1/{s}: {n}" for s, n in sorted(scales.items()))
    print(f"loader, full decode      : {full_rate:8.1f} pages/s")
    print(f"loader, fast (ours)      : {fast_rate:8.1f} pages/s   (decode scales {shown})")
    print(f"ratio fast / full        : {fast_rate / full_rate:8.2f}x   (target >= 2.5x)")
    print(
        f"(full decode, approximate two-step resize: {gap_rate:.1f} pages/s; "
        f"fast / that {fast_rate / gap_rate:.2f}x)"
    )
    print(f"train step ({args.batch_size} pages, {device.type}): {step * 1000:8.1f} ms/batch")


if __name__ == "__main__":
    main()
