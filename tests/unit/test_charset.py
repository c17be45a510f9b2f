"""One page, one decoding: the crawler (which reads a page's title and links) and the parser
(which extracts the text that is indexed) decode the same bytes the same way, through
fruxon_pipelines.parsing.detect.

The page is served by a real HTTP server on 127.0.0.1 (tests/support/sitegen.py).
"""

from __future__ import annotations

import pytest
from sitegen import Site
from webcrawl import crawl, source

from fruxon_pipelines.parsing import parse_document
from fruxon_pipelines.parsing.detect import decode_text, looks_like_html

# Brand marks next to words, as product pages have them: enough for the statistical charset
# guess trafilatura makes of bytes to overrule the page's <meta charset>. Given the bytes, the
# parser indexed the heading as "M³ller« CafķÖ ¢ ōquotedö cafķ" (cp775) while the crawler read
# the title right.
HEADING = "Müller® Café™ – “quoted” café"
PARAGRAPH = "The café – “quoted” in every guide – roasts its own beans on Sundays."


def windows_1252_page() -> bytes:
    return (
        '<!DOCTYPE html><html><head><meta charset="windows-1252">'
        f"<title>{HEADING}</title></head>"
        f"<body><main><h1>{HEADING}</h1><p>{PARAGRAPH}</p></main></body></html>"
    ).encode("cp1252")


def test_crawler_and_parser_decode_a_meta_charset_page_alike(site: Site) -> None:
    data = windows_1252_page()
    assert b"\x96" in data and b"\x93" in data and b"\xe9" in data  # –, “ and é in cp1252
    site.put("/", data, "text/html")  # the header names no charset: only the page does

    item = crawl(source([site.url()]))[site.url()]
    assert item.status == "fetched"
    assert item.content_type == "text/html"
    assert item.data == data

    elements = parse_document(item.data, item.content_type, url=item.source_url)

    assert item.title == HEADING
    assert [(e.kind, e.text) for e in elements] == [("title", HEADING), ("text", PARAGRAPH)]


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("café".encode("utf-8-sig"), "iso-8859-1", "café"),  # a byte-order mark decides
        ("café".encode("utf-16"), None, "café"),
        ("café".encode("latin-1"), "iso-8859-1", "café"),  # then the declared charset
        ("café".encode("cp1252"), "utf-8", "café"),  # a wrong one is passed over
        ("café".encode("cp1252"), "no-such-charset", "café"),  # so is an unknown one
        ("café".encode(), None, "café"),  # then UTF-8
        ("“café”".encode("cp1252"), None, "“café”"),  # then windows-1252
    ],
)
def test_decoding_without_a_meta_charset(data: bytes, charset: str | None, text: str) -> None:
    assert decode_text(data, charset) == text
    assert decode_text(data, charset, html=True) == text


def test_an_html_page_is_read_by_its_meta_charset_after_the_declared_one() -> None:
    page = '<html><head><meta charset="koi8-r"></head><body>Привет</body></html>'
    data = page.encode("koi8-r")

    assert decode_text(data, None, html=True) == page
    assert decode_text(data, "utf-8", html=True) == page  # the declared one does not decode
    assert decode_text(data, "cp1251", html=True) == data.decode("cp1251") != page  # it does
    assert decode_text(data, None) != page  # not HTML: no <meta> to read


def test_a_meta_charset_naming_utf_16_means_utf_8() -> None:
    # As in browsers: text whose <meta> reads in ASCII is not UTF-16.
    page = '<html><head><meta charset="utf-16"></head><body>“café”</body></html>'

    assert decode_text(page.encode("utf-8"), None, html=True) == page


@pytest.mark.parametrize(
    ("data", "html"),
    [
        (b"<!DOCTYPE html><p>x</p>", True),
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- c --><html lang="en">', True),
        (b"some text first <body>", True),
        (b"<?xml version='1.0'?><urlset/>", False),
        (b"plain text", False),
    ],
)
def test_html_sniffing(data: bytes, html: bool) -> None:
    assert looks_like_html(data) is html
