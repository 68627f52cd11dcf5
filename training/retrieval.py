r"""Retrieval quality of an embedding store, each figure beside a layout-only baseline.

    python -m training.evaluate --retrieval --store EMB --report retrieval.json \
        [--queries 500] [--seed 0] [--checkpoint FILE]

Embed held-out pages first (`training.embed` on pages the model never trained on); the
store is then the gallery and every query is made from one of its pages:

- page recall@1 under alteration: a page's image is altered (a crop of 0-4% off each edge,
  a rescale to 60-100%, brightness x0.8-1.2, re-encoded as JPEG at quality 40-75), written
  to a file and searched as `training.search --image` does (`both`: the look and the vision
  encoder, summed), by the look alone, and by the vision encoder alone; a hit is the
  original page ranked first. The baseline sees layout only: the page's panel boxes, moved
  by the same crop and scale (a perfect detector on the altered copy), as a 16 x 16 grid of
  panel cover, against every page's grid.
- text→panel recall@10: a contiguous run of 60% of a panel's lettered words (at least 3;
  panels with 3 words or more) searched as `training.search --text`; a hit is that panel
  among the first 10. Layout features cannot read a query, so a layout-only ranking finds
  the panel by chance: 10 / (panels with text), printed as the baseline. `whole_text` is
  the same with every word of the panel. Also counted (up to 200,000 text panels): spans
  that more than 10 panels hold word for word, which no ranking can place first 10.
Queries are drawn with `--seed` (the same seed, the same queries and alterations).
"""

from __future__ import annotations

import io
import math
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson
from PIL import Image, ImageEnhance

from dataspec.io import atomic_write_bytes

from .cli import CONTEXT, CLIError, doc_help, flag, invoke, json_text, path_type
from .data import TEXT_PRESENT
from .search import Searcher, store_checkpoint
from .store import StoreError

GRID = 16
"""Cells per side of the layout-only baseline's panel-cover grid."""
SPAN = 0.6
"""Share of a panel's words in a text query."""
MIN_WORDS = 3
SHARED_BELOW = 200_000
"""Text panels up to which the report counts spans shared word for word by many panels."""


def alter(image: Image.Image, rng: random.Random) -> tuple[Image.Image, tuple[float, ...]]:
    """An altered copy of a page image and (left, top, scale) of the change: crop 0-4% off
    each edge, rescale to 60-100%, brightness x0.8-1.2, JPEG quality 40-75."""
    w, h = image.size
    left, top, right, bottom = (rng.uniform(0.0, 0.04) for _ in range(4))
    box = (round(left * w), round(top * h), round(w - right * w), round(h - bottom * h))
    out = image.convert("RGB").crop(box)
    scale = rng.uniform(0.6, 1.0)
    size = (max(1, round(out.width * scale)), max(1, round(out.height * scale)))
    out = out.resize(size, Image.Resampling.BICUBIC)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=rng.randint(40, 75))
    buffer.seek(0)
    altered = Image.open(buffer)
    altered.load()
    return altered, (float(box[0]), float(box[1]), size[0] / max(1, box[2] - box[0]))


