"""HTML main-content extractors on real pages: speed and how much page furniture they keep.

Corpus: Debian's Python 3.11 documentation (``apt-get install python3-doc``), every 5th page of the
sorted list without the generated ``genindex*`` link lists: about 100 Sphinx pages with a
navigation bar at top and bottom, a sidebar, a footer and script tags around ``div[role=main]``.

Quality proxy, per page, on lower-cased word tokens (multisets, so counts matter):

- reference = the text of ``div[role=main]`` (what a reader would call the page);
- furniture = every other token of the page (nav bars, sidebar, footer, <title>, scripts),
  minus the reference, so a word counts as furniture only beyond its count in the main text;
- recall = share of the reference tokens found in the output;
- leak = share of the output tokens that can only have come from the furniture;
- nav/footer pages = share of pages whose output contains a phrase that occurs in the page's
  nav, sidebar or footer but not in its main text ("Previous topic", "Show Source", ...).

Speed: time per page after three untimed warm-up pages, excluding imports, one process.

The reference is ``role=main``, so an extractor that simply looks for that landmark scores well
by construction. A second pass therefore runs the main-content extractors on the same pages with
the landmarks removed (``role`` attributes dropped; main, article, nav, header, footer and aside
renamed to div), as on the many sites built from anonymous divs; the reference stays the original
``role=main`` text.

Run: ``.venv/bin/python bench/bench_html_extractors.py [--step 5] [--limit N] [--only NAME]``.
Figures are also written to bench/results/html_extractors.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DOCS = Path("/usr/share/doc/python3.11/html")
TOKEN_RE = re.compile(r"[^\W_]+")
# Text that the Sphinx page furniture contains; counted as a leak only where the main text of
# that page does not contain it too.
SENTINELS = (
    "Previous topic",
    "Next topic",
    "Report a Bug",
    "Show Source",
    "Created using Sphinx",
    "Found a bug?",
    "This page is licensed under",
    "Please donate",
)

Extractor = Callable[[bytes], str]


def _tokens(text: str) -> Counter[str]:
    return Counter(TOKEN_RE.findall(text.lower()))


def _norm(text: str) -> str:
    return " ".join(text.split())


def extractors() -> dict[str, tuple[str, Callable[[], Extractor]]]:
    """name → (description, factory); the factory imports the library, outside the timing."""

    def trafilatura_md_fruxon() -> Extractor:
        from fruxon_pipelines.parsing import parse_document

        def run(data: bytes) -> str:
            return "\n\n".join(e.text for e in parse_document(data, "text/html"))

        return run

    def trafilatura_md_raw() -> Extractor:
        import trafilatura

        def run(data: bytes) -> str:
            return trafilatura.extract(data, output_format="markdown", include_tables=True) or ""

        return run

    def trafilatura_md_fast() -> Extractor:
        import trafilatura

        def run(data: bytes) -> str:
            out = trafilatura.extract(
                data, output_format="markdown", include_tables=True, fast=True
            )
            return out or ""

        return run

    def trafilatura_txt() -> Extractor:
        import trafilatura

        def run(data: bytes) -> str:
            return trafilatura.extract(data, output_format="txt", include_tables=True) or ""

        return run

    def unstructured_html() -> Extractor:
        from fruxon_pipelines.parsing.partitioning import prepare_unstructured

        prepare_unstructured()  # offline patch + telemetry off, as in production
        from unstructured.partition.html import partition_html

        def run(data: bytes) -> str:
            return "\n\n".join(e.text for e in partition_html(text=data.decode("utf-8")))

        return run

    def lxml_main_heuristic() -> Extractor:
        from fruxon_pipelines.parsing import html_fallback_elements

        def run(data: bytes) -> str:
            return "\n\n".join(e.text for e in html_fallback_elements(data))

        return run

    def bs4_whole_page() -> Extractor:
        from bs4 import BeautifulSoup

        def run(data: bytes) -> str:
            return BeautifulSoup(data, "lxml").get_text(" ", strip=True)

        return run

    def lxml_whole_page() -> Extractor:
        import lxml.html

        def run(data: bytes) -> str:
            return lxml.html.fromstring(data).text_content()

        return run

    return {
        "trafilatura-md+fruxon": (
            "parse_document(text/html): trafilatura markdown + fruxon splitter",
            trafilatura_md_fruxon,
        ),
        "trafilatura-md": ("trafilatura.extract markdown, tables (raw output)", trafilatura_md_raw),
        "trafilatura-md-fast": (
            "same with fast=True (no fallback extractors)",
            trafilatura_md_fast,
        ),
        "trafilatura-txt": ("trafilatura.extract txt, tables", trafilatura_txt),
        "unstructured": ("unstructured partition_html, blank spaCy", unstructured_html),
        "lxml-main": (
            "fruxon lxml fallback: drop nav/header/footer, scope to main",
            lxml_main_heuristic,
        ),
        "bs4-page": ("BeautifulSoup(lxml).get_text, whole page (baseline)", bs4_whole_page),
        "lxml-page": ("lxml text_content, whole page (baseline)", lxml_whole_page),
    }


def corpus(step: int, limit: int | None) -> list[Path]:
    pages = sorted(p for p in DOCS.rglob("*.html") if not p.name.startswith("genindex"))
    pages = pages[::step]
    return pages[:limit] if limit else pages


def reference(data: bytes) -> tuple[Counter[str], Counter[str], str, str]:
    """(main tokens, furniture tokens, main text, furniture text) of one Sphinx page."""
    import lxml.html

    root = lxml.html.fromstring(data)
    main = root.xpath("//div[@role='main']") or root.xpath("//div[contains(@class, 'body')]")
    main_text = main[0].text_content() if main else ""
    whole = root.text_content()
    main_tokens = _tokens(main_text)
    return main_tokens, _tokens(whole) - main_tokens, _norm(main_text), _norm(whole)


LANDMARK_TAGS = frozenset({"main", "article", "nav", "header", "footer", "aside"})
# The extractors that claim to find the main content; the whole-page baselines are left out.
LANDMARK_FREE_EXTRACTORS = ("trafilatura-md+fruxon", "trafilatura-md", "lxml-main")


def strip_landmarks(data: bytes) -> bytes:
    """The page with its semantic landmarks gone: same text, same classes and ids."""
    import lxml.html

    root = lxml.html.document_fromstring(data)
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        el.attrib.pop("role", None)
        if el.tag in LANDMARK_TAGS:
            el.tag = "div"
    return lxml.html.tostring(root, encoding="utf-8")


def measure(
    name: str,
    factory: Callable[[], Extractor],
    pages: list[Path],
    transform: Callable[[bytes], bytes] | None = None,
) -> dict[str, object]:
    run = factory()
    for page in pages[:3]:  # warm-up: first-call set-up and cold caches are not per-page cost
        run(transform(page.read_bytes()) if transform else page.read_bytes())
    gc.collect()
    times: list[float] = []
    recalls: list[float] = []
    out_total = main_total = found_total = leak_total = 0
    leaky_pages = 0
    empty_pages = 0
    for page in pages:
        data = page.read_bytes()
        given = transform(data) if transform else data
        start = time.perf_counter()
        try:
            text = run(given)
        except Exception as exc:  # a failing extractor scores an empty page, and says so
            print(f"  {name}: {page.relative_to(DOCS)}: {type(exc).__name__}: {exc}")
            text = ""
        times.append(time.perf_counter() - start)
        main, furniture, main_text, whole_text = reference(data)
        out = _tokens(text)
        found = sum((out & main).values())
        leak = sum(((out - main) & furniture).values())
        out_total += sum(out.values())
        main_total += sum(main.values())
        found_total += found
        leak_total += leak
        if main:
            recalls.append(found / sum(main.values()))
        if not text.strip():
            empty_pages += 1
        flat = _norm(text)
        if any(s in whole_text and s not in main_text and s in flat for s in SENTINELS):
            leaky_pages += 1
    total = sum(times)
    return {
        "name": name,
        "pages": len(pages),
        "seconds": total,
        "pages_per_s": len(pages) / total,
        "median_ms": statistics.median(times) * 1000,
        "max_ms": max(times) * 1000,
        "recall": found_total / main_total,
        "median_page_recall": statistics.median(recalls),
        "leak": leak_total / out_total if out_total else 0.0,
        "nav_footer_pages": leaky_pages / len(pages),
        "empty_pages": empty_pages,
        "output_tokens": out_total,
    }


def print_table(title: str, results: list[dict[str, object]]) -> None:
    if not results:
        return
    header = (
        f"{'extractor':24} {'pages/s':>8} {'median ms':>10} {'max ms':>8} {'recall':>7} "
        f"{'leak':>6} {'nav/footer pages':>17} {'empty':>6}"
    )
    print(f"\n{title}\n{header}\n{'-' * len(header)}")
    for r in results:
        print(
            f"{r['name']:24} {r['pages_per_s']:8.1f} {r['median_ms']:10.1f} {r['max_ms']:8.0f} "
            f"{r['recall']:7.1%} {r['leak']:6.1%} {r['nav_footer_pages']:17.0%} "
            f"{r['empty_pages']:6d}"
        )
    base = next((r for r in results if r["name"] == "trafilatura-md+fruxon"), None)
    if base is not None:
        ratios = ", ".join(
            f"{r['name']} {r['pages_per_s'] / base['pages_per_s']:.2f}x" for r in results
        )
        print(f"speed relative to trafilatura-md+fruxon: {ratios}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=5, help="take every Nth page (default 5)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pages")
    parser.add_argument("--only", action="append", help="run only these extractors (repeatable)")
    parser.add_argument(
        "--no-landmark-pass", action="store_true", help="skip the landmark-free second pass"
    )
    args = parser.parse_args()

    if not DOCS.is_dir():
        print(
            f"SKIP: {DOCS} not found. Install the corpus with "
            "`apt-get update && apt-get install -y python3-doc` (Debian/Ubuntu) and re-run."
        )
        return 0
    pages = corpus(args.step, args.limit)
    size_mb = sum(p.stat().st_size for p in pages) / 1e6
    print(f"corpus: {len(pages)} pages, {size_mb:.1f} MB of HTML from {DOCS}\n")

    results = []
    for name, (description, factory) in extractors().items():
        if args.only and name not in args.only:
            continue
        print(f"running {name}: {description}", flush=True)
        results.append(measure(name, factory, pages))
    print_table("as published", results)

    stripped = []
    if not args.no_landmark_pass:
        for name, (_description, factory) in extractors().items():
            if name not in LANDMARK_FREE_EXTRACTORS or (args.only and name not in args.only):
                continue
            print(f"running {name} on landmark-free pages", flush=True)
            stripped.append(measure(name, factory, pages, transform=strip_landmarks))
        print_table(
            "landmarks removed (no main/article/nav/header/footer/aside, no role=)", stripped
        )

    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "html_extractors.json").write_text(
        json.dumps({"as_published": results, "landmarks_removed": stripped}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
