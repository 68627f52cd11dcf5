"""One offline HTML page about an analyzer run: tiers, histograms, skip reasons, sample pages.

    python -m analyzer.report ANALYSIS.csv [--skips SKIPS.csv] [--dataspec_list LIST] -o report.html

The "Pairing" section (CSVs with the `pairing_*` / `unpaired_*` columns; an older run's
CSV gets one line saying it has none) counts pages per pairing method, charts the
page-level pairing confidence of matched pages, totals the unpaired detections and VLM
panels, and draws the least confident emitted pages (lowest confidence first, ties in
CSV order).

Everything is inline (CSS, SVG charts, JPEG thumbnails as data URIs): no network, no
JavaScript. Thumbnails of emitted pages are drawn by `dataspec.render` (boxes, reading
order, text); other pages show their image as it is.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click
from PIL import Image

from dataspec import DataSpecError, ImageResolver, discover, load
from dataspec.io import atomic_write_bytes
from dataspec.render import render_page

from .images import image_problem
from .score import SUBSETS, PageScore, subsets_of

__all__ = ["build_report", "least_confident", "main", "read_csv"]

THUMB_WIDTH = 220

PAIRING_COLUMNS = (
    "pairing_method",
    "pairing_confidence",
    "unpaired_detections",
    "unpaired_vlm_panels",
)
"""The analysis CSV's pairing columns (absent in runs before the alignment step)."""

PAIRING_METHODS = ("overlap", "order", "none")
"""`pairing_method` values: VLM boxes (optimal assignment), reading order + text, none."""


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts (UTF-8, header first)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read ({exc.strerror})") from exc


def _float(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def _confidence(row: dict[str, str]) -> float | None:
    """The row's `pairing_confidence`, or None when empty (unmatched page) or not a number."""
    try:
        value = float(row.get("pairing_confidence") or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _count(value: str | None) -> int:
    """A non-negative count from a CSV cell (empty or not a number: 0)."""
    try:
        number = float(value or 0)
    except ValueError:
        return 0
    return max(0, int(number)) if math.isfinite(number) else 0


def _page_json(row: dict[str, str], pages: dict[str, Path]) -> Path | None:
    """The emitted DataSpec file of the row's page, if it was emitted (and listed)."""
    return pages.get(row.get("resolved_image_path") or row.get("image_path") or "")


def _matched(row: dict[str, str]) -> bool:
    return row.get("has_vlm_data", "").lower() == "true"


def _score(row: dict[str, str]) -> PageScore:
    return PageScore(
        ratio=_float(row.get("panel_count_ratio")),
        coverage=_float(row.get("text_coverage")),
        score=_float(row.get("quality_score")),
        perfect=row.get("is_perfect_match", "").lower() == "true",
        truncated=row.get("vlm_truncated", "").lower() == "true",
    )


def _histogram(title: str, values: Sequence[float], lo: float, hi: float, bins: int) -> str:
    """An inline SVG bar chart of `values` clipped to [lo, hi]."""
    counts = [0] * bins
    for v in values:
        if math.isfinite(v):
            i = int((min(max(v, lo), hi) - lo) / (hi - lo) * bins)
            counts[min(i, bins - 1)] += 1
    width, height, pad = 420, 160, 28
    top = max(counts) or 1
    bar = (width - 2 * pad) / bins
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{pad}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
    ]
    for i, c in enumerate(counts):
        h = (height - 30) * c / top
        x, y = pad + i * bar, height - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" fill="#3b6ea8">'
            f"<title>{c}</title></rect>"
        )
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/>')
    for frac in (0.0, 0.5, 1.0):
        x = pad + frac * (width - 2 * pad)
        label = f"{lo + frac * (hi - lo):g}" + (
            "+" if frac == 1.0 and hi < max(values, default=hi) else ""
        )
        parts.append(
            f'<text x="{x:.1f}" y="{height + 16}" font-size="11" '
            f'text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="{width - pad}" y="30" font-size="11" text-anchor="end">max {top}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _thumbnail(
    row: dict[str, str], pages: dict[str, Path], resolver: ImageResolver | None
) -> str | None:
    """A JPEG data URI: the emitted page drawn with its panels, else the bare image."""
    image_path = row.get("resolved_image_path") or row.get("image_path") or ""
    json_path = _page_json(row, pages)
    try:
        if json_path is not None:
            page = load(json_path)
            image = render_page(page, resolver=resolver, json_path=json_path, max_side=900)
        else:
            # not a file, a FIFO, not an image, cut short, a decompression bomb: no thumbnail
            if not image_path or image_problem(image_path) is not None:
                return None
            with Image.open(image_path) as im:
                im.draft("RGB", (THUMB_WIDTH * 2, THUMB_WIDTH * 3))
                image = im.convert("RGB")
    except (DataSpecError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 2))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _spread(rows: Sequence[dict[str, str]], k: int) -> list[dict[str, str]]:
    """`k` rows evenly spread over `rows` sorted by image path (deterministic)."""
    ordered = sorted(rows, key=lambda r: r.get("image_path", ""))
    if len(ordered) <= k:
        return ordered
    step = len(ordered) / k
    return [ordered[int(i * step)] for i in range(k)]


