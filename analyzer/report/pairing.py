"""The "Pairing" section: methods, confidence histogram, unpaired totals, least confident."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from .data import Row, confidence, count, least_confident
from .markup import share, table
from .pages import Gallery
from .svg import histogram

__all__ = ["PAIRING_COLUMNS", "PAIRING_METHODS", "section"]

PAIRING_COLUMNS = (
    "pairing_method",
    "pairing_confidence",
    "unpaired_detections",
    "unpaired_vlm_panels",
)
"""The analysis CSV's pairing columns (absent in runs before the alignment step)."""

PAIRING_METHODS = ("overlap", "order", "none")
"""`pairing_method` values: VLM boxes (optimal assignment), reading order + text, none."""


def section(rows: Sequence[Row], matched: Sequence[Row], gallery: Gallery, k: int) -> list[str]:
    """The section's HTML (one note when the CSV has no pairing columns)."""
    out = ["<h2 id='pairing'>Pairing</h2>"]
    if not any("pairing_method" in row for row in rows):
        missing = ", ".join(PAIRING_COLUMNS)
        out.append(
            f"<p class='note'>No pairing data: this CSV has no {escape(missing)} "
            "columns (a run from before the alignment step).</p>"
        )
        return out
    methods = Counter(row.get("pairing_method") or "(blank)" for row in rows)
    order = [m for m in PAIRING_METHODS if m in methods] + sorted(
        m for m in methods if m not in PAIRING_METHODS
    )
    confidences = [c for row in matched if (c := confidence(row)) is not None]
    det = [count(row.get("unpaired_detections")) for row in matched]
    vlm = [count(row.get("unpaired_vlm_panels")) for row in matched]
    mean = f"{sum(confidences) / len(confidences):.3f}" if confidences else "–"
    out += [
        table(
            ["pairing method", "pages", "share"],
            [(m, methods[m], share(methods[m], len(rows))) for m in order],
        ),
        f"<p class='totals'>matched pages with a confidence <b>{len(confidences)}</b> "
        f"· mean confidence <b>{mean}</b></p>",
        "<div class='charts'>",
        histogram(
            "pairing confidence (matched pages)",
            confidences,
            0.0,
            1.0,
            10,
            x_label="page-level pairing confidence",
        ),
        "</div>",
        "<p class='totals'><b>Unpaired</b> <small>(over matched pages)</small></p>",
        table(
            ["unpaired", "total", "pages with any", "share of matched"],
            [
                (name, sum(v), sum(n > 0 for n in v), share(sum(n > 0 for n in v), len(matched)))
                for name, v in (("detections", det), ("VLM panels", vlm))
            ],
        ),
    ]
    chosen = least_confident(rows, gallery.pages, k)
    if chosen:
        out.append(
            gallery.html(
                "Least confident emitted pages",
                chosen,
                lambda r: escape(
                    f"confidence {r.get('pairing_confidence', '')} · "
                    f"{r.get('pairing_method', '')} · unpaired: "
                    f"{r.get('unpaired_detections', '')} det, "
                    f"{r.get('unpaired_vlm_panels', '')} VLM"
                ),
                element_id="least-confident",
            )
        )
    else:
        out.append(
            "<p class='note'>No emitted page with a pairing confidence to draw "
            "(pass --dataspec_list to draw the least confident pages).</p>"
        )
    return out