def layout_grid(boxes: np.ndarray, mask: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(n, GRID*GRID) unit vectors, centred: the share of each cell of the page that panels
    cover, from (n, P, 4) boxes (x, y, w, h), (n, P) mask and (n, 2) page sizes."""
    b = boxes.astype(np.float64) * mask[..., None]
    size = np.maximum(sizes.astype(np.float64), 1.0)
    edges = np.linspace(0.0, 1.0, GRID + 1)
    x0 = b[..., 0] / size[:, None, 0]
    y0 = b[..., 1] / size[:, None, 1]
    x1 = x0 + b[..., 2] / size[:, None, 0]
    y1 = y0 + b[..., 3] / size[:, None, 1]
    ox = np.clip(
        np.minimum(x1[..., None], edges[1:]) - np.maximum(x0[..., None], edges[:-1]), 0, None
    )
    oy = np.clip(
        np.minimum(y1[..., None], edges[1:]) - np.maximum(y0[..., None], edges[:-1]), 0, None
    )
    cover = np.einsum("npy,npx->nyx", oy, ox) * (GRID * GRID)
    flat = cover.reshape(len(b), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 1e-9).astype(np.float32)


def moved_boxes(
    boxes: np.ndarray, mask: np.ndarray, change: tuple[float, ...], size: tuple[int, int]
) -> np.ndarray:
    """(P, 4) a page's boxes as they lie on its altered copy (clamped to it)."""
    left, top, scale = change
    b = boxes.astype(np.float64).copy()
    x0 = np.clip((b[:, 0] - left) * scale, 0, size[0])
    y0 = np.clip((b[:, 1] - top) * scale, 0, size[1])
    x1 = np.clip((b[:, 0] + b[:, 2] - left) * scale, 0, size[0])
    y1 = np.clip((b[:, 1] + b[:, 3] - top) * scale, 0, size[1])
    out = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    return out * mask[:, None]


def _layout_rank1(store: Any, queries: np.ndarray) -> np.ndarray:
    """(q,) the best page row of each layout-grid query over the whole store."""
    best = np.full(len(queries), -np.inf)
    where = np.zeros(len(queries), np.int64)
    for start, boxes in store.chunks("panel_box"):
        stop = start + len(boxes)
        grid = layout_grid(
            boxes, store.rows("panel_mask", start, stop), store.rows("page_size", start, stop)
        )
        scores = queries @ grid.T
        top = scores.argmax(axis=1)
        value = scores[np.arange(len(queries)), top]
        better = value > best
        best[better], where[better] = value[better], start + top[better]
    return where


def page_recall(searcher: Searcher, n_queries: int, seed: int, work: Path) -> dict[str, Any]:
    """Page recall@1 of altered copies: both, look, vision and the layout-only baseline."""
    store = searcher.store
    rng = random.Random(seed)
    rows = sorted(rng.sample(range(store.n_pages), min(n_queries, store.n_pages)))
    looks, images = searcher.index("page_look"), searcher.index("page_image")
    hits = {"both": 0, "look": 0, "vision": 0}
    grids, unread = [], 0
    for q, row in enumerate(rows):
        meta = store.page_meta(row)
        try:
            with Image.open(meta["image_path"]) as original:
                altered, change = alter(original, rng)
        except OSError as exc:
            raise CLIError(f"cannot read the page image {meta['image_path']}: {exc}") from None
        path = work / f"query_{q}.jpg"
        altered.save(path, "JPEG", quality=95)
        vision, look = searcher.image_vectors(path)
        hits["both"] += searcher.pages_by_image(vision, look, 1)[0].row == row
        hits["look"] += looks.search(look, 1)[0][0].row == row
        hits["vision"] += images.search(vision, 1)[0][0].row == row
        boxes = np.array([p["box"] for p in meta["panels"]], np.int64).reshape(-1, 4)
        mask = np.ones(len(boxes), bool)
        unread += not len(boxes)
        moved = moved_boxes(boxes, mask, change, altered.size)
        grids.append(layout_grid(moved[None], mask[None], np.array([altered.size]))[0])
        path.unlink()
    layout = _layout_rank1(store, np.stack(grids)) if grids else np.zeros(0, np.int64)
    n = len(rows)
    out: dict[str, Any] = {f"page_recall@1_{k}": v / n for k, v in hits.items()}
    out["page_recall@1_layout_only"] = float(np.mean(layout == np.array(rows))) if n else 0.0
    out["page_queries"] = n
    out["page_queries_without_panels"] = unread
    return out


def text_queries(store: Any, n_queries: int, seed: int) -> list[tuple[int, int, str, str]]:
    """(row, slot, span query, whole text) of up to `n_queries` panels with 3+ words."""
    rows, slots = [], []
    for start, states in store.chunks("panel_text_state"):
        page, slot = np.nonzero(states == TEXT_PRESENT)
        rows.append(start + page)
        slots.append(slot)
    if not rows:
        return []
    found = np.stack([np.concatenate(rows), np.concatenate(slots)], axis=1).astype(np.int64)
    found = found[np.random.default_rng(seed + 1).permutation(len(found))]
    rng = random.Random(seed + 1)
    out: list[tuple[int, int, str, str]] = []
    for row, at in found.tolist():
        if len(out) == n_queries:
            break
        text = str(store.rows("panel_lines", row, row + 1)[0][at])
        words = text.split()
        if len(words) < MIN_WORDS:
            continue
        span = min(len(words), max(MIN_WORDS, math.ceil(SPAN * len(words))))
        first = rng.randrange(len(words) - span + 1)
        out.append((row, at, " ".join(words[first : first + span]), text))
    return out


def text_recall(searcher: Searcher, n_queries: int, seed: int, k: int = 10) -> dict[str, Any]:
    """Text→panel recall@k of spans and of whole texts, the layout-only (chance) one, and
    (stores of at most `SHARED_BELOW` text panels) the share of spans more than k panels
    hold word for word, which no ranking can place in the first k."""
    queries = text_queries(searcher.store, n_queries, seed)
    index = searcher.index("panel_text")
    hits = {"span": 0, "whole": 0}
    for row, slot, span, whole in queries:
        for name, text in (("span", span), ("whole", whole)):
            found = index.search(searcher.text_vector(text), k)[0]
            hits[name] += any((h.row, h.slot) == (row, slot) for h in found)
    n, panels = len(queries), len(index)
    shared: float | None = None
    if n and panels <= SHARED_BELOW:
        texts = [
            " ".join(str(t).lower().split())
            for _, lines in searcher.store.chunks("panel_lines")
            for t in lines.reshape(-1)
            if t
        ]
        shared = (
            sum(
                sum(" ".join(span.lower().split()) in t for t in texts) > k
                for _, _, span, _ in queries
            )
            / n
        )
    return {
        f"text_panel_recall@{k}": hits["span"] / n if n else float("nan"),
        f"text_panel_recall@{k}_whole_text": hits["whole"] / n if n else float("nan"),
        f"text_panel_recall@{k}_layout_only": min(1.0, k / panels) if panels else float("nan"),
        f"text_spans_in_more_than_{k}_panels": shared,
        "text_queries": n,
        "text_panels": panels,
    }


@click.command(
    name="training.evaluate --retrieval", help=doc_help(__doc__), context_settings=CONTEXT
)
@flag(
    "store",
    type=path_type(),
    required=True,
    metavar="EMB",
    help="An embedding store of held-out pages.",
)
@flag(
    "report",
    type=path_type(dir_okay=False),
    required=True,
    metavar="FILE",
    help="Where to write the JSON report.",
)
@flag(
    "queries", type=click.IntRange(min=1), default=500, help="Page queries and text queries, each."
)
@flag(
    "seed",
    type=int,
    default=0,
    help="Seeds which pages and panels are queried and how pages are altered.",
)
@store_checkpoint
@flag("device", default="cpu", help="Where the model runs for the queries.")
def command(**params: Any) -> int:
    return retrieval(**params)  # fmt: skip


def retrieval(**p: Any) -> int:
    """Measure, write the report, print the table; the exit status."""
    started = time.perf_counter()
    try:
        searcher = Searcher(p["store"], checkpoint=p["checkpoint"], device=p["device"])
        if not searcher.store.n_pages:
            raise CLIError(f"{searcher.store.path}: the store holds no pages")
        with tempfile.TemporaryDirectory(prefix="retrieval-") as work:
            metrics = page_recall(searcher, p["queries"], p["seed"], Path(work))
        metrics.update(text_recall(searcher, p["queries"], p["seed"]))
    except (StoreError, CLIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    metrics["pages"] = searcher.store.n_pages
    metrics["store"] = json_text(str(searcher.store.path))
    metrics["seed"] = p["seed"]
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_bytes(
        p["report"], orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    print("\n".join(table(metrics)))
    print(f"→ {p['report']}")
    return 0


def table(m: dict[str, Any]) -> list[str]:
    """The figures beside their layout-only baselines."""

    def cell(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{value:.3f}"

    return [
        f"gallery: {m['pages']} pages, {m['text_panels']} panels with text",
        f"page recall@1, altered copy ({m['page_queries']} queries): "
        f"image search {cell(m['page_recall@1_both'])} (look {cell(m['page_recall@1_look'])}, "
        f"vision encoder {cell(m['page_recall@1_vision'])}); "
        f"layout only {cell(m['page_recall@1_layout_only'])}",
        f"text→panel recall@10 ({m['text_queries']} queries, 60% of the words): "
        f"{cell(m['text_panel_recall@10'])}; whole text "
        f"{cell(m['text_panel_recall@10_whole_text'])}; "
        f"layout only (chance) {cell(m['text_panel_recall@10_layout_only'])}",
        *(
            [
                f"  {cell(shared)} of the spans are in more than 10 panels word for word "
                "(no ranking can put those first 10)"
            ]
            if (shared := m["text_spans_in_more_than_10_panels"]) is not None
            else []
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.evaluate --retrieval` with `argv` (without the flag)."""
    return invoke(command, argv, "python -m training.evaluate --retrieval")
