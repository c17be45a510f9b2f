"""Sync and async clients for the Assets API, the tenant-wide search and the sources API.

Each endpoint is written once, as a ``Call`` (method, path, body, how to read the answer);
``Fruxon`` sends calls with ``httpx.Client`` and ``AsyncFruxon`` with ``httpx.AsyncClient``,
so the two clients cannot drift apart. Request bodies are validated here with the API's own
models (``fruxon_client.models``) before they are sent; keyword arguments may be given in
snake_case (``top_k``) or as the wire spells them (``topK``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from fruxon_client import models as m
from fruxon_client.errors import OperationFailed, error_for, retry_after

T = TypeVar("T")
Upload = str | Path | bytes | IO[bytes]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer (``parse`` gets the decoded JSON, or None)."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    # A function, not the parts: a retried upload must send its file again from the start.
    files: Callable[[], dict[str, Any]] | None = None
    workspace: bool = False  # the sources API: authenticated by the workspace API key


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    next_token: str | None
    total_count: int | None = None


@dataclass
class AssetChange:
    """What a create, update or refresh answers: the asset, and the operation it started
    (a handle: ``change.operation.wait(progress=True)``), and a webhook shown only now."""

    asset: m.AssetOut
    operation: Operation | AsyncOperation | None
    webhook: m.WebhookRegistrationOut | None
    long_operation: m.LongOperation | None


def camel(name: str) -> str:
    """``top_k`` → ``topK``; a name already in camelCase stays as it is."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def request_body(model: type[BaseModel], given: BaseModel | None, fields: dict[str, Any]) -> Any:
    """The JSON of a request, validated with the API's model: a model instance, or fields."""
    if given is not None and fields:
        raise TypeError("pass a request model or keyword fields, not both")
    if given is None:
        wire = {camel(name): value for name, value in fields.items()}
        # Some request models ignore unknown fields as the API does; a typo is refused here.
        unknown = sorted(set(wire) - set(model.model_fields))
        if unknown:
            raise TypeError(f"{model.__name__} has no field {', '.join(unknown)}")
        given = model.model_validate(wire)
    return given.model_dump(mode="json", exclude_unset=True)


def _params(**given: Any) -> dict[str, Any]:
    return {name: value for name, value in given.items() if value is not None}


def _skip_paged(
    path: str, parse: Callable[[Any], PageOf[T]], page_size: int | None, **filters: Any
) -> Callable[[str | None], Call[PageOf[T]]]:
    """The calls of a listing of the Assets API, page by page: ``PageSize`` and the last
    page's ``nextPageToken`` as ``PageToken.Cursor``."""

    def call_for(token: str | None) -> Call[PageOf[T]]:
        params = _params(PageSize=page_size, **filters, **{"PageToken.Cursor": token})
        return Call("GET", path, parse, params=params)

    return call_for


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _nothing(_: Any) -> None:
    return None


def _upload_parts(file: Upload, file_name: str | None, payload: dict[str, Any]) -> Callable:
    import json

    if isinstance(file, str | Path):
        path = Path(file)
        name = file_name or path.name

        def parts() -> dict[str, Any]:
            return {"File": (name, path.read_bytes())}

    elif isinstance(file, bytes):
        if not file_name:
            raise TypeError("file_name is required when the file is given as bytes")

        def parts() -> dict[str, Any]:
            return {"File": (file_name, file)}

    else:
        name = file_name or Path(getattr(file, "name", "") or "").name
        if not name:
            raise TypeError("file_name is required for a file object without a name")
        start = file.tell() if file.seekable() else None

        def parts() -> dict[str, Any]:
            if start is not None:
                file.seek(start)
            return {"File": (name, file)}

    def with_payload() -> dict[str, Any]:
        return parts() | {"Payload": (None, json.dumps(payload), "application/json")}

    return with_payload


# The API's resources, written once for both clients -------------------------------------------


