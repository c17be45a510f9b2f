"""Bytes + content type → elements: the parsing stage in front of the chunker.

- HTML goes through trafilatura (main-content extraction, markdown output). Its markdown is split
  into elements here. This was chosen by measurement: see bench/bench_html_extractors.py.
- PDF, DOCX, Markdown, plain text and CSV go through ``unstructured``, patched so it never touches
  the network (feasibility §2.2).

Heavy libraries (unstructured, spaCy, trafilatura, lxml) are imported inside the functions that use
them. Importing this module costs only stdlib imports, so the Dagster code location and the API
can import it freely.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from fruxon_pipelines.elements import Element, ElementKind

__all__ = [
    "SUPPORTED_CONTENT_TYPES",
    "ParseError",
    "content_type_for",
    "html_fallback_elements",
    "markdown_to_elements",
    "parse_document",
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

_TYPE_NAMES = {
    PDF: "PDF",
    DOCX: "DOCX",
    HTML: "HTML",
    MARKDOWN: "Markdown",
    TEXT: "plain text",
    CSV: "CSV",
}
_SUPPORTED_LIST = ", ".join(_TYPE_NAMES.values())

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


# A DOCX is a ZIP of XML parts. A "zip bomb" declares parts hundreds of times larger than the
# file, and parsing XML costs time and memory in proportion to it (200 MB of document.xml held
# a worker for over ten minutes). zipfile never inflates past a member's declared size, so the
# declared sizes bound the work. 64 MiB of XML is far beyond any real document's text.
MAX_DOCX_XML_BYTES = 64 * 1024 * 1024
# Markdown nested deeper than this (list indentation, quote markers) is flattened to it: the
# markdown library's cost grows with depth squared (3,000 nested list levels took five minutes
# and 4 GB), and no real document nests past a handful of levels.
MAX_MARKDOWN_INDENT = 128
MAX_MARKDOWN_QUOTE_DEPTH = 8


def content_type_for(file_name: str | None) -> str | None:
    """The supported media type for a file name's extension (case-insensitive), or None."""
    if not file_name:
        return None
    return _EXTENSION_TYPES.get(PurePosixPath(file_name.strip()).suffix.lower())


def parse_document(
    data: bytes,
    content_type: str | None,
    *,
    file_name: str | None = None,
    url: str | None = None,
) -> list[Element]:
    """Parse one document into elements, in reading order.

    The format is taken from ``content_type``; where that is missing or generic (e.g.
    application/octet-stream) from the extension of ``file_name`` (or of ``url``'s path), and
    failing that from the bytes themselves. ``text/plain`` gives way to a more specific text
    extension (.md, .csv, .html) or a PDF/DOCX signature, because many servers send any file
    they do not know as text/plain.

    Raises ParseError for unsupported types, corrupt or truncated files, documents with no
    extractable text (an empty file, a scanned PDF without a text layer) and any failure inside
    the parser libraries. Nothing else escapes.
    """
    kind: str | None = None
    try:
        media_type, charset = split_content_type(content_type)
        kind = _resolve_type(data, media_type, file_name, url)
        if not data or not data.strip():
            raise ParseError(f"The {_TYPE_NAMES[kind]} document is empty.")
        elements = _PARSERS[kind](data, charset, url)
    except ParseError:
        raise
    except Exception as exc:  # the contract: a parser failure is a ParseError, whatever raised it
        name = _TYPE_NAMES.get(kind or "", "document")
        detail = " ".join(str(exc).split())
        if len(detail) > 300:
            detail = detail[:300] + "…"  # library messages can quote whole inputs
        raise ParseError(f"Could not parse the {name}: {type(exc).__name__}: {detail}") from exc
    if not elements:
        raise ParseError(f"No text could be extracted from the {_TYPE_NAMES[kind]} document.")
    return elements


# --------------------------------------------------------------------------------------------
# Type resolution


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


