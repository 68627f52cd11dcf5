"""The HTML report over real parts: a generated corpus, the real analyzer, a real (tiny)
training run and its evaluation; assertions on the parsed HTML."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from analyzer_testlib import base_args, copy_corpus
from click.testing import CliRunner
from PIL import Image

import dataspec
from analyzer.cli import analyze
from analyzer.report import main as report_main
from analyzer.report import short_path
from dataspec.sample import SampleCorpus

EPOCHS = 2
SAMPLES = 4
THRESHOLD = 0.6
TINY = ["--image_size", "64", "--dim", "32", "--num_heads", "2", "--vocab_size", "2048",
        "--max_tokens", "32", "--context_layers", "1", "--num_workers", "0"]  # fmt: skip
CHROMIUM = Path("/usr/bin/chromium")


# --- a parsed report -------------------------------------------------------------------


@dataclass
class Figure:
    gallery: str
    alt: str
    src: str
    href: str | None  # the <a> around the <img>
    links: dict[str, str]  # link text → href, in the caption
    caption: str  # the caption's text
    path_title: str | None
    path_text: str


class Report(HTMLParser):
    """Figures by gallery, path spans, SVGs (with their text elements), tables, links."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[Figure] = []
        self.paths: list[tuple[str | None, str]] = []  # (title, shown text)
        self.svgs: list[dict[str, Any]] = []
        self.tables: list[dict[str, Any]] = []
        self.hrefs: list[str] = []
        self.ids: dict[str, int] = {}  # element id → index of the svg / table opened after
        self._h3: list[str] | None = None
        self.gallery = ""
        self._stack: list[str] = []
        self._fig: dict[str, Any] | None = None
        self._path: list[str] | None = None
        self._path_title: str | None = None
        self._link: tuple[str, list[str]] | None = None
        self._svg_text: tuple[str, list[str]] | None = None
        self._cell: list[str] | None = None
        self._div_id: str | None = None

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        if tag == "wbr":
            return
        self._stack.append(tag)
        if tag == "h3":
            self._h3 = []
        if tag == "div" and attrs.get("id"):
            self._div_id = attrs["id"]
        if tag == "figure":
            self._fig = {"href": None, "links": {}, "caption": [], "path": None}
        if tag == "a" and "href" in attrs:
            self.hrefs.append(attrs["href"])
            if self._fig is not None and attrs.get("class") == "thumb":
                self._fig["href"] = attrs["href"]
            elif self._fig is not None:
                self._link = (attrs["href"], [])
        if tag == "img" and self._fig is not None:
            self._fig["alt"], self._fig["src"] = attrs.get("alt", ""), attrs.get("src", "")
        if tag == "span" and attrs.get("class") == "path":
            self._path, self._path_title = [], attrs.get("title")
        if tag == "svg":
            self.svgs.append({"label": attrs.get("aria-label"), "texts": [], "circles": [],
                              "bars": [], "div": self._div_id})  # fmt: skip
        if tag == "text" and self.svgs and "svg" in self._stack:
            self._svg_text = (attrs.get("class", ""), [])
        if tag == "circle" and self.svgs:
            self.svgs[-1]["circles"].append(attrs)
        if tag == "rect" and self.svgs:
            self.svgs[-1]["bars"].append(attrs)
        if tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "rows": []})
        if tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "wbr":
            return
        while self._stack and self._stack.pop() != tag:
            pass
        if tag == "h3" and self._h3 is not None:
            self.gallery = "".join(self._h3).split(" (")[0].strip()
            self._h3 = None
        if tag == "span" and self._path is not None:
            text = "".join(self._path)
            self.paths.append((self._path_title, text))
            if self._fig is not None:
                self._fig["path"] = (self._path_title, text)
            self._path = None
        if tag == "a" and self._link is not None and self._fig is not None:
            self._fig["links"]["".join(self._link[1])] = self._link[0]
            self._link = None
        if tag == "text" and self._svg_text is not None:
            self.svgs[-1]["texts"].append((self._svg_text[0], "".join(self._svg_text[1])))
            self._svg_text = None
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        if tag == "div":
            self._div_id = None
        if tag == "figure" and self._fig is not None:
            f = self._fig
            title, text = f["path"] or (None, "")
            self.figures.append(Figure(self.gallery, f.get("alt", ""), f.get("src", ""),
                                       f["href"], f["links"], "".join(f["caption"]),
                                       title, text))  # fmt: skip
            self._fig = None

    def handle_data(self, data: str) -> None:
        for buf in (self._h3, self._path, self._cell):
            if buf is not None:
                buf.append(data)
        if self._link is not None:
            self._link[1].append(data)
        if self._svg_text is not None:
            self._svg_text[1].append(data)
        if self._fig is not None and "figcaption" in self._stack:
            self._fig["caption"].append(data)