class Assets:
    """``/v1/tenants/{tenant}/assets``: knowledge assets."""

    def __init__(self, client: _Client) -> None:
        self._client = client

    def _path(self, asset_id: str = "", suffix: str = "") -> str:
        path = self._client._tenant_path("assets")
        return path + (f"/{_segment(asset_id)}" if asset_id else "") + suffix

    def create(self, request: m.CreateAssetRequest | None = None, /, **fields: Any):
        """``POST /assets``: ``config={"sourceType": "web", "parameters": {...}}``, ``name``,
        ``embedding``, ``auto_update`` … → AssetChange (its ingestion has started)."""
        body = request_body(m.CreateAssetRequest, request, fields)
        return self._client._send(Call("POST", self._path(), self._client._change, json=body))

    def upload(
        self,
        file: Upload,
        *,
        file_name: str | None = None,
        display_name: str | None = None,
        embedding: m.EmbeddingConfigIn | dict[str, Any] | None = None,
    ):
        """``POST /assets:file``: one file (a path, bytes or a binary file) becomes a file
        asset → AssetChange."""
        payload = m.FilePayload(
            DisplayName=display_name,
            EmbeddingConfig=m.EmbeddingConfigIn.model_validate(embedding) if embedding else None,
        ).model_dump(mode="json", exclude_none=True)
        parts = _upload_parts(file, file_name, payload)
        call = Call("POST", self._path() + ":file", self._client._change, files=parts)
        return self._client._send(call)

    def list(self, *, search: str | None = None, page_size: int | None = None):
        """``GET /assets``: every asset of the tenant, page after page (an iterator)."""
        return self._client._pages(
            _skip_paged(self._path(), _page_of(m.AssetOut), page_size, search=search)
        )

    def get(self, asset_id: str):
        return self._client._send(Call("GET", self._path(asset_id), m.AssetOut.model_validate))

    def update(self, asset_id: str, request: m.PatchAssetRequest | None = None, /, **fields: Any):
        """``PATCH /assets/{id}``; a new model or chunking re-ingests → AssetChange."""
        body = request_body(m.PatchAssetRequest, request, fields)
        call = Call("PATCH", self._path(asset_id), self._client._change, json=body)
        return self._client._send(call)

    def delete(self, asset_id: str):
        return self._client._send(Call("DELETE", self._path(asset_id), _nothing))

    def refresh(self, asset_id: str, request: m.RefreshRequest | None = None, /, **fields: Any):
        """``POST /assets/{id}:refresh`` (``document_ids``, ``force``, ``dry_run``) →
        AssetChange. While another operation of the asset runs the API answers 429 with
        ``Retry-After``; the client waits and retries (``max_retries``)."""
        body = request_body(m.RefreshRequest, request, fields)
        call = Call("POST", self._path(asset_id, ":refresh"), self._client._change, json=body)
        return self._client._send(call)

    def usage(self, asset_id: str):
        call = Call("GET", self._path(asset_id, "/usage"), m.UsageOut.model_validate)
        return self._client._send(call)

    def regenerate_webhook(self, asset_id: str):
        """A new webhook URL (and signing secret), shown in this answer only."""
        parse = m.WebhookRegistrationOut.model_validate
        return self._client._send(Call("POST", self._path(asset_id, ":regenerateWebhook"), parse))

    def search(
        self, asset_id: str, query: str, request: m.SearchRequestBody | None = None, **fields: Any
    ):
        """``POST /assets/{id}:search`` → SearchResponse."""
        if request is None:
            fields["query"] = query
        body = request_body(m.SearchRequestBody, request, fields)
        parse = m.SearchResponse.model_validate
        return self._client._send(Call("POST", self._path(asset_id, ":search"), parse, json=body))

    def source_types(self):
        """What ``config.sourceType`` may be, with each type's parameters."""
        return self._client._send(Call("GET", self._path() + ":sourceTypes", _items))

    def embedding_models(self):
        return self._client._send(Call("GET", self._path() + ":embeddingModels", _items))

    def supported_types(self):
        """The file types an upload may have."""
        return self._client._send(Call("GET", self._path() + ":supportedTypes", _items))


