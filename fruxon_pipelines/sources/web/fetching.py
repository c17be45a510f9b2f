"""One URL of a crawl, fetched: robots.txt consulted, a conditional GET from what the catalog
knows, on-site redirects followed; the answer becomes a FetchedItem (never an exception), or a
Sitemap to expand. The exact behaviour is in the package docstring."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

from fruxon_pipelines.parsing.detect import looks_like_html, split_content_type
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument
from fruxon_pipelines.sources.web.client import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    FetchFailure,
    WebClient,
    describe_size,
)
from fruxon_pipelines.sources.web.content import (
    HTML_TYPES,
    disposition_file_name,
    refusal_reason,
    title_and_links,
    url_file_name,
)
from fruxon_pipelines.sources.web.robots import RobotsCache
from fruxon_pipelines.sources.web.sitemaps import Sitemap, may_be_sitemap, parse_sitemap
from fruxon_pipelines.sources.web.urls import Site, normalize_url, site_label, site_of


def unchanged_item(
    url: str, known: KnownDocument, *, etag: str | None = None, last_modified: str | None = None
) -> FetchedItem:
    """``url`` is as indexed: its validators (new ones if the answer gave them) and the links
    seen last time, so a crawl goes on through it."""
    return FetchedItem(
        url,
        "unchanged",
        source_url=url,
        etag=etag or known.etag,
        last_modified=last_modified or known.last_modified,
        links=list(known.links),
    )


@dataclass
class PageFetcher:
    """Fetches the URLs of one crawl (see the module docstring).

    ``listed``: the keys the crawl has listed so far; a redirect that lands on one of them ends
    there, without a request.
    """

    client: WebClient
    robots: RobotsCache
    known: Mapping[str, KnownDocument]
    force: bool
    listed: Container[str]

    def retrieve(
        self, url: str, site: Site, *, sitemap_ok: bool
    ) -> tuple[str, FetchedItem | Sitemap | None]:
        """Fetch ``url``, following on-site redirects; returns (final URL, outcome).

        The outcome is None when a redirect lands on a document already listed in this run.
        """
        current = url
        chain = [url]
        for hop in range(MAX_REDIRECTS + 1):
            rule = self.robots.blocking_rule(current)  # an unreadable robots.txt means "allowed"
            if rule is not None:
                return current, self.failed(
                    current, FetchFailure(f"blocked by robots.txt ({rule})", transient=False)
                )
            headers = self._conditional_headers(current)
            try:
                response = self.client.get(current, headers)
            except FetchFailure as failure:
                return current, self.failed(current, failure)
            try:
                if response.status_code not in REDIRECT_STATUSES:
                    return current, self._handle(
                        current, response, site, conditional=bool(headers), sitemap_ok=sitemap_ok
                    )
                location = response.headers.get("Location")
                self.client.drain(response)
            except FetchFailure as failure:
                return current, self.failed(current, failure)
            finally:
                response.close()
                self.client.finished(current)

            status = response.status_code
            if not location:
                return current, self.failed(
                    current,
                    FetchFailure(f"HTTP {status} redirect without a Location", transient=False),
                )
            try:
                target = normalize_url(urljoin(current, location))
            except ValueError:
                target = None
            if target is None:
                return current, self.failed(
                    current,
                    FetchFailure(f"redirects to {location!r}, not an http(s) URL", transient=False),
                )
            if site_of(target) != site:
                return current, self.failed(
                    current,
                    FetchFailure(
                        f"redirects off-site to {target} (the crawl stays on {site_label(site)})",
                        transient=False,
                    ),
                )
            if target in chain:
                loop = " → ".join([*chain, target])
                return current, self.failed(
                    current, FetchFailure(f"redirect loop: {loop}", transient=False)
                )
            if hop == MAX_REDIRECTS:
                return current, self.failed(
                    current,
                    FetchFailure(
                        f"too many redirects (more than {MAX_REDIRECTS})", transient=False
                    ),
                )
            chain.append(target)
            current = target
            if current in self.listed:
                return current, None
        raise AssertionError("unreachable")  # the loop always returns

    def _conditional_headers(self, url: str) -> dict[str, str]:
        known = None if self.force else self.known.get(url)
        headers: dict[str, str] = {}
        if known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        return headers

    def failed(self, url: str, failure: FetchFailure) -> FetchedItem:
        known = self.known.get(url)
        # After a transient failure the crawl goes on through the links seen last time.
        links = list(known.links) if failure.transient and known is not None else []
        return FetchedItem(url, "failed", source_url=url, error=failure.message, links=links)

    def _handle(
        self,
        url: str,
        response: requests.Response,
        site: Site,
        *,
        conditional: bool,
        sitemap_ok: bool,
    ) -> FetchedItem | Sitemap:
        status = response.status_code
        reason = f"HTTP {status} {response.reason or ''}".strip()
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        if status == 304:
            known = self.known.get(url)
            if not conditional or known is None:
                raise FetchFailure("HTTP 304 to a request that was not conditional", transient=True)
            self.client.drain(response)
            return unchanged_item(url, known, etag=etag, last_modified=last_modified)
        if status in (404, 410):
            self.client.drain(response)
            return FetchedItem(url, "gone", source_url=url, error=reason)
        if not 200 <= status < 300:
            self.client.drain(response)
            raise FetchFailure(reason, transient=status >= 500 or status in (408, 429))

        media, charset = split_content_type(response.headers.get("Content-Type"))
        file_name = disposition_file_name(response.headers.get("Content-Disposition"))
        if sitemap_ok and may_be_sitemap(media, url):
            data = self.client.read_body(response)
            sitemap = parse_sitemap(data, self.client.max_body_bytes)
            if sitemap is not None:
                sitemap.url = url
                return sitemap
            refusal = refusal_reason(media, url, file_name)
            if refusal is not None:
                raise FetchFailure(refusal, transient=False)
        else:
            refusal = refusal_reason(media, url, file_name)
            if refusal is not None:
                raise FetchFailure(refusal, transient=False)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.client.max_body_bytes:
                raise FetchFailure(
                    f"the document is too large ({describe_size(int(declared))}; the limit is "
                    f"{describe_size(self.client.max_body_bytes)})",
                    transient=False,
                )
            data = self.client.read_body(response)

        if media is None and looks_like_html(data):
            media = "text/html"
        title: str | None = None
        links: list[str] = []
        if media in HTML_TYPES:
            title, links = title_and_links(data, charset, url, site)
        else:
            file_name = file_name or url_file_name(url)
        return FetchedItem(
            url,
            "fetched",
            source_url=url,
            title=title,
            file_name=file_name,
            # The charset stays with the media type: the parser decodes with it.
            content_type=f"{media}; charset={charset}" if media and charset else media,
            data=data,
            etag=etag,
            last_modified=last_modified,
            links=links,
        )
