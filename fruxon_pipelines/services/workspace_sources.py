"""What the sources API (`/v2/documents/public`, Fini's documents API) needs beyond the catalog:
which asset a workspace's items of one source go to, discovery of a connected provider's
importable items, and deep crawls of seed links. A workspace is a tenant; a source record is a
document of one of its knowledge assets, so both APIs show the same documents.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fruxon_pipelines.catalog.models import ApiKey, Document, KnowledgeAsset, Operation
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.domain import AssetStatus, DocumentStatus, OperationType
from fruxon_pipelines.secretbox import SecretBox, secret_box
from fruxon_pipelines.services.assets import workspace_web_asset
from fruxon_pipelines.services.errors import InvalidRequest, NotFound, parse_uuid
from fruxon_pipelines.services.operations import OperationState, start_operation
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.auth import source_credentials
from fruxon_pipelines.sources.registry import (
    SOURCE_TYPES,
    InvalidSourceConfig,
    SourceReach,
    build_source,
)
from fruxon_pipelines.sources.web import normalize_url

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

# The sources API's names of source types, and ours.
SOURCE_TYPE_OF = {
    "web": "web",
    "files": "file",
    "googledrive": "google_drive",
    "notion": "notion",
    "zendesk": "zendesk",
    "confluence": "confluence",
}
WIRE_SOURCE = {ours: theirs for theirs, ours in SOURCE_TYPE_OF.items()}
INGEST_SOURCES = ("web", "googledrive", "notion", "zendesk", "confluence")
DISCOVERY_PROVIDERS = ("notion", "zendesk", "confluence")
# A deep crawl answers within this long, with what it found by then.
DEEP_CRAWL_SECONDS = 60.0


def connection(catalog: Catalog, tenant: str, source_type: str) -> KnowledgeAsset | None:
    """The asset a workspace's items of ``source_type`` are registered in and discovered
    through: an active asset of that type (with credentials, for a provider), one that ingests
    only registered documents first, then the oldest."""
    needs_auth = source_type not in ("web", "file")
    candidates = [
        asset
        for asset in catalog.list_assets(tenant)
        if asset.source_type == source_type
        and asset.status == AssetStatus.ACTIVE
        and (asset.source_auth or not needs_auth)
    ]
    candidates.sort(key=lambda a: (a.selection != "REGISTERED", a.created_at))
    if source_type == "web":  # web items go to a web asset that ingests only what it is given
        candidates = [a for a in candidates if a.selection == "REGISTERED"]
    return candidates[0] if candidates else None


def reach_of(settings: Settings, catalog: Catalog, box: SecretBox, asset: KnowledgeAsset):
    return SourceReach(
        files_dir=Path(settings.files_dir),
        allow_private_networks=settings.allow_private_networks,
        user_agent=settings.user_agent,
        http_timeout_seconds=settings.http_timeout_seconds,
        settings=settings,
        credentials=source_credentials(catalog, box, asset),
        state=asset.source_state,
    )


def discover(
    settings: Settings, catalog: Catalog, box: SecretBox, asset: KnowledgeAsset
) -> list[dict[str, Any]]:
    """The provider's importable items as the asset's credentials and parameters reach them,
    without those the asset has indexed already. Raises SourceError (categorized) when the
    provider refuses or fails."""
    source = build_source(
        asset.source_type, asset.source_config, reach_of(settings, catalog, box, asset)
    )
    imported = {
        key
        for key, doc in catalog.documents_by_key(asset.id).items()
        if doc.status == DocumentStatus.COMPLETED
    }
    return _without(source.discover(), imported)


def _without(nodes: list[dict[str, Any]], imported: set[str]) -> list[dict[str, Any]]:
    """``nodes`` without the leaves whose key is imported (and containers left empty)."""
    kept = []
    for node in nodes:
        if "key" in node:
            key = node.pop("key")
            if key not in imported:
                kept.append(node)
            continue
        for field in ("children", "pages"):
            if field in node:
                node[field] = _without(node[field], imported)
                if node[field]:
                    kept.append(node)
    return kept


def deep_crawl(settings: Settings, links: list[str], limit: int) -> list[str]:
    """Up to ``limit`` URLs found from the seed links (pages, their links on the same sites,
    sitemap entries), the seeds left out; fetched as an ingestion would (robots.txt, the
    network guard), nothing stored."""
    from fruxon_pipelines.sources.web import WebParameters, WebSource, in_scope

    params = WebParameters(urls=links, maxDepth=3, maxPages=limit)
    source = WebSource(
        params,
        allow_private_networks=settings.allow_private_networks,
        user_agent=settings.user_agent,
        timeout=settings.http_timeout_seconds,
    )
    seeds = {normalize_url(link) for link in links}
    found: dict[str, None] = {}
    deadline = time.monotonic() + DEEP_CRAWL_SECONDS
    with closing(source.fetch({})) as items:  # closed at once on break: its session too
        for item in items:
            candidates = [item.source_key] if item.status == "fetched" else []
            candidates += [k for k in (in_scope(params, link) for link in item.links) if k]
            for key in candidates:
                if key not in seeds:
                    found.setdefault(key)
            if len(found) >= limit or time.monotonic() > deadline:
                break
    return list(found)[:limit]


# Use cases of the sources API -----------------------------------------------------------------

MAX_URL_LENGTH = 2048


@dataclass
class SourcesToIngest:
    """What `POST /v2/documents/public` names; fields keep the wire's names, which errors
    name."""

    source: str
    documentIdsToAdd: list[str]  # noqa: N815
    documentIdsToRefresh: list[str]  # noqa: N815


def source_id(value: str) -> str:
    return parse_uuid(value, "source id")


def tenant_documents(
    svc: Services, tenant: str, values: list[str]
) -> dict[str, tuple[Document, KnowledgeAsset]]:
    """The workspace's documents of these ids, 400 naming those it does not have. Another
    workspace's ids count as unknown: unlike Fini (403), nothing confirms they exist."""
    ids = list(dict.fromkeys(source_id(v) for v in values))
    found = svc.catalog.tenant_documents(tenant, ids)
    missing = [d for d in ids if d not in found]
    if missing:
        raise InvalidRequest(f"no source with id {', '.join(missing)} in this workspace")
    return {d: found[d] for d in ids}


