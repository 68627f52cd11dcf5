"""Reading-order scoring against labels independent of the layout heuristic.

The analyzer often writes the layout heuristic's own order as a page's `reading_order`,
and the loader falls back to the heuristic when a page has none: scored against those,
the heuristic is right by construction and a model is graded on copying it. So a page's
order is scored only when its label comes from elsewhere:

- a truth file (`--truth`, `TruthFile`) that holds the page: source `truth_file`. Its
  true panels (boxes in reading order) give the order over the page's panels: each panel
  takes the position of the true panel it covers most (it covers one when it holds >= 50%
  of its area); panels covering none are left out of scoring; two covering the same true
  panel keep their layout (heuristic) order;
- else the page's `reading_order` with `reading_order_source` `vlm` or `truth`;
- else, with `trust_unsourced`, a `reading_order` without a source (`unsourced`).

Every other page is left out, by reason (`LEFT_OUT`). On the scored panels of a page the
model (its highest-scoring successor among the scored panels and "end"; its greedy
decoded order) and the heuristic (`dataspec.reading_order` with the run's direction) are
scored side by side, over all scored pages and over those where the heuristic's order
differs from the label ("where the heuristic is blind", metrics prefixed `blind_`).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import orjson
import torch

import dataspec
from dataspec.paths import is_windows_path, split_roots, windows_to_local

from .batches import Batch
from .data import PageDataset, PageError, PageMeta

Box = tuple[float, float, float, float]

INDEPENDENT = ("vlm", "truth")
"""`reading_order_source` values independent of the layout heuristic."""

LABEL_SOURCES = ("vlm", "truth", "truth_file", "unsourced")
"""Where a scored page's order label came from (`unsourced`: only with `trust_unsourced`)."""

LEFT_OUT: dict[str, tuple[str, str]] = {
    "no_panels": ("pages_no_panels", "without panels"),
    "single_panel": ("pages_single_panel", "single-panel, nothing to order"),
    "layout": ("pages_order_layout", "order from the layout heuristic"),
    "model": ("pages_order_model", "order from a model"),
    "unsourced": ("pages_order_unsourced", "reading_order of unknown source"),
    "no_reading_order": ("pages_no_reading_order", "no reading_order"),
    "truth_uncovered": (
        "pages_truth_uncovered",
        "in the truth file but fewer than two panels cover a true panel",
    ),
    "unreadable": ("pages_order_unreadable", "page file unreadable when its label was read"),
}
"""Why a loaded page's order was not scored: reason → (count key, words)."""

SOURCE_REASONS = ("layout", "model", "unsourced", "no_reading_order", "truth_uncovered")
"""The reasons that are about where the label came from (not about the page's panels)."""

COVER = 0.5
"""A panel covers a true panel when it holds at least this share of the true panel's area."""

_METRICS = ("next_correct", "order_exact", "kendall_tau")

TALLY_KEYS = (
    "pages",
    "panels",
    "pages_scored",
    "panels_scored",
    *(key for key, _ in LEFT_OUT.values()),
    *(f"pages_label_{s}" for s in LABEL_SOURCES),
    "pages_agree",
    "pages_blind",
    "panels_blind",
    *(f"{who}{m}" for who in ("", "heuristic_", "chance_") for m in _METRICS),
    *(f"{who}blind_{m}" for who in ("", "heuristic_", "chance_") for m in _METRICS),
    "pairs",
    "pairs_correct",
    "pages_skipped",
    "loss_batches",
    "loss_next",
    "loss_mpm",
    "loss_order",
    "loss_direction",
    "loss_total",
)
"""Every sum `evaluate_loader` keeps (the same keys on every rank)."""

LOSS_TERMS = ("next", "mpm", "order", "direction", "total")


# --------------------------------------------------------------------------- order basics


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


def successors(seq: Sequence[int]) -> dict[int, int | None]:
    """Each item's successor in `seq`; None for the last ("end")."""
    out: dict[int, int | None] = dict.fromkeys(seq)
    for a, b in itertools.pairwise(seq):
        out[a] = b
    return out