def _gallery(
    title: str,
    rows: Sequence[dict[str, str]],
    pages: dict[str, Path],
    resolver: ImageResolver | None,
    caption: str,
    *,
    element_id: str | None = None,
) -> str:
    cells = []
    for row in rows:
        uri = _thumbnail(row, pages, resolver)
        name = html.escape(Path((row.get("image_path") or "?").replace("\\", "/")).as_posix()[-60:])
        body = f'<img src="{uri}" alt="{name}">' if uri else '<div class="missing">no image</div>'
        detail = html.escape(caption.format_map(_Cells(row)))
        cells.append(f"<figure>{body}<figcaption>{name}<br>{detail}</figcaption></figure>")
    heading = f"<h3>{html.escape(title)} <small>({len(rows)} shown)</small></h3>"
    ident = f" id='{html.escape(element_id)}'" if element_id else ""
    return f"{heading}<div class='grid'{ident}>{''.join(cells)}</div>"


class _Cells(dict[str, str]):
    """A row for `str.format_map`: a column the CSV lacks (or leaves empty) reads as ""."""

    def __init__(self, row: dict[str, str]) -> None:
        super().__init__({k: v or "" for k, v in row.items() if isinstance(k, str)})

    def __missing__(self, key: str) -> str:
        return ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def least_confident(
    rows: Sequence[dict[str, str]], pages: dict[str, Path], k: int
) -> list[dict[str, str]]:
    """The `k` emitted pages with the lowest `pairing_confidence` (ties: CSV order).

    Only pages with a confidence (matched pages) that were emitted (found in `pages`).
    """
    ranked = [
        (conf, i, row)
        for i, row in enumerate(rows)
        if (conf := _confidence(row)) is not None and _page_json(row, pages) is not None
    ]
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in ranked[: max(0, k)]]


