"""HTML: the page's main content through trafilatura (as markdown, split by markdown.py), and
plain lxml extraction of the visible text for pages trafilatura keeps nothing of.

trafilatura was chosen by measurement: see bench/bench_html_extractors.py.
"""

from __future__ import annotations

import re
from typing import Any

from fruxon_pipelines.elements import Element, ElementKind
from fruxon_pipelines.parsing.detect import ParseError, decode_text
from fruxon_pipelines.parsing.markdown import markdown_to_elements

# trafilatura's MIN_EXTRACTED_SIZE (settings.cfg), in characters of extracted text.
_TRAFILATURA_MIN_EXTRACTED_SIZE = 250


def parse_html(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    import trafilatura

    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # An image or an archive sent as text/html: its bytes would be indexed as "text".
        raise ParseError("The file looks binary, not HTML; check its content type.")
    # Decoded here, as the crawler decodes the page for its title and links: given bytes,
    # trafilatura guesses the charset by statistics and can overrule the page's <meta charset>.
    text = decode_text(data, charset, html=True)
    tree = trafilatura.load_html(text)
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
        elements = html_fallback_elements(text)
    return elements


# How trafilatura gives a page's main content: Markdown with its tables; no comments, images
# or links; no de-duplication (it would drop segments it has seen before).
_EXTRACT = {
    "output_format": "markdown",
    "include_tables": True,
    "include_comments": False,
    "include_images": False,
    "include_links": False,
    "deduplicate": False,
}


def _trafilatura_elements(tree: Any, url: str | None, *, precision: bool) -> list[Element]:
    import trafilatura

    markdown = trafilatura.extract(tree, url=url, favor_precision=precision, **_EXTRACT)
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

    if isinstance(html, bytes):
        html = decode_text(html, html=True)
    # As UTF-8 bytes, read as UTF-8 whatever the page declares: lxml refuses str input that
    # carries an encoding declaration, and would decode bytes by the page's <meta charset>.
    data = html.encode("utf-8")
    parser = lxml_html.HTMLParser(encoding="utf-8")
    for strict in (True, False):
        try:
            root = lxml_html.document_fromstring(data, parser=parser)
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
