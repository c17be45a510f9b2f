"""Asset checks: invariants between the catalog and the index, evaluated after each ingest."""

import warnings
from collections.abc import Callable

import dagster as dg

from fruxon_pipelines.assets.embed import vector_index
from fruxon_pipelines.ingest.drift import IndexDrift, index_drift
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import CatalogResource, VectorStoreResource

# Partitioned checks are "preview" in Dagster 1.13; they are what lets a check run per knowledge
# asset, and the pinned release is the one tested, so the warning on every load is noise.
warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")


def _drift(
    catalog: CatalogResource, vector_store: VectorStoreResource, asset_id: str
) -> IndexDrift:
    asset = catalog.get().get_asset(asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {asset_id} is not in the catalog")
    documents = catalog.get().documents_by_key(asset_id).values()
    return index_drift(vector_store.get(), asset, documents)


def _drift_check(
    name: str, description: str, verdict: Callable[[IndexDrift], dg.AssetCheckResult]
) -> dg.AssetChecksDefinition:
    """A check of the index against the catalog: both checks read one drift and judge one side
    of it (``verdict``), per knowledge asset."""

    @dg.asset_check(
        asset=vector_index,
        name=name,
        partitions_def=knowledge_assets,
        description=description,
    )
    def check(
        context: dg.AssetCheckExecutionContext,
        catalog: CatalogResource,
        vector_store: VectorStoreResource,
    ) -> dg.AssetCheckResult:
        return verdict(_drift(catalog, vector_store, context.partition_key))

    return check


def _chunk_counts(drift: IndexDrift) -> dg.AssetCheckResult:
    mismatched = {
        doc: {"catalog": in_catalog, "index": in_index}
        for doc, (in_catalog, in_index) in drift.mismatched.items()
    }
    return dg.AssetCheckResult(
        passed=not mismatched,
        metadata={
            "documents": drift.documents,
            "mismatched": len(mismatched),
            "examples": dg.MetadataValue.json(dict(list(mismatched.items())[:10])),
        },
    )


def _orphans(drift: IndexDrift) -> dg.AssetCheckResult:
    orphans = drift.orphans
    return dg.AssetCheckResult(
        passed=not orphans,
        metadata={
            "orphan_documents": len(orphans),
            "orphan_chunks": sum(orphans.values()),
            "examples": dg.MetadataValue.json(sorted(orphans)[:10]),
        },
    )


chunk_counts_match = _drift_check(
    "chunk_counts_match",
    "Every document's chunk count in the catalog matches its rows in LanceDB.",
    _chunk_counts,
)
no_orphan_chunks = _drift_check(
    "no_orphan_chunks",
    "No chunk in LanceDB belongs to a document the catalog does not know.",
    _orphans,
)