def _resolve_type(
    data: bytes, media_type: str | None, file_name: str | None, url: str | None
) -> str:
    by_name = content_type_for(file_name)
    if by_name is None and url:
        by_name = content_type_for(unquote(urlsplit(url).path))
    if media_type == TEXT:
        # text/plain is what many servers and object stores send for any file they do not know:
        # a more specific extension or a binary signature wins over it.
        if by_name is not None:
            return by_name
        sniffed = _sniff(data)
        return sniffed if sniffed in (PDF, DOCX) else TEXT
    if media_type in SUPPORTED_CONTENT_TYPES:
        return media_type
    if media_type is not None and media_type not in GENERIC_CONTENT_TYPES:
        raise ParseError(
            f"Unsupported content type {media_type!r}. Supported formats: {_SUPPORTED_LIST}."
        )
    if by_name is not None:
        return by_name
    sniffed = _sniff(data)
    if sniffed is None:
        what = f"file {file_name!r}" if file_name else "document"
        raise ParseError(
            f"Cannot tell the format of the {what}: no usable content type, no known file "
            f"extension, and the content is not recognisable. Supported formats: {_SUPPORTED_LIST}."
        )
    return sniffed


_HTML_START_RE = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)


def _sniff(data: bytes) -> str | None:
    head = data[:2048]
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX if _is_docx_zip(data) else None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TEXT  # UTF-16 with a byte-order mark; its NUL bytes would look binary below
    text_head = head.removeprefix(b"\xef\xbb\xbf")
    if _HTML_START_RE.match(text_head) or re.search(rb"<(?:head|body)\b", text_head[:1024], re.I):
        return HTML
    if b"\x00" not in head:
        return TEXT
    return None


def _is_docx_zip(data: bytes) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _decode_text(data: bytes, charset: str | None) -> str:
    """Text of a text-format document: BOM, then the declared charset, then UTF-8, then cp1252."""
    for bom, codec in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    if b"\x00" in data[:8192]:
        raise ParseError("The file looks binary, not text; check its content type.")
    if charset:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declared charset is common; fall through to detection
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy Windows files are the usual non-UTF-8 case; "replace" keeps the rest readable.
        return data.decode("cp1252", errors="replace")


# --------------------------------------------------------------------------------------------
# unstructured: offline set-up, once per process

_unstructured_lock = threading.Lock()
_unstructured_ready = False


def _prepare_unstructured() -> None:
    """Make unstructured safe to call offline; idempotent and thread-safe.

    - Telemetry and the commercial-offering notice are switched off through the environment,
      before the first import, because unstructured reads them at import and at every call.
    - Text classification would otherwise download spaCy's en_core_web_sm from GitHub on the
      first partition call, and fail offline (feasibility §2.2). A blank English pipeline with a
      sentencizer replaces it: same text, only fewer blocks classed as NarrativeText, which we do
      not distinguish from other text anyway. This patches a private function, so check it on
      every unstructured upgrade (the test that asserts no network catches a regression).
    """
    global _unstructured_ready
    if _unstructured_ready:
        return
    with _unstructured_lock:
        if _unstructured_ready:
            return
        os.environ["DO_NOT_TRACK"] = "1"
        os.environ["SCARF_NO_ANALYTICS"] = "1"
        os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"

        import spacy
        import unstructured.nlp.tokenize as tokenize

        if not (hasattr(tokenize, "_load_spacy_model") and hasattr(tokenize, "_get_nlp")):
            # Without the hook we cannot stop the model download; refuse rather than go online.
            raise ParseError(
                "This unstructured version loads spaCy differently; the offline patch in "
                "fruxon_pipelines/parsing.py needs updating."
            )

        def _blank_english() -> Any:
            nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            return nlp

        tokenize._load_spacy_model = _blank_english  # _get_nlp() looks it up at call time
        tokenize._get_nlp.cache_clear()
        _unstructured_ready = True


