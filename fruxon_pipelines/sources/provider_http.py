"""HTTP for provider connectors: retries on 429 and 5xx, one token refresh on 401, and
failures mapped to the asset's `errorCategory`.

Every connector talks to its provider through :class:`ProviderClient`, so the rules are the same
for all of them:
- 429 and 5xx (and the provider-specific rate-limit answers a connector names) are retried after
  ``Retry-After`` (seconds or an HTTP date) or an exponential backoff, up to ``max_retries``;
- a 401 with OAuth credentials refreshes the access token once (the new tokens are persisted by
  the caller's ``on_refresh``) and repeats the request;
- what remains is a :class:`ProviderError` with the status, for the connector to decide whether
  one item failed (404 on one page) or the whole source (401 after a refresh → CREDENTIALS).
Redirects are not followed: provider APIs do not redirect API calls, and a redirect could lead a
request carrying a bearer token to another host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from fruxon_pipelines.backoff import retry_after_seconds
from fruxon_pipelines.errors import (
    CREDENTIALS,
    INVALID_CONFIG,
    PERMISSIONS,
    RATE_LIMIT,
    SOURCE_UNAVAILABLE,
)
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, Source, SourceError

RETRYABLE = frozenset({429, 500, 502, 503, 504, 529})


class ProviderError(SourceError):
    """A provider request failed for good; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, category: str, status: int, body: Any = None) -> None:
        super().__init__(message, category)
        self.status = status
        self.body = body


def category_of(status: int) -> str:
    if status == 401:
        return CREDENTIALS
    if status == 403:
        return PERMISSIONS
    if status == 429:
        return RATE_LIMIT
    if status in (400, 404, 422):
        return INVALID_CONFIG
    return SOURCE_UNAVAILABLE


class ProviderClient:
    """One provider's API at ``base_url``; ``authorize`` gives the credential headers.

    ``refresh`` (OAuth) returns fresh headers after a 401, once per request; None means the
    credentials cannot be refreshed and the 401 stands. ``is_rate_limited`` lets a connector
    name answers that mean "slow down" besides 429 (Google's 403 rateLimitExceeded).
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        authorize: Callable[[], dict[str, str]],
        refresh: Callable[[], dict[str, str] | None] | None = None,
        headers: dict[str, str] | None = None,
        max_retries: int = 5,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        is_rate_limited: Callable[[Any], bool] | None = None,
        user_agent: str = "fruxon",
    ) -> None:
        import httpx

        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._authorize = authorize
        self._refresh = refresh
        self.max_retries = max_retries
        self._sleep = sleep
        self._is_rate_limited = is_rate_limited
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": user_agent} | (headers or {}),
        )
        self.requests_made = 0
        self.retries = 0

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Collection[int] = (200,),
        **kwargs: Any,
    ) -> Any:
        """The response (an ``httpx.Response``) once its status is in ``ok``; else ProviderError."""
        import httpx

        url = self.url(path)
        headers = dict(kwargs.pop("headers", None) or {})
        auth_headers = self._authorize()
        refreshed = False
        attempt = 0
        while True:
            self.requests_made += 1
            try:
                response = self._client.request(
                    method, url, headers=auth_headers | headers, **kwargs
                )
            except httpx.HTTPError as error:
                if attempt >= self.max_retries:
                    raise ProviderError(
                        f"{self.provider} is unreachable: {type(error).__name__}",
                        SOURCE_UNAVAILABLE,
                        0,
                    ) from error
                self._wait(None, attempt)
                attempt += 1
                continue
            if response.status_code in ok:
                return response
            if response.status_code == 401 and self._refresh is not None and not refreshed:
                refreshed = True
                fresh = self._refresh()
                if fresh is not None:
                    auth_headers = fresh
                    continue
            limited = response.status_code in RETRYABLE or (
                self._is_rate_limited is not None and self._is_rate_limited(response)
            )
            if limited and attempt < self.max_retries:
                self._wait(response.headers.get("retry-after"), attempt)
                attempt += 1
                continue
            status = response.status_code
            raise ProviderError(
                f"{self.provider} answered {status} to {method} {_path_only(url)}: "
                f"{_summary(response)}",
                RATE_LIMIT if limited and status < 500 else category_of(status),
                status,
                _json_or_none(response),
            )

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post_json(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", path, json=body, **kwargs).json()

    def _wait(self, retry_after: str | None, attempt: int) -> None:
        self.retries += 1
        self._sleep(retry_after_seconds(retry_after, attempt))


def _path_only(url: str) -> str:
    """The URL without its query: queries can carry cursors and ids, never worth a log line."""
    return url.split("?", 1)[0]


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _summary(response: Any) -> str:
    """The provider's own error message, short (never the request, which carries the token)."""
    body = _json_or_none(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Google: {"error": {"code", "message", "status"}}
            return str(error.get("message") or error.get("status") or error)[:300]
        for key in ("message", "description", "error_description", "error", "title"):
            if isinstance(body.get(key), str):
                return body[key][:300]
        errors = body.get("errors")  # Atlassian: {"errors": [{"title", "detail"}]}
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("title") or first)[:300]
    return (response.text or response.reason_phrase or "")[:300]


