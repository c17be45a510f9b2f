"""Stage 1, fetch: ask the source what exists now and fetch only what changed."""

import dagster as dg
from pydantic import Field

from fruxon_pipelines.assets.failures import failing_with_category
from fruxon_pipelines.assets.stage import ingestion_stage
from fruxon_pipelines.ingest.fetch import fetch_documents
from fruxon_pipelines.ingest.manifests import FetchManifest
from fruxon_pipelines.resources import (
    CatalogResource,
    OperationProgress,
    SecretsResource,
    SourceAccess,
    VectorStoreResource,
)
from fruxon_pipelines.tags import (
    ASSET_NAME_TAG,
    MANUAL,
    OPERATION_TAG,
    OPERATION_TYPE_TAG,
    TENANT_TAG,
)


class IngestConfig(dg.Config):
    """What one run ingests. Launchers set it; the defaults refresh everything."""

    document_ids: list[str] = Field(
        default_factory=list, description="Refresh only these documents (all when empty)."
    )
    source_keys: list[str] = Field(
        default_factory=list,
        description="Refresh only these items by their source key (a web page's URL), known or "
        "new; combined with document_ids.",
    )
    force: bool = Field(default=False, description="Re-fetch, re-parse and re-embed everything.")
    dry_run: bool = Field(
        default=False,
        description="Report what would be added, changed and removed and the tokens it would "
        "cost; change nothing.",
    )
    allow_mass_deletion: bool = Field(
        default=False,
        description="Remove documents even when the listing shrank by more than half.",
    )


@ingestion_stage("Stage 1 (fetch): the source's items as they are now; changed bytes are staged.")
def fetched_documents(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    catalog: CatalogResource,
    source_access: SourceAccess,
    progress: OperationProgress,
    secrets: SecretsResource,
    vector_store: VectorStoreResource,
) -> dg.Output[FetchManifest]:
    asset_id = context.partition_key
    operation_id = context.run.tags.get(OPERATION_TAG) or context.run_id
    store = catalog.get()
    with failing_with_category(store, operation_id, asset_id):
        asset = store.get_asset(asset_id)
        if asset is None:
            raise dg.Failure(f"knowledge asset {asset_id} is not in the catalog (deleted?)")
        # The run list of the Dagster UI shows and filters by these; the partition key is the
        # asset's id, which says nothing to a person. Launches from the UI get them here too.
        context.instance.add_run_tags(
            context.run_id, {ASSET_NAME_TAG: asset.name[:255], TENANT_TAG: asset.tenant}
        )
        store.ensure_operation(
            operation_id=operation_id,
            asset_id=asset_id,
            tenant=asset.tenant,
            type=context.run.tags.get(OPERATION_TYPE_TAG, MANUAL),
            run_id=context.run_id,
        )
        fetched = fetch_documents(
            store,
            vector_store.get,  # opened (a 0.9 s import) on a thread meanwhile
            secrets.box,
            source_access,
            asset,
            operation_id,
            config,
            log=context.log,
            report=progress.report,
        )
    records = fetched.manifest.records
    return dg.Output(
        fetched.manifest,
        metadata={
            "listed": len(records),
            **fetched.counts,
            "bytes_fetched": sum(r.size or 0 for r in records),
            "partial": fetched.only_some,
            **progress.link(asset.tenant, operation_id),
        },
    )
