"""Stage 2, diff: compare with the catalog; record failures, remove what is gone upstream."""

import dagster as dg

from fruxon_pipelines.assets.stage import ingestion_stage
from fruxon_pipelines.ingest.changes import ListingShrank
from fruxon_pipelines.ingest.diff import diff_documents
from fruxon_pipelines.ingest.manifests import ChangeSet, FetchManifest
from fruxon_pipelines.resources import CatalogResource, OperationProgress, VectorStoreResource


class MassDeletionRefused(dg.Failure):
    pass


@ingestion_stage("Stage 2 (diff): added, changed, unchanged, removed and failed documents.")
def document_changes(
    context: dg.AssetExecutionContext,
    fetched_documents: FetchManifest,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
    progress: OperationProgress,
) -> dg.Output[ChangeSet]:
    try:
        changes = diff_documents(
            catalog.get(),
            vector_store.get(),
            fetched_documents,
            log=context.log,
            report=progress.report,
        )
    except ListingShrank as refused:
        raise MassDeletionRefused(description=str(refused)) from None
    counts = {"added": changes.added, "changed": changes.changed}
    if changes.request.dry_run:
        metadata = {"dry_run": True, **counts, "removed": changes.removed}
    else:
        metadata = {
            **counts,
            "unchanged": changes.unchanged,
            "removed": changes.removed,
            "failed": changes.failed,
        }
    request = changes.request
    return dg.Output(
        changes, metadata={**metadata, **progress.link(request.tenant, request.operation_id)}
    )
