"""The analysis CSV as the report reads it: cells, scores, subsets, the sample picks."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from ..score import SUBSETS, PageScore, subsets_of

__all__ = [
    "SUBSET_MEANING",
    "Threshold",
    "by_subset",
    "confidence",
    "count",
    "infer_threshold",
    "least_confident",
    "matched",
    "number",
    "page_json",
    "panel_counts",
    "pick",
    "read_csv",
    "row_key",
    "score_of",
    "spread",
]

Row = dict[str, str]

SUBSET_MEANING = {
    "perfect": "detector and VLM panel counts equal (> 0), reply not cut short; text not required",
    "perfect_with_text": "perfect, and text on at least {t:g} of the VLM panels",
    "near_perfect": "not perfect; detector / VLM panel count ratio in [0.9, 1.1]",
    "high_quality": "quality score ≥ 4",
    "medium_quality": "quality score 3 or 3.5",
    "low_quality": "quality score < 3, or a VLM reply cut short",
}
"""What each subset of `analyzer.score.subsets_of` asks of a matched page ({t}: threshold)."""


def read_csv(path: str | Path) -> list[Row]:
    """Rows of a CSV as dicts (UTF-8, header first)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read ({exc.strerror})") from exc


def number(value: str | None) -> float:
    """A CSV cell as a float (empty, not a number: 0.0)."""
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def count(value: str | None) -> int:
    """A non-negative count from a CSV cell (empty or not a number: 0)."""
    try:
        n = float(value or 0)
    except ValueError:
        return 0
    return max(0, int(n)) if math.isfinite(n) else 0


def confidence(row: Row) -> float | None:
    """The row's `pairing_confidence`, or None when empty (unmatched page) or not a number."""
    try:
        value = float(row.get("pairing_confidence") or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def row_key(row: Row) -> str:
    """The page's image path as the CSV writes it (what galleries sort and dedupe on)."""
    return row.get("image_path") or row.get("resolved_image_path") or ""


def page_json(row: Row, pages: dict[str, Path]) -> Path | None:
    """The emitted DataSpec file of the row's page, if it was emitted (and listed)."""
    return pages.get(row.get("resolved_image_path") or row.get("image_path") or "")


def matched(row: Row) -> bool:
    """The page was matched to a VLM JSON."""
    return row.get("has_vlm_data", "").lower() == "true"


def panel_counts(row: Row) -> tuple[int, int, int] | None:
    """(detector panels, VLM panels, VLM panels with text), when the CSV has them."""
    if not all(row.get(c) for c in ("rcnn_panels", "vlm_panels", "vlm_panels_with_text")):
        return None
    return count(row["rcnn_panels"]), count(row["vlm_panels"]), count(row["vlm_panels_with_text"])


def score_of(row: Row) -> PageScore:
    """The page's score as the analyzer computed it.

    Coverage is exact (with-text / VLM panels) where the CSV has the counts; `perfect` is
    the CSV's flag, and also requires equal non-zero counts where the CSV has them.
    """
    truncated = row.get("vlm_truncated", "").lower() == "true"
    perfect = row.get("is_perfect_match", "").lower() == "true" and not truncated
    coverage = number(row.get("text_coverage"))
    counts = panel_counts(row)
    if counts is not None:
        rcnn, vlm, text = counts
        perfect = perfect and vlm > 0 and rcnn == vlm
        coverage = text / vlm if vlm else 0.0
    return PageScore(
        ratio=number(row.get("panel_count_ratio")),
        coverage=coverage,
        score=number(row.get("quality_score")),
        perfect=perfect,
        truncated=truncated,
    )


def by_subset(rows: Iterable[Row], threshold: float) -> dict[str, list[Row]]:
    """Matched rows per subset (a row may be in several), in CSV order."""
    out: dict[str, list[Row]] = {s: [] for s in SUBSETS}
    for row in rows:
        if matched(row):
            for subset in subsets_of(score_of(row), threshold):
                out[subset].append(row)
    return out


@dataclass(frozen=True)
class Threshold:
    """The text coverage thresholds consistent with a CSV's quality scores: (lo, hi]."""

    lo: float
    hi: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, (int, float)) and self.lo < value <= self.hi + _EPS

    def pick(self) -> float:
        """0.5 (the analyzer's default) when it fits, else the roundest value that does."""
        if 0.5 in self:
            return 0.5
        for step in (0.1, 0.05, 0.01):
            for k in range(round(1 / step) + 1):
                if (value := round(k * step, 2)) in self:
                    return value
        return self.hi


_EPS = 1e-9


def _coverage_points(row: Row) -> float | None:
    """The part of the row's quality score owed to text coverage (0, 0.5 or 1), or None."""
    counts = panel_counts(row)
    if counts is None or not row.get("quality_score"):
        return None
    rcnn, vlm, _ = counts
    ratio = rcnn / vlm if vlm else 0.0
    points = number(row["quality_score"])
    points -= 2.0 if 0.9 <= ratio <= 1.1 else 1.0 if 0.8 <= ratio <= 1.2 else 0.0
    points -= 1.0 if 1 <= vlm <= 15 else 0.5 if 16 <= vlm <= 20 else 0.0
    return points if points in (0.0, 0.5, 1.0) else None


def infer_threshold(rows: Iterable[Row]) -> Threshold | None:
    """The analyzer's `--min_text_coverage`, as far as the CSV's quality scores tell it.

    A score gives +1 for coverage ≥ t and +0.5 for coverage ≥ t − 0.2: each matched row
    bounds t. None without such rows, or when no threshold fits them all.
    """
    lo, hi, seen = -1.0, 1.0, False
    for row in rows:
        counts = panel_counts(row)
        if not matched(row) or counts is None or (points := _coverage_points(row)) is None:
            continue
        _, vlm, text = counts
        cov = text / vlm if vlm else 0.0
        seen = True
        if points == 1.0:
            hi = min(hi, cov)
        elif points == 0.5:
            lo, hi = max(lo, cov), min(hi, cov + 0.2)
        else:
            lo = max(lo, cov + 0.2)
    if not seen or lo >= hi:
        return None
    return Threshold(max(lo, -_EPS), hi)


def spread(rows: Sequence[Row], k: int) -> list[Row]:
    """`k` rows evenly spread over `rows` sorted by image path (deterministic)."""
    ordered = sorted(rows, key=row_key)
    if len(ordered) <= k:
        return ordered
    step = len(ordered) / k
    return [ordered[int(i * step)] for i in range(k)]


def pick(rows: Sequence[Row], k: int, seen: set[str]) -> list[Row]:
    """`k` rows spread over those not in `seen` first, topped up from `seen` ones.

    Sorted by image path; the picked pages are added to `seen`.
    """
    fresh = [r for r in rows if row_key(r) not in seen]
    chosen = spread(fresh, k)
    if len(chosen) < k:
        chosen += spread([r for r in rows if row_key(r) in seen], k - len(chosen))
    chosen.sort(key=row_key)
    seen.update(row_key(r) for r in chosen)
    return chosen


def least_confident(rows: Sequence[Row], pages: dict[str, Path], k: int) -> list[Row]:
    """The `k` emitted pages with the lowest `pairing_confidence` (ties: CSV order).

    Only pages with a confidence (matched pages) that were emitted (found in `pages`).
    """
    ranked = [
        (conf, i, row)
        for i, row in enumerate(rows)
        if (conf := confidence(row)) is not None and page_json(row, pages) is not None
    ]
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in ranked[: max(0, k)]]