def _pairing_section(
    rows: Sequence[dict[str, str]],
    matched: Sequence[dict[str, str]],
    pages: dict[str, Path],
    resolver: ImageResolver | None,
    k: int,
) -> list[str]:
    """The "Pairing" section: methods, confidence histogram, unpaired totals, gallery."""
    out = ["<h2 id='pairing'>Pairing</h2>"]
    if not any("pairing_method" in row for row in rows):
        missing = ", ".join(PAIRING_COLUMNS)
        out.append(
            f"<p class='note'>No pairing data: this CSV has no {html.escape(missing)} "
            "columns (a run from before the alignment step).</p>"
        )
        return out
    share = lambda n, d: f"{100 * n / d:.1f}%" if d else "–"  # noqa: E731
    methods = Counter(row.get("pairing_method") or "(blank)" for row in rows)
    order = [m for m in PAIRING_METHODS if m in methods] + sorted(
        m for m in methods if m not in PAIRING_METHODS
    )
    confidences = [c for row in matched if (c := _confidence(row)) is not None]
    det = [_count(row.get("unpaired_detections")) for row in matched]
    vlm = [_count(row.get("unpaired_vlm_panels")) for row in matched]
    mean = f"{sum(confidences) / len(confidences):.3f}" if confidences else "–"
    out += [
        _table(
            ["pairing method", "pages", "share"],
            [(m, methods[m], share(methods[m], len(rows))) for m in order],
        ),
        f"<p class='totals'>matched pages with a confidence <b>{len(confidences)}</b> "
        f"· mean confidence <b>{mean}</b></p>",
        "<div class='charts'>",
        _histogram("pairing confidence (matched pages)", confidences, 0.0, 1.0, 10),
        "</div>",
        "<p class='totals'><b>Unpaired</b> <small>(over matched pages)</small></p>",
        _table(
            ["unpaired", "total", "pages with any", "share of matched"],
            [
                (name, sum(v), sum(n > 0 for n in v), share(sum(n > 0 for n in v), len(matched)))
                for name, v in (("detections", det), ("VLM panels", vlm))
            ],
        ),
    ]
    chosen = least_confident(rows, pages, k)
    caption = (
        "confidence {pairing_confidence} · {pairing_method} · unpaired: "
        "{unpaired_detections} det, {unpaired_vlm_panels} VLM"
    )
    if chosen:
        out.append(
            _gallery(
                "Least confident emitted pages",
                chosen,
                pages,
                resolver,
                caption,
                element_id="least-confident",
            )
        )
    else:
        out.append(
            "<p class='note'>No emitted page with a pairing confidence to draw "
            "(pass --dataspec_list to draw the least confident pages).</p>"
        )
    return out


def build_report(
    rows: Sequence[dict[str, str]],
    skips: Sequence[dict[str, str]] = (),
    *,
    pages: dict[str, Path] | None = None,
    image_root: str | None = None,
    min_coverage: float = 0.5,
    samples: int = 6,
    least_confident_pages: int = 12,
    title: str = "analyzer report",
) -> str:
    """The report as one HTML string."""
    pages = pages or {}
    resolver = ImageResolver(image_root) if image_root else None
    matched = [r for r in rows if _matched(r)]
    tiers = Counter(r.get("match_tier") or "unmatched" for r in rows)
    by_subset: dict[str, list[dict[str, str]]] = {s: [] for s in SUBSETS}
    for row in matched:
        for subset in subsets_of(_score(row), min_coverage):
            by_subset[subset].append(row)
    share = lambda n, d: f"{100 * n / d:.1f}%" if d else "–"  # noqa: E731
    reasons = Counter(s.get("reason", "?") for s in skips)
    repairs = Counter(c for r in matched for c in (r.get("vlm_repairs") or "").split(";") if c)
    truncated = sum(r.get("vlm_truncated", "").lower() == "true" for r in matched)
    found = sum(r.get("image_exists", "").lower() == "true" for r in rows)

    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='totals'>"
        f"pages <b>{len(rows)}</b> · matched to a VLM JSON <b>{len(matched)}</b> "
        f"({share(len(matched), len(rows))}) · images found <b>{found}</b> · "
        f"skipped at emission <b>{len(skips)}</b></p>",
        "<h2>Match tiers</h2>",
        _table(
            ["tier", "pages", "share"],
            [(t, n, share(n, len(rows))) for t, n in sorted(tiers.items())],
        ),
        f"<h2>Subsets <small>(text coverage threshold {min_coverage:g})</small></h2>",
        _table(
            ["subset", "pages", "share of matched"],
            [(s, len(by_subset[s]), share(len(by_subset[s]), len(matched))) for s in SUBSETS],
        ),
    ]
    if repairs or truncated:
        out += [
            "<h2>VLM replies repaired <small>(matched pages; a truncated page is in no "
            "count-based subset)</small></h2>",
            _table(
                ["repair", "pages", "share of matched"],
                [(k, n, share(n, len(matched))) for k, n in sorted(repairs.items())]
                + [("truncated (cut short)", truncated, share(truncated, len(matched)))],
            ),
        ]
    out += [
        "<h2>Distributions over matched pages</h2><div class='charts'>",
        _histogram(
            "panel count ratio (detector / VLM)",
            [_float(r.get("panel_count_ratio")) for r in matched],
            0.0,
            2.0,
            20,
        ),
        _histogram(
            "text coverage", [_float(r.get("text_coverage")) for r in matched], 0.0, 1.0, 10
        ),
        _histogram("quality score", [_float(r.get("quality_score")) for r in matched], 0.0, 4.5, 9),
        "</div>",
    ]
    out += _pairing_section(rows, matched, pages, resolver, least_confident_pages)
    if skips:
        out += [
            "<h2>Skip reasons</h2>",
            _table(
                ["reason", "pages", "share of skips"],
                [(k, n, share(n, len(skips))) for k, n in reasons.most_common()],
            ),
        ]
    out.append("<h2>Sample pages per subset</h2>")
    caption = "ratio {panel_count_ratio} · coverage {text_coverage} · score {quality_score}"
    for subset in SUBSETS:
        if by_subset[subset]:
            out.append(
                _gallery(subset, _spread(by_subset[subset], samples), pages, resolver, caption)
            )
    if skips:
        out.append("<h2>Sample pages per skip reason</h2>")
        for reason, _ in reasons.most_common():
            chosen = _spread([s for s in skips if s.get("reason") == reason], samples)
            out.append(
                _gallery(reason, chosen, pages, resolver, "detector {rcnn_count} · VLM {vlm_count}")
            )
    out.append("</body></html>")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
