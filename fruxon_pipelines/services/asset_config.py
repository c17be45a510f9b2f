"""What a request says of an asset, checked and turned into catalog columns: the source's
parameters, the embedding and its credentials, source credentials (sealed), budget and
auto-update. Every error names the request's field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fruxon_pipelines.autoupdate import AutoUpdateConfig, InvalidAutoUpdate, parse_auto_update
from fruxon_pipelines.budgets import InvalidBudget, merged_budget
from fruxon_pipelines.domain import DEFAULT_EMBEDDING
from fruxon_pipelines.embedding import KEYED_PROVIDERS, UnknownEmbeddingModel
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.services.errors import InvalidRequest, UnsupportedType, parse_uuid
from fruxon_pipelines.sources.auth import InvalidSourceAuth, parse_source_auth
from fruxon_pipelines.sources.registry import (
    SOURCE_TYPES,
    InvalidSourceConfig,
    validate_parameters,
)

if TYPE_CHECKING:
    from fruxon_pipelines.services.assets import EmbeddingRequest
    from fruxon_pipelines.services.context import Services


# Checks -----------------------------------------------------------------------------------


def validate_embedding(config: dict[str, Any]) -> dict[str, Any]:
    """The model and chunking to embed with, completed with defaults; ValueError naming the
    member otherwise."""
    defaults = DEFAULT_EMBEDDING
    model = find_model(
        config.get("provider", defaults["provider"]), config.get("model", defaults["model"])
    )
    size = int(config.get("chunkSize", defaults["chunkSize"]))
    overlap = int(config.get("chunkOverlap", defaults["chunkOverlap"]))
    # The chunker keeps room for the model's special tokens ([CLS]/[SEP]) itself.
    if not 16 <= size <= model.max_tokens:
        raise ValueError(f"chunkSize must be between 16 and {model.max_tokens} tokens")
    if not 0 <= overlap <= size // 2:
        raise ValueError("chunkOverlap must be between 0 and half of chunkSize")
    return {
        "provider": model.provider,
        "model": model.model,
        "chunkSize": size,
        "chunkOverlap": overlap,
    }


def embedding_config(
    request: EmbeddingRequest | None, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    merged = dict(base or DEFAULT_EMBEDDING)
    if request is not None and request.config:
        merged.update({k: v for k, v in request.config.items() if v is not None})
    try:
        return validate_embedding(merged)
    except (UnknownEmbeddingModel, ValueError) as error:
        raise InvalidRequest(f"embedding: {error}") from error


def embedding_credentials(
    svc: Services, tenant: str, provider: str, request: EmbeddingRequest | None
) -> dict[str, Any]:
    """The asset columns for the request's embedding credentials: the API key sealed, the LLM
    config checked to be the tenant's and for this provider."""
    columns: dict[str, Any] = {}
    if request is None:
        return columns
    if request.api_key is not None:
        if provider not in KEYED_PROVIDERS:
            raise InvalidRequest(f"embedding.apiKey: the {provider!r} provider takes no API key")
        if not request.api_key.strip():
            raise InvalidRequest("embedding.apiKey must not be empty")
        columns["embedding_api_key"] = secret_box(svc.settings).seal(request.api_key)
    if request.llm_config is not None:
        field, config_id = request.llm_config
        if config_id is None:
            columns["embedding_llm_config_id"] = None
            return columns
        config = svc.catalog.get_llm_config(parse_uuid(config_id, field))
        if config is None or config.tenant != tenant:
            raise InvalidRequest(f"{field}: no LLM config {config_id!r} in this tenant")
        if config.provider != provider:
            raise InvalidRequest(
                f"{field}: the LLM config is for {config.provider!r}, the asset embeds with "
                f"{provider!r}"
            )
        columns["embedding_llm_config_id"] = config.id
    return columns


def source_auth_columns(
    svc: Services, source_type: str, data: dict[str, Any] | None, *, required: bool
) -> dict[str, Any]:
    """The asset column for the request's source credentials, sealed."""
    kind = SOURCE_TYPES[source_type]
    if data is None:
        if required and kind.auth_methods:
            methods = ", ".join(kind.auth_methods)
            raise InvalidRequest(f"auth: required for {source_type} assets (methods: {methods})")
        return {}
    if not kind.auth_methods:
        raise InvalidRequest(f"auth: {source_type} assets take no credentials")
    try:
        auth = parse_source_auth(data, kind.auth_methods, needs_email=kind.auth_needs_email)
    except InvalidSourceAuth as error:
        raise InvalidRequest(str(error)) from error
    return {"source_auth": secret_box(svc.settings).seal(auth.sealed_json())}


def budget_of(
    current: dict | None, budget: dict | None, currency_budget: dict | None
) -> dict[str, Any] | None:
    if budget is None and currency_budget is None:
        return current
    try:
        return merged_budget(current, budget, currency_budget)
    except InvalidBudget as error:
        raise InvalidRequest(str(error)) from error


def auto_update_of(source_type: str, data: dict[str, Any] | None) -> AutoUpdateConfig | None:
    if data is None:
        return None
    try:
        config = parse_auto_update(data)
        check_auto_update(source_type, config)
    except InvalidAutoUpdate as error:
        raise InvalidRequest(str(error)) from error
    return config


def check_auto_update(source_type: str, config: AutoUpdateConfig) -> None:
    """Whether the source type can be kept fresh this way; errors name the field."""
    kind = SOURCE_TYPES[source_type]
    if config.strategy == "POLL" and not kind.supports_poll:
        raise InvalidAutoUpdate(f"autoUpdate.strategy: {source_type} assets cannot be polled")
    if config.strategy == "WEBHOOK":
        if not kind.supports_webhook:
            raise InvalidAutoUpdate(
                f"autoUpdate.strategy: {source_type} assets do not take webhooks"
            )
        config.provider = config.provider or kind.webhook_providers[0]
        if config.provider not in kind.webhook_providers:
            known = ", ".join(kind.webhook_providers)
            raise InvalidAutoUpdate(
                f"autoUpdate.provider: {config.provider!r} is not a webhook provider of "
                f"{source_type} assets (known: {known})"
            )


def parameters_of(source_type: str, parameters: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_parameters(source_type, parameters).model_dump()
    except InvalidSourceConfig as error:
        raise InvalidRequest(str(error)) from error


def file_content_type(file_name: str) -> str:
    """The media type a file of this name is parsed as (UnsupportedType when none)."""
    from fruxon_pipelines.parsing import SUPPORTED_CONTENT_TYPES, content_type_for

    content_type = content_type_for(file_name)
    if content_type is None:
        supported = ", ".join(sorted(e for exts in SUPPORTED_CONTENT_TYPES.values() for e in exts))
        raise UnsupportedType(f"{file_name}: supported extensions are {supported}")
    return content_type
