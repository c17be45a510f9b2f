"""Uploads kept in storage until `POST /assets:import` turns them into file assets.

Temporary uploads (`?temporary=true`) are swept a day after upload unless imported; the sweep
runs on start and with every upload, so it costs nothing when idle.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import Field

from fruxon_api.auth import Writer
from fruxon_api.deps import Services, Svc, parse_uuid
from fruxon_api.problems import Problem, not_found
from fruxon_api.routers.assets import (
    create_and_ingest,
    requested_embedding,
    store_upload,
    upload_name_and_type,
)
from fruxon_api.schemas import AssetWithOperation, EmbeddingConfigIn, Request, Wire
from fruxon_pipelines.catalog.models import StoredFile, now_ms

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["storage"])
TEMPORARY_LIFETIME_MS = 24 * 3600 * 1000


class FileLink(Wire):
    id: str
    fileName: str
    contentType: str | None
    size: int
    status: str
    createdAt: int
    expiresAt: int | None


class ImportRequest(Request):
    fileId: str = Field(min_length=1)
    vectorize: bool = True
    embeddingConfig: EmbeddingConfigIn | None = None
    embeddingLlmConfigId: str | None = None


def sweep_temporary_uploads(svc: Services) -> int:
    """Delete temporary uploads older than a day; returns how many went."""
    expired = svc.catalog.expired_temporary_files(now_ms() - TEMPORARY_LIFETIME_MS)
    for stored in expired:
        shutil.rmtree(Path(svc.settings.uploads_dir) / stored.id, ignore_errors=True)
        svc.catalog.delete_stored_file(stored.id)
    return len(expired)


def _link(stored: StoredFile) -> FileLink:
    return FileLink(
        id=stored.id,
        fileName=stored.file_name,
        contentType=stored.content_type,
        size=stored.size,
        status="TEMPORARY" if stored.temporary else "RETAINED",
        createdAt=stored.created_at,
        expiresAt=stored.created_at + TEMPORARY_LIFETIME_MS if stored.temporary else None,
    )


@router.post("/storage", response_model=FileLink)
def upload_to_storage(
    tenant: str,
    principal: Writer,
    svc: Svc,
    File_: Annotated[UploadFile, File(alias="File")],
    temporary: Annotated[bool, Query()] = False,
):
    sweep_temporary_uploads(svc)
    file_name, content_type = upload_name_and_type(File_)
    file_id = str(uuid.uuid4())
    relative = f"{file_id}/{file_name}"
    size = store_upload(svc, File_, Path(svc.settings.uploads_dir) / relative)
    stored = svc.catalog.add_stored_file(
        StoredFile(
            id=file_id,
            tenant=tenant,
            file_name=file_name,
            content_type=content_type,
            size=size,
            path=relative,
            temporary=temporary,
        )
    )
    return _link(stored)


@router.post("/assets:import", response_model=AssetWithOperation)
def import_file_asset(tenant: str, body: ImportRequest, principal: Writer, svc: Svc):
    """Create a file asset from an uploaded file (which is retained from then on)."""
    if not body.vectorize:
        raise Problem(400, "Bad Request", "vectorize=false is not supported yet")
    stored = svc.catalog.get_stored_file(parse_uuid(body.fileId, "fileId"))
    if stored is None or stored.tenant != tenant:
        raise not_found(f"file {body.fileId}")
    embedding, credentials = requested_embedding(svc, tenant, body.embeddingConfig, body)
    svc.catalog.retain_stored_file(stored.id)
    asset_id = str(uuid.uuid4())
    relative = f"{asset_id}/{stored.file_name}"
    target = svc.settings.files_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(svc.settings.uploads_dir) / stored.path, target)
    parameters = {
        "path": relative,
        "fileName": stored.file_name,
        "contentType": stored.content_type,
    }
    return create_and_ingest(
        svc,
        tenant,
        stored.file_name,
        "file",
        parameters,
        embedding,
        principal.subject,
        asset_id=asset_id,
        credentials=credentials,
    )
