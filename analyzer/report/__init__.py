"""One offline HTML page about an analyzer run: tiers, histograms, skip reasons, sample
pages, and (given) the training run and its evaluation.

    python -m analyzer.report ANALYSIS.csv [--skips SKIPS.csv] [--dataspec_list LIST]
        [--run RUN_DIR] [--eval EVAL.json] -o report.html

Subsets are recomputed from the CSV with the text coverage threshold the CSV's quality
scores were computed with (or `--min_text_coverage`). Each sample gallery draws pages not
drawn in an earlier one first. The "Pairing" section (CSVs with the `pairing_*` /
`unpaired_*` columns; an older run's CSV gets one line saying it has none) counts pages
per pairing method, charts the page-level pairing confidence of matched pages, totals the
unpaired detections and VLM panels, and draws the least confident emitted pages. The
"Training and evaluation" section draws `RUN_DIR/metrics.jsonl` per epoch and tabulates
the evaluation report; without them it says how to add them.

Everything is inline (CSS, SVG charts, JPEG thumbnails as data URIs): no network, no
JavaScript. Thumbnails of emitted pages are drawn by `dataspec.render` (boxes, reading
order, text) and link to a full-size render in `<report stem>_files/` and to the page's
DataSpec JSON; other pages show their image as it is and link to it. Links are relative
to the report's folder.

Modules: `data` (CSV cells, scores, subsets, picks), `svg` (charts), `pages` (thumbnails,
renders, galleries, paths), `pairing`, `train_section`, `document` (`build_report`),
`cli` (`main`).
"""

from __future__ import annotations

from .cli import index_pages, main
from .data import infer_threshold, least_confident, read_csv
from .document import build_report
from .pages import Assets, short_path
from .train_section import read_eval, read_run

__all__ = [
    "Assets",
    "build_report",
    "index_pages",
    "infer_threshold",
    "least_confident",
    "main",
    "read_csv",
    "read_eval",
    "read_run",
    "short_path",
]
