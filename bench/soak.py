"""Soak: sustained polling and searching against the real stack while it ingests, for 30 minutes.

One asset (a generated site of ``--pages`` pages, the real MiniLM model) is ingested again and
again — each operation a forced full refresh — for the whole run, while client threads:

- poll the running operation and the asset (as a UI would, every 0.1 s each);
- list the asset's documents page by page;
- search a second, already indexed asset in every mode, and the ingesting one.

Every answer is counted; an error is any 5xx, any transport failure, or a 4xx other than the
429 "another operation is running" a refresh may meet. The resident memory of each stack
process (with its children: the code server's run workers included) is sampled every 5 s.
After a warm-up (``--warmup``, default 120 s), the API's and the daemon's memory may not grow by
more than 5 % to the end (issue #20).

Run: `make soak` or `.venv/bin/python bench/soak.py [--duration 1800] [--pages 150]`.
Writes bench/results/soak.json; exits 1 when there were errors or memory grew.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from common import REPO, TENANT, operation_path, percentile, running_stack, write_result

MODEL = {"provider": "local", "model": "all-MiniLM-L6-v2", "chunkSize": 128, "chunkOverlap": 16}
QUERIES = ["lighthouse keeper", "how to configure", "release notes", "error handling", "index"]
MAX_GROWTH = 0.05


def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (0 once it is gone)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_kind: Counter[str] = Counter()
        self.errors: list[str] = []
        self.latencies: dict[str, list[float]] = {}

    def record(self, kind: str, started: float, status: int | None, detail: str = "") -> None:
        elapsed = time.perf_counter() - started
        with self.lock:
            self.by_kind[kind] += 1
            self.latencies.setdefault(kind, []).append(elapsed)
            if status is None or status >= 500 or (status >= 400 and status != 429):
                self.errors.append(f"{kind}: {status} {detail[:200]}")


def _summary(result: dict) -> str:
    """The figures a reader wants from the JSON, as the markdown kept in the repository."""
    import datetime
    import platform

    growth = ", ".join(
        f"{name} {value:+.1%}" for name, value in result["memory_growth_after_warmup"].items()
    )
    lines = [
        "# fruxon soak: latest result",
        "",
        f"Written by `make soak` on {datetime.date.today().isoformat()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}): "
        f"{result['duration_s']:.0f} s of polling and searching while one asset of "
        f"{result['pages']} pages was ingested again and again (the real model).",
        "",
        f"- Requests served: **{result['requests']:,}**; errors: **{result['errors']}**; "
        f"ingests started: {result['ingests_started']}.",
        f"- Memory growth after the {result['warmup_s']:.0f} s warm-up: {growth}.",
        "",
        "| requests | count | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for kind, count in sorted(result["requests_per_kind"].items()):
        latency = result["latency_ms"][kind]
        lines.append(f"| {kind} | {count:,} | {latency['p50']} | {latency['p99']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=1800)
    parser.add_argument("--warmup", type=float, default=120)
    parser.add_argument("--pages", type=int, default=150)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests" / "support"))
    from sitegen import Site, generate_pages

    tally = Tally()
    stop = threading.Event()
    with Site() as site, running_stack("soak") as (stack, _settings, client):
        site.put_pages(generate_pages(args.pages, links="all", seed=1))
        assets = f"/v1/tenants/{TENANT}/assets"

        def create(urls: list[str], depth: int) -> tuple[str, str]:
            body = {
                "config": {"sourceType": "web", "parameters": {"urls": urls, "maxDepth": depth}},
                "embedding": MODEL,
            }
            created = client.post(assets, json=body).json()
            return created["asset"]["id"], created["longOperation"]["name"]

        # The searched asset, indexed before the clock starts.
        searched, first = create([site.url("/page-0.html"), site.url("/page-1.html")], 0)
        while not client.get(operation_path(searched, first)).json()["done"]:
            time.sleep(0.2)
        ingesting, operation = create([site.url("/")], 1)
        current = {"operation": operation, "ingests": 1}

        def keep_ingesting() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                state = client.get(operation_path(ingesting, current["operation"]))
                tally.record("poll operation", started, state.status_code, state.text)
                if state.status_code == 200 and state.json()["done"]:
                    if state.json()["status"] != "COMPLETED":
                        tally.errors.append(f"ingest ended {state.json()['status']}")
                    started = time.perf_counter()
                    again = client.post(f"{assets}/{ingesting}:refresh", json={"force": True})
                    tally.record("refresh", started, again.status_code, again.text)
                    if again.status_code == 200:
                        current["operation"] = again.json()["longOperation"]["name"]
                        current["ingests"] += 1
                stop.wait(0.1)

        def poll_asset() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = client.get(f"{assets}/{ingesting}")
                tally.record("get asset", started, response.status_code, response.text)
                stop.wait(0.1)

        def list_documents() -> None:
            while not stop.is_set():
                token = None
                while not stop.is_set():
                    started = time.perf_counter()
                    params = {"pageSize": 25, **({"pageToken": token} if token else {})}
                    response = client.get(f"{assets}/{ingesting}/documents", params=params)
                    # 404 until the first ingest of the asset completes, by contract.
                    ok = response.status_code if response.status_code != 404 else 200
                    tally.record("list documents", started, ok, response.text)
                    if response.status_code != 200:
                        break
                    token = response.json().get("nextPageToken")
                    if not token:
                        break
                stop.wait(0.5)

        def search(asset_id: str, kind: str) -> None:
            rng = random.Random(kind)
            while not stop.is_set():
                body = {
                    "query": rng.choice(QUERIES),
                    "topK": 5,
                    "searchMode": rng.choice(["VECTOR", "FULL_TEXT", "HYBRID"]),
                }
                started = time.perf_counter()
                response = client.post(f"{assets}/{asset_id}:search", json=body)
                tally.record(kind, started, response.status_code, response.text)
                stop.wait(0.2)

        processes = {name: process.pid for name, process in stack.processes}
        samples: list[dict[str, float]] = []
        threads = [
            threading.Thread(target=keep_ingesting),
            threading.Thread(target=poll_asset),
            threading.Thread(target=list_documents),
            threading.Thread(target=search, args=(searched, "search indexed asset")),
            threading.Thread(target=search, args=(ingesting, "search ingesting asset")),
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        try:
            while time.perf_counter() - began < args.duration:
                at = time.perf_counter() - began
                sample = {"t": round(at, 1)}
                sample.update({n: round(_rss_kb(p) / 1024, 1) for n, p in processes.items()})
                samples.append(sample)
                elapsed = time.perf_counter() - began
                if int(at) % 60 < 5:
                    print(
                        f"[{elapsed:5.0f} s] requests {sum(tally.by_kind.values())}, "
                        f"errors {len(tally.errors)}, ingests {current['ingests']}, "
                        + ", ".join(f"{n} {sample[n]} MB" for n in processes),
                        flush=True,
                    )
                time.sleep(5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()

    after_warmup = [s for s in samples if s["t"] >= args.warmup]
    growth = {}
    for name in processes:
        series = [s[name] for s in after_warmup]
        if len(series) >= 2 and series[0] > 0:
            # The last minute's median against the first sample after warm-up: one run
            # worker starting at the very end must not read as growth.
            tail = sorted(series[-12:])[len(series[-12:]) // 2]
            growth[name] = round((tail - series[0]) / series[0], 3)
    requests = sum(tally.by_kind.values())
    result = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "pages": args.pages,
        "requests": requests,
        "requests_per_kind": dict(tally.by_kind),
        "errors": len(tally.errors),
        "error_examples": tally.errors[:20],
        "ingests_started": current["ingests"],
        "latency_ms": {
            kind: {
                "p50": round(percentile(v, 50) * 1000, 1),
                "p99": round(percentile(v, 99) * 1000, 1),
            }
            for kind, v in tally.latencies.items()
        },
        "memory_growth_after_warmup": growth,
        "memory_samples_mb": samples,
    }
    path = write_result("soak", result)
    (path.parent / "soak.md").write_text(_summary(result))
    print(
        f"soak: {requests} requests in {args.duration:.0f} s, {len(tally.errors)} errors, "
        f"{current['ingests']} ingests; memory growth after warm-up {growth} → {path}"
    )
    flat = all(growth.get(n, 0) <= MAX_GROWTH for n in ("fruxon-api", "dagster-daemon"))
    return 0 if not tally.errors and flat else 1


if __name__ == "__main__":
    raise SystemExit(main())
