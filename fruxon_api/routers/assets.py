"""Knowledge assets: create (from config or a file), list, read, update, delete, refresh."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import ValidationError

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Paging, Services, Svc, load_asset, parse_uuid
from fruxon_api.present import asset_out, long_operation, webhook_out
from fruxon_api.problems import Problem
from fruxon_api.ratelimit import REFRESH
from fruxon_api.schemas import (
    AssetOut,
    AssetWithOperation,
    CreateAssetRequest,
    EmbeddingConfigIn,
    FilePayload,
    Page,
    PatchAssetRequest,
    RefreshRequest,
    UsageOut,
    WebhookRegistrationOut,
)
from fruxon_pipelines.assets_admin import (
    check_auto_update,
    rotate_webhook,
    set_auto_update,
    validate_embedding,
)
from fruxon_pipelines.autoupdate import AutoUpdateConfig, InvalidAutoUpdate, parse_auto_update
from fruxon_pipelines.budgets import InvalidBudget, merged_budget
from fruxon_pipelines.catalog.models import KnowledgeAsset, now_ms
from fruxon_pipelines.embedding import KEYED_PROVIDERS, UnknownEmbeddingModel
from fruxon_pipelines.parsing import SUPPORTED_CONTENT_TYPES, content_type_for
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.sources.auth import InvalidSourceAuth, parse_source_auth
from fruxon_pipelines.sources.registry import (
    SOURCE_TYPES,
    InvalidSourceConfig,
    validate_parameters,
)
from fruxon_pipelines.sources.web import normalize_url

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["assets"])

# Settings that force every chunk to be rebuilt: a PATCH changing one re-ingests.
REINGEST_KEYS = ("provider", "model", "chunkSize", "chunkOverlap")
ACTIVE = {"PENDING", "RUNNING"}
COPY_CHUNK = 1024 * 1024
DELETE_WAIT_SECONDS = 15.0


def _bad(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


def embedding_config(config: EmbeddingConfigIn | None, base: dict[str, Any] | None = None) -> dict:
    """The model and chunking to embed with (never the API key: that is sealed apart)."""
    merged = dict(base or {"provider": "local", "model": "all-MiniLM-L6-v2"})
    if config is not None:
        merged.update(config.model_dump(exclude_none=True, exclude={"apiKey"}))
    try:
        return validate_embedding(merged)
    except (UnknownEmbeddingModel, ValueError) as error:
        raise _bad(f"embedding: {error}") from error


def source_auth_of(
    svc: Services, source_type: str, data: dict[str, Any] | None, *, required: bool
) -> dict[str, Any]:
    """The asset column for the request's `auth`, sealed (400 naming the field otherwise)."""
    kind = SOURCE_TYPES[source_type]
    if data is None:
        if required and kind.auth_methods:
            methods = ", ".join(kind.auth_methods)
            raise _bad(f"auth: required for {source_type} assets (methods: {methods})")
        return {}
    if not kind.auth_methods:
        raise _bad(f"auth: {source_type} assets take no credentials")
    try:
        auth = parse_source_auth(data, kind.auth_methods, needs_email=kind.auth_needs_email)
    except InvalidSourceAuth as error:
        raise _bad(str(error)) from error
    return {"source_auth": secret_box(svc.settings).seal(auth.sealed_json())}


