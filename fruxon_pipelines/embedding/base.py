"""The embedder interface every provider implements, and the model catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EmbeddingModel:
    provider: str
    model: str
    dimensions: int
    # Most tokens the model reads, special tokens included; chunks must fit in it.
    max_tokens: int
    price_per_million_tokens: float
    description: str = ""

    @property
    def key(self) -> str:
        """``provider/model``: what the index stores beside each vector it made."""
        return f"{self.provider}/{self.model}"


class TokenCounter(Protocol):
    """The model's own tokenizer, as the chunker needs it."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of every token of ``text``, no special tokens, no truncation."""
        ...

    def count(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text, no special tokens, no truncation."""
        ...


class Embedder(Protocol):
    info: EmbeddingModel

    @property
    def tokenizer(self) -> TokenCounter: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dimensions), rows L2-normalised."""
        ...