class Operations:
    """``…/assets/{asset}/operations``: the runs of an asset's ingestion."""

    def __init__(self, client: _Client) -> None:
        self._client = client

    def list(self, asset_id: str, *, page_size: int | None = None):
        path = self._client._tenant_path("assets", asset_id, "operations")
        return self._client._pages(_skip_paged(path, _page_of(m.OperationOut), page_size))

    def get(self, asset_id: str, operation_id: str):
        return self._client._operation(asset_id, operation_id).get()

    def cancel(self, asset_id: str, operation_id: str):
        return self._client._operation(asset_id, operation_id).cancel()

    def handle(self, asset_id: str, operation_id: str):
        """The operation as an object to wait on: ``.wait(progress=True)``, ``.cancel()``."""
        return self._client._operation(asset_id, operation_id)


class Documents:
    """``…/assets/{asset}/documents``: what an asset has indexed, and its chunks."""

    def __init__(self, client: _Client) -> None:
        self._client = client

    def _path(self, asset_id: str, document_id: str = "", suffix: str = "") -> str:
        path = self._client._tenant_path("assets", asset_id, "documents")
        return path + (f"/{_segment(document_id)}" if document_id else "") + suffix

    def list(self, asset_id: str, *, search: str | None = None, page_size: int | None = None):
        return self._client._pages(
            _skip_paged(self._path(asset_id), _page_of(m.DocumentOut), page_size, search=search)
        )

    def get(self, asset_id: str, document_id: str):
        call = Call("GET", self._path(asset_id, document_id), m.DocumentOut.model_validate)
        return self._client._send(call)

    def delete(self, asset_id: str, document_id: str):
        return self._client._send(Call("DELETE", self._path(asset_id, document_id), _nothing))

    def chunks(self, asset_id: str, document_id: str, *, page_size: int | None = None):
        """The document's chunks in order, page after page (an iterator of ChunkOut)."""
        path = self._path(asset_id, document_id, "/chunks")
        return self._client._pages(_skip_paged(path, _chunk_page, page_size))


class Sources:
    """``/v2/documents/public``: the sources API, authenticated by a workspace API key
    (``fruxon apikey create``), whose workspace is the tenant."""

    PATH = "/v2/documents/public"

    def __init__(self, client: _Client) -> None:
        self._client = client

    def _call(self, method: str, suffix: str, parse: Callable[[Any], T], **kw: Any) -> Call[T]:
        return Call(method, self.PATH + suffix, parse, workspace=True, **kw)

    def list(
        self,
        *,
        source: str | None = None,
        title: str | None = None,
        url: str | None = None,
        changed: bool | None = None,
        id: str | None = None,
        limit: int | None = None,
    ):
        """Source records, newest change first, page after page (an iterator)."""
        filters = _params(
            source=source,
            title=title,
            url=url,
            changed=None if changed is None else str(changed).lower(),
            id=id,
            limit=limit,
        )
        return self._client._pages(
            lambda cursor: self._call(
                "GET", "", _source_page, params=filters | _params(cursor=cursor)
            )
        )

    def get(self, source_id: str):
        return self._client._send(
            self._call("GET", f"/{_segment(source_id)}", m.SourceRecord.model_validate)
        )

    def ingest(self, request: m.IngestSourcesRequest | None = None, /, **fields: Any):
        """Queue ingestion: URLs for ``source="web"`` (``document_ids_to_add``), source ids for
        the others → QueuedSources; a record's ``linkedJobStatus`` follows the operation."""
        body = request_body(m.IngestSourcesRequest, request, fields)
        return self._client._send(self._call("POST", "", m.QueuedSources.model_validate, json=body))

    def refresh(self, source_ids: list[str]):
        """Re-fetch these sources → the ids queued."""
        body = request_body(m.SourceIdsRequest, None, {"documentIds": source_ids})
        return self._client._send(self._call("POST", "/refresh", list, json=body))

    def delete(self, source_ids: list[str], *, delete_articles: bool = False):
        body = request_body(
            m.DeleteSourcesRequest,
            None,
            {"documentIds": source_ids, "deleteArticles": delete_articles},
        )
        return self._client._send(
            self._call("DELETE", "", m.DeletedSources.model_validate, json=body)
        )

    def deep_crawl(self, links: list[str], *, limit: int | None = None):
        """URLs found from the seed links (same sites, sitemaps too); nothing is stored."""
        body = request_body(m.DeepCrawlRequest, None, _params(links=links, limit=limit))
        parse = m.DeepCrawlResult.model_validate
        return self._client._send(self._call("POST", "/deep-crawl/links", parse, json=body))

    def resources(self, provider: str):
        """What the connected provider (notion, zendesk, confluence) has, not imported yet."""
        return self._client._send(self._call("GET", f"/resources/{_segment(provider)}", list))

    def register_resources(self, provider: str, resources: list[dict[str, Any]]):
        body = request_body(m.RegisterResourcesRequest, None, {"resources": resources})
        parse = m.QueuedSources.model_validate
        path = f"/resources/{_segment(provider)}"
        return self._client._send(self._call("POST", path, parse, json=body))


