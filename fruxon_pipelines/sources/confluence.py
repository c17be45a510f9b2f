"""Confluence Cloud: the current pages of some (or all) spaces, each one HTML document.

Against the REST API v2 (``/wiki/api/v2``):
- the spaces are ``GET /spaces`` (by ``keys`` when the asset names some), cursor-paged through
  ``_links.next`` (the same relative URL as the ``Link`` header) to the end;
- each space's pages are ``GET /spaces/{id}/pages?body-format=storage&status=current``, bodies
  included, so a page whose ``version.number`` is the one indexed is skipped, not re-parsed;
- a page asked for by itself (a webhook) is ``GET /pages/{id}?body-format=storage``; 404
  (missing, or no longer visible: Confluence answers 404 for both) is ``gone``;
- the storage format is XHTML with ``ac:``/``ri:`` macros; CDATA sections (code macros) are
  turned into text so the HTML parser keeps them.
Credentials: an API token with the account's e-mail against ``https://{site}.atlassian.net``
(HTTP Basic), or OAuth 2.0 (3LO) against ``api.atlassian.com/ex/confluence/{cloudId}``; the
cloud id is found through ``accessible-resources`` when the asset does not give it. Atlassian
rotates refresh tokens, so each refresh is saved at once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fruxon_pipelines.errors import INVALID_CONFIG
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, SourceError
from fruxon_pipelines.sources.oauth import endpoint, subdomain_label
from fruxon_pipelines.sources.provider_http import (
    ProviderClient,
    ProviderSource,
    basic_or_oauth,
    numeric_external_id,
    reach_options,
    resource,
    unchanged,
)
from fruxon_pipelines.validation import matching

LIMIT = 250
API = "/wiki/api/v2"
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_CLOUD_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


def page_key(page_id: int | str) -> str:
    return f"confluence:page:{int(page_id)}"


def resource_key(item: dict[str, Any]) -> str:
    """The source key of a Confluence page the sources API registers."""
    return page_key(numeric_external_id(item, "a Confluence page id"))


class ConfluenceParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(
        default=None, description="The site's name: acme for acme.atlassian.net."
    )
    cloudId: Annotated[str | None, matching(_CLOUD_ID, "is not a cloud id")] = Field(
        default=None, description="The site's cloud id (OAuth); found from the token if unset."
    )
    spaceKeys: list[str] = Field(
        default_factory=list, description="Only these spaces (ENG, OPS); empty: every space."
    )

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return subdomain_label(
            value, "the site's name (acme for acme.atlassian.net)", host_suffix=".atlassian.net"
        )

    @field_validator("spaceKeys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not re.fullmatch(r"~?[A-Za-z0-9_]{1,255}", key):
                raise ValueError(f"{key!r} is not a space key")
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> ConfluenceParameters:
        if not self.site and not self.cloudId:
            raise ValueError("site or cloudId is required")
        return self


def storage_html(title: str, storage: str) -> str:
    body = _CDATA.sub(lambda m: html.escape(m.group(1)), storage)
    escaped = html.escape(title)
    head = f"<html><head><title>{escaped}</title></head>"
    return f"{head}<body><h1>{escaped}</h1>\n{body}</body></html>"


class ConfluenceSource(ProviderSource):
    key_prefix = "confluence:page:"
    _space_ids: set[str] | None = None  # the asset's spaces, once a run asks for pages by id

    def __init__(self, params: ConfluenceParameters, reach: Any) -> None:
        settings = reach.settings
        self.params = params
        auth = basic_or_oauth(
            settings, "confluence", reach.credentials, lambda token: token.email or ""
        )
        common = {**reach_options(reach), "headers": {"Accept": "application/json"}}
        if reach.credentials.auth.method == "API_TOKEN":
            if not params.site:
                raise SourceError("parameters.site: required with an API token", INVALID_CONFIG)
            base = endpoint(settings.confluence_site_url, {"site": params.site}, ("site",))
            self.client = ProviderClient("confluence", base, **auth, **common)
            self.site_url = base
            return
        cloud_id = params.cloudId or self._cloud_id(settings, auth, common)
        base = settings.confluence_oauth_api_url.format(cloudId=cloud_id)
        self.client = ProviderClient("confluence", base, **auth, **common)
        self.site_url = f"https://{params.site}.atlassian.net" if params.site else base

    def _cloud_id(self, settings: Any, auth: dict[str, Any], common: dict[str, Any]) -> str:
        """The site the token may reach: the asset's `site`, else the only one."""
        lookup = ProviderClient("atlassian", settings.atlassian_resources_url, **auth, **common)
        try:
            resources = lookup.get_json("")
        finally:
            lookup.close()
        sites = [r for r in resources if isinstance(r, dict) and r.get("id")]
        if self.params.site:
            host = f"{self.params.site}.atlassian.net"
            sites = [r for r in sites if host in str(r.get("url", ""))]
        if len(sites) != 1:
            raise SourceError(
                f"the token reaches {len(sites)} matching Confluence sites; set parameters.site "
                "or parameters.cloudId",
                INVALID_CONFIG,
            )
        return str(sites[0]["id"])

    # listing ----------------------------------------------------------------------------------

    def _paged(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        url: str | None = path
        query: dict[str, Any] | None = params
        while url:
            answer = self.client.get_json(url, params=query)
            yield from answer.get("results") or []
            url = (answer.get("_links") or {}).get("next")  # relative: /wiki/api/v2/…
            query = None

    def spaces(self) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": LIMIT, "status": "current"}
        if self.params.spaceKeys:
            params["keys"] = ",".join(self.params.spaceKeys)
        spaces = list(self._paged(f"{API}/spaces", params))
        found = {s.get("key") for s in spaces}
        missing = [k for k in self.params.spaceKeys if k not in found]
        if missing:
            raise SourceError(
                f"no space {', '.join(missing)} on this site (or not visible to these credentials)",
                INVALID_CONFIG,
            )
        return spaces

    def _item(self, page: dict[str, Any], previous: KnownDocument | None, force: bool):
        key = page_key(page["id"])
        number = (page.get("version") or {}).get("number")
        version = str(number) if number is not None else None
        common = {
            "source_url": self._web_url(page.get("_links")),
            "title": page.get("title"),
            "etag": version,
            "last_modified": (page.get("version") or {}).get("createdAt"),  # for date filters
        }
        if unchanged(previous, version, force):
            return FetchedItem(source_key=key, status="unchanged", **common)
        storage = ((page.get("body") or {}).get("storage") or {}).get("value") or ""
        return FetchedItem(
            source_key=key,
            status="fetched",
            file_name=f"{page['id']}.html",
            content_type="text/html",
            data=storage_html(str(page.get("title") or ""), storage).encode("utf-8"),
            **common,
        )

    def list_items(self, known: Mapping[str, KnownDocument], force: bool):
        for space in self.spaces():
            params = {"body-format": "storage", "status": "current", "limit": LIMIT}
            for page in self._paged(f"{API}/spaces/{space['id']}/pages", params):
                yield self._item(page, known.get(page_key(page["id"])), force)

    def _web_url(self, links: dict[str, Any] | None) -> str | None:
        webui = (links or {}).get("webui")
        return f"{self.site_url}/wiki{webui}" if webui else None

    def resources(self) -> list[dict[str, Any]]:
        """The spaces, each with its current pages (without their bodies)."""
        tree = []
        for space in self.spaces():
            params = {"status": "current", "limit": LIMIT}
            pages = [
                resource(
                    page_key(page["id"]),
                    page["id"],
                    page.get("title"),
                    self._web_url(page.get("_links")),
                    "text/html",
                    parentId=str(page["parentId"]) if page.get("parentId") else None,
                )
                for page in self._paged(f"{API}/spaces/{space['id']}/pages", params)
            ]
            tree.append(
                {
                    "externalId": space.get("key"),
                    "title": space.get("name"),
                    "originalUrl": self._web_url(space.get("_links")),
                    "pages": pages,
                }
            )
        return tree

    def fetch_one(self, key: str, item_id: str, previous: KnownDocument | None, force: bool):
        if self._space_ids is None:
            self._space_ids = {str(s["id"]) for s in self.spaces()}
        page = self.client.get_json(f"{API}/pages/{item_id}", params={"body-format": "storage"})
        if page.get("status") != "current" or str(page.get("spaceId")) not in self._space_ids:
            return FetchedItem(source_key=key, status="gone")
        return self._item(page, previous, force)
