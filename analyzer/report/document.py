"""The report as one HTML document: totals, tiers, subsets, charts, sections, galleries."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

from dataspec import ImageResolver

from ..score import SUBSETS
from . import pairing, train_section
from .data import (
    SUBSET_MEANING,
    Row,
    by_subset,
    infer_threshold,
    matched,
    number,
    panel_counts,
    pick,
    score_of,
)
from .markup import CSS, share, table
from .pages import Assets, Gallery, path_html
from .svg import histogram

__all__ = ["build_report"]

DEFAULT_COVERAGE = 0.5
"""The analyzer's default `--min_text_coverage`."""


def _threshold(rows: Sequence[Row], given: float | None) -> tuple[float, str, str]:
    """The subsets' text coverage threshold, where it came from, and a warning (HTML) when
    a given one disagrees with the CSV's quality scores."""
    inferred = infer_threshold(rows)
    if given is None:
        if inferred is None:
            return DEFAULT_COVERAGE, "the analyzer's default; the CSV's scores do not tell", ""
        return inferred.pick(), "the one the CSV's quality scores were computed with", ""
    if inferred is None or given in inferred:
        return given, "given", ""
    return (
        given,
        "given",
        (
            f"<p class='warn'>The CSV's quality scores were computed with a threshold in "
            f"({inferred.lo:.4g}, {inferred.hi:.4g}], not {given:g}: "
            "<code>perfect_with_text</code> here differs from the analyzer's list. Pass the "
            "analyzer's <code>--min_text_coverage</code>, or leave it out to use the CSV's.</p>"
        ),
    )


def _subset_caption(subset: str, threshold: float) -> Callable[[Row], str]:
    """Caption of a sample page: its counts, coverage, score; in `perfect`, why a page
    with little or no text is perfect all the same."""

    def caption(row: Row) -> str:
        score = score_of(row)
        counts = panel_counts(row)
        if counts is None:
            text = (
                f"ratio {row.get('panel_count_ratio', '')} · coverage "
                f"{row.get('text_coverage', '')} · score {row.get('quality_score', '')}"
            )
            with_text = None
        else:
            rcnn, vlm, with_text = counts
            text = (
                f"detector {rcnn} · VLM {vlm} panels · text on {with_text} of {vlm} "
                f"(coverage {round(score.coverage, 4):g}) · score {score.score:g}"
            )
        out = escape(text)
        if subset == "perfect" and score.coverage < threshold:
            if with_text == 0 or (with_text is None and score.coverage == 0):
                why = "textless page: counts match (perfect), no text (not perfect_with_text)"
            else:
                why = f"text under {threshold:g}: perfect counts, not perfect_with_text"
            out += f"<br><span class='flag'>{escape(why)}</span>"
        return out

    return caption


def _perfect_note(subsets: dict[str, list[Row]], threshold: float) -> str:
    """How many perfect pages lack text (perfect does not ask for any)."""
    with_text = {id(r) for r in subsets["perfect_with_text"]}
    short = [r for r in subsets["perfect"] if id(r) not in with_text]
    if not short:
        return ""
    textless = sum(score_of(r).coverage == 0 for r in short)
    return (
        f"<p class='note'>{len(short)} perfect page(s) have text on fewer than "
        f"{threshold:g} of their panels, {textless} of them none at all (a textless page): "
        "perfect, not perfect_with_text.</p>"
    )


def _histograms(matched_rows: Sequence[Row]) -> list[str]:
    values = {
        c: [number(r.get(c)) for r in matched_rows]
        for c in ("panel_count_ratio", "text_coverage", "quality_score")
    }
    return [
        "<h2>Distributions over matched pages</h2><div class='charts'>",
        histogram(
            "panel count ratio (detector / VLM)",
            values["panel_count_ratio"],
            0.0,
            2.0,
            20,
            x_label="detector panels / VLM panels",
        ),
        histogram(
            "text coverage",
            values["text_coverage"],
            0.0,
            1.0,
            10,
            x_label="share of VLM panels with text",
            x_ticks=[(v / 4, f"{v / 4:g}") for v in range(5)],
        ),
        histogram(
            "quality score",
            values["quality_score"],
            0.0,
            4.5,
            9,
            x_label="quality score (bars: 0, 0.5, … 4)",
            x_ticks=[(s + 0.25, f"{s:g}") for s in range(5)],
        ),
        "</div>",
    ]