_DROPPED_CATEGORIES = frozenset({"Header", "Footer", "PageNumber", "PageBreak"})
_CATEGORY_KINDS: dict[str, ElementKind] = {
    "Title": "title",
    "ListItem": "list_item",
    "Table": "table",
    "CodeSnippet": "code",
}
# Where titles are guessed from the text alone (PDF, plain text), unstructured calls every
# single sentence or fragment of up to 12 words a Title once spaCy has no POS tagger (the blank
# pipeline above). A guessed title that ends like a sentence or a lead-in (". : ; , !"), or starts
# in lower case or with a bracket or symbol (a wrapped fragment, a line of code), is text: real
# headings rarely look like that, and a false heading would misname every chunk below it.
_NOT_A_HEADING_RE = re.compile(r"[.:;,!]$|^[^\w\"'“‘]|^[a-z]")


def _to_elements(items: Iterable[Any], *, guessed_titles: bool, paged: bool) -> list[Element]:
    out: list[Element] = []
    for item in items:
        category = getattr(item, "category", "") or ""
        if category in _DROPPED_CATEGORIES:
            continue
        kind: ElementKind = _CATEGORY_KINDS.get(category, "text")
        metadata = item.metadata
        raw = item.text or ""
        if kind == "table":
            text = _table_text(raw, getattr(metadata, "text_as_html", None))
        elif kind == "code":
            text = raw.strip("\n").rstrip()
        else:
            text = " ".join(raw.split())
        if not text.strip():
            continue
        level: int | None = None
        if kind == "title":
            if guessed_titles and _NOT_A_HEADING_RE.search(text):
                kind = "text"
            else:
                depth = getattr(metadata, "category_depth", None)
                level = depth + 1 if isinstance(depth, int) and depth >= 0 else 1
        page = getattr(metadata, "page_number", None) if paged else None
        out.append(Element(text=text, kind=kind, heading_level=level, page_number=page))
    return out


def _table_text(text: str, text_as_html: str | None) -> str:
    """One line per row, cells joined by " | ": unstructured's own table text is one long run of
    cell values with the row boundaries lost, which chunks and reads badly."""
    if text_as_html:
        try:
            from lxml import html as lxml_html

            table = lxml_html.fragment_fromstring(text_as_html, create_parent="div")
            rows = []
            for tr in table.iter("tr"):
                cells = [
                    " ".join(cell.text_content().split()) for cell in tr if cell.tag in ("td", "th")
                ]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                return "\n".join(rows)
        except Exception:
            pass  # fall back to the flat text; a table is never worth failing the document for
    return " ".join(text.split())


def _partition(module: str, function: str) -> Callable[..., list[Any]]:
    _prepare_unstructured()
    import importlib

    return getattr(importlib.import_module(f"unstructured.partition.{module}"), function)