def connected_asset(svc: Services, tenant: str, provider: str) -> KnowledgeAsset:
    if provider not in DISCOVERY_PROVIDERS:
        extra = " (Google Drive has no discovery: ingest document ids of a Drive asset)"
        raise InvalidRequest(
            f"unsupported provider {provider!r}: discovery serves "
            f"{', '.join(DISCOVERY_PROVIDERS)}{extra if provider == 'googledrive' else ''}"
        )
    asset = connection(svc.catalog, tenant, SOURCE_TYPE_OF[provider])
    if asset is None:
        raise InvalidRequest(
            f"{provider} is not connected in this workspace: create a {provider} asset with "
            f"auth (POST /v1/tenants/{tenant}/assets; selection REGISTERED imports only what "
            "is registered here)"
        )
    return asset


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def web_targets(
    svc: Services, tenant: str, body: SourcesToIngest, attributes: dict[str, Any]
) -> list[tuple[Document, KnowledgeAsset, bool]]:
    """(document, asset, asked to add) for each URL; new URLs are registered in the
    workspace's web asset."""
    asked: dict[str, bool] = {}
    for field in ("documentIdsToAdd", "documentIdsToRefresh"):
        for index, value in enumerate(getattr(body, field)):
            if is_uuid(value):
                raise InvalidRequest(
                    f"{field}[{index}]: source 'web' takes URLs, and {value!r} is a source id; "
                    "send ids with the source they belong to, or refresh them with "
                    "POST /v2/documents/public/refresh"
                )
            url = normalize_url(value) if len(value) <= MAX_URL_LENGTH else None
            if url is None or len(url) > MAX_URL_LENGTH:
                raise InvalidRequest(
                    f"{field}[{index}]: {value[:200]!r} is not an http(s) URL of at most "
                    f"{MAX_URL_LENGTH} characters"
                )
            asked[url] = asked.get(url, False) or field == "documentIdsToAdd"
    known = svc.catalog.tenant_documents_by_key(tenant, "web", asked)
    unknown_refreshes = [u for u, add in asked.items() if not add and u not in known]
    if unknown_refreshes:
        raise InvalidRequest(
            f"documentIdsToRefresh: not web sources of this workspace: "
            f"{', '.join(unknown_refreshes)} (add them with documentIdsToAdd)"
        )
    new = [u for u in asked if u not in known]
    if new:
        asset = workspace_web_asset(svc, tenant, new[0])
        svc.catalog.register_documents(
            asset.id, [(u, {"source_url": u, "attributes": attributes}) for u in new]
        )
        known |= svc.catalog.tenant_documents_by_key(tenant, "web", new)
    return [(known[u][0], known[u][1], add) for u, add in asked.items()]


