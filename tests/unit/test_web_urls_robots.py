"""The web source's scope and robots.txt: which URLs a crawl takes (depth, budget, patterns, links,
parameters, document keys) and which it may request, against real HTTP servers on 127.0.0.1
(tests/support/sitegen.py).

No test sends traffic anywhere but 127.0.0.1: off-site links point at ``*.invalid`` hosts and are
never requested.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sitegen import Site, generate_pages
from webcrawl import UA, crawl, page, source

from fruxon_pipelines.sources.base import SourceError
from fruxon_pipelines.sources.web import (
    RobotsRules,
    WebParameters,
    WebSource,
    normalize_url,
    robots,
    site_of,
)

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
    monkeypatch.setattr(robots, "MAX_CRAWL_DELAY", 0.2)
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
