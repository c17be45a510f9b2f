"""The crawl: breadth-first from the start URLs within scope and budget, sitemaps expanded; or a
refresh of exactly the keys asked for. The exact behaviour is in the package docstring."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import requests

from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, Source, SourceError
from fruxon_pipelines.sources.netguard import make_session
from fruxon_pipelines.sources.web.client import WebClient
from fruxon_pipelines.sources.web.fetching import PageFetcher, unchanged_item
from fruxon_pipelines.sources.web.robots import RobotsCache
from fruxon_pipelines.sources.web.sitemaps import SITEMAP_MAX_FILES, SITEMAP_MAX_NESTING, Sitemap
from fruxon_pipelines.sources.web.urls import (
    Site,
    WebParameters,
    normalize_url,
    site_label,
    site_of,
    wanted_by_patterns,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
# A site's clock may run behind ours: a <lastmod> this close to the last read is not trusted.
LASTMOD_CLOCK_SKEW_SECONDS = 600.0


class WebSource(Source):
    """Crawls ``params.urls`` (see the package docstring for the exact behaviour).

    ``session``: a requests session to use instead of a guarded one from
    :func:`~fruxon_pipelines.sources.netguard.make_session` (it is then not closed, and the SSRF
    guard is whatever that session does). ``max_body_bytes``: largest body downloaded.
    """

    def __init__(
        self,
        params: WebParameters,
        *,
        allow_private_networks: bool,
        user_agent: str,
        timeout: float,
        session: requests.Session | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        keep_requested_keys: bool = False,
    ) -> None:
        self.params = params
        # A refresh files a page that now redirects under the URL asked for (the document a
        # user registered), not under its target.
        self.keep_requested_keys = keep_requested_keys
        self.allow_private_networks = allow_private_networks
        self.user_agent = user_agent
        self.timeout = timeout
        self.session = session
        self.max_body_bytes = max_body_bytes
        # Crawl-level observations of the last fetch() (robots.txt unavailable, capped delays …).
        self.notes: list[str] = []
        # The guarded session this fetch opened (none given): closed when the fetch is done.
        self._own_session: requests.Session | None = None

    def list_items(self, known: Mapping[str, KnownDocument], force: bool) -> Iterator[FetchedItem]:
        """The site's documents now: crawled from the start URLs and sitemaps."""
        return self._run(known, force).crawl()

    def fetch_keys(
        self, keys: set[str], known: Mapping[str, KnownDocument], force: bool
    ) -> Iterator[FetchedItem]:
        """Exactly these URLs, no crawling."""
        return self._run(known, force).refresh(keys)

    def close(self) -> None:
        if self._own_session is not None:
            self._own_session.close()
            self._own_session = None

    def _run(self, known: Mapping[str, KnownDocument], force: bool) -> _Run:
        session = self.session
        if session is None:
            session = self._own_session = make_session(self.user_agent, self.allow_private_networks)
        run = _Run(self, session, known, force)
        self.notes = run.notes
        return run


@dataclass
class _Task:
    url: str
    depth: int
    site: Site
    start: bool = False


