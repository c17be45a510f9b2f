"""Tenants' LLM configs: stored embedding credentials that assets name instead of carrying a
key. A key goes in once, sealed, and never comes out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fruxon_pipelines.catalog.models import LlmConfig
from fruxon_pipelines.embedding import KEYED_PROVIDERS
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.services.errors import InvalidRequest, NotFound, parse_uuid

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services


def create_llm_config(
    svc: Services, tenant: str, name: str, provider: str, api_key: str
) -> LlmConfig:
    """Store an embedding provider's API key, sealed; assets then name it."""
    if provider not in KEYED_PROVIDERS:
        keyed = ", ".join(sorted(KEYED_PROVIDERS))
        raise InvalidRequest(f"provider: {provider!r} takes no API key (keyed: {keyed})")
    return svc.catalog.create_llm_config(
        tenant=tenant,
        name=name,
        provider=provider,
        sealed_api_key=secret_box(svc.settings).seal(api_key),
    )


def list_llm_configs(svc: Services, tenant: str) -> list[LlmConfig]:
    return svc.catalog.list_llm_configs(tenant)


def load_llm_config(svc: Services, tenant: str, config_id: str, field: str) -> LlmConfig:
    """The tenant's config, or NotFound naming ``field`` (another tenant's is not confirmed)."""
    config = svc.catalog.get_llm_config(parse_uuid(config_id, field))
    if config is None or config.tenant != tenant:
        raise NotFound(f"{field} {config_id} does not exist")
    return config


def rotate_llm_config_key(svc: Services, config: LlmConfig, api_key: str) -> LlmConfig:
    """A new key (revision + 1); every asset naming the config uses it from its next batch or
    search."""
    return svc.catalog.rotate_llm_config(config.id, secret_box(svc.settings).seal(api_key))


def delete_llm_config(svc: Services, config: LlmConfig) -> None:
    """Assets that still name it fail with CREDENTIALS until patched."""
    svc.catalog.delete_llm_config(config.id)
