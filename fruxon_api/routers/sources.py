"""The sources API: Fini's documents API (`/v2/documents/public`) as a second facade over the
same knowledge assets, documents and operations.

A workspace is a tenant and authenticates with a workspace API key (`fruxon apikey create`);
a source record is a document of one of the tenant's assets. Web URLs go to the tenant's web
asset that ingests only what it is given (created on first use); provider items are registered
in, and ingested by, the tenant's connected asset of that provider. Ingest, refresh and delete
become operations and catalog writes exactly as the Assets API makes them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from fruxon_api.deps import Services, Svc, parse_uuid
from fruxon_api.problems import Problem, categorized_problem
from fruxon_api.ratelimit import REFRESH
from fruxon_api.runs import OperationState
from fruxon_api.schemas import (
    DeepCrawlRequest,
    DeepCrawlResult,
    DeletedSource,
    DeletedSources,
    DeleteSourcesRequest,
    IngestSourcesRequest,
    QueuedSources,
    RegisterResourcesRequest,
    SourceIdsRequest,
    SourcePage,
    SourceRecord,
)
from fruxon_pipelines.api_keys import live_api_key, may
from fruxon_pipelines.assets_admin import validate_embedding
from fruxon_pipelines.catalog.models import ApiKey, Document, KnowledgeAsset, Operation
from fruxon_pipelines.errors import CategorizedError
from fruxon_pipelines.secretbox import secret_box
from fruxon_pipelines.sources.registry import SOURCE_TYPES, InvalidSourceConfig
from fruxon_pipelines.sources.web import normalize_url
from fruxon_pipelines.workspace_sources import (
    DISCOVERY_PROVIDERS,
    INGEST_SOURCES,
    SOURCE_TYPE_OF,
    WIRE_SOURCE,
    connection,
    deep_crawl,
    discover,
)

MAX_URL_LENGTH = 2048
router = APIRouter(prefix="/v2/documents/public", tags=["sources (Fini documents API)"])

# Auth ----------------------------------------------------------------------------------------


def workspace_key(request: Request) -> ApiKey:
    """The live workspace API key of the request (401 otherwise)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send Authorization: Bearer <workspace API key>")
    row = live_api_key(request.app.state.services.catalog, token.strip())
    if row is None:
        raise _unauthorized("the API key is unknown, malformed or revoked")
    return row


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _scoped(scope: str):
    def check(key: Annotated[ApiKey, Depends(workspace_key)]) -> ApiKey:
        if not may(key, scope):
            raise Problem(403, "Forbidden", f"this API key lacks the {scope} scope")
        return key

    return check


ReadKey = Annotated[ApiKey, Depends(_scoped("read"))]
WriteKey = Annotated[ApiKey, Depends(_scoped("write"))]


