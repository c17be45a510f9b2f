"""Knowledge assets: create (from config or a file), list, read, update, delete, refresh.

Each route parses its request, calls one use case of ``fruxon_pipelines.services`` and
presents what it returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from pydantic import ValidationError

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import ApiServices, Paging, Svc, load_asset
from fruxon_api.present import asset_out, long_operation, webhook_out
from fruxon_api.problems import Problem, bad_request
from fruxon_api.ratelimit import REFRESH
from fruxon_client.models import (
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
from fruxon_pipelines.services import assets as asset_service
from fruxon_pipelines.services.assets import AssetChange, AssetPatch, AssetRequest
from fruxon_pipelines.services.assets import EmbeddingRequest as Embedding
from fruxon_pipelines.services.errors import TooLarge

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["assets"])
COPY_CHUNK = 1024 * 1024


def embedding_request(config: EmbeddingConfigIn | None, body: Any = None) -> Embedding | None:
    """The request's embedding members, API key and LLM config id, as the services take them."""
    llm_config = llm_config_field(body) if body is not None else None
    if config is None and llm_config is None:
        return None
    return Embedding(
        config=config.model_dump(exclude_none=True, exclude={"apiKey"}) if config else None,
        api_key=config.apiKey if config else None,
        llm_config=llm_config,
    )


def llm_config_field(body: Any) -> tuple[str, str | None] | None:
    """(field name, value) of the request's LLM config id, if it sent one. Create spells it
    `embeddingLLMConfigId` in Fruxon's docs and every other request `embeddingLlmConfigId`;
    both are taken everywhere."""
    for field in ("embeddingLLMConfigId", "embeddingLlmConfigId"):
        if field in body.model_fields_set:
            return field, getattr(body, field)
    return None


def shown(svc: ApiServices, asset: Any) -> AssetOut:
    """The asset as the API shows it, with its budget's spending so far."""
    return asset_out(asset, asset_service.token_usage(svc, asset))


def answer(svc: ApiServices, change: AssetChange) -> AssetWithOperation:
    operation = None
    if change.operation is not None:
        # Just written: PENDING, with no need to ask Dagster (runs={}).
        operation = long_operation(change.operation, svc.statuses.of(change.operation, runs={}))
    webhook = webhook_out(change.webhook, svc.settings.api_base_url) if change.webhook else None
    return AssetWithOperation(
        asset=shown(svc, change.asset), longOperation=operation, webhook=webhook
    )


@router.post("/assets", response_model=AssetWithOperation)
def create_asset(tenant: str, body: CreateAssetRequest, principal: Writer, svc: Svc):
    """Create a knowledge asset from a source configuration and start its first ingestion."""
    request = AssetRequest(
        tenant=tenant,
        source_type=body.config.sourceType,
        parameters=body.config.parameters,
        created_by=principal.subject,
        name=body.name,
        embedding=embedding_request(body.embedding, body),
        auth=body.auth,
        auto_update=body.autoUpdate,
        budget=body.budget,
        currency_budget=body.currencyBudget,
        selection=body.selection,
    )
    return answer(svc, asset_service.create_asset(svc, request))


def upload_writer(svc: ApiServices, upload: UploadFile):
    """Writes the upload to the path it is given in 1 MiB pieces, refusing past the limit."""
    limit = svc.settings.max_upload_bytes

    def place(target: Path) -> int:
        written = 0
        with target.open("wb") as out:
            while piece := upload.file.read(COPY_CHUNK):
                written += len(piece)
                if written > limit:
                    raise TooLarge(f"the file is larger than {limit // 2**20} MB")
                out.write(piece)
        return written

    return place


def upload_name(upload: UploadFile) -> str:
    file_name = Path(upload.filename or "").name
    if not file_name:
        raise bad_request("the File part has no file name")
    return file_name


