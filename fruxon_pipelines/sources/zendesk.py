"""Zendesk Help Center: the articles of one subdomain (optionally one locale and some sections),
each one HTML document.

Against the Help Center API at ``https://{subdomain}.zendesk.com``:
- a **full listing** is ``GET /api/v2/help_center[/{locale}]/articles?page[size]=100``,
  cursor-paged (``meta.has_more``, ``links.next``) to the end. It carries every article's body,
  so an article whose version (``updated_at`` and a digest of its text) is the one indexed is
  skipped, not re-parsed;
- a **refresh** between full listings is the incremental export
  ``GET /api/v2/help_center/incremental/articles?start_time=…`` from the ``end_time`` the last
  complete run reached (time-paged, up to 1,000 per page). It names changes, not removals, so
  a full listing (which does remove) runs at least every ``FULL_LISTING_EVERY_MS`` and on
  ``force``; an unpublished article named by a webhook is looked up and found gone (404);
- drafts are skipped unless ``includeDrafts``.
Credentials: OAuth (bearer; Zendesk rotates the refresh token) or an API token with the agent's
e-mail (HTTP Basic ``{email}/token:{token}``).
"""

from __future__ import annotations

import hashlib
import html
import time
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fruxon_pipelines.sources import provider_http
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument
from fruxon_pipelines.sources.oauth import endpoint, subdomain_label

PAGE_SIZE = 100
FULL_LISTING_EVERY_MS = 24 * 3600 * 1000
MAX_EXPORT_PAGES = 10_000


def article_key(article_id: int | str) -> str:
    return f"zendesk:article:{int(article_id)}"


def resource_key(item: dict[str, Any]) -> str:
    """The source key of a Zendesk article the sources API registers."""
    if (item.get("type") or "article") != "article":
        raise ValueError(f"type: {item.get('type')!r} is not imported; register its articles")
    return article_key(provider_http.numeric_external_id(item, "a Zendesk article id"))


class ZendeskParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subdomain: str = Field(description="The account's subdomain: acme for acme.zendesk.com.")
    locale: str | None = Field(
        default=None, description="Only this locale's translations (en-us); default: all."
    )
    sectionIds: list[int] = Field(
        default_factory=list, description="Only articles of these sections; empty: all."
    )
    includeDrafts: bool = Field(default=False, description="Index draft articles too.")

    @field_validator("subdomain")
    @classmethod
    def _label(cls, value: str) -> str:
        return subdomain_label(value, "the subdomain alone (acme for acme.zendesk.com)")

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        if value is not None and not all(part.isalnum() for part in value.split("-")):
            raise ValueError("must be a locale such as en-us")
        return value.lower() if value else None


def article_version(updated_at: str | None, document: bytes) -> str | None:
    """The version an article is indexed at: its ``updated_at`` and a digest of the document
    indexed of it. ``updated_at`` has whole seconds, so two edits within one second share it;
    the listing carries the body, so the digest tells them apart at no extra request."""
    if not updated_at:
        return None
    return f"{updated_at}#{hashlib.sha256(document).hexdigest()[:16]}"


def article_html(article: dict[str, Any]) -> str:
    title = html.escape(str(article.get("title") or ""))
    body = article.get("body") or ""
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>\n{body}</body></html>"