def ranks_over(items: Sequence[int], seq: Sequence[int]) -> list[int]:
    """The rank of each of `items` in `seq` (a permutation of them)."""
    where = {s: k for k, s in enumerate(seq)}
    return [where[i] for i in items]


# --------------------------------------------------------------------------- truth files


def _rel_key(path: str) -> str:
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    return str(PurePosixPath(*parts)) if parts else ""


def _real(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


@dataclass
class TruthFile:
    """True panel boxes in reading order, per page image, from a JSONL file.

    Lines of the sample generator (`image`: the image path relative to the image root,
    or absolute; `panels[].bbox` `[x, y, w, h]` in reading order) and of the held-out
    benchmark generators (`image_path` absolute; `panels[].box`; an `order` on every
    panel sorts them) are both read. A page matches by its resolved image path, else by
    its path relative to an image root."""

    path: Path
    by_path: dict[str, list[Box]] = field(default_factory=dict)
    by_rel: dict[str, list[Box]] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path, image_root: str | Sequence[str] | None = None) -> TruthFile:
        """Parse the file; `ValueError` naming the file and line for anything unusable."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"--truth {path}: cannot read: {exc.strerror or exc}") from None
        truth = cls(path, roots=[str(r) for r in split_roots(image_root)])
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            where = f"--truth {path}:{number}"
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc})") from None
            image = rec.get("image_path", rec.get("image")) if isinstance(rec, dict) else None
            panels = rec.get("panels") if isinstance(rec, dict) else None
            if not isinstance(image, str) or not image or not isinstance(panels, list):
                raise ValueError(
                    f"{where}: a truth line needs an image path (`image` or `image_path`) "
                    "and a `panels` list"
                )
            truth._add(image, _true_boxes(panels, where))
        if not truth.by_path and not truth.by_rel:
            raise ValueError(f"--truth {path}: no page in it")
        return truth

    def _add(self, image: str, boxes: list[Box]) -> None:
        if is_windows_path(image):
            image = windows_to_local(image, self.roots[0] if self.roots else None)
        if os.path.isabs(image) or is_windows_path(image):
            local = image
            self.by_path.setdefault(_real(local), boxes)
            for rel in self._relative(local):
                self.by_rel.setdefault(rel, boxes)
        else:
            rel = _rel_key(image)
            self.by_rel.setdefault(rel, boxes)
            for root in self.roots:
                self.by_path.setdefault(_real(os.path.join(root, rel)), boxes)

    def _relative(self, image: str) -> list[str]:
        out = []
        for root in self.roots:
            for a, r in (
                (os.path.abspath(image), os.path.abspath(root)),
                (_real(image), _real(root)),
            ):
                if a == r or a.startswith(r.rstrip(os.sep) + os.sep):
                    out.append(_rel_key(os.path.relpath(a, r)))
        return out

    def boxes_for(self, image_path: str) -> list[Box] | None:
        """The true boxes of the page whose (resolved) image is `image_path`, or None."""
        found = self.by_path.get(_real(image_path))
        if found is not None:
            return found
        for rel in self._relative(image_path):
            found = self.by_rel.get(rel)
            if found is not None:
                return found
        return None

    def __len__(self) -> int:
        return len(self.by_path) + len(self.by_rel)


def _true_boxes(panels: list[Any], where: str) -> list[Box]:
    boxes: list[Box] = []
    orders: list[Any] = []
    for k, panel in enumerate(panels):
        box = panel.get("box", panel.get("bbox")) if isinstance(panel, dict) else None
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in box)
            or box[2] <= 0
            or box[3] <= 0
        ):
            raise ValueError(f"{where}: panels[{k}] needs a box [x, y, w, h] (`box` or `bbox`)")
        boxes.append((float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        orders.append(panel.get("order"))
    if orders and all(isinstance(o, int) and not isinstance(o, bool) for o in orders):
        boxes = [b for _, b in sorted(zip(orders, boxes, strict=True), key=lambda t: t[0])]
    return boxes


def covered(panel: Sequence[float], truth: Sequence[Box]) -> int | None:
    """The true panel `panel` covers most (holds >= `COVER` of its area), or None."""
    x, y, w, h = (float(v) for v in panel)
    best, best_share = None, 0.0
    for t, (tx, ty, tw, th) in enumerate(truth):
        iw = min(x + w, tx + tw) - max(x, tx)
        ih = min(y + h, ty + th) - max(y, ty)
        if iw <= 0 or ih <= 0:
            continue
        share = iw * ih / (tw * th)
        if share >= COVER and share > best_share:
            best, best_share = t, share
    return best


def truth_order(
    boxes: Sequence[Sequence[float]], truth: Sequence[Box], layout: Sequence[int]
) -> list[int]:
    """Indices of `boxes` in true order: by the true panel each covers most, ties in
    `layout` order; boxes covering none are left out."""
    rank = {s: k for k, s in enumerate(layout)}
    pos = {s: covered(b, truth) for s, b in enumerate(boxes)}
    return sorted((s for s, t in pos.items() if t is not None), key=lambda s: (pos[s], rank[s]))


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class PageLabel:
    """A page's order label over its slots, or why it has none to score."""

    source: str | None
    """One of `LABEL_SOURCES` when scored."""
    reason: str | None
    """A key of `LEFT_OUT` when not scored."""
    slots: tuple[int, ...] = ()
    """The scored slots, in label order."""


