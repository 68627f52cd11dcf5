"""The offline HTML report of a real analyzer run over a generated corpus."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from analyzer_testlib import base_args
from click.testing import CliRunner
from conftest import Runner

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
    assert parsed.tags.count("svg") == 3  # ratio, coverage and score histograms
    assert parsed.tags.count("table") == 3  # match tiers, subsets, skip reasons
    assert parsed.images and all(src.startswith("data:image/jpeg;base64,") for src in parsed.images)
    assert parsed.urls == []  # offline: nothing fetched
    for needle in (
        "Match tiers",
        "perfect_with_text",
        "zero_pairs",
        "Sample pages per skip reason",
    ):
        assert needle in text
