"""The sources API: Fini's documents API (`/v2/documents/public`) as a second facade over the
same knowledge assets, documents and operations.

A workspace is a tenant and authenticates with a workspace API key (`fruxon apikey create`);
a source record is a document of one of the tenant's assets. Web URLs go to the tenant's web
asset that ingests only what it is given (created on first use); provider items are registered
in, and ingested by, the tenant's connected asset of that provider. Ingest, refresh and delete
become operations and catalog writes exactly as the Assets API makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from fruxon_api.deps import ApiServices as Services
from fruxon_api.deps import Svc
from fruxon_api.problems import Problem, bad_request, categorized_problem
from fruxon_api.ratelimit import REFRESH
from fruxon_client.models import (
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
from fruxon_pipelines.domain import DocumentStatus, OperationStatus
from fruxon_pipelines.errors import CategorizedError
from fruxon_pipelines.services import workspace_sources as workspace
from fruxon_pipelines.services.api_keys import ApiKey, authenticate, may
from fruxon_pipelines.services.operations import Operation, OperationState
from fruxon_pipelines.services.workspace_sources import (
    INGEST_SOURCES,
    MAX_URL_LENGTH,
    SOURCE_TYPE_OF,
    WIRE_SOURCE,
    Document,
    KnowledgeAsset,
    SourcesToIngest,
)
from fruxon_pipelines.sources.web import normalize_url

router = APIRouter(prefix="/v2/documents/public", tags=["sources (Fini documents API)"])

# Auth ----------------------------------------------------------------------------------------


def workspace_key(request: Request) -> ApiKey:
    """The live workspace API key of the request (401 otherwise)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send Authorization: Bearer <workspace API key>")
    row = authenticate(request.app.state.services, token.strip())
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
    outcome = {
        DocumentStatus.COMPLETED: "COMPLETED",
        DocumentStatus.FAILED: "FAILED",
        DocumentStatus.PROCESSING: "IN_PROGRESS",
    }
    settled = document.outcome_operation_id
    if requested is not None and state is not None and settled != requested.id:
        if state.status == OperationStatus.PENDING:
            return "PENDING", "", requested.id
        if state.status == OperationStatus.RUNNING:
            return "IN_PROGRESS", "", requested.id
        if state.status == OperationStatus.CANCELLED:
            return "FAILED", "the operation was cancelled", requested.id
        if state.status == OperationStatus.FAILED:
            return "FAILED", state.error or "the operation failed", requested.id
        if settled is None:  # it ended without reaching the document
            return "FAILED", "the operation did not reach this document", requested.id
    status = outcome.get(document.status)  # None: registered, never asked for
    error = (document.error_message or "the document failed") if status == "FAILED" else ""
    return status, error, settled or (requested.id if requested else None)


def records(svc: Services, rows: list[tuple[Document, KnowledgeAsset]]) -> list[SourceRecord]:
    """Source records of these documents: their text and operations read once per page."""
    texts, operations = workspace.texts_and_operations(svc, [d for d, _ in rows])
    out = []
    for document, asset in rows:
        operation, state = operations.get(document.operation_id or "", (None, None))
        status, error, job = job_status(document, operation, state)
        text = texts.get(document.id)
        attributes = document.attributes or {}
        success = document.status == DocumentStatus.COMPLETED
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
            raise bad_request(f"{name} must not contain NUL characters")
    types = None
    if source is not None:
        if source not in SOURCE_TYPE_OF:
            raise bad_request(f"source must be one of {', '.join(SOURCE_TYPE_OF)}")
        types = [SOURCE_TYPE_OF[source]]
    rows, more = workspace.source_page(
        svc,
        key.tenant,
        limit=limit,
        cursor=cursor,
        newer=direction == "previous",
        source_types=types,
        document_id=id,
        title=title,
        url=url,
        changed=changed,
    )
    return SourcePage(documents=records(svc, rows), hasMore=more)