class OrderLabels:
    """Which pages of `dataset` are scored for order, and against what.

    A page's provenance (has it a `reading_order`, from which source) is read from its
    file with the dataset's own loading (`PageDataset.load_page`), once per page."""

    def __init__(
        self,
        dataset: PageDataset,
        *,
        truth: TruthFile | None = None,
        trust_unsourced: bool = False,
    ) -> None:
        self.dataset, self.truth, self.trust_unsourced = dataset, truth, trust_unsourced
        self._provenance: dict[int, tuple[bool, str | None] | None] = {}

    def provenance(self, index: int) -> tuple[bool, str | None] | None:
        """(has a reading_order, its reading_order_source) of page `index`; None when the
        file cannot be read again."""
        if index not in self._provenance:
            try:
                page, _ = self.dataset.load_page(index)
                self._provenance[index] = (
                    page.reading_order is not None,
                    page.reading_order_source,
                )
            except PageError:
                self._provenance[index] = None
        return self._provenance[index]

    def label(self, meta: PageMeta, position: np.ndarray, layout: Sequence[int]) -> PageLabel:
        """The label of one loaded page: `position` its slots' reading positions as
        loaded, `layout` the heuristic's order of its slots."""
        n = len(meta.boxes)
        if n == 0:
            return PageLabel(None, "no_panels")
        if n == 1:
            return PageLabel(None, "single_panel")
        if self.truth is not None:
            true = self.truth.boxes_for(meta.image_path)
            if true is not None:
                slots = truth_order(meta.boxes, true, layout)
                if len(slots) < 2:
                    return PageLabel(None, "truth_uncovered")
                return PageLabel("truth_file", None, tuple(slots))
        prov = self.provenance(meta.index)
        if prov is None:
            return PageLabel(None, "unreadable")
        has_order, source = prov
        as_loaded = tuple(int(s) for s in np.argsort(position[:n], kind="stable"))
        if not has_order:
            return PageLabel(None, "no_reading_order")
        if source in INDEPENDENT:
            return PageLabel(source, None, as_loaded)
        if source is None:
            if self.trust_unsourced:
                return PageLabel("unsourced", None, as_loaded)
            return PageLabel(None, "unsourced")
        return PageLabel(None, source if source in LEFT_OUT else "unsourced")


# --------------------------------------------------------------------------- scoring


def _chosen(row: np.ndarray, slot: int, among: Sequence[int], end: int) -> int | None:
    """The highest-scoring successor of `slot` among the other slots of `among` and
    "end" (column `end`); None for end. Ties go to the first in slot order, end last
    (as `argmax` over the row would)."""
    candidates = [*sorted(c for c in among if c != slot), end]
    best = max(candidates, key=lambda c: (float(row[c]), -candidates.index(c)))
    return None if best == end else best


