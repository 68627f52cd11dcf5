"""The offline HTML report of a real analyzer run over a generated corpus."""

from __future__ import annotations

import base64
import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from analyzer_testlib import base_args
from click.testing import CliRunner
from conftest import Runner
from PIL import Image

import dataspec
from analyzer.report import main as report_main
from dataspec.sample import SampleCorpus


class _Collector(HTMLParser):
    """Tags, image sources and every URL-bearing attribute of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if tag == "img" and name == "src" and value:
                self.images.append(value)
            elif name in ("href", "src") and value:
                self.urls.append(value)


def _local_files(urls: list[str], base: Path) -> None:
    """Offline: every link is a relative path (no scheme, no host) to an existing file."""
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
        assert (base / unquote(parts.path)).is_file(), url


def test_report_of_a_real_run(corpus: SampleCorpus, tmp_path: Path, run_cli: Runner) -> None:
    out = tmp_path / "out"
    args = [
        *base_args(corpus, out),
        "--require_image_exists",
        "--emit_dataspec_everything",
        "--dataspec_out_dir", str(out / "ds"),
        "--dataspec_min_det_score", "0.5",
        "--dataspec_list_out", str(out / "list.txt"),
        "--dataspec_debug_skips_out", str(out / "skips.csv"),
    ]  # fmt: skip
    assert run_cli(args).exit_code == 0
    html_path = tmp_path / "report.html"
    result = CliRunner().invoke(
        report_main,
        [str(out / "analysis.csv"), "--skips", str(out / "skips.csv"),
         "--dataspec_list", str(out / "list.txt"), "-o", str(html_path), "--samples", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = html_path.read_text("utf-8")
    parsed = _Collector()
    parsed.feed(text)
    # ratio, coverage and score histograms; match tiers, subsets, skip reasons; and, when
    # the run's CSV has the pairing columns, the pairing histogram, methods and unpaired
    with open(out / "analysis.csv", encoding="utf-8") as fh:
        pairing = "pairing_method" in next(csv.reader(fh))
    assert parsed.tags.count("svg") == 3 + pairing
    assert parsed.tags.count("table") == 3 + 2 * pairing
    assert ("No pairing data" in text) is not pairing
    assert parsed.images and all(src.startswith("data:image/jpeg;base64,") for src in parsed.images)
    _local_files(parsed.urls, tmp_path)  # offline: nothing fetched
    for needle in (
        "Match tiers",
        "perfect_with_text",
        "zero_pairs",
        "Sample pages per skip reason",
    ):
        assert needle in text


# --- the Pairing section --------------------------------------------------------------

OLD_COLUMNS = (
    "image_id", "image_path", "resolved_image_path", "image_exists", "vlm_json_path",
    "vlm_key", "has_vlm_data", "rcnn_panels", "vlm_panels", "panel_count_ratio",
    "text_coverage", "quality_score", "is_perfect_match", "match_tier", "vlm_repairs",
    "vlm_truncated",
)  # fmt: skip
PAIRING = ("pairing_method", "pairing_confidence", "unpaired_detections", "unpaired_vlm_panels")

# name, emitted?, matched?, method, confidence, unpaired detections, unpaired VLM panels
PAGES = [
    ("a", True, True, "overlap", "0.95", "0", "0"),
    ("b", True, True, "order", "0.4", "1", "0"),
    ("c", True, True, "order", "0.40", "0", "2"),  # ties with b: b is first in the CSV
    ("d", False, True, "overlap", "0.1", "3", "1"),  # least confident, but not emitted
    ("e", True, False, "none", "", "2", "0"),  # unmatched: no confidence
    ("f", True, True, "overlap", "0.2", "1", "1"),
    ("g", True, True, "order", "0.7", "0", "0"),
]  # fmt: skip


def _pairing_run(tmp_path: Path, *, with_pairing: bool) -> tuple[Path, Path]:
    """(analysis CSV, list of emitted DataSpec files) over real JPEGs of PAGES."""
    images, ds = tmp_path / "images", tmp_path / "ds"
    images.mkdir()
    columns = OLD_COLUMNS + (PAIRING if with_pairing else ())
    rows, listed = [], []
    for n, (name, emitted, matched, method, conf, det, vlm) in enumerate(PAGES):
        image = images / f"{name}.jpg"
        Image.new("RGB", (300, 450), (250, 250, 245)).save(image)
        unknown = name == "f"  # one page whose second panel got no VLM text
        page = dataspec.Page(
            page_image_path=str(image),
            panels=[
                dataspec.Panel(
                    panel_coords=(10, 10, 280, 200),
                    text=dataspec.PanelText(dialogue=[f"page {name}"]),
                ),
                dataspec.Panel(
                    panel_coords=(10, 230, 280, 200), text_known=False if unknown else None
                ),
            ],
            reading_order=[0, 1],
            reading_order_source="vlm" if method == "overlap" else "layout",
            page_size=dataspec.PageSize(width=300, height=450),
            unpaired_text=[
                dataspec.UnpairedText(vlm_panel=2, text=dataspec.PanelText(sfx=["BANG"]))
            ]
            if unknown
            else None,
        )
        if emitted:
            listed.append(str(dataspec.dump(page, ds / f"{name}.json")))
        row = dict.fromkeys(columns, "")
        row.update(
            image_id=str(n), image_path=str(image), resolved_image_path=str(image),
            image_exists="True", has_vlm_data=str(matched), rcnn_panels="2",
            vlm_panels="2" if matched else "0", panel_count_ratio="1.0" if matched else "0",
            text_coverage="1.0" if matched else "0", quality_score="4.0" if matched else "0",
            is_perfect_match=str(matched), match_tier="exact" if matched else "unmatched",
            vlm_truncated="False",
        )  # fmt: skip
        if with_pairing:
            row.update(zip(PAIRING, (method, conf, det, vlm), strict=True))
        rows.append(row)
    csv_path = tmp_path / "analysis.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    list_path = tmp_path / "list.txt"
    list_path.write_text("\n".join(listed) + "\n", "utf-8")
    return csv_path, list_path


def _report(tmp_path: Path, csv_path: Path, list_path: Path, *extra: str) -> str:
    html_path = tmp_path / "report.html"
    result = CliRunner().invoke(
        report_main,
        [str(csv_path), "--dataspec_list", str(list_path), "-o", str(html_path), *extra],
    )
    assert result.exit_code == 0, result.output
    return html_path.read_text("utf-8")


def _least_confident(text: str) -> list[tuple[str, str]]:
    """(name, image source) of each figure in the least-confident gallery, in order."""
    start = text.index("<div class='grid' id='least-confident'>")
    block = text[start : text.index("</div>", start)]
    return re.findall(
        r'<figure><a class="thumb" href="[^"]+"><img src="([^"]+)" alt="([^"]+)">', block
    )


def test_pairing_section(tmp_path: Path) -> None:
    csv_path, list_path = _pairing_run(tmp_path, with_pairing=True)
    text = _report(tmp_path, csv_path, list_path, "--least_confident", "3")
    parsed = _Collector()
    parsed.feed(text)
    _local_files(parsed.urls, tmp_path)  # still offline
    assert parsed.tags.count("svg") == 4  # ratio, coverage, score + pairing confidence
    pairing = text[text.index("<h2 id='pairing'>Pairing</h2>") :]
    # method counts over every page, known methods first
    assert re.search(
        r"<td>overlap</td><td>3</td><td>42\.9%</td></tr><tr><td>order</td><td>3</td>"
        r"<td>42\.9%</td></tr><tr><td>none</td><td>1</td><td>14\.3%</td>",
        pairing,
    )
    # the histogram: the 6 matched confidences in 10 bins (0.4 twice), the unmatched left out
    svg = re.search(r'<svg[^>]*aria-label="pairing confidence \(matched pages\)".*?</svg>', pairing)
    assert svg is not None
    bars = re.findall(r"<title>(\d+)</title>", svg.group(0))
    assert bars == ["0", "1", "1", "0", "2", "0", "0", "1", "0", "1"]
    y_ticks = re.findall(r'<text class="y-tick"[^>]*>([^<]+)</text>', svg.group(0))
    assert y_ticks == ["0", "1", "2"]  # the y axis: pages, up to the fullest bin
    assert "matched pages with a confidence <b>6</b>" in pairing
    # unpaired totals over matched pages: detections 1+3+1, VLM panels 2+1+1
    assert "<td>detections</td><td>5</td><td>3</td><td>50.0%</td>" in pairing
    assert "<td>VLM panels</td><td>4</td><td>3</td><td>50.0%</td>" in pairing
    # the 3 least confident emitted pages: d is not emitted, e has no confidence, b before c
    gallery = _least_confident(text)
    names = [Path(name).name for _, name in gallery]
    assert names == ["f.jpg", "b.jpg", "c.jpg"]
    assert "confidence 0.2 · overlap · unpaired: 1 det, 1 VLM" in pairing
    for src, _ in gallery:  # drawn by render_page (outlines on a plain page), not bare images
        assert src.startswith("data:image/jpeg;base64,")
        thumb = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
        assert len(thumb.getcolors(1 << 20) or []) > 20
    # f carries the unpaired-text strip: its drawing is taller than the others
    heights = [
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).height for src, _ in gallery
    ]
    assert heights[0] > heights[1] == heights[2]
    # deterministic: the same inputs give the same document
    assert _report(tmp_path, csv_path, list_path, "--least_confident", "3") == text
    # more than there are: every emitted page with a confidence, lowest first
    wide = _least_confident(_report(tmp_path, csv_path, list_path, "--least_confident", "50"))
    assert [Path(n).name for _, n in wide] == ["f.jpg", "b.jpg", "c.jpg", "g.jpg", "a.jpg"]


def test_pairing_section_of_an_old_csv(tmp_path: Path) -> None:
    csv_path, list_path = _pairing_run(tmp_path, with_pairing=False)
    text = _report(tmp_path, csv_path, list_path)
    parsed = _Collector()
    parsed.feed(text)
    assert parsed.tags.count("svg") == 3  # no pairing histogram
    pairing = text[text.index("<h2 id='pairing'>Pairing</h2>") :]
    note = pairing[: pairing.index("<h2", 1)]
    assert "No pairing data" in note and note.count("<p") == 1
    assert "least-confident" not in text
    assert "Sample pages per subset" in text  # the rest of the report is as before


def test_pairing_section_without_emitted_pages(tmp_path: Path) -> None:
    """Pairing columns but no --dataspec_list: counts and chart, and a note for the gallery."""
    from analyzer.report import build_report, read_csv

    csv_path, _ = _pairing_run(tmp_path, with_pairing=True)
    text = build_report(read_csv(csv_path))
    assert "pairing confidence (matched pages)" in text
    assert "least-confident" not in text and "No emitted page with a pairing confidence" in text