def requested_embedding(
    svc: Services, tenant: str, config: EmbeddingConfigIn | None, body: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new asset's embedding config, and the columns of its credentials (the config's
    `apiKey`, the LLM config id of ``body``)."""
    embedding = embedding_config(config)
    credentials = embedding_credentials(
        svc,
        tenant,
        embedding["provider"],
        api_key=config.apiKey if config else None,
        llm_config=llm_config_field(body) if body is not None else None,
    )
    return embedding, credentials


def embedding_credentials(
    svc: Services,
    tenant: str,
    provider: str,
    *,
    api_key: str | None = None,
    llm_config: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """The asset columns for the request's embedding credentials: the API key sealed, the LLM
    config checked to be the tenant's and for this provider. ``llm_config`` is the request's
    (field name, value); a None value clears it. 400 naming the field otherwise."""
    columns: dict[str, Any] = {}
    if api_key is not None:
        if provider not in KEYED_PROVIDERS:
            raise _bad(f"embedding.apiKey: the {provider!r} provider takes no API key")
        if not api_key.strip():
            raise _bad("embedding.apiKey must not be empty")
        columns["embedding_api_key"] = secret_box(svc.settings).seal(api_key)
    if llm_config is not None:
        field, config_id = llm_config
        if config_id is None:
            columns["embedding_llm_config_id"] = None
            return columns
        config = svc.catalog.get_llm_config(parse_uuid(config_id, field))
        if config is None or config.tenant != tenant:
            raise _bad(f"{field}: no LLM config {config_id!r} in this tenant")
        if config.provider != provider:
            raise _bad(
                f"{field}: the LLM config is for {config.provider!r}, the asset embeds with "
                f"{provider!r}"
            )
        columns["embedding_llm_config_id"] = config.id
    return columns


def shown(svc: Services, asset: KnowledgeAsset) -> AssetOut:
    """The asset as the API shows it, with its budget's spending so far."""
    return asset_out(asset, svc.catalog.token_usage(asset.id, now_ms()))


def budget_of(current: dict | None, body: Any) -> dict[str, Any] | None:
    """The asset's budget after the request's `budget` and `currencyBudget` (400 if invalid)."""
    if body.budget is None and body.currencyBudget is None:
        return current
    try:
        return merged_budget(current, body.budget, body.currencyBudget)
    except InvalidBudget as error:
        raise _bad(str(error)) from error


def auto_update_of(source_type: str, data: dict[str, Any] | None) -> AutoUpdateConfig | None:
    """The request's auto-update config, checked against the source type (400 naming the
    field otherwise)."""
    if data is None:
        return None
    try:
        config = parse_auto_update(data)
        check_auto_update(source_type, config)
    except InvalidAutoUpdate as error:
        raise _bad(str(error)) from error
    return config


def _apply_auto_update(
    svc: Services, asset: KnowledgeAsset, config: AutoUpdateConfig | None
) -> tuple[KnowledgeAsset, WebhookRegistrationOut | None]:
    """The asset after its auto-update config is stored, and the webhook to show once, if one
    was minted."""
    if config is None:
        return asset, None
    minted = set_auto_update(svc.settings, svc.catalog, asset, config)
    webhook = webhook_out(minted, svc.settings.api_base_url) if minted else None
    return svc.catalog.get_asset(asset.id), webhook


def _start(svc: Services, asset: KnowledgeAsset, kind: str, who: str, **request: Any):
    operation = svc.catalog.create_operation(
        asset_id=asset.id, tenant=asset.tenant, type=kind, created_by=who, request=request
    )
    svc.runs.launch(svc.catalog, operation)
    return long_operation(operation, svc.runs.state(operation, runs={}))


def create_and_ingest(
    svc: Services,
    tenant: str,
    name: str,
    source_type: str,
    parameters: dict,
    embedding: dict,
    who: str,
    asset_id: str | None = None,
    auto_update: AutoUpdateConfig | None = None,
    budget: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    selection: str | None = None,
) -> AssetWithOperation:
    asset = svc.catalog.create_asset(
        asset_id=asset_id,
        tenant=tenant,
        name=name,
        source_type=source_type,
        source_config=parameters,
        embedding_config=embedding,
        budget=budget,
        selection=selection or "ALL",
        **(credentials or {}),
    )
    if asset.selection == "REGISTERED" and source_type == "web":
        register_start_urls(svc, asset)
    asset, webhook = _apply_auto_update(svc, asset, auto_update)
    svc.runs.add_partition(asset.id)  # before any run names the partition
    operation = _start(svc, asset, "INGEST", who, documentIds=[], force=False)
    return AssetWithOperation(asset=shown(svc, asset), longOperation=operation, webhook=webhook)


