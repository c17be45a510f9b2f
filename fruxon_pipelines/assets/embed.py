"""Stage 4, embed: embed only new content, upsert into LanceDB, finish documents in the catalog.

Work goes in batches. Each batch is one embedder call and one LanceDB commit, followed by the
catalog rows of the documents it completed. A cancel that arrives during a batch is held until
the batch is persisted, so the run stops between batches and what was written stays. Every write
is idempotent (chunk ids derive from document id and content), so a rerun never duplicates.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import dagster as dg
import numpy as np

from fruxon_pipelines.assets.manifests import ChunkedDocument, ChunkManifest
from fruxon_pipelines.budgets import BudgetExceeded, MeteredEmbedder, token_limits
from fruxon_pipelines.catalog.models import now_ms
from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.chunking import Chunk
from fruxon_pipelines.credentials import embedding_api_key
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.errors import BUDGET, CategorizedError, failing_with_category
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import (
    CatalogResource,
    EmbeddingResource,
    OperationProgress,
    SecretsResource,
    VectorStoreResource,
)
from fruxon_pipelines.vectors import ChunkRow


def chunk_id_for(document_id: str, content_hash: str, occurrence: int, model_key: str) -> str:
    """Same document, content and model → same id, so an unchanged chunk keeps its id and
    vector; another model's vectors of it are other rows, which serve until a change is done."""
    return str(uuid.uuid5(uuid.UUID(document_id), f"{content_hash}:{occurrence}:{model_key}"))


@contextmanager
def persisted_before_cancel() -> Iterator[None]:
    """Hold a cancel (SIGINT from the run worker) until the block is done, then honour it."""
    from dagster._core.errors import DagsterExecutionInterruptedError
    from dagster._utils.interrupts import capture_interrupts, check_captured_interrupt

    interrupted = False
    with capture_interrupts():
        yield
        interrupted = check_captured_interrupt()
    if interrupted:
        raise DagsterExecutionInterruptedError()


@dataclass
class _Pending:
    """A document whose chunks are on their way into the index."""

    document: ChunkedDocument
    rows: list[ChunkRow]
    remaining: int


@dataclass
class EmbedStats:
    embedded: int = 0
    reused: int = 0
    tokens: int = 0
    stale_deleted: int = 0
    documents: int = 0
    preview: list[ChunkRow] = field(default_factory=list)


def rows_for(document: ChunkedDocument, asset_id: str, model_key: str) -> list[ChunkRow]:
    seen: dict[str, int] = {}
    rows = []
    for chunk in document.chunks:
        occurrence = seen.get(chunk.content_hash, 0)
        seen[chunk.content_hash] = occurrence + 1
        rows.append(_row(chunk, document, asset_id, model_key, occurrence))
    return rows


def _row(
    chunk: Chunk, document: ChunkedDocument, asset_id: str, model_key: str, occurrence: int
) -> ChunkRow:
    record = document.record
    return ChunkRow(
        chunk_id=chunk_id_for(record.document_id, chunk.content_hash, occurrence, model_key),
        asset_id=asset_id,
        document_id=record.document_id,
        chunk_index=chunk.index,
        content=chunk.content,
        content_hash=chunk.content_hash,
        embedding_model=model_key,
        heading_path=chunk.heading_path,
        page_number=chunk.page_number,
        start_char=chunk.start_char,
        end_char=chunk.end_char,
        start_line=chunk.start_line,
        end_line=chunk.end_line,
        token_count=chunk.token_count,
        source_url=record.source_url,
    )


@dg.asset(
    partitions_def=knowledge_assets,
    group_name="ingestion",
    kinds={"lancedb"},
    description="Stage 4 (embed): chunks and vectors in the tenant's LanceDB table.",
)
def vector_index(
    context: dg.AssetExecutionContext,
    document_chunks: ChunkManifest,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
    embedding: EmbeddingResource,
    progress: OperationProgress,
    secrets: SecretsResource,
) -> dg.MaterializeResult:
    manifest = document_chunks
    request = manifest.request
    with failing_with_category(catalog.get(), request.operation_id, request.asset_id):
        return _embed(context, manifest, catalog, vector_store, embedding, progress, secrets)