def parse(text: str) -> Report:
    report = Report()
    report.feed(text)
    return report


# --- the real run ----------------------------------------------------------------------


@dataclass
class Built:
    out: Path
    corpus: SampleCorpus
    report: Path
    text: str
    rows: list[dict[str, str]]
    eval: dict[str, Any]
    epochs: list[dict[str, Any]]


def _run(args: list[str], cwd: Path) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def _report(out: Path, *args: str, name: str = "report.html") -> tuple[Path, str]:
    html_path = out / name
    result = CliRunner().invoke(
        report_main,
        [str(out / "analysis.csv"), "--skips", str(out / "skips.csv"), "--dataspec_list",
         str(out / "list.txt"), "--image_root", str(out.parent / "images"),
         "--samples", str(SAMPLES), "-o", str(html_path), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return html_path, html_path.read_text("utf-8")


@pytest.fixture(scope="module")
def built(base_corpus: SampleCorpus, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The analyzer (threshold 0.6, everything emitted), 2 tiny epochs, an evaluation and
    the report with all of them."""
    out = tmp_path_factory.mktemp("report_run")
    args = [
        *base_args(base_corpus, out),
        "--require_image_exists", "--min_text_coverage", str(THRESHOLD),
        "--emit_dataspec_everything", "--dataspec_out_dir", str(out / "ds"),
        "--dataspec_min_det_score", "0.5", "--dataspec_list_out", str(out / "list.txt"),
        "--dataspec_debug_skips_out", str(out / "skips.csv"),
        "--emit_json_list", "perfect", "--emit_json_list", "perfect_with_text",
    ]  # fmt: skip
    result = CliRunner().invoke(analyze, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    images = str(base_corpus.images_dir)
    _run([sys.executable, "-m", "training", "--json_list_file", str(out / "list.txt"),
          "--image_root", images, "--output_dir", str(out / "run"), "--batch_size", "4",
          "--epochs", str(EPOCHS), "--no_progress", *TINY], out)  # fmt: skip
    _run([sys.executable, "-m", "training.evaluate", "--checkpoint", str(out / "run/best.pt"),
          "--json_list_file", str(out / "list.txt"), "--image_root", images,
          "--num_workers", "0", "--report", str(out / "eval.json")], out)  # fmt: skip
    report, text = _report(out, "--run", str(out / "run"), "--eval", str(out / "eval.json"))
    with open(out / "analysis.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    lines = (out / "run/metrics.jsonl").read_text("utf-8").splitlines()
    return Built(out, base_corpus, report, text, rows,
                 json.loads((out / "eval.json").read_text("utf-8")),
                 [json.loads(line) for line in lines])  # fmt: skip


def _row(built: Built, image_path: str) -> dict[str, str]:
    return next(r for r in built.rows if r["image_path"] == image_path)


# --- 1. training and evaluation --------------------------------------------------------


def test_training_section_draws_every_epoch(built: Built) -> None:
    parsed = parse(built.text)
    assert len(built.epochs) == EPOCHS
    curves = [s for s in parsed.svgs if s["div"] == "training-curves"]
    labels = [s["label"] for s in curves]
    assert labels[:4] == ["loss (total)", "loss: next", "loss: mpm", "loss: order"]
    assert "validation next_panel_acc" in labels and "validation kendall_tau" in labels
    total = curves[0]
    for svg in curves:  # labelled axes: x is the epoch, y the loss or the metric
        classes = [c for c, _ in svg["texts"]]
        assert ("x-label", "epoch") in svg["texts"] and "y-label" in classes
        assert [t for c, t in svg["texts"] if c == "x-tick"] == [
            str(e) for e in range(1, EPOCHS + 1)
        ]
    # one marker per epoch and series: train and validation loss
    assert len(total["circles"]) == 2 * EPOCHS
    assert ("y-label", "loss") in total["texts"]
    # the per-epoch table: one row per line of metrics.jsonl, the train loss as written
    epochs = next(t for t in parsed.tables if t["class"] == "epochs")
    body = epochs["rows"][1:]
    assert len(body) == EPOCHS
    for row, record in zip(body, built.epochs, strict=True):
        assert row[0].split()[0] == str(record["epoch"])
        assert row[1] == f"{record['train']['total']:.4f}"
        assert row[2] == f"{record['val']['loss_total']:.4f}"
    best = min(built.epochs, key=lambda r: r["val"]["loss_total"])["epoch"]
    assert [r[0] for r in body if "★" in r[0]] == [f"{best} ★"]
    # the held-out table: the evaluation's numbers against chance and the heuristic
    held = next(t for t in parsed.tables if t["class"] == "evaluation")
    by_metric = {r[0]: r for r in held["rows"][1:]}
    for metric in ("next_panel_acc", "order_exact", "kendall_tau", "page_order_acc"):
        value = built.eval[metric]
        assert by_metric[metric][1] == ("–" if value is None else f"{value:.4f}")
    assert by_metric["next_panel_acc"][2] == f"{built.eval['chance_next_panel_acc']:.4f}"
    # evaluated on the training list itself: said so, not passed off as held out
    assert "Evaluated on the pages the run trained on" in built.text
    assert f"epochs recorded <b>{EPOCHS}</b> of {EPOCHS} planned" in built.text
    assert f"pages scored {built.eval['pages_scored']}" in built.text.replace("<b>", "").replace(
        "</b>", ""
    )


def test_training_section_without_run_or_eval(built: Built, tmp_path: Path) -> None:
    """No options: the section says how to add them. A run folder without metrics.jsonl
    and a broken evaluation report: notes, and the report is still written."""
    _, text = _report(built.out, name="plain.html")
    section = text[
        text.index("<h2 id='training'>") : text.index("<h2", text.index("<h2 id='training'>") + 4)
    ]
    assert "<code>--run RUN_DIR</code>" in section and "<code>--eval EVAL.json</code>" in section
    assert "training-curves" not in text
    empty, broken = tmp_path / "empty_run", tmp_path / "eval.json"
    empty.mkdir()
    broken.write_text("{not json", "utf-8")
    _, text = _report(built.out, "--run", str(empty), "--eval", str(broken), name="broken.html")
    assert "No epoch recorded yet" in text and "Cannot use this report: not a JSON file" in text


# --- 2. thumbnails link to full-size renders and to the DataSpec JSON --------------------


def test_thumbnails_link_to_full_renders_and_json(built: Built) -> None:
    parsed = parse(built.text)
    base = built.report.parent
    files = base / "report_files"
    assert parsed.figures
    emitted = 0
    for fig in parsed.figures:
        if not fig.src:  # "no image": nothing to link
            continue
        assert fig.href is not None, fig.alt  # every thumbnail is inside an <a href>
        assert not re.match(r"^[a-z]+:|^/", fig.href), fig.href  # relative
        target = base / unquote(fig.href)
        assert target.is_file(), fig.href
        if "DataSpec JSON" in fig.links:
            emitted += 1
            assert target.parent == files and fig.links["full-size render"] == fig.href
            page = dataspec.load(base / unquote(fig.links["DataSpec JSON"]))
            with Image.open(target) as full:  # the whole page, not the thumbnail
                assert page.page_size is not None
                assert full.width == page.page_size.width and full.width > 220
        else:
            assert fig.links == {"image": fig.href}
    assert emitted
    assert not [p for p in files.iterdir() if p.name.startswith(".")]  # no temp files left
    # a rerun: the same document, renders untouched; a stale render of an older report goes
    stale = files / "old_page-0123456789.jpg"
    stale.write_bytes(b"stale")
    mtimes = {p.name: p.stat().st_mtime_ns for p in files.iterdir() if p != stale}
    _, again = _report(
        built.out, "--run", str(built.out / "run"), "--eval", str(built.out / "eval.json")
    )
    assert again == built.text
    assert not stale.exists()
    assert {p.name: p.stat().st_mtime_ns for p in files.iterdir()} == mtimes


# --- 3. histograms have a y axis --------------------------------------------------------


def test_histograms_have_a_y_axis(built: Built) -> None:
    parsed = parse(built.text)
    histograms = [s for s in parsed.svgs if s["bars"]]
    assert [s["label"] for s in histograms] == [
        "panel count ratio (detector / VLM)", "text coverage", "quality score",
        "pairing confidence (matched pages)",
    ]  # fmt: skip
    for svg in histograms:
        assert ("y-label", "pages") in svg["texts"]
        assert any(c == "x-label" for c, _ in svg["texts"])
        ticks = [int(t) for c, t in svg["texts"] if c == "y-tick"]
        assert ticks[0] == 0 and len(ticks) >= 2 and ticks == sorted(set(ticks))
        block = re.search(f'aria-label="{re.escape(svg["label"])}".*?</svg>', built.text)
        assert block is not None
        counts = [int(n) for n in re.findall(r"<title>(\d+)</title>", block.group(0))]
        assert len(counts) == len(svg["bars"]) and ticks[-1] >= max(
            counts
        )  # the axis spans the bars
        assert sum(counts) == sum(r["has_vlm_data"] == "True" for r in built.rows)


# --- 4. paths: shortened at a separator, full path on hover --------------------------------


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("E:\\CalibreComics_extracted\\Daredevil - Born Again (Part 3)\\JPG4CBZ\\0015.jpg",
         "E:\\…\\Daredevil - Born Again (Part 3)\\JPG4CBZ\\0015.jpg"),
        ("/data/comics/Saga/JPG4CBZ/0001.jpg", "/data/comics/Saga/JPG4CBZ/0001.jpg"),
        ("/srv/" + "deep/" * 20 + "page.jpg", "/…/" + "deep/" * 10 + "page.jpg"),
        ("x" * 90 + ".jpg", "x" * 90 + ".jpg"),  # one long name: never cut
        ("/a/" + "n" * 80 + ".jpg", "/a/" + "n" * 80 + ".jpg"),
    ],
)  # fmt: skip
def test_short_path(path: str, shown: str) -> None:
    assert short_path(path) == shown
    assert len(shown) <= 64 or "…" not in shown


def test_paths_have_their_full_path_on_hover(built: Built) -> None:
    parsed = parse(built.text)
    assert len(parsed.paths) > len(parsed.figures)  # the figures' and the inputs'
    for title, text in parsed.paths:
        assert title, text
        if "…" not in text:
            assert text == title
            continue
        head, tail = text.split("…")
        # the first segment, then whole trailing segments from a separator on
        assert title.startswith(head) and title.endswith(tail)
        assert tail[0] in "/\\" and head[-1] in "/\\"
        assert len(text) < len(title)
    for fig in parsed.figures:
        assert fig.path_title == fig.alt
        assert fig.path_title in {r["image_path"] for r in built.rows} | {
            s["image_path"] for s in _skips(built)
        }
    inputs = [t for t, _ in parsed.paths if t and t.endswith("analysis.csv")]
    assert inputs == [str(built.out / "analysis.csv")]


def _skips(built: Built) -> list[dict[str, str]]:
    with open(built.out / "skips.csv", encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --- 5. sample galleries show different pages --------------------------------------------


SUBSETS = ("perfect", "perfect_with_text", "near_perfect", "high_quality", "medium_quality",
           "low_quality")  # fmt: skip


def test_galleries_repeat_no_page_while_others_are_left(built: Built) -> None:
    from analyzer.report.data import by_subset

    parsed = parse(built.text)
    members = {
        s: {r["image_path"] for r in rows} for s, rows in by_subset(built.rows, THRESHOLD).items()
    }
    shown: set[str] = set()
    galleries = [g for g in dict.fromkeys(f.gallery for f in parsed.figures) if g in SUBSETS]
    assert len(galleries) >= 3
    overlapping = 0
    for gallery in galleries:
        pages = [f.alt for f in parsed.figures if f.gallery == gallery]
        assert len(pages) == min(SAMPLES, len(members[gallery])) == len(set(pages))
        assert set(pages) <= members[gallery]
        fresh = members[gallery] - shown
        overlapping += bool(members[gallery] & shown)
        if len(fresh) >= len(pages):
            assert not set(pages) & shown, gallery
        else:  # every page not shown yet is shown now
            assert fresh <= set(pages)
        shown |= set(pages)
    assert overlapping  # the subsets overlap (perfect_with_text ⊂ perfect)
    # deterministic: the same inputs, the same galleries
    again = parse(
        _report(
            built.out,
            "--run",
            str(built.out / "run"),
            "--eval",
            str(built.out / "eval.json"),
            name="again.html",
        )[1]
    )
    assert [(f.gallery, f.alt) for f in again.figures] == [
        (f.gallery, f.alt) for f in parsed.figures
    ]


# --- 6. "perfect" labels are true --------------------------------------------------------


def _list_count(path: Path) -> int:
    return len([line for line in path.read_text("utf-8").splitlines() if line.strip()])


def test_perfect_means_what_the_analyzer_means(built: Built) -> None:
    """The threshold comes from the CSV (0.6, not 0.5): the report's counts are the
    analyzer's lists; every perfect sample has equal non-zero counts; a perfect page with
    little or no text says so."""
    parsed = parse(built.text)
    assert "text coverage threshold 0.6: the one the CSV" in built.text
    subsets = next(t for t in parsed.tables if t["rows"][0][:2] == ["subset", "pages"])
    counts = {r[0]: int(r[1]) for r in subsets["rows"][1:]}
    assert counts["perfect"] == _list_count(built.out / "analysis_perfect_matches.txt")
    assert counts["perfect_with_text"] == _list_count(
        built.out / "analysis_perfect_with_text_matches.txt"
    )
    perfect = [f for f in parsed.figures if f.gallery == "perfect"]
    assert perfect
    for fig in perfect:
        row = _row(built, fig.alt)
        assert row["is_perfect_match"] == "True" and row["vlm_truncated"] == "False"
        assert int(row["rcnn_panels"]) == int(row["vlm_panels"]) > 0
        coverage = int(row["vlm_panels_with_text"]) / int(row["vlm_panels"])
        assert ("not perfect_with_text" in fig.caption) is (coverage < THRESHOLD)
        assert ("textless page" in fig.caption) is (coverage == 0)


def test_a_textless_perfect_page_is_labelled_so(built: Built, tmp_path: Path) -> None:
    """A perfect page whose VLM reply has no text at all (its speakers removed): drawn in
    `perfect` with the textless label, not in `perfect_with_text`. A threshold that
    contradicts the CSV's scores is flagged."""
    corpus = copy_corpus(built.corpus, tmp_path / "corpus")
    perfect_rows = [r for r in built.rows if r["is_perfect_match"] == "True"]
    page = min(perfect_rows, key=lambda r: (int(r["vlm_panels"]), r["image_path"]))
    vlm = corpus.vlm_dir / Path(page["vlm_json_path"]).relative_to(built.corpus.vlm_dir)
    reply = json.loads(vlm.read_text("utf-8"))
    for panel in reply["panels"]:
        panel["speakers"] = []
    vlm.write_text(json.dumps(reply), "utf-8")
    out = tmp_path / "out"
    args = [*base_args(corpus, out), "--min_text_coverage", str(THRESHOLD)]
    assert CliRunner().invoke(analyze, args, catch_exceptions=False).exit_code == 0
    with open(out / "analysis.csv", encoding="utf-8", newline="") as fh:
        rows = {r["image_path"]: r for r in csv.DictReader(fh)}
    assert rows[page["image_path"]]["vlm_panels_with_text"] == "0"
    assert rows[page["image_path"]]["is_perfect_match"] == "True"  # perfect asks for no text
    html_path = out / "all.html"
    result = CliRunner().invoke(
        report_main, [str(out / "analysis.csv"), "--samples", "1000", "-o", str(html_path)]
    )
    assert result.exit_code == 0, result.output
    parsed = parse(html_path.read_text("utf-8"))
    perfect = {f.alt: f for f in parsed.figures if f.gallery == "perfect"}
    assert len(perfect) == sum(r["is_perfect_match"] == "True" for r in rows.values())
    assert [a for a, f in perfect.items() if "textless page" in f.caption] == [page["image_path"]]
    assert f"text on 0 of {page['vlm_panels']} " in perfect[page["image_path"]].caption
    assert page["image_path"] not in {
        f.alt for f in parsed.figures if f.gallery == "perfect_with_text"
    }
    assert "1 of them none at all (a textless page)" in html_path.read_text("utf-8")
    result = CliRunner().invoke(
        report_main, [str(out / "analysis.csv"), "--min_text_coverage", "0.5", "-o", str(html_path)]
    )
    assert result.exit_code == 0, result.output
    text = html_path.read_text("utf-8")
    assert "threshold 0.5: given" in text and "<p class='warn'>" in text


# --- the report in a real browser --------------------------------------------------------


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no headless Chromium at {CHROMIUM} (CI has none)"
)
def test_report_renders_in_headless_chromium(built: Built, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1300,3000", built.report.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as im:
        rgb = im.convert("RGB")
        assert rgb.size == (1300, 3000)
        colours = rgb.getcolors(1 << 24) or []
    assert len(colours) > 200  # text, charts and thumbnails, not a blank page
    top = max(n for n, _ in colours)
    assert top < 0.95 * 1300 * 3000
