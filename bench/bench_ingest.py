"""Ingestion of a real documentation site: one full ingest and one no-change refresh.

The site is Debian's Python 3.11 documentation (`apt-get install python3-doc`) served from
127.0.0.1 by a plain `http.server` (which answers If-Modified-Since with 304). The crawl starts
at the tutorial, FAQ, using, extending, installing, distributing, reference and C API indexes,
one link hop deep, at most 60 pages. Runs materialize the real graph with the real model into
a temporary FRUXON_HOME, through a temporary Dagster instance.

Run: `.venv/bin/python bench/bench_ingest.py [--max-pages 60]`
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import threading
import time
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DOCS = Path("/usr/share/doc/python3.11/html")
SECTIONS = [
    "tutorial",
    "faq",
    "using",
    "extending",
    "installing",
    "distributing",
    "reference",
    "c-api",
]


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-pages", type=int, default=60)
    args = parser.parse_args()
    if not DOCS.is_dir():
        print(f"skipped: {DOCS} is missing (apt-get install python3-doc)")
        return 0

    import dagster as dg

    from fruxon_pipelines.definitions import INGESTION_ASSETS, INGESTION_CHECKS
    from fruxon_pipelines.launcher import ingest_run_config
    from fruxon_pipelines.partitions import KNOWLEDGE_ASSET_PARTITIONS
    from fruxon_pipelines.resources import _catalog, build_resources
    from fruxon_pipelines.settings import Settings
    from fruxon_pipelines.tags import OPERATION_TAG

    server, base = serve(DOCS)
    home = Path(tempfile.mkdtemp(prefix="fruxon-bench-"))
    settings = Settings(home=home, allow_private_networks=True)
    catalog = _catalog(settings.catalog_url)
    asset = catalog.create_asset(
        tenant="bench",
        name="python docs",
        source_type="web",
        source_config={
            "urls": [f"{base}/{s}/index.html" for s in SECTIONS],
            "maxDepth": 1,
            "maxPages": args.max_pages,
            "includePatterns": [f"{base}/{s}/*" for s in SECTIONS],
        },
        embedding_config={
            "provider": "local",
            "model": "all-MiniLM-L6-v2",
            "chunkSize": 256,
            "chunkOverlap": 32,
        },
    )
    rows = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(KNOWLEDGE_ASSET_PARTITIONS, [asset.id])
        resources = build_resources(settings)
        for label in ("full ingest", "no-change refresh"):
            operation_id = str(uuid.uuid4())
            started = time.perf_counter()
            result = dg.materialize(
                [*INGESTION_ASSETS, *INGESTION_CHECKS],
                partition_key=asset.id,
                instance=instance,
                resources=resources,
                run_config=ingest_run_config(),
                tags={OPERATION_TAG: operation_id},
            )
            seconds = time.perf_counter() - started
            meta = {}
            for event in result.get_asset_materialization_events():
                meta.update({k: v.value for k, v in event.materialization.metadata.items()})
            rows.append(
                {
                    "run": label,
                    "pages": meta["listed"],
                    "fetched_200": meta["fetched"],
                    "not_modified_304": meta["unchanged"],
                    "chunks": meta["chunks"],
                    "chunks_embedded": meta["chunks_embedded"],
                    "tokens_embedded": meta["tokens_embedded"],
                    "seconds": round(seconds, 1),
                    "tokens_per_s": round(meta["tokens_embedded"] / seconds) if seconds else 0,
                }
            )
    server.shutdown()
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    full, refresh = rows
    print(f"refresh/full time ratio: {refresh['seconds'] / full['seconds']:.3f}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
