"""Documents of an asset, and their chunks."""

from fastapi import APIRouter, Response

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Paging, Svc, load_asset
from fruxon_api.present import chunk_out, document_out
from fruxon_client.models import ChunkPage, DocumentOut, Page
from fruxon_pipelines.services import documents as document_service

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["documents"])


@router.get("/documents", response_model=Page[DocumentOut])
def list_documents(
    tenant: str, asset: str, principal: Reader, svc: Svc, paging: Paging, search: str | None = None
):
    current = document_service.indexed_asset(load_asset(svc, tenant, asset), asset)
    documents = document_service.list_documents(svc, current, search)
    return Page[DocumentOut](
        items=[document_out(d) for d in paging.window(documents)],
        nextPageToken=paging.next_token(len(documents)),
        totalCount=len(documents),
    )


@router.get("/documents/{document}", response_model=DocumentOut)
def get_document(tenant: str, asset: str, document: str, principal: Reader, svc: Svc):
    current = load_asset(svc, tenant, asset)
    return document_out(document_service.load_document(svc, current, document))


@router.delete("/documents/{document}", status_code=204)
def delete_document(tenant: str, asset: str, document: str, principal: Writer, svc: Svc):
    """Removes the document's chunks from the vector and full-text index, then the document."""
    current = load_asset(svc, tenant, asset)
    found = document_service.load_document(svc, current, document)
    document_service.delete_document(svc, current, found)
    return Response(status_code=204)


@router.get("/documents/{document}/chunks", response_model=ChunkPage)
def list_chunks(
    tenant: str, asset: str, document: str, principal: Reader, svc: Svc, paging: Paging
):
    current = load_asset(svc, tenant, asset)
    found = document_service.load_document(svc, current, document)
    rows = document_service.chunks_of_document(svc, current, found)
    return ChunkPage(
        documentId=found.id,
        chunks=[chunk_out(r) for r in paging.window(rows)],
        totalChunks=len(rows),
        nextPageToken=paging.next_token(len(rows)),
    )
