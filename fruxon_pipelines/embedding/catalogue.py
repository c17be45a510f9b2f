"""The embedding models fruxon can run, and how a knowledge asset's config names one."""

from __future__ import annotations

from .base import EmbeddingModel

DEFAULT_PROVIDER = "local"
DEFAULT_MODEL = "all-MiniLM-L6-v2"

MODELS: tuple[EmbeddingModel, ...] = (
    EmbeddingModel(
        provider="local",
        model="all-MiniLM-L6-v2",
        dimensions=384,
        max_tokens=256,
        price_per_million_tokens=0.0,
        description=(
            "sentence-transformers all-MiniLM-L6-v2 run in-process with onnxruntime "
            "(int8 weights, fp32 compute). No torch, no network. The default."
        ),
    ),
    EmbeddingModel(
        provider="hash",
        model="hash-384",
        dimensions=384,
        max_tokens=256,
        price_per_million_tokens=0.0,
        description=(
            "Deterministic feature hashing of word unigrams and bigrams. Lexical only, "
            "for tests of pipeline logic; never use it for a real index."
        ),
    ),
)


class UnknownEmbeddingModel(ValueError):
    """The (provider, model) pair of a config is not in the catalogue."""


def find_model(provider: str, model: str) -> EmbeddingModel:
    """The catalogue entry for ``provider``/``model``; fails loudly on a typo in a config."""
    for entry in MODELS:
        if entry.provider == provider and entry.model == model:
            return entry
    known = ", ".join(f"{m.provider}/{m.model}" for m in MODELS)
    raise UnknownEmbeddingModel(
        f"unknown embedding model provider={provider!r} model={model!r}; known: {known}"
    )
