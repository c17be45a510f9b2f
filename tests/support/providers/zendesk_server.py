"""Zendesk's Help Center API on 127.0.0.1 (one subdomain), in Zendesk's wire format.

- ``GET /api/v2/help_center[/{locale}]/articles[.json]``: cursor pagination (``page[size]``,
  ``page[after]``; ``meta.has_more``, ``meta.after_cursor``, ``links.next``, and the next link
  in a ``Link`` header as Help Center sends it);
- ``GET /api/v2/help_center[/{locale}]/articles/{id}[.json]`` → ``{"article"}`` or 404
  ``{"error": "RecordNotFound", "description": "Not found"}``;
- ``GET /api/v2/help_center/incremental/articles[.json]?start_time=`` → time-paged
  ``{articles, count, end_time, next_page}``;
- ``GET /api/v2/help_center[/{locale}]/sections`` and ``/categories``;
- HTTP Basic ``{email}/token:{token}`` or a bearer token; 401 ``{"error": "Couldn't
  authenticate you"}`` with ``WWW-Authenticate``; 429 with ``Retry-After`` and a text/html body;
- OAuth at ``/oauth/authorizations/new`` (the shared login page) and ``/oauth/tokens`` (JSON,
  client credentials in the body, 201, PKCE, both tokens rotated on refresh).
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from providers.fake_provider import FakeProvider, json_response

_ids = itertools.count(360_001_000_000)


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeArticle:
    title: str
    body: str
    section_id: int = 1001
    locale: str = "en-us"
    draft: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    updated: float = field(default_factory=time.time)

    def wire(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": f"{base}/api/v2/help_center/{self.locale}/articles/{self.id}.json",
            "html_url": f"{base}/hc/{self.locale}/articles/{self.id}",
            "title": self.title,
            "body": self.body,
            "locale": self.locale,
            "source_locale": "en-us",
            "section_id": self.section_id,
            "draft": self.draft,
            "outdated": False,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": _stamp(self.updated),
            "edited_at": _stamp(self.updated),
            "label_names": [],
        }


class ZendeskServer(FakeProvider):
    client_auth = "body"
    token_body = "json"
    token_status = 201
    rotates_refresh_tokens = True
    token_lifetime_seconds = 7200
    export_page_cap = 1000
    list_page_cap = 100

    def __init__(self) -> None:
        super().__init__()
        self.articles: dict[int, FakeArticle] = {}
        self.sections = [
            {"id": 1001, "category_id": 501, "name": "Getting started", "locale": "en-us"},
            {"id": 1002, "category_id": 501, "name": "Billing", "locale": "en-us"},
            {"id": 1003, "category_id": 502, "name": "Security", "locale": "en-us"},
        ]
        self.categories = [
            {"id": 501, "name": "General", "locale": "en-us"},
            {"id": 502, "name": "Admins", "locale": "en-us"},
        ]
        self.user_tokens: dict[str, str] = {}  # email → API token

    def add(self, article: FakeArticle) -> FakeArticle:
        with self.lock:
            self.articles[article.id] = article
        return article

    def edit(self, article: FakeArticle, body: str) -> None:
        with self.lock:
            article.body = body
            article.updated = time.time()

    # wire format ------------------------------------------------------------------------------

    def failure(self, status: int, headers: dict[str, str]):
        if status == 429:  # as documented: text/html, with Retry-After
            return 429, {"Content-Type": "text/html; charset=utf-8"} | headers, b"Rate limited"
        return json_response(status, {"error": "InternalError"}, headers)

    def _authorized(self, headers: Any) -> bool:
        value = headers.get("Authorization") or ""
        if value.startswith("Basic "):
            user, _, token = base64.b64decode(value[6:]).decode().partition(":")
            email = user.removesuffix("/token")
            return user.endswith("/token") and self.user_tokens.get(email) == token
        return self.bearer_ok(headers)

    def handle(self, method, target, headers, body):
        # Zendesk's OAuth paths, served by the shared authorization server.
        target = target.replace("/oauth/authorizations/new", "/oauth/authorize", 1)
        target = target.replace("/oauth/tokens", "/oauth/token", 1)
        return super().handle(method, target, headers, body)

    def api(self, method, path, query, headers, body):
        if not self._authorized(headers):
            return json_response(
                401,
                {"error": "Couldn't authenticate you"},
                {"WWW-Authenticate": 'Basic realm="Web Password"'},
            )
        parts = path.removesuffix(".json").strip("/").split("/")
        if parts[:3] != ["api", "v2", "help_center"] or method != "GET":
            return json_response(404, {"error": "InvalidEndpoint", "description": "Not found"})
        rest = parts[3:]
        if rest[:2] == ["incremental", "articles"]:
            return self._export(int(query.get("start_time") or 0))
        locale = None
        if rest and rest[0] not in ("articles", "sections", "categories"):
            locale, rest = rest[0], rest[1:]
        if rest == ["articles"]:
            return self._list(path, locale, query)
        if len(rest) == 2 and rest[0] == "articles":
            article = self.articles.get(int(rest[1])) if rest[1].isdigit() else None
            if article is None or (locale and article.locale != locale):
                return json_response(404, {"error": "RecordNotFound", "description": "Not found"})
            return json_response(200, {"article": article.wire(self.url)})
        if rest in (["sections"], ["categories"]):
            kind = rest[0]
            listed = [
                item | {"html_url": f"{self.url}/hc/en-us/{kind}/{item['id']}"}
                for item in getattr(self, kind)
            ]
            return json_response(200, {kind: listed, "meta": {"has_more": False}})
        return json_response(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def _list(self, path: str, locale: str | None, query: dict[str, str]):
        with self.lock:
            listed = [
                a.wire(self.url)
                for a in sorted(self.articles.values(), key=lambda a: a.id)
                if not locale or a.locale == locale
            ]
        size = min(int(query.get("page[size]") or 30), self.list_page_cap)
        start = int(query.get("page[after]") or 0)
        window = listed[start : start + size]
        more = start + size < len(listed)
        answer: dict[str, Any] = {
            "articles": window,
            "meta": {"has_more": more, "after_cursor": str(start + size) if more else None},
            "links": {"next": None},
        }
        extra = {}
        if more:
            nxt = f"{self.url}{path}?" + urlencode(
                {"page[size]": size, "page[after]": start + size}
            )
            answer["links"]["next"] = nxt
            extra["Link"] = f'<{nxt}>; rel="next"'
        return json_response(200, answer, extra)

    def _export(self, start_time: int):
        with self.lock:
            changed = sorted(
                (a for a in self.articles.values() if int(a.updated) >= start_time),
                key=lambda a: a.updated,
            )
        page = changed[: self.export_page_cap]
        end_time = int(page[-1].updated) if page else start_time
        more = len(changed) > len(page)
        return json_response(
            200,
            {
                "articles": [a.wire(self.url) for a in page],
                "count": len(page),
                "end_time": end_time,
                "next_page": (
                    f"{self.url}/api/v2/help_center/incremental/articles.json?start_time={end_time}"
                    if more
                    else None
                ),
            },
        )