@router.post("/assets", response_model=AssetWithOperation)
def create_asset(tenant: str, body: CreateAssetRequest, principal: Writer, svc: Svc):
    """Create a knowledge asset from a source configuration and start its first ingestion."""
    source_type = body.config.sourceType
    if source_type == "file":
        raise _bad("file assets are created with POST /assets:file or /assets:import")
    try:
        params = validate_parameters(source_type, body.config.parameters)
    except InvalidSourceConfig as error:
        raise _bad(str(error)) from error
    embedding, credentials = requested_embedding(svc, tenant, body.embedding, body)
    credentials |= source_auth_of(svc, source_type, body.auth, required=True)
    auto_update = auto_update_of(source_type, body.autoUpdate)
    budget = budget_of(None, body)
    name = body.name or _default_name(source_type, params.model_dump())
    return create_and_ingest(
        svc,
        tenant,
        name,
        source_type,
        params.model_dump(),
        embedding,
        principal.subject,
        auto_update=auto_update,
        budget=budget,
        credentials=credentials,
        selection=body.selection,
    )


def register_start_urls(svc: Services, asset: KnowledgeAsset) -> None:
    """A web asset that ingests only registered pages starts with its start URLs."""
    urls = [u for u in (normalize_url(raw) for raw in asset.source_config["urls"]) if u]
    svc.catalog.register_documents(asset.id, [(u, {"source_url": u}) for u in urls])


def llm_config_field(body: Any) -> tuple[str, str | None] | None:
    """(field name, value) of the request's LLM config id, if it sent one. Create spells it
    `embeddingLLMConfigId` in Fruxon's docs and every other request `embeddingLlmConfigId`;
    both are taken everywhere."""
    for field in ("embeddingLLMConfigId", "embeddingLlmConfigId"):
        if field in body.model_fields_set:
            return field, getattr(body, field)
    return None


def _default_name(source_type: str, parameters: dict) -> str:
    urls = parameters.get("urls") or []
    return urls[0] if urls else source_type


def store_upload(svc: Services, upload: UploadFile, target: Path) -> int:
    """Copy the upload to disk in 1 MiB pieces, refusing past the size limit."""
    limit = svc.settings.max_upload_bytes
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        while piece := upload.file.read(COPY_CHUNK):
            written += len(piece)
            if written > limit:
                out.close()
                shutil.rmtree(target.parent, ignore_errors=True)
                raise Problem(
                    413, "Content Too Large", f"the file is larger than {limit // 2**20} MB"
                )
            out.write(piece)
    return written


def upload_name_and_type(upload: UploadFile) -> tuple[str, str]:
    """The upload's file name and media type, or 400/415 when it has none we can parse."""
    file_name = Path(upload.filename or "").name
    if not file_name:
        raise _bad("the File part has no file name")
    content_type = content_type_for(file_name)
    if content_type is None:
        supported = ", ".join(sorted(e for exts in SUPPORTED_CONTENT_TYPES.values() for e in exts))
        raise Problem(
            415, "Unsupported Media Type", f"{file_name}: supported extensions are {supported}"
        )
    return file_name, content_type


