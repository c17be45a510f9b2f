"""Stage 1, fetch: ask the source what exists now and fetch only what changed."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
from pydantic import Field

from fruxon_pipelines.assets.drift import index_drift
from fruxon_pipelines.assets.manifests import FetchedRecord, FetchManifest, IngestRequest
from fruxon_pipelines.catalog.models import Document
from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.errors import INVALID_CONFIG, failing_with_category
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import (
    CatalogResource,
    OperationProgress,
    SecretsResource,
    SourceAccess,
    VectorStoreResource,
)
from fruxon_pipelines.settings import get_settings
from fruxon_pipelines.sources.auth import source_credentials
from fruxon_pipelines.sources.base import KnownDocument, SourceError
from fruxon_pipelines.sources.registry import InvalidSourceConfig, SourceReach, build_source
from fruxon_pipelines.tags import MANUAL, OPERATION_TAG, OPERATION_TYPE_TAG


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


def known_documents(
    documents: dict[str, Document], reindex: set[str] = frozenset()
) -> dict[str, KnownDocument]:
    """Conditional-request state; only indexed documents may be answered with 'unchanged', and
    not those to be indexed again."""
    known = {}
    for key, doc in documents.items():
        indexed = doc.status == "COMPLETED" and doc.id not in reindex
        known[key] = KnownDocument(
            source_key=key,
            etag=doc.etag if indexed else None,
            last_modified=doc.last_modified if indexed else None,
            content_hash=doc.content_hash if indexed else None,
            links=tuple(doc.links or ()),
        )
    return known


def stage_bytes(staging: Path, data: bytes) -> tuple[str, str]:
    """Write fetched bytes once, content-addressed; returns (sha256, path)."""
    digest = hashlib.sha256(data).hexdigest()
    path = staging / digest
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return digest, str(path)


@dg.asset(
    partitions_def=knowledge_assets,
    group_name="ingestion",
    kinds={"python"},
    description="Stage 1 (fetch): the source's items as they are now; changed bytes are staged.",
)
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
    with failing_with_category(catalog.get(), operation_id, asset_id):
        return _fetch(
            context, config, catalog, source_access, progress, secrets, vector_store, operation_id
        )


def _fetch(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    catalog: CatalogResource,
    source_access: SourceAccess,
    progress: OperationProgress,
    secrets: SecretsResource,
    vector_store: VectorStoreResource,
    operation_id: str,
) -> dg.Output[FetchManifest]:
    asset_id = context.partition_key
    store = catalog.get()
    asset = store.get_asset(asset_id)
    if asset is None:
        raise dg.Failure(f"knowledge asset {asset_id} is not in the catalog (deleted?)")
    store.ensure_operation(
        operation_id=operation_id,
        asset_id=asset_id,
        tenant=asset.tenant,
        type=context.run.tags.get(OPERATION_TYPE_TAG, MANUAL),
        run_id=context.run_id,
    )
    documents = store.documents_by_key(asset_id)
    only_keys = None
    if config.document_ids:
        by_id = {doc.id: key for key, doc in documents.items()}
        unknown = sorted(set(config.document_ids) - set(by_id))
        if unknown:
            # Deleted since they were asked for: nothing left to refresh; the rest go on.
            context.log.warning(f"documents no longer in this asset: {', '.join(unknown)}")
        only_keys = {by_id[d] for d in config.document_ids if d in by_id}
    if config.source_keys:
        only_keys = (only_keys or set()) | set(config.source_keys)
    registered_only = asset.selection == "REGISTERED"
    if registered_only:
        # An asset that ingests what was picked: a full refresh is every registered document,
        # and a webhook's or poll's keys count only where they name one.
        only_keys = set(documents) if only_keys is None else only_keys & set(documents)

    reach = SourceReach(
        files_dir=Path(source_access.files_dir),
        allow_private_networks=source_access.allow_private_networks,
        user_agent=source_access.user_agent,
        http_timeout_seconds=source_access.http_timeout_seconds,
        settings=get_settings(),
        credentials=source_credentials(store, secrets.box(), asset),
        state=None if config.force else asset.source_state,
        registered_only=registered_only,
    )
    try:
        source = build_source(asset.source_type, asset.source_config, reach)
    except InvalidSourceConfig as error:
        raise SourceError(str(error), INVALID_CONFIG) from error

    staging = Path(source_access.staging_dir) / asset_id
    if only_keys is None and staging.exists():
        # Left-overs of an earlier, interrupted run: this run fetches afresh.
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)

    records: list[FetchedRecord] = []
    counts = {"fetched": 0, "unchanged": 0, "failed": 0, "gone": 0}
    reindex: set[str] = set()
    orphans: dict[str, int] = {}
    # A full refresh repairs what the asset checks would report: a document whose chunks in
    # the index disagree with the catalog is read and indexed again (not while a model change
    # is under way: the new model's rows are partial until it completes), and chunks of
    # documents the catalog does not have are deleted by the diff stage.
    if only_keys is None and not config.dry_run:
        drift = index_drift(vector_store.get(), asset, documents.values())
        orphans = drift.orphans
        if asset.serving_embedding is None:
            reindex = set(drift.mismatched)
        if reindex:
            context.log.warning(
                f"{len(reindex)} documents have another chunk count in the index than in the "
                "catalog; they are read and indexed again"
            )
    for item in source.fetch(known_documents(documents, reindex), only_keys, config.force):
        record = FetchedRecord(
            source_key=item.source_key,
            document_id=document_id_for(asset_id, item.source_key),
            status=item.status,
            source_url=item.source_url,
            title=item.title,
            file_name=item.file_name,
            content_type=item.content_type,
            etag=item.etag,
            last_modified=item.last_modified,
            error=item.error,
            links=list(item.links),
        )
        if item.status == "fetched" and item.data is not None:
            record.content_hash, record.staged_path = stage_bytes(staging, item.data)
            record.size = len(item.data)
        records.append(record)
        counts[item.status] += 1
        progress.report(operation_id, items_total=len(records))

    progress.report(operation_id, force=True, items_total=len(records))
    context.log.info(f"listed {len(records)} items: {counts}")
    request = IngestRequest(
        asset_id=asset_id,
        tenant=asset.tenant,
        operation_id=operation_id,
        force=config.force,
        # An incremental listing (a changes feed) names what changed, not all that exists.
        partial=only_keys is not None or not getattr(source, "complete_listing", True),
        allow_mass_deletion=config.allow_mass_deletion,
        dry_run=config.dry_run,
        source_state=getattr(source, "next_state", None),
        registered_only=registered_only,
        reindex_ids=sorted(reindex),
        orphan_ids=sorted(orphans),
    )
    return dg.Output(
        FetchManifest(request=request, records=records),
        metadata={
            "listed": len(records),
            "fetched": counts["fetched"],
            "unchanged": counts["unchanged"],
            "failed": counts["failed"],
            "gone": counts["gone"],
            "bytes_fetched": sum(r.size or 0 for r in records),
            "partial": only_keys is not None,
        },
    )
