"""Documents of an asset: their stable ids, their state per operation, and their text."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fruxon_pipelines.catalog.db import Database
from fruxon_pipelines.catalog.models import Document, DocumentText, KnowledgeAsset


def document_id_for(asset_id: str, source_key: str) -> str:
    """uuid5(asset id as UUID, source key): the same document keeps its id across refreshes."""
    return str(uuid.uuid5(uuid.UUID(asset_id), source_key))


def _batches(items: list, size: int = 500) -> Iterator[list]:
    """``items`` in slices that keep an IN list under SQLite's bound-parameter limit."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _set_document(
    session: Session, asset_id: str, source_key: str, fields: dict[str, Any]
) -> Document:
    """The document of (asset, source key) in this session, created if new, with ``fields``."""
    document_id = document_id_for(asset_id, source_key)
    document = session.get(Document, document_id)
    if document is None:
        document = Document(id=document_id, asset_id=asset_id, source_key=source_key)
        session.add(document)
    for name, value in fields.items():
        setattr(document, name, value)
    return document


class DocumentsRepo(Database):
    def documents_by_key(self, asset_id: str) -> dict[str, Document]:
        rows = self._all(select(Document).where(Document.asset_id == asset_id))
        return {row.source_key: row for row in rows}

    def documents_by_id(self, asset_id: str, document_ids: Iterable[str]) -> list[Document]:
        ids = list(document_ids)
        return self._all(
            select(Document).where(Document.asset_id == asset_id, Document.id.in_(ids))
        )

    def titles_of(self, document_ids: Iterable[str]) -> dict[str, str | None]:
        """The documents' titles by id (search hits name their document by it)."""
        ids = list(document_ids)
        with self.session() as session:
            rows = session.execute(select(Document.id, Document.title).where(Document.id.in_(ids)))
            return {document_id: title for document_id, title in rows}

    def upsert_document(self, asset_id: str, source_key: str, **fields: Any) -> Document:
        """Create or update the document of (asset, source key); returns the stored row."""
        with self.session() as session:
            document = _set_document(session, asset_id, source_key, fields)
            session.flush()
            return document

    def delete_documents(self, document_ids: Iterable[str]) -> None:
        ids = list(document_ids)
        if ids:
            self._run(delete(Document).where(Document.id.in_(ids)))

    def register_documents(
        self, asset_id: str, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[str], list[str]]:
        """Documents picked to be ingested, by source key with their metadata: new ones are
        created PENDING, known ones get the metadata. Returns (added ids, updated ids)."""
        try:
            return self._register_documents(asset_id, items)
        except IntegrityError:  # a concurrent registration won the insert: now it is an update
            return self._register_documents(asset_id, items)

    def _register_documents(
        self, asset_id: str, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[str], list[str]]:
        added, updated = [], []
        with self.savepoint() as session:
            for source_key, fields in items:
                document_id = document_id_for(asset_id, source_key)
                document = session.get(Document, document_id)
                if document is None:
                    document = Document(
                        id=document_id, asset_id=asset_id, source_key=source_key, status="PENDING"
                    )
                    session.add(document)
                    added.append(document_id)
                elif document_id not in added and document_id not in updated:
                    updated.append(document_id)
                for name, value in fields.items():
                    setattr(document, name, value)
                session.flush()
        return added, updated

    def settle_documents(
        self, asset_id: str, source_keys: Iterable[str], operation_id: str, **fields: Any
    ) -> None:
        """Record that ``operation_id`` read these documents and found what ``fields`` say, in
        one statement per 500 (not one per document). ``modified_at`` stays: reading a document
        again is no change of it."""
        keys = list(source_keys)
        values = {
            "outcome_operation_id": operation_id,
            "modified_at": Document.modified_at,
            **fields,
        }
        with self.session() as session:
            for batch in _batches(keys):
                session.execute(
                    update(Document)
                    .where(Document.asset_id == asset_id, Document.source_key.in_(batch))
                    .values(**values)
                )

    def link_documents(self, document_ids: Iterable[str], operation_id: str) -> None:
        """These documents are what ``operation_id`` was asked to take on."""
        with self.session() as session:
            for batch in _batches(list(document_ids)):
                session.execute(
                    update(Document)
                    .where(Document.id.in_(batch))
                    .values(operation_id=operation_id, modified_at=Document.modified_at)
                )

    def complete_document(
        self, asset_id: str, source_key: str, paragraphs: list[str], **fields: Any
    ) -> Document:
        """The document's indexed state and its paragraphs, in one transaction: a reader never
        sees it COMPLETED without its text. When it changed (``fields["changed"]``) the
        paragraphs it replaces are kept as the previous ones."""
        with self.session() as session:
            document = _set_document(session, asset_id, source_key, fields)
            text = session.get(DocumentText, document.id)
            if text is None:
                session.add(
                    DocumentText(
                        document_id=document.id, paragraphs=paragraphs, previous_paragraphs=[]
                    )
                )
            else:
                if fields.get("changed"):
                    text.previous_paragraphs = text.paragraphs
                text.paragraphs = paragraphs
            session.flush()
            return document

    def document_texts(self, document_ids: Iterable[str]) -> dict[str, DocumentText]:
        ids = list(document_ids)
        rows = self._all(select(DocumentText).where(DocumentText.document_id.in_(ids)))
        return {row.document_id: row for row in rows}

    def indexed_chunk_counts(self, asset_id: str) -> dict[str, int]:
        """Chunk count the catalog expects in the index, per COMPLETED document."""
        with self.session() as session:
            rows = session.execute(
                select(Document.id, Document.chunk_count).where(
                    Document.asset_id == asset_id, Document.status == "COMPLETED"
                )
            )
            return {document_id: count for document_id, count in rows}

    def count_documents(self, asset_id: str) -> int:
        with self.session() as session:
            return session.scalar(
                select(func.count()).select_from(Document).where(Document.asset_id == asset_id)
            )

    # A tenant's documents across its assets (the sources API) -------------------------------

    def tenant_documents(
        self, tenant: str, document_ids: Iterable[str]
    ) -> dict[str, tuple[Document, KnowledgeAsset]]:
        """The tenant's documents among ``document_ids`` (of assets not being deleted)."""
        query = _tenant_documents_query(tenant).where(Document.id.in_(list(document_ids)))
        with self.session() as session:
            return {doc.id: (doc, asset) for doc, asset in session.execute(query)}

    def tenant_documents_by_key(
        self, tenant: str, source_type: str, source_keys: Iterable[str]
    ) -> dict[str, tuple[Document, KnowledgeAsset]]:
        """The tenant's documents of ``source_type`` assets with these source keys; where two
        assets hold one key, the asset created first."""
        query = (
            _tenant_documents_query(tenant)
            .where(
                KnowledgeAsset.source_type == source_type,
                Document.source_key.in_(list(source_keys)),
            )
            .order_by(KnowledgeAsset.created_at.desc())  # the first-created asset's row wins
        )
        with self.session() as session:
            return {doc.source_key: (doc, asset) for doc, asset in session.execute(query)}

    def tenant_documents_page(
        self,
        tenant: str,
        *,
        limit: int,
        after: Document | None = None,
        newer: bool = False,
        source_types: Iterable[str] | None = None,
        document_id: str | None = None,
        title: str | None = None,
        url: str | None = None,
        changed: bool | None = None,
    ) -> tuple[list[tuple[Document, KnowledgeAsset]], bool]:
        """One page of the tenant's documents, newest change first (``modified_at``, then
        source key, then id, all descending), and whether more follow in that direction.

        ``after``: the page starts beyond this document — toward older ones, or toward newer
        ones when ``newer`` (the page is still returned newest first)."""
        order = (Document.modified_at, Document.source_key, Document.id)
        query = _tenant_documents_query(tenant)
        if source_types is not None:
            query = query.where(KnowledgeAsset.source_type.in_(list(source_types)))
        if document_id is not None:
            query = query.where(Document.id == document_id)
        if title:
            query = query.where(func.lower(Document.title).contains(title.lower(), autoescape=True))
        if url:
            query = query.where(
                func.lower(Document.source_url).contains(url.lower(), autoescape=True)
            )
        if changed is not None:
            query = query.where(Document.changed.is_(changed))
        if after is not None:
            mark = tuple_(*order)
            at = tuple_(after.modified_at, after.source_key, after.id)
            query = query.where(mark > at if newer else mark < at)
        if newer:
            query = query.order_by(*(c.asc() for c in order))
        else:
            query = query.order_by(*(c.desc() for c in order))
        with self.session() as session:
            rows = [tuple(row) for row in session.execute(query.limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        if newer:
            rows.reverse()
        return rows, more


def _tenant_documents_query(tenant: str) -> Select[tuple[Document, KnowledgeAsset]]:
    """(document, asset) rows of the tenant's assets that are not being deleted."""
    return (
        select(Document, KnowledgeAsset)
        .join(KnowledgeAsset, KnowledgeAsset.id == Document.asset_id)
        .where(KnowledgeAsset.tenant == tenant, KnowledgeAsset.status != "DELETING")
    )