small{color:#666;font-weight:normal}.totals{font-size:15px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f4f7}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;width:220px;font-size:11px}figure img{width:220px;border:1px solid #bbb}
.note{color:#555;font-style:italic}
.missing{width:220px;height:120px;background:#eee;display:flex;align-items:center;justify-content:center}
"""


def index_pages(dataspec_list: str | None) -> dict[str, Path]:
    """`page_image_path` → DataSpec file, for the files of an emitted list or folder."""
    if not dataspec_list:
        return {}
    out: dict[str, Path] = {}
    for path in discover(dataspec_list):
        try:
            out[load(path).page_image_path] = path
        except DataSpecError as exc:
            click.echo(f"warning: {exc}", err=True)
    return out


@click.command()
@click.argument("analysis_csv", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--skips", type=click.Path(exists=True, dir_okay=False), help="--dataspec_debug_skips_out CSV."
)
@click.option(
    "--dataspec_list",
    "--dataspec-list",
    help="Emitted pages (list file or folder): drawn with their panels.",
)
@click.option("--image_root", "--image-root", help="Image root for relative page paths.")
@click.option(
    "--min_text_coverage", "--min-text-coverage", default=0.5, show_default=True, type=float
)
@click.option(
    "--samples", default=6, show_default=True, help="Thumbnails per tier and per skip reason."
)
@click.option(
    "--least_confident",
    "--least-confident",
    default=12,
    show_default=True,
    type=click.IntRange(min=0),
    help="Least confident emitted pages drawn in the Pairing section.",
)
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write."
)
def main(
    analysis_csv: str,
    skips: str | None,
    dataspec_list: str | None,
    image_root: str | None,
    min_text_coverage: float,
    samples: int,
    least_confident: int,
    out: str,
) -> None:
    """Write one offline HTML report of an analyzer run."""
    rows = read_csv(analysis_csv)
    skip_rows = read_csv(skips) if skips else []
    document = build_report(
        rows,
        skip_rows,
        pages=index_pages(dataspec_list),
        image_root=image_root,
        min_coverage=min_text_coverage,
        samples=samples,
        least_confident_pages=least_confident,
        title=f"analyzer report: {Path(analysis_csv).name}",
    )
    atomic_write_bytes(out, document.encode("utf-8"))
    click.echo(f"wrote {out} ({len(rows)} pages, {len(skip_rows)} skips)")


if __name__ == "__main__":
    main()
