"""Asset checks: invariants between the catalog and the index, evaluated after each ingest."""

import warnings

import dagster as dg

from fruxon_pipelines.assets.embed import vector_index
from fruxon_pipelines.catalog.models import Document
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import CatalogResource, VectorStoreResource

# Partitioned checks are "preview" in Dagster 1.13; they are what lets a check run per knowledge
# asset, and the pinned release is the one tested, so the warning on every load is noise.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _catalog_and_index(
    catalog: CatalogResource, vector_store: VectorStoreResource, asset_id: str
) -> tuple[list[Document], dict[str, int]]:
    """The asset's documents in the catalog, and its chunk count per document in LanceDB."""
    asset = catalog.get().get_asset(asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {asset_id} is not in the catalog")
    documents = list(catalog.get().documents_by_key(asset_id).values())
    # The model runs embed with: during a model change the previous one's rows still serve.
    model_key = f"{asset.embedding_config['provider']}/{asset.embedding_config['model']}"
    counts = vector_store.get().chunk_counts_by_document(asset.tenant, asset_id, model_key)
    return documents, counts


@dg.asset_check(
    asset=vector_index,
    partitions_def=knowledge_assets,
    description="Every document's chunk count in the catalog matches its rows in LanceDB.",
)
def chunk_counts_match(
    context: dg.AssetCheckExecutionContext,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
) -> dg.AssetCheckResult:
    documents, in_index = _catalog_and_index(catalog, vector_store, context.partition_key)
    mismatched = {
        d.id: {"catalog": d.chunk_count, "index": in_index.get(d.id, 0)}
        for d in documents
        if d.chunk_count != in_index.get(d.id, 0)
    }
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={
            "documents": len(documents),
            "mismatched": len(mismatched),
            "examples": dg.MetadataValue.json(dict(list(mismatched.items())[:10])),
        },
    )


@dg.asset_check(
    asset=vector_index,
    partitions_def=knowledge_assets,
    description="No chunk in LanceDB belongs to a document the catalog does not know.",
)
def no_orphan_chunks(
    context: dg.AssetCheckExecutionContext,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
) -> dg.AssetCheckResult:
    documents, in_index = _catalog_and_index(catalog, vector_store, context.partition_key)
    known = {d.id for d in documents}
    orphans = {doc: n for doc, n in in_index.items() if doc not in known}
    return dg.AssetCheckResult(
        passed=not orphans,
        metadata={
            "orphan_documents": len(orphans),
            "orphan_chunks": sum(orphans.values()),
            "examples": dg.MetadataValue.json(sorted(orphans)[:10]),
        },
    )
