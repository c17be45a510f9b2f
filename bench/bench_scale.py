"""Scale: how the pipeline's cost grows with the size of a source (scenario 10).

For each size (1,000, 10,000 and 50,000 generated pages; `--quick`: 200 and 1,000) it starts
the real stack on a scratch FRUXON_HOME and serves the pages from 127.0.0.1 with a sitemap
index (10,000 entries a file, each entry with a <lastmod>). It creates a web asset over the
sitemap, embedded by the deterministic hash embedder so that the pipeline is measured and not
the model, then:

- **full ingest**: POST /assets → COMPLETED;
- **no-change refresh**: nothing changed; the sitemap's <lastmod>s are older than the last run,
  so pages are not requested at all (the requests the site saw are counted);
- **1 %-edit refresh**: 1 % of the pages get a new paragraph and a new <lastmod>.

It reports each time and ms per document, the peak RSS of the run workers (and of their parse
workers) over the three runs, and the catalog's and LanceDB's size on disk afterwards.

Goals (issue #20): ms per document at 50,000 within 1.2× of that at 1,000; run worker peak
RSS ≤ 1 GiB at 50,000; a no-change refresh of 50,000 pages in ≤ 2 minutes.

Run: `.venv/bin/python bench/bench_scale.py [--quick] [--sizes 1000,10000]`
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common import REPO, TENANT, RunWorkerPeakRss, running_stack, wait_for_operation, write_result

sys.path.insert(0, str(REPO / "tests" / "support"))
from sitegen import Site, generate_pages, sitemap_index_xml, sitemap_xml  # noqa: E402

BASE = f"/v1/tenants/{TENANT}/assets"
PER_SITEMAP = 10_000
HASH = {"provider": "hash", "model": "hash-384", "chunkSize": 256, "chunkOverlap": 32}
PUBLISHED = "2024-01-01"  # every page's <lastmod> until it is edited


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _publish_sitemaps(site: Site, urls: list[str], lastmod: dict[str, str]) -> str:
    children = []
    for start in range(0, len(urls), PER_SITEMAP):
        path = f"/sitemaps/{start // PER_SITEMAP}.xml"
        part = urls[start : start + PER_SITEMAP]
        site.put(path, sitemap_xml(part, {u: lastmod[u] for u in part}), "application/xml")
        children.append(site.url(path))
    site.put("/sitemap.xml", sitemap_index_xml(children), "application/xml")
    return site.url("/sitemap.xml")


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _timed_refresh(client, asset_id: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(f"{BASE}/{asset_id}:refresh")
    assert response.status_code == 200, response.text
    operation = wait_for_operation(client, asset_id, response.json()["longOperation"]["name"])
    assert operation["status"] == "COMPLETED", operation
    return time.perf_counter() - started, operation


def measure(size: int) -> dict:
    pages = generate_pages(size, links="tree", seed=size)
    del pages["/"]  # the sitemap lists the pages; the index page would be one more document
    with Site(pages) as site, running_stack(f"scale{size}") as (_stack, settings, client):
        urls = [site.url(path) for path in pages]
        lastmod = dict.fromkeys(urls, PUBLISHED)
        start_url = _publish_sitemaps(site, urls, lastmod)
        with RunWorkerPeakRss() as peak:
            started = time.perf_counter()
            created = client.post(
                BASE,
                json={
                    "name": f"{size} pages",
                    "config": {
                        "sourceType": "web",
                        "parameters": {"urls": [start_url], "maxPages": size + 10},
                    },
                    "embedding": HASH,
                },
            )
            assert created.status_code == 200, created.text
            asset_id = created.json()["asset"]["id"]
            full = wait_for_operation(
                client, asset_id, created.json()["longOperation"]["name"], interval=0.5
            )
            full_s = time.perf_counter() - started
            assert full["status"] == "COMPLETED" and full["itemsTotal"] == size, full

            site.clear_log()
            unchanged_s, unchanged = _timed_refresh(client, asset_id)
            unchanged_requests = len(site.requested_paths())
            assert unchanged["tokenCount"] == 0, unchanged

            edited = list(pages)[::100]  # 1 %
            for path in edited:
                site.put(path, pages[path].replace("</h1>", "</h1><p>Revised today.</p>", 1))
                lastmod[site.url(path)] = _stamp()
            time.sleep(1)  # the edits' <lastmod> is before the refresh, by the clock's second
            _publish_sitemaps(site, urls, lastmod)
            site.clear_log()
            edit_s, edit = _timed_refresh(client, asset_id)
            edit_requests = len(site.requested_paths())
        home = settings.resolved_home
        return {
            "pages": size,
            "full_s": round(full_s, 1),
            "full_ms_per_document": round(full_s * 1000 / size, 2),
            "tokens": full["tokenCount"],
            "chunks": full["chunkCount"],
            "unchanged_refresh_s": round(unchanged_s, 1),
            "unchanged_requests": unchanged_requests,
            "edited_pages": len(edited),
            "edit_refresh_s": round(edit_s, 1),
            "edit_requests": edit_requests,
            "edit_tokens": edit["tokenCount"],
            "run_worker_peak_rss_mb": peak.peak_mb,
            "catalog_mb": round(sum(_size_on_disk(p) for p in home.glob("catalog.db*")) / 2**20, 1),
            "lancedb_mb": round(_size_on_disk(Path(settings.vector_uri)) / 2**20, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 pages")
    parser.add_argument("--sizes", help="comma-separated page counts")
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else [1000, 10_000, 50_000]
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        print(f"scale: {size} pages …", flush=True)
        row = measure(size)
        print(row, flush=True)
        rows.append(row)
    smallest, largest = rows[0], rows[-1]
    result = {
        "quick": args.quick,
        "sizes": rows,
        "ms_per_document_ratio": round(
            largest["full_ms_per_document"] / smallest["full_ms_per_document"], 2
        ),
        "embedder": "hash-384 (deterministic, no model)",
    }
    write_result("scale", result)
    print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
