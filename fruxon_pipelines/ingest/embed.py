"""Stage 4, embed: embed only new content, upsert into LanceDB, finish documents in the catalog.

Work goes in groups of ``SORTED_CALLS`` embedder calls (one call for a remote endpoint), texts
ordered by length within a group so each call embeds texts of a similar length; after each
call, the rows it gave a vector (with the first call, the rows that had one already) go to a
writer thread, which commits them to LanceDB in batches (``COMMIT_ROWS``,
``COMMIT_SECONDS``) while the next call runs, then completes the documents they finished in the
catalog. The caller's ``hold_cancel`` wraps each group (the asset layer holds a cancel there
until the group's rows are handed over: a document's rows spread over the group's calls, so a
cancel between calls could leave every document of the group unfinished), and what was handed
over is committed before the run stops, so a run stops between groups and what was written stays.
Every write is idempotent (chunk ids derive from document id and content), so a rerun never
duplicates.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from fruxon_pipelines.budgets import BudgetExceeded, MeteredEmbedder, metered_embedder_for
from fruxon_pipelines.catalog.models import KnowledgeAsset, now_ms
from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.chunking import Chunk, ChunkSpan
from fruxon_pipelines.embedding.base import EmbeddingModel
from fruxon_pipelines.embedding.catalogue import model_of
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


_log = logging.getLogger(__name__)

# Documents are indexed a window at a time: a window's chunk rows, the chunk ids its documents
# have in the index and the vectors it can reuse are looked up together (500 ids is what one
# LanceDB filter takes here), and memory holds one window, never a whole source.
WINDOW_DOCUMENTS = 500
# Batches are committed to LanceDB together, once this many rows wait or this many seconds
# passed: every commit is a fragment and a table version, and a table of thousands of small
# fragments costs every later scan time and memory (bench/bench_scale.py). The catalog hears
# of finished documents at the same pace, so progress moves at least this often.
COMMIT_ROWS = 2048
COMMIT_SECONDS = 2.0
# Texts are ordered by length across this many embedder calls, so texts of a similar length
# share a call and each call is padded less. The local model pads a batch to its longest text:
# the bare loop of 32-text calls over scenario 1's chunks took 53.1 s in document order (each
# call sorted by the embedder itself), 51.8 s ordered within 256 texts (8 calls), 51.2 s within
# 1,024, with the model's batches of at most 512 padded tokens (in batches of 32 texts: 66.6 s
# in document order, 57.2 s within 256). A cancel waits for the group's last call (8 calls:
# ~4 s), so its documents finish.
SORTED_CALLS = 8
# Providers whose calls are ordered so: the local model, and the hash embedder that stands in
# for it in tests of the pipeline. A remote endpoint pads nothing on our side, and one of its
# calls can take a minute with retries, so there a group is one call and a cancel waits for
# that call only.
LENGTH_SORTED_PROVIDERS = frozenset({"local", "hash"})
# Vectors the run embedded or reused lately, by content hash: text repeated across documents
# (navigation, footers, disclaimers) is found here rather than by a scan of the index.
RECENT_VECTORS = 20_000


@dataclass
class _Pending:
    """A document whose chunks are on their way into the index; ``remaining`` counts its rows
    not yet written (-1 once the document is finished, or on its way to be)."""

    document: ChunkedDocument
    rows: list[ChunkRow]
    remaining: int = 0


@dataclass
class _Window:
    """Up to ``WINDOW_DOCUMENTS`` documents, with what the index already has of them."""

    pending: list[_Pending]
    # content hash → a vector this asset and model already hold for it (reused, never paid
    # for again), then the vectors the run embeds for the window.
    known_vectors: dict[str, np.ndarray]
    # The chunk ids each document has in the index now (under this model).
    existing_ids: dict[str, set[str]]

    def texts_to_embed(self, rows: list[ChunkRow]) -> dict[str, str]:
        """content hash → text, once each, of the rows without a vector."""
        texts: dict[str, str] = {}
        for row in rows:
            if row.content_hash not in self.known_vectors:
                texts.setdefault(row.content_hash, row.content)
        return texts


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
    # Where the stage's time went: in the embedder, in commits (on the writer thread, beside
    # the embedder) and waiting for a commit to end before the embedder could go on.
    embedding_seconds: float = 0.0
    writing_seconds: float = 0.0
    waiting_seconds: float = 0.0

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
    """Index the chunked documents: embed what has no vector yet, in calls booked against
    the asset's budgets, upsert, delete chunks a document no longer has, and complete each
    document in the catalog once all its chunks are in. Then finish the asset (a model change
    that is complete, the source's next state) and the operation's counters.

    The embedder never waits for the index: a call's rows are written (LanceDB, then the
    catalog) on a writer thread while the next call runs. A cancel is held until the group of
    calls being embedded is handed over and what the writer holds is persisted.

    ``embedders(provider, model, api_key)`` gives the embedder; ``report`` is the operation's
    progress reporter. Raises RunStopped when the asset is being deleted, and
    CategorizedError(BUDGET) once a budget is spent (what was embedded stays).
    """
    request = manifest.request
    model = model_of(asset.embedding_config)
    changes = manifest.changes
    processed = changes.unchanged + changes.failed + changes.removed + manifest.parse_failures
    embedder = None
    if manifest.document_count:
        embedder = metered_embedder_for(
            asset,
            model,
            store,
            secret_box(),
            kind="INGEST",
            operation_id=request.operation_id,
            live_budget=True,
            embedders=embedders,
        )
    run = _Indexing(store, vectors, request, model, max(1, batch_size), embedder)
    stats = run.stats
    documents = manifest.iter_documents()
    with _BatchWriter() as writer:
        try:
            for window in run.windows(documents, writer):
                for group in run.groups(window):
                    current = store.get_asset(request.asset_id)
                    if current is None or current.status == "DELETING":
                        # DELETE /assets cancels the run too; stop writing vectors it removes.
                        raise RunStopped(f"knowledge asset {request.asset_id} is being deleted")
                    with hold_cancel():
                        for texts, batch in run.calls(window, group):
                            exhausted = run.embed(window, texts, batch, writer)
                            if exhausted is not None:
                                run.persist(writer)
                                report(request.operation_id, force=True, token_count=stats.tokens,
                                       items_processed=processed + stats.documents)  # fmt: skip
                                _stop_for_budget(store, request, window, documents, str(exhausted))
                            report(
                                request.operation_id,
                                items_processed=processed + stats.documents,
                                token_count=stats.tokens,
                            )
        except RunStopped:
            run.discard(writer)  # the asset is being deleted: write nothing more of it
            _clean_staging(manifest)  # and nothing will re-execute this run
            raise
        except BaseException:
            # Cancelled, out of budget or failed: what was handed to the writer is committed
            # first, and the reason the run stops is what it raises, whatever that commit does.
            try:
                with hold_cancel():
                    run.persist(writer)
            except BaseException:
                log.warning("committing the last batches failed", exc_info=True)
            raise
        else:
            with hold_cancel():
                run.persist(writer)
        finally:
            stats.waiting_seconds = round(writer.waited, 3)

    _finish_asset(store, vectors, asset, manifest, run, log)
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
    run: _Indexing,
    log: logging.Logger,
) -> None:
    """The run is done: indices refreshed, a model change completed by a full run, the
    source's next state kept, and the asset marked processed."""
    request = manifest.request
    if run.stats.documents or manifest.changes.removed:
        vectors.ensure_indices(request.tenant, run.dims)
    if not request.partial and asset.serving_embedding is not None:
        # A model change is complete: searches move to the new vectors, the old ones go.
        vectors.delete_other_models(request.tenant, request.asset_id, run.model_key)
        store.update_asset(request.asset_id, serving_embedding=None)
        log.info(f"searches now use {run.model_key}")
    if request.source_state is not None:
        store.update_asset(request.asset_id, source_state=request.source_state)
    store.mark_asset_processed(request.asset_id)


