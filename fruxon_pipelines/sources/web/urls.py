"""URLs of a web source: document keys, what "same site" means, and the source's parameters
(start URLs, depth, page budget, include/exclude globs), which together say what is in scope."""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from requests.utils import requote_uri

Site = tuple[str, int | None]


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


def site_label(site: Site) -> str:
    host, port = site
    return f"{host}:{port}" if port is not None else host


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def path_and_query(url: str) -> str:
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
    useSitemapLastmod: bool = Field(
        default=True,
        description="A sitemap entry whose <lastmod> is older than the last time the page was "
        "read is not requested again (a forced refresh reads it all the same).",
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
