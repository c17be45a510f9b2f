"""The web source fetching and crawling: sitemaps, conditional GET, redirects, content types and
sizes, HTTP errors and outages, refreshes of given keys, against real HTTP servers on 127.0.0.1
(tests/support/sitegen.py).

No test sends traffic anywhere but 127.0.0.1: off-site links point at ``*.invalid`` hosts and are
never requested.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sitegen import Site, generate_pages, sitemap_index_xml, sitemap_xml
from webcrawl import crawl, known_from, page, source

from fruxon_pipelines.sources.base import KnownDocument


@pytest.fixture
def other_site() -> Iterator[Site]:
    with Site() as s:
        yield s


# -- sitemaps -----------------------------------------------------------------------------------


def test_sitemap_expands_to_depth_zero_entries(site: Site) -> None:
    site.put_pages(generate_pages(6, links="chain"))
    entries = [site.url("/page-1.html"), site.url("/page-3.html")]
    offsite = "https://external.invalid/page.html"
    site.put("/sitemap.xml", sitemap_xml([*entries, offsite]), "application/xml")

    items = crawl(source([site.url("/sitemap.xml")]))
    assert list(items) == entries  # the sitemap itself is not a document
    assert all(i.status == "fetched" for i in items.values())

    # Entries count as depth 0: one hop more reaches their links.
    items = crawl(source([site.url("/sitemap.xml")], maxDepth=1))
    assert set(items) >= {site.url(p) for p in ["/page-2.html", "/page-4.html"]}
    assert site.url("/page-5.html") not in items


def test_sitemap_index_with_gzip_child_and_patterns(site: Site) -> None:
    site.put_pages(generate_pages(5, links="chain"))
    site.put(
        "/sitemap-index.xml",
        sitemap_index_xml([site.url("/maps/a.xml"), site.url("/maps/b.xml.gz")]),
        "text/xml",
    )
    site.put("/maps/a.xml", sitemap_xml([site.url("/page-0.html"), site.url("/page-1.html")]))
    gz = gzip.compress(sitemap_xml([site.url("/page-2.html"), site.url("/page-3.html")]).encode())
    site.put("/maps/b.xml.gz", gz, "application/gzip")

    items = crawl(source([site.url("/sitemap-index.xml")]))
    assert list(items) == [site.url(f"/page-{i}.html") for i in range(4)]

    # Patterns apply to sitemap entries too.
    items = crawl(source([site.url("/sitemap-index.xml")], excludePatterns=["*page-2*"]))
    assert site.url("/page-2.html") not in items
    assert len(items) == 3


def test_broken_child_sitemap_is_reported(site: Site) -> None:
    site.put_pages(generate_pages(2))
    site.put(
        "/index.xml",
        sitemap_index_xml([site.url("/a.xml"), site.url("/missing.xml")]),
        "application/xml",
    )
    site.put("/a.xml", sitemap_xml([site.url("/page-0.html")]), "application/xml")
    items = crawl(source([site.url("/index.xml")]))
    assert items[site.url("/page-0.html")].status == "fetched"
    missing = items[site.url("/missing.xml")]
    assert missing.status == "gone"
    assert "sitemap" in (missing.error or "")


def test_sitemap_lastmod_before_the_last_read_skips_the_request(site: Site) -> None:
    """An entry that last changed before its indexed content was read is listed unchanged
    without a request; one changed since, one never read, or a forced refresh are fetched."""
    import time

    from fruxon_pipelines.sources.web.sitemaps import lastmod_until

    site.put_pages(generate_pages(4, links="chain"))
    urls = [site.url(f"/page-{n}.html") for n in range(4)]
    old, recent = "2024-01-01", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
    stamps = {urls[0]: old, urls[1]: old, urls[2]: recent}  # page-3 has no <lastmod>
    site.put("/sitemap.xml", sitemap_xml(urls, stamps), "application/xml")
    src = source([site.url("/sitemap.xml")], maxDepth=1)
    known = known_from(crawl(src).values())
    read_at = lastmod_until(old) + 3600  # the last read came after the old lastmod
    known = {key: replace(doc, confirmed_at=read_at) for key, doc in known.items()}
    known[urls[1]] = replace(known[urls[1]], confirmed_at=None)  # never confirmed

    site.clear_log()
    again = crawl(src, known)
    assert set(again) == set(urls) | {site.url("/")}  # page-0 links to / (depth 1)
    assert all(again[u].status == "unchanged" for u in urls)
    requested = site.requested_paths()
    assert "/page-0.html" not in requested
    assert {"/page-1.html", "/page-2.html", "/page-3.html"} <= set(requested)
    assert again[urls[0]].links == list(known[urls[0]].links)  # the crawl went on through it

    site.clear_log()
    crawl(src, known, force=True)
    assert "/page-0.html" in site.requested_paths()
    site.clear_log()
    crawl(source([site.url("/sitemap.xml")], maxDepth=1, useSitemapLastmod=False), known)
    assert "/page-0.html" in site.requested_paths()


def test_lastmod_is_read_as_the_latest_instant_it_can_mean() -> None:
    from datetime import UTC, datetime

    from fruxon_pipelines.sources.web.sitemaps import lastmod_until

    def until(text: str) -> str | None:
        value = lastmod_until(text)
        return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()

    # A date or month without a zone may end 14 h after UTC's end of it.
    assert until("2024-02-28") == "2024-02-29T14:00:00+00:00"
    assert until("2024-12") == "2025-01-01T14:00:00+00:00"
    assert until("2024") == "2025-01-01T14:00:00+00:00"
    assert until("2024-02-28T10:30+02:00") == "2024-02-28T08:31:00+00:00"
    assert until("2024-02-28T10:30:15Z") == "2024-02-28T10:30:16+00:00"
    assert until("yesterday") is None and until("2024-13-01") is None


# -- conditional GET ----------------------------------------------------------------------------


def test_conditional_get_gives_unchanged_and_crawl_continues(site: Site) -> None:
    site.put_pages(generate_pages(4, links="chain"))
    src = source([site.url()], maxDepth=10)
    first = crawl(src)
    assert len(first) == 5 and all(i.status == "fetched" for i in first.values())
    assert all(i.etag and i.last_modified for i in first.values())

    known = known_from(first.values())
    site.clear_log()
    second = crawl(src, known)
    # page-3 is only reachable through four unchanged pages.
    assert set(second) == set(first)
    assert all(i.status == "unchanged" and i.data is None for i in second.values())
    pages = [r for r in site.requests if r[1] != "/robots.txt"]
    assert [status for _, _, status, _ in pages] == [304] * 5
    assert all("If-None-Match" in h and "If-Modified-Since" in h for _, _, _, h in pages)

    # A changed page is fetched again; the others stay unchanged.
    site.put("/page-1.html", page("Page 1, new", "/page-2.html"))
    third = crawl(src, known)
    assert third[site.url("/page-1.html")].status == "fetched"
    assert third[site.url("/page-1.html")].title == "Page 1, new"
    assert [k for k, i in third.items() if i.status == "unchanged"] == [
        site.url(p) for p in ["/", "/page-0.html", "/page-2.html", "/page-3.html"]
    ]


def test_last_modified_alone_is_enough(site: Site) -> None:
    site.put("/", page("Home"))
    first = crawl(source([site.url()]))[site.url()]
    known = {first.source_key: KnownDocument(first.source_key, last_modified=first.last_modified)}
    site.clear_log()
    assert crawl(source([site.url()]), known)[site.url()].status == "unchanged"
    headers = site.requests[-1][3]
    assert "If-None-Match" not in headers and "If-Modified-Since" in headers


def test_force_ignores_conditionals(site: Site) -> None:
    site.put_pages(generate_pages(2, links="chain"))
    src = source([site.url()], maxDepth=5)
    known = known_from(crawl(src).values())
    site.clear_log()
    items = crawl(src, known, force=True)
    assert all(i.status == "fetched" and i.data for i in items.values())
    assert all(
        "If-None-Match" not in h and "If-Modified-Since" not in h for _, _, _, h in site.requests
    )


# -- redirects ----------------------------------------------------------------------------------


def test_on_site_redirects_are_followed_and_keyed_by_final_url(site: Site) -> None:
    site.put("/new.html", page("New"))
    site.redirect("/old", "/new.html")  # relative Location
    site.redirect("/older", site.url("/old"), status=302)  # absolute Location, two hops
    items = crawl(source([site.url("/old"), site.url("/older")]))
    assert list(items) == [site.url("/new.html")]  # two URLs, one document
    item = items[site.url("/new.html")]
    assert item.status == "fetched" and item.title == "New"
    assert item.source_url == site.url("/new.html")

    # Conditional headers of a hop come from known[hop key].
    site.clear_log()
    items = crawl(source([site.url("/old")]), known_from(items.values()))
    assert items[site.url("/new.html")].status == "unchanged"
    assert [(p, s) for _, p, s, _ in site.requests if p != "/robots.txt"] == [
        ("/old", 301),
        ("/new.html", 304),
    ]


def test_off_site_redirect_is_refused(site: Site, other_site: Site) -> None:
    other_site.put("/x", page("elsewhere"))
    site.redirect("/away", other_site.url("/x"))
    items = crawl(source([site.url("/away")]))
    item = items[site.url("/away")]
    assert item.status == "failed"
    assert "off-site" in (item.error or "") and other_site.url("/x") in (item.error or "")
    assert other_site.requests == []


def test_redirect_loops_and_too_many_redirects(site: Site) -> None:
    site.redirect("/a", "/b")
    site.redirect("/b", "/a")
    for i in range(7):
        site.redirect(f"/r{i}", f"/r{i + 1}")
    site.put("/r7", page("end"))
    items = crawl(source([site.url("/a"), site.url("/r0")]))
    assert "redirect loop" in (items[site.url("/b")].error or "")
    too_many = [i for i in items.values() if "too many redirects" in (i.error or "")]
    assert len(too_many) == 1 and too_many[0].status == "failed"
    assert site.url("/r7") not in items


# -- content types and sizes --------------------------------------------------------------------


def test_non_html_content_types(site: Site) -> None:
    pdf = b"%PDF-1.4\n" + b"0" * 2000 + b"\n%%EOF\n"
    site.put("/notes.txt", "plain notes\n", "text/plain; charset=utf-8")
    site.put("/report.pdf", pdf, "application/pdf")
    site.put("/logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 200_000, "image/png")
    site.put("/blob", b"\0\1\2" * 1000, "application/octet-stream")
    site.put("/letter.docx", b"PK\x03\x04fake", "application/octet-stream")
    site.put("/", page("Home", "notes.txt", "report.pdf", "logo.png", "blob", "letter.docx"))
    items = crawl(source([site.url()], maxDepth=1))

    text = items[site.url("/notes.txt")]
    assert (text.status, text.content_type, text.data) == (
        "fetched",
        "text/plain; charset=utf-8",
        b"plain notes\n",
    )
    assert text.links == [] and text.title is None
    pdf_item = items[site.url("/report.pdf")]
    assert (pdf_item.status, pdf_item.content_type, pdf_item.data) == (
        "fetched",
        "application/pdf",
        pdf,
    )
    assert pdf_item.file_name == "report.pdf"
    png = items[site.url("/logo.png")]
    assert png.status == "failed" and png.error == "unsupported content type image/png"
    assert png.data is None
    blob = items[site.url("/blob")]
    assert blob.error == "unsupported content type application/octet-stream"
    # A generic type with a parseable extension goes to the parser, which decides.
    assert items[site.url("/letter.docx")].status == "fetched"


def test_missing_content_type_is_sniffed(site: Site) -> None:
    site.put("/", "<!DOCTYPE html><html><head><title>T</title></head></html>", None)
    assert crawl(source([site.url()]))[site.url()].content_type == "text/html"


def test_body_size_cap(site: Site) -> None:
    site.put("/big.txt", "x" * 5000, "text/plain")
    # Small on the wire, large decoded: the cap counts decoded bytes.
    site.put(
        "/bomb.txt",
        gzip.compress(b"y" * 200_000),
        "text/plain",
        headers={"Content-Encoding": "gzip"},
    )
    items = crawl(source([site.url("/big.txt"), site.url("/bomb.txt")], max_body_bytes=1000))
    assert items[site.url("/big.txt")].status == "failed"
    assert "too large" in (items[site.url("/big.txt")].error or "")
    assert "larger than" in (items[site.url("/bomb.txt")].error or "")


# -- HTTP errors --------------------------------------------------------------------------------


def test_404_is_gone_and_500_is_failed(site: Site) -> None:
    site.put("/broken", "boom", "text/plain", status=500)
    items = crawl(source([site.url("/missing"), site.url("/broken")]))
    assert items[site.url("/missing")].status == "gone"
    broken = items[site.url("/broken")]
    assert broken.status == "failed" and broken.error == "HTTP 500 Internal Server Error"


def test_transient_failure_crawls_on_through_known_links(site: Site) -> None:
    """An outage of one page must not shrink the listing (which would delete documents)."""
    site.put_pages(generate_pages(2, links="chain"))
    src = source([site.url()], maxDepth=5)
    known = known_from(crawl(src).values())
    site.put("/", "down for maintenance", "text/plain", status=503)
    items = crawl(src, known)
    assert items[site.url()].status == "failed"
    assert items[site.url("/page-1.html")].status == "unchanged"


def test_timeout_is_a_failed_item(site: Site) -> None:
    site.put("/slow", page("slow"), delay=1.5)
    site.put("/fast", page("fast"))
    items = crawl(source([site.url("/slow"), site.url("/fast")], timeout=0.3))
    assert items[site.url("/slow")].status == "failed"
    assert "timed out" in (items[site.url("/slow")].error or "")
    assert items[site.url("/fast")].status == "fetched"


def test_unreachable_host_stops_after_repeated_failures() -> None:
    with Site() as gone_site:
        base = gone_site.url()
    pages = [f"{base}p{i}.html" for i in range(5)]
    known = {base: KnownDocument(base, etag='"x"', links=tuple(pages))}
    items = crawl(source([base], maxDepth=1), known)
    # Every known page is still listed (as failed): nothing would be deleted.
    assert set(items) == {base, *pages}
    assert all(i.status == "failed" for i in items.values())
    assert "connection refused" in (items[base].error or "")
    assert "not requested" in (items[pages[-1]].error or "")


# -- only_keys ----------------------------------------------------------------------------------


def test_only_keys_fetches_exactly_those(site: Site) -> None:
    site.put_pages(generate_pages(4, links="chain"))
    src = source([site.url()], maxDepth=10)
    known = known_from(crawl(src).values())
    site.clear_log()
    wanted = {site.url("/page-1.html"), site.url("/page-3.html")}
    items = crawl(src, known, only_keys=wanted)
    assert set(items) == wanted
    assert all(i.status == "unchanged" for i in items.values())
    assert sorted(site.requested_paths()) == ["/page-1.html", "/page-3.html"]

    items = crawl(src, known, only_keys=wanted, force=True)
    assert all(i.status == "fetched" for i in items.values())


def test_only_keys_with_a_key_that_now_redirects(site: Site) -> None:
    site.put("/new.html", page("New"))
    site.redirect("/old.html", "/new.html")
    items = crawl(source([site.url()]), only_keys={site.url("/old.html")})
    assert items[site.url("/new.html")].status == "fetched"
    old = items[site.url("/old.html")]
    assert old.status == "gone" and site.url("/new.html") in (old.error or "")


def test_only_keys_does_not_expand_sitemaps(site: Site) -> None:
    site.put("/page.html", page("p"))
    site.put("/sitemap.xml", sitemap_xml([site.url("/page.html")]), "application/xml")
    items = crawl(source([site.url("/sitemap.xml")]), only_keys={site.url("/sitemap.xml")})
    assert list(items) == [site.url("/sitemap.xml")]
    assert "/page.html" not in site.requested_paths()
