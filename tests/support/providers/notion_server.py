"""Notion's public API (Notion-Version 2022-06-28) on 127.0.0.1: search, pages, block children.

Speaks Notion's wire format: cursor paging (``start_cursor``, ``next_cursor``, ``has_more``),
its error object (``{"object": "error", "status", "code", "message"}``), 400
``missing_version`` without the ``Notion-Version`` header, 401 ``unauthorized``, 404
``object_not_found``, 429 ``rate_limited`` with ``Retry-After``; OAuth with HTTP Basic client
authentication and JSON bodies, refresh tokens rotated on every refresh.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from providers.fake_provider import FakeProvider, json_response


def _stamp(moment: datetime) -> str:
    """A ``last_edited_time`` as Notion writes it: rounded down to the minute."""
    return moment.strftime("%Y-%m-%dT%H:%M:00.000Z")


def _now() -> str:
    return _stamp(datetime.now(UTC))


def _an_hour_ago() -> str:
    """Pages a test starts with were last edited before the integration first reads them."""
    return _stamp(datetime.now(UTC) - timedelta(hours=1))


def text_block(kind: str, text: str, children: list[dict] | None = None, **extra: Any) -> dict:
    """A block as Notion returns it (rich_text with plain_text), with optional children."""
    rich = [{"type": "text", "text": {"content": text, "link": None}, "plain_text": text}]
    return {
        "object": "block",
        "id": str(uuid.uuid4()),
        "type": kind,
        kind: {"rich_text": rich, "color": "default", **extra},
        "has_children": bool(children),
        "children": children or [],
    }


@dataclass
class FakePage:
    title: str
    blocks: list[dict]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    parent: dict = field(default_factory=lambda: {"type": "workspace", "workspace": True})
    last_edited_time: str = field(default_factory=_an_hour_ago)
    in_trash: bool = False
    restricted: bool = False  # the integration may list it but not read its content

    def wire(self) -> dict[str, Any]:
        title_key = "Name" if self.parent.get("type") == "database_id" else "title"
        return {
            "object": "page",
            "id": self.id,
            "created_time": "2026-01-01T00:00:00.000Z",
            "last_edited_time": self.last_edited_time,
            "archived": self.in_trash,
            "in_trash": self.in_trash,
            "url": f"https://www.notion.so/{self.id.replace('-', '')}",
            "parent": self.parent,
            "properties": {
                title_key: {
                    "id": "title",
                    "type": "title",
                    "title": [{"type": "text", "plain_text": self.title}],
                }
            },
        }


class NotionServer(FakeProvider):
    client_auth = "basic"
    token_body = "json"
    rotates_refresh_tokens = True
    token_lifetime_seconds = None  # Notion documents no expires_in
    page_size_cap = 100

    def __init__(self) -> None:
        super().__init__()
        self.pages: dict[str, FakePage] = {}
        self.blocks: dict[str, dict] = {}

    def add_page(self, page: FakePage) -> FakePage:
        with self.lock:
            self.pages[page.id] = page
            self._index(page.blocks)
        return page

    def edit(self, page: FakePage, blocks: list[dict]) -> None:
        with self.lock:
            page.blocks = blocks
            page.last_edited_time = _now()
            self._index(blocks)

    def _index(self, blocks: list[dict]) -> None:
        for block in blocks:
            self.blocks[block["id"]] = block
            self._index(block["children"])

    # wire format ------------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str, headers=None):
        body = {"object": "error", "status": status, "code": code, "message": message}
        return json_response(status, body, headers)

    def failure(self, status: int, headers: dict[str, str]):
        codes = {429: "rate_limited", 500: "internal_server_error", 503: "service_unavailable"}
        return self.error(status, codes.get(status, "internal_server_error"), "injected", headers)

    @staticmethod
    def _paged(items: list[dict], cursor: str | None, size: int) -> dict[str, Any]:
        start = int(cursor) if cursor else 0
        window = items[start : start + size]
        more = start + size < len(items)
        return {
            "object": "list",
            "results": window,
            "next_cursor": str(start + size) if more else None,
            "has_more": more,
        }

    def api(self, method, path, query, headers, body):
        if headers.get("Notion-Version") != "2022-06-28":
            return self.error(400, "missing_version", "Notion-Version header failed validation")
        if not self.bearer_ok(headers):
            return self.error(401, "unauthorized", "API token is invalid.")
        if method == "POST" and path == "/v1/search":
            request = json.loads(body or b"{}")
            if request.get("filter") != {"property": "object", "value": "page"}:
                return self.error(400, "validation_error", "this fake serves page searches")
            size = min(int(request.get("page_size") or 100), self.page_size_cap)
            with self.lock:
                listed = [p.wire() for p in self.pages.values() if not p.in_trash]
            answer = self._paged(listed, request.get("start_cursor"), size)
            return json_response(200, answer | {"type": "page_or_database"})
        if method == "GET" and path.startswith("/v1/pages/"):
            page = self.pages.get(path.removeprefix("/v1/pages/"))
            if page is None:
                return self.error(404, "object_not_found", "Could not find page")
            return json_response(200, page.wire())
        if method == "GET" and path.startswith("/v1/blocks/") and path.endswith("/children"):
            block_id = path.removeprefix("/v1/blocks/").removesuffix("/children")
            with self.lock:
                page = self.pages.get(block_id)
                if page is not None and (page.in_trash or page.restricted):
                    if page.restricted:
                        return self.error(403, "restricted_resource", "no access")
                    return self.error(404, "object_not_found", "Could not find block")
                children = (
                    page.blocks if page else (self.blocks.get(block_id) or {}).get("children")
                )
            if children is None:
                return self.error(404, "object_not_found", "Could not find block")
            wire = [{k: v for k, v in b.items() if k != "children"} for b in children]
            size = min(int(query.get("page_size") or 100), self.page_size_cap)
            return json_response(
                200, self._paged(wire, query.get("start_cursor"), size) | {"type": "block"}
            )
        return self.error(400, "invalid_request_url", "Invalid request URL.")