def reach_options(reach: Any) -> dict[str, Any]:
    """The :class:`ProviderClient` options a connector takes from its reach: the server's retry
    limit, the run's HTTP timeout and user agent."""
    return {
        "max_retries": reach.settings.provider_max_retries,
        "timeout": reach.http_timeout_seconds,
        "user_agent": reach.user_agent,
    }


def numeric_external_id(item: dict[str, Any], what: str) -> str:
    """The `externalId` of an item the sources API registers, when it is a numeric id."""
    external = str(item.get("externalId") or "")
    if not (external.isascii() and external.isdigit()):
        raise ValueError(f"externalId: {external!r} is not {what}")
    return external


def bearer_auth(
    settings: Any, source_type: str, credentials: Any, parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``authorize`` and ``refresh`` for a bearer token: an OAuth access token (refreshed ahead
    of expiry and after a 401, each refresh saved) or a static API token."""
    from fruxon_pipelines.sources.oauth import OAUTH_APPS, TokenKeeper

    if credentials is None:
        raise SourceError(f"a {source_type} asset needs auth", CREDENTIALS)
    if credentials.auth.method == "OAUTH":
        keeper = TokenKeeper(settings, OAUTH_APPS[source_type], credentials, parameters or {})
        return {"authorize": keeper.headers, "refresh": keeper.refresh_now}
    header = {"Authorization": f"Bearer {credentials.auth.apiToken}"}
    return {"authorize": lambda: header, "refresh": None}


def basic_header(user: str, password: str) -> dict[str, str]:
    """HTTP Basic credentials (an API token with its account's e-mail)."""
    import base64

    pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {pair}"}


def basic_or_oauth(
    settings: Any,
    source_type: str,
    credentials: Any,
    basic_user: Callable[[Any], str],
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``authorize`` and ``refresh`` for a provider (Zendesk, Confluence) that takes an API token
    with its account's e-mail over HTTP Basic, the user being ``basic_user(credentials.auth)``,
    or OAuth (:func:`bearer_auth`, with ``parameters`` for the provider's endpoints)."""
    if credentials is None:
        raise SourceError(f"a {source_type} asset needs auth (OAUTH or API_TOKEN)", CREDENTIALS)
    if credentials.auth.method == "API_TOKEN":
        header = basic_header(basic_user(credentials.auth), credentials.auth.apiToken)
        return {"authorize": lambda: header, "refresh": None}
    return bearer_auth(settings, source_type, credentials, parameters)


def unchanged(previous: KnownDocument | None, version: str | None, force: bool) -> bool:
    """Whether the provider's version of an item is the one indexed (and no force)."""
    return not force and bool(version) and previous is not None and previous.etag == version


def resource(key: str, external_id: Any, title: Any, url: Any, mime_type: str, **extra: Any):
    """One importable item as the sources API lists it (``GET /resources/{provider}``); the
    ``key`` (its source key) lets the caller leave out what is imported already."""
    return {
        "externalId": str(external_id),
        "title": str(title or "Untitled"),
        "originalUrl": url,
        "mimeType": mime_type,
        **extra,
        "key": key,
    }


class ProviderSource(Source):
    """What the four connectors share: a run lists everything (``list_items``) or reads only
    the items it names (``fetch_one``, once per key of this connector; a 404 is ``gone``), and
    the client is closed when the run is done with it."""

    key_prefix: str
    client: ProviderClient

    def fetch_one(self, key: str, item_id: str, previous: KnownDocument | None, force: bool):
        raise NotImplementedError

    def discover(self) -> list[dict[str, Any]]:
        """What a user may pick to import, shaped as the sources API shows this provider's
        resources (leaves made by :func:`resource`). The client is closed afterwards."""
        try:
            return self.resources()
        finally:
            self.close()

    def resources(self) -> list[dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} has no discovery")

    def fetch_keys(
        self, keys: set[str], known: Mapping[str, KnownDocument], force: bool
    ) -> Iterator[FetchedItem]:
        for key in sorted(k for k in keys if k.startswith(self.key_prefix)):
            item_id = key.removeprefix(self.key_prefix)
            try:
                item = self.fetch_one(key, item_id, known.get(key), force)
            except ProviderError as error:
                if error.status != 404:
                    raise
                item = FetchedItem(source_key=key, status="gone")
            yield item

    def close(self) -> None:
        self.client.close()
