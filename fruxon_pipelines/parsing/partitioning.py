"""unstructured, offline: its set-up once per process, and its elements turned into ours.

unstructured parses PDF, DOCX, Markdown, plain text and CSV here (HTML goes through trafilatura,
see html.py). It is imported inside the functions, never at module import.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from fruxon_pipelines.elements import Element, ElementKind
from fruxon_pipelines.parsing.detect import ParseError

_unstructured_lock = threading.Lock()
_unstructured_ready = False


def prepare_unstructured() -> None:
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
                "fruxon_pipelines/parsing/partitioning.py needs updating."
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


def to_elements(items: Iterable[Any], *, guessed_titles: bool, paged: bool) -> list[Element]:
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


def partition_function(module: str, function: str) -> Callable[..., list[Any]]:
    prepare_unstructured()
    import importlib

    return getattr(importlib.import_module(f"unstructured.partition.{module}"), function)
