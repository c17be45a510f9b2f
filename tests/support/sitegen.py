"""A real little web site for tests: ``http.server`` on 127.0.0.1, a random port, a thread.

Use it as a context manager, or wrap it in a pytest fixture::

    @pytest.fixture
    def site():
        with Site() as s:
            yield s

    def test_something(site):
        site.put("/", "<html>…</html>")
        site.set_robots("User-agent: *\\nDisallow: /private/\\n")
        ...
        assert ("GET", "/", 200) in [r[:3] for r in site.requests]

What it does, so tests can rely on it:
- Every stored body has an ``ETag`` (hash of the body) and a ``Last-Modified`` that is fixed per
  version (a new body gets a later date); ``If-None-Match`` / ``If-Modified-Since`` get a 304.
- Unknown paths are 404; ``/robots.txt`` is 404 until :meth:`Site.set_robots` gives it a text.
- A path is looked up with its query string first, then without it.
- Every request is logged (thread-safe) in :attr:`Site.requests` as
  ``(method, path, status, headers)``; :attr:`Site.log` has the same with the receive time.

:func:`generate_pages` builds realistic pages (nav, footer, script, several paragraphs of prose)
so a main-content extractor has boilerplate to drop; :func:`sitemap_xml` and
:func:`sitemap_index_xml` build sitemaps.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from xml.sax.saxutils import escape as xml_escape

__all__ = [
    "LoggedRequest",
    "Site",
    "generate_pages",
    "sitemap_index_xml",
    "sitemap_xml",
]

HTML = "text/html; charset=utf-8"
# Last-Modified of version n is BASE_TIME + n minutes: fixed per version, later for newer ones.
BASE_TIME = 1_700_000_000


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    time: float  # time.monotonic() when the request arrived

    def as_tuple(self) -> tuple[str, str, int, dict[str, str]]:
        return (self.method, self.path, self.status, self.headers)


@dataclass
class _Resource:
    body: bytes
    content_type: str | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    etag: str = ""
    last_modified: str = ""
    redirect_to: str | None = None


class Site:
    """A test web site served by a ``ThreadingHTTPServer`` on 127.0.0.1 (random port)."""

    def __init__(self, pages: Mapping[str, str | bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self._resources: dict[str, _Resource] = {}
        self._log: list[LoggedRequest] = []
        self._version = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if pages:
            self.put_pages(pages)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Site:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.site = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Site:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the site is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, path: str = "/") -> str:
        """Absolute URL of ``path`` on this site."""
        if not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    # -- content -----------------------------------------------------------------------------

    def put(
        self,
        path: str,
        body: str | bytes,
        content_type: str | None = HTML,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Serve ``body`` at ``path``. A changed body (or type) is a new version: new ETag and a
        later Last-Modified; putting the same body again keeps the version.

        ``status`` serves e.g. a 500 page; ``headers`` adds response headers; ``delay`` sleeps
        before answering (for timeout tests). ``content_type=None`` sends no Content-Type.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        with self._lock:
            old = self._resources.get(path)
            if old is not None and old.etag == etag and old.content_type == content_type:
                last_modified = old.last_modified
            else:
                self._version += 1
                last_modified = formatdate(BASE_TIME + 60 * self._version, usegmt=True)
            self._resources[path] = _Resource(
                body=data,
                content_type=content_type,
                status=status,
                headers=dict(headers or {}),
                delay=delay,
                etag=etag,
                last_modified=last_modified,
            )

    def put_pages(self, pages: Mapping[str, str | bytes]) -> None:
        """``put`` every page of a ``{path: html}`` mapping (e.g. from :func:`generate_pages`)."""
        for path, body in pages.items():
            self.put(path, body)

    def remove(self, path: str) -> None:
        """Forget ``path``: it answers 404 from now on."""
        with self._lock:
            self._resources.pop(path, None)

    def set_robots(self, text: str | None) -> None:
        """Serve ``text`` as /robots.txt, or answer 404 for it when None."""
        if text is None:
            self.remove("/robots.txt")
        else:
            self.put("/robots.txt", text, "text/plain; charset=utf-8")

    def redirect(self, path: str, to_path: str, status: int = 301) -> None:
        """Answer ``path`` with a redirect. ``to_path`` is sent as given in Location: a path
        (relative reference) or an absolute URL (e.g. another Site's ``url()``)."""
        with self._lock:
            self._resources[path] = _Resource(
                body=b"", content_type=None, status=status, redirect_to=to_path
            )

    # -- request log -------------------------------------------------------------------------

    @property
    def log(self) -> list[LoggedRequest]:
        """Every request served so far, oldest first (a copy)."""
        with self._lock:
            return list(self._log)

    @property
    def requests(self) -> list[tuple[str, str, int, dict[str, str]]]:
        """``(method, path, status, headers)`` of every request served so far (a copy)."""
        return [entry.as_tuple() for entry in self.log]

    def requested_paths(self, *, include_robots: bool = False) -> list[str]:
        """Paths requested so far, in order; /robots.txt left out unless asked for."""
        return [entry.path for entry in self.log if include_robots or entry.path != "/robots.txt"]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # -- serving -----------------------------------------------------------------------------

    def _lookup(self, path: str) -> _Resource | None:
        with self._lock:
            found = self._resources.get(path)
            if found is None and "?" in path:
                found = self._resources.get(path.split("?", 1)[0])
            return found

    def _serve(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        received = time.monotonic()
        headers = {name: value for name, value in handler.headers.items()}
        resource = self._lookup(handler.path)
        status, reply_headers, body = self._answer(resource, headers)
        with self._lock:
            self._log.append(
                LoggedRequest(handler.command, handler.path, status, headers, received)
            )
        if resource is not None and resource.delay:
            time.sleep(resource.delay)
        try:
            handler.send_response(status)
            for name, value in reply_headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if not head and body:
                handler.wfile.write(body)
        except OSError:
            # The client gave up (e.g. a timeout test); nothing to do.
            handler.close_connection = True

    @staticmethod
    def _answer(
        resource: _Resource | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if resource is None:
            return 404, {"Content-Type": HTML}, b"<html><body><h1>Not found</h1></body></html>"
        if resource.redirect_to is not None:
            return resource.status, {"Location": resource.redirect_to}, b""
        reply = {"ETag": resource.etag, "Last-Modified": resource.last_modified}
        reply.update(resource.headers)
        if resource.status == 200 and _not_modified(resource, headers):
            return 304, reply, b""
        if resource.content_type is not None:
            reply["Content-Type"] = resource.content_type
        return resource.status, reply, resource.body


def _not_modified(resource: _Resource, headers: Mapping[str, str]) -> bool:
    """RFC 9110: If-None-Match wins; If-Modified-Since only counts without it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if_none_match = lowered.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or resource.etag in tags
    if_modified_since = lowered.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
            modified = parsedate_to_datetime(resource.last_modified)
        except (TypeError, ValueError):
            return False
        return modified <= since
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    site: Site

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-answer are expected in tests; keep pytest output clean.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers; every answer has Content-Length
    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle holds the body back
    # until the client's delayed ACK (~40 ms a response), which no production server does.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.site._serve(self, head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self.server.site._serve(self, head=True)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


# -- content generation ----------------------------------------------------------------------

_SUBJECTS = [
    "The warehouse team",
    "Our support desk",
    "The onboarding guide",
    "Every regional office",
    "The finance department",
    "A small pilot group",
    "The platform team",
    "Most new customers",
    "The quarterly review",
    "Our field engineers",
]
_VERBS = [
    "recommends",
    "documents",
    "reviews",
    "schedules",
    "explains",
    "measures",
    "simplifies",
    "tracks",
    "replaces",
    "approves",
]
_OBJECTS = [
    "the shipping schedule for northern routes",
    "how invoices are matched to purchase orders",
    "the steps for resetting a forgotten password",
    "the backup policy for customer databases",
    "travel expenses above the usual limit",
    "the escalation path for urgent incidents",
    "a checklist for the first week of work",
    "the retention period of archived emails",
    "the new sorting line in the main depot",
    "the format of monthly status reports",
]
_TAILS = [
    "before the end of each month",
    "so that nobody has to guess",
    "with help from the operations lead",
    "after the spring reorganisation",
    "because the old process was too slow",
    "in close cooperation with legal",
    "whenever a customer asks for it",
    "to keep audits short and predictable",
]
_TOPICS = [
    "Logistics",
    "Billing",
    "Security",
    "Onboarding",
    "Travel",
    "Incidents",
    "Archiving",
    "Reporting",
    "Procurement",
    "Facilities",
]
_SECTIONS = ["Overview", "Background", "How it works", "Details", "Next steps", "Questions"]


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
    )


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(3, 6)))


def _page_links(i: int, n: int, links: str) -> list[int]:
    if links == "chain":
        return [i + 1] if i + 1 < n else []
    if links == "tree":
        return [c for c in (2 * i + 1, 2 * i + 2) if c < n]
    return [j for j in range(n) if j != i]


def _html_page(title: str, rng: random.Random, link_items: list[tuple[str, str]]) -> str:
    sections = []
    for heading in rng.sample(_SECTIONS, 3):
        paragraphs = "\n".join(f"    <p>{escape(_paragraph(rng))}</p>" for _ in range(2))
        sections.append(f"   <h2>{escape(heading)}</h2>\n{paragraphs}")
    related = "\n".join(
        f'     <li><a href="{escape(href)}">{escape(text)}</a></li>' for href, text in link_items
    )
    related_block = (
        f"   <h2>Related pages</h2>\n   <ul>\n{related}\n   </ul>\n" if link_items else ""
    )
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{escape(title)}</title>
  <script>window.analytics = {{ page: "{escape(title)}", track: function () {{}} }};</script>
</head>
<body>
  <header class="site-header">
    <nav><a href="/">Home</a> | <a href="#main">Skip to content</a> |
      <a href="javascript:void(0)">Menu</a></nav>
  </header>
  <main id="main">
   <article>
   <h1>{escape(title)}</h1>
{body}
{related_block}   </article>
  </main>
  <footer class="site-footer">
    <p>&copy; 2024 Example Corp. All rights reserved.
      <a href="mailto:info@example.invalid">Contact</a> |
      <a href="https://external.invalid/partners">Partners</a></p>
  </footer>
</body>
</html>
"""


def generate_pages(
    n: int, *, links: Literal["chain", "tree", "all"] = "chain", seed: int = 0
) -> dict[str, str]:
    """Deterministic HTML pages ``/page-{i}.html`` (i < n) plus an index at ``/``.

    Link structure between content pages (``links``):
    - ``chain``: ``/`` → page-0 → page-1 → … (page-k is k+1 hops from ``/``)
    - ``tree``: ``/`` → page-0; page-i → page-(2i+1), page-(2i+2)
    - ``all``: ``/`` and every page link to every page
    Every page also has a nav (``/``, a ``#main`` fragment, a ``javascript:`` link), a footer with
    ``mailto:`` and an off-site link (``https://external.invalid/…``), and an inline ``<script>``.
    Links alternate between relative (``page-3.html``) and absolute-path (``/page-3.html``).
    """
    if links not in ("chain", "tree", "all"):
        raise ValueError(f"links must be 'chain', 'tree' or 'all', not {links!r}")

    def href(j: int) -> str:
        return f"page-{j}.html" if j % 2 else f"/page-{j}.html"

    pages: dict[str, str] = {}
    index_targets = list(range(n)) if links == "all" else ([0] if n else [])
    rng = random.Random(f"{seed}:index")
    pages["/"] = _html_page(
        "Example Corp knowledge base",
        rng,
        [(href(j), f"Page {j}: {_TOPICS[j % len(_TOPICS)]}") for j in index_targets],
    )
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        title = f"Page {i}: {_TOPICS[i % len(_TOPICS)]} {rng.choice(_SECTIONS).lower()}"
        items = [
            (href(j), f"Page {j}: {_TOPICS[j % len(_TOPICS)]}") for j in _page_links(i, n, links)
        ]
        pages[f"/page-{i}.html"] = _html_page(title, rng, items)
    return pages


def sitemap_xml(urls: Iterable[str], lastmod: str | dict[str, str] | None = None) -> str:
    """A ``<urlset>`` sitemap listing ``urls``; ``lastmod``: every entry's, or by URL."""

    def entry(url: str) -> str:
        when = lastmod.get(url) if isinstance(lastmod, dict) else lastmod
        stamp = f"<lastmod>{when}</lastmod>" if when else ""
        return f"  <url><loc>{xml_escape(url)}</loc>{stamp}</url>"

    entries = "\n".join(entry(u) for u in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{entries}\n</urlset>\n"
    )


def sitemap_index_xml(sitemap_urls: Iterable[str]) -> str:
    """A ``<sitemapindex>`` listing child sitemaps."""
    entries = "\n".join(f"  <sitemap><loc>{xml_escape(u)}</loc></sitemap>" for u in sitemap_urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{entries}\n</sitemapindex>\n"
    )