class _BatchWriter:
    """One thread that persists batches in the order given, one at a time, while the caller
    embeds the next; a failed write is raised to the caller at its next hand-over."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fruxon-index-writer")
        self._writing: Future | None = None
        self.waited = 0.0  # seconds the caller spent waiting for writes

    def submit(self, write: Callable[[], None]) -> None:
        self.drain()
        self._writing = self._pool.submit(write)

    def drain(self) -> None:
        """Wait for the batch being written; raise what its write raised."""
        writing = self._writing
        if writing is None:
            return
        started = time.perf_counter()
        try:
            writing.result()
        except BaseException:
            if writing.done():  # its own failure, raised now; else a cancel while waiting,
                self._writing = None  # and the next drain waits for it again
            raise
        finally:
            self.waited += time.perf_counter() - started
        self._writing = None

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


Batch = list[tuple[_Pending, ChunkRow | None]]


@dataclass
class _Waiting:
    """Batches of one window handed to the writer and not committed yet."""

    window: _Window
    rows: list[ChunkRow] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)
    finished: list[_Pending] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)


class _Indexing:
    """One run's windows and batches: embed what they lack, write them, finish complete
    documents."""

    def __init__(
        self,
        store: Any,
        vectors: Any,
        request: IngestRequest,
        model: EmbeddingModel,
        batch_size: int,
        embedder: MeteredEmbedder | None,
    ) -> None:
        self.store, self.vectors, self.request = store, vectors, request
        self.batch_size, self.embedder = batch_size, embedder
        self.calls_per_group = SORTED_CALLS if model.provider in LENGTH_SORTED_PROVIDERS else 1
        self.model_key = model.key
        self.dims = model.dimensions
        self.stats = Embedded(self.model_key, model.price_per_million_tokens)
        # Contents this run embedded: a first index finds only these in the index (a dry run
        # counts them here once).
        self.embedded_hashes: set[str] = set()
        self.recent: OrderedDict[str, np.ndarray] = OrderedDict()
        # An asset with nothing indexed under this model (a first ingest, a model change):
        # no document has chunk ids to look up, and only vectors this run made are reusable.
        self.first_index = not vectors.has_chunks(
            request.tenant, self.dims, request.asset_id, self.model_key
        )
        self._waiting: _Waiting | None = None

    def windows(
        self, documents: Iterator[ChunkedDocument], writer: _BatchWriter
    ) -> Iterator[_Window]:
        """The documents a window at a time, each looked up once the writes before it are
        committed (so vectors the run embedded for an earlier window are in the index)."""
        request = self.request
        while chunk := list(islice(self._once_each(documents), WINDOW_DOCUMENTS)):
            pending = [_Pending(d, rows_for(d, request.asset_id, self.model_key)) for d in chunk]
            self.stats.chunks += sum(len(p.rows) for p in pending)
            self.persist(writer)
            yield self.window(pending)

    def _once_each(self, documents: Iterator[ChunkedDocument]) -> Iterator[ChunkedDocument]:
        """A document a listing gave twice is indexed once (its first version): chunk ids
        new to the index are appended, and two copies would both be."""
        seen: set[str] = set()
        for document in documents:
            if document.record.document_id in seen:
                _log.warning("%s was listed twice; indexed once", document.record.source_key)
                continue
            seen.add(document.record.document_id)
            yield document

    def window(self, pending: list[_Pending]) -> _Window:
        request = self.request
        document_ids = [p.document.record.document_id for p in pending]
        if self.first_index:
            existing_ids: dict[str, set[str]] = {d: set() for d in document_ids}
        else:
            existing_ids = self.vectors.chunk_ids_of_documents(
                request.tenant, self.dims, document_ids, self.model_key
            )
        hashes = {row.content_hash for p in pending for row in p.rows}
        known_vectors = {h: self.recent[h] for h in hashes if h in self.recent}
        hashes -= known_vectors.keys()
        if request.force:
            # Only vectors this run made: the index may hold another row of this content not
            # re-embedded yet. Text repeated past ``RECENT_VECTORS`` is embedded again.
            hashes = set()
        elif self.first_index:
            hashes &= self.embedded_hashes  # every row of the asset is this run's
        if hashes:
            known_vectors |= self.vectors.vectors_by_hash(
                request.tenant, self.dims, request.asset_id, self.model_key, hashes
            )
        return _Window(pending, known_vectors, existing_ids)

    def persist(self, writer: _BatchWriter) -> None:
        """Every batch handed over is committed and its documents finished, when this returns."""
        writer.submit(self.commit)
        writer.drain()

    def discard(self, writer: _BatchWriter) -> None:
        """Batches handed over and not committed yet are dropped (their documents stay as
        the diff stage left them); a commit under way ends first."""

        def drop() -> None:
            self._waiting = None

        try:
            writer.submit(drop)
            writer.drain()
        except Exception:
            _log.warning("a commit failed while the run stopped", exc_info=True)

    def groups(self, window: _Window) -> Iterator[Batch]:
        """Documents' rows in order, cut where a group's embedder calls' worth of texts
        need embedding (or four times as many rows are reused); a document without chunks
        still finishes."""
        group: Batch = []
        to_embed: set[str] = set()
        most_texts = self.batch_size * self.calls_per_group
        most_rows = 4 * most_texts
        for item in window.pending:
            item.remaining = len(item.rows)
            if not item.rows:
                group.append((item, None))
            for row in item.rows:
                group.append((item, row))
                if row.content_hash not in window.known_vectors:
                    to_embed.add(row.content_hash)
                if len(to_embed) >= most_texts or len(group) >= most_rows:
                    yield group
                    group, to_embed = [], set()
        if group:
            yield group

    def calls(self, window: _Window, group: Batch) -> Iterator[tuple[dict[str, str], Batch]]:
        """A group's embedder calls, each of ``batch_size`` texts of similar length (content
        hash → text), with the rows to hand over once it is done: those it gives a vector, and
        with the first call the rows that had one already."""
        size = self.batch_size
        # Looked up as the group starts, with what the groups before it embedded.
        rows = [row for _, row in group if row is not None]
        if len(self.stats.preview) < 5:  # the run's first chunks, in document order
            self.stats.preview.extend(rows[: 5 - len(self.stats.preview)])
        texts = window.texts_to_embed(rows)
        # The chunker counted each chunk's tokens with the model's tokenizer.
        tokens = {row.content_hash: row.token_count for row in rows}
        ordered = sorted(texts, key=tokens.__getitem__)
        call_of = {h: i // size for i, h in enumerate(ordered)}
        handovers: list[Batch] = [[] for _ in range(max(1, -(-len(ordered) // size)))]
        for item, row in group:
            handovers[call_of.get(row.content_hash, 0) if row else 0].append((item, row))
        for k, batch in enumerate(handovers):
            yield {h: texts[h] for h in ordered[k * size : (k + 1) * size]}, batch

    def embed(
        self, window: _Window, new_texts: dict[str, str], batch: Batch, writer: _BatchWriter
    ) -> BudgetExceeded | None:
        """Embed one call's texts and hand its batch to the writer; returns the budget's
        refusal when only part of it could be embedded (that part is handed over)."""
        known_vectors, stats = window.known_vectors, self.stats
        rows = [row for _, row in batch if row is not None]
        exhausted = None
        if new_texts:
            started = time.perf_counter()
            try:
                embedded, used = self.embedder.embed_counted(list(new_texts.values()))
                known_vectors.update(zip(new_texts, embedded, strict=True))
                stats.tokens += used
            except BudgetExceeded:
                # The batch's bound does not fit: embed what still fits one text at a time
                # (texts' bounds are loose), keep it, and stop once one does not.
                spent, exhausted = _embed_while_it_fits(self.embedder, new_texts, known_vectors)
                stats.tokens += spent
                rows = [r for r in rows if r.content_hash in known_vectors]
            stats.embedding_seconds += time.perf_counter() - started
        self.embedded_hashes.update(h for h in new_texts if h in known_vectors)
        for row in rows:
            self.recent[row.content_hash] = known_vectors[row.content_hash]
            self.recent.move_to_end(row.content_hash)
        while len(self.recent) > RECENT_VECTORS:
            self.recent.popitem(last=False)
        stats.embedded += sum(1 for h in new_texts if h in known_vectors)
        stats.reused += sum(1 for r in rows if r.content_hash not in new_texts)
        matrix = np.stack([known_vectors[r.content_hash] for r in rows]) if rows else None
        finished = []
        for item, row in batch:
            if row is not None and row.content_hash in known_vectors:
                item.remaining -= 1
            if item.remaining == 0:
                finished.append(item)
                item.remaining = -1
        writer.submit(partial(self.write, window, rows, matrix, finished))
        return exhausted

    def write(
        self,
        window: _Window,
        rows: list[ChunkRow],
        matrix: np.ndarray | None,
        finished: list[_Pending],
    ) -> None:
        """On the writer thread: the batch joins those waiting to be committed, which are
        committed once there are enough of them or they waited long enough. (``windows``
        commits before each window, so what waits is always of this one.)"""
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = _Waiting(window)
        if rows:
            waiting.rows.extend(rows)
            waiting.matrices.append(matrix)
        waiting.finished.extend(finished)
        if len(waiting.rows) >= COMMIT_ROWS or time.monotonic() - waiting.since >= COMMIT_SECONDS:
            self.commit()

    def commit(self) -> None:
        """On the writer thread: the waiting rows into LanceDB in one commit, then their
        finished documents' stale chunks out and the documents completed in the catalog."""
        waiting, self._waiting = self._waiting, None
        if waiting is None:
            return
        started = time.perf_counter()
        try:
            self._commit(waiting)
        finally:
            self.stats.writing_seconds += time.perf_counter() - started

    def _commit(self, waiting: _Waiting) -> None:
        tenant, window, rows = self.request.tenant, waiting.window, waiting.rows
        if rows:
            matrix = np.concatenate(waiting.matrices)
            # A chunk id the document does not hold yet is appended, without a join.
            held = window.existing_ids
            known = [r.chunk_id in held.get(r.document_id, ()) for r in rows]
            new = [i for i, k in enumerate(known) if not k]
            old = [i for i, k in enumerate(known) if k]
            if new:
                self.vectors.add(tenant, [rows[i] for i in new], matrix[new])
            if old:
                self.vectors.upsert(tenant, [rows[i] for i in old], matrix[old])
        finished = waiting.finished
        if not finished:
            return
        stale: set[str] = set()
        for item in finished:
            record = item.document.record
            keep = {row.chunk_id for row in item.rows}
            stale |= window.existing_ids.get(record.document_id, set()) - keep
        self.vectors.delete_chunks(tenant, self.dims, stale)
        self.stats.stale_deleted += len(stale)
        previous = {
            d.id: d
            for d in self.store.documents_by_id(
                self.request.asset_id, [item.document.record.document_id for item in finished]
            )
        }
        for item in finished:
            self.finish(item, previous.get(item.document.record.document_id))

    def finish(self, item: _Pending, previous: Any | None) -> None:
        """All of a document's chunks are in (its stale ones out): complete it."""
        request, store = self.request, self.store
        record = item.document.record
        if previous is None:
            # Deleted while the run worked on it (the diff stage wrote its row): its chunks go
            # too, and the run goes on with the other documents.
            keep = {row.chunk_id for row in item.rows}
            self.vectors.delete_chunks(request.tenant, self.dims, keep)
            return
        version = previous.version
        changed = previous.content_hash != record.content_hash
        # Changed, as the sources API means it: indexed before, with other content.
        edited = bool(previous.content_hash) and changed
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

    model = model_of(asset.embedding_config)
    request, changes = manifest.request, manifest.changes
    run = _Indexing(store, vectors, request, model, 1, None)
    tokenizer = tokenizer_for(model)
    chunks_to_embed = tokens = 0
    with _BatchWriter() as nothing_to_write:
        for window in run.windows(manifest.iter_documents(), nothing_to_write):
            rows = [row for item in window.pending for row in item.rows]
            texts = {
                h: text
                for h, text in window.texts_to_embed(rows).items()
                if h not in run.embedded_hashes
            }
            run.embedded_hashes.update(texts)  # counted once, as a run embeds them once
            chunks_to_embed += len(texts)
            tokens += sum(tokenizer.count(list(texts.values())))

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
        "chunksToEmbed": chunks_to_embed,
        "tokens": tokens,
        "tokensExact": model.provider != "openai",
        "cost": tokens * model.price_per_million_tokens / 1_000_000,
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
    store: Any,
    request: IngestRequest,
    window: _Window,
    later: Iterator[ChunkedDocument],
    message: str,
) -> NoReturn:
    """What was embedded stays; documents not finished wait, FAILED, for the next refresh."""
    unfinished = [p.document for p in window.pending if p.remaining != -1]
    for document in chain(unfinished, later):
        mark_failed(store, request, document.record.source_key, f"not indexed: {message}")
    raise CategorizedError(f"token budget: {message}", BUDGET)


def _clean_staging(manifest: ChunkManifest) -> None:
    # A manifest pickled before staged_paths existed lists its records in changes.to_process.
    old = [r.staged_path for r in manifest.changes.to_process if r.staged_path]
    for path in chain(getattr(manifest, "staged_paths", ()), old):
        Path(path).unlink(missing_ok=True)
    manifest.remove_spool()
