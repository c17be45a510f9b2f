"""Stage 1, fetch: ask the source what exists now and fetch only what changed."""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fruxon_pipelines.catalog.models import Document, KnowledgeAsset
from fruxon_pipelines.catalog.store import document_id_for
from fruxon_pipelines.errors import INVALID_CONFIG
from fruxon_pipelines.ingest.drift import index_drift
from fruxon_pipelines.ingest.manifests import FetchedRecord, FetchManifest, IngestRequest
from fruxon_pipelines.secretbox import SecretBox
from fruxon_pipelines.settings import get_settings
from fruxon_pipelines.sources.auth import source_credentials
from fruxon_pipelines.sources.base import KnownDocument, Source, SourceError
from fruxon_pipelines.sources.registry import InvalidSourceConfig, SourceReach, build_source


class FetchOptions(Protocol):
    """What one run asks for (the fetch asset's op config)."""

    document_ids: list[str]
    source_keys: list[str]
    force: bool
    dry_run: bool
    allow_mass_deletion: bool


class SourcePlaces(Protocol):
    """Where sources read from and stage to, and how they may reach the network."""

    files_dir: str
    staging_dir: str
    allow_private_networks: bool
    user_agent: str
    http_timeout_seconds: float


@dataclass
class Fetched:
    manifest: FetchManifest
    # Items by what the source said of them: fetched, unchanged, failed, gone.
    counts: dict[str, int]
    # Only some documents were asked for (document ids, source keys, or registered ones).
    only_some: bool


def known_documents(
    documents: dict[str, Document],
    reindex: set[str] = frozenset(),
    operation_started: Callable[[str], float | None] = lambda _: None,
) -> dict[str, KnownDocument]:
    """Conditional-request state; only indexed documents may be answered with 'unchanged', and
    not those to be indexed again. ``operation_started``: when an operation was created (epoch
    seconds), for the one that last read or confirmed each document."""
    known = {}
    for key, doc in documents.items():
        indexed = doc.status == "COMPLETED" and doc.id not in reindex
        confirmed = doc.outcome_operation_id if indexed else None
        known[key] = KnownDocument(
            source_key=key,
            etag=doc.etag if indexed else None,
            last_modified=doc.last_modified if indexed else None,
            content_hash=doc.content_hash if indexed else None,
            links=tuple(doc.links or ()),
            confirmed_at=operation_started(confirmed) if confirmed else None,
        )
    return known


def operation_start_times(store: Any) -> Callable[[str], float | None]:
    """When each operation was created (epoch seconds), read once per operation."""

    @functools.cache
    def started(operation_id: str) -> float | None:
        operation = store.get_operation(operation_id)
        return operation.created_at / 1000 if operation is not None else None

    return started


def stage_bytes(staging: Path, data: bytes) -> tuple[str, str]:
    """Write fetched bytes once, content-addressed; returns (sha256, path)."""
    digest = hashlib.sha256(data).hexdigest()
    path = staging / digest
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return digest, str(path)


def keys_asked_for(
    asset: KnowledgeAsset,
    documents: dict[str, Document],
    options: FetchOptions,
    log: logging.Logger,
) -> set[str] | None:
    """The source keys this run reads, or None for everything the source lists."""
    only_keys = None
    if options.document_ids:
        by_id = {doc.id: key for key, doc in documents.items()}
        unknown = sorted(set(options.document_ids) - set(by_id))
        if unknown:
            # Deleted since they were asked for: nothing left to refresh; the rest go on.
            log.warning(f"documents no longer in this asset: {', '.join(unknown)}")
        only_keys = {by_id[d] for d in options.document_ids if d in by_id}
    if options.source_keys:
        only_keys = (only_keys or set()) | set(options.source_keys)
    if asset.selection == "REGISTERED":
        # An asset that ingests what was picked: a full refresh is every registered document,
        # and a webhook's or poll's keys count only where they name one.
        only_keys = set(documents) if only_keys is None else only_keys & set(documents)
    return only_keys


