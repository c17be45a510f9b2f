"""Stage 4, embed: embed only new content, upsert into LanceDB, finish documents in the catalog.

A cancel that arrives during a group of embedder calls is held until the group is handed over
and persisted, so the run stops between groups and what was written stays
(``fruxon_pipelines.ingest.embed``).
"""

import dagster as dg

from fruxon_pipelines.assets.failures import failing_with_category, persisted_before_cancel
from fruxon_pipelines.assets.stage import ingestion_stage
from fruxon_pipelines.ingest.embed import embed_documents, predict_embedding
from fruxon_pipelines.ingest.manifests import ChunkManifest
from fruxon_pipelines.resources import (
    CatalogResource,
    EmbeddingResource,
    OperationProgress,
    SecretsResource,
    VectorStoreResource,
)


@ingestion_stage(
    "Stage 4 (embed): chunks and vectors in the tenant's LanceDB table.", kind="lancedb"
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
    request, changes = manifest.request, manifest.changes
    store = catalog.get()
    with failing_with_category(store, request.operation_id, request.asset_id):
        asset = store.get_asset(request.asset_id)
        if asset is None:
            raise dg.Failure(f"knowledge asset {request.asset_id} was deleted during the run")
        if request.dry_run:
            report = predict_embedding(store, vector_store.get(), asset, manifest)
            return dg.MaterializeResult(
                metadata={
                    "dry_run": True,
                    "documents_added": changes.added,
                    "documents_changed": changes.changed,
                    "documents_removed": changes.removed,
                    "tokens_to_embed": report["tokens"],
                    "cost_usd": report["cost"],
                    **progress.link(request.tenant, request.operation_id),
                }
            )
        embedded = embed_documents(
            store,
            vector_store.get(),
            asset,
            manifest,
            secret_box=secrets.box,
            embedders=embedding.embedder,
            batch_size=embedding.batch_size,
            report=progress.report,
            log=context.log,
            hold_cancel=persisted_before_cancel,
        )
    preview = "\n".join(
        f"| {r.chunk_index} | {r.heading_path or ''} | {r.content[:120].replace('|', ' ')} |"
        for r in embedded.preview
    )
    return dg.MaterializeResult(
        metadata={
            "documents_added": changes.added,
            "documents_changed": changes.changed,
            "documents_unchanged": changes.unchanged,
            "documents_removed": changes.removed,
            "documents_failed": changes.failed + manifest.parse_failures,
            "documents_indexed": embedded.documents,
            "chunks": embedded.chunks,
            "chunks_embedded": embedded.embedded,
            "chunks_reused": embedded.reused,
            "stale_chunks_deleted": embedded.stale_deleted,
            "tokens_embedded": embedded.tokens,
            "embedding_model": embedded.model_key,
            "cost_usd": embedded.cost_usd,
            # The stage streams: commits run beside the embedder, which waits only for these.
            "embedding_seconds": round(embedded.embedding_seconds, 2),
            "writing_seconds": round(embedded.writing_seconds, 2),
            "embedder_waited_seconds": round(embedded.waiting_seconds, 2),
            "preview": dg.MetadataValue.md(
                "| # | heading | content |\n|---|---|---|\n" + preview if preview else "(none)"
            ),
            **progress.link(request.tenant, request.operation_id),
        }
    )
