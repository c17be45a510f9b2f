"""A deterministic, model-free embedder for tests of pipeline logic.

Vectors are signed feature hashes of lower-cased word unigrams and bigrams: identical texts
give identical vectors and texts sharing words are closer, which is all a test of diffing,
upserting or deleting needs. It is lexical only, so it is never a default.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .base import EmbeddingModel
from .catalogue import find_model
from .tokenizer import MiniLMTokenizer, get_tokenizer

_WORD = re.compile(r"\w+")


def _features(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]


class HashEmbedder:
    """Implements :class:`~.base.Embedder` with blake2b feature hashing; no model, no I/O."""

    def __init__(self, info: EmbeddingModel | None = None) -> None:
        self.info = info or find_model("hash", "hash-384")
        dim = self.info.dimensions
        # What a text without any word maps to: a fixed unit vector, never zeros or NaN.
        self._empty = np.full(dim, 1.0 / np.sqrt(dim), dtype=np.float32)

    @property
    def tokenizer(self) -> MiniLMTokenizer:
        return get_tokenizer()

    def _vector(self, text: str) -> np.ndarray:
        dim = self.info.dimensions
        feats = _features(text)
        if not feats:
            return self._empty
        hashes = np.array(
            [
                int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
                for f in feats
            ],
            dtype=np.uint64,
        )
        index = (hashes % np.uint64(dim)).astype(np.intp)
        sign = np.where((hashes >> np.uint64(63)) == 1, -1.0, 1.0)
        vec = np.zeros(dim, dtype=np.float64)
        np.add.at(vec, index, sign)
        norm = np.linalg.norm(vec)
        if norm == 0.0:  # every feature cancelled out
            return self._empty
        return (vec / norm).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dimensions), rows L2-normalised, deterministic."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single str")
        out = np.empty((len(texts), self.info.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._vector(text)
        return out
