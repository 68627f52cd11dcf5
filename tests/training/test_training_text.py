"""The offline hashed n-gram tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from training.text import HashTokenizer


def test_ids_are_deterministic_in_range_and_case_blind() -> None:
    tok = HashTokenizer(vocab_size=100, max_tokens=16)
    a = tok(["WHERE DID BRUCE GO?"])
    assert np.array_equal(a, HashTokenizer(vocab_size=100, max_tokens=16)(["where did bruce go?"]))
    assert a.shape == (1, 16) and a.dtype == np.int64
    assert ((a >= 1) & (a < 100)).all()  # long enough to fill every slot; 0 is padding only


def test_words_come_first_then_bigrams_then_char_trigrams() -> None:
    tok = HashTokenizer(max_tokens=64)
    ids = tok.encode("run now")
    # 2 words + 1 bigram + trigrams of "<run>" (3) and "<now>" (3)
    assert len(ids) == 2 + 1 + 3 + 3
    assert ids[0] == tok.encode("run")[0] and ids[1] == tok.encode("now")[0]


def test_empty_text_is_all_padding_and_long_text_is_cut() -> None:
    tok = HashTokenizer(max_tokens=8)
    rows = tok(["", "a b c d e f g h i j k"])
    assert not rows[0].any()
    assert (rows[1] > 0).all() and rows.shape == (2, 8)


@pytest.mark.parametrize(("vocab", "max_tokens"), [(1, 8), (10, 0)])
def test_bad_settings_are_rejected(vocab: int, max_tokens: int) -> None:
    with pytest.raises(ValueError):
        HashTokenizer(vocab, max_tokens)
