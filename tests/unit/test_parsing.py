"""parse_document: every supported type from its fixture, main-content HTML, clear errors, and no
network while parsing. Fixtures come from tests/fixtures/make_fixtures.py."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from fruxon_pipelines.elements import Element
from fruxon_pipelines.parsing import (
    SUPPORTED_CONTENT_TYPES,
    ParseError,
    content_type_for,
    document,
    html_fallback_elements,
    markdown_to_elements,
    parse_document,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _make_fixtures():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_fixture(name: str) -> list[Element]:
    data = (FIXTURES / name).read_bytes()
    return parse_document(data, content_type_for(name), file_name=name)


def texts(elements: list[Element], kind: str | None = None) -> list[str]:
    return [e.text for e in elements if kind is None or e.kind == kind]


def titles(elements: list[Element]) -> list[tuple[int | None, str]]:
    return [(e.heading_level, e.text) for e in elements if e.kind == "title"]


# ##### content types


def test_supported_types_and_extensions():
    assert set(SUPPORTED_CONTENT_TYPES) == {
        "application/pdf",
        DOCX,
        "text/html",
        "text/markdown",
        "text/plain",
        "text/csv",
    }
    assert content_type_for("report.PDF") == "application/pdf"
    assert content_type_for("docs/guide.md") == "text/markdown"
    assert content_type_for("page.htm") == "text/html"
    assert content_type_for("table.csv") == "text/csv"
    assert content_type_for("notes.txt") == "text/plain"
    assert content_type_for("memo.docx") == DOCX
    assert content_type_for("image.png") is None
    assert content_type_for("README") is None
    assert content_type_for(None) is None


# ##### one test per format, from the committed fixtures


def test_pdf_has_headings_and_page_numbers_without_running_header_and_footer():
    elements = parse_fixture("sample.pdf")

    assert titles(elements) == [(1, "Quarterly Operations Report"), (1, "Outlook")]
    assert {e.page_number for e in elements} == {1, 2}
    by_page = {p: " ".join(e.text for e in elements if e.page_number == p) for p in (1, 2)}
    assert "twelve thousand parcels" in by_page[1]
    assert "staffing will grow by four people" in by_page[2]
    # Body sentences stay text even though unstructured guesses short sentences are titles.
    assert any(t.startswith("The warehouse team shipped") for t in texts(elements, "text"))
    joined = " ".join(texts(elements))
    assert "Northwind Logistics internal report" not in joined
    assert "Page 1 of 2" not in joined


def test_docx_headings_paragraphs_list_and_table():
    elements = parse_fixture("sample.docx")

    assert titles(elements) == [(1, "Onboarding Guide"), (2, "Accounts"), (2, "Shift Schedule")]
    assert texts(elements, "list_item") == [
        "Create your ticket system login",
        "Join the support chat channel",
        "Read the escalation policy",
    ]
    [table] = texts(elements, "table")
    assert table.splitlines() == [
        "Day | Start | End",
        "Monday | 08:00 | 16:00",
        "Tuesday | 10:00 | 18:00",
    ]
    assert any("Welcome to the support team" in t for t in texts(elements, "text"))
    assert all(e.page_number is None for e in elements)


def test_html_keeps_the_article_and_drops_page_furniture():
    elements = parse_fixture("sample.html")

    assert titles(elements) == [
        (1, "Composting at Home"),
        (2, "What to Add"),
        (2, "Turning the Heap"),
    ]
    assert any("kitchen scraps and garden waste" in t for t in texts(elements, "text"))
    assert texts(elements, "list_item") == [
        "Fruit and vegetable peelings",
        "Coffee grounds and paper tea bags",
        "Shredded cardboard and egg boxes",
    ]
    assert texts(elements, "table") == ["Season | Weeks to compost\nSummer | 8\nWinter | 20"]
    joined = " ".join(texts(elements))
    for furniture in (
        "NAVIGATION_ARCHIVE_LINK",
        "About the authors",
        "COOKIE_BANNER_MARKER",
        "FOOTER_COPYRIGHT_MARKER",
        "Privacy policy",
        "INLINE_SCRIPT_MARKER",
        "TRACKING_SCRIPT_MARKER",
        "font-family",
    ):
        assert furniture not in joined


def test_markdown_headings_list_and_code():
    elements = parse_fixture("sample.md")

    assert titles(elements) == [
        (1, "Release Checklist"),
        (2, "Preparation"),
        (2, "Building"),
        (3, "Publishing"),
    ]
    assert len(texts(elements, "list_item")) == 3
    assert texts(elements, "code") == ["python -m build\npip install dist/*.whl"]


def test_plain_text():
    elements = parse_fixture("sample.txt")

    assert titles(elements) == [(1, "Meeting notes for the library volunteers")]
    joined = " ".join(texts(elements))
    assert "reading room will close early on Friday" in joined
    assert "barcode scanners arrive next week" in joined


def test_csv_is_one_table_with_header_and_rows():
    elements = parse_fixture("sample.csv")

    assert [e.kind for e in elements] == ["table"]
    assert elements[0].text.splitlines() == [
        "city | country | population",
        "Lisbon | Portugal | 545923",
        "Tallinn | Estonia | 437619",
        "Ljubljana | Slovenia | 285604",
    ]


# ##### dispatch when the content type is missing or vague


@pytest.mark.parametrize(
    ("name", "expected_kind"),
    [
        ("sample.pdf", "title"),
        ("sample.docx", "title"),
        ("sample.html", "title"),
        ("sample.csv", "table"),
    ],
)
def test_generic_content_type_falls_back_to_the_file_name(name, expected_kind):
    data = (FIXTURES / name).read_bytes()

    elements = parse_document(data, "application/octet-stream", file_name=name)

    assert elements[0].kind == expected_kind


@pytest.mark.parametrize("name", ["sample.pdf", "sample.docx", "sample.html", "sample.txt"])
def test_no_content_type_and_no_name_sniffs_the_bytes(name):
    data = (FIXTURES / name).read_bytes()

    assert parse_document(data, None) == parse_fixture(name)


def test_url_path_extension_is_used_when_there_is_no_file_name():
    data = (FIXTURES / "sample.md").read_bytes()

    elements = parse_document(data, None, url="https://example.org/docs/sample.md?raw=1")

    assert elements == parse_fixture("sample.md")


def test_text_plain_gives_way_to_a_markdown_file_name():
    # Raw file hosts serve .md as text/plain; the headings should still be headings.
    data = (FIXTURES / "sample.md").read_bytes()

    elements = parse_document(data, "text/plain; charset=utf-8", file_name="sample.md")

    assert (1, "Release Checklist") in titles(elements)


def test_pdf_served_as_text_plain_is_still_a_pdf():
    data = (FIXTURES / "sample.pdf").read_bytes()

    assert parse_document(data, "text/plain") == parse_fixture("sample.pdf")


def test_utf16_text_with_bom_is_sniffed_and_decoded():
    data = "Notes about the garden shed and its new roof.".encode("utf-16")

    [element] = parse_document(data, None)

    assert element.text == "Notes about the garden shed and its new roof."


def test_declared_charset_is_honoured():
    data = "Caf\xe9 cr\xe8me costs \xa33 at the corner shop near the station.".encode("latin-1")

    [element] = parse_document(data, "text/plain; charset=ISO-8859-1")

    assert element.text == "Café crème costs £3 at the corner shop near the station."


def test_content_type_parameters_and_case_are_ignored():
    data = (FIXTURES / "sample.html").read_bytes()

    assert parse_document(data, "Text/HTML; Charset=UTF-8") == parse_fixture("sample.html")


# ##### errors


def test_truncated_pdf_is_a_clear_parse_error():
    with pytest.raises(ParseError, match="PDF is truncated or corrupt"):
        parse_fixture("corrupt.pdf")


def test_pdf_without_text_layer_says_so():
    # A valid one-page PDF with nothing drawn on it: a scanned page, as the text layer sees it.
    with pytest.raises(ParseError, match="1 page\\(s\\) but no extractable text"):
        parse_document(_make_fixtures().build_pdf([[]], furniture=False), "application/pdf")


def test_password_protected_pdf_says_so():
    import pikepdf

    buf = io.BytesIO()
    with pikepdf.open(FIXTURES / "sample.pdf") as pdf:
        pdf.save(buf, encryption=pikepdf.Encryption(user="secret", owner="owner"))

    with pytest.raises(ParseError, match="password-protected"):
        parse_document(buf.getvalue(), "application/pdf")


def test_non_pdf_bytes_declared_as_pdf():
    with pytest.raises(ParseError, match="not a PDF"):
        parse_document(b"<html><body>Not found</body></html>", "application/pdf")


def test_docx_that_is_not_a_zip():
    with pytest.raises(ParseError, match="not a ZIP archive"):
        parse_document(b"This is plain text, not a Word file.", DOCX, file_name="memo.docx")


def test_zip_that_is_not_a_word_document():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("hello.txt", "hi")

    with pytest.raises(ParseError, match="word/document.xml"):
        parse_document(buf.getvalue(), DOCX)


@pytest.mark.parametrize(
    ("content_type", "file_name"),
    [("image/png", "photo.png"), ("application/msword", "old.doc"), ("application/json", None)],
)
def test_unsupported_content_type(content_type, file_name):
    with pytest.raises(ParseError, match=r"Unsupported content type .*Supported formats: PDF"):
        parse_document(b"\x89PNG\r\n\x1a\n\x00\x00", content_type, file_name=file_name)


def test_unrecognisable_binary_without_type_or_name():
    with pytest.raises(ParseError, match="Cannot tell the format"):
        parse_document(b"\x00\x01\x02\x03binary", None)


@pytest.mark.parametrize("data", [b"", b"  \n\t "])
def test_empty_document(data):
    with pytest.raises(ParseError, match="empty"):
        parse_document(data, "text/plain")


def test_html_without_any_text():
    with pytest.raises(ParseError, match="No text could be extracted from the HTML"):
        parse_document(b"<html><body><script>var a = 1;</script></body></html>", "text/html")


def test_binary_declared_as_text():
    with pytest.raises(ParseError, match="looks binary"):
        parse_document(b"abc\x00\x00\x00def" * 10, "text/plain")


def test_any_library_failure_becomes_a_parse_error(monkeypatch):
    def explode(data, charset, url):
        raise KeyError("internal detail")

    monkeypatch.setitem(document._PARSERS, "text/plain", explode)

    with pytest.raises(ParseError, match="Could not parse the plain text: KeyError") as info:
        parse_document(b"hello", "text/plain")
    assert isinstance(info.value, ValueError)


# ##### HTML extraction details


def test_short_page_keeps_structure_and_drops_furniture():
    # Below 250 characters trafilatura's default mode dumps the whole body, nav and footer too.
    page = b"""<html><head><script>track('SCRIPT')</script></head><body>
      <nav><a href="/">Home NAV</a></nav>
      <div class="cookie-banner">We use cookies COOKIE</div>
      <main><h1>Office hours</h1><p>Open <b>9 to 5</b> on weekdays.</p></main>
      <footer>FOOTER text</footer></body></html>"""

    elements = parse_document(page, "text/html")

    assert elements == [
        Element("Office hours", "title", heading_level=1),
        Element("Open 9 to 5 on weekdays.", "text"),
    ]


def test_page_whose_only_text_is_in_its_header_is_not_lost():
    page = b"""<html><body><header><h1>Coming soon</h1>
      <p>Our new shop opens in May.</p></header></body></html>"""

    elements = parse_document(page, "text/html")

    assert elements == [
        Element("Coming soon", "title", heading_level=1),
        Element("Our new shop opens in May.", "text"),
    ]


def test_javascript_only_page_is_a_parse_error():
    page = b"""<html><body><noscript>Please enable JavaScript to use this app.</noscript>
      <div id="root"></div><script src="/app.js"></script></body></html>"""

    with pytest.raises(ParseError, match="No text could be extracted from the HTML"):
        parse_document(page, "text/html")


def test_lxml_fallback_keeps_the_article_and_drops_furniture():
    elements = html_fallback_elements((FIXTURES / "sample.html").read_bytes())

    assert titles(elements) == [
        (1, "Composting at Home"),
        (2, "What to Add"),
        (2, "Turning the Heap"),
    ]
    assert len(texts(elements, "list_item")) == 3
    assert texts(elements, "table") == ["Season | Weeks to compost\nSummer | 8\nWinter | 20"]
    joined = " ".join(texts(elements))
    for furniture in (
        "NAVIGATION_ARCHIVE_LINK",
        "COOKIE_BANNER",
        "FOOTER_COPYRIGHT",
        "SCRIPT_MARKER",
    ):
        assert furniture not in joined


def test_section_with_a_boilerplate_sounding_slug_is_kept():
    # trafilatura drops blocks whose id contains "related" or "nav"; heading slugs often do.
    para = "This paragraph carries real content that a reader came to the page for. " * 6
    page = f"""<html><body><main><h1>Exceptions</h1><p>{para}</p>
      <section id="unrelated-exceptions"><h2>Unrelated exceptions</h2><p>{para}</p></section>
      <section id="navigation-menu"><h2>Navigation menu</h2><p>{para}</p></section>
      </main></body></html>""".encode()

    elements = parse_document(page, "text/html")

    assert titles(elements) == [
        (1, "Exceptions"),
        (2, "Unrelated exceptions"),
        (2, "Navigation menu"),
    ]


def test_markdown_splitter_handles_trafilatura_output():
    markdown = textwrap.dedent(
        """\
        # 9. Classes¶

        Uses *emphasis*, **bold**, `inline code`, scope\\_test and a literal \\* star.
        Wrapped onto a second line.

        - first item
        - second item
        continues here
        1. numbered

        | Operation | Result |
        |---|---|
        | `x or y` | if *x* is false \\| else |

        ```
        def f():
            # not a heading
            return 1
        ```
        Comparisons can be chained; `x < y <= z` is equivalent to ```
        x < y and
        y <= z
        ```
        , except that y is evaluated once.

        > quoted text

        ## Learning C# ##
        """
    )

    assert markdown_to_elements(markdown) == [
        Element("9. Classes", "title", heading_level=1),
        Element(
            "Uses emphasis, bold, inline code, scope_test and a literal * star. "
            "Wrapped onto a second line.",
            "text",
        ),
        Element("first item", "list_item"),
        Element("second item continues here", "list_item"),
        Element("numbered", "list_item"),
        Element("Operation | Result\nx or y | if x is false | else", "table"),
        Element("def f():\n    # not a heading\n    return 1", "code"),
        Element(
            "Comparisons can be chained; x < y <= z is equivalent to x < y and y <= z , "
            "except that y is evaluated once.",
            "text",
        ),
        Element("quoted text", "text"),
        Element("Learning C#", "title", heading_level=2),
    ]


# ##### process-level guarantees (fresh interpreters)


def _clean_env() -> dict[str, str]:
    """The test environment minus the opt-outs the parsing package must set by itself."""
    env = dict(os.environ)
    for key in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
        env.pop(key, None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def test_importing_the_module_loads_no_parser_library():
    code = textwrap.dedent(
        """\
        import json, sys, time
        start = time.perf_counter()
        import fruxon_pipelines.parsing
        elapsed = time.perf_counter() - start
        heavy = sorted(
            name for name in ("unstructured", "trafilatura", "spacy", "lxml", "pandas", "docx")
            if name in sys.modules
        )
        print(json.dumps({"heavy": heavy, "seconds": elapsed}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), check=True
    )
    report = json.loads(result.stdout)

    assert report["heavy"] == []
    assert report["seconds"] < 0.5  # a few ms in practice; generous for a loaded CI box


def test_parsing_every_type_attempts_no_network():
    # Audit hooks cannot be removed, hence a fresh interpreter. The hook also refuses the call,
    # so a regression shows up here instead of reaching the network.
    code = textwrap.dedent(
        """\
        import json, sys
        from pathlib import Path

        EVENTS = {"socket.getaddrinfo", "socket.gethostbyname", "socket.connect",
                  "socket.sendto", "urllib.Request", "http.client.connect"}
        seen = []

        def hook(event, args):
            if event in EVENTS:
                seen.append([event, repr(args)[:200]])
                raise OSError(f"network blocked by test: {event}")

        sys.addaudithook(hook)

        from fruxon_pipelines.parsing import content_type_for, parse_document

        fixtures = Path(sys.argv[1])
        counts = {}
        for name in ("sample.pdf", "sample.docx", "sample.html", "sample.md",
                     "sample.txt", "sample.csv"):
            data = (fixtures / name).read_bytes()
            counts[name] = len(parse_document(data, content_type_for(name), file_name=name))
        print(json.dumps({"events": seen, "counts": counts}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["events"] == []
    assert all(count > 0 for count in report["counts"].values()), report["counts"]
