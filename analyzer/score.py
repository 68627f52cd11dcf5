"""The seed analyzer's quality score and the subset tiers built on it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SUBSETS", "PageScore", "quality_score", "score_page", "subsets_of"]

SUBSETS = (
    "perfect",
    "perfect_with_text",
    "near_perfect",
    "high_quality",
    "medium_quality",
    "low_quality",
)
"""Subset tiers of matched pages (a page may be in several)."""


def quality_score(ratio: float, coverage: float, vlm_panels: int, min_coverage: float) -> float:
    """The seed's score (0–4): count ratio, text coverage, and a plausible VLM panel count.

    ratio in [0.9, 1.1] +2, else in [0.8, 1.2] +1; coverage ≥ min_coverage +1, else
    ≥ min_coverage − 0.2 +0.5; 1–15 VLM panels +1, 16–20 +0.5.
    """
    score = 0.0
    if 0.9 <= ratio <= 1.1:
        score += 2.0
    elif 0.8 <= ratio <= 1.2:
        score += 1.0
    if coverage >= min_coverage:
        score += 1.0
    elif coverage >= min_coverage - 0.2:
        score += 0.5
    if 1 <= vlm_panels <= 15:
        score += 1.0
    elif 16 <= vlm_panels <= 20:
        score += 0.5
    return score


@dataclass(frozen=True, slots=True)
class PageScore:
    """Ratio, coverage, score and perfect flag of one matched page."""

    ratio: float
    coverage: float
    score: float
    perfect: bool
    truncated: bool = False
    """The VLM reply was cut short: its panel count is only a lower bound."""


def score_page(
    rcnn_panels: int,
    vlm_panels: int,
    with_text: int,
    min_coverage: float,
    *,
    truncated: bool = False,
) -> PageScore:
    """Score a matched page. Ratio and coverage are 0 when the VLM has no panels;
    perfect means equal, non-zero counts of a reply that was not cut short.
    """
    ratio = rcnn_panels / vlm_panels if vlm_panels else 0.0
    coverage = with_text / vlm_panels if vlm_panels else 0.0
    return PageScore(
        ratio=ratio,
        coverage=coverage,
        score=quality_score(ratio, coverage, vlm_panels, min_coverage),
        perfect=not truncated and vlm_panels > 0 and rcnn_panels == vlm_panels,
        truncated=truncated,
    )


def subsets_of(page: PageScore, min_coverage: float) -> tuple[str, ...]:
    """The subset tiers of a matched page, in `SUBSETS` order.

    A truncated reply's panels stop where the reply was cut, so its counts say nothing:
    such a page is in no count-based subset (`perfect`, `perfect_with_text`,
    `near_perfect`) and its quality tier is `low_quality` whatever its score.
    """
    if page.truncated:
        return ("low_quality",)
    out: list[str] = []
    if page.perfect:
        out.append("perfect")
        if page.coverage >= min_coverage:
            out.append("perfect_with_text")
    elif 0.9 <= page.ratio <= 1.1:
        out.append("near_perfect")
    if page.score >= 4:
        out.append("high_quality")
    elif page.score >= 3:  # the seed's "= 3" would leave a score of 3.5 in no subset
        out.append("medium_quality")
    else:
        out.append("low_quality")
    return tuple(out)
