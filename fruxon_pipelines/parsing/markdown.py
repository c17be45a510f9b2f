"""Markdown: Markdown documents (through unstructured, their nesting bounded first), and the
markdown trafilatura writes for an HTML page's main content, split into elements here."""

from __future__ import annotations

import re

from fruxon_pipelines.elements import Element, ElementKind
from fruxon_pipelines.parsing.detect import decode_text_document
from fruxon_pipelines.parsing.partitioning import partition_function, to_elements

# Markdown nested deeper than this (list indentation, quote markers) is flattened to it: the
# markdown library's cost grows with depth squared (3,000 nested list levels took five minutes
# and 4 GB), and no real document nests past a handful of levels.
MAX_MARKDOWN_INDENT = 128
MAX_MARKDOWN_QUOTE_DEPTH = 8

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


def parse_markdown(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    partition_md = partition_function("md", "partition_md")
    items = partition_md(text=flatten_markdown_nesting(decode_text_document(data, charset)))
    return to_elements(items, guessed_titles=False, paged=False)


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
