"""Run-launch overhead as API users feel it: `POST /assets` returning → operation RUNNING.

Starts the real stack (Dagster webserver + daemon + API) on a temporary FRUXON_HOME, serves a
one-page site from 127.0.0.1, creates N web assets one after another and polls each new
operation every 50 ms until it leaves PENDING. Also reports the time to COMPLETED.

Run: `.venv/bin/python bench/bench_launch.py [--runs 10]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAGE = (
    b"<html><head><title>Bench</title></head><body><main><h1>Bench page</h1>"
    + (b"<p>Launch overhead is what a user waits before anything happens.</p>" * 5)
    + b"</main></body></html>"
)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path != "/":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 10")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 10)

    from fruxon_pipelines.stack import free_port

    os.environ.update(
        FRUXON_HOME=tempfile.mkdtemp(prefix="fruxon-launch-"),
        FRUXON_DAGSTER_PORT=str(free_port()),
        FRUXON_API_PORT=str(free_port()),
        FRUXON_CODE_SERVER_PORT=str(free_port()),
        FRUXON_ALLOW_PRIVATE_NETWORKS="1",
    )
    import httpx

    from fruxon_api.auth import READ, WRITE, issue_token
    from fruxon_pipelines.settings import Settings
    from fruxon_pipelines.stack import Stack

    site = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{site.server_address[1]}/"
    settings = Settings()
    to_running, to_done = [], []
    with Stack(settings) as stack:
        stack.wait_until_ready(timeout=240)
        token = issue_token(settings, tenants=["bench"], scopes=[READ, WRITE])
        client = httpx.Client(
            base_url=stack.api_url(), headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        for _ in range(args.runs):
            body = {
                "config": {"sourceType": "web", "parameters": {"urls": [url]}},
                "embedding": {"provider": "local", "model": "all-MiniLM-L6-v2"},
            }
            created = client.post("/v1/tenants/bench/assets", json=body).json()
            returned = time.perf_counter()
            asset, operation = created["asset"]["id"], created["longOperation"]["name"]
            poll = f"/v1/tenants/bench/assets/{asset}/operations/{operation}"
            running_at = None
            while True:
                state = client.get(poll).json()
                now = time.perf_counter()
                if running_at is None and state["status"] != "PENDING":
                    running_at = now
                if state["done"]:
                    break
                time.sleep(0.05)
            to_running.append(running_at - returned)
            to_done.append(now - returned)
    site.shutdown()
    rows = {
        "runs": args.runs,
        "to_running_median_s": round(statistics.median(to_running), 2),
        "to_running_min_s": round(min(to_running), 2),
        "to_running_max_s": round(max(to_running), 2),
        "to_completed_median_s": round(statistics.median(to_done), 2),
    }
    for key, value in rows.items():
        print(f"{key:>24}: {value}")
    ratio = rows["to_running_median_s"] / rows["to_completed_median_s"]
    print(f"{'running/completed ratio':>24}: {ratio:.2f}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "launch.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
