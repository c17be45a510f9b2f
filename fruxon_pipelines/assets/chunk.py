"""Stage 3, chunk: parse changed documents and split them into token-bounded chunks.

Parsing is CPU-bound Python (trafilatura, unstructured), one document at a time per process.
With many documents and more than one CPU, documents are parsed in a pool of forked worker
processes, one per CPU: on 2 cores this halves the stage, which is most of what an ingest
spends besides embedding (bench/bench_sync.py). Results keep the listing's order.
"""

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg

from fruxon_pipelines.assets.manifests import (
    ChangeSet,
    ChunkedDocument,
    ChunkManifest,
    FetchedRecord,
)
from fruxon_pipelines.chunking import chunk_elements
from fruxon_pipelines.embedding import tokenizer_for
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.embedding.local import default_threads
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import CatalogResource, OperationProgress

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32


def chunking_settings(embedding_config: dict, max_tokens: int) -> tuple[int, int]:
    """Chunk size never exceeds what the model reads (its special tokens included)."""
    size = int(embedding_config.get("chunkSize") or DEFAULT_CHUNK_SIZE)
    overlap = int(embedding_config.get("chunkOverlap", DEFAULT_CHUNK_OVERLAP) or 0)
    size = max(1, min(size, max_tokens - 2))
    overlap = max(0, min(overlap, size // 2))
    return size, overlap


# Below this many documents a pool costs more (forking, pickling chunks back) than it saves.
PARALLEL_PARSE_MIN_DOCUMENTS = 8


def parse_and_chunk(
    record: FetchedRecord, provider: str, model: str, size: int, overlap: int
) -> tuple[ChunkedDocument | None, str | None]:
    """(the document's chunks and paragraphs, None), or (None, why) for a document that cannot
    be parsed: one bad document never fails the run. Runs in a parse worker or in the run's
    own process."""
    from fruxon_pipelines.parsing import parse_document

    try:
        data = Path(record.staged_path).read_bytes()
        elements = parse_document(
            data, record.content_type, file_name=record.file_name, url=record.source_url
        )
        tokenizer = tokenizer_for(provider, model)
        chunks = chunk_elements(elements, tokenizer, chunk_size=size, chunk_overlap=overlap)
        paragraphs = [e.text.strip() for e in elements if e.text.strip()]
        return ChunkedDocument(record=record, chunks=chunks, paragraphs=paragraphs), None
    except Exception as error:
        return None, str(error) or type(error).__name__


def chunk_records(
    records: Sequence[FetchedRecord], provider: str, model: str, size: int, overlap: int
) -> Iterator[tuple[FetchedRecord, ChunkedDocument | None, str | None]]:
    workers = min(default_threads(), len(records))
    args = (provider, model, size, overlap)
    if workers < 2 or len(records) < PARALLEL_PARSE_MIN_DOCUMENTS:
        for record in records:
            yield record, *parse_and_chunk(record, *args)
        return
    # fork: the workers start at once with the parsers this process has imported; they only
    # parse, and hand chunks back. (spawn would re-import Dagster in each worker.)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(parse_and_chunk, record, *args) for record in records]
        for record, future in zip(records, futures, strict=True):
            yield record, *future.result()


@dg.asset(
    partitions_def=knowledge_assets,
    group_name="ingestion",
    kinds={"python"},
    description="Stage 3 (chunk): changed documents parsed and split into token-bounded chunks.",
)
def document_chunks(
    context: dg.AssetExecutionContext,
    document_changes: ChangeSet,
    catalog: CatalogResource,
    progress: OperationProgress,
) -> dg.Output[ChunkManifest]:
    request = document_changes.request
    store = catalog.get()
    asset = store.get_asset(request.asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {request.asset_id} was deleted during the run")
    config = asset.embedding_config
    model = find_model(config["provider"], config["model"])
    size, overlap = chunking_settings(config, model.max_tokens)

    manifest = ChunkManifest(request=request, documents=[], changes=document_changes)
    records = document_changes.to_process
    for record, chunked, message in chunk_records(
        records, model.provider, model.model, size, overlap
    ):
        if chunked is None:
            context.log.warning(f"{record.source_key}: {message}")
            if not request.dry_run:
                store.upsert_document(
                    request.asset_id,
                    record.source_key,
                    status="FAILED",
                    error_message=message,
                    outcome_operation_id=request.operation_id,
                )
            manifest.parse_failures += 1
            continue
        manifest.documents.append(chunked)

    total_chunks = sum(len(d.chunks) for d in manifest.documents)
    progress.report(request.operation_id, force=True, chunk_count=total_chunks)
    preview = next((d.chunks[0].content[:300] for d in manifest.documents if d.chunks), "")
    return dg.Output(
        manifest,
        metadata={
            "documents_parsed": len(manifest.documents),
            "parse_failures": manifest.parse_failures,
            "chunks": total_chunks,
            "chunk_size": size,
            "chunk_overlap": overlap,
            "preview": dg.MetadataValue.md(f"```\n{preview}\n```" if preview else "(no chunks)"),
        },
    )
