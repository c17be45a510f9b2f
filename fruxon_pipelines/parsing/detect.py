"""What a document is, and how its bytes read as text: media types, extensions, sniffing, charsets.

The web crawler reads a page's title and links with these same functions the parser reads its
content with, so one page is recognised as HTML, and decoded, the same way by both (a page the
crawler read as windows-1252 was once parsed under another guess). Standard library only: the
crawler, the API and the Dagster code location import this module freely.
"""

from __future__ import annotations

import codecs
import io
import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

__all__ = [
    "GENERIC_CONTENT_TYPES",
    "SUPPORTED_CONTENT_TYPES",
    "ParseError",
    "content_type_for",
    "decode_text",
    "looks_like_html",
    "split_content_type",
]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"
CSV = "text/csv"

SUPPORTED_CONTENT_TYPES: dict[str, tuple[str, ...]] = {
    PDF: (".pdf",),
    DOCX: (".docx",),
    HTML: (".html", ".htm", ".xhtml"),
    MARKDOWN: (".md", ".markdown"),
    TEXT: (".txt", ".text"),
    CSV: (".csv",),
}

# What messages call each format.
TYPE_NAMES = {
    PDF: "PDF",
    DOCX: "DOCX",
    HTML: "HTML",
    MARKDOWN: "Markdown",
    TEXT: "plain text",
    CSV: "CSV",
}
_SUPPORTED_LIST = ", ".join(TYPE_NAMES.values())

# Other names servers and browsers use for the same formats.
_ALIASES = {
    "application/x-pdf": PDF,
    "application/xhtml+xml": HTML,
    "text/x-markdown": MARKDOWN,
    "application/csv": CSV,
    "text/x-csv": CSV,
    "application/x-csv": CSV,
    "text/comma-separated-values": CSV,
}

# Types that say nothing about the format: decide by file name, then by content.
# application/zip is here because some servers send DOCX (a zip) under it.
GENERIC_CONTENT_TYPES = frozenset(
    {
        "application/octet-stream",
        "binary/octet-stream",
        "application/binary",
        "application/unknown",
        "application/x-download",
        "application/force-download",
        "application/download",
        "application/zip",
        "application/x-zip-compressed",
    }
)

_EXTENSION_TYPES = {ext: media for media, exts in SUPPORTED_CONTENT_TYPES.items() for ext in exts}


class ParseError(ValueError):
    """The document cannot be turned into elements; the message is meant for the user."""


def content_type_for(file_name: str | None) -> str | None:
    """The supported media type for a file name's extension (case-insensitive), or None."""
    if not file_name:
        return None
    return _EXTENSION_TYPES.get(PurePosixPath(file_name.strip()).suffix.lower())


def split_content_type(content_type: str | None) -> tuple[str | None, str | None]:
    """``"text/html; charset=ISO-8859-1"`` → ``("text/html", "iso-8859-1")``."""
    if not content_type:
        return None, None
    media, _, params = content_type.partition(";")
    media = media.strip().lower() or None
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'").lower()
    if media is not None:
        media = _ALIASES.get(media, media)
    return media, charset


# --------------------------------------------------------------------------------------------
# The format of a document


def resolve_type(
    data: bytes, media_type: str | None, file_name: str | None, url: str | None
) -> str:
    """The supported format to parse ``data`` as: the media type, unless it is missing, generic
    or text/plain; then the extension of the file name (or of the URL's path); then the bytes.
    Raises ParseError for an unsupported or unrecognisable format."""
    by_name = content_type_for(file_name)
    if by_name is None and url:
        by_name = content_type_for(unquote(urlsplit(url).path))
    if media_type == TEXT:
        # text/plain is what many servers and object stores send for any file they do not know:
        # a more specific extension or a binary signature wins over it.
        if by_name is not None:
            return by_name
        sniffed = sniff_format(data)
        return sniffed if sniffed in (PDF, DOCX) else TEXT
    if media_type in SUPPORTED_CONTENT_TYPES:
        return media_type
    if media_type is not None and media_type not in GENERIC_CONTENT_TYPES:
        raise ParseError(
            f"Unsupported content type {media_type!r}. Supported formats: {_SUPPORTED_LIST}."
        )
    if by_name is not None:
        return by_name
    sniffed = sniff_format(data)
    if sniffed is None:
        what = f"file {file_name!r}" if file_name else "document"
        raise ParseError(
            f"Cannot tell the format of the {what}: no usable content type, no known file "
            f"extension, and the content is not recognisable. Supported formats: {_SUPPORTED_LIST}."
        )
    return sniffed


def sniff_format(data: bytes) -> str | None:
    """The format the bytes themselves show (signature, HTML markup, text), or None."""
    head = data[:2048]
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX if is_docx_zip(data) else None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TEXT  # UTF-16 with a byte-order mark; its NUL bytes would look binary below
    if looks_like_html(data):
        return HTML
    if b"\x00" not in head:
        return TEXT
    return None


_HTML_START_RE = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)


def looks_like_html(data: bytes) -> bool:
    """Whether the bytes start like an HTML page (doctype or <html>, after an XML declaration
    and comments), or have a <head> or <body> early on."""
    head = data[:2048].removeprefix(codecs.BOM_UTF8)
    return bool(_HTML_START_RE.match(head) or re.search(rb"<(?:head|body)\b", head[:1024], re.I))


def is_docx_zip(data: bytes) -> bool:
    """Whether the bytes are a ZIP archive holding a Word document."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Charsets

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET_RE = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)


def decode_text(data: bytes, charset: str | None = None, *, html: bool = False) -> str:
    """The text of a text-format document (an HTML page with ``html``).

    A byte-order mark decides. Otherwise the first of these the bytes decode with: the charset
    the Content-Type declares, the page's own ``<meta charset>`` (HTML), UTF-8; failing all,
    windows-1252 (legacy Windows files are the usual non-UTF-8 case), with "replace" keeping the
    rest readable. A declared charset that is unknown or wrong is passed over: both are common.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    for name in (charset, _meta_charset(data) if html else None):
        if not name:
            continue
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def decode_text_document(data: bytes, charset: str | None) -> str:
    """:func:`decode_text` for a plain-text, Markdown or CSV document; one that looks binary
    (NUL bytes without a byte-order mark) is refused."""
    if not data.startswith(tuple(bom for bom, _ in _BOMS)) and b"\x00" in data[:8192]:
        raise ParseError("The file looks binary, not text; check its content type.")
    return decode_text(data, charset)


def _meta_charset(data: bytes) -> str | None:
    """The charset a page's ``<meta>`` names early on. UTF-16 named there means UTF-8, as in
    browsers: text that reads a <meta> in ASCII is not UTF-16."""
    found = _META_CHARSET_RE.search(data[:4096])
    if found is None:
        return None
    name = found.group(1).decode("ascii")
    try:
        if codecs.lookup(name).name.startswith("utf-16"):
            return "utf-8"
    except LookupError:
        return None
    return name
