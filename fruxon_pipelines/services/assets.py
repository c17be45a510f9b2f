"""Knowledge assets: the one create path (every kind, from every interface), patch, delete,
refresh, and the reads the interfaces present.

Create: validate the whole request (source parameters, embedding, credentials, budget,
auto-update) before anything is written; write the asset, its registered start URLs, its
auto-update and its first operation in one unit of work; add its partition; launch.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fruxon_pipelines.autoupdate import (
    AutoUpdateConfig,
    next_poll_ms,
)
from fruxon_pipelines.budgets import Usage
from fruxon_pipelines.catalog.models import KnowledgeAsset, Operation, now_ms
from fruxon_pipelines.domain import AssetStatus, OperationStatus, OperationType
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.services.asset_config import (
    auto_update_of,
    budget_of,
    embedding_config,
    embedding_credentials,
    file_content_type,
    parameters_of,
    source_auth_columns,
    validate_embedding,
)
from fruxon_pipelines.services.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    parse_uuid,
)
from fruxon_pipelines.services.operations import (
    active_operations,
    ensure_idle,
    launch,
    request_cancel,
    start_operation,
    write_operation,
)
from fruxon_pipelines.webhooks import MintedWebhook, mint_webhook

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

logger = logging.getLogger("fruxon.assets")
# Settings that force every chunk to be rebuilt: a patch changing one re-ingests.
REINGEST_KEYS = ("provider", "model", "chunkSize", "chunkOverlap")
DELETE_WAIT_SECONDS = 15.0


@dataclass
class EmbeddingRequest:
    """What a request says of embedding: the members it gives of the model and chunking, the
    provider's API key, and the LLM config to take the key from, as (request field, id); an id
    of None clears it."""

    config: dict[str, Any] | None = None
    api_key: str | None = field(default=None, repr=False)
    llm_config: tuple[str, str | None] | None = None


@dataclass
class AssetRequest:
    """A new knowledge asset, as any interface asks for one."""

    tenant: str
    source_type: str
    parameters: dict[str, Any]
    created_by: str | None
    name: str | None = None
    embedding: EmbeddingRequest | None = None
    auth: dict[str, Any] | None = field(default=None, repr=False)
    auto_update: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    currency_budget: dict[str, Any] | None = None
    selection: str | None = None


@dataclass
class AssetPatch:
    display_name: str | None = None
    budget: dict[str, Any] | None = None
    currency_budget: dict[str, Any] | None = None
    embedding: EmbeddingRequest | None = None
    source_config: dict[str, Any] | None = None
    auto_update: dict[str, Any] | None = None
    disable_auto_update: bool = False
    auth: dict[str, Any] | None = field(default=None, repr=False)
    selection: str | None = None


@dataclass
class AssetChange:
    """An asset after a use case, the operation it started, if any, and the webhook it minted
    (shown once)."""

    asset: KnowledgeAsset
    operation: Operation | None = None
    webhook: MintedWebhook | None = None
    launch_error: str | None = None  # why its run could not be submitted now


# Create ---------------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """A create request, validated: the asset's columns and its auto-update."""

    columns: dict[str, Any]
    auto_update: AutoUpdateConfig | None


def _prepare(svc: Services, request: AssetRequest, parameters: dict[str, Any]) -> _Prepared:
    source_type = request.source_type
    params = parameters_of(source_type, parameters)
    embedding = embedding_config(request.embedding)
    credentials = embedding_credentials(
        svc, request.tenant, embedding["provider"], request.embedding
    )
    credentials |= source_auth_columns(svc, source_type, request.auth, required=True)
    auto_update = auto_update_of(source_type, request.auto_update)
    budget = budget_of(None, request.budget, request.currency_budget)
    urls = params.get("urls") or []
    columns = {
        "tenant": request.tenant,
        "name": request.name or (urls[0] if urls else source_type),
        "source_type": source_type,
        "source_config": params,
        "embedding_config": embedding,
        "budget": budget,
        "selection": request.selection or "ALL",
        **credentials,
    }
    return _Prepared(columns, auto_update)


def create_asset(svc: Services, request: AssetRequest, *, ingest: bool = True) -> AssetChange:
    """A web or connector asset, and its first ingestion (unless ``ingest`` is false)."""
    if request.source_type == "file":
        raise InvalidRequest("file assets are created with POST /assets:file or /assets:import")
    prepared = _prepare(svc, request, request.parameters)
    return _create(svc, prepared, str(uuid.uuid4()), request.created_by, ingest)


