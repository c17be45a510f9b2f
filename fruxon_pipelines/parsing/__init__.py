"""Bytes + content type → elements: the parsing stage in front of the chunker.

- HTML goes through trafilatura (main-content extraction, markdown output), its markdown split
  into elements here (html.py, markdown.py). This was chosen by measurement: see
  bench/bench_html_extractors.py.
- PDF, DOCX, Markdown, plain text and CSV go through ``unstructured``, patched so it never touches
  the network (partitioning.py, office.py, text.py, markdown.py).
- detect.py tells the format and decodes text, for the web crawler too.
- workers.py parses and chunks many documents in a pool of worker processes; it is not imported
  here, since it brings the chunker and the embedders' tokenizers.

Heavy libraries (unstructured, spaCy, trafilatura, lxml) are imported inside the functions that use
them. Importing this package costs only stdlib imports, so the Dagster code location and the API
can import it freely.
"""

from __future__ import annotations

from fruxon_pipelines.parsing.detect import (
    GENERIC_CONTENT_TYPES,
    SUPPORTED_CONTENT_TYPES,
    ParseError,
    content_type_for,
    split_content_type,
)
from fruxon_pipelines.parsing.document import parse_document
from fruxon_pipelines.parsing.html import html_fallback_elements
from fruxon_pipelines.parsing.markdown import markdown_to_elements

__all__ = [
    "GENERIC_CONTENT_TYPES",
    "SUPPORTED_CONTENT_TYPES",
    "ParseError",
    "content_type_for",
    "html_fallback_elements",
    "markdown_to_elements",
    "parse_document",
    "split_content_type",
]
