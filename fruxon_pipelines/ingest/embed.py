"""Stage 4, embed: embed only new content, upsert into LanceDB, finish documents in the catalog.

Work goes in batches. Each batch is one embedder call and one LanceDB commit, followed by the
catalog rows of the documents it completed. The caller's ``hold_cancel`` wraps each batch (the
asset layer holds a cancel there until the batch is persisted), so a run stops between batches
and what was written stays. Every write is idempotent (chunk ids derive from document id and
content), so a rerun never duplicates.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from fruxon_pipelines.budgets import BudgetExceeded, MeteredEmbedder, metered_embedder_for
from fruxon_pipelines.catalog.models import KnowledgeAsset, now_ms
from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.chunking import Chunk, ChunkSpan
from fruxon_pipelines.embedding.base import EmbeddingModel
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.errors import BUDGET, CategorizedError
from fruxon_pipelines.ingest import RunStopped
from fruxon_pipelines.ingest.manifests import ChunkedDocument, ChunkManifest, IngestRequest
from fruxon_pipelines.ingest.outcomes import mark_failed
from fruxon_pipelines.secretbox import SecretBox
from fruxon_pipelines.vectors import ChunkRow


def chunk_id_for(document_id: str, content_hash: str, occurrence: int, model_key: str) -> str:
    """Same document, content and model → same id, so an unchanged chunk keeps its id and
    vector; another model's vectors of it are other rows, which serve until a change is done."""
    return str(uuid.uuid5(uuid.UUID(document_id), f"{content_hash}:{occurrence}:{model_key}"))


def rows_for(document: ChunkedDocument, asset_id: str, model_key: str) -> list[ChunkRow]:
    seen: dict[str, int] = {}
    rows = []
    # Filters by date need one: the source's modification time, else when this version came.
    modified_at = document.record.modified_ms or now_ms()
    for chunk in document.chunks:
        occurrence = seen.get(chunk.content_hash, 0)
        seen[chunk.content_hash] = occurrence + 1
        rows.append(_row(chunk, document, asset_id, model_key, occurrence, modified_at))
    return rows


def _row(
    chunk: Chunk,
    document: ChunkedDocument,
    asset_id: str,
    model_key: str,
    occurrence: int,
    modified_at: int,
) -> ChunkRow:
    record = document.record
    span = {f.name: getattr(chunk, f.name) for f in fields(ChunkSpan)}
    return ChunkRow(
        **span,
        chunk_id=chunk_id_for(record.document_id, chunk.content_hash, occurrence, model_key),
        asset_id=asset_id,
        document_id=record.document_id,
        chunk_index=chunk.index,
        content=chunk.content,
        content_hash=chunk.content_hash,
        embedding_model=model_key,
        source_url=record.source_url,
        title=record.title,
        modified_at=modified_at,
    )


@dataclass
class _Pending:
    """A document whose chunks are on their way into the index; ``remaining`` counts its rows
    not yet written (-1 once the document is finished in the catalog)."""

    document: ChunkedDocument
    rows: list[ChunkRow]
    remaining: int = 0


@dataclass
class _Plan:
    """The chunks of a run under the asset's model, and the vectors it already has."""

    model: EmbeddingModel
    pending: list[_Pending]
    # content hash → a vector this asset and model already hold for it (reused, never paid
    # for again); empty when the run is forced.
    known_vectors: dict[str, np.ndarray]

    @property
    def model_key(self) -> str:
        return f"{self.model.provider}/{self.model.model}"

    def texts_to_embed(self, rows: list[ChunkRow]) -> dict[str, str]:
        """content hash → text, once each, of the rows without a vector."""
        texts: dict[str, str] = {}
        for row in rows:
            if row.content_hash not in self.known_vectors:
                texts.setdefault(row.content_hash, row.content)
        return texts


def _plan(vectors: Any, asset: KnowledgeAsset, manifest: ChunkManifest) -> _Plan:
    request = manifest.request
    model = find_model(asset.embedding_config["provider"], asset.embedding_config["model"])
    model_key = model.key
    pending = [_Pending(d, rows_for(d, request.asset_id, model_key)) for d in manifest.documents]
    known_vectors: dict[str, np.ndarray] = {}
    if not request.force:
        hashes = {row.content_hash for p in pending for row in p.rows}
        known_vectors = vectors.vectors_by_hash(
            request.tenant, model.dimensions, request.asset_id, model_key, hashes
        )
    return _Plan(model, pending, known_vectors)


