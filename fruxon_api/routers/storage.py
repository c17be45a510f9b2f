"""Uploads kept in storage until `POST /assets:import` turns them into file assets.

Temporary uploads (`?temporary=true`) are swept a day after upload unless imported; the sweep
runs on start and with every upload, so it costs nothing when idle.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from pydantic import Field

from fruxon_api.auth import Writer
from fruxon_api.deps import Svc
from fruxon_api.problems import Problem
from fruxon_api.routers.assets import answer, embedding_request, upload_name, upload_writer
from fruxon_client.models import AssetWithOperation, EmbeddingConfigIn, Request, Wire
from fruxon_pipelines.services import stored_files
from fruxon_pipelines.services.assets import AssetRequest
from fruxon_pipelines.services.stored_files import TEMPORARY_LIFETIME_MS

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["storage"])


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


def _link(stored: Any) -> FileLink:
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
    file_name = upload_name(File_)
    stored = stored_files.store_upload(
        svc, tenant, file_name, upload_writer(svc, File_), temporary=temporary
    )
    return _link(stored)


@router.post("/assets:import", response_model=AssetWithOperation)
def import_file_asset(tenant: str, body: ImportRequest, principal: Writer, svc: Svc):
    """Create a file asset from an uploaded file (which is retained from then on)."""
    if not body.vectorize:
        raise Problem(400, "Bad Request", "vectorize=false is not supported yet")
    new = AssetRequest(
        tenant=tenant,
        source_type="file",
        parameters={},
        created_by=principal.subject,
        embedding=embedding_request(body.embeddingConfig, body),
    )
    return answer(svc, stored_files.import_file_asset(svc, new, body.fileId))
