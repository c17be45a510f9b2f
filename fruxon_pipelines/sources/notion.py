"""Notion: the pages an integration can reach, each one document of Markdown.

Against the public API at ``Notion-Version: 2022-06-28`` (pinned: later versions rename
databases to data sources and drop ``archived``):
- listing is ``POST /v1/search`` filtered to pages, cursor-paged to the end; database rows are
  pages too, so they come with it (``includeDatabasePages``);
- a page's version is its ``last_edited_time``: an unchanged one is not read again. Notion
  rounds it down to the minute, so a version read while its minute may still be open is not
  kept, and the next refresh reads the page again (the diff stage then finds it unchanged);
- its text is ``GET /v1/blocks/{id}/children`` walked depth-first (headings, lists, to-dos,
  quotes, code …). Child pages and databases are documents of their own, not inlined;
- a page that is gone (404, or in the trash) is ``gone``; one the integration may not read
  (403 on that page) is ``failed`` and the run goes on.
Credentials: an OAuth access token (refreshed on 401, Notion rotates the refresh token) or an
internal integration secret (``API_TOKEN``). Both go as a bearer token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fruxon_pipelines.sources.base import FetchedItem, KnownDocument
from fruxon_pipelines.sources.provider_http import (
    ProviderClient,
    ProviderError,
    ProviderSource,
    bearer_auth,
    reach_options,
    resource,
    unchanged,
)

NOTION_VERSION = "2022-06-28"
PAGE_SIZE = 100
MAX_BLOCK_DEPTH = 12
_ID = re.compile(r"^[0-9a-f]{32}$")  # after dashes are dropped


def normal_id(value: str) -> str:
    """Notion ids with or without dashes, as the API returns them (dashed, lower case)."""
    raw = value.replace("-", "").lower()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def page_key(page_id: str) -> str:
    return f"notion:page:{normal_id(page_id)}"


# Notion rounds ``last_edited_time`` down to the minute; two more minutes cover the minute
# itself and clock skew between Notion and this host.
OPEN_VERSION_SECONDS = 120


def settled_version(version: str | None, read_at: float) -> bool:
    """Whether a page read at ``read_at`` (epoch seconds) with this ``last_edited_time`` can
    have no later edit under the same stamp."""
    if not version:
        return False
    try:
        stamp = datetime.fromisoformat(version).timestamp()  # Python 3.11 reads the "Z"
    except ValueError:
        return False
    return read_at - stamp >= OPEN_VERSION_SECONDS


class NotionParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pageIds: list[str] = Field(
        default_factory=list,
        description="Only these pages; empty: every page shared with the integration.",
    )
    includeDatabasePages: bool = Field(
        default=True, description="Include pages that are rows of a database."
    )

    @field_validator("pageIds")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _ID.match(item.replace("-", "").lower()):
                raise ValueError(f"{item!r} is not a Notion page id")
        return [normal_id(v) for v in value]


def resource_key(item: dict[str, Any]) -> str:
    """The source key of a Notion resource the sources API registers (pages only)."""
    if (item.get("object") or "page") != "page":
        raise ValueError(
            f"object: {item.get('object')!r} is not imported; register the pages of a database"
        )
    external = str(item.get("externalId") or "")
    if not _ID.fullmatch(external.replace("-", "").lower()):
        raise ValueError(f"externalId: {external!r} is not a Notion page id")
    return page_key(external)


def icon_link(page: dict[str, Any]) -> str | None:
    icon = page.get("icon") or {}
    kind = icon.get("type")
    if kind in ("external", "file"):
        return (icon.get(kind) or {}).get("url")
    return None  # an emoji (or none) has no link


def rich_text(items: list[dict[str, Any]] | None) -> str:
    return "".join(str(t.get("plain_text") or "") for t in items or [])


def page_title(page: dict[str, Any]) -> str:
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return rich_text(prop.get("title")).strip()
    return ""


_PREFIX = {
    "heading_1": "# ",
    "heading_2": "## ",
    "heading_3": "### ",
    "bulleted_list_item": "- ",
    "numbered_list_item": "1. ",
    "quote": "> ",
    "toggle": "- ",
    "callout": "> ",
    "paragraph": "",
}


def block_markdown(block: dict[str, Any], indent: str) -> str | None:
    """One block as a line of Markdown (None: nothing to say)."""
    kind = block.get("type")
    body = block.get(kind) if isinstance(kind, str) else None
    if not isinstance(body, dict):
        return None
    if kind in _PREFIX:
        text = rich_text(body.get("rich_text"))
        prefix = _PREFIX[kind]
        return f"{indent if not prefix.startswith('#') else ''}{prefix}{text}" if text else None
    if kind == "to_do":
        mark = "x" if body.get("checked") else " "
        return f"{indent}- [{mark}] {rich_text(body.get('rich_text'))}"
    if kind == "code":
        return f"```{body.get('language') or ''}\n{rich_text(body.get('rich_text'))}\n```"
    if kind in ("child_page", "child_database"):
        return f"{indent}- {body.get('title') or 'Untitled'} (sub-{kind.split('_')[1]})"
    if kind == "equation":
        return f"$$ {body.get('expression', '')} $$"
    if kind == "table_row":
        return "| " + " | ".join(rich_text(cell) for cell in body.get("cells") or []) + " |"
    return None


class NotionSource(ProviderSource):
    key_prefix = "notion:page:"

    def __init__(self, params: NotionParameters, reach: Any) -> None:
        settings = reach.settings
        self.params = params
        self.client = ProviderClient(
            "notion",
            settings.notion_api_url,
            headers={"Notion-Version": NOTION_VERSION},
            **bearer_auth(settings, "notion", reach.credentials),
            **reach_options(reach),
        )

    # listing ----------------------------------------------------------------------------------

    def pages(self) -> Iterator[dict[str, Any]]:
        """Every page the integration can reach, to the last cursor."""
        cursor = None
        while True:
            body: dict[str, Any] = {
                "filter": {"property": "object", "value": "page"},
                "page_size": PAGE_SIZE,
            }
            if cursor:
                body["start_cursor"] = cursor
            answer = self.client.post_json("/v1/search", body)
            yield from answer.get("results") or []
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return

    def _wanted(self, page: dict[str, Any]) -> bool:
        if page.get("object") != "page" or page.get("archived") or page.get("in_trash"):
            return False
        if self.params.pageIds and normal_id(page["id"]) not in self.params.pageIds:
            return False
        parent = page.get("parent") or {}
        return self.params.includeDatabasePages or parent.get("type") != "database_id"

    # reading ----------------------------------------------------------------------------------

    def markdown(self, page: dict[str, Any]) -> str:
        lines = [f"# {page_title(page) or 'Untitled'}", ""]
        self._blocks(page["id"], lines, depth=0)
        return "\n".join(lines).strip() + "\n"

    def _blocks(self, block_id: str, lines: list[str], depth: int) -> None:
        cursor = None
        while True:
            params: dict[str, Any] = {"page_size": PAGE_SIZE}
            if cursor:
                params["start_cursor"] = cursor
            answer = self.client.get_json(f"/v1/blocks/{block_id}/children", params=params)
            for block in answer.get("results") or []:
                line = block_markdown(block, "  " * depth)
                if line is not None:
                    lines.append(line)
                    if not line.startswith(("  ", "-", "1.", ">", "|")):
                        lines.append("")
                if (
                    block.get("has_children")
                    and block.get("type") not in ("child_page", "child_database")
                    and depth < MAX_BLOCK_DEPTH
                ):
                    self._blocks(block["id"], lines, depth + 1)
            cursor = answer.get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return

    def _item(self, page: dict[str, Any], previous: KnownDocument | None, force: bool):
        key = page_key(page["id"])
        version = page.get("last_edited_time")
        title = page_title(page) or "Untitled"
        common = {"source_url": page.get("url"), "title": title, "etag": version}
        common["last_modified"] = version  # what date filters of searches read
        if unchanged(previous, version, force):
            return FetchedItem(source_key=key, status="unchanged", **common)
        try:
            text = self.markdown(page)
        except ProviderError as error:
            if error.status == 404:
                return FetchedItem(source_key=key, status="gone", **common)
            if error.status == 403:  # this page only: the integration lost access to it
                return FetchedItem(source_key=key, status="failed", error=str(error), **common)
            raise
        if not settled_version(version, read_at=time.time()):
            common["etag"] = None  # edits later in the minute would carry the same stamp
        return FetchedItem(
            source_key=key,
            status="fetched",
            file_name=f"{title[:80]}.md",
            content_type="text/markdown",
            data=text.encode("utf-8"),
            **common,
        )

    def list_items(self, known: Mapping[str, KnownDocument], force: bool):
        for page in self.pages():
            if self._wanted(page):
                yield self._item(page, known.get(page_key(page["id"])), force)

    def resources(self) -> list[dict[str, Any]]:
        """A flat list of the pages the integration can reach (database rows included)."""
        return [
            resource(
                page_key(page["id"]),
                normal_id(page["id"]),
                page_title(page),
                page.get("url"),
                "text/markdown",
                iconLink=icon_link(page),
                object="page",
            )
            for page in self.pages()
            if self._wanted(page)
        ]

    def fetch_one(self, key: str, item_id: str, previous: KnownDocument | None, force: bool):
        page = self.client.get_json(f"/v1/pages/{item_id}")
        if page.get("archived") or page.get("in_trash") or not self._wanted(page):
            return FetchedItem(source_key=key, status="gone")
        return self._item(page, previous, force)
