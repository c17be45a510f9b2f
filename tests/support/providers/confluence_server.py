"""Confluence Cloud's REST API v2 on 127.0.0.1, in Atlassian's wire format.

- ``/wiki/api/v2/spaces`` (``keys``, ``limit``), ``/wiki/api/v2/spaces/{id}/pages``
  (``body-format=storage``, ``status``, ``limit``) and ``/wiki/api/v2/pages/{id}``: cursor
  pagination through a relative ``Link: </wiki/api/v2/…&cursor=…>; rel="next"`` header and the
  same URL in ``_links.next``; ``_links.base``;
- errors as ``{"errors": [{"status", "code", "title", "detail"}]}``; 404 also for pages the
  caller may not see; 401 for a bad token; 429 with ``Retry-After``;
- HTTP Basic (e-mail and API token) at the site's root, or OAuth bearer tokens under
  ``/ex/confluence/{cloudId}`` with ``/oauth/token/accessible-resources`` listing the sites;
- Atlassian's token endpoint: JSON, client credentials in the body, rotating refresh tokens,
  403 ``invalid_grant`` for a refresh token that is unknown or already used.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from providers.fake_provider import FakeProvider, json_response

CLOUD_ID = "1324a887-45db-1bf4-1e99-ef0ff456d421"
_ids = itertools.count(98_310)


@dataclass
class FakeConfluencePage:
    title: str
    storage: str
    space_id: str
    id: str = field(default_factory=lambda: str(next(_ids)))
    version: int = 1
    status: str = "current"

    def wire(self, body: bool) -> dict[str, Any]:
        page: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "spaceId": self.space_id,
            "parentId": None,
            "parentType": None,
            "authorId": "5b10ac8d82e05b22cc7d4ef5",
            "createdAt": "2026-03-01T12:34:56.789Z",
            "version": {"number": self.version, "createdAt": "2026-04-02T08:00:00.000Z"},
            "_links": {"webui": f"/spaces/X/pages/{self.id}", "tinyui": f"/x/{self.id}"},
        }
        if body:
            page["body"] = {"storage": {"representation": "storage", "value": self.storage}}
        return page


class ConfluenceServer(FakeProvider):
    client_auth = "body"
    token_body = "json"
    rotates_refresh_tokens = True
    token_lifetime_seconds = 3600
    page_cap = 250

    def __init__(self) -> None:
        super().__init__()
        self.spaces = [
            {"id": "65537", "key": "ENG", "name": "Engineering", "type": "global"},
            {"id": "65538", "key": "OPS", "name": "Operations", "type": "global"},
        ]
        self.pages: dict[str, FakeConfluencePage] = {}
        self.users: dict[str, str] = {}  # e-mail → API token

    def add(self, page: FakeConfluencePage) -> FakeConfluencePage:
        with self.lock:
            self.pages[page.id] = page
        return page

    def edit(self, page: FakeConfluencePage, storage: str) -> None:
        with self.lock:
            page.storage = storage
            page.version += 1

    def token_error(self, status: int, code: str, message: str):
        if code == "invalid_grant":
            status = 403  # as Atlassian documents it for refresh tokens
        return super().token_error(status, code, message)

    def error(self, status: int, code: str, title: str, headers=None):
        body = {"errors": [{"status": status, "code": code, "title": title, "detail": None}]}
        return json_response(status, body, headers)

    def failure(self, status: int, headers: dict[str, str]):
        return self.error(status, "TOO_MANY_REQUESTS" if status == 429 else "ERROR", "x", headers)

    def _basic_ok(self, headers: Any) -> bool:
        value = headers.get("Authorization") or ""
        if not value.startswith("Basic "):
            return False
        email, _, token = base64.b64decode(value[6:]).decode().partition(":")
        return self.users.get(email) == token

    def api(self, method, path, query, headers, body):
        if path == "/oauth/token/accessible-resources":
            if not self.bearer_ok(headers):
                return json_response(401, {"code": 401, "message": "Unauthorized"})
            site = {"id": CLOUD_ID, "name": "acme", "url": "https://acme.atlassian.net"}
            return json_response(200, [site | {"scopes": ["read:page:confluence"]}])
        prefix = f"/ex/confluence/{CLOUD_ID}"
        if path.startswith("/ex/confluence/"):
            if not path.startswith(prefix + "/") or not self.bearer_ok(headers):
                return json_response(401, {"code": 401, "message": "Unauthorized"})
            path = path.removeprefix(prefix)
        elif not self._basic_ok(headers):
            return self.error(401, "UNAUTHORIZED", "Unauthorized")
        if method != "GET" or not path.startswith("/wiki/api/v2/"):
            return self.error(404, "NOT_FOUND", "Not Found")
        parts = path.removeprefix("/wiki/api/v2/").split("/")
        if parts == ["spaces"]:
            keys = set(filter(None, (query.get("keys") or "").split(",")))
            spaces = [s for s in self.spaces if not keys or s["key"] in keys]
            return self._paged(path, query, spaces)
        if len(parts) == 3 and parts[0] == "spaces" and parts[2] == "pages":
            with self.lock:
                pages = [
                    p.wire(query.get("body-format") == "storage")
                    for p in sorted(self.pages.values(), key=lambda p: int(p.id))
                    if p.space_id == parts[1] and p.status == query.get("status", "current")
                ]
            return self._paged(path, query, pages)
        if len(parts) == 2 and parts[0] == "pages":
            page = self.pages.get(parts[1])
            if page is None or page.status == "deleted":
                return self.error(404, "NOT_FOUND", "Not Found")
            return json_response(200, page.wire(query.get("body-format") == "storage"))
        return self.error(404, "NOT_FOUND", "Not Found")

    def _paged(self, path: str, query: dict[str, str], items: list[dict]):
        limit = min(int(query.get("limit") or 25), self.page_cap)
        start = int(query.get("cursor") or 0)
        links: dict[str, Any] = {"base": "https://acme.atlassian.net/wiki"}
        headers = {}
        if start + limit < len(items):
            rest = {k: v for k, v in query.items() if k != "cursor"}
            nxt = f"{path}?{urlencode(rest | {'cursor': start + limit})}"
            links["next"] = nxt
            headers["Link"] = f'<{nxt}>; rel="next"'
        return json_response(
            200, {"results": items[start : start + limit], "_links": links}, headers
        )