def provider_targets(
    svc: Services, tenant: str, body: SourcesToIngest
) -> list[tuple[Document, KnowledgeAsset, bool]]:
    source_type = SOURCE_TYPE_OF[body.source]
    asked: dict[str, bool] = {}
    for field in ("documentIdsToAdd", "documentIdsToRefresh"):
        for index, value in enumerate(getattr(body, field)):
            if not is_uuid(value):
                kind = "a URL" if normalize_url(value) else "not a source id"
                raise InvalidRequest(
                    f"{field}[{index}]: source {body.source!r} takes source ids (from "
                    f"POST /v2/documents/public/resources/{body.source} or a listing), and "
                    f"{value!r} is {kind}; URLs go with source 'web'"
                )
            ident = str(uuid.UUID(value))
            asked[ident] = asked.get(ident, False) or field == "documentIdsToAdd"
    found = tenant_documents(svc, tenant, list(asked))
    for ident, (_, asset) in found.items():
        if asset.source_type != source_type:
            raise InvalidRequest(
                f"source {ident} is a {WIRE_SOURCE.get(asset.source_type)} source, "
                f"not {body.source}"
            )
    return [(found[i][0], found[i][1], add) for i, add in asked.items()]


def launch_sources(
    svc: Services,
    key: ApiKey,
    targets: list[tuple[Document, KnowledgeAsset, bool]],
    attributes: dict[str, Any] | None = None,
) -> tuple[list[str], list[str]]:
    """One operation per asset for its documents (queued behind the asset's running one by
    Dagster's per-asset limit). Returns (first-time ids, refreshed ids)."""
    by_asset: dict[str, list[Document]] = defaultdict(list)
    assets: dict[str, KnowledgeAsset] = {}
    added, updated = [], []
    for document, asset, add in targets:
        by_asset[asset.id].append(document)
        assets[asset.id] = asset
        (added if add and document.processed_at is None else updated).append(document.id)
    for asset_id, documents in by_asset.items():
        first = any(d.id in added for d in documents)
        start_operation(
            svc,
            assets[asset_id],
            OperationType.INGEST if first else OperationType.REFRESH,
            f"apikey:{key.id}",
            document_ids=[d.id for d in documents],
            link_documents=True,
            document_attributes=attributes,
        )
    return added, updated


