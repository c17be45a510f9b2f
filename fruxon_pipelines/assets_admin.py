"""Creating knowledge assets: validate, write the catalog row, register the partition."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from fruxon_pipelines.catalog.models import KnowledgeAsset
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.registry import validate_parameters

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
