"""Fixtures for the analyzer tests: generated corpora (real JPEGs) and a CLI runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from analyzer_testlib import copy_corpus
from click.testing import CliRunner, Result

from analyzer.cli import analyze
from dataspec.sample import SampleCorpus, generate_corpus

PAGES = 60
SEED = 7


@pytest.fixture(scope="session")
def base_corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    """One generated corpus for the whole session (read-only: copy it to change it)."""
    return generate_corpus(tmp_path_factory.mktemp("corpus") / "c", pages=PAGES, seed=SEED)


@pytest.fixture
def corpus(base_corpus: SampleCorpus, tmp_path: Path) -> SampleCorpus:
    """A copy of the session corpus that the test may change."""
    return copy_corpus(base_corpus, tmp_path / "corpus")


@pytest.fixture(scope="session")
def agreeing_base_corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    """The session corpus drawn with `disagreement=False`: detector and VLM agree on most
    pages (the real shape has equal counts on about a third), for tests that need many
    pages every stage writes (read-only: copy it to change it)."""
    root = tmp_path_factory.mktemp("agreeing") / "c"
    return generate_corpus(root, pages=PAGES, seed=SEED, disagreement=False)


@pytest.fixture
def agreeing_corpus(agreeing_base_corpus: SampleCorpus, tmp_path: Path) -> SampleCorpus:
    """A copy of the agreeing corpus that the test may change."""
    return copy_corpus(agreeing_base_corpus, tmp_path / "corpus")


Runner = Callable[[Sequence[str]], Result]


@pytest.fixture
def run_cli() -> Runner:
    """Invoke `python -m analyzer` in-process; returns click's Result (stdout, stderr)."""

    def invoke(args: Sequence[str]) -> Result:
        return CliRunner().invoke(analyze, list(args), catch_exceptions=False)

    return invoke