def score_batch(
    out: dict[str, torch.Tensor],
    batch: Batch,
    rtl: bool,
    tally: dict[str, float],
    labels: OrderLabels,
    per_page: list[dict[str, Any]] | None = None,
) -> None:
    """Add this batch's metric sums to `tally` (see `finalize`); with `per_page`, one
    record per loaded page (see `page_record`)."""
    nxt = out["next_logits"].float().cpu().numpy()
    start = out["start_logits"].float().cpu().numpy()
    position = batch.position.cpu().numpy()
    end = nxt.shape[1]
    for row, meta in enumerate(batch.pages):
        n = len(meta.boxes)
        tally["pages"] += 1
        tally["panels"] += n
        layout = dataspec.reading_order(meta.boxes, rtl=rtl) if n else []
        label = labels.label(meta, position[row], layout)
        if label.reason is not None:
            tally[LEFT_OUT[label.reason][0]] += 1
            if per_page is not None:
                per_page.append(page_record(meta, label))
            continue
        slots = list(label.slots)
        keep = set(slots)
        m = len(slots)
        model_seq = [s for s in decode_order(nxt[row], start[row], n) if s in keep]
        heur_seq = [s for s in layout if s in keep]
        truth_next = successors(slots)
        heur_next = successors(heur_seq)
        model_next = {s: _chosen(nxt[row, s], s, slots, end) for s in slots}
        items = sorted(slots)
        truth_rank = ranks_over(items, slots)
        sums = {
            "next_correct": float(sum(model_next[s] == truth_next[s] for s in slots)),
            "heuristic_next_correct": float(sum(heur_next[s] == truth_next[s] for s in slots)),
            "chance_next_correct": 1.0,  # m panels, each 1/m: m-1 others + end
            "order_exact": float(model_seq == slots),
            "heuristic_order_exact": float(heur_seq == slots),
            "chance_order_exact": 1.0 / math.factorial(m),
            "kendall_tau": kendall_tau(ranks_over(items, model_seq), truth_rank),
            "heuristic_kendall_tau": kendall_tau(ranks_over(items, heur_seq), truth_rank),
            "chance_kendall_tau": 0.0,
        }
        blind = heur_seq != slots
        tally["pages_scored"] += 1
        tally["panels_scored"] += m
        tally[f"pages_label_{label.source}"] += 1
        tally["pages_agree"] += float(model_seq == heur_seq)
        for key, value in sums.items():
            tally[key] += value
        if blind:
            tally["pages_blind"] += 1
            tally["panels_blind"] += m
            for key, value in sums.items():
                tally[_blind_key(key)] += value
        if per_page is not None:
            record = page_record(meta, label)
            panel = meta.panel_index
            record.update(
                panels_scored=m,
                model_next_correct=int(sums["next_correct"]),
                heuristic_next_correct=int(sums["heuristic_next_correct"]),
                label_order=[panel[s] for s in slots],
                model_order=[panel[s] for s in model_seq],
                heuristic_order=[panel[s] for s in heur_seq],
                model_agrees_with_heuristic=model_seq == heur_seq,
                heuristic_blind=blind,
            )
            per_page.append(record)
    if batch.pairs.shape[0]:
        pred = out["order_logits"].argmax(-1).cpu()
        tally["pairs"] += batch.pairs.shape[0]
        tally["pairs_correct"] += float((pred == batch.pairs[:, 2].cpu()).sum())


def _blind_key(key: str) -> str:
    for who in ("heuristic_", "chance_"):
        if key.startswith(who):
            return f"{who}blind_{key.removeprefix(who)}"
    return f"blind_{key}"


def page_record(meta: PageMeta, label: PageLabel) -> dict[str, Any]:
    """The per-page report entry of a page (the scoring fields are added when scored)."""
    return {
        "json_path": meta.json_path,
        "image": meta.image_path,
        "panels": len(meta.boxes),
        "label_source": label.source,
        "left_out": label.reason,
        "panels_scored": 0,
        "model_next_correct": None,
        "heuristic_next_correct": None,
        "label_order": None,
        "model_order": None,
        "heuristic_order": None,
        "model_agrees_with_heuristic": None,
        "heuristic_blind": None,
    }


