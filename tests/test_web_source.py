"""Web source and SSRF guard, against real HTTP servers on 127.0.0.1 (tests/sitegen.py).

No test sends traffic anywhere but 127.0.0.1: off-site links point at ``*.invalid`` hosts and are
never requested, and the address-classification tests only classify.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterable, Iterator

import pytest
import requests
from pydantic import ValidationError
from sitegen import Site, generate_pages, sitemap_index_xml, sitemap_xml

from fruxon_pipelines.settings import PRODUCT_USER_AGENT
from fruxon_pipelines.sources import web
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, SourceError
from fruxon_pipelines.sources.netguard import (
    BlockedAddressError,
    blocked_reason,
    is_blocked_address,
    make_session,
)
from fruxon_pipelines.sources.web import (
    RobotsRules,
    WebParameters,
    WebSource,
    normalize_url,
    site_of,
)

UA = PRODUCT_USER_AGENT


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as s:
        yield s


@pytest.fixture
def other_site() -> Iterator[Site]:
    with Site() as s:
        yield s


def source(
    urls: Iterable[str],
    *,
    allow_private_networks: bool = True,
    timeout: float = 5.0,
    max_body_bytes: int = web.DEFAULT_MAX_BODY_BYTES,
    **params: object,
) -> WebSource:
    return WebSource(
        WebParameters.model_validate({"urls": list(urls), **params}),
        allow_private_networks=allow_private_networks,
        user_agent=UA,
        timeout=timeout,
        max_body_bytes=max_body_bytes,
    )


def crawl(src: WebSource, known: dict[str, KnownDocument] | None = None, **kw: object) -> dict:
    items = list(src.fetch(known or {}, **kw))  # type: ignore[arg-type]
    keys = [i.source_key for i in items]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return {i.source_key: i for i in items}


def known_from(items: Iterable[FetchedItem]) -> dict[str, KnownDocument]:
    """What the catalog would remember after indexing these items."""
    return {
        i.source_key: KnownDocument(
            source_key=i.source_key,
            etag=i.etag,
            last_modified=i.last_modified,
            links=tuple(i.links),
        )
        for i in items
        if i.status in ("fetched", "unchanged")
    }


def page(title: str, *hrefs: str, extra: str = "") -> str:
    links = "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)
    return f"<html><head><title>{title}</title>{extra}</head><body><p>{links}</p></body></html>"


# -- crawl scope --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (0, ["/"]),
        (1, ["/", "/page-0.html"]),
        (2, ["/", "/page-0.html", "/page-1.html"]),
    ],
)
def test_crawl_depth(site: Site, depth: int, expected: list[str]) -> None:
    site.put_pages(generate_pages(5, links="chain"))
    items = crawl(source([site.url()], maxDepth=depth))
    assert list(items) == [site.url(p) for p in expected]
    assert all(i.status == "fetched" for i in items.values())
    # Off-site, mailto: and javascript: links of the generated pages were never followed.
    assert site.requested_paths() == expected


def test_max_pages_limits_documents_and_requests(site: Site) -> None:
    site.put_pages(generate_pages(10, links="all"))
    items = crawl(source([site.url()], maxDepth=3, maxPages=4))
    assert len(items) == 4
    assert len(site.requested_paths()) == 4


def test_include_and_exclude_patterns(site: Site) -> None:
    site.put_pages(generate_pages(6, links="all"))
    src = source(
        [site.url()],
        maxDepth=2,
        includePatterns=["*/page-*.html"],
        excludePatterns=["*/page-3.html", "*/page-5*"],
    )
    items = crawl(src)
    # The start URL is always taken, even though it matches no include pattern.
    assert set(items) == {
        site.url(p) for p in ["/", "/page-0.html", "/page-1.html", "/page-2.html", "/page-4.html"]
    }
    assert "/page-3.html" not in site.requested_paths()
    # links are recorded before filtering: the catalog keeps the full picture.
    assert site.url("/page-3.html") in items[site.url()].links


def test_links_title_base_and_skipped_schemes(site: Site) -> None:
    site.put(
        "/docs/guide/index.html",
        """<!DOCTYPE html><html><head><title>
             The   Guide </title><base href="/docs/"></head><body>
        <a href="intro.html">relative to base</a>
        <a href="/docs/intro.html#part-2">same page, fragment</a>
        <a href="HTTP://127.0.0.1:{port}/docs/Intro.html?b=2&a=1">query kept, case kept</a>
        <a href="mailto:someone@example.invalid">mail</a>
        <a href="javascript:alert(1)">js</a>
        <a href="tel:+123">phone</a>
        <a href="https://external.invalid/x">off-site</a>
        <a rel="nofollow" href="private.html">nofollow (may be followed)</a>
        <a href="#top">only a fragment</a>
        <a>no href</a>
        </body></html>""".replace("{port}", str(site.port)),
    )
    item = crawl(source([site.url("/docs/guide/index.html")]))[site.url("/docs/guide/index.html")]
    assert item.title == "The Guide"
    assert item.content_type == "text/html; charset=utf-8"  # the parser decodes with it
    assert item.links == [
        site.url("/docs/intro.html"),
        site.url("/docs/Intro.html?b=2&a=1"),
        site.url("/docs/private.html"),
        site.url("/docs/"),  # "#top" resolves against <base>, as in browsers
    ]


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


# -- robots.txt ---------------------------------------------------------------------------------


def test_robots_disallow_gives_error_and_is_never_requested(site: Site) -> None:
    site.set_robots("# rules\nUser-agent: *\nDisallow: /private/\nAllow: /private/ok.html\n")
    site.put("/", page("Home", "/private/secret.html", "/private/ok.html", "/public.html"))
    for path in ("/private/secret.html", "/private/ok.html", "/public.html"):
        site.put(path, page(path))

    items = crawl(source([site.url()], maxDepth=1))
    blocked = items[site.url("/private/secret.html")]
    assert blocked.status == "failed"
    assert blocked.error == "blocked by robots.txt (Disallow: /private/)"
    assert items[site.url("/private/ok.html")].status == "fetched"  # longer Allow wins
    assert items[site.url("/public.html")].status == "fetched"
    paths = site.requested_paths(include_robots=True)
    assert "/private/secret.html" not in paths
    assert paths.count("/robots.txt") == 1


def test_robots_group_for_our_product_token_wins(site: Site) -> None:
    site.set_robots(
        "User-agent: *\nDisallow: /\n\nUser-agent: otherbot\nUser-agent: FRUXON\nDisallow: /x\n"
    )
    site.put("/", page("Home", "/x/1.html", "/y.html"))
    site.put("/y.html", page("y"))
    items = crawl(source([site.url()], maxDepth=1))
    assert items[site.url()].status == "fetched"
    assert items[site.url("/y.html")].status == "fetched"
    assert items[site.url("/x/1.html")].error == "blocked by robots.txt (Disallow: /x)"


def test_robots_rules_matching() -> None:
    rules = RobotsRules.parse(
        "User-agent: *\n"
        "Disallow: /*.pdf$\n"
        "Disallow: /search\n"
        "Allow: /search/about\n"
        "Disallow: /tmp/*/cache\n"
        "Allow: /same\n"
        "Disallow: /same\n"
        "Disallow:\n",
        UA,
    )
    assert rules.blocking_rule("/files/a.pdf") == "Disallow: /*.pdf$"
    assert rules.blocking_rule("/files/a.pdf?x=1") is None  # $ anchors
    assert rules.blocking_rule("/search?q=1") == "Disallow: /search"
    assert rules.blocking_rule("/search/about") is None
    assert rules.blocking_rule("/tmp/x/y/cache/z") == "Disallow: /tmp/*/cache"
    assert rules.blocking_rule("/same") is None  # a tie goes to Allow
    assert rules.blocking_rule("/robots.txt") is None
    assert rules.blocking_rule("/other") is None


def test_robots_unavailable_means_allowed_with_a_note(site: Site) -> None:
    site.put("/robots.txt", "oops", "text/plain", status=503)
    site.put("/", page("Home"))
    src = source([site.url()])
    items = crawl(src)
    assert items[site.url()].status == "fetched"
    assert any("robots.txt" in n and "503" in n for n in src.notes)


def test_crawl_delay_is_obeyed(site: Site) -> None:
    site.set_robots("User-agent: *\nCrawl-delay: 1\n")
    site.put_pages(generate_pages(3, links="chain"))
    crawl(source([site.url()], maxDepth=1))
    log = site.log
    assert [r.path for r in log] == ["/robots.txt", "/", "/page-0.html"]
    gaps = [b.time - a.time for a, b in zip(log, log[1:], strict=False)]
    assert all(gap >= 0.95 for gap in gaps), gaps


def test_crawl_delay_is_capped(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "MAX_CRAWL_DELAY", 0.2)
    site.set_robots("User-agent: *\nCrawl-delay: 60\n")
    site.put("/", page("Home"))
    src = source([site.url()])
    crawl(src)
    log = site.log
    assert 0.15 <= log[1].time - log[0].time < 5
    assert any("Crawl-delay 60" in n for n in src.notes)


def test_user_agent_on_every_request(site: Site) -> None:
    site.set_robots("User-agent: *\nAllow: /\n")
    site.put_pages(generate_pages(3, links="chain"))
    crawl(source([site.url()], maxDepth=5))
    assert len(site.requests) == 5  # robots.txt + 4 pages
    assert {headers["User-Agent"] for _, _, _, headers in site.requests} == {UA}


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


# -- SSRF guard ---------------------------------------------------------------------------------


def test_ssrf_guard_refuses_loopback_unless_allowed(site: Site) -> None:
    site.put("/", page("Home"))
    src = source([site.url()], allow_private_networks=False)
    item = crawl(src)[site.url()]
    assert item.status == "failed"
    assert "127.0.0.1" in (item.error or "") and "loopback" in (item.error or "")
    assert "FRUXON_ALLOW_PRIVATE_NETWORKS" in (item.error or "")
    assert site.requests == []

    item = crawl(source([site.url()], allow_private_networks=True))[site.url()]
    assert item.status == "fetched"


def test_guard_checks_the_resolved_address(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name that resolves to loopback (DNS rebinding) is refused at connect."""
    site.put("/", page("Home"))
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "rebound.example":
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    url = f"http://rebound.example:{site.port}/"
    with pytest.raises(BlockedAddressError) as caught:
        make_session(UA, allow_private_networks=False).get(url, timeout=5)
    assert "resolves to 127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, requests.ConnectionError)
    assert site.requests == []

    response = make_session(UA, allow_private_networks=True).get(url, timeout=5)
    assert response.status_code == 200
    assert site.requests[-1][3]["User-Agent"] == UA


