"""benchmarks/bench_search.py runs end to end at a tiny size and prints its figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("faiss")
pytest.importorskip("zarr")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_search as bs


def test_tiny_run_prints_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--vectors", "2000", "--dim", "32", "--queries", "20", "--k", "5"]
    argv += ["--chunk_pages", "512", "--batch", "300", "--out", str(tmp_path)]
    assert bs.main(argv) == 0
    out = capsys.readouterr().out
    for label in ("store write", "faiss build", "faiss reload", "exact (numpy)", "peak RSS"):
        assert label in out
    assert (tmp_path / "index" / "page.faiss").exists()
    recall = float(next(line for line in out.splitlines() if line.startswith("HNSW")).split()[-1])
    assert recall >= 0.9


def test_ivf_factory_and_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--vectors", "3000", "--dim", "16", "--queries", "10", "--factory", "IVF16,Flat"]
    argv += ["--nprobe", "16", "--chunk_pages", "1000", "--out", str(tmp_path)]
    assert bs.main(argv) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("IVF16"))
    assert float(line.split()[-1]) == pytest.approx(1.0)  # nprobe = nlist: exhaustive
    rows = bs.synthetic_rows(5, bs.np.zeros((3, 4), bs.np.float16))
    assert len(rows) == 3 and list(rows.page_input) == [5, 6, 7]
