"""The embedding models fruxon can run, and how a knowledge asset's config names one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


# The catalogue of the settings it was last built from: every operation read prices its
# tokens with it, and building it was ~2 % of a poll.
_built_for: tuple[object, tuple[EmbeddingModel, ...]] | None = None


def configured_models() -> tuple[EmbeddingModel, ...]:
    """The built-in models (the local one at its configured price) and the OpenAI-compatible
    endpoint's models from FRUXON_OPENAI_MODELS."""
    global _built_for
    from fruxon_pipelines.settings import get_settings

    settings = get_settings()
    built = _built_for
    if built is None or built[0] is not settings:
        built = _built_for = (settings, _models_of(settings))
    return built[1]


def _models_of(settings: Any) -> tuple[EmbeddingModel, ...]:
    from dataclasses import replace

    built_in = tuple(
        replace(m, price_per_million_tokens=settings.local_price_per_million_tokens)
        if m.provider == "local"
        else m
        for m in MODELS
    )
    remote = tuple(
        EmbeddingModel(
            provider="openai",
            model=m.model,
            dimensions=m.dimensions,
            max_tokens=m.maxTokens,
            price_per_million_tokens=m.pricePerMillionTokens,
            description=m.description or f"{m.model} at {settings.openai_base_url}",
        )
        for m in settings.openai_models
    )
    return built_in + remote


class UnknownEmbeddingModel(ValueError):
    """The (provider, model) pair of a config is not in the catalogue."""


def model_of(config: Mapping[str, Any]) -> EmbeddingModel:
    """The catalogue entry an embedding config (an asset's ``provider`` and ``model``) names."""
    return find_model(config["provider"], config["model"])


def find_model(provider: str, model: str) -> EmbeddingModel:
    """The catalogue entry for ``provider``/``model``; fails loudly on a typo in a config."""
    models = configured_models()
    for entry in models:
        if entry.provider == provider and entry.model == model:
            return entry
    known = ", ".join(f"{m.provider}/{m.model}" for m in models)
    raise UnknownEmbeddingModel(
        f"unknown embedding model provider={provider!r} model={model!r}; known: {known}"
    )