def _items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"])


def _page_of(model: type[BaseModel]) -> Callable[[Any], PageOf]:
    def parse(body: Any) -> PageOf:
        items = [model.model_validate(item) for item in body["items"]]
        return PageOf(items, body.get("nextPageToken"), body.get("totalCount"))

    return parse


def _chunk_page(body: Any) -> PageOf[m.ChunkOut]:
    page = m.ChunkPage.model_validate(body)
    return PageOf(page.chunks, page.nextPageToken, page.totalChunks)


def _source_page(body: Any) -> PageOf[m.SourceRecord]:
    page = m.SourcePage.model_validate(body)
    # The cursor is the last record's id: `direction=next` goes on after it.
    more = page.hasMore and bool(page.documents)
    return PageOf(page.documents, page.documents[-1].id if more else None)


# What both clients share ------------------------------------------------------------------------


class _Client:
    _http_class: Any = None

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        tenant: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        transport: Any = None,
    ) -> None:
        """``token``: a fruxon token (``fruxon token``) for the Assets API and the search;
        ``tenant``: the tenant those calls address; ``api_key``: a workspace API key for
        ``sources``. A 429 with ``Retry-After`` (≤ ``max_retry_wait`` seconds) is retried up
        to ``max_retries`` times before it is raised as TooManyRequests. ``transport``: an
        httpx transport of the client's kind (sync or async), e.g. for a proxy or mounts."""
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._token = token
        self._api_key = api_key
        # httpx.Client for Fruxon, httpx.AsyncClient for AsyncFruxon; ``transport`` is theirs.
        self._http = self._http_class(base_url=self.base_url, timeout=timeout, transport=transport)
        self.assets = Assets(self)
        self.operations = Operations(self)
        self.documents = Documents(self)
        self.sources = Sources(self)

    def __repr__(self) -> str:  # never the token or the key
        return f"{type(self).__name__}({self.base_url!r}, tenant={self.tenant!r})"

    def search(self, query: str, request: m.TenantSearchRequest | None = None, **fields: Any):
        """``POST /v1/tenants/{tenant}/search``: one query over the tenant's assets (all, or
        ``asset_ids``), with ``top_k``, ``search_mode``, ``filter``, … → SearchResponse."""
        if request is None:
            fields["query"] = query
        body = request_body(m.TenantSearchRequest, request, fields)
        parse = m.SearchResponse.model_validate
        return self._send(Call("POST", self._tenant_path("search"), parse, json=body))

    def _send(self, call: Call[T]) -> Any:
        raise NotImplementedError

    def _pages(self, call_for: Callable[[str | None], Call[PageOf[T]]]) -> Any:
        raise NotImplementedError

    def _operation(self, asset_id: str, operation_id: str) -> Any:
        raise NotImplementedError

    def _tenant_path(self, *parts: str) -> str:
        if not self.tenant:
            raise TypeError("this call needs the client's tenant (Fruxon(…, tenant=…))")
        return "/v1/tenants/" + "/".join(_segment(p) for p in (self.tenant, *parts))

    def _headers(self, call: Call) -> dict[str, str]:
        secret = self._api_key if call.workspace else self._token
        if not secret:
            needed = "api_key (a workspace API key)" if call.workspace else "token"
            raise TypeError(f"this call needs the client's {needed}")
        return {"Authorization": f"Bearer {secret}"}

    def _request(self, call: Call) -> dict[str, Any]:
        args: dict[str, Any] = {
            "method": call.method,
            "url": call.path,
            "headers": self._headers(call),
            "params": call.params,
        }
        if call.files is not None:
            args["files"] = call.files()
        elif call.json is not None:
            args["json"] = call.json
        return args

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None: answer with this response."""
        if response.status_code != 429 or attempt >= self.max_retries:
            return None
        delay = retry_after(response)
        return delay if delay is not None and delay <= self.max_retry_wait else None

    def _result(self, call: Call[T], response: httpx.Response) -> T:
        if not response.is_success:
            raise error_for(response)
        return call.parse(response.json() if response.content else None)

    def _change(self, body: Any) -> AssetChange:
        answer = m.AssetWithOperation.model_validate(body)
        started = answer.longOperation
        operation = None
        if started is not None:
            operation = self._operation(started.resourceName, started.name)
        return AssetChange(answer.asset, operation, answer.webhook, started)


class Fruxon(_Client):
    """The synchronous client. ``with Fruxon(url, token, tenant) as client: …``"""

    _http_class = httpx.Client

    def __enter__(self) -> Fruxon:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            response = self._http.request(**self._request(call))
            delay = self._retry_delay(response, attempt)
            if delay is None:
                return self._result(call, response)
            attempt += 1
            time.sleep(delay)

    def _pages(self, call_for: Callable[[str | None], Call[PageOf[T]]]) -> Pages[T]:
        return Pages(self, call_for)

    def _operation(self, asset_id: str, operation_id: str) -> Operation:
        return Operation(self, asset_id, operation_id)


class AsyncFruxon(_Client):
    """The asyncio client: the same methods as Fruxon, awaited; lists are ``async for``."""

    _http_class = httpx.AsyncClient

    async def __aenter__(self) -> AsyncFruxon:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            response = await self._http.request(**self._request(call))
            delay = self._retry_delay(response, attempt)
            if delay is None:
                return self._result(call, response)
            attempt += 1
            await asyncio.sleep(delay)

    def _pages(self, call_for: Callable[[str | None], Call[PageOf[T]]]) -> AsyncPages[T]:
        return AsyncPages(self, call_for)

    def _operation(self, asset_id: str, operation_id: str) -> AsyncOperation:
        return AsyncOperation(self, asset_id, operation_id)


# Paging -------------------------------------------------------------------------------------------


class _Seen:
    """Items already yielded, by id: a listing that changes while it is paged through (a record
    re-ingested moves to the front) may serve one twice; it is yielded once."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def new(self, items: list[T]) -> list[T]:
        fresh = []
        for item in items:
            key = getattr(item, "id", None) or getattr(item, "chunkId", None)
            if key is None or key not in self._ids:
                fresh.append(item)
                if key is not None:
                    self._ids.add(key)
        return fresh


