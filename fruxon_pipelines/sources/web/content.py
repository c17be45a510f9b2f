"""What a fetched body is: types refused before the download, the file name a document goes by,
and an HTML page's title and same-site links (read by detect.decode_text, as the parser reads the
page)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urljoin, urlsplit

from fruxon_pipelines.parsing.detect import GENERIC_CONTENT_TYPES, content_type_for, decode_text
from fruxon_pipelines.sources.web.urls import Site, normalize_url, site_of

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
XML_TYPES = frozenset({"application/xml", "text/xml"})
GZIP_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/x-gunzip"})
# Generic types (octet-stream, zip …) are accepted only when the file name or URL has a
# supported extension (a .docx or .pdf is often served like this), refused otherwise.
BINARY_TYPES = (
    GENERIC_CONTENT_TYPES
    | GZIP_TYPES
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
BINARY_PREFIXES = ("image/", "video/", "audio/", "font/")
_SKIPPED_SCHEMES = ("mailto:", "javascript:", "tel:", "data:", "sms:", "callto:")


def disposition_file_name(header: str | None) -> str | None:
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


def url_file_name(url: str) -> str | None:
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    return name or None


def refusal_reason(media: str | None, url: str, file_name: str | None) -> str | None:
    """Why the body is not worth downloading (obviously binary, unparseable), or None."""
    if media is None:
        return None
    if media in GENERIC_CONTENT_TYPES and (
        content_type_for(file_name) or content_type_for(url_file_name(url))
    ):
        return None  # e.g. report.docx sent as application/octet-stream: the parser decides
    if media.startswith(BINARY_PREFIXES) or media in BINARY_TYPES:
        return f"unsupported content type {media}"
    return None


def title_and_links(
    data: bytes, charset: str | None, page_url: str, site: Site
) -> tuple[str | None, list[str]]:
    """The page's <title> and its same-site <a href> links (normalised, deduplicated, in order,
    the page itself left out). include/exclude patterns are *not* applied here."""
    from lxml import etree
    from lxml import html as lxml_html

    text = decode_text(data, charset, html=True)
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
