"""Freshness: edit a page, POST the asset's webhook, wait until a search returns the new text.

Starts the real stack (webserver, daemon with its sensors, API) on a scratch FRUXON_HOME,
ingests a 20-page site from 127.0.0.1 with webhook auto-update, then N times: edits one page,
POSTs `{"urls": [page]}` to the webhook URL and polls a FULL_TEXT search every 100 ms until a
hit holds the new sentence. A random pause (0-5 s, seeded) comes before each edit, so the
deliveries land at every phase of the daemon's loops. Also splits the time into its phases:
delivery → operation written (the API's launch, or the sensor's) → RUNNING → COMPLETED →
searchable.

Run: `.venv/bin/python bench/bench_freshness.py [--quick]`
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from common import (
    REPO,
    TENANT,
    median,
    percentile,
    running_stack,
    wait_for_operation,
    write_result,
)

sys.path.insert(0, str(REPO / "tests" / "support"))
from sitegen import Site, generate_pages  # noqa: E402

BASE = f"/v1/tenants/{TENANT}/assets"


def _webhook_operations(client, asset_id: str) -> dict[str, dict]:
    items = client.get(f"{BASE}/{asset_id}/operations", params={"PageSize": 500}).json()["items"]
    return {o["id"]: o for o in items if o["type"] == "WEBHOOK"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="3 edits instead of 10")
    parser.add_argument("--edits", type=int, default=None)
    args = parser.parse_args()
    edits = args.edits or (3 if args.quick else 10)
    rng = random.Random(7)
    pages = generate_pages(20, links="all", seed=3)
    rows = []
    with Site(pages) as site, running_stack("freshness") as (_stack, settings, client):
        created = client.post(
            BASE,
            json={
                "name": "freshness site",
                "config": {
                    "sourceType": "web",
                    "parameters": {"urls": [site.url("/")], "maxDepth": 1},
                },
                "autoUpdate": {"strategy": "WEBHOOK"},
            },
        ).json()
        asset_id, url = created["asset"]["id"], created["webhook"]["webhookUrl"]
        wait_for_operation(client, asset_id, created["longOperation"]["name"])
        for n in range(edits):
            time.sleep(rng.uniform(0, 5))
            path = f"/page-{n % 20}.html"
            marker = f"freshmark{n}q{rng.randrange(10**6)}"
            site.put(path, pages[path].replace("</h1>", f"</h1><p>The {marker} is new.</p>", 1))
            seen = set(_webhook_operations(client, asset_id))
            started = time.perf_counter()
            response = client.post(url, json={"urls": [site.url(path)]})
            assert response.status_code == 202, response.text
            written = running = completed = None
            operation_id = None
            while True:
                now = time.perf_counter() - started
                if operation_id is None:
                    new = set(_webhook_operations(client, asset_id)) - seen
                    if new:
                        operation_id, written = new.pop(), now
                if operation_id is not None and completed is None:
                    state = client.get(f"{BASE}/{asset_id}/operations/{operation_id}").json()
                    if running is None and state["status"] != "PENDING":
                        running = now
                    if state["done"]:
                        completed = now
                hits = client.post(
                    f"{BASE}/{asset_id}:search",
                    json={"query": marker, "searchMode": "FULL_TEXT", "topK": 3},
                ).json()["results"]
                if any(marker in h["content"] for h in hits):
                    searchable = time.perf_counter() - started
                    break
                if now > 120:
                    raise TimeoutError(f"edit {n} not searchable after 120 s")
                time.sleep(0.1)
            while completed is None and operation_id is not None:
                state = client.get(f"{BASE}/{asset_id}/operations/{operation_id}").json()
                if state["done"]:
                    completed = time.perf_counter() - started
                else:
                    time.sleep(0.1)
            row = {
                "edit": n,
                "searchable_s": round(searchable, 2),
                "operation_written_s": written and round(written, 2),
                "running_s": running and round(running, 2),
                "completed_s": completed and round(completed, 2),
            }
            rows.append(row)
            print(row, flush=True)
    times = [r["searchable_s"] for r in rows]
    phases = {
        key: median([r[key] for r in rows if r[key] is not None])
        for key in ("operation_written_s", "running_s", "completed_s")
    }
    result = {
        "edits": edits,
        "median_s": round(median(times), 2),
        "min_s": min(times),
        "p90_s": percentile(times, 90),
        "max_s": max(times),
        "phase_medians_s": {k: round(v, 2) for k, v in phases.items()},
        "sensor_interval_s": settings.webhook_sensor_interval_seconds,
        "debounce_s": settings.webhook_debounce_seconds,
        "rows": rows,
    }
    write_result("freshness", result)
    print(
        f"freshness: median {result['median_s']} s (min {result['min_s']}, max {result['max_s']})"
        f" over {edits} edits; phases {result['phase_medians_s']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