@dataclass
class Embedded:
    """What a run wrote to the index."""

    model_key: str
    price_per_million_tokens: float
    preview: list[ChunkRow] = field(default_factory=list)  # the first rows, for the UI
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    tokens: int = 0
    stale_deleted: int = 0
    documents: int = 0

    @property
    def cost_usd(self) -> float:
        return self.tokens * self.price_per_million_tokens / 1_000_000


def embed_documents(
    store: Any,
    vectors: Any,
    asset: KnowledgeAsset,
    manifest: ChunkManifest,
    *,
    secret_box: Callable[[], SecretBox],
    embedders: Callable[..., Any],
    batch_size: int,
    report: Callable[..., None],
    log: logging.Logger,
    hold_cancel: Callable[[], AbstractContextManager] = nullcontext,
) -> Embedded:
    """Index the chunked documents: embed what has no vector yet, in batches booked against
    the asset's budgets, upsert, delete chunks a document no longer has, and complete each
    document in the catalog once all its chunks are in. Then finish the asset (a model change
    that is complete, the source's next state) and the operation's counters.

    ``embedders(provider, model, api_key)`` gives the embedder; ``report`` is the operation's
    progress reporter. Raises RunStopped when the asset is being deleted, and
    CategorizedError(BUDGET) once a budget is spent (what was embedded stays).
    """
    request = manifest.request
    plan = _plan(vectors, asset, manifest)
    run = _Indexing(store, vectors, request, plan, max(1, batch_size))
    changes = manifest.changes
    processed = changes.unchanged + changes.failed + changes.removed + manifest.parse_failures
    stats = run.stats
    embedder = None
    if plan.pending:
        embedder = metered_embedder_for(
            asset,
            plan.model,
            store,
            secret_box(),
            kind="INGEST",
            operation_id=request.operation_id,
            live_budget=True,
            embedders=embedders,
        )
    for batch in run.batches():
        current = store.get_asset(request.asset_id)
        if current is None or current.status == "DELETING":
            # DELETE /assets cancels the run too; stop writing vectors it is removing.
            raise RunStopped(f"knowledge asset {request.asset_id} is being deleted")
        with hold_cancel():
            exhausted = run.write(batch, embedder)
            if exhausted is not None:
                report(request.operation_id, force=True, token_count=stats.tokens,
                       items_processed=processed + stats.documents)  # fmt: skip
                _stop_for_budget(store, request, plan.pending, str(exhausted))
            report(
                request.operation_id,
                items_processed=processed + stats.documents,
                token_count=stats.tokens,
            )

    _finish_asset(store, vectors, asset, manifest, plan, stats, log)
    stats.chunks = sum(len(p.rows) for p in plan.pending)
    report(
        request.operation_id,
        force=True,
        items_processed=processed + stats.documents,
        token_count=stats.tokens,
        chunk_count=stats.chunks,
        completed_at=now_ms(),
    )
    _clean_staging(manifest)
    return stats


def _finish_asset(
    store: Any,
    vectors: Any,
    asset: KnowledgeAsset,
    manifest: ChunkManifest,
    plan: _Plan,
    stats: Embedded,
    log: logging.Logger,
) -> None:
    """The run is done: indices refreshed, a model change completed by a full run, the
    source's next state kept, and the asset marked processed."""
    request = manifest.request
    if stats.documents or manifest.changes.removed:
        vectors.ensure_indices(request.tenant, plan.model.dimensions)
    if not request.partial and asset.serving_embedding is not None:
        # A model change is complete: searches move to the new vectors, the old ones go.
        vectors.delete_other_models(request.tenant, request.asset_id, plan.model_key)
        store.update_asset(request.asset_id, serving_embedding=None)
        log.info(f"searches now use {plan.model_key}")
    if request.source_state is not None:
        store.update_asset(request.asset_id, source_state=request.source_state)
    store.mark_asset_processed(request.asset_id)


Batch = list[tuple[_Pending, ChunkRow | None]]


