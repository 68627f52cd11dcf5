"""Embedding store write throughput and nearest-neighbour query latency, exact vs FAISS.

    python benchmarks/bench_search.py --vectors 1000000 --dim 256 --queries 200 --k 10
    python benchmarks/bench_search.py --vectors 2000 --embed_pages 8     # tiny, plus model

In one run, under `--out` (default: a temp folder, removed afterwards):
  1. a synthetic store of `--vectors` pages written through `training.store.StoreWriter` in
     batches of `--batch` rows (chunks of `--chunk_pages`): page embeddings are clustered
     float16 vectors (`--clusters` Gaussian centres plus noise, so neighbours mean
     something), one empty panel slot per page, "" texts and short paths; write rows/s
     counts only the writer's calls, not drawing the vectors;
  2. for the `page` kind, query latency (median and p95 ms, one query at a time) and
     batched throughput (all queries in one call) of
       exact : `VectorIndex` searched in memory with numpy (exact_below >= N), the baseline;
       faiss : `VectorIndex` with exact_below=0 and `--factory`: its build time (the first
               load builds it and saves it under the index folder), its reload time from
               disk, and recall@k against the exact results on the same queries;
     queries are noisy copies of stored vectors;
  3. peak RSS (resource.getrusage) after each phase;
  4. with `--embed_pages N`: the embedding throughput (pages/s) of `training.embed` with an
     untrained default model (ModelConfig()) on a synthetic corpus of N pages.
Plain figures only: no targets, no PASS/FAIL.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.look import LOOK_DIM
from training.search_index import VectorIndex
from training.store import Rows, Store, StoreWriter


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def synthetic_rows(start: int, vectors: np.ndarray) -> Rows:
    """`vectors` as store rows from page `start` on: one empty panel slot per page."""
    b, d = vectors.shape
    zeros = np.zeros((b, 1, d), np.float16)
    paths = np.array([f"p/{i}.json" for i in range(start, start + b)], dtype=object)
    return Rows(
        page_embedding=vectors,
        page_image=np.zeros((b, d), np.float16),
        page_look=np.zeros((b, LOOK_DIM), np.float16),
        panel_embedding=zeros,
        panel_vision=zeros,
        panel_text=zeros,
        panel_mask=np.zeros((b, 1), bool),
        panel_text_state=np.full((b, 1), -1, np.int8),
        panel_box=np.zeros((b, 1, 4), np.int32),
        panel_index=np.full((b, 1), -1, np.int16),
        panel_lines=np.full((b, 1), "", dtype=object),
        page_json_path=paths,
        page_image_path=np.array([f"i/{i}.jpg" for i in range(start, start + b)], dtype=object),
        page_size=np.zeros((b, 2), np.int32),
        page_panels_total=np.zeros(b, np.int32),
        page_input=np.arange(start, start + b, dtype=np.int64),
    )


def write_store(
    path: Path, n: int, dim: int, clusters: int, batch: int, chunk_pages: int, seed: int
) -> float:
    """Write the synthetic store; returns the seconds spent in the writer's calls."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = 0.5 / np.sqrt(dim)  # noise norm ~0.5 around unit centres
    spent = 0.0
    t = time.perf_counter()
    writer = StoreWriter.open(
        path,
        dim=dim,
        max_panels=1,
        dtype="float16",
        chunk_pages=chunk_pages,
        fingerprint={"checkpoint_sha256": f"bench-search-{seed}"},
        model_config={},
        checkpoint="bench_search",
        resume=False,
    )
    spent += time.perf_counter() - t
    for start in range(0, n, batch):
        b = min(batch, n - start)
        x = centres[rng.integers(0, clusters, b)]
        x = (x + noise * rng.standard_normal((b, dim), dtype=np.float32)).astype(np.float16)
        rows = synthetic_rows(start, x)
        t = time.perf_counter()
        writer.add(rows, [], inputs_read=start + b)
        spent += time.perf_counter() - t
    t = time.perf_counter()
    writer.finish()
    return spent + time.perf_counter() - t


def timed_search(index: VectorIndex, queries: np.ndarray, k: int) -> dict[str, Any]:
    """Per-query latencies (one at a time, after one warm-up) and one batched call."""
    index.search(queries[:1], k)
    lat = []
    single = []
    for q in queries:
        t = time.perf_counter()
        single.append(index.search(q[None], k)[0])
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    batched = index.search(queries, k)
    batch_s = time.perf_counter() - t
    ms = np.array(lat) * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "batch_qps": len(queries) / batch_s,
        "batch_s": batch_s,
        "rows": [[h.row for h in hits] for hits in batched],
        "single_rows": [[h.row for h in hits] for hits in single],
    }


def recall(found: list[list[int]], truth: list[list[int]], k: int) -> float:
    """Mean share of the exact top k that the index found in its top k."""
    return statistics.mean(
        len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)
    )


def set_nprobe(index: VectorIndex, nprobe: int) -> None:
    """Set nprobe on an IVF index (VectorIndex tunes only HNSW's efSearch)."""
    import faiss

    with contextlib.suppress(RuntimeError):  # not an IVF index
        faiss.extract_index_ivf(index.faiss_index).nprobe = nprobe