def create_file_asset(
    svc: Services,
    request: AssetRequest,
    file_name: str,
    place: Callable[[Path], int],
    content_type: str | None = None,
    *,
    ingest: bool = True,
    refuse_empty: bool = False,
) -> AssetChange:
    """A file asset: ``place`` writes the file to the path it is given (raising to refuse it)
    and returns its size; the file is the asset's own, under ``files/<asset id>/``.
    ``refuse_empty``: an empty file is a 400 (uploads), not a document that fails to parse."""
    file_name = Path(file_name).name
    if not file_name:
        raise InvalidRequest("the file has no name")
    content_type = content_type or file_content_type(file_name)
    asset_id = str(uuid.uuid4())
    relative = f"{asset_id}/{file_name}"
    parameters = {"path": relative, "fileName": file_name, "contentType": content_type}
    prepared = _prepare(svc, replace(request, name=request.name or file_name), parameters)
    target = svc.settings.files_dir / relative
    size = place_file(target, place)
    if size == 0 and refuse_empty:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise InvalidRequest("the file is empty")
    return _create(svc, prepared, asset_id, request.created_by, ingest)


def place_file(target: Path, place: Callable[[Path], int]) -> int:
    """Write a file into a folder of its own with ``place``; the folder goes if it raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return place(target)
    except BaseException:
        shutil.rmtree(target.parent, ignore_errors=True)
        raise


def copy_of(source: Path) -> Callable[[Path], int]:
    """What places a copy of ``source``: a stored upload or a local file becomes the asset's
    own."""

    def place(target: Path) -> int:
        shutil.copyfile(source, target)
        return target.stat().st_size

    return place


def _create(
    svc: Services, prepared: _Prepared, asset_id: str, created_by: str | None, ingest: bool
) -> AssetChange:
    """The asset, its start URLs, auto-update and first operation in one transaction; then its
    partition (before any run names it); then the run. A run the orchestrator cannot take now
    leaves the operation PENDING for the pending-operations sensor, and says why in
    ``launch_error``."""
    operation = None
    with svc.catalog.unit_of_work():
        asset = _insert(svc, prepared.columns, asset_id)
        webhook = _store_auto_update(svc, asset, prepared.auto_update)
        if ingest:
            operation = write_operation(svc, asset, OperationType.INGEST, created_by)
    svc.gateway.add_partition(asset.id)
    launch_error = launch(svc, operation) if operation is not None else None
    return AssetChange(svc.catalog.get_asset(asset.id), operation, webhook, launch_error)


def _insert(svc: Services, columns: dict[str, Any], asset_id: str) -> KnowledgeAsset:
    asset = svc.catalog.create_asset(asset_id=asset_id, **columns)
    if asset.selection == "REGISTERED" and asset.source_type == "web":
        register_start_urls(svc, asset)
    return asset


def register_start_urls(svc: Services, asset: KnowledgeAsset) -> None:
    """A web asset that ingests only registered pages starts with its start URLs."""
    from fruxon_pipelines.sources.web import normalize_url

    urls = [u for u in (normalize_url(raw) for raw in asset.source_config["urls"]) if u]
    svc.catalog.register_documents(asset.id, [(u, {"source_url": u}) for u in urls])


def workspace_web_asset(svc: Services, tenant: str, first_url: str) -> KnowledgeAsset:
    """The workspace's web asset that ingests only what the sources API gives it; made on first
    use with the default embedding, without an ingestion of its own."""
    from fruxon_pipelines.services.workspace_sources import connection

    asset = connection(svc.catalog, tenant, "web")
    if asset is not None:
        return asset
    asset_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fruxon:{tenant}:sources:web"))
    existing = svc.catalog.get_asset(asset_id)
    if existing is None:
        try:
            existing = svc.catalog.create_asset(
                asset_id=asset_id,
                tenant=tenant,
                name="Web sources",
                source_type="web",
                source_config={"urls": [first_url], "maxDepth": 0, "maxPages": 100_000},
                embedding_config=validate_embedding({}),
                selection="REGISTERED",
            )
        except Exception:  # a concurrent first request made it: use that one
            existing = svc.catalog.get_asset(asset_id)
            if existing is None:
                raise
        svc.gateway.add_partition(asset_id)
    if existing.status != AssetStatus.ACTIVE:
        raise Conflict("the workspace's web asset is being deleted; retry")
    return existing


# Auto-update ----------------------------------------------------------------------------------


def _store_auto_update(
    svc: Services, asset: KnowledgeAsset, config: AutoUpdateConfig | None
) -> MintedWebhook | None:
    """Store the asset's auto-update (checked by :func:`check_auto_update`); None leaves it.

    Returns a new webhook when the config needs one the asset does not have yet (first
    enabled, or another provider or auth mode); any other change keeps the URL. Turning
    webhooks off revokes the URL."""
    if config is None:
        return None
    catalog = svc.catalog
    if not config.enabled:
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
    return _mint(svc, asset.id, config)


def _mint(svc: Services, asset_id: str, config: AutoUpdateConfig) -> MintedWebhook:
    return mint_webhook(
        svc.catalog,
        secret_box(svc.settings),
        asset_id,
        config.provider or "generic",
        config.authMode or "API_KEY",
    )


def regenerate_webhook(svc: Services, asset: KnowledgeAsset) -> MintedWebhook:
    """A new URL (and secret), shown once; the old one stops now."""
    config = AutoUpdateConfig.model_validate(asset.auto_update or {})
    if config.strategy != "WEBHOOK":
        raise InvalidRequest(
            "the asset has no webhook auto-update (set autoUpdate.strategy to WEBHOOK)"
        )
    return _mint(svc, asset.id, config)


# Patch, refresh, delete -----------------------------------------------------------------------


def patch_asset(
    svc: Services, current: KnowledgeAsset, patch: AssetPatch, created_by: str | None
) -> AssetChange:
    """Update settings; changing the model or the chunking re-ingests, changing the source's
    parameters refreshes."""
    changes: dict[str, Any] = {}
    budget = budget_of(current.budget, patch.budget, patch.currency_budget)
    if budget != current.budget:
        changes["budget"] = budget  # applies to the next batch or search; nothing re-ingests
    if patch.disable_auto_update:  # wins over autoUpdate, which is then not even read
        auto_update: AutoUpdateConfig | None = AutoUpdateConfig()
    else:
        auto_update = auto_update_of(current.source_type, patch.auto_update)
    if patch.selection is not None and patch.selection != current.selection:
        changes["selection"] = patch.selection  # applies from the next refresh
    if patch.display_name is not None:
        if not patch.display_name.strip():
            raise InvalidRequest("displayName must not be empty")
        changes["name"] = patch.display_name
    reingest = refresh = False
    if patch.embedding is not None and patch.embedding.config is not None:
        embedding = embedding_config(patch.embedding, current.embedding_config)
        reingest = any(embedding[k] != current.embedding_config.get(k) for k in REINGEST_KEYS)
        changes["embedding_config"] = embedding
        model_changed = (embedding["provider"], embedding["model"]) != (
            current.embedding_config["provider"],
            current.embedding_config["model"],
        )
        if model_changed and current.serving_embedding is None:
            # Searches keep the current vectors until the re-ingestion with the new model is
            # complete (the embed stage switches them over).
            changes["serving_embedding"] = current.embedding_config
    # New source credentials (our extension: how a CREDENTIALS failure is mended).
    changes |= source_auth_columns(svc, current.source_type, patch.auth, required=False)
    # A new key or LLM config changes who pays, not the vectors: nothing re-ingests.
    provider = changes.get("embedding_config", current.embedding_config)["provider"]
    changes |= embedding_credentials(svc, current.tenant, provider, patch.embedding)
    if patch.source_config is not None:
        params = parameters_of(current.source_type, patch.source_config)
        if current.source_type == "file" and params.get("path") != current.source_config.get(
            "path"
        ):
            # The stored file is the asset's own upload; pointing elsewhere could reach another
            # tenant's file.
            raise InvalidRequest(
                "the path of a file asset cannot change; upload a new file instead"
            )
        refresh = params != current.source_config
        changes["source_config"] = params
    if reingest or refresh:
        ensure_idle(svc, current.id)
    with svc.catalog.unit_of_work():
        updated = svc.catalog.update_asset(current.id, **changes) if changes else current
        webhook = _store_auto_update(svc, updated, auto_update)
    updated = svc.catalog.get_asset(current.id)
    operation = None
    if reingest:
        operation = start_operation(svc, updated, OperationType.INGEST, created_by, force=True)
    elif refresh:
        operation = start_operation(svc, updated, OperationType.REFRESH, created_by)
    return AssetChange(updated, operation, webhook)


def refresh_asset(
    svc: Services,
    asset: KnowledgeAsset,
    created_by: str | None,
    *,
    document_ids: list[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    required: bool = False,
    queue_when_busy: bool = False,
) -> Operation:
    """Re-fetch and re-ingest (only ``document_ids`` when given); one operation at a time:
    Busy while another is pending or running, unless ``queue_when_busy`` (the CLI: the run
    queue's per-asset limit then holds the run until the other has ended)."""
    ids = [parse_uuid(d, "document") for d in document_ids or []]
    if ids:
        known = {d.id for d in svc.catalog.documents_by_id(asset.id, ids)}
        missing = [d for d in ids if d not in known]
        if missing:
            raise NotFound(f"documents not in this asset: {', '.join(missing)}")
    if not queue_when_busy:
        ensure_idle(svc, asset.id)
    kind = OperationType.DRY_RUN if dry_run else OperationType.REFRESH
    return start_operation(
        svc,
        asset,
        kind,
        created_by,
        document_ids=ids,
        force=force,
        dry_run=dry_run,
        required=required,
    )


def delete_asset(svc: Services, asset: KnowledgeAsset) -> None:
    """Remove the asset, its documents, its vectors, its partition and its files (uploaded and
    staged); stop its runs."""
    svc.catalog.update_asset(asset.id, status=AssetStatus.DELETING.value)
    active = active_operations(svc, asset.id)
    for operation in active:
        request_cancel(svc, operation)
    # A running batch finishes before its run stops; wait (briefly) so it writes nothing after
    # the vectors are gone. The run also stops itself at its next batch once it sees DELETING.
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while active and time.monotonic() < deadline:
        runs = svc.gateway.runs_of_asset(asset.id)
        active = [
            op for op in active if svc.statuses.of(op, runs).status == OperationStatus.RUNNING
        ]
        if active:
            time.sleep(0.25)
    svc.vectors.delete_asset(asset.tenant, asset.id)
    svc.gateway.delete_partition(asset.id)
    svc.catalog.delete_asset(asset.id)
    shutil.rmtree(svc.settings.files_dir / asset.id, ignore_errors=True)
    # What a failed run staged stays for its re-execution from failure in the Dagster UI (the
    # next full refresh of the asset clears it); with the asset gone, nothing will use it. A
    # run still going after the wait above stages more, and removes it when its embed stage
    # stops on DELETING.
    shutil.rmtree(svc.settings.staging_dir / asset.id, ignore_errors=True)


def sweep_staging(staging_dir: Path, catalog: Any) -> list[str]:
    """Remove what runs staged for assets the catalog no longer has; the ids swept.

    ``delete_asset`` removes an asset's staged files, and a run that stops on its asset's
    delete removes what it staged since. Left over: a run that Dagster's cancel stopped mid-step
    after the delete (it never reaches its own clean-up), and deletions older than both."""
    try:
        staged = [entry for entry in staging_dir.iterdir() if entry.is_dir()]
    except FileNotFoundError:
        return []
    # Listed before the catalog is read: an asset's row is written before any run of it stages,
    # so a directory that is not listed yet cannot be mistaken for a deleted asset's.
    live = catalog.existing_asset_ids(entry.name for entry in staged)
    gone = [entry for entry in staged if entry.name not in live]
    # Asked again just before removing: an id can come back (the sources API's workspace asset
    # has one id per tenant), and its new runs' files must stay.
    live = catalog.existing_asset_ids(entry.name for entry in gone) if gone else set()
    swept = []
    for entry in sorted(gone):
        if entry.name in live:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if entry.exists():  # not ours to remove, or busy: the next sweep tries again
            logger.warning("could not remove everything staged under %s", entry)
        else:
            swept.append(entry.name)
    return swept


# Reads ----------------------------------------------------------------------------------------


def visible_asset(asset: KnowledgeAsset | None, tenant: str, asset_id: str) -> KnowledgeAsset:
    """The tenant's asset, or NotFound (also for another tenant's: nothing is confirmed)."""
    if asset is None or asset.tenant != tenant or asset.status == AssetStatus.DELETING:
        raise NotFound(f"asset {asset_id} does not exist")
    return asset


def load_asset(svc: Services, tenant: str, asset_id: str) -> KnowledgeAsset:
    return visible_asset(svc.catalog.get_asset(parse_uuid(asset_id, "asset")), tenant, asset_id)


def list_assets(svc: Services, tenant: str, search: str | None = None) -> list[KnowledgeAsset]:
    """The tenant's assets, newest first (``search``: in their names)."""
    assets = [a for a in svc.catalog.list_assets(tenant) if a.status != AssetStatus.DELETING]
    if search:
        assets = [a for a in assets if search.lower() in a.name.lower()]
    assets.sort(key=lambda a: a.created_at, reverse=True)
    return assets


def token_usage(svc: Services, asset: KnowledgeAsset) -> Usage:
    """The asset's spending so far against its budget (UTC day and month)."""
    return svc.catalog.token_usage(asset.id, now_ms())


@dataclass
class AssetUsage:
    token_count: int
    chunk_count: int
    operation_count: int


def asset_usage(svc: Services, asset: KnowledgeAsset) -> AssetUsage:
    documents = svc.catalog.documents_by_key(asset.id).values()
    return AssetUsage(
        token_count=sum(d.token_count for d in documents),
        chunk_count=sum(d.chunk_count for d in documents),
        operation_count=len(svc.catalog.list_operations(asset.id)),
    )