@dataclass
class _Indexing:
    """One run's batches: embed what they lack, write them, finish complete documents."""

    store: Any
    vectors: Any
    request: IngestRequest
    plan: _Plan
    batch_size: int

    def __post_init__(self) -> None:
        plan = self.plan
        self.dims = plan.model.dimensions
        self.stats = Embedded(plan.model_key, plan.model.price_per_million_tokens)
        # The chunk ids each document has in the index now (under this model).
        self.existing_ids = self.vectors.chunk_ids_of_documents(
            self.request.tenant,
            self.dims,
            [p.document.record.document_id for p in plan.pending],
            plan.model_key,
        )

    def batches(self) -> Iterator[Batch]:
        """Documents' rows in order, cut where ``batch_size`` texts need embedding (or four
        times as many rows are reused); a document without chunks still finishes in order."""
        batch: Batch = []
        to_embed = 0
        for item in self.plan.pending:
            item.remaining = len(item.rows)
            if not item.rows:
                batch.append((item, None))
            for row in item.rows:
                batch.append((item, row))
                if row.content_hash not in self.plan.known_vectors:
                    to_embed += 1
                if to_embed >= self.batch_size or len(batch) >= 4 * self.batch_size:
                    yield batch
                    batch, to_embed = [], 0
        if batch:
            yield batch

    def write(self, batch: Batch, embedder: MeteredEmbedder | None) -> BudgetExceeded | None:
        """Embed, upsert and finish one batch; returns the budget's refusal when only part of
        it could be embedded (that part is written)."""
        known_vectors, stats = self.plan.known_vectors, self.stats
        rows = [row for _, row in batch if row is not None]
        new_texts = self.plan.texts_to_embed(rows)
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
            self.vectors.upsert(self.request.tenant, rows, matrix)
            if len(stats.preview) < 5:
                stats.preview.extend(rows[: 5 - len(stats.preview)])
        for item, row in batch:
            if row is not None and row.content_hash in known_vectors:
                item.remaining -= 1
            if item.remaining == 0:
                self.finish(item)
                item.remaining = -1
        return exhausted

    def finish(self, item: _Pending) -> None:
        """All of a document's chunks are in: drop its stale ones and complete it."""
        request, store = self.request, self.store
        record = item.document.record
        keep = {row.chunk_id for row in item.rows}
        stale = self.existing_ids.get(record.document_id, set()) - keep
        self.vectors.delete_chunks(request.tenant, self.dims, stale)
        self.stats.stale_deleted += len(stale)
        previous = store.documents_by_id(request.asset_id, [record.document_id])
        if not previous:
            # Deleted while the run worked on it (the diff stage wrote its row): its chunks go
            # too, and the run goes on with the other documents.
            self.vectors.delete_chunks(request.tenant, self.dims, keep)
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
        self.stats.documents += 1


def predict_embedding(
    store: Any, vectors: Any, asset: KnowledgeAsset, manifest: ChunkManifest
) -> dict[str, Any]:
    """A dry run's report, written on its operation: the documents a refresh would add, change
    and remove, and what it would embed: each content hash without a vector, once, counted with
    the model's tokenizer (what the local model is billed; an estimate for remote services)."""
    from fruxon_pipelines.embedding import tokenizer_for

    plan = _plan(vectors, asset, manifest)
    request, changes = manifest.request, manifest.changes
    new_texts = plan.texts_to_embed([row for item in plan.pending for row in item.rows])
    tokens = sum(tokenizer_for(plan.model).count(list(new_texts.values())))

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
        "tokensExact": plan.model.provider != "openai",
        "cost": tokens * plan.model.price_per_million_tokens / 1_000_000,
    }
    store.update_operation(request.operation_id, dry_run_report=report, completed_at=now_ms())
    _clean_staging(manifest)
    return report


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


def _stop_for_budget(
    store: Any, request: IngestRequest, pending: list[_Pending], message: str
) -> NoReturn:
    """What was embedded stays; documents not finished wait, FAILED, for the next refresh."""
    for item in pending:
        if item.remaining != -1:
            mark_failed(store, request, item.document.record.source_key, f"not indexed: {message}")
    raise CategorizedError(f"token budget: {message}", BUDGET)


def _clean_staging(manifest: ChunkManifest) -> None:
    for record in manifest.changes.to_process:
        if record.staged_path:
            Path(record.staged_path).unlink(missing_ok=True)