def _bad(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


# Presentation --------------------------------------------------------------------------------

_OBJECT_TYPE = {"web": "url", "file": "file", "google_drive": "file", "zendesk": "article"}


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def external_id(document: Document) -> str:
    """The item's id at its source: the provider's id, a web page's URL, a file's name."""
    key = document.source_key
    if key.startswith(("notion:", "zendesk:", "confluence:", "gdrive:")):
        return key.rsplit(":", 1)[-1]
    return key


def job_status(
    document: Document, requested: Operation | None, state: OperationState | None
) -> tuple[str | None, str, str | None]:
    """(linkedJobStatus, error, linkedJobId) of a document: while the operation the sources
    API last asked for has not settled it, that operation's state; after, the document's
    outcome (whichever run wrote it)."""
    outcome = {"COMPLETED": "COMPLETED", "FAILED": "FAILED", "PROCESSING": "IN_PROGRESS"}
    settled = document.outcome_operation_id
    if requested is not None and state is not None and settled != requested.id:
        if state.status == "PENDING":
            return "PENDING", "", requested.id
        if state.status == "RUNNING":
            return "IN_PROGRESS", "", requested.id
        if state.status == "CANCELLED":
            return "FAILED", "the operation was cancelled", requested.id
        if state.status == "FAILED":
            return "FAILED", state.error or "the operation failed", requested.id
        if settled is None:  # it ended without reaching the document
            return "FAILED", "the operation did not reach this document", requested.id
    status = outcome.get(document.status)  # None: registered, never asked for
    error = (document.error_message or "the document failed") if status == "FAILED" else ""
    return status, error, settled or (requested.id if requested else None)


def records(svc: Services, rows: list[tuple[Document, KnowledgeAsset]]) -> list[SourceRecord]:
    """Source records of these documents: their text and operations read once per page."""
    texts = svc.catalog.document_texts(d.id for d, _ in rows)
    operations: dict[str, tuple[Operation | None, OperationState | None]] = {}
    for document, _ in rows:
        op_id = document.operation_id
        if op_id and op_id not in operations:
            operation = svc.catalog.get_operation(op_id)
            state = None
            if operation is not None:
                state = svc.runs.known_state(operation) or svc.runs.state(operation)
            operations[op_id] = (operation, state)
    out = []
    for document, asset in rows:
        operation, state = operations.get(document.operation_id or "", (None, None))
        status, error, job = job_status(document, operation, state)
        text = texts.get(document.id)
        attributes = document.attributes or {}
        success = document.status == "COMPLETED"
        out.append(
            SourceRecord(
                id=document.id,
                originalUrl=document.source_url,
                title=document.title,
                source=WIRE_SOURCE.get(asset.source_type, asset.source_type),
                externalId=external_id(document),
                english=bool(attributes.get("english")),
                baser=bool(attributes.get("baser")),
                paragraphs=text.paragraphs if text is not None and success else [],
                oldParagraphs=text.previous_paragraphs if text is not None else [],
                success=success,
                error=error,
                createdAt=_iso(document.created_at),
                updatedAt=_iso(document.modified_at),
                mimeType=document.content_type or attributes.get("mimeType"),
                type=attributes.get("object") or _OBJECT_TYPE.get(asset.source_type, "page"),
                linkedJobId=job,
                linkedJobStatus=status,
                changed=document.changed,
                knowledgeAssetId=asset.id,
            )
        )
    return out


# Reading -------------------------------------------------------------------------------------


def _document_id(value: str) -> str:
    return parse_uuid(value, "source id")


def _tenant_documents(
    svc: Services, tenant: str, values: list[str]
) -> dict[str, tuple[Document, KnowledgeAsset]]:
    """The workspace's documents of these ids, 400 naming those it does not have. Another
    workspace's ids count as unknown: unlike Fini (403), nothing confirms they exist."""
    ids = list(dict.fromkeys(_document_id(v) for v in values))
    found = svc.catalog.tenant_documents(tenant, ids)
    missing = [d for d in ids if d not in found]
    if missing:
        raise _bad(f"no source with id {', '.join(missing)} in this workspace")
    return {d: found[d] for d in ids}


@router.get("", response_model=SourcePage)
def list_sources(
    key: ReadKey,
    svc: Svc,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    direction: Literal["next", "previous"] = "next",
    source: str | None = None,
    id: str | None = None,
    title: Annotated[str | None, Query(max_length=1000)] = None,
    url: Annotated[str | None, Query(max_length=4096)] = None,
    changed: bool | None = None,
):
    """Newest change first (updatedAt, then externalId); `cursor` is a source id: `next` goes
    on to older records, `previous` back to newer ones."""
    for name, value in (("title", title), ("url", url)):
        if value is not None and "\x00" in value:
            raise _bad(f"{name} must not contain NUL characters")
    types = None
    if source is not None:
        if source not in SOURCE_TYPE_OF:
            raise _bad(f"source must be one of {', '.join(SOURCE_TYPE_OF)}")
        types = [SOURCE_TYPE_OF[source]]
    after = None
    if cursor:
        after = _tenant_documents(svc, key.tenant, [cursor])[_document_id(cursor)][0]
    rows, more = svc.catalog.tenant_documents_page(
        key.tenant,
        limit=limit,
        after=after,
        newer=direction == "previous",
        source_types=types,
        document_id=_document_id(id) if id else None,
        title=title,
        url=url,
        changed=changed,
    )
    return SourcePage(documents=records(svc, rows), hasMore=more)


@router.get("/resources/{provider}")
def list_provider_resources(provider: str, key: ReadKey, svc: Svc) -> list[dict[str, Any]]:
    """What the connected provider has that is not imported yet: Notion a flat list of pages,
    Zendesk categories → sections → articles, Confluence spaces with their pages."""
    asset = _connected(svc, key.tenant, provider)
    try:
        return discover(svc.settings, svc.catalog, secret_box(svc.settings), asset)
    except InvalidSourceConfig as error:
        raise _bad(f"the {provider} connection's parameters are not valid: {error}") from error
    except CategorizedError as error:
        # Revoked or insufficient credentials: the provider is as good as disconnected (400).
        raise categorized_problem(error, f"{provider}: {error}", (400, "Bad Request")) from error


@router.post("/resources/{provider}", response_model=QueuedSources)
def register_provider_resources(
    provider: str, body: RegisterResourcesRequest, key: WriteKey, svc: Svc
):
    """Create source records for picked resources (new: added; known: metadata updated).
    Nothing is ingested until they are named in POST /v2/documents/public."""
    asset = _connected(svc, key.tenant, provider)
    resource_key = SOURCE_TYPES[asset.source_type].resource_key
    items = []
    for index, resource in enumerate(body.resources):
        try:
            source_key = resource_key(resource.model_dump())
        except ValueError as error:
            raise _bad(f"resources[{index}].{error}") from error
        attributes = {"mimeType": resource.mimeType, "object": resource.object or resource.type}
        items.append(
            (
                source_key,
                {
                    "title": resource.title,
                    "source_url": resource.originalUrl,
                    "attributes": {k: v for k, v in attributes.items() if v},
                },
            )
        )
    added, updated = svc.catalog.register_documents(asset.id, items)
    return QueuedSources(addedDocumentIds=added, updatedDocumentIds=updated)


def _connected(svc: Services, tenant: str, provider: str) -> KnowledgeAsset:
    if provider not in DISCOVERY_PROVIDERS:
        extra = " (Google Drive has no discovery: ingest document ids of a Drive asset)"
        raise _bad(
            f"unsupported provider {provider!r}: discovery serves "
            f"{', '.join(DISCOVERY_PROVIDERS)}{extra if provider == 'googledrive' else ''}"
        )
    asset = connection(svc.catalog, tenant, SOURCE_TYPE_OF[provider])
    if asset is None:
        raise _bad(
            f"{provider} is not connected in this workspace: create a {provider} asset with "
            f"auth (POST /v1/tenants/{tenant}/assets; selection REGISTERED imports only what "
            "is registered here)"
        )
    return asset


@router.post("/deep-crawl/links", response_model=DeepCrawlResult)
def deep_crawl_links(body: DeepCrawlRequest, key: WriteKey, svc: Svc):
    """URLs found from the seed links (same sites, sitemaps included); nothing is stored."""
    for index, link in enumerate(body.links):
        if len(link) > MAX_URL_LENGTH or normalize_url(link) is None or _is_uuid(link):
            raise _bad(f"links[{index}]: {link!r} is not an http(s) URL")
    found = deep_crawl(svc.settings, body.links, body.limit)
    return DeepCrawlResult(
        data=found, message=f"crawled {len(body.links)} parent URLs, found {len(found)} URLs"
    )


@router.get("/{document_id}", response_model=SourceRecord)
def get_source(document_id: str, key: ReadKey, svc: Svc):
    ident = _document_id(document_id)
    found = svc.catalog.tenant_documents(key.tenant, [ident])
    if ident not in found:  # another workspace's too: nothing is confirmed
        raise Problem(404, "Not Found", f"no source {ident} in this workspace")
    return records(svc, [found[ident]])[0]


# Writing -------------------------------------------------------------------------------------


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@router.post("", response_model=QueuedSources)
def ingest_sources(body: IngestSourcesRequest, key: WriteKey, svc: Svc):
    """Queue ingestion: URLs for `web`, source ids for the other sources. Returns at once; a
    record's `linkedJobStatus` follows the operation."""
    if body.source not in INGEST_SOURCES:
        raise _bad(f"unsupported source {body.source!r}: one of {', '.join(INGEST_SOURCES)}")
    if not body.documentIdsToAdd and not body.documentIdsToRefresh:
        raise _bad("documentIdsToAdd or documentIdsToRefresh must name at least one item")
    svc.limits.take(REFRESH, key.tenant)  # each call launches an operation, like a refresh
    attributes = {"english": body.english, "baser": body.baser}
    if body.source == "web":
        targets = _web_targets(svc, key.tenant, body, attributes)
    else:
        targets = _provider_targets(svc, key.tenant, body)
    added, updated = _launch(svc, key, targets, attributes)
    return QueuedSources(addedDocumentIds=added, updatedDocumentIds=updated)


def _web_targets(
    svc: Services, tenant: str, body: IngestSourcesRequest, attributes: dict[str, Any]
) -> list[tuple[Document, KnowledgeAsset, bool]]:
    """(document, asset, asked to add) for each URL; new URLs are registered in the
    workspace's web asset."""
    asked: dict[str, bool] = {}
    for field in ("documentIdsToAdd", "documentIdsToRefresh"):
        for index, value in enumerate(getattr(body, field)):
            if _is_uuid(value):
                raise _bad(
                    f"{field}[{index}]: source 'web' takes URLs, and {value!r} is a source id; "
                    "send ids with the source they belong to, or refresh them with "
                    "POST /v2/documents/public/refresh"
                )
            url = normalize_url(value) if len(value) <= MAX_URL_LENGTH else None
            if url is None or len(url) > MAX_URL_LENGTH:
                raise _bad(
                    f"{field}[{index}]: {value[:200]!r} is not an http(s) URL of at most "
                    f"{MAX_URL_LENGTH} characters"
                )
            asked[url] = asked.get(url, False) or field == "documentIdsToAdd"
    known = svc.catalog.tenant_documents_by_key(tenant, "web", asked)
    unknown_refreshes = [u for u, add in asked.items() if not add and u not in known]
    if unknown_refreshes:
        raise _bad(
            f"documentIdsToRefresh: not web sources of this workspace: "
            f"{', '.join(unknown_refreshes)} (add them with documentIdsToAdd)"
        )
    new = [u for u in asked if u not in known]
    if new:
        asset = _web_asset(svc, tenant, new[0])
        svc.catalog.register_documents(
            asset.id, [(u, {"source_url": u, "attributes": attributes}) for u in new]
        )
        known |= svc.catalog.tenant_documents_by_key(tenant, "web", new)
    return [(known[u][0], known[u][1], add) for u, add in asked.items()]


def _web_asset(svc: Services, tenant: str, first_url: str) -> KnowledgeAsset:
    """The workspace's web asset that ingests only what it is given; made on first use with
    the default embedding (create one with selection REGISTERED beforehand to choose)."""
    asset = connection(svc.catalog, tenant, "web")
    if asset is not None:
        return asset
    asset_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fruxon:{tenant}:sources:web"))
    existing = svc.catalog.get_asset(asset_id)
    if existing is None:
        try:
            existing = svc.catalog.create_asset(
                asset_id=asset_id,
                tenant=tenant,
                name="Web sources",
                source_type="web",
                source_config={"urls": [first_url], "maxDepth": 0, "maxPages": 100_000},
                embedding_config=validate_embedding({}),
                selection="REGISTERED",
            )
        except Exception:  # a concurrent first request made it: use that one
            existing = svc.catalog.get_asset(asset_id)
            if existing is None:
                raise
        svc.runs.add_partition(asset_id)
    if existing.status != "ACTIVE":
        raise Problem(409, "Conflict", "the workspace's web asset is being deleted; retry")
    return existing


def _provider_targets(
    svc: Services, tenant: str, body: IngestSourcesRequest
) -> list[tuple[Document, KnowledgeAsset, bool]]:
    source_type = SOURCE_TYPE_OF[body.source]
    asked: dict[str, bool] = {}
    for field in ("documentIdsToAdd", "documentIdsToRefresh"):
        for index, value in enumerate(getattr(body, field)):
            if not _is_uuid(value):
                kind = "a URL" if normalize_url(value) else "not a source id"
                raise _bad(
                    f"{field}[{index}]: source {body.source!r} takes source ids (from "
                    f"POST /v2/documents/public/resources/{body.source} or a listing), and "
                    f"{value!r} is {kind}; URLs go with source 'web'"
                )
            ident = str(uuid.UUID(value))
            asked[ident] = asked.get(ident, False) or field == "documentIdsToAdd"
    found = _tenant_documents(svc, tenant, list(asked))
    for ident, (_, asset) in found.items():
        if asset.source_type != source_type:
            raise _bad(
                f"source {ident} is a {WIRE_SOURCE.get(asset.source_type)} source, "
                f"not {body.source}"
            )
    return [(found[i][0], found[i][1], add) for i, add in asked.items()]


def _launch(
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
        asset = assets[asset_id]
        ids = [d.id for d in documents]
        first = any(d.id in added for d in documents)
        operation = svc.catalog.create_operation(
            asset_id=asset_id,
            tenant=asset.tenant,
            type="INGEST" if first else "REFRESH",
            created_by=f"apikey:{key.id}",
            request={"documentIds": ids, "force": False},
        )
        svc.catalog.link_documents(ids, operation.id)
        if attributes is not None:
            for document in documents:
                merged = (document.attributes or {}) | attributes
                svc.catalog.upsert_document(asset_id, document.source_key, attributes=merged)
        svc.runs.launch(svc.catalog, operation)
    return added, updated


@router.post("/refresh", response_model=list[str])
def refresh_sources(body: SourceIdsRequest, key: WriteKey, svc: Svc):
    """Re-fetch these sources; a raw file cannot be (delete it and upload it again)."""
    svc.limits.take(REFRESH, key.tenant)
    found = _tenant_documents(svc, key.tenant, body.documentIds)
    files = [i for i, (_, asset) in found.items() if asset.source_type == "file"]
    if files:
        raise _bad(
            f"raw-file sources cannot be refreshed (delete and upload again): {', '.join(files)}"
        )
    _launch(svc, key, [(d, a, False) for d, a in found.values()])
    return list(found)


@router.delete("", response_model=DeletedSources)
def delete_sources(body: DeleteSourcesRequest, key: WriteKey, svc: Svc):
    """Remove the sources' chunks from the index, then the records. A source of an asset that
    ingests everything its source lists comes back with that asset's next full refresh."""
    found = _tenant_documents(svc, key.tenant, body.documentIds)
    by_asset: dict[str, list[str]] = defaultdict(list)
    for ident, (_, asset) in found.items():
        by_asset[asset.id].append(ident)
    for ids in by_asset.values():
        svc.vectors.delete_documents(key.tenant, ids)
        svc.catalog.delete_documents(ids)
    return DeletedSources(
        deletedDocuments=[
            DeletedSource(id=d.id, title=d.title, originalUrl=d.source_url)
            for d, _ in found.values()
        ]
    )
