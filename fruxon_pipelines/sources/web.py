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
"""

from __future__ import annotations

import codecs
import fnmatch
import logging
import re
import time
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import requests
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from requests.utils import requote_uri

from fruxon_pipelines.parsing import (
    GENERIC_CONTENT_TYPES,
    content_type_for,
    split_content_type,
)
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, SourceError
from fruxon_pipelines.sources.netguard import BlockedAddressError, make_session

__all__ = [
    "RobotsRules",
    "WebParameters",
    "WebSource",
    "normalize_url",
    "site_of",
]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_CRAWL_DELAY = 10.0
DEFAULT_MAX_BODY_BYTES = 50 * 1024 * 1024
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB
SITEMAP_MAX_NESTING = 3
SITEMAP_MAX_FILES = 100
SITEMAP_MAX_ENTRIES = 50_000  # the sitemap protocol's own limit per file
HOST_FAILURE_LIMIT = 3
_CHUNK = 64 * 1024

_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/x-gunzip"})
# Generic types (octet-stream, zip …) are accepted only when the file name or URL has a
# supported extension (a .docx or .pdf is often served like this), refused otherwise.
_BINARY_TYPES = (
    GENERIC_CONTENT_TYPES
    | _GZIP_TYPES
    | {
        "application/x-tar",
        "application/x-bzip2",
        "application/x-xz",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/java-archive",
        "application/x-msdownload",
        "application/x-executable",
        "application/x-sharedlib",
        "application/x-mach-binary",
        "application/vnd.microsoft.portable-executable",
        "application/wasm",
        "application/x-shockwave-flash",
        "application/vnd.ms-fontobject",
        "application/x-iso9660-image",
        "application/x-apple-diskimage",
        "application/vnd.android.package-archive",
        "application/x-debian-package",
        "application/x-rpm",
    }
)
_BINARY_PREFIXES = ("image/", "video/", "audio/", "font/")
_SKIPPED_SCHEMES = ("mailto:", "javascript:", "tel:", "data:", "sms:", "callto:")

Site = tuple[str, int | None]


# --------------------------------------------------------------------------------------------
# URLs


def normalize_url(url: str) -> str | None:
    """The document key of ``url``, or None if it is not a usable http(s) URL.

    Scheme and host lowercased (IDNA for non-ASCII hosts), default port dropped, fragment
    dropped, empty path → ``/``, query kept; unsafe characters percent-encoded the way requests
    sends them, so the key equals the URL actually requested. URLs with credentials are refused.
    """
    text = re.sub(r"[\t\r\n]", "", url.strip())
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        netloc = f"{netloc}:{port}"
    path = parts.path or "/"
    try:
        return requote_uri(urlunsplit((scheme, netloc, path, parts.query, "")))
    except ValueError:
        return None


def site_of(url: str) -> Site:
    """What "same site" compares: the host without a leading ``www.``, and an explicit port."""
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme, port) in (("http", 80), ("https", 443)):
        port = None
    return host, port


def _site_label(site: Site) -> str:
    host, port = site
    return f"{host}:{port}" if port is not None else host


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# --------------------------------------------------------------------------------------------
# Parameters


def _check_start_url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r}: credentials in URLs are not supported")
    if normalize_url(value) is None:
        raise ValueError(f"{value!r} is not a valid http(s) URL")
    return value


StartUrl = Annotated[str, AfterValidator(_check_start_url)]
UrlPattern = Annotated[str, StringConstraints(min_length=1)]


class WebParameters(BaseModel):
    """Parameters of a web source, as the API spells them."""

    model_config = ConfigDict(extra="forbid")

    urls: list[StartUrl] = Field(
        min_length=1,
        description="Start URLs (http or https): pages, or sitemaps that expand to their entries.",
    )
    maxDepth: int = Field(
        default=0, ge=0, description="Link hops to follow from the start URLs; 0: only them."
    )
    maxPages: int = Field(default=1000, ge=1, description="At most this many documents.")
    includePatterns: list[UrlPattern] = Field(
        default_factory=list,
        description="URL globs (fnmatch on the full URL); when given, a link must match one.",
    )
    excludePatterns: list[UrlPattern] = Field(
        default_factory=list, description="URL globs; a link matching one is skipped."
    )


def wanted_by_patterns(params: WebParameters, url: str) -> bool:
    """Whether the include and exclude globs let ``url`` in."""
    include, exclude = params.includePatterns, params.excludePatterns
    if include and not any(fnmatch.fnmatchcase(url, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(url, p) for p in exclude)


def in_scope(params: WebParameters, url: str) -> str | None:
    """The document key of ``url`` if a crawl of this source could list it (same site as a
    start URL, let in by the patterns), else None."""
    key = normalize_url(url)
    if key is None:
        return None
    sites = {site_of(start) for start in (normalize_url(u) for u in params.urls) if start}
    if site_of(key) not in sites or not wanted_by_patterns(params, key):
        return None
    return key


# --------------------------------------------------------------------------------------------
# robots.txt


@dataclass(frozen=True)
class _Rule:
    allow: bool
    text: str  # as written, for messages: "Disallow: /private/"
    length: int
    regex: re.Pattern[str]


def _rule_regex(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    # Compare in the same percent-encoding as request paths.
    pattern = requote_uri(pattern)
    body = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return re.compile(body + ("$" if anchored else ""), re.S)


@dataclass
class RobotsRules:
    """The robots.txt group that applies to one user agent (RFC 9309)."""

    rules: list[_Rule] = field(default_factory=list)
    crawl_delay: float | None = None

    @classmethod
    def parse(cls, text: str, user_agent: str) -> RobotsRules:
        """Rules of the groups naming our product token (first word of the User-Agent, case-
        insensitive), else of the ``*`` groups, else none (all allowed)."""
        token = _product_token(user_agent)
        groups: list[tuple[list[str], list[_Rule], list[float]]] = []
        current: tuple[list[str], list[_Rule], list[float]] | None = None
        in_agent_lines = False
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if current is None or not in_agent_lines:
                    current = ([], [], [])
                    groups.append(current)
                current[0].append(value.lower())
                in_agent_lines = True
                continue
            if key == "sitemap":
                continue  # not part of any group
            in_agent_lines = False
            if current is None:
                continue
            if key in ("allow", "disallow") and value:
                label = "Allow" if key == "allow" else "Disallow"
                current[1].append(
                    _Rule(key == "allow", f"{label}: {value}", len(value), _rule_regex(value))
                )
            elif key == "crawl-delay":
                try:
                    delay = float(value)
                except ValueError:
                    continue
                if delay >= 0:
                    current[2].append(delay)

        def matches(agent: str) -> bool:
            return agent == token or agent.split("/", 1)[0].strip() == token

        chosen = [g for g in groups if any(matches(a) for a in g[0])]
        if not chosen:
            chosen = [g for g in groups if "*" in g[0]]
        rules = [rule for g in chosen for rule in g[1]]
        delays = [d for g in chosen for d in g[2]]
        return cls(rules=rules, crawl_delay=max(delays) if delays else None)

    def blocking_rule(self, path: str) -> str | None:
        """The rule that disallows ``path`` (path and query), or None when it is allowed.

        The longest matching pattern wins; on a tie Allow wins.
        """
        if path == "/robots.txt":
            return None
        best: _Rule | None = None
        for rule in self.rules:
            if not rule.regex.match(path):
                continue
            if (
                best is None
                or rule.length > best.length
                or (rule.length == best.length and rule.allow)
            ):
                best = rule
        if best is None or best.allow:
            return None
        return best.text


def _product_token(user_agent: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9_-]+)", user_agent)
    return found.group(1).lower() if found else user_agent.strip().lower()


# --------------------------------------------------------------------------------------------
# Content helpers


def _disposition_file_name(header: str | None) -> str | None:
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*(?:[\w-]+'[^']*')?([^;]+)", header, re.I)
    plain = re.search(r'filename\s*=\s*"([^"]+)"|filename\s*=\s*([^;]+)', header, re.I)
    if extended:
        name = unquote(extended.group(1).strip().strip('"'))
    elif plain:
        name = (plain.group(1) or plain.group(2) or "").strip()
    else:
        return None
    # Only the last component: never trust a path from the server.
    name = re.split(r"[\\/]", name)[-1].strip()
    return name or None


def _url_file_name(url: str) -> str | None:
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    return name or None


def _refusal(media: str | None, url: str, file_name: str | None) -> str | None:
    """Why the body is not worth downloading (obviously binary, unparseable), or None."""
    if media is None:
        return None
    if media in GENERIC_CONTENT_TYPES and (
        content_type_for(file_name) or content_type_for(_url_file_name(url))
    ):
        return None  # e.g. report.docx sent as application/octet-stream: the parser decides
    if media.startswith(_BINARY_PREFIXES) or media in _BINARY_TYPES:
        return f"unsupported content type {media}"
    return None


def _may_be_sitemap(media: str | None, url: str) -> bool:
    """Worth reading and trying as a sitemap: an XML or gzip type, or a sitemap-like file name
    whatever the type (sitemaps are often served as text/plain, octet-stream, even text/html)."""
    if media in _XML_TYPES or media in _GZIP_TYPES:
        return True
    if media is not None and media.endswith("+xml") and media not in _HTML_TYPES:
        return True
    if media is not None and media.startswith(_BINARY_PREFIXES):
        return False
    return urlsplit(url).path.lower().endswith((".xml", ".xml.gz", ".gz"))


_HTML_SNIFF = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _looks_like_html(data: bytes) -> bool:
    head = data[:2048].removeprefix(b"\xef\xbb\xbf")
    return bool(_HTML_SNIFF.match(head) or re.search(rb"<(?:head|body)\b", head[:1024], re.I))


def _valid_codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _html_text(data: bytes, charset: str | None) -> str:
    """Decode HTML: BOM, declared charset, <meta charset>, then UTF-8, then cp1252."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    declared = _valid_codec(charset)
    if declared is None:
        meta = _META_CHARSET.search(data[:4096])
        declared = _valid_codec(meta.group(1).decode("ascii")) if meta else None
    if declared is not None:
        return data.decode(declared, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _title_and_links(
    data: bytes, charset: str | None, page_url: str, site: Site
) -> tuple[str | None, list[str]]:
    """The page's <title> and its same-site <a href> links (normalised, deduplicated, in order,
    the page itself left out). include/exclude patterns are *not* applied here."""
    from lxml import etree
    from lxml import html as lxml_html

    text = _html_text(data, charset)
    # lxml refuses str input that carries an XML encoding declaration.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    if not text.strip():
        return None, []
    try:
        root = lxml_html.document_fromstring(text)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None, []

    title = None
    for node in root.xpath("//head/title") or root.xpath("//title"):
        candidate = " ".join(node.text_content().split())
        if candidate:
            title = candidate[:500]
            break

    base = page_url
    for node in root.xpath("//base[@href]"):
        href = re.sub(r"[\t\r\n]", "", node.get("href", "")).strip()
        if href:
            try:
                candidate = urljoin(page_url, href)
            except ValueError:
                break
            if urlsplit(candidate).scheme.lower() in ("http", "https"):
                base = candidate
        break

    links: list[str] = []
    seen = {page_url}
    for anchor in root.iter("a"):
        href = anchor.get("href")
        if not href:
            continue
        href = re.sub(r"[\t\r\n]", "", href).strip()
        if not href or href.lower().startswith(_SKIPPED_SCHEMES):
            continue
        try:
            key = normalize_url(urljoin(base, href))
        except ValueError:
            continue
        if key is None or key in seen or site_of(key) != site:
            continue
        seen.add(key)
        links.append(key)
    return title, links


@dataclass
class _Sitemap:
    url: str
    kind: str  # "urlset" | "sitemapindex"
    locations: list[str]


class _Failure(Exception):
    """One URL could not be fetched; ``transient`` failures let the crawl use known links."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _Failure(f"corrupt gzip data: {exc}", transient=False) from exc
    if len(out) > limit:
        raise _Failure(f"the sitemap is larger than {_size(limit)} uncompressed", transient=False)
    return out


def _parse_sitemap(data: bytes, limit: int) -> _Sitemap | None:
    """``<urlset>`` / ``<sitemapindex>`` (plain or gzip) → its <loc> entries; None otherwise."""
    from lxml import etree

    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, limit)
    if not data.lstrip().removeprefix(b"\xef\xbb\xbf").startswith(b"<"):
        return None
    # No DTDs, no entities, no network: a sitemap comes from someone else's server.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if root is None or not isinstance(root.tag, str):
        return None
    kind = etree.QName(root).localname
    entry_tag = {"urlset": "url", "sitemapindex": "sitemap"}.get(kind)
    if entry_tag is None:
        return None
    locations: list[str] = []
    for entry in root:
        if not isinstance(entry.tag, str) or etree.QName(entry).localname != entry_tag:
            continue
        for child in entry:
            if isinstance(child.tag, str) and etree.QName(child).localname == "loc":
                if child.text and child.text.strip():
                    locations.append(child.text.strip())
                break
        if len(locations) >= SITEMAP_MAX_ENTRIES:
            break
    return _Sitemap(url="", kind=kind, locations=locations)


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def _describe_connection_error(exc: requests.RequestException, url: str) -> str:
    text = str(exc)
    host = urlsplit(url).hostname or url
    if "NameResolutionError" in text or "Name or service not known" in text:
        return f"could not resolve host {host}"
    if "Connection refused" in text:
        return f"connection refused by {host}"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return f"{host} closed the connection"
    caused = re.search(r"Caused by (.*)\)$", text)
    return f"connection to {host} failed: {caused.group(1) if caused else text}"


# --------------------------------------------------------------------------------------------
# The source


class WebSource:
    """Crawls ``params.urls`` (see the module docstring for the exact behaviour).

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

    def fetch(
        self,
        known: Mapping[str, KnownDocument],
        only_keys: set[str] | None = None,
        force: bool = False,
    ) -> Iterator[FetchedItem]:
        """Yield the site's documents now; ``only_keys``: exactly those URLs, no crawling."""
        session = self.session or make_session(self.user_agent, self.allow_private_networks)
        run = _Run(self, session, known, force)
        self.notes = run.notes
        try:
            if only_keys is not None:
                yield from run.refresh(only_keys)
            else:
                yield from run.crawl()
        finally:
            if self.session is None:
                session.close()


@dataclass
class _Task:
    url: str
    depth: int
    site: Site
    start: bool = False


class _Run:
    """State of one fetch() call: robots cache, politeness clocks, what was seen and listed."""

    def __init__(
        self,
        source: WebSource,
        session: requests.Session,
        known: Mapping[str, KnownDocument],
        force: bool,
    ) -> None:
        self.source = source
        self.params = source.params
        self.session = session
        self.known = known
        self.force = force
        self.timeout = source.timeout
        self.body_seconds = max(30.0, 5 * source.timeout)
        self.notes: list[str] = []
        self.robots: dict[str, RobotsRules] = {}
        self.last_request: dict[str, float] = {}
        self.network_failures: dict[str, tuple[int, str]] = {}
        self.done: set[str] = set()  # keys yielded
        self.enqueued: set[str] = set()
        self.sitemaps_seen: set[str] = set()
        self.count = 0

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
            _final, outcome = self._retrieve(task.url, task.site, sitemap_ok=task.start)
            if outcome is None:
                continue
            if isinstance(outcome, _Sitemap):
                self.sitemaps_seen.add(outcome.url)
                for entry in self._sitemap_entries(outcome, task.site, nesting=0):
                    if isinstance(entry, FetchedItem):
                        if self._claim(entry):
                            yield entry
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
            final, outcome = self._retrieve(url, site_of(url), sitemap_ok=False)
            assert not isinstance(outcome, _Sitemap)
            if outcome is not None and self.source.keep_requested_keys:
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
        self, sitemap: _Sitemap, site: Site, nesting: int
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
                yield key
            if off_site:
                self.note(
                    f"sitemap {sitemap.url}: skipped {off_site} entries that are not http(s) "
                    f"URLs on {_site_label(site)}"
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
            _final, outcome = self._retrieve(child, site, sitemap_ok=True)
            if isinstance(outcome, _Sitemap):
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

    # -- one URL, redirects included -------------------------------------------------------------

    def _retrieve(
        self, url: str, site: Site, *, sitemap_ok: bool
    ) -> tuple[str, FetchedItem | _Sitemap | None]:
        """Fetch ``url``, following on-site redirects; returns (final URL, outcome).

        The outcome is None when a redirect lands on a document already listed in this run.
        """
        current = url
        chain = [url]
        for hop in range(MAX_REDIRECTS + 1):
            rule = self._robots_rule(current)  # an unreadable robots.txt means "allowed"
            if rule is not None:
                return current, self._failed(
                    current, _Failure(f"blocked by robots.txt ({rule})", transient=False)
                )
            headers = self._conditional_headers(current)
            try:
                response = self._send(current, headers)
            except _Failure as failure:
                return current, self._failed(current, failure)
            try:
                if response.status_code not in _REDIRECT_STATUSES:
                    return current, self._handle(
                        current, response, site, conditional=bool(headers), sitemap_ok=sitemap_ok
                    )
                location = response.headers.get("Location")
                self._drain(response)
            except _Failure as failure:
                return current, self._failed(current, failure)
            finally:
                response.close()
                self.last_request[_origin(current)] = time.monotonic()

            status = response.status_code
            if not location:
                return current, self._failed(
                    current, _Failure(f"HTTP {status} redirect without a Location", transient=False)
                )
            try:
                target = normalize_url(urljoin(current, location))
            except ValueError:
                target = None
            if target is None:
                return current, self._failed(
                    current,
                    _Failure(f"redirects to {location!r}, not an http(s) URL", transient=False),
                )
            if site_of(target) != site:
                return current, self._failed(
                    current,
                    _Failure(
                        f"redirects off-site to {target} (the crawl stays on {_site_label(site)})",
                        transient=False,
                    ),
                )
            if target in chain:
                loop = " → ".join([*chain, target])
                return current, self._failed(
                    current, _Failure(f"redirect loop: {loop}", transient=False)
                )
            if hop == MAX_REDIRECTS:
                return current, self._failed(
                    current,
                    _Failure(f"too many redirects (more than {MAX_REDIRECTS})", transient=False),
                )
            chain.append(target)
            current = target
            if current in self.done:
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

    def _failed(self, url: str, failure: _Failure) -> FetchedItem:
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
    ) -> FetchedItem | _Sitemap:
        status = response.status_code
        reason = f"HTTP {status} {response.reason or ''}".strip()
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        if status == 304:
            known = self.known.get(url)
            if not conditional or known is None:
                raise _Failure("HTTP 304 to a request that was not conditional", transient=True)
            self._drain(response)
            return FetchedItem(
                url,
                "unchanged",
                source_url=url,
                etag=etag or known.etag,
                last_modified=last_modified or known.last_modified,
                links=list(known.links),
            )
        if status in (404, 410):
            self._drain(response)
            return FetchedItem(url, "gone", source_url=url, error=reason)
        if not 200 <= status < 300:
            self._drain(response)
            raise _Failure(reason, transient=status >= 500 or status in (408, 429))

        media, charset = split_content_type(response.headers.get("Content-Type"))
        file_name = _disposition_file_name(response.headers.get("Content-Disposition"))
        if sitemap_ok and _may_be_sitemap(media, url):
            data = self._read_body(response)
            sitemap = _parse_sitemap(data, self.source.max_body_bytes)
            if sitemap is not None:
                sitemap.url = url
                return sitemap
            refusal = _refusal(media, url, file_name)
            if refusal is not None:
                raise _Failure(refusal, transient=False)
        else:
            refusal = _refusal(media, url, file_name)
            if refusal is not None:
                raise _Failure(refusal, transient=False)
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.source.max_body_bytes:
                raise _Failure(
                    f"the document is too large ({_size(int(declared))}; the limit is "
                    f"{_size(self.source.max_body_bytes)})",
                    transient=False,
                )
            data = self._read_body(response)

        if media is None and _looks_like_html(data):
            media = "text/html"
        title: str | None = None
        links: list[str] = []
        if media in _HTML_TYPES:
            title, links = _title_and_links(data, charset, url, site)
        else:
            file_name = file_name or _url_file_name(url)
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

    # -- HTTP ------------------------------------------------------------------------------------

    def _send(self, url: str, headers: Mapping[str, str]) -> requests.Response:
        """One guarded GET (no redirects, streamed), after robots' Crawl-delay for the origin."""
        origin = _origin(url)
        failures, last_error = self.network_failures.get(origin, (0, ""))
        if failures >= HOST_FAILURE_LIMIT:
            raise _Failure(
                f"not requested: {origin} failed {failures} times in a row (last: {last_error})",
                transient=True,
            )
        self._wait_for_turn(origin)
        request_headers = {"User-Agent": self.source.user_agent, "Accept": _ACCEPT, **headers}
        try:
            response = self.session.get(
                url,
                headers=request_headers,
                allow_redirects=False,
                stream=True,
                timeout=(self.timeout, self.timeout),
            )
        except BlockedAddressError as exc:
            raise _Failure(str(exc), transient=False) from exc
        except requests.Timeout as exc:
            message = f"timed out after {self.timeout:g} s"
            self.network_failures[origin] = (failures + 1, message)
            raise _Failure(message, transient=True) from exc
        except requests.exceptions.SSLError as exc:
            message = f"TLS error with {urlsplit(url).hostname}: {exc}"
            self.network_failures[origin] = (failures + 1, message)
            raise _Failure(message, transient=True) from exc
        except requests.ConnectionError as exc:
            message = _describe_connection_error(exc, url)
            self.network_failures[origin] = (failures + 1, message)
            raise _Failure(message, transient=True) from exc
        except requests.RequestException as exc:
            raise _Failure(f"request failed: {exc}", transient=True) from exc
        finally:
            self.last_request[origin] = time.monotonic()
        self.network_failures.pop(origin, None)
        return response

    def _wait_for_turn(self, origin: str) -> None:
        rules = self.robots.get(origin)
        last = self.last_request.get(origin)
        if rules is None or not rules.crawl_delay or last is None:
            return
        delay = min(rules.crawl_delay, MAX_CRAWL_DELAY)
        pause = last + delay - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _read_body(
        self, response: requests.Response, limit: int | None = None, *, truncate: bool = False
    ) -> bytes:
        """The body, decoded (gzip …), at most ``limit`` bytes: beyond it a failure, or the
        first ``limit`` bytes with ``truncate``. Total time is capped too (slow-drip servers)."""
        limit = self.source.max_body_bytes if limit is None else limit
        deadline = time.monotonic() + self.body_seconds
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > limit and truncate:
                    chunks.append(chunk[: len(chunk) - (total - limit)])
                    break
                if total > limit:
                    raise _Failure(
                        f"the document is larger than the {_size(limit)} limit",
                        transient=False,
                    )
                if time.monotonic() > deadline:
                    raise _Failure(
                        f"downloading took longer than {self.body_seconds:g} s", transient=True
                    )
                chunks.append(chunk)
        except requests.Timeout as exc:
            raise _Failure(f"timed out after {self.timeout:g} s", transient=True) from exc
        except requests.RequestException as exc:
            raise _Failure(f"the download broke off: {exc}", transient=True) from exc
        return b"".join(chunks)

    @staticmethod
    def _drain(response: requests.Response) -> None:
        """Read a small body so the connection can be reused; a large one is just dropped."""
        try:
            total = 0
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > _CHUNK:
                    break
        except requests.RequestException:
            pass

    # -- robots.txt ------------------------------------------------------------------------------

    def _robots_rule(self, url: str) -> str | None:
        origin = _origin(url)
        rules = self.robots.get(origin)
        if rules is None:
            rules = self._load_robots(origin)
            self.robots[origin] = rules
        return rules.blocking_rule(_path_and_query(url))

    def _load_robots(self, origin: str) -> RobotsRules:
        url = f"{origin}/robots.txt"
        allow_all = RobotsRules()
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                response = self._send(url, {})
            except _Failure as failure:
                self.note(f"{url} could not be fetched ({failure.message}); crawling as allowed")
                return allow_all
            try:
                status = response.status_code
                if status in _REDIRECT_STATUSES and response.headers.get("Location"):
                    target = normalize_url(urljoin(url, response.headers["Location"]))
                    self._drain(response)
                    if target is None:
                        return allow_all
                    url = target
                    continue
                if 400 <= status < 500 and status != 429:
                    return allow_all  # no robots.txt: everything is allowed
                if not 200 <= status < 300:
                    self.note(f"{url} answered HTTP {status}; crawling as allowed")
                    return allow_all
                data = self._read_body(response, ROBOTS_MAX_BYTES, truncate=True)
            except _Failure as failure:
                self.note(f"{url} could not be read ({failure.message}); crawling as allowed")
                return allow_all
            finally:
                response.close()
            rules = RobotsRules.parse(
                data.decode("utf-8", errors="replace"), self.source.user_agent
            )
            if rules.crawl_delay and rules.crawl_delay > MAX_CRAWL_DELAY:
                self.note(
                    f"{url} asks for Crawl-delay {rules.crawl_delay:g} s; "
                    f"using {MAX_CRAWL_DELAY:g} s"
                )
            return rules
        self.note(f"{origin}/robots.txt redirects too often; crawling as allowed")
        return allow_all