def open_source(
    asset: KnowledgeAsset,
    store: Any,
    secret_box: Callable[[], SecretBox],
    places: SourcePlaces,
    *,
    force: bool,
) -> Source:
    """The asset's connector, with its credentials (opened with ``secret_box()``) and, unless
    forced, the state its last complete run left."""
    reach = SourceReach(
        files_dir=Path(places.files_dir),
        allow_private_networks=places.allow_private_networks,
        user_agent=places.user_agent,
        http_timeout_seconds=places.http_timeout_seconds,
        settings=get_settings(),
        credentials=source_credentials(store, secret_box(), asset),
        state=None if force else asset.source_state,
        registered_only=asset.selection == "REGISTERED",
    )
    try:
        return build_source(asset.source_type, asset.source_config, reach)
    except InvalidSourceConfig as error:
        raise SourceError(str(error), INVALID_CONFIG) from error


def fetch_documents(
    store: Any,
    open_vectors: Callable[[], Any],
    secret_box: Callable[[], SecretBox],
    places: SourcePlaces,
    asset: KnowledgeAsset,
    operation_id: str,
    options: FetchOptions,
    *,
    log: logging.Logger,
    report: Callable[..., None],
) -> Fetched:
    """List the asset's source, fetch what changed into the staging directory, and say what
    the later stages are to do (the manifest). ``report`` is the operation's progress reporter;
    ``open_vectors`` gives the vector store, which only a full refresh reads here.
    """
    documents = store.documents_by_key(asset.id)
    only_keys = keys_asked_for(asset, documents, options, log)
    source = open_source(asset, store, secret_box, places, force=options.force)

    staging = Path(places.staging_dir) / asset.id
    if not (options.document_ids or options.source_keys) and staging.exists():
        # Left-overs of an earlier, interrupted run: a full refresh (of an asset's registered
        # documents too, though it reads only those) fetches afresh.
        shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)

    reindex: set[str] = set()
    orphans: dict[str, int] = {}
    # A full refresh repairs what the asset checks would report: a document whose chunks in
    # the index disagree with the catalog is read and indexed again (not while a model change
    # is under way: the new model's rows are partial until it completes), and chunks of
    # documents the catalog does not have are deleted by the diff stage.
    if only_keys is None and not options.dry_run:
        drift = index_drift(open_vectors(), asset, documents.values())
        orphans = drift.orphans
        if asset.serving_embedding is None:
            reindex = set(drift.mismatched)
        if reindex:
            log.warning(
                f"{len(reindex)} documents have another chunk count in the index than in the "
                "catalog; they are read and indexed again"
            )
    records: list[FetchedRecord] = []
    counts = {"fetched": 0, "unchanged": 0, "failed": 0, "gone": 0}
    known = known_documents(documents, reindex, operation_start_times(store))
    for item in source.fetch(known, only_keys, options.force):
        record = FetchedRecord(
            source_key=item.source_key,
            document_id=document_id_for(asset.id, item.source_key),
            status=item.status,
            **item.metadata(),
        )
        if item.status == "fetched" and item.data is not None:
            record.content_hash, record.staged_path = stage_bytes(staging, item.data)
            record.size = len(item.data)
        records.append(record)
        counts[item.status] += 1
        report(operation_id, items_total=len(records))

    report(operation_id, force=True, items_total=len(records))
    log.info(f"listed {len(records)} items: {counts}")
    request = IngestRequest(
        asset_id=asset.id,
        tenant=asset.tenant,
        operation_id=operation_id,
        force=options.force,
        # An incremental listing (a changes feed) names what changed, not all that exists.
        partial=only_keys is not None or not source.complete_listing,
        allow_mass_deletion=options.allow_mass_deletion,
        dry_run=options.dry_run,
        source_state=source.next_state,
        registered_only=asset.selection == "REGISTERED",
        reindex_ids=sorted(reindex),
        orphan_ids=sorted(orphans),
    )
    manifest = FetchManifest(request=request, records=records)
    return Fetched(manifest=manifest, counts=counts, only_some=only_keys is not None)