class Pages(Generic[T]):
    """Every item of a listing, fetching the next page only when the last one is used up.
    ``total_count`` is the server's count once the first page has been read."""

    def __init__(self, client: Fruxon, call_for: Callable[[str | None], Call[PageOf[T]]]) -> None:
        self._client = client
        self._call_for = call_for
        self.total_count: int | None = None

    def __iter__(self) -> Iterator[T]:
        token: str | None = None
        seen = _Seen()
        while True:
            page = self._client._send(self._call_for(token))
            self.total_count = page.total_count
            yield from seen.new(page.items)
            if not page.next_token:
                return
            token = page.next_token


class AsyncPages(Generic[T]):
    """``async for`` over every item of a listing, a page at a time."""

    def __init__(
        self, client: AsyncFruxon, call_for: Callable[[str | None], Call[PageOf[T]]]
    ) -> None:
        self._client = client
        self._call_for = call_for
        self.total_count: int | None = None

    async def __aiter__(self) -> AsyncIterator[T]:
        token: str | None = None
        seen = _Seen()
        while True:
            page = await self._client._send(self._call_for(token))
            self.total_count = page.total_count
            for item in seen.new(page.items):
                yield item
            if not page.next_token:
                return
            token = page.next_token

    async def collect(self) -> list[T]:
        return [item async for item in self]