def test_guard_applies_to_every_redirect_hop(site: Site) -> None:
    """Even a session following redirects itself checks each hop at connect time."""
    site.redirect("/hop", "/")
    session = make_session(UA, allow_private_networks=False)
    with pytest.raises(BlockedAddressError):
        session.get(site.url("/hop"), timeout=5)


def test_guard_covers_https_connections() -> None:
    # Refused before any connection is made: no TLS server needed, no traffic at all.
    with pytest.raises(BlockedAddressError, match="loopback"):
        make_session(UA, allow_private_networks=False).get("https://127.0.0.1:9/", timeout=2)
    with pytest.raises(BlockedAddressError, match="link-local"):
        make_session(UA, allow_private_networks=False).get("http://169.254.169.254/", timeout=2)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ],
)
def test_guard_blocks_non_public_addresses(address: str) -> None:
    assert is_blocked_address(address), address
    assert blocked_reason(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"]
)
def test_guard_allows_public_addresses(address: str) -> None:
    # Classification only: nothing connects to these.
    assert not is_blocked_address(address)
    assert blocked_reason(address) is None


def test_guard_reasons_are_specific() -> None:
    assert blocked_reason("127.0.0.1") == "loopback"
    assert blocked_reason("10.0.0.1") == "private"
    assert blocked_reason("169.254.169.254") == "link-local"
    assert blocked_reason("0.0.0.0") == "unspecified"
    assert blocked_reason("::ffff:127.0.0.1") == "loopback (embedded in ::ffff:7f00:1)"


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


