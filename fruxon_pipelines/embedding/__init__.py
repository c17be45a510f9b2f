"""Embedding providers behind one interface, chosen per knowledge asset by (provider, model).

Importing this package is cheap: onnxruntime and tokenizers load on first use only.
"""

from __future__ import annotations

import threading

from .base import Embedder, EmbeddingModel, TokenCounter
from .catalogue import (
    DEFAULT_MODEL,
    DEFAULT_PROVIDER,
    MODELS,
    UnknownEmbeddingModel,
    find_model,
)
from .tokenizer import get_tokenizer

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PROVIDER",
    "MODELS",
    "Embedder",
    "EmbeddingModel",
    "TokenCounter",
    "UnknownEmbeddingModel",
    "find_model",
    "get_embedder",
    "get_tokenizer",
    "list_models",
    "tokenizer_for",
]

_lock = threading.Lock()
_embedders: dict[tuple[str, str], Embedder] = {}


def _build(info: EmbeddingModel) -> Embedder:
    if info.provider == "local":
        from .local import LocalMiniLMEmbedder

        return LocalMiniLMEmbedder(info)
    if info.provider == "hash":
        from .hashing import HashEmbedder

        return HashEmbedder(info)
    raise UnknownEmbeddingModel(f"no implementation for provider {info.provider!r}")


def get_embedder(provider: str, model: str) -> Embedder:
    """The process-wide embedder for ``provider``/``model``; a model is loaded once per process."""
    key = (provider, model)
    embedder = _embedders.get(key)
    if embedder is None:
        info = find_model(provider, model)
        with _lock:
            embedder = _embedders.get(key)
            if embedder is None:
                embedder = _build(info)
                _embedders[key] = embedder
    return embedder


def tokenizer_for(provider: str, model: str) -> TokenCounter:
    """The model's tokenizer, without loading the model where the tokenizer stands alone
    (the chunker needs only this, and parse workers must not each load a model)."""
    info = find_model(provider, model)
    if info.provider in ("local", "hash"):
        return get_tokenizer()
    return get_embedder(provider, model).tokenizer


def list_models() -> list[EmbeddingModel]:
    """Every model a knowledge asset may name, for the API and the CLI."""
    return list(MODELS)
