"""Creating knowledge assets: validate, write the catalog row, register the partition."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from fruxon_pipelines.autoupdate import AutoUpdateConfig, InvalidAutoUpdate, next_poll_ms
from fruxon_pipelines.catalog.models import KnowledgeAsset, now_ms
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.registry import SOURCE_TYPES, validate_parameters
from fruxon_pipelines.webhooks import MintedWebhook, mint_webhook

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def validate_embedding(config: dict[str, Any]) -> dict[str, Any]:
    model = find_model(config.get("provider", "local"), config.get("model", "all-MiniLM-L6-v2"))
    size = int(config.get("chunkSize", 256))
    overlap = int(config.get("chunkOverlap", 32))
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


def set_auto_update(
    settings: Settings, catalog: Catalog, asset: KnowledgeAsset, config: AutoUpdateConfig | None
) -> MintedWebhook | None:
    """Store the asset's auto-update (checked by :func:`check_auto_update`).

    Returns a new webhook when the config needs one the asset does not have yet (first
    enabled, or another provider or auth mode); any other change keeps the URL. Turning
    webhooks off revokes the URL."""
    if config is None or not config.enabled:
        catalog.update_asset(asset.id, auto_update=None, next_poll_at=None)
        catalog.delete_webhooks(asset.id)
        return None
    if config.strategy == "POLL":
        catalog.update_asset(
            asset.id, auto_update=config.model_dump(), next_poll_at=next_poll_ms(config, now_ms())
        )
        catalog.delete_webhooks(asset.id)
        return None
    catalog.update_asset(asset.id, auto_update=config.model_dump(), next_poll_at=None)
    existing = catalog.webhook_of_asset(asset.id)
    if existing and (existing.provider, existing.auth_mode) == (config.provider, config.authMode):
        return None
    return rotate_webhook(settings, catalog, asset.id, config)


def rotate_webhook(
    settings: Settings, catalog: Catalog, asset_id: str, config: AutoUpdateConfig
) -> MintedWebhook:
    """A new URL and secret for the asset's webhook config; any earlier URL stops at once."""
    return mint_webhook(
        catalog,
        secret_box(settings),
        asset_id,
        config.provider or "generic",
        config.authMode or "API_KEY",
    )


def _validate_tenant(tenant: str) -> None:
    if not TENANT_PATTERN.match(tenant):
        raise ValueError("tenant must be 1-64 letters, digits, '-' or '_'")


def _register(settings: Settings, asset: KnowledgeAsset) -> None:
    from fruxon_pipelines.launcher import dagster_instance, register_partition

    register_partition(dagster_instance(settings), asset.id)


def create_web_asset(
    settings: Settings,
    catalog: Catalog,
    tenant: str,
    name: str | None,
    parameters: dict[str, Any],
    embedding: dict[str, Any],
) -> KnowledgeAsset:
    _validate_tenant(tenant)
    params = validate_parameters("web", parameters)
    asset = catalog.create_asset(
        tenant=tenant,
        name=name or params.urls[0],
        source_type="web",
        source_config=params.model_dump(),
        embedding_config=validate_embedding(embedding),
    )
    _register(settings, asset)
    return asset


def create_file_asset(
    settings: Settings,
    catalog: Catalog,
    tenant: str,
    name: str | None,
    file: Path,
    embedding: dict[str, Any],
) -> KnowledgeAsset:
    """Copy the file under FRUXON_HOME/files/<asset id>/ and create its asset."""
    _validate_tenant(tenant)
    if not file.is_file():
        raise ValueError(f"{file} is not a file")
    asset_id = str(uuid.uuid4())
    relative = f"{asset_id}/{file.name}"
    target = settings.files_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(file, target)
    params = validate_parameters("file", {"path": relative, "fileName": file.name})
    asset = catalog.create_asset(
        asset_id=asset_id,
        tenant=tenant,
        name=name or file.name,
        source_type="file",
        source_config=params.model_dump(),
        embedding_config=validate_embedding(embedding),
    )
    _register(settings, asset)
    return asset
