"""Sitemaps: a start URL that answers with an XML ``<urlset>`` or ``<sitemapindex>`` (gzip too) is
not a document; its entries are crawled instead (see crawl.py for the expansion and its limits).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fruxon_pipelines.sources.web.client import FetchFailure, describe_size
from fruxon_pipelines.sources.web.content import BINARY_PREFIXES, GZIP_TYPES, HTML_TYPES, XML_TYPES

SITEMAP_MAX_NESTING = 3
SITEMAP_MAX_FILES = 100
SITEMAP_MAX_ENTRIES = 50_000  # the sitemap protocol's own limit per file


def may_be_sitemap(media: str | None, url: str) -> bool:
    """Worth reading and trying as a sitemap: an XML or gzip type, or a sitemap-like file name
    whatever the type (sitemaps are often served as text/plain, octet-stream, even text/html)."""
    if media in XML_TYPES or media in GZIP_TYPES:
        return True
    if media is not None and media.endswith("+xml") and media not in HTML_TYPES:
        return True
    if media is not None and media.startswith(BINARY_PREFIXES):
        return False
    return urlsplit(url).path.lower().endswith((".xml", ".xml.gz", ".gz"))


@dataclass
class Sitemap:
    url: str
    kind: str  # "urlset" | "sitemapindex"
    locations: list[str]
    # An entry's <lastmod>, as the latest instant it can mean (epoch seconds), by location.
    lastmod: dict[str, float] = field(default_factory=dict)


# A date without a time zone is a day somewhere on Earth: it may end up to 14 h after UTC's.
_LATEST_ZONE = timedelta(hours=14)
_WITH_SECONDS = re.compile(r"T\d{2}:\d{2}:\d{2}")


def lastmod_until(text: str) -> float | None:
    """The latest instant a W3C-datetime ``<lastmod>`` can mean (epoch seconds): the end of its
    year, month, day, minute or second; None when it is not one."""
    text = text.strip()
    try:
        if len(text) == 4:
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            end = start.replace(year=start.year + 1)
        elif len(text) == 7:
            start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
            end = (start + timedelta(days=32)).replace(day=1)
        elif len(text) == 10:
            start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            span = timedelta(seconds=1 if _WITH_SECONDS.search(text) else 60)
            if moment.tzinfo is None:  # the protocol requires a zone; assume the latest
                moment, span = moment.replace(tzinfo=UTC), span + _LATEST_ZONE
            return (moment + span).timestamp()
    except ValueError:
        return None
    return (end + _LATEST_ZONE).timestamp()


def _gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise FetchFailure(f"corrupt gzip data: {exc}", transient=False) from exc
    if len(out) > limit:
        raise FetchFailure(
            f"the sitemap is larger than {describe_size(limit)} uncompressed", transient=False
        )
    return out


def parse_sitemap(data: bytes, limit: int) -> Sitemap | None:
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
    lastmod: dict[str, float] = {}
    for entry in root:
        if not isinstance(entry.tag, str) or etree.QName(entry).localname != entry_tag:
            continue
        fields = {
            etree.QName(child).localname: (child.text or "").strip()
            for child in entry
            if isinstance(child.tag, str)
        }
        location = fields.get("loc")
        if not location:
            continue
        locations.append(location)
        until = lastmod_until(fields["lastmod"]) if fields.get("lastmod") else None
        if until is not None:
            lastmod[location] = until
        if len(locations) >= SITEMAP_MAX_ENTRIES:
            break
    return Sitemap(url="", kind=kind, locations=locations, lastmod=lastmod)