@router.post("/assets:file", response_model=AssetWithOperation)
def upload_file_asset(
    tenant: str,
    request: Request,
    principal: Writer,
    svc: Svc,
    File_: Annotated[UploadFile, File(alias="File")],
    Payload: Annotated[str, Form()] = "{}",
):
    """Upload one file (up to FRUXON_MAX_UPLOAD_BYTES); it becomes a file asset and its
    ingestion starts."""
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise Problem(413, "Content Too Large", f"the upload is larger than {limit // 2**20} MB")
    try:
        payload = FilePayload.model_validate(json.loads(Payload or "{}"))
    except (json.JSONDecodeError, ValidationError) as error:
        raise bad_request(f"Payload is not valid JSON for this endpoint: {error}") from error
    if not payload.Vectorize:
        raise bad_request("Vectorize=false (storing without indexing) is not supported yet")
    file_name = upload_name(File_)
    content_type = asset_service.file_content_type(file_name)  # 415 before the body is read
    new = AssetRequest(
        tenant=tenant,
        source_type="file",
        parameters={},
        created_by=principal.subject,
        name=payload.DisplayName or payload.Name,
        embedding=embedding_request(payload.EmbeddingConfig),
    )
    change = asset_service.create_file_asset(
        svc, new, file_name, upload_writer(svc, File_), content_type, refuse_empty=True
    )
    return answer(svc, change)


@router.get("/assets", response_model=Page[AssetOut])
def list_assets(
    tenant: str, principal: Reader, svc: Svc, paging: Paging, search: str | None = None
):
    assets = asset_service.list_assets(svc, tenant, search)
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
    patch = AssetPatch(
        display_name=body.displayName,
        budget=body.budget,
        currency_budget=body.currencyBudget,
        embedding=embedding_request(body.embedding, body),
        source_config=body.sourceConfig,
        auto_update=body.autoUpdate,
        disable_auto_update=bool(body.disableAutoUpdate),
        auth=body.auth,
        selection=body.selection,
    )
    return answer(svc, asset_service.patch_asset(svc, current, patch, principal.subject))


@router.post("/assets/{asset}:regenerateWebhook", response_model=WebhookRegistrationOut)
def regenerate_webhook(tenant: str, asset: str, principal: Writer, svc: Svc):
    """Rotate the asset's webhook: a new URL (and secret) shown once; the old one stops now."""
    minted = asset_service.regenerate_webhook(svc, load_asset(svc, tenant, asset))
    return webhook_out(minted, svc.settings.api_base_url)


@router.delete("/assets/{asset}", status_code=204)
def delete_asset(tenant: str, asset: str, principal: Writer, svc: Svc) -> Response:
    """Remove the asset, its documents, its vectors and its partition; stop its runs."""
    asset_service.delete_asset(svc, load_asset(svc, tenant, asset))
    return Response(status_code=204)


@router.post("/assets/{asset}:refresh", response_model=AssetWithOperation)
def refresh_asset(
    tenant: str, asset: str, principal: Writer, svc: Svc, body: RefreshRequest | None = None
):
    """Re-fetch and re-ingest (only `documentIds` when given); one operation at a time."""
    current = load_asset(svc, tenant, asset)
    svc.limits.take(REFRESH, tenant)
    body = body or RefreshRequest()
    operation = asset_service.refresh_asset(
        svc,
        current,
        principal.subject,
        document_ids=body.documentIds,
        force=bool(body.force),
        dry_run=bool(body.dryRun),
    )
    return answer(svc, AssetChange(current, operation))


@router.get("/assets/{asset}/usage", response_model=UsageOut)
def asset_usage(tenant: str, asset: str, principal: Reader, svc: Svc):
    current = load_asset(svc, tenant, asset)
    usage = asset_service.asset_usage(svc, current)
    return UsageOut(
        assetId=current.id,
        totalTokenCount=usage.token_count,
        totalChunkCount=usage.chunk_count,
        operationCount=usage.operation_count,
    )