class ZendeskSource(provider_http.ProviderSource):
    key_prefix = "zendesk:article:"

    def __init__(self, params: ZendeskParameters, reach: Any) -> None:
        settings = reach.settings
        self.params = params
        self.state = reach.state or {}
        auth = provider_http.basic_or_oauth(
            settings,
            "zendesk",
            reach.credentials,
            lambda token: f"{token.email}/token",  # Zendesk's user for an API token
            {"subdomain": params.subdomain},
        )
        self.client = provider_http.ProviderClient(
            "zendesk",
            endpoint(settings.zendesk_api_url, {"subdomain": params.subdomain}, ("subdomain",)),
            headers={"Accept": "application/json"},
            **auth,
            **provider_http.reach_options(reach),
        )

    def _path(self, kind: str = "articles") -> str:
        locale = f"/{self.params.locale}" if self.params.locale else ""
        return f"/api/v2/help_center{locale}/{kind}"

    def _wanted(self, article: dict[str, Any]) -> bool:
        if article.get("draft") and not self.params.includeDrafts:
            return False
        if self.params.locale and str(article.get("locale", "")).lower() != self.params.locale:
            return False
        return not self.params.sectionIds or article.get("section_id") in self.params.sectionIds

    # listings ---------------------------------------------------------------------------------

    def all_articles(self) -> Iterator[dict[str, Any]]:
        """Every article, cursor-paged to the last page."""
        return self._listing("articles")

    def _listing(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every article, section or category, cursor-paged to the last page."""
        url: str | None = self._path(kind)
        params: dict[str, Any] | None = {"page[size]": PAGE_SIZE}
        while url:
            answer = self.client.get_json(url, params=params)
            yield from answer.get(kind) or []
            more = (answer.get("meta") or {}).get("has_more")
            url = (answer.get("links") or {}).get("next") if more else None
            params = None  # the next link carries its own query

    def resources(self) -> list[dict[str, Any]]:
        """The help center as a tree: categories hold sections, sections hold articles."""
        sections: dict[int, dict[str, Any]] = {}
        for section in self._listing("sections"):
            if not self.params.sectionIds or section.get("id") in self.params.sectionIds:
                sections[section["id"]] = section | {"articles": []}
        for article in self.all_articles():
            if self._wanted(article) and article.get("section_id") in sections:
                sections[article["section_id"]]["articles"].append(article)
        tree = []
        for category in self._listing("categories"):
            children = [
                {
                    "externalId": str(section["id"]),
                    "title": section.get("name"),
                    "originalUrl": section.get("html_url"),
                    "type": "section",
                    "children": [
                        provider_http.resource(
                            article_key(a["id"]),
                            a["id"],
                            a.get("title"),
                            a.get("html_url"),
                            "text/html",
                            type="article",
                        )
                        for a in section["articles"]
                    ],
                }
                for section in sections.values()
                if section.get("category_id") == category.get("id")
            ]
            tree.append(
                {
                    "externalId": str(category["id"]),
                    "title": category.get("name"),
                    "originalUrl": category.get("html_url"),
                    "type": "category",
                    "children": children,
                }
            )
        return tree

    def changed_articles(self, since: int) -> tuple[list[dict[str, Any]], int]:
        """Articles changed since ``since`` (epoch seconds), and the export's last end_time."""
        changed: dict[int, dict[str, Any]] = {}
        start, end = since, since
        for _ in range(MAX_EXPORT_PAGES):
            answer = self.client.get_json(
                "/api/v2/help_center/incremental/articles", params={"start_time": start}
            )
            articles = answer.get("articles") or []
            for article in articles:
                changed[int(article["id"])] = article
            end = int(answer.get("end_time") or start)
            # Stop at the end; also when time stands still (more than a page at one second).
            if not answer.get("next_page") or not articles or end <= start:
                break
            start = end
        return list(changed.values()), end

    # fetching ---------------------------------------------------------------------------------

    def _item(self, article: dict[str, Any], previous: KnownDocument | None, force: bool):
        key = article_key(article["id"])
        document = article_html(article).encode("utf-8")
        version = article_version(article.get("updated_at"), document)
        common = {
            "source_url": article.get("html_url"),
            "title": article.get("title"),
            "etag": version,
            "last_modified": article.get("updated_at"),  # what date filters of searches read
        }
        if provider_http.unchanged(previous, version, force):
            return FetchedItem(source_key=key, status="unchanged", **common)
        return FetchedItem(
            source_key=key,
            status="fetched",
            file_name=f"{article['id']}.html",
            content_type="text/html",
            data=document,
            **common,
        )

    def list_items(self, known: Mapping[str, KnownDocument], force: bool):
        now_ms = int(time.time() * 1000)
        since = self.state.get("exportedUntil")
        full_due = now_ms - int(self.state.get("fullListingAt") or 0) >= FULL_LISTING_EVERY_MS
        if force or since is None or full_due:
            started = int(time.time())  # changes during the listing come next time
            for article in self.all_articles():
                if self._wanted(article):
                    yield self._item(article, known.get(article_key(article["id"])), force)
            self.next_state = {"exportedUntil": started, "fullListingAt": now_ms}
            return
        self.complete_listing = False
        changed, end = self.changed_articles(int(since))
        for article in changed:
            key = article_key(article["id"])
            if self._wanted(article):
                yield self._item(article, known.get(key), force)
            elif key in known:  # now a draft, or moved out of the asset's sections
                yield FetchedItem(source_key=key, status="gone")
        self.next_state = {**self.state, "exportedUntil": end}

    def fetch_one(self, key: str, item_id: str, previous: KnownDocument | None, force: bool):
        # 404: unpublished, archived or deleted (gone)
        answer = self.client.get_json(f"{self._path()}/{item_id}")
        article = answer.get("article") or {}
        if not self._wanted(article):
            return FetchedItem(source_key=key, status="gone")
        return self._item(article, previous, force)