def _embed(
    context: dg.AssetExecutionContext,
    manifest: ChunkManifest,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
    embedding: EmbeddingResource,
    progress: OperationProgress,
    secrets: SecretsResource,
) -> dg.MaterializeResult:
    request = manifest.request
    store = catalog.get()
    vectors = vector_store.get()
    asset = store.get_asset(request.asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {request.asset_id} was deleted during the run")
    model = find_model(asset.embedding_config["provider"], asset.embedding_config["model"])
    model_key = f"{model.provider}/{model.model}"
    dims = model.dimensions
    tenant = request.tenant

    pending = [_Pending(d, rows_for(d, request.asset_id, model_key), 0) for d in manifest.documents]
    # Vectors that exist for this content in this asset and model are reused, never re-embedded.
    known_vectors: dict[str, np.ndarray] = {}
    if not request.force:
        hashes = {row.content_hash for p in pending for row in p.rows}
        known_vectors = vectors.vectors_by_hash(tenant, dims, request.asset_id, model_key, hashes)
    existing_ids = vectors.chunk_ids_of_documents(
        tenant, dims, [p.document.record.document_id for p in pending], model_key
    )

    if request.dry_run:
        return _dry_run_report(store, manifest, pending, known_vectors, model)

    embedder = None
    if pending:

        def limits() -> dict[str, int]:
            current = store.get_asset(request.asset_id)
            return token_limits(current.budget if current else None, model.price_per_million_tokens)

        api_key = embedding_api_key(secrets.box(), store, asset, model.provider)
        embedder = MeteredEmbedder(
            embedding.embedder(model.provider, model.model, api_key),
            store,
            request.asset_id,
            kind="INGEST",
            limits=limits,
            operation_id=request.operation_id,
        )
    changes = manifest.changes
    processed = changes.unchanged + changes.failed + changes.removed + manifest.parse_failures
    stats = EmbedStats()
    batch_size = max(1, embedding.batch_size)

    def finish(item: _Pending) -> None:
        record = item.document.record
        keep = {row.chunk_id for row in item.rows}
        stale = existing_ids.get(record.document_id, set()) - keep
        vectors.delete_chunks(tenant, dims, stale)
        stats.stale_deleted += len(stale)
        previous = store.documents_by_id(request.asset_id, [record.document_id])
        if not previous:
            # Deleted while the run worked on it (the diff stage wrote its row): its chunks go
            # too, and the run goes on with the other documents.
            vectors.delete_chunks(tenant, dims, {row.chunk_id for row in item.rows})
            return
        version = previous[0].version
        changed = previous[0].content_hash != record.content_hash
        # Changed, as the sources API means it: indexed before, with other content.
        edited = bool(previous[0].content_hash) and changed
        store.complete_document(
            request.asset_id,
            record.source_key,
            item.document.paragraphs,
            status="COMPLETED",
            error_message=None,
            content_hash=record.content_hash,
            etag=record.etag,
            last_modified=record.last_modified,
            links=record.links,
            chunk_count=len(item.rows),
            token_count=sum(r.token_count for r in item.rows),
            version=version + 1 if changed else version,
            processed_at=now_ms(),
            changed=edited,
            outcome_operation_id=request.operation_id,
        )
        stats.documents += 1

    def batches() -> Iterator[list[tuple[_Pending, ChunkRow]]]:
        batch: list[tuple[_Pending, ChunkRow]] = []
        to_embed = 0
        for item in pending:
            item.remaining = len(item.rows)
            if not item.rows:
                batch.append((item, None))  # an empty document still finishes in order
            for row in item.rows:
                batch.append((item, row))
                if row.content_hash not in known_vectors:
                    to_embed += 1
                if to_embed >= batch_size or len(batch) >= 4 * batch_size:
                    yield batch
                    batch, to_embed = [], 0
        if batch:
            yield batch

    for batch in batches():
        current = store.get_asset(request.asset_id)
        if current is None or current.status == "DELETING":
            # DELETE /assets cancels the run too; stop writing vectors it is removing.
            raise dg.Failure(f"knowledge asset {request.asset_id} is being deleted")
        with persisted_before_cancel():
            rows = [row for _, row in batch if row is not None]
            new_texts: dict[str, str] = {}
            for row in rows:
                if row.content_hash not in known_vectors:
                    new_texts.setdefault(row.content_hash, row.content)
            exhausted = None
            if new_texts:
                try:
                    embedded, used = embedder.embed_counted(list(new_texts.values()))
                    known_vectors.update(zip(new_texts, embedded, strict=True))
                    stats.tokens += used
                except BudgetExceeded:
                    # The batch's bound does not fit: embed what still fits one text at a time
                    # (texts' bounds are loose), keep it, and stop once one does not.
                    spent, exhausted = _embed_while_it_fits(embedder, new_texts, known_vectors)
                    stats.tokens += spent
                    rows = [r for r in rows if r.content_hash in known_vectors]
            stats.embedded += sum(1 for h in new_texts if h in known_vectors)
            stats.reused += sum(1 for r in rows if r.content_hash not in new_texts)
            if rows:
                matrix = np.stack([known_vectors[r.content_hash] for r in rows])
                vectors.upsert(tenant, rows, matrix)
                if len(stats.preview) < 5:
                    stats.preview.extend(rows[: 5 - len(stats.preview)])
            for item, row in batch:
                if row is not None and row.content_hash in known_vectors:
                    item.remaining -= 1
                if item.remaining == 0:
                    finish(item)
                    item.remaining = -1
            if exhausted is not None:
                progress.report(request.operation_id, force=True, token_count=stats.tokens,
                                items_processed=processed + stats.documents)  # fmt: skip
                _stop_for_budget(store, request, pending, str(exhausted))
            progress.report(
                request.operation_id,
                items_processed=processed + stats.documents,
                token_count=stats.tokens,
            )

    if stats.documents or changes.removed:
        vectors.ensure_indices(tenant, dims)
    if not request.partial and asset.serving_embedding is not None:
        # A model change is complete: searches move to the new vectors, the old ones go.
        vectors.delete_other_models(tenant, request.asset_id, model_key)
        store.update_asset(request.asset_id, serving_embedding=None)
        context.log.info(f"searches now use {model_key}")
    if request.source_state is not None:
        store.update_asset(request.asset_id, source_state=request.source_state)
    store.mark_asset_processed(request.asset_id)
    progress.report(
        request.operation_id,
        force=True,
        items_processed=processed + stats.documents,
        token_count=stats.tokens,
        chunk_count=sum(len(p.rows) for p in pending),
        completed_at=now_ms(),
    )
    _clean_staging(manifest)
    preview = "\n".join(
        f"| {r.chunk_index} | {r.heading_path or ''} | {r.content[:120].replace('|', ' ')} |"
        for r in stats.preview
    )
    return dg.MaterializeResult(
        metadata={
            "documents_added": changes.added,
            "documents_changed": changes.changed,
            "documents_unchanged": changes.unchanged,
            "documents_removed": changes.removed,
            "documents_failed": changes.failed + manifest.parse_failures,
            "documents_indexed": stats.documents,
            "chunks": sum(len(p.rows) for p in pending),
            "chunks_embedded": stats.embedded,
            "chunks_reused": stats.reused,
            "stale_chunks_deleted": stats.stale_deleted,
            "tokens_embedded": stats.tokens,
            "embedding_model": model_key,
            "cost_usd": stats.tokens * model.price_per_million_tokens / 1_000_000,
            "preview": dg.MetadataValue.md(
                "| # | heading | content |\n|---|---|---|\n" + preview if preview else "(none)"
            ),
        }
    )


def _dry_run_report(
    store: Any,
    manifest: ChunkManifest,
    pending: list[_Pending],
    known_vectors: dict[str, np.ndarray],
    model: Any,
) -> dg.MaterializeResult:
    """What a real run would embed: each content hash without a vector, once, counted with the
    model's tokenizer (what the local model is billed; an estimate for remote services)."""
    from fruxon_pipelines.embedding import tokenizer_for

    request, changes = manifest.request, manifest.changes
    new_texts: dict[str, str] = {}
    for item in pending:
        for row in item.rows:
            if row.content_hash not in known_vectors:
                new_texts.setdefault(row.content_hash, row.content)
    tokens = sum(tokenizer_for(model).count(list(new_texts.values())))

    def listed(keys: list[str]) -> list[dict[str, str]]:
        return [
            {"documentId": document_id_for(request.asset_id, key), "sourceKey": key} for key in keys
        ]

    report = {
        "added": listed(changes.added_keys),
        "changed": listed(changes.changed_keys),
        "removed": listed(changes.removed_keys),
        "unchanged": changes.unchanged,
        "failed": changes.failed + manifest.parse_failures,
        "chunksToEmbed": len(new_texts),
        "tokens": tokens,
        "tokensExact": model.provider != "openai",
        "cost": tokens * model.price_per_million_tokens / 1_000_000,
    }
    store.update_operation(request.operation_id, dry_run_report=report, completed_at=now_ms())
    _clean_staging(manifest)
    return dg.MaterializeResult(
        metadata={
            "dry_run": True,
            "documents_added": changes.added,
            "documents_changed": changes.changed,
            "documents_removed": changes.removed,
            "tokens_to_embed": tokens,
            "cost_usd": report["cost"],
        }
    )


def _embed_while_it_fits(
    embedder: MeteredEmbedder, texts: dict[str, str], known_vectors: dict[str, np.ndarray]
) -> tuple[int, BudgetExceeded | None]:
    """Embed ``texts`` one by one until the next one would pass the budget; returns the tokens
    spent and that refusal (None if all of them fitted after all)."""
    spent = 0
    for content_hash, text in texts.items():
        try:
            vectors, used = embedder.embed_counted([text])
        except BudgetExceeded as refusal:
            return spent, refusal
        known_vectors[content_hash] = vectors[0]
        spent += used
    return spent, None


def _stop_for_budget(store: Any, request: Any, pending: list[_Pending], message: str) -> NoReturn:
    """What was embedded stays; documents not finished wait, FAILED, for the next refresh."""
    for item in pending:
        if item.remaining != -1:
            store.upsert_document(
                request.asset_id,
                item.document.record.source_key,
                status="FAILED",
                error_message=f"not indexed: {message}",
                outcome_operation_id=request.operation_id,
            )
    raise CategorizedError(f"token budget: {message}", BUDGET)


def _clean_staging(manifest: ChunkManifest) -> None:
    for record in manifest.changes.to_process:
        if record.staged_path:
            Path(record.staged_path).unlink(missing_ok=True)
