"""An offline tokenizer: hashed word unigrams, word bigrams and character trigrams.

No vocabulary file and no download: a token's id is its CRC-32 modulo the vocabulary
size (id 0 is padding), so the same text gives the same ids on every machine.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]+")


class HashTokenizer:
    """Text → fixed-length id rows: words first, then word bigrams, then char trigrams."""

    def __init__(self, vocab_size: int = 16384, max_tokens: int = 64) -> None:
        if vocab_size < 2 or max_tokens < 1:
            raise ValueError("vocab_size must be >= 2 and max_tokens >= 1")
        self.vocab_size = vocab_size
        self.max_tokens = max_tokens

    def _id(self, kind: str, token: str) -> int:
        # surrogatepass: a lone surrogate (from a lenient JSON parse) hashes, never raises
        data = f"{kind}\x1f{token}".encode("utf-8", "surrogatepass")
        return 1 + zlib.crc32(data) % (self.vocab_size - 1)

    def encode(self, text: str) -> list[int]:
        """Ids of one text, at most `max_tokens` (lower-cased; punctuation runs are words).

        Only the first `max_tokens` words can contribute, so no more are split off: a
        huge text costs one pass over its first words, not a list of all of them.
        """
        found = _WORD.finditer(text.lower())
        words = [m.group() for m in itertools.islice(found, self.max_tokens)]
        ids = [self._id("w", w) for w in words]
        if len(ids) < self.max_tokens:
            ids += [self._id("b", f"{a} {b}") for a, b in itertools.pairwise(words)]
        if len(ids) < self.max_tokens:
            for word in words:
                padded = f"<{word}>"
                ids += [self._id("c", padded[i : i + 3]) for i in range(len(padded) - 2)]
                if len(ids) >= self.max_tokens:
                    break
        return ids[: self.max_tokens]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Ids of several texts as an int64 array (len(texts), max_tokens), 0-padded."""
        out = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.encode(text)
            out[row, : len(ids)] = ids
        return out