@router.get("/resources/{provider}")
def list_provider_resources(provider: str, key: ReadKey, svc: Svc) -> list[dict[str, Any]]:
    """What the connected provider has that is not imported yet: Notion a flat list of pages,
    Zendesk categories → sections → articles, Confluence spaces with their pages."""
    try:
        return workspace.discover_resources(svc, key.tenant, provider)
    except CategorizedError as error:
        # Revoked or insufficient credentials: the provider is as good as disconnected (400).
        raise categorized_problem(error, f"{provider}: {error}", (400, "Bad Request")) from error


@router.post("/resources/{provider}", response_model=QueuedSources)
def register_provider_resources(
    provider: str, body: RegisterResourcesRequest, key: WriteKey, svc: Svc
):
    """Create source records for picked resources (new: added; known: metadata updated).
    Nothing is ingested until they are named in POST /v2/documents/public."""
    resources = [resource.model_dump() for resource in body.resources]
    added, updated = workspace.register_resources(svc, key.tenant, provider, resources)
    return QueuedSources(addedDocumentIds=added, updatedDocumentIds=updated)


@router.post("/deep-crawl/links", response_model=DeepCrawlResult)
def deep_crawl_links(body: DeepCrawlRequest, key: WriteKey, svc: Svc):
    """URLs found from the seed links (same sites, sitemaps included); nothing is stored."""
    for index, link in enumerate(body.links):
        if len(link) > MAX_URL_LENGTH or normalize_url(link) is None or workspace.is_uuid(link):
            raise bad_request(f"links[{index}]: {link!r} is not an http(s) URL")
    found = workspace.deep_crawl(svc.settings, body.links, body.limit)
    return DeepCrawlResult(
        data=found, message=f"crawled {len(body.links)} parent URLs, found {len(found)} URLs"
    )


@router.get("/{document_id}", response_model=SourceRecord)
def get_source(document_id: str, key: ReadKey, svc: Svc):
    return records(svc, [workspace.get_source(svc, key.tenant, document_id)])[0]


# Writing -------------------------------------------------------------------------------------


@router.post("", response_model=QueuedSources)
def ingest_sources(body: IngestSourcesRequest, key: WriteKey, svc: Svc):
    """Queue ingestion: URLs for `web`, source ids for the other sources. Returns at once; a
    record's `linkedJobStatus` follows the operation."""
    if body.source not in INGEST_SOURCES:
        raise bad_request(f"unsupported source {body.source!r}: one of {', '.join(INGEST_SOURCES)}")
    if not body.documentIdsToAdd and not body.documentIdsToRefresh:
        raise bad_request("documentIdsToAdd or documentIdsToRefresh must name at least one item")
    svc.limits.take(REFRESH, key.tenant)  # each call launches an operation, like a refresh
    attributes = {"english": body.english, "baser": body.baser}
    request = SourcesToIngest(body.source, body.documentIdsToAdd, body.documentIdsToRefresh)
    added, updated = workspace.ingest_sources(svc, key, request, attributes)
    return QueuedSources(addedDocumentIds=added, updatedDocumentIds=updated)


@router.post("/refresh", response_model=list[str])
def refresh_sources(body: SourceIdsRequest, key: WriteKey, svc: Svc):
    """Re-fetch these sources; a raw file cannot be (delete it and upload it again)."""
    svc.limits.take(REFRESH, key.tenant)
    return workspace.refresh_sources(svc, key, body.documentIds)


@router.delete("", response_model=DeletedSources)
def delete_sources(body: DeleteSourcesRequest, key: WriteKey, svc: Svc):
    """Remove the sources' chunks from the index, then the records. A source of an asset that
    ingests everything its source lists comes back with that asset's next full refresh."""
    deleted = workspace.delete_sources(svc, key.tenant, body.documentIds)
    return DeletedSources(
        deletedDocuments=[
            DeletedSource(id=d.id, title=d.title, originalUrl=d.source_url) for d in deleted
        ]
    )
