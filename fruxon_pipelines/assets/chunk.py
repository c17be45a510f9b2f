"""Stage 3, chunk: parse changed documents and split them into token-bounded chunks.

The parsing itself, and the pool of parse workers it uses for many documents, live in
`fruxon_pipelines.parse_workers`, which imports nothing of Dagster's.
"""

import dagster as dg

from fruxon_pipelines.assets.manifests import ChangeSet, ChunkManifest
from fruxon_pipelines.embedding.catalogue import find_model
from fruxon_pipelines.parse_workers import chunk_records
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import CatalogResource, OperationProgress, ParsingResource

DEFAULT_CHUNK_SIZE = 256
DEFAULT_CHUNK_OVERLAP = 32


def chunking_settings(embedding_config: dict, max_tokens: int) -> tuple[int, int]:
    """Chunk size never exceeds what the model reads (its special tokens included)."""
    size = int(embedding_config.get("chunkSize") or DEFAULT_CHUNK_SIZE)
    overlap = int(embedding_config.get("chunkOverlap", DEFAULT_CHUNK_OVERLAP) or 0)
    size = max(1, min(size, max_tokens - 2))
    overlap = max(0, min(overlap, size // 2))
    return size, overlap


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
    parsing: ParsingResource,
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
        records, model, size, overlap, timeout=parsing.timeout
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