def build_report(
    rows: Sequence[Row],
    skips: Sequence[Row] = (),
    *,
    pages: dict[str, Path] | None = None,
    image_root: str | None = None,
    min_coverage: float | None = None,
    samples: int = 6,
    least_confident_pages: int = 12,
    title: str = "analyzer report",
    assets: Assets | None = None,
    run: train_section.Run | None = None,
    evaluation: train_section.Evaluation | None = None,
    inputs: Sequence[tuple[str, str]] = (),
) -> str:
    """The report as one HTML string.

    `min_coverage` None: the threshold the CSV's scores were computed with (else 0.5).
    With `assets`, full-size renders are written there and thumbnails link to them (and
    to the page's DataSpec JSON); without, thumbnails link nowhere. `inputs`: (what, path)
    pairs listed under the title (as absolute paths).
    """
    resolver = ImageResolver(image_root) if image_root else None
    gallery = Gallery(pages or {}, resolver, assets)
    matched_rows = [r for r in rows if matched(r)]
    threshold, origin, warning = _threshold(rows, min_coverage)
    subsets = by_subset(matched_rows, threshold)
    tiers = Counter(r.get("match_tier") or "unmatched" for r in rows)
    reasons = Counter(s.get("reason", "?") for s in skips)
    repairs = Counter(c for r in matched_rows for c in (r.get("vlm_repairs") or "").split(";") if c)
    truncated = sum(r.get("vlm_truncated", "").lower() == "true" for r in matched_rows)
    found = sum(r.get("image_exists", "").lower() == "true" for r in rows)
    n, m = len(rows), len(matched_rows)

    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        *(
            f"<p class='inputs'>{escape(what)}: {path_html(os.path.abspath(path), 80)}</p>"
            for what, path in inputs
        ),
        "<p class='totals'>"
        f"pages <b>{n}</b> · matched to a VLM JSON <b>{m}</b> "
        f"({share(m, n)}) · images found <b>{found}</b> · "
        f"skipped at emission <b>{len(skips)}</b></p>",
        "<h2>Match tiers</h2>",
        table(["tier", "pages", "share"], [(t, c, share(c, n)) for t, c in sorted(tiers.items())]),
        f"<h2>Subsets <small>(text coverage threshold {threshold:g}: {escape(origin)})</small>"
        f"</h2>{warning}",
        table(
            ["subset", "pages", "share of matched", "what a page needs"],
            [
                (
                    s,
                    len(subsets[s]),
                    share(len(subsets[s]), m),
                    SUBSET_MEANING[s].format(t=threshold),
                )
                for s in SUBSETS
            ],
            text=(3,),
        ),
        _perfect_note(subsets, threshold),
    ]
    if repairs or truncated:
        out += [
            "<h2>VLM replies repaired <small>(matched pages; a truncated page is in no "
            "count-based subset)</small></h2>",
            table(
                ["repair", "pages", "share of matched"],
                [(k, c, share(c, m)) for k, c in sorted(repairs.items())]
                + [("truncated (cut short)", truncated, share(truncated, m))],
            ),
        ]
    out += _histograms(matched_rows)
    out += pairing.section(rows, matched_rows, gallery, least_confident_pages)
    out += train_section.section(run, evaluation)
    if skips:
        out += [
            "<h2>Skip reasons</h2>",
            table(
                ["reason", "pages", "share of skips"],
                [(k, c, share(c, len(skips))) for k, c in reasons.most_common()],
            ),
        ]
    out.append(
        "<h2>Sample pages per subset</h2><p class='note'>A page drawn in one gallery is "
        "not drawn again in a later one while that subset has other pages.</p>"
    )
    seen: set[str] = set()
    for subset in SUBSETS:
        if subsets[subset]:
            out.append(
                gallery.html(
                    subset,
                    pick(subsets[subset], samples, seen),
                    _subset_caption(subset, threshold),
                    total=len(subsets[subset]),
                )
            )
    if skips:
        out.append("<h2>Sample pages per skip reason</h2>")
        for reason, total in reasons.most_common():
            chosen = pick([s for s in skips if s.get("reason") == reason], samples, seen)
            out.append(
                gallery.html(
                    reason,
                    chosen,
                    lambda s: escape(
                        f"detector {s.get('rcnn_count', '')} · VLM {s.get('vlm_count', '')}"
                    ),
                    total=total,
                )
            )
    out.append("</body></html>")
    return "\n".join(out)