def embed_rate(pages: int, work: Path) -> tuple[float, int]:
    """(pages/s, pages embedded) of `training.embed` with an untrained default model."""
    import torch

    from training.checkpoint import save_checkpoint
    from training.config import ModelConfig
    from training.embed import main as embed_main
    from training.model import build_model
    from training.synthetic import make_corpus

    corpus = make_corpus(work / "corpus", pages=pages, seed=0)
    config = ModelConfig()
    torch.manual_seed(0)
    model = build_model(config)
    ckpt = save_checkpoint(
        work / "untrained.pt", {"model": model.state_dict(), "config": config.to_dict()}
    )
    out = work / "emb"
    argv = [
        "--checkpoint",
        str(ckpt),
        "--json_dir",
        str(corpus.pages_dir),
        "--image_root",
        str(corpus.image_root),
        "--output_dir",
        str(out),
    ]
    t = time.perf_counter()
    code = embed_main(argv)
    spent = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"training.embed exited {code}")
    done = Store(out).n_pages
    return done / spent, done


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--vectors", type=int, default=1_000_000, help="pages in the store")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--query_noise", type=float, default=0.1, help="query noise norm")
    ap.add_argument("--batch", type=int, default=1024, help="rows per StoreWriter.add")
    ap.add_argument("--chunk_pages", type=int, default=4096)
    ap.add_argument("--factory", default="HNSW32,Flat", help="FAISS index factory")
    ap.add_argument("--nprobe", type=int, default=32, help="IVF factories only")
    ap.add_argument("--embed_pages", type=int, default=0, help="also time training.embed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="work folder (kept); default temp")
    args = ap.parse_args(argv)

    work = args.out or Path(tempfile.mkdtemp(prefix="bench_search_"))
    work.mkdir(parents=True, exist_ok=True)
    store_dir = work / "emb"
    index_dir = work / "index"
    for old in (store_dir, index_dir):
        shutil.rmtree(old, ignore_errors=True)
    n, k = args.vectors, args.k
    try:
        write_s = write_store(
            store_dir, n, args.dim, args.clusters, args.batch, args.chunk_pages, args.seed
        )
        rss_write = peak_rss_mib()
        disk = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file())
        store = Store(store_dir)

        t = time.perf_counter()
        exact = VectorIndex.load(store, "page", exact_below=n, index_dir=index_dir)
        exact_load_s = time.perf_counter() - t
        assert exact.exact and exact.vectors is not None
        rng = np.random.default_rng(args.seed + 1)
        picked = rng.choice(n, size=min(args.queries, n), replace=False)
        noise = rng.standard_normal((len(picked), args.dim)).astype(np.float32)
        queries = exact.vectors[picked] + args.query_noise / np.sqrt(args.dim) * noise
        ex = timed_search(exact, queries, k)
        rss_exact = peak_rss_mib()
        self_hit = statistics.mean(
            float(int(r) in rows) for r, rows in zip(picked, ex["rows"], strict=True)
        )
        del exact

        t = time.perf_counter()
        built = VectorIndex.load(
            store, "page", exact_below=0, factory=args.factory, index_dir=index_dir
        )
        build_s = time.perf_counter() - t
        assert not built.exact
        rss_build = peak_rss_mib()
        del built
        t = time.perf_counter()
        faiss_index = VectorIndex.load(
            store, "page", exact_below=0, factory=args.factory, index_dir=index_dir
        )
        reload_s = time.perf_counter() - t
        set_nprobe(faiss_index, args.nprobe)
        fx = timed_search(faiss_index, queries, k)
        rss_faiss = peak_rss_mib()
        index_bytes = sum(f.stat().st_size for f in index_dir.iterdir() if f.is_file())
        rec = recall(fx["rows"], ex["rows"], k)
        rec_single = recall(fx["single_rows"], ex["rows"], k)

        import faiss

        threads = faiss.omp_get_max_threads()

        print(
            f"store: {n} pages x {args.dim} float16 ({args.clusters} clusters), max_panels 1, "
            f"chunk_pages {args.chunk_pages}, batch {args.batch}; {len(queries)} queries, k={k}; "
            f"{os.cpu_count()} CPUs, FAISS threads {threads}"
        )
        print(
            f"store write        : {n / write_s:12.0f} rows/s   ({write_s:.1f} s, "
            f"{disk / 2**20:.1f} MiB on disk)"
        )
        print(f"exact load         : {exact_load_s:12.2f} s")
        print(f"faiss build ({args.factory}): {build_s:.2f} s (first load: build + save)")
        print(f"faiss reload       : {reload_s:12.2f} s   ({index_bytes / 2**20:.1f} MiB on disk)")
        print()
        print(f"{'search':<18} {'median ms':>10} {'p95 ms':>10} {'batch q/s':>12} {'recall@k':>10}")
        print(f"{'exact (numpy)':<18} {ex['median_ms']:10.2f} {ex['p95_ms']:10.2f} "
              f"{ex['batch_qps']:12.1f} {1.0:10.3f}")  # fmt: skip
        label = args.factory + (f" np{args.nprobe}" if "IVF" in args.factory else "")
        print(f"{label:<18} {fx['median_ms']:10.2f} {fx['p95_ms']:10.2f} "
              f"{fx['batch_qps']:12.1f} {rec:10.3f}")  # fmt: skip
        print(f"speed-up (median, single query): {ex['median_ms'] / fx['median_ms']:.1f}x")
        print(f"recall@{k} one query at a time: {rec_single:.3f}; exact finds the source row: "
              f"{self_hit:.3f}")  # fmt: skip
        print(
            f"peak RSS (MiB)     : after write {rss_write:.0f}, exact {rss_exact:.0f}, "
            f"faiss build {rss_build:.0f}, faiss search {rss_faiss:.0f}"
        )
        sys.stdout.flush()
        if not args.embed_pages:
            print("embedding throughput: not measured (give --embed_pages N)")
        else:
            try:  # the search figures above are printed already
                rate, done = embed_rate(args.embed_pages, work / "embed")
                print(
                    f"embedding throughput (training.embed, untrained ModelConfig(), CPU): "
                    f"{rate:.2f} pages/s over {done} pages"
                )
            except (Exception, SystemExit) as exc:
                print(f"embedding throughput: failed: {type(exc).__name__}: {exc}")
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
