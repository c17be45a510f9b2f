"""Documents of an asset, and their chunks as the index holds them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fruxon_pipelines.catalog.models import Document, KnowledgeAsset, serving_model_config
from fruxon_pipelines.services.errors import NotFound, parse_uuid

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services


def indexed_asset(asset: KnowledgeAsset, asset_id: str) -> KnowledgeAsset:
    """The asset, once it has completed an ingestion (NotFound before; ``asset_id`` as the
    request named it)."""
    if asset.processed_at is None:
        raise NotFound(f"asset {asset_id} has not completed an ingestion yet")
    return asset


def list_documents(
    svc: Services, asset: KnowledgeAsset, search: str | None = None
) -> list[Document]:
    """The asset's documents, oldest first (``search``: in their names, titles and URLs)."""
    documents = sorted(svc.catalog.documents_by_key(asset.id).values(), key=lambda d: d.created_at)
    if search:
        needle = search.lower()
        documents = [
            d
            for d in documents
            if any(needle in (v or "").lower() for v in (d.file_name, d.title, d.source_url))
        ]
    return documents


def load_document(svc: Services, asset: KnowledgeAsset, document_id: str) -> Document:
    found = svc.catalog.documents_by_id(asset.id, [parse_uuid(document_id, "document")])
    if not found:
        raise NotFound(f"document {document_id} does not exist")
    return found[0]


def delete_document(svc: Services, asset: KnowledgeAsset, document: Document) -> None:
    """The document's chunks leave the vector and full-text index, then the document goes."""
    svc.vectors.delete_documents(asset.tenant, [document.id])
    svc.catalog.delete_documents([document.id])


def chunks_of_document(
    svc: Services, asset: KnowledgeAsset, document: Document
) -> list[dict[str, Any]]:
    """The document's chunks of the embedding that serves searches, in order."""
    from fruxon_pipelines.vectors import VectorStore

    serving = serving_model_config(asset)
    rows = svc.vectors.chunks_of_document(
        asset.tenant,
        document.id,
        VectorStore.HIT_COLUMNS,
        f"{serving['provider']}/{serving['model']}",
    )
    rows.sort(key=lambda r: r["chunk_index"])
    return rows
