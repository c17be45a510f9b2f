"""Sitemaps: a start URL that answers with an XML ``<urlset>`` or ``<sitemapindex>`` (gzip too) is
not a document; its entries are crawled instead (see crawl.py for the expansion and its limits).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
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
    return Sitemap(url="", kind=kind, locations=locations)