def finalize(tally: dict[str, float]) -> dict[str, float]:
    """Metric sums → rates (NaN where nothing was scored) and counts."""

    def rate(num: str, den: str) -> float:
        return tally.get(num, 0.0) / tally[den] if tally.get(den) else float("nan")

    metrics: dict[str, float] = {}
    for prefix, pages, panels in (("", "pages_scored", "panels_scored"),
                                  ("blind_", "pages_blind", "panels_blind")):  # fmt: skip
        for who in ("", "chance_", "heuristic_"):
            metrics[f"{who}{prefix}next_panel_acc"] = rate(f"{who}{prefix}next_correct", panels)
            metrics[f"{who}{prefix}order_exact"] = rate(f"{who}{prefix}order_exact", pages)
            metrics[f"{who}{prefix}kendall_tau"] = rate(f"{who}{prefix}kendall_tau", pages)
    metrics["model_heuristic_agreement"] = rate("pages_agree", "pages_scored")
    metrics["page_order_acc"] = rate("pairs_correct", "pairs")
    for key in LOSS_TERMS:
        if tally.get("loss_batches"):
            metrics[f"loss_{key}"] = tally.get(f"loss_{key}", 0.0) / tally["loss_batches"]
    counts = (
        "pages",
        "pages_scored",
        "panels_scored",
        "pages_blind",
        "panels_blind",
        "pairs",
        "pages_skipped",
        *(key for key, _ in LEFT_OUT.values()),
        *(f"pages_label_{s}" for s in LABEL_SOURCES),
    )
    for key in counts:
        metrics[key] = int(tally.get(key, 0))
    metrics["pages_left_out"] = sum(int(tally.get(key, 0)) for key, _ in LEFT_OUT.values())
    return metrics


def left_out(metrics: dict[str, Any]) -> dict[str, int]:
    """Pages left out of order scoring, by reason (every reason, zeros included)."""
    return {reason: int(metrics.get(key, 0)) for reason, (key, _) in LEFT_OUT.items()}


def label_sources(metrics: dict[str, Any]) -> dict[str, int]:
    """Scored pages by the source of their order label."""
    return {s: int(metrics.get(f"pages_label_{s}", 0)) for s in LABEL_SOURCES}


def _pages(n: int) -> str:
    return f"{n} page{'s' if n != 1 else ''}"


def unscored(metrics: dict[str, Any], *, skipped: bool = False) -> str:
    """Why loaded pages were not scored, e.g. "8 single-panel pages, nothing to order;
    200 order from the layout heuristic" (and, with `skipped`, how many pages could not
    be used at all)."""
    parts = []
    for reason, n in left_out(metrics).items():
        if not n:
            continue
        if reason == "single_panel":
            parts.append(f"{n} single-panel page{'s' if n != 1 else ''}, nothing to order")
        elif reason == "no_panels":
            parts.append(f"{_pages(n)} without panels")
        elif reason == "unsourced":
            parts.append(f"{n} {LEFT_OUT[reason][1]} (--trust_unsourced_orders scores them)")
        else:
            parts.append(f"{n} {LEFT_OUT[reason][1]}")
    if skipped and metrics.get("pages_skipped"):
        parts.append(f"{metrics['pages_skipped']} skipped as unusable")
    return "; ".join(parts)


def no_independent_labels(metrics: dict[str, Any]) -> bool:
    """True when nothing was scored and some loaded page was left out only for where its
    order came from (the heuristic, a model, unknown, none)."""
    counts = left_out(metrics)
    return not metrics.get("pages_scored") and any(counts[r] for r in SOURCE_REASONS)


def nothing_scored(source: object, found: int, metrics: dict[str, Any], first: str = "") -> str:
    """The error when no page could be scored, naming the input and why."""
    why = unscored(metrics, skipped=True)
    if no_independent_labels(metrics):
        return (
            f"{source}: no page has an order independent of the layout heuristic "
            f"({_pages(found)}: {why}); give --truth FILE or pages with "
            "reading_order_source vlm/truth"
        )
    return f"{source}: no page could be scored ({found} found: {why})" + (
        f"; first: {first}" if first else ""
    )