@router.post("/assets:file", response_model=AssetWithOperation)
def upload_file_asset(
    tenant: str,
    request: Request,
    principal: Writer,
    svc: Svc,
    File_: Annotated[UploadFile, File(alias="File")],
    Payload: Annotated[str, Form()] = "{}",
):
    """Upload one file (≤ 50 MB); it becomes a file asset and its ingestion starts."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > svc.settings.max_upload_bytes + 1024 * 1024:
        raise Problem(413, "Content Too Large", "the upload is larger than 50 MB")
    try:
        payload = FilePayload.model_validate(json.loads(Payload or "{}"))
    except (json.JSONDecodeError, ValidationError) as error:
        raise _bad(f"Payload is not valid JSON for this endpoint: {error}") from error
    if not payload.Vectorize:
        raise _bad("Vectorize=false (storing without indexing) is not supported yet")
    file_name, content_type = upload_name_and_type(File_)
    embedding, credentials = requested_embedding(svc, tenant, payload.EmbeddingConfig)
    asset_id = str(uuid.uuid4())
    relative = f"{asset_id}/{file_name}"
    size = store_upload(svc, File_, svc.settings.files_dir / relative)
    if size == 0:
        shutil.rmtree(svc.settings.files_dir / asset_id, ignore_errors=True)
        raise _bad("the file is empty")
    parameters = {"path": relative, "fileName": file_name, "contentType": content_type}
    name = payload.DisplayName or payload.Name or file_name
    return create_and_ingest(
        svc,
        tenant,
        name,
        "file",
        parameters,
        embedding,
        principal.subject,
        asset_id=asset_id,
        credentials=credentials,
    )


@router.get("/assets", response_model=Page[AssetOut])
def list_assets(
    tenant: str, principal: Reader, svc: Svc, paging: Paging, search: str | None = None
):
    assets = [a for a in svc.catalog.list_assets(tenant) if a.status != "DELETING"]
    if search:
        assets = [a for a in assets if search.lower() in a.name.lower()]
    assets.sort(key=lambda a: a.created_at, reverse=True)
    return Page[AssetOut](
        items=[shown(svc, a) for a in paging.window(assets)],
        nextPageToken=paging.next_token(len(assets)),
        totalCount=len(assets),
    )


@router.get("/assets/{asset}", response_model=AssetOut)
def get_asset(tenant: str, asset: str, principal: Reader, svc: Svc):
    return shown(svc, load_asset(svc, tenant, asset))


@router.patch("/assets/{asset}", response_model=AssetWithOperation)
def patch_asset(tenant: str, asset: str, body: PatchAssetRequest, principal: Writer, svc: Svc):
    """Update settings; changing the model or the chunking re-ingests the asset."""
    current = load_asset(svc, tenant, asset)
    changes: dict[str, Any] = {}
    budget = budget_of(current.budget, body)
    if budget != current.budget:
        changes["budget"] = budget  # applies to the next batch or search; nothing re-ingests
    if body.disableAutoUpdate:  # wins over autoUpdate, which is then not even read
        auto_update: AutoUpdateConfig | None = AutoUpdateConfig()
    else:
        auto_update = auto_update_of(current.source_type, body.autoUpdate)
    if body.selection is not None and body.selection != current.selection:
        changes["selection"] = body.selection  # applies from the next refresh
    if body.displayName is not None:
        if not body.displayName.strip():
            raise _bad("displayName must not be empty")
        changes["name"] = body.displayName
    reingest = refresh = False
    if body.embedding is not None:
        embedding = embedding_config(body.embedding, current.embedding_config)
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
    changes |= source_auth_of(svc, current.source_type, body.auth, required=False)
    # A new key or LLM config changes who pays, not the vectors: nothing re-ingests.
    changes |= embedding_credentials(
        svc,
        tenant,
        changes.get("embedding_config", current.embedding_config)["provider"],
        api_key=body.embedding.apiKey if body.embedding else None,
        llm_config=llm_config_field(body),
    )
    if body.sourceConfig is not None:
        try:
            params = validate_parameters(current.source_type, body.sourceConfig)
        except InvalidSourceConfig as error:
            raise _bad(str(error)) from error
        if current.source_type == "file" and params.model_dump().get("path") != (
            current.source_config.get("path")
        ):
            # The stored file is the asset's own upload; pointing elsewhere could reach another
            # tenant's file.
            raise _bad("the path of a file asset cannot change; upload a new file instead")
        refresh = params.model_dump() != current.source_config
        changes["source_config"] = params.model_dump()
    if (reingest or refresh) and _active_operations(svc, current.id, limit=20):
        raise _busy()
    updated = svc.catalog.update_asset(current.id, **changes) if changes else current
    updated, webhook = _apply_auto_update(svc, updated, auto_update)
    operation = None
    if reingest:
        operation = _start(svc, updated, "INGEST", principal.subject, documentIds=[], force=True)
    elif refresh:
        operation = _start(svc, updated, "REFRESH", principal.subject, documentIds=[], force=False)
    return AssetWithOperation(asset=shown(svc, updated), longOperation=operation, webhook=webhook)


@router.post("/assets/{asset}:regenerateWebhook", response_model=WebhookRegistrationOut)
def regenerate_webhook(tenant: str, asset: str, principal: Writer, svc: Svc):
    """Rotate the asset's webhook: a new URL (and secret) shown once; the old one stops now."""
    current = load_asset(svc, tenant, asset)
    config = AutoUpdateConfig.model_validate(current.auto_update or {})
    if config.strategy != "WEBHOOK":
        raise _bad("the asset has no webhook auto-update (set autoUpdate.strategy to WEBHOOK)")
    minted = rotate_webhook(svc.settings, svc.catalog, current.id, config)
    return webhook_out(minted, svc.settings.api_base_url)


