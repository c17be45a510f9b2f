"""Documents of an asset, and their chunks."""

from fastapi import APIRouter, Response

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Paging, Services, Svc, load_asset, parse_uuid
from fruxon_api.present import chunk_out, document_out
from fruxon_api.problems import Problem, not_found
from fruxon_api.schemas import ChunkPage, DocumentOut, Page
from fruxon_pipelines.catalog.models import Document, KnowledgeAsset, serving_model_config
from fruxon_pipelines.vectors import VectorStore

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["documents"])


def _indexed_asset(svc: Services, tenant: str, asset: str) -> KnowledgeAsset:
    current = load_asset(svc, tenant, asset)
    if current.processed_at is None:
        raise Problem(404, "Not Found", f"asset {asset} has not completed an ingestion yet")
    return current


def _document(svc: Services, asset: KnowledgeAsset, document_id: str) -> Document:
    found = svc.catalog.documents_by_id(asset.id, [parse_uuid(document_id, "document")])
    if not found:
        raise not_found(f"document {document_id}")
    return found[0]


@router.get("/documents", response_model=Page[DocumentOut])
def list_documents(
    tenant: str, asset: str, principal: Reader, svc: Svc, paging: Paging, search: str | None = None
):
    current = _indexed_asset(svc, tenant, asset)
    documents = sorted(
        svc.catalog.documents_by_key(current.id).values(), key=lambda d: d.created_at
    )
    if search:
        needle = search.lower()
        documents = [
            d
            for d in documents
            if any(needle in (v or "").lower() for v in (d.file_name, d.title, d.source_url))
        ]
    return Page[DocumentOut](
        items=[document_out(d) for d in paging.window(documents)],
        nextPageToken=paging.next_token(len(documents)),
        totalCount=len(documents),
    )


@router.get("/documents/{document}", response_model=DocumentOut)
def get_document(tenant: str, asset: str, document: str, principal: Reader, svc: Svc):
    current = load_asset(svc, tenant, asset)
    return document_out(_document(svc, current, document))


@router.delete("/documents/{document}", status_code=204)
def delete_document(tenant: str, asset: str, document: str, principal: Writer, svc: Svc):
    """Removes the document's chunks from the vector and full-text index, then the document."""
    current = load_asset(svc, tenant, asset)
    found = _document(svc, current, document)
    svc.vectors.delete_documents(tenant, [found.id])
    svc.catalog.delete_documents([found.id])
    return Response(status_code=204)


@router.get("/documents/{document}/chunks", response_model=ChunkPage)
def list_chunks(
    tenant: str, asset: str, document: str, principal: Reader, svc: Svc, paging: Paging
):
    current = load_asset(svc, tenant, asset)
    found = _document(svc, current, document)
    serving = serving_model_config(current)
    rows = svc.vectors.chunks_of_document(
        tenant, found.id, VectorStore.HIT_COLUMNS, f"{serving['provider']}/{serving['model']}"
    )
    rows.sort(key=lambda r: r["chunk_index"])
    return ChunkPage(
        documentId=found.id,
        chunks=[chunk_out(r) for r in paging.window(rows)],
        totalChunks=len(rows),
        nextPageToken=paging.next_token(len(rows)),
    )