def _parse_pdf(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    if b"%PDF-" not in data[:1024]:
        raise ParseError("The file is not a PDF (it does not start with a PDF header).")
    partition_pdf = _partition("pdf", "partition_pdf")
    # strategy="fast": the text layer only, no OCR or layout model. languages is only used for
    # OCR and metadata here; naming it silences a warning logged on every call.
    items = partition_pdf(file=io.BytesIO(data), strategy="fast", languages=["eng"])
    elements = _to_elements(items, guessed_titles=True, paged=True)
    if not elements:
        # partition_pdf reports unreadable PDFs by returning nothing (feasibility §2.4): say why.
        raise ParseError(_why_pdf_is_empty(data))
    return elements


def _why_pdf_is_empty(data: bytes) -> str:
    if b"%%EOF" not in data[-2048:]:
        return "The PDF is truncated or corrupt (its end-of-file marker is missing)."
    try:
        import pikepdf

        with pikepdf.open(io.BytesIO(data)) as pdf:
            pages = len(pdf.pages)
    except Exception as exc:
        if type(exc).__name__ == "PasswordError":
            return "The PDF is password-protected; remove the password and upload it again."
        return f"The PDF is corrupt and cannot be read ({exc})."
    if pages == 0:
        return "The PDF has no pages."
    return (
        f"The PDF has {pages} page(s) but no extractable text; it is probably scanned images "
        "(OCR is not supported)."
    )


def _parse_docx(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    if not data.startswith(b"PK"):
        raise ParseError("The file is not a valid DOCX document (it is not a ZIP archive).")
    if not _is_docx_zip(data):
        raise ParseError(
            "The file is not a valid DOCX document (a damaged ZIP archive, or one without "
            "word/document.xml)."
        )
    _refuse_zip_bomb(data)
    partition_docx = _partition("docx", "partition_docx")
    return _to_elements(partition_docx(file=io.BytesIO(data)), guessed_titles=False, paged=False)


def _refuse_zip_bomb(data: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        declared = sum(
            info.file_size
            for info in archive.infolist()
            if info.filename.endswith((".xml", ".rels"))
        )
    if declared > MAX_DOCX_XML_BYTES:
        raise ParseError(
            f"The DOCX document expands to {declared // 2**20} MB of XML from "
            f"{max(1, len(data) // 2**10)} KB (the limit is {MAX_DOCX_XML_BYTES // 2**20} MB): "
            "it is refused as a decompression bomb."
        )


_MARKDOWN_NESTING = re.compile(r"^([ \t]*)((?:>[ \t]?)*)", re.M)


def flatten_markdown_nesting(text: str) -> str:
    """Indentation past MAX_MARKDOWN_INDENT columns and quote markers past
    MAX_MARKDOWN_QUOTE_DEPTH cut to those limits; everything shallower is left as it is."""

    def flatten(match: re.Match[str]) -> str:
        indent, quotes = match.group(1), match.group(2)
        if len(indent) > MAX_MARKDOWN_INDENT:
            indent = indent.expandtabs(4)[:MAX_MARKDOWN_INDENT]
        if quotes.count(">") > MAX_MARKDOWN_QUOTE_DEPTH:
            quotes = "> " * MAX_MARKDOWN_QUOTE_DEPTH
        return indent + quotes

    return _MARKDOWN_NESTING.sub(flatten, text)


def _parse_markdown(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_md = _partition("md", "partition_md")
    items = partition_md(text=flatten_markdown_nesting(_decode_text(data, charset)))
    return _to_elements(items, guessed_titles=False, paged=False)


def _parse_text(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_text = _partition("text", "partition_text")
    items = partition_text(text=_decode_text(data, charset))
    return _to_elements(items, guessed_titles=True, paged=False)


def _parse_csv(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_csv = _partition("csv", "partition_csv")
    # Decode here (same rules as the other text formats) and hand unstructured clean UTF-8.
    utf8 = _decode_text(data, charset).encode("utf-8")
    items = partition_csv(file=io.BytesIO(utf8), encoding="utf-8", include_header=True)
    return _to_elements(items, guessed_titles=False, paged=False)


# --------------------------------------------------------------------------------------------
# HTML: trafilatura main content → markdown → elements


# trafilatura's MIN_EXTRACTED_SIZE (settings.cfg), in characters of extracted text.
_TRAFILATURA_MIN_EXTRACTED_SIZE = 250


def _parse_html(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    import trafilatura

    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # An image or an archive sent as text/html: its bytes would be indexed as "text".
        raise ParseError("The file looks binary, not HTML; check its content type.")
    # With no declared charset, pass the bytes: trafilatura honours <meta charset> and sniffs.
    source: bytes | str = data
    if charset:
        try:
            source = data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            source = data
    tree = trafilatura.load_html(source)
    elements: list[Element] = []
    if tree is not None:
        _unpin_section_ids(tree)
        elements = _trafilatura_elements(tree, url, precision=False)
        if sum(len(e.text) for e in elements) < _TRAFILATURA_MIN_EXTRACTED_SIZE:
            # Below its minimum size trafilatura "rescues" the page with a dump of the whole
            # body: navigation and footer included, headings flattened. Precision mode skips
            # that rescue and keeps only what its content rules accept (extract leaves the tree
            # untouched, so it can run again).
            elements = _trafilatura_elements(tree, url, precision=True)
    if not elements:
        # Nothing accepted at all (a stub page, a notice): still worth indexing, so take the
        # visible text without scripts, navigation, page header and footer, cookie banners.
        elements = html_fallback_elements(source)
    return elements


def _trafilatura_elements(tree: Any, url: str | None, *, precision: bool) -> list[Element]:
    import trafilatura

    markdown = trafilatura.extract(
        tree,
        url=url,
        output_format="markdown",
        include_tables=True,
        include_comments=False,
        include_images=False,
        include_links=False,
        deduplicate=False,
        favor_precision=precision,
    )
    return markdown_to_elements(markdown or "")


def _unpin_section_ids(tree: Any) -> None:
    """Drop the id of every section that starts with its own heading.

    trafilatura discards any block whose id contains "nav", "menu", "related", "footer", "share"
    and the like. Documentation generators give each section its heading's slug as id, so a
    section titled "Unrelated exceptions" or "Navigation menu" vanished whole (bench: the Python
    tutorial lost §8.9 this way). A heading slug says nothing about boilerplate; without it,
    trafilatura still judges the block by its class, its tag and its link density.
    """
    for el in tree.iterfind(".//*[@id]"):
        if el.tag in ("section", "div", "article") and any(
            child.tag in _HEADING_TAGS for child in el[:3]
        ):
            del el.attrib["id"]


_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_LIST_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_RULE_RE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE_RE = re.compile(r"^ {0,3}>[ \t]?(.*)$")
_TABLE_SEPARATOR_RE = re.compile(r"^\s*:?-+:?\s*$")
_INLINE_FENCE_RE = re.compile(r"`{3,}")
_INLINE_HTML_RE = re.compile(r"</?(?:sup|sub|u)>")
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# Sphinx and many CMSs append a permalink sign to headings; trafilatura keeps it as text. Also an
# ATX closing sequence (" ##"), which needs the space: the "#" of "C#" stays.
_HEADING_TRAILER_RE = re.compile(r"(?:\s+#+)?[\s¶§🔗]*$")


def markdown_to_elements(markdown: str) -> list[Element]:
    """Split markdown (as trafilatura writes it) into elements, with inline markup removed.

    Line-based and deliberately small: ATX headings, fenced code, pipe tables, list items,
    block quotes and paragraphs. Quirk handled: trafilatura renders a multi-line ``<code>``
    inside a paragraph as a fence that opens mid-line; that stays part of the paragraph.
    """
    out: list[Element] = []
    kind: ElementKind | None = None  # the open text block: "text", "list_item" or "table"
    lines: list[str] = []
    fence: str | None = None  # the open code fence
    code: list[str] = []
    inline_fence_open = False

    def flush() -> None:
        nonlocal kind, lines
        if kind == "table":
            text = _markdown_table_text(lines)
        elif kind is not None:
            text = _markdown_inline_to_text(" ".join(lines))
        else:
            text = ""
        if text:
            out.append(Element(text=text, kind=kind or "text"))
        kind, lines = None, []

    def add_prose(line: str) -> None:
        nonlocal inline_fence_open
        lines.append(line.strip())
        if len(_INLINE_FENCE_RE.findall(line)) % 2:
            inline_fence_open = not inline_fence_open

    for line in markdown.splitlines():
        if fence is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                text = "\n".join(code).strip("\n")
                if text.strip():
                    out.append(Element(text=text, kind="code"))
                fence, code = None, []
            else:
                code.append(line)
            continue
        if inline_fence_open:
            add_prose(line)
            continue
        if not line.strip():
            flush()
            continue
        if (m := _FENCE_RE.match(line)) and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            flush()
            fence = m.group(1)
            continue
        if m := _HEADING_RE.match(line):
            flush()
            title = _markdown_inline_to_text(_HEADING_TRAILER_RE.sub("", m.group(2) or ""))
            if title:
                out.append(Element(text=title, kind="title", heading_level=len(m.group(1))))
            continue
        if line.lstrip().startswith("|"):
            if kind != "table":
                flush()
                kind = "table"
            lines.append(line)
            continue
        if kind == "table":
            flush()
        if _RULE_RE.match(line):
            flush()
            continue
        if m := _LIST_RE.match(line):
            flush()
            kind = "list_item"
            add_prose(m.group(1))
            continue
        if m := _QUOTE_RE.match(line):
            line = m.group(1)
        if kind is None:
            kind = "text"
        add_prose(line)

    if fence is not None and "\n".join(code).strip():
        out.append(Element(text="\n".join(code).strip("\n"), kind="code"))
    flush()
    return out


def _markdown_inline_to_text(text: str) -> str:
    """Plain text of one markdown block: escapes resolved, emphasis and code-span markers dropped.

    trafilatura escapes every literal ``* _ ` ~ [ ] <`` in prose, so an unescaped one is markup.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in _ASCII_PUNCTUATION:
            out.append(text[i + 1])
            i += 2
        elif c == "`":
            j = i
            while j < n and text[j] == "`":
                j += 1
            closing = re.compile(rf"(?<!`)`{{{j - i}}}(?!`)").search(text, j)
            if closing:
                span = text[j : closing.start()]
                if len(span) > 2 and span[0] == " " and span[-1] == " ":
                    span = span[1:-1]
                out.append(span)
                i = closing.end()
            else:
                out.append(text[i:j])
                i = j
        elif c == "*" or (c == "~" and text.startswith("~~", i)):
            while i < n and text[i] == c:
                i += 1
        elif c == "<" and (m := _INLINE_HTML_RE.match(text, i)):
            i = m.end()
        else:
            out.append(c)
            i += 1
    return " ".join("".join(out).split())


def _markdown_table_text(lines: list[str]) -> str:
    rows: list[str] = []
    for line in lines:
        cells = re.split(r"(?<!\\)\|", line.strip())
        if cells and not cells[0].strip():
            cells = cells[1:]
        if cells and not cells[-1].strip():
            cells = cells[:-1]
        if cells and all(_TABLE_SEPARATOR_RE.match(cell) for cell in cells):
            continue
        values = [_markdown_inline_to_text(cell) for cell in cells]
        if any(values):
            rows.append(" | ".join(values))
    return "\n".join(rows)


# --- plain lxml extraction, for pages trafilatura returns nothing for

# Never text a reader sees. "noscript" is here too: "please enable JavaScript" is not content.
_INVISIBLE_TAGS = frozenset({
    "script", "style", "noscript", "template", "iframe", "svg", "canvas", "object", "embed",
    "head", "title", "meta",
})  # fmt: skip
# Page furniture: dropped in the strict pass only.
_FURNITURE_TAGS = frozenset(
    {"nav", "aside", "form", "button", "select", "input", "textarea", "dialog"}
)
_DROP_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "search", "complementary", "dialog", "alert"}
)
# Only unambiguous page-furniture names: "header" or "title" in a class often marks the article's
# own heading block, which must stay.
_BOILERPLATE_RE = re.compile(
    r"cookie|consent|gdpr|navbar|breadcrumb|sidebar|skip-?link|newsletter|social|share-|popup|"
    r"modal|site-(?:header|footer)|page-(?:header|footer)",
    re.I,
)
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_KINDS: dict[str, ElementKind] = {
    "p": "text", "li": "list_item", "dt": "text", "dd": "text", "blockquote": "text",
    "figcaption": "text", "caption": "text", "address": "text", "summary": "text",
    "ul": "text", "ol": "text", "dl": "text",
}  # fmt: skip
_BLOCK_CONTAINERS = frozenset({
    "html", "body", "main", "article", "section", "div", "header", "footer", "figure", "details",
    "fieldset", "center", "hgroup", "table", "thead", "tbody", "tfoot", "tr", "td", "th",
})  # fmt: skip


def html_fallback_elements(html: bytes | str) -> list[Element]:
    """Visible text of a page as elements, with lxml only.

    Strict first: without navigation, page header and footer, forms and cookie banners, scoped
    to <main>, [role=main] or <article> where the page has one. If that leaves nothing (a
    "coming soon" page whose only text sits in its <header>), all visible text.
    """
    from lxml import html as lxml_html

    if isinstance(html, str):
        html = html.encode("utf-8")  # lxml refuses str input that carries an encoding declaration
    for strict in (True, False):
        try:
            root = lxml_html.document_fromstring(html)
        except Exception:
            return []  # markup with no elements at all has no text to offer
        for el in [el for el in root.iter() if _is_dropped(el, strict=strict)]:
            if el.getparent() is not None:
                el.drop_tree()
        body = root.find("body")
        scope = body if body is not None else root
        for xpath in ("//main", "//*[@role='main']", "//article") if strict else ():
            if found := root.xpath(xpath):
                scope = found[0]
                break
        out: list[Element] = []
        _walk_html(scope, "text", [], out)
        if out:
            return out
    return []


def _is_dropped(el: Any, *, strict: bool) -> bool:
    if not isinstance(el.tag, str) or el.tag in ("html", "body"):
        return False
    if el.tag in _INVISIBLE_TAGS or el.get("aria-hidden") == "true" or el.get("hidden") is not None:
        return True
    if not strict:
        return False
    if el.tag in ("header", "footer"):
        # The page's header and footer are furniture; those inside the article hold its title.
        return not any(a.tag in ("main", "article") for a in el.iterancestors())
    return (
        el.tag in _FURNITURE_TAGS
        or el.get("role") in _DROP_ROLES
        or bool(_BOILERPLATE_RE.search(f"{el.get('id', '')} {el.get('class', '')}"))
    )


def _walk_html(
    el: Any, kind: ElementKind, buf: list[str], out: list[Element], *, block: bool = True
) -> None:
    """Depth-first; a text run becomes an element whenever a block starts or ends."""

    def flush() -> None:
        text = " ".join(" ".join(buf).split())
        buf.clear()
        if text:
            out.append(Element(text=text, kind=kind))

    if el.text:
        buf.append(el.text)
    for child in el:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in _HEADING_TAGS:
            flush()
            title = " ".join(child.text_content().split())
            if title:
                out.append(Element(text=title, kind="title", heading_level=_HEADING_TAGS[tag]))
        elif tag == "pre":
            flush()
            code = child.text_content().strip("\n").rstrip()
            if code.strip():
                out.append(Element(text=code, kind="code"))
        elif tag == "table" and child.find(".//table") is None:
            flush()
            rows = []
            for tr in child.iter("tr"):
                cells = [" ".join(c.text_content().split()) for c in tr if c.tag in ("td", "th")]
                if any(cells):
                    rows.append(" | ".join(cells))
            if rows:
                out.append(Element(text="\n".join(rows), kind="table"))
        elif tag in _BLOCK_KINDS or tag in _BLOCK_CONTAINERS:
            flush()
            _walk_html(child, _BLOCK_KINDS.get(tag, kind), [], out)
        elif tag == "br":
            buf.append(" ")
        elif tag:
            # Inline element: its text continues the current run.
            _walk_html(child, kind, buf, out, block=False)
        if child.tail:
            buf.append(child.tail)
    if block:
        flush()


_PARSERS: dict[str, Callable[[bytes, str | None, str | None], list[Element]]] = {
    PDF: _parse_pdf,
    DOCX: _parse_docx,
    HTML: _parse_html,
    MARKDOWN: _parse_markdown,
    TEXT: _parse_text,
    CSV: _parse_csv,
}