class _Run:
    """State of one fetch() call: what was queued, seen and listed; its fetcher holds the robots
    cache and the politeness clocks."""

    def __init__(
        self,
        source: WebSource,
        session: requests.Session,
        known: Mapping[str, KnownDocument],
        force: bool,
    ) -> None:
        self.params = source.params
        self.keep_requested_keys = source.keep_requested_keys
        self.notes: list[str] = []
        self.done: set[str] = set()  # keys yielded
        self.enqueued: set[str] = set()
        self.sitemaps_seen: set[str] = set()
        self.count = 0
        client = WebClient(
            session,
            user_agent=source.user_agent,
            timeout=source.timeout,
            max_body_bytes=source.max_body_bytes,
        )
        robots = RobotsCache(client, self.note)
        self.fetcher = PageFetcher(client, robots, known, force=force, listed=self.done)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)
            log.warning("web source: %s", message)

    # -- entry points ------------------------------------------------------------------------

    def crawl(self) -> Iterator[FetchedItem]:
        queue: deque[_Task] = deque()
        starts = [u for u in (normalize_url(raw) for raw in self.params.urls) if u]
        if not starts:
            raise SourceError("the web source has no valid http(s) start URL")
        for url in starts:
            self._enqueue(queue, url, 0, site_of(url), start=True)
        max_pages = self.params.maxPages
        while queue and self.count < max_pages:
            task = queue.popleft()
            if task.url in self.done:
                continue
            _final, outcome = self.fetcher.retrieve(task.url, task.site, sitemap_ok=task.start)
            if outcome is None:
                continue
            if isinstance(outcome, Sitemap):
                self.sitemaps_seen.add(outcome.url)
                for entry in self._sitemap_entries(outcome, task.site, nesting=0):
                    if isinstance(entry, FetchedItem):
                        if self._claim(entry):
                            yield entry
                            # Unchanged by its <lastmod>: its links lead on as a 304's do.
                            if entry.status == "unchanged" and self.params.maxDepth > 0:
                                for link in entry.links:
                                    self._enqueue(queue, link, 1, task.site, filtered=True)
                    else:
                        self._enqueue(queue, entry, 0, task.site, filtered=True)
                continue
            if not self._claim(outcome):
                continue
            yield outcome
            if task.depth < self.params.maxDepth:
                for link in outcome.links:
                    self._enqueue(queue, link, task.depth + 1, task.site, filtered=True)

    def refresh(self, only_keys: set[str]) -> Iterator[FetchedItem]:
        """Exactly these keys. A key that now redirects elsewhere yields the target's item and
        ``gone`` for itself (in a full crawl it would no longer be listed either)."""
        for key in sorted(only_keys):
            url = normalize_url(key)
            if url is None:
                yield FetchedItem(key, "failed", error=f"{key!r} is not an http(s) URL")
                continue
            if url in self.done:
                continue
            final, outcome = self.fetcher.retrieve(url, site_of(url), sitemap_ok=False)
            assert not isinstance(outcome, Sitemap)
            if outcome is not None and self.keep_requested_keys:
                self.done.add(key)
                yield replace(outcome, source_key=key, source_url=url)
                continue
            if outcome is not None and outcome.source_key not in self.done:
                self.done.add(outcome.source_key)
                yield outcome
            if final != key and (outcome is None or outcome.source_key != key):
                yield FetchedItem(key, "gone", source_url=url, error=f"now redirects to {final}")

    # -- crawl bookkeeping -------------------------------------------------------------------

    def _claim(self, item: FetchedItem) -> bool:
        """Count ``item`` as listed, unless its key was listed already or the budget is spent."""
        if item.source_key in self.done or self.count >= self.params.maxPages:
            return False
        self.done.add(item.source_key)
        self.count += 1
        return True

    def _unchanged_since_read(self, key: str, lastmod: float | None) -> FetchedItem | None:
        """``unchanged`` without a request, when the sitemap says the page last changed before
        its indexed content was read; None: fetch it (conditionally) as usual."""
        if lastmod is None or self.fetcher.force or not self.params.useSitemapLastmod:
            return None
        known = self.fetcher.known.get(key)
        if known is None or known.confirmed_at is None:
            return None
        if lastmod >= known.confirmed_at - LASTMOD_CLOCK_SKEW_SECONDS:
            return None
        if not self._wanted(key):
            return None  # the pattern filter applies as it does to fetched entries
        return unchanged_item(key, known)

    def _wanted(self, url: str) -> bool:
        return wanted_by_patterns(self.params, url)

    def _enqueue(
        self,
        queue: deque[_Task],
        url: str,
        depth: int,
        site: Site,
        *,
        start: bool = False,
        filtered: bool = False,
    ) -> None:
        key = normalize_url(url)
        if key is None or key in self.enqueued:
            return
        if filtered and (site_of(key) != site or not self._wanted(key)):
            return
        self.enqueued.add(key)
        queue.append(_Task(key, depth, site, start))

    def _sitemap_entries(
        self, sitemap: Sitemap, site: Site, nesting: int
    ) -> Iterator[FetchedItem | str]:
        """Entry URLs of a sitemap (child sitemaps of an index fetched and expanded), plus
        ``failed``/``gone`` items for child sitemaps that could not be read."""
        if sitemap.kind == "urlset":
            off_site = 0
            for location in sitemap.locations:
                key = normalize_url(location)
                if key is None or site_of(key) != site:
                    off_site += 1
                    continue
                unchanged = self._unchanged_since_read(key, sitemap.lastmod.get(location))
                yield unchanged if unchanged is not None else key
            if off_site:
                self.note(
                    f"sitemap {sitemap.url}: skipped {off_site} entries that are not http(s) "
                    f"URLs on {site_label(site)}"
                )
            return
        if nesting >= SITEMAP_MAX_NESTING:
            self.note(f"sitemap index {sitemap.url} nests deeper than {SITEMAP_MAX_NESTING}")
            return
        for location in sitemap.locations:
            child = normalize_url(location)
            if child is None or site_of(child) != site:
                self.note(f"sitemap index {sitemap.url}: skipped off-site entry {location}")
                continue
            if child in self.sitemaps_seen:
                continue
            if len(self.sitemaps_seen) >= SITEMAP_MAX_FILES:
                self.note(f"more than {SITEMAP_MAX_FILES} sitemaps; the rest were not read")
                return
            self.sitemaps_seen.add(child)
            _final, outcome = self.fetcher.retrieve(child, site, sitemap_ok=True)
            if isinstance(outcome, Sitemap):
                self.sitemaps_seen.add(outcome.url)
                yield from self._sitemap_entries(outcome, site, nesting + 1)
            elif outcome is None:
                continue
            elif outcome.status in ("failed", "gone"):
                outcome.error = f"sitemap {child}: {outcome.error}"
                outcome.links = []
                yield outcome
            else:
                self.note(f"{child}, listed in sitemap index {sitemap.url}, is not a sitemap")
