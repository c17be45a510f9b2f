"""Stage 3, chunk: parse changed documents and split them into token-bounded chunks."""

from pathlib import Path

import dagster as dg

from fruxon_pipelines.assets.stage import ingestion_stage
from fruxon_pipelines.ingest.chunk import chunk_documents
from fruxon_pipelines.ingest.manifests import ChangeSet, ChunkManifest
from fruxon_pipelines.resources import (
    CatalogResource,
    OperationProgress,
    ParsingResource,
    SourceAccess,
)


@ingestion_stage("Stage 3 (chunk): changed documents parsed and split into token-bounded chunks.")
def document_chunks(
    document_changes: ChangeSet,
    catalog: CatalogResource,
    progress: OperationProgress,
    parsing: ParsingResource,
    source_access: SourceAccess,
) -> dg.Output[ChunkManifest]:
    store = catalog.get()
    request = document_changes.request
    asset = store.get_asset(request.asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {request.asset_id} was deleted during the run")
    # Dagster's logger: its records reach the run's event log as context.log's do.
    log = dg.get_dagster_logger()
    chunked = chunk_documents(
        store,
        asset,
        document_changes,
        timeout=parsing.timeout,
        log=log,
        spool_dir=Path(source_access.staging_dir) / asset.id,
    )
    manifest, preview = chunked.manifest, chunked.preview
    progress.report(request.operation_id, force=True, chunk_count=chunked.chunks)
    return dg.Output(
        manifest,
        metadata={
            "documents_parsed": manifest.document_count,
            "parse_failures": manifest.parse_failures,
            "chunks": chunked.chunks,
            "chunk_size": chunked.chunk_size,
            "chunk_overlap": chunked.chunk_overlap,
            "preview": dg.MetadataValue.md(f"```\n{preview}\n```" if preview else "(no chunks)"),
            **progress.link(request.tenant, request.operation_id),
        },
    )
