"""Web source: crawl a site (or expand a sitemap) and fetch only what changed.

What a crawl does, in the order it matters:

- **Keys.** A document's key is its normalised URL (:func:`normalize_url`): scheme and host
  lowercased, default port dropped, fragment dropped, empty path → ``/``, query kept,
  percent-encoding as requests sends it. After a redirect the key is the *final* URL, so several
  URLs redirecting to one page give one document.
- **Scope.** Breadth-first from the start URLs, up to ``maxDepth`` link hops, at most ``maxPages``
  items yielded (every status counts). Links are followed only on the site of the start URL they
  were reached from: same host (a leading ``www.`` ignored, so ``example.com`` ↔
  ``www.example.com`` and http → https upgrades stay on site) and same explicit port.
  ``includePatterns`` / ``excludePatterns`` (fnmatch on the full normalised URL, case-sensitive)
  filter discovered links and sitemap entries; start URLs are always taken. An excluded link is
  neither fetched nor followed through.
- **Sitemaps.** A start URL answering with an XML ``<urlset>`` or ``<sitemapindex>`` (gzip too)
  is not a document: its entries become depth-0 URLs. Indexes nest at most 3 levels, 100 sitemap
  files per crawl. A child sitemap that fails gives a ``failed`` item under its URL, so the
  problem is visible.
- **robots.txt**, once per origin and crawl, through the same guarded session: ``Disallow`` /
  ``Allow`` (RFC 9309: longest match wins, ``*`` and ``$``) for our product token, else ``*``;
  a blocked URL yields ``failed`` without being requested. 4xx → allow all; 5xx or unreachable →
  allow all, with a note. ``Crawl-delay`` spaces requests to that origin (capped at 10 s).
- **Conditional GET.** ``If-None-Match`` / ``If-Modified-Since`` from ``known[key]`` unless
  ``force``; a 304 yields ``unchanged`` carrying ``known[key].links`` so the crawl goes on
  through unchanged pages.
- **Sitemap lastmod.** A sitemap entry whose ``<lastmod>`` (read as the latest instant it can
  mean) is before ``known[key].confirmed_at`` (by more than a clock skew's margin) yields
  ``unchanged`` without a request, unless
  ``force`` or ``useSitemapLastmod`` is off; its known links lead the crawl on, as a 304's do.
- **Failures never raise.** Timeouts, connection errors, SSRF refusals, HTTP errors, off-site
  redirects, refused content types, oversized bodies: ``failed`` with a message. 404/410:
  ``gone``. After a *transient* failure (5xx, 408, 429, network) the crawl goes on through
  ``known[key].links``, so an outage lists every known page as ``failed`` (kept in the index)
  instead of shrinking the listing (which would delete them). After 3 consecutive network
  failures on one origin, its remaining URLs fail without being requested.
- **Failure keys.** A failure is keyed by the last on-site URL of the redirect chain: the URL
  that could not be fetched, or whose redirect was refused.

Observations that are not per-document (robots.txt unavailable, a capped Crawl-delay, skipped
sitemap entries) are logged and collected in :attr:`WebSource.notes`.

The package, by responsibility:

- ``urls``: document keys, site identity, the source's parameters and what is in scope;
- ``client``: HTTP through the SSRF-guarded session, politeness per origin, body limits;
- ``robots``: robots.txt rules, read once per origin;
- ``sitemaps``: sitemap files read into their entries;
- ``content``: refused types, file names, an HTML page's title and links;
- ``fetching``: one URL, redirects and conditional GET included, into an item;
- ``crawl``: :class:`WebSource`, the crawl and the refresh.

A page's charset and whether it is HTML are decided by ``fruxon_pipelines.parsing.detect``, as
the parser decides them: the title and links read here and the text indexed agree.
"""

from fruxon_pipelines.sources.web.crawl import DEFAULT_MAX_BODY_BYTES, WebSource
from fruxon_pipelines.sources.web.robots import RobotsRules
from fruxon_pipelines.sources.web.urls import (
    WebParameters,
    in_scope,
    normalize_url,
    site_of,
    wanted_by_patterns,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "RobotsRules",
    "WebParameters",
    "WebSource",
    "in_scope",
    "normalize_url",
    "site_of",
    "wanted_by_patterns",
]