@router.delete("/assets/{asset}", status_code=204)
def delete_asset(tenant: str, asset: str, principal: Writer, svc: Svc) -> Response:
    """Remove the asset, its documents, its vectors and its partition; stop its runs."""
    current = load_asset(svc, tenant, asset)
    svc.catalog.update_asset(current.id, status="DELETING")
    active = _active_operations(svc, current.id)
    for operation in active:
        svc.runs.cancel(svc.catalog, operation)
    # A running batch finishes before its run stops; wait (briefly) so it writes nothing after
    # the vectors are gone. The run also stops itself at its next batch once it sees DELETING.
    deadline = time.monotonic() + DELETE_WAIT_SECONDS
    while active and time.monotonic() < deadline:
        runs = svc.runs.runs_of_asset(current.id)
        active = [op for op in active if svc.runs.state(op, runs).status == "RUNNING"]
        if active:
            time.sleep(0.25)
    svc.vectors.delete_asset(tenant, current.id)
    svc.runs.delete_partition(current.id)
    svc.catalog.delete_asset(current.id)
    shutil.rmtree(svc.settings.files_dir / current.id, ignore_errors=True)
    return Response(status_code=204)


def _active_operations(svc: Services, asset_id: str, limit: int | None = None) -> list:
    """The asset's PENDING or RUNNING operations, newest first, from one read of its runs."""
    runs = svc.runs.runs_of_asset(asset_id)
    return [
        op
        for op in svc.catalog.list_operations(asset_id, limit=limit)
        if svc.runs.state(op, runs).status in ACTIVE
    ]


def _busy() -> Problem:
    return Problem(
        429,
        "Too Many Requests",
        "another operation of this asset is pending or running; retry when it is done",
        headers={"Retry-After": "5"},
    )


@router.post("/assets/{asset}:refresh", response_model=AssetWithOperation)
def refresh_asset(
    tenant: str, asset: str, principal: Writer, svc: Svc, body: RefreshRequest | None = None
):
    """Re-fetch and re-ingest (only `documentIds` when given); one operation at a time."""
    current = load_asset(svc, tenant, asset)
    svc.limits.take(REFRESH, tenant)
    body = body or RefreshRequest()
    document_ids = body.documentIds or []
    if document_ids:
        ids = [parse_uuid(d, "document") for d in document_ids]
        known = {d.id for d in svc.catalog.documents_by_id(current.id, ids)}
        missing = [d for d in ids if d not in known]
        if missing:
            raise Problem(404, "Not Found", f"documents not in this asset: {', '.join(missing)}")
        document_ids = ids
    if _active_operations(svc, current.id, limit=20):
        raise _busy()
    kind, extra = ("DRY_RUN", {"dryRun": True}) if body.dryRun else ("REFRESH", {})
    operation = _start(
        svc,
        current,
        kind,
        principal.subject,
        documentIds=document_ids,
        force=bool(body.force),
        **extra,
    )
    return AssetWithOperation(asset=shown(svc, current), longOperation=operation)


@router.get("/assets/{asset}/usage", response_model=UsageOut)
def asset_usage(tenant: str, asset: str, principal: Reader, svc: Svc):
    current = load_asset(svc, tenant, asset)
    documents = svc.catalog.documents_by_key(current.id).values()
    return UsageOut(
        assetId=current.id,
        totalTokenCount=sum(d.token_count for d in documents),
        totalChunkCount=sum(d.chunk_count for d in documents),
        operationCount=len(svc.catalog.list_operations(current.id)),
    )
