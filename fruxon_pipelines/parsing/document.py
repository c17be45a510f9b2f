"""One document: bytes and a content type in, elements out, by the parser of its format."""

from __future__ import annotations

from collections.abc import Callable

from fruxon_pipelines.elements import Element
from fruxon_pipelines.parsing.detect import (
    CSV,
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    TEXT,
    TYPE_NAMES,
    ParseError,
    resolve_type,
    split_content_type,
)
from fruxon_pipelines.parsing.html import parse_html
from fruxon_pipelines.parsing.markdown import parse_markdown
from fruxon_pipelines.parsing.office import parse_docx, parse_pdf
from fruxon_pipelines.parsing.text import parse_csv, parse_text

_PARSERS: dict[str, Callable[[bytes, str | None, str | None], list[Element]]] = {
    PDF: parse_pdf,
    DOCX: parse_docx,
    HTML: parse_html,
    MARKDOWN: parse_markdown,
    TEXT: parse_text,
    CSV: parse_csv,
}


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
        kind = resolve_type(data, media_type, file_name, url)
        if not data or not data.strip():
            raise ParseError(f"The {TYPE_NAMES[kind]} document is empty.")
        elements = _PARSERS[kind](data, charset, url)
    except ParseError:
        raise
    except Exception as exc:  # the contract: a parser failure is a ParseError, whatever raised it
        name = TYPE_NAMES.get(kind or "", "document")
        detail = " ".join(str(exc).split())
        if len(detail) > 300:
            detail = detail[:300] + "…"  # library messages can quote whole inputs
        raise ParseError(f"Could not parse the {name}: {type(exc).__name__}: {detail}") from exc
    if not elements:
        raise ParseError(f"No text could be extracted from the {TYPE_NAMES[kind]} document.")
    return elements
