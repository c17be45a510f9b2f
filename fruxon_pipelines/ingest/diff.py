"""Stage 2, diff: act on the change classification; record failures, remove what is gone.

A dry run stops after the classification (``fruxon_pipelines.ingest.changes``) and writes
nothing; a refresh writes what it says to the catalog and the index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fruxon_pipelines.catalog.models import Document, now_ms
from fruxon_pipelines.ingest.changes import Classification, classify
from fruxon_pipelines.ingest.manifests import ChangeSet, FetchManifest
from fruxon_pipelines.ingest.outcomes import mark_failed
from fruxon_pipelines.vectors import DocumentFields


def diff_documents(
    store: Any,
    vectors: Any,
    manifest: FetchManifest,
    *,
    log: logging.Logger,
    report: Callable[..., None],
) -> ChangeSet:
    """Classify ``manifest`` against the catalog and, unless it is a dry run, record it:
    removed documents are deleted from the catalog and the index, failures are written with
    their reason, and added or changed documents are PROCESSING until the embed stage ends them.
    ``report`` is the operation's progress reporter."""
    request = manifest.request
    known = store.documents_by_key(request.asset_id)
    classification = classify(manifest, known)
    changes = classification.change_set(manifest)
    if request.dry_run:
        return changes
    _remove(store, vectors, request, classification, known, log)
    _record(store, request, classification, known)
    # Unchanged content keeps its chunks, but a new title or modification time upstream (a
    # rename, a touch) still reaches them: search filters read both from the index.
    fields = _unchanged_document_fields(classification, known)
    if rewritten := vectors.refresh_document_fields(request.tenant, request.asset_id, fields):
        log.info(f"wrote a new title or modification time onto {rewritten} unchanged chunks")

    done = changes.unchanged + changes.failed + changes.removed
    listed_or_removed = {r.source_key for r in manifest.records} | set(changes.removed_keys)
    report(
        request.operation_id,
        force=True,
        items_total=len(listed_or_removed),
        items_processed=done,
    )
    return changes


def _remove(
    store: Any,
    vectors: Any,
    request: Any,
    classification: Classification,
    known: dict[str, Document],
    log: logging.Logger,
) -> None:
    """Documents gone upstream, chunks the catalog does not know, and the chunks of registered
    documents the source no longer has (their rows stay, FAILED)."""
    removed = classification.removed
    if removed:
        vectors.delete_documents(request.tenant, [d.id for d in removed])
        store.delete_documents([d.id for d in removed])
        log.info(f"removed {len(removed)} documents that are gone upstream")
    if request.orphan_ids and not request.partial:
        # Chunks of documents the catalog does not have (an interrupted delete), found by the
        # fetch stage: a full listing is the moment to know the catalog is the whole truth.
        vectors.delete_documents(request.tenant, request.orphan_ids)
        log.warning(
            f"removed the chunks of {len(request.orphan_ids)} documents the catalog does not have"
        )
    kept_gone = classification.gone_registered
    if kept_gone:
        gone_docs = [known[r.source_key] for r in kept_gone]
        vectors.delete_documents(request.tenant, [d.id for d in gone_docs])
        for record in kept_gone:
            mark_failed(
                store,
                request,
                record.source_key,
                record.error or "the source no longer has this item",
                content_hash=None,
                chunk_count=0,
                changed=False,
            )
        log.info(f"{len(kept_gone)} registered documents are gone at the source")


def _unchanged_document_fields(
    classification: Classification, known: dict[str, Document]
) -> dict[str, DocumentFields]:
    """Title and modification time, as the source lists them now, of each unchanged document."""
    fields = {}
    for record, verdict in classification.verdicts:
        previous = known.get(record.source_key)
        if verdict == "unchanged" and previous is not None:
            fields[previous.id] = DocumentFields(
                title=record.title or previous.title,
                modified_at=record.modified_ms,
                # for rows stored without a time: the closest the catalog keeps to when the
                # content was indexed
                indexed_at=previous.processed_at or previous.created_at,
            )
    return fields


def _record(
    store: Any, request: Any, classification: Classification, known: dict[str, Document]
) -> None:
    """Each listed document's verdict in the catalog, in listing order."""
    unchanged_keys: list[str] = []
    for record, verdict in classification.verdicts:
        previous = known.get(record.source_key)
        if verdict == "failed":
            # Keep what is indexed (a page that errors today may be back tomorrow); say why.
            mark_failed(
                store,
                request,
                record.source_key,
                record.error,
                source_url=record.source_url or (previous.source_url if previous else None),
                title=record.title or (previous.title if previous else None),
                file_name=record.file_name,
            )
        elif verdict == "unchanged":
            # Renamed upstream, the same content: hits show the new title.
            renamed = (
                {"title": record.title}
                if record.title and previous is not None and record.title != previous.title
                else {}
            )
            if record.status == "fetched":
                # New validators for the same bytes: the next refresh can be a 304.
                store.upsert_document(
                    request.asset_id,
                    record.source_key,
                    etag=record.etag,
                    last_modified=record.last_modified,
                    links=record.links,
                    processed_at=now_ms(),
                    **renamed,
                )
            elif renamed:
                store.upsert_document(request.asset_id, record.source_key, **renamed)
            unchanged_keys.append(record.source_key)
        elif verdict == "not_indexed":
            # 'unchanged' from the source but not indexed here (or forced): fetch again next run.
            mark_failed(
                store,
                request,
                record.source_key,
                "the source reported no change but the document is not indexed; "
                "refresh it with force",
            )
        else:  # added or changed: the chunk and embed stages take it from here
            store.upsert_document(
                request.asset_id,
                record.source_key,
                status="PROCESSING",
                error_message=None,
                source_url=record.source_url,
                title=record.title,
                file_name=record.file_name,
                content_type=(record.content_type or "").split(";")[0].strip() or None,
                file_size=record.size,
            )
    # Read again and found the same: not changed, and this operation's outcome.
    store.settle_documents(request.asset_id, unchanged_keys, request.operation_id, changed=False)