def ingest_sources(
    svc: Services, key: ApiKey, request: SourcesToIngest, attributes: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Register what is new and launch one operation per asset: URLs for `web`, source ids for
    the other sources. Returns (first-time ids, refreshed ids)."""
    if request.source == "web":
        targets = web_targets(svc, key.tenant, request, attributes)
    else:
        targets = provider_targets(svc, key.tenant, request)
    return launch_sources(svc, key, targets, attributes)


def refresh_sources(svc: Services, key: ApiKey, values: list[str]) -> list[str]:
    """Re-fetch these sources; a raw file cannot be (delete it and upload it again)."""
    found = tenant_documents(svc, key.tenant, values)
    files = [i for i, (_, asset) in found.items() if asset.source_type == "file"]
    if files:
        raise InvalidRequest(
            f"raw-file sources cannot be refreshed (delete and upload again): {', '.join(files)}"
        )
    launch_sources(svc, key, [(d, a, False) for d, a in found.values()])
    return list(found)


def delete_sources(svc: Services, tenant: str, values: list[str]) -> list[Document]:
    """Remove the sources' chunks from the index, then the records."""
    found = tenant_documents(svc, tenant, values)
    by_asset: dict[str, list[str]] = defaultdict(list)
    for ident, (_, asset) in found.items():
        by_asset[asset.id].append(ident)
    for ids in by_asset.values():
        svc.vectors.delete_documents(tenant, ids)
        svc.catalog.delete_documents(ids)
    return [document for document, _ in found.values()]


def register_resources(
    svc: Services, tenant: str, provider: str, resources: list[dict[str, Any]]
) -> tuple[list[str], list[str]]:
    """Source records for picked resources (new: added; known: metadata updated)."""
    asset = connected_asset(svc, tenant, provider)
    resource_key = SOURCE_TYPES[asset.source_type].resource_key
    items = []
    for index, resource in enumerate(resources):
        try:
            source_key = resource_key(resource)
        except ValueError as error:
            raise InvalidRequest(f"resources[{index}].{error}") from error
        attributes = {
            "mimeType": resource.get("mimeType"),
            "object": resource.get("object") or resource.get("type"),
        }
        items.append(
            (
                source_key,
                {
                    "title": resource.get("title"),
                    "source_url": resource.get("originalUrl"),
                    "attributes": {k: v for k, v in attributes.items() if v},
                },
            )
        )
    return svc.catalog.register_documents(asset.id, items)


def discover_resources(svc: Services, tenant: str, provider: str) -> list[dict[str, Any]]:
    """What the connected provider has that is not imported yet. Raises CategorizedError when
    the provider refuses or fails."""
    asset = connected_asset(svc, tenant, provider)
    try:
        return discover(svc.settings, svc.catalog, secret_box(svc.settings), asset)
    except InvalidSourceConfig as error:
        raise InvalidRequest(
            f"the {provider} connection's parameters are not valid: {error}"
        ) from error


def source_page(
    svc: Services,
    tenant: str,
    *,
    limit: int,
    cursor: str | None,
    newer: bool,
    source_types: list[str] | None,
    document_id: str | None,
    title: str | None,
    url: str | None,
    changed: bool | None,
) -> tuple[list[tuple[Document, KnowledgeAsset]], bool]:
    """A page of the workspace's source records, newest change first, and whether there are
    more; ``cursor`` is a source id to go on from."""
    after = None
    if cursor:
        after = tenant_documents(svc, tenant, [cursor])[source_id(cursor)][0]
    return svc.catalog.tenant_documents_page(
        tenant,
        limit=limit,
        after=after,
        newer=newer,
        source_types=source_types,
        document_id=source_id(document_id) if document_id else None,
        title=title,
        url=url,
        changed=changed,
    )


def get_source(svc: Services, tenant: str, value: str) -> tuple[Document, KnowledgeAsset]:
    """One of the workspace's source records (another workspace's is not confirmed)."""
    ident = source_id(value)
    found = svc.catalog.tenant_documents(tenant, [ident])
    if ident not in found:
        raise NotFound(f"no source {ident} in this workspace")
    return found[ident]


def texts_and_operations(
    svc: Services, documents: list[Document]
) -> tuple[dict[str, Any], dict[str, tuple[Operation | None, OperationState | None]]]:
    """The documents' texts, and the operations the sources API last asked to take them on with
    their states: read once per page."""
    texts = svc.catalog.document_texts(d.id for d in documents)
    operations: dict[str, tuple[Operation | None, OperationState | None]] = {}
    for document in documents:
        op_id = document.operation_id
        if op_id and op_id not in operations:
            operation = svc.catalog.get_operation(op_id)
            state = None
            if operation is not None:
                state = svc.statuses.known(operation) or svc.statuses.of(operation)
            operations[op_id] = (operation, state)
    return texts, operations
