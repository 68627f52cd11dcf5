"""The batched `order` solver gives what the reference (`order_reference.py`, the first
one-page pure-Python form) gives: the same best paths and placements, the same posteriors
and confidences, on random pages of every shape, solved together in mixed batches."""

from __future__ import annotations

import random

import numpy as np
import order_reference as ref
import pytest

from analyzer.align import Alignment, align_many, prepare
from analyzer.align.geometry import centre_split, lettered
from analyzer.align.hmm import MODEL, Direction, Terms, step_weights
from analyzer.align.lattice import solve_many
from dataspec import PanelText
from dataspec.models import Character, TextItem
from dataspec.normalize import PanelRecord

Box = tuple[int, int, int, int]


def _page(
    rng: random.Random,
) -> tuple[list[Box], list[float], list[PanelRecord], list[Box], list[Box], bool]:
    """Detections on a grid (some merged, dropped or spurious), VLM panels with lines,
    items and characters, the detector's text and character boxes, a truncation flag."""
    rows, cols = rng.randint(1, 4), rng.randint(1, 3)
    w, h = 600 // cols, 900 // rows
    dets = [(c * w, r * h, w - 8, h - 8) for r in range(rows) for c in range(cols)]
    if len(dets) > 2 and rng.random() < 0.3:  # a detector merge
        a = dets.pop(rng.randrange(len(dets) - 1))
        dets[0] = (dets[0][0], dets[0][1], dets[0][2] + a[2], dets[0][3])
    if rng.random() < 0.3:  # a spurious box, maybe nested
        x, y = rng.randrange(500), rng.randrange(800)
        dets.append((x, y, rng.randint(20, 100), rng.randint(20, 100)))
    rng.shuffle(dets)
    scores = [round(rng.uniform(0.5, 1.0), 3) for _ in dets]
    m = max(1, len(dets) + rng.randint(-2, 2))
    vlm = []
    for j in range(m):
        lines = [f"line {j}.{k}" for k in range(rng.choice([0, 0, 1, 1, 2, 3, 4, 6]))]
        items = (
            tuple(TextItem(text=t, kind="dialogue") for t in lines)
            if lines and rng.random() < 0.7
            else None
        )
        cast = tuple(Character(name=f"C{k}") for k in range(rng.randint(0, 3))) or None
        vlm.append(PanelRecord(j, PanelText(dialogue=lines), text_items=items, characters=cast))
    texts = [
        (d[0] + rng.randrange(max(1, d[2] - 30)), d[1] + rng.randrange(max(1, d[3] - 20)), 25, 15)
        for d in dets
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5]))
    ]
    texts += [(rng.randrange(600), rng.randrange(900), 20, 10) for _ in range(rng.randint(0, 2))]
    chars = [
        (d[0] + 5, d[1] + 5, max(1, d[2] // 3), max(1, d[3] // 3))
        for d in dets
        for _ in range(rng.randint(0, 2))
    ]
    return dets, scores, vlm, texts, chars, rng.random() < 0.1


def _reference(
    dets: list[Box],
    scores: list[float],
    vlm: list[PanelRecord],
    texts: list[Box] | None,
    chars: list[Box] | None,
    truncated: bool,
    prior: float,
) -> Alignment:
    det_text, orphans = centre_split(dets, lettered(texts or ()))
    det_chars = centre_split(dets, chars) if chars is not None else None
    return ref._order(
        dets, scores, vlm, det_text, orphans, truncated, ref._MODEL, prior, texts is not None,
        det_chars,
    )  # fmt: skip


def _same(got: Alignment, want: Alignment) -> None:
    assert (got.method, got.direction) == (want.method, want.direction)
    assert got.rtl_evidence == pytest.approx(want.rtl_evidence, abs=1e-9)
    assert [(p.det, p.parts, p.kind) for p in got.placements] == [
        (p.det, p.parts, p.kind) for p in want.placements
    ]
    for g, w in zip(got.placements, want.placements, strict=True):
        assert abs(g.confidence - w.confidence) <= 1e-4 + 1e-12, (g, w)  # rounded to 4 places


@pytest.mark.parametrize("seed", range(4))
def test_batched_alignments_equal_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    pages, wants = [], []
    for _ in range(150):
        dets, scores, vlm, texts, chars, truncated = _page(rng)
        use_texts = texts if rng.random() < 0.9 else None
        use_chars = chars if rng.random() < 0.5 else None
        prior = rng.choice([0.15, 0.5, 0.9])
        pages.append(
            prepare(
                dets, scores, vlm, use_texts, truncated=truncated, rtl_prior=prior,
                char_boxes=use_chars,
            )
        )  # fmt: skip
        wants.append(_reference(dets, scores, vlm, use_texts, use_chars, truncated, prior))
    got = align_many(pages)
    assert all(a.method == "order" for a in got)
    for g, w in zip(got, wants, strict=True):
        _same(g, w)
        for prior in (0.02, 0.6, 0.98):  # the book's prior, reweighed without a new solve
            assert g.reweigh is not None and w.reweigh is not None
            _same(g.reweigh(prior), w.reweigh(prior))


def _lattice(
    t: list[int],
    score: list[float],
    area: list[float],
    lines: list[int],
    orphans: list[int],
    prefix: bool,
    cast: tuple[list[int], list[int], list[int]] | None,
) -> Direction:
    """The lattice of one reading direction, every input already in that order."""
    terms = Terms(t, score, area, lines, MODEL, cast[:2] if cast is not None else None)
    return terms.lattice(range(len(t)), orphans, cast[2] if cast is not None else None, prefix)


def test_lattice_posteriors_and_paths_equal_the_reference() -> None:
    rng = random.Random(7)
    lattices, refs = [], []
    for _ in range(120):
        n, m = rng.randint(1, 14), rng.randint(1, 14)
        t = [rng.randint(0, 6) for _ in range(n)]
        score = [rng.uniform(0.3, 1.0) for _ in range(n)]
        area = [rng.uniform(0.3, 3.0) for _ in range(n)]
        lines = [rng.randint(0, 6) for _ in range(m)]
        orphans = [rng.choice([0, 0, 0, 1, 2]) for _ in range(n + 1)]
        prefix = rng.random() < 0.2
        cast = (
            (
                [rng.randint(0, 3) for _ in range(n)],
                [rng.randint(0, 3) for _ in range(m)],
                [rng.choice([0, 0, 1]) for _ in range(n + 1)],
            )
            if rng.random() < 0.5
            else None
        )
        lattices.append(_lattice(t, score, area, lines, orphans, prefix, cast))
        refs.append(ref._Lattice(t, score, area, lines, orphans, prefix, ref._MODEL, cast))
    for sol, lattice in zip(solve_many(lattices, step_weights), refs, strict=True):
        log_z, post, path = lattice.solve()
        assert sol.log_z == pytest.approx(log_z, abs=1e-9)
        assert sol.path == path
        dense = np.zeros_like(sol.post)
        for (s, i, j), p in post.items():
            dense[s, i, j] = p
        np.testing.assert_allclose(sol.post, dense, rtol=1e-9, atol=1e-12)


def test_a_batch_with_one_huge_page_still_solves_the_small_ones() -> None:
    rng = random.Random(3)
    small = [_page(rng) for _ in range(5)]
    big: list[Box] = [(40 * (k % 10), 60 * (k // 10), 35, 55) for k in range(40)]
    records = [PanelRecord(j, PanelText(dialogue=["a"])) for j in range(38)]
    pages = [prepare(d, s, v, t) for d, s, v, t, _, _ in small]
    pages.insert(2, prepare(big, [0.9] * 40, records, []))
    got = align_many(pages)
    assert len(got) == 6 and len(got[2].placements) >= 30
    for k, (d, s, v, t, _, _) in enumerate(small):
        _same(got[k + (k >= 2)], _reference(d, s, v, t, None, False, 0.15))
