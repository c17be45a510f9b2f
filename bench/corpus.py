"""The benchmark corpus: real documentation pages served from 127.0.0.1, original and edited.

Pages are Debian's Python 3.11 library reference (``apt-get install python3.11-doc``): the first
``pages`` files of ``library/`` in name order (160 for the full suite: 3,086 chunks and 670k
tokens with fruxon's default chunking; 30 for ``--quick``). Two variants share one server:

- ``original``: the pages as installed, and ``sitemap.xml`` listing them.
- ``edited``: 2 % of the pages (every 50th, at least one) have one paragraph replaced, and
  another 2 % (every 50th, offset by 25) are gone (404, and not in the sitemap). The other pages
  are byte-identical and keep their modification time, so conditional GETs answer 304.

``CorpusServer.use("edited")`` switches variants under a running server. The edit replaces the
text of the first ``<p>`` of the page's main content with a sentence that names the page, which a
search can then look for.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

DOCS = Path("/usr/share/doc/python3.11/html")
FULL_PAGES = 160
QUICK_PAGES = 30
# An edit is dated well after the install, so If-Modified-Since sees it as newer.
EDIT_MTIME_OFFSET_S = 3600
_FIRST_PARAGRAPH = re.compile(rb'(<div class="body" role="main">.*?<p>)(.*?)(</p>)', re.DOTALL)


class CorpusMissing(RuntimeError):
    """The Debian documentation package is not installed."""


@dataclass
class Corpus:
    root: Path
    pages: list[str]  # paths relative to the site root, e.g. "library/abc.html"
    edited: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def edit_sentence(self, page: str) -> str:
        name = Path(page).stem.replace(".", " ")
        return (
            f"Benchmark edit marker for the {name} page: zephyrine quokka lanterns "
            f"document how {name} behaves after this refresh."
        )


def _sitemap(base_url: str, pages: list[str]) -> str:
    entries = "".join(f"<url><loc>{html.escape(base_url)}/{p}</loc></url>\n" for p in pages)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{entries}</urlset>\n"
    )


def build_corpus(root: Path, pages: int = FULL_PAGES, docs: Path = DOCS) -> Corpus:
    """Copy the pages into ``root/original`` and ``root/edited`` (the sitemaps come with the
    server, which knows its own address)."""
    if not (docs / "library").is_dir():
        raise CorpusMissing(f"{docs} is missing: apt-get install python3.11-doc")
    selected = sorted(p.name for p in (docs / "library").glob("*.html"))[:pages]
    corpus = Corpus(root=root, pages=[f"library/{name}" for name in selected])
    step = 50
    corpus.edited = corpus.pages[::step][: max(1, len(corpus.pages) // step)]
    corpus.removed = corpus.pages[step // 2 :: step][: max(1, len(corpus.pages) // step)]
    for variant in ("original", "edited"):
        (root / variant / "library").mkdir(parents=True, exist_ok=True)
    for page in corpus.pages:
        source = docs / page
        shutil.copy2(source, root / "original" / page)
        if page in corpus.removed:
            continue
        target = root / "edited" / page
        if page in corpus.edited:
            data = source.read_bytes()
            sentence = corpus.edit_sentence(page).encode()
            edited, count = _FIRST_PARAGRAPH.subn(
                lambda m, s=sentence: m.group(1) + s + m.group(3), data, count=1
            )
            if count != 1:
                raise RuntimeError(f"{page} has no paragraph in its main content to edit")
            target.write_bytes(edited)
            stamp = source.stat().st_mtime + EDIT_MTIME_OFFSET_S
            os.utime(target, (stamp, stamp))
        else:
            shutil.copy2(source, target)
    return corpus


class _Handler(SimpleHTTPRequestHandler):
    """Static files (with Last-Modified and If-Modified-Since → 304), plus the variant's sitemap."""

    server: CorpusServer

    def __init__(self, request: object, client_address: object, server: CorpusServer) -> None:
        # The variant is read per request, so `use()` switches what the next request sees.
        super().__init__(request, client_address, server, directory=str(server.directory))

    def do_GET(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] == "/sitemap.xml":
            body = self.server.sitemap().encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class CorpusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.variant = "original"
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def directory(self) -> Path:
        return self.corpus.root / self.variant

    @property
    def sitemap_url(self) -> str:
        return f"{self.base_url}/sitemap.xml"

    def current_pages(self) -> list[str]:
        if self.variant == "original":
            return list(self.corpus.pages)
        return [p for p in self.corpus.pages if p not in self.corpus.removed]

    def sitemap(self) -> str:
        return _sitemap(self.base_url, self.current_pages())

    def use(self, variant: str) -> None:
        if variant not in ("original", "edited"):
            raise ValueError(variant)
        self.variant = variant

    def __enter__(self) -> CorpusServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
