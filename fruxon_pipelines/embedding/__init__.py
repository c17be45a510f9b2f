"""Embedding providers behind one interface, chosen per knowledge asset by (provider, model).

Importing this package is cheap: onnxruntime and tokenizers load on first use only.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .base import Embedder, EmbeddingModel, TokenCounter
from .catalogue import (
    DEFAULT_MODEL,
    DEFAULT_PROVIDER,
    MODELS,
    UnknownEmbeddingModel,
    configured_models,
    find_model,
)
from .tokenizer import get_tokenizer

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PROVIDER",
    "MODELS",
    "Embedder",
    "EmbeddingModel",
    "KEYED_PROVIDERS",
    "TokenCounter",
    "UnknownEmbeddingModel",
    "bounded_call",
    "find_model",
    "embed_counted",
    "get_embedder",
    "get_tokenizer",
    "list_models",
    "token_bound",
    "tokenizer_for",
]

_lock = threading.Lock()
_embedders: dict[tuple[str, str, str], Embedder] = {}
# Providers that are called with an API key (an asset's own, its LLM config's, or the server's).
KEYED_PROVIDERS = frozenset({"openai"})


def _build(info: EmbeddingModel, api_key: str | None) -> Embedder:
    if info.provider == "local":
        from fruxon_pipelines.settings import get_settings

        from .local import LocalMiniLMEmbedder

        return LocalMiniLMEmbedder(info, cache_dir=get_settings().model_cache_dir)
    if info.provider == "hash":
        from .hashing import HashEmbedder

        return HashEmbedder(info)
    if info.provider == "openai":
        from fruxon_pipelines.settings import get_settings

        from .openai import OpenAIEmbedder

        settings = get_settings()
        if api_key is None and settings.openai_api_key is not None:
            api_key = settings.openai_api_key.get_secret_value()
        return OpenAIEmbedder(
            info,
            base_url=settings.openai_base_url,
            api_key=api_key,
            max_retries=settings.openai_max_retries,
        )
    raise UnknownEmbeddingModel(f"no implementation for provider {info.provider!r}")


def get_embedder(provider: str, model: str, api_key: str | None = None) -> Embedder:
    """The process-wide embedder for ``provider``/``model`` (and, for a keyed provider, the
    API key; None: the server's); a model is loaded once per process."""
    if provider not in KEYED_PROVIDERS:
        api_key = None
    # The cache is keyed by a digest, so the key itself lives only inside its client.
    digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""
    key = (provider, model, digest)
    embedder = _embedders.get(key)
    if embedder is None:
        info = find_model(provider, model)
        with _lock:
            embedder = _embedders.get(key)
            if embedder is None:
                embedder = _build(info, api_key)
                _embedders[key] = embedder
    return embedder


def tokenizer_for(model: EmbeddingModel) -> TokenCounter:
    """The catalogue entry's tokenizer, without loading the model where the tokenizer stands
    alone (the chunker needs only this, and parse workers must not each load a model). The
    entry, not a name to look up: a parse worker's catalogue is its fork server's, which may
    predate the run's configuration."""
    if model.provider in ("local", "hash", "openai"):
        return get_tokenizer()  # openai: chunks are sized with it; the server counts billing
    return get_embedder(model.provider, model.model).tokenizer


def list_models() -> list[EmbeddingModel]:
    """Every model a knowledge asset may name, for the API and the CLI."""
    return list(configured_models())


def embed_counted(embedder: Embedder, texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """Vectors and the tokens they cost: the service's count where it reports one, else the
    model's own tokenizer's (what the local model reads, special tokens aside)."""
    counted = getattr(embedder, "embed_counted", None)
    if counted is not None:
        return counted(texts)
    return embedder.embed(texts), sum(embedder.tokenizer.count(texts))


def bounded_call(
    embedder: Embedder, texts: Sequence[str]
) -> tuple[int, Callable[[], tuple[np.ndarray, int]]]:
    """``token_bound`` of ``texts`` and the call that embeds them (``embed_counted``), for a
    caller that books the cost between the two. The local model tokenizes once for the bound
    (exact), the call and the count, not three times."""
    tokenize = getattr(embedder, "tokenized", None)
    embed_tokenized = getattr(embedder, "embed_tokenized", None)
    if tokenize is not None and embed_tokenized is not None:
        tokenized = tokenize(texts)
        return tokenized.tokens, lambda: (embed_tokenized(tokenized), tokenized.tokens)
    return token_bound(embedder, texts), lambda: embed_counted(embedder, texts)


def token_bound(embedder: Embedder, texts: Sequence[str]) -> int:
    """At least what embedding ``texts`` will cost (exact for the local models), for checking
    a budget before spending."""
    bound = getattr(embedder, "token_bound", None)
    if bound is not None:
        return bound(texts)
    return sum(embedder.tokenizer.count(texts))