# Operations -----------------------------------------------------------------------------------


class _OperationHandle:
    def __init__(self, client: _Client, asset_id: str, operation_id: str) -> None:
        self.asset_id = asset_id
        self.id = operation_id
        self.state: m.OperationOut | None = None  # the last one read
        self._client = client
        self._path = client._tenant_path("assets", asset_id, "operations", operation_id)

    def __repr__(self) -> str:
        status = self.state.status if self.state else "?"
        return f"{type(self).__name__}({self.id!r}, asset={self.asset_id!r}, status={status})"

    def _read(self, body: Any) -> m.OperationOut:
        self.state = m.OperationOut.model_validate(body)
        return self.state

    def _get_call(self) -> Call[m.OperationOut]:
        return Call("GET", self._path, self._read)

    def _cancel_call(self) -> Call[m.OperationOut]:
        return Call("POST", self._path + ":cancel", self._read)


def _finished(state: m.OperationOut, raise_on_failure: bool) -> m.OperationOut:
    if raise_on_failure and state.status == "FAILED":
        raise OperationFailed(state)
    return state


def _timed_out(operation: _OperationHandle, timeout: float | None) -> TimeoutError:
    return TimeoutError(f"operation {operation.id} not done after {timeout} s")


class Operation(_OperationHandle):
    def get(self) -> m.OperationOut:
        return self._client._send(self._get_call())

    def cancel(self) -> m.OperationOut:
        return self._client._send(self._cancel_call())

    def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        interval: float = 0.5,
        raise_on_failure: bool = True,
    ) -> m.OperationOut:
        """Poll until COMPLETED, FAILED or CANCELLED and return the final state; FAILED raises
        OperationFailed unless ``raise_on_failure=False``. ``progress=True`` draws a progress
        bar of documents (on stderr) while it waits."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with ProgressBar(self, enabled=progress) as bar:
            while True:
                state = bar.show(self.get())
                if state.done:
                    return _finished(state, raise_on_failure)
                if deadline is not None and time.monotonic() >= deadline:
                    raise _timed_out(self, timeout)
                time.sleep(interval)


class AsyncOperation(_OperationHandle):
    async def get(self) -> m.OperationOut:
        return await self._client._send(self._get_call())

    async def cancel(self) -> m.OperationOut:
        return await self._client._send(self._cancel_call())

    async def wait(
        self,
        *,
        progress: bool = False,
        timeout: float | None = None,
        interval: float = 0.5,
        raise_on_failure: bool = True,
    ) -> m.OperationOut:
        """As Operation.wait, without blocking the event loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with ProgressBar(self, enabled=progress) as bar:
            while True:
                state = bar.show(await self.get())
                if state.done:
                    return _finished(state, raise_on_failure)
                if deadline is not None and time.monotonic() >= deadline:
                    raise _timed_out(self, timeout)
                await asyncio.sleep(interval)


class ProgressBar:
    """An operation's documents done out of total, its status and tokens, drawn with rich
    (loaded only when a bar is asked for)."""

    def __init__(self, operation: _OperationHandle, *, enabled: bool) -> None:
        self._operation = operation
        self._enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[tokens]} tokens"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
            self._task = self._progress.add_task(
                f"operation {self._operation.id[:8]}", total=None, tokens=0
            )
        return self

    def show(self, state: m.OperationOut) -> m.OperationOut:
        if self._progress is not None:
            self._progress.update(
                self._task,
                description=f"operation {state.id[:8]} {state.status}",
                completed=state.itemsProcessed,
                total=state.itemsTotal or None,
                tokens=state.tokenCount,
            )
        return state

    def __exit__(self, *_: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