# -- parameters and URL keys --------------------------------------------------------------------


def test_parameters_defaults_and_validation() -> None:
    params = WebParameters(urls=["https://example.invalid/docs"])
    assert (params.maxDepth, params.maxPages, params.includePatterns) == (0, 1000, [])

    bad = [
        {},
        {"urls": []},
        {"urls": ["ftp://example.invalid/"]},
        {"urls": ["not a url"]},
        {"urls": ["https://user:secret@example.invalid/"]},
        {"urls": ["https://example.invalid/"], "maxPages": 0},
        {"urls": ["https://example.invalid/"], "maxDepth": -1},
        {"urls": ["https://example.invalid/"], "max_depth": 1},
        {"urls": ["https://example.invalid/"], "includePatterns": [""]},
    ]
    for value in bad:
        with pytest.raises(ValidationError):
            WebParameters.model_validate(value)
    with pytest.raises(ValidationError, match="not an http"):
        WebParameters.model_validate({"urls": ["https://ok.invalid/", "ftp://x.invalid/"]})


def test_invalid_configuration_raises_source_error() -> None:
    params = WebParameters.model_construct(urls=["ftp://x.invalid/"], maxDepth=0, maxPages=10)
    src = WebSource(params, allow_private_networks=False, user_agent=UA, timeout=1)
    with pytest.raises(SourceError):
        list(src.fetch({}))


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Example.COM", "http://example.com/"),
        ("https://example.com:443/a?b=1#frag", "https://example.com/a?b=1"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("http://example.com:8080/A/b", "http://example.com:8080/A/b"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("mailto:x@example.com", None),
        ("http://user:pw@example.com/", None),
        ("/relative", None),
    ],
)
def test_normalize_url(url: str, key: str | None) -> None:
    assert normalize_url(url) == key


def test_site_identity() -> None:
    assert site_of("http://www.example.com/") == site_of("https://example.com/x")
    assert site_of("http://example.com:8080/") != site_of("http://example.com/")
    assert site_of("http://docs.example.com/") != site_of("http://example.com/")
