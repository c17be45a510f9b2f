"""Stage 2, diff: compare with the catalog; record failures, remove what is gone upstream."""

import dagster as dg

from fruxon_pipelines.assets.manifests import ChangeSet, FetchedRecord, FetchManifest
from fruxon_pipelines.catalog.models import Document, now_ms
from fruxon_pipelines.partitions import knowledge_assets
from fruxon_pipelines.resources import CatalogResource, OperationProgress, VectorStoreResource


class MassDeletionRefused(dg.Failure):
    pass


def mass_deletion_guard(known: int, listed: int, allow: bool) -> None:
    """A listing that shrank by more than half is far likelier an outage than a clean-up."""
    if allow or known == 0 or listed * 2 >= known:
        return
    raise MassDeletionRefused(
        description=(
            f"the source now lists {listed} items where the index has {known}: it shrank by more "
            "than half, so nothing was deleted. If the removal is real, run again with "
            "allow_mass_deletion: true (or delete the documents yourself)."
        )
    )


@dg.asset(
    partitions_def=knowledge_assets,
    group_name="ingestion",
    kinds={"python"},
    description="Stage 2 (diff): added, changed, unchanged, removed and failed documents.",
)
def document_changes(
    context: dg.AssetExecutionContext,
    fetched_documents: FetchManifest,
    catalog: CatalogResource,
    vector_store: VectorStoreResource,
    progress: OperationProgress,
) -> dg.Output[ChangeSet]:
    request = fetched_documents.request
    store = catalog.get()
    known = store.documents_by_key(request.asset_id)
    records = fetched_documents.records
    listed = {r.source_key for r in records if r.status != "gone"}

    kept_gone: list[FetchedRecord] = []
    if request.registered_only:
        kept_gone = [r for r in records if r.status == "gone" and r.source_key in known]
        removed_keys = set()
    elif request.partial:
        removed_keys = {r.source_key for r in records if r.status == "gone"}
    else:
        mass_deletion_guard(len(known), len(listed), request.allow_mass_deletion)
        removed_keys = set(known) - listed
    removed = [known[k] for k in removed_keys if k in known]
    if request.dry_run:
        return _dry_run_changes(fetched_documents, known, removed)
    if removed:
        vector_store.get().delete_documents(request.tenant, [d.id for d in removed])
        store.delete_documents([d.id for d in removed])
        context.log.info(f"removed {len(removed)} documents that are gone upstream")
    if request.orphan_ids and not request.partial:
        # Chunks of documents the catalog does not have (an interrupted delete), found by the
        # fetch stage: a full listing is the moment to know the catalog is the whole truth.
        vector_store.get().delete_documents(request.tenant, request.orphan_ids)
        context.log.warning(
            f"removed the chunks of {len(request.orphan_ids)} documents the catalog does not have"
        )
    reindex = set(request.reindex_ids)
    operation_id = request.operation_id
    settled = {"outcome_operation_id": operation_id}
    if kept_gone:
        gone_docs = [known[r.source_key] for r in kept_gone]
        vector_store.get().delete_documents(request.tenant, [d.id for d in gone_docs])
        for record in kept_gone:
            store.upsert_document(
                request.asset_id,
                record.source_key,
                status="FAILED",
                error_message=record.error or "the source no longer has this item",
                content_hash=None,
                chunk_count=0,
                changed=False,
                **settled,
            )
        context.log.info(f"{len(kept_gone)} registered documents are gone at the source")

    changes = ChangeSet(
        request=request,
        to_process=[],
        removed=len(removed),
        removed_keys=sorted(d.source_key for d in removed),
        failed=len(kept_gone),
    )
    unchanged_keys: list[str] = []
    for record in records:
        previous = known.get(record.source_key)
        if record.status == "gone":
            continue
        if record.status == "failed":
            # Keep what is indexed (a page that errors today may be back tomorrow); say why.
            store.upsert_document(
                request.asset_id,
                record.source_key,
                status="FAILED",
                error_message=record.error,
                source_url=record.source_url or (previous.source_url if previous else None),
                title=record.title or (previous.title if previous else None),
                file_name=record.file_name,
                **settled,
            )
            changes.failed += 1
            continue
        if (
            _same_content(record, previous)
            and not request.force
            and record.document_id not in reindex
        ):
            if record.status == "fetched":
                # New validators for the same bytes: the next refresh can be a 304.
                store.upsert_document(
                    request.asset_id,
                    record.source_key,
                    etag=record.etag,
                    last_modified=record.last_modified,
                    links=record.links,
                    processed_at=now_ms(),
                )
            unchanged_keys.append(record.source_key)
            changes.unchanged += 1
            continue
        if record.staged_path is None:
            # 'unchanged' from the source but not indexed here (or forced): fetch again next run.
            store.upsert_document(
                request.asset_id,
                record.source_key,
                status="FAILED",
                error_message="the source reported no change but the document is not indexed; "
                "refresh it with force",
                **settled,
            )
            changes.failed += 1
            continue
        store.upsert_document(
            request.asset_id,
            record.source_key,
            status="PROCESSING",
            error_message=None,
            source_url=record.source_url,
            title=record.title,
            file_name=record.file_name,
            content_type=(record.content_type or "").split(";")[0].strip() or None,
            file_size=record.size,
        )
        changes.process(record, new=previous is None)
    # Read again and found the same: not changed, and this operation's outcome.
    store.settle_documents(request.asset_id, unchanged_keys, operation_id, changed=False)

    done = changes.unchanged + changes.failed + changes.removed
    progress.report(
        request.operation_id,
        force=True,
        items_total=len({r.source_key for r in records} | removed_keys),
        items_processed=done,
    )
    return dg.Output(
        changes,
        metadata={
            "added": changes.added,
            "changed": changes.changed,
            "unchanged": changes.unchanged,
            "removed": changes.removed,
            "failed": changes.failed,
        },
    )


def _same_content(record: FetchedRecord, previous: Document | None) -> bool:
    """The indexed document already holds this content."""
    return (
        previous is not None
        and previous.status == "COMPLETED"
        and (record.status == "unchanged" or record.content_hash == previous.content_hash)
    )


def _dry_run_changes(
    manifest: FetchManifest, known: dict[str, Document], removed: list[Document]
) -> dg.Output[ChangeSet]:
    """The same classification as a real run, without a single catalog or index write."""
    changes = ChangeSet(
        request=manifest.request,
        to_process=[],
        removed=len(removed),
        removed_keys=sorted(d.source_key for d in removed),
    )
    for record in manifest.records:
        previous = known.get(record.source_key)
        if record.status == "gone":
            continue
        same = _same_content(record, previous)
        if record.status == "failed":
            changes.failed += 1
        elif same and not manifest.request.force:
            changes.unchanged += 1
        elif record.staged_path is None:
            changes.failed += 1
        else:
            changes.process(record, new=previous is None)
    return dg.Output(
        changes,
        metadata={
            "dry_run": True,
            "added": changes.added,
            "changed": changes.changed,
            "removed": changes.removed,
        },
    )
