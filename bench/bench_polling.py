"""Scenario 6, polling load: `GET …/operations/{id}` from 16 and 64 concurrent clients, 20 s each.

The real stack runs on a scratch FRUXON_HOME. The load generator is wrk (Debian package `wrk`,
one thread, keep-alive connections) on the same 2 cores, against 127.0.0.1 only. Rows:
- a COMPLETED operation (what most polls of a finished job read);
- a RUNNING operation: the poll hits an operation while its run ingests the quick corpus in the
  background (the embedder competes for the same cores).
Every response must be 200; wrk's non-2xx count and socket errors are reported.

Run: `.venv/bin/python bench/bench_polling.py [--quick]`
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from common import (
    TENANT,
    operation_path,
    quick_flag,
    running_stack,
    scratch_home,
    wait_for_operation,
    write_result,
)
from corpus import QUICK_PAGES, CorpusServer, build_corpus

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return round(float(number) * _UNITS[unit], 2)


def wrk(url: str, token: str, connections: int, seconds: int) -> dict:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
        "-H", f"Authorization: Bearer {token}", url,
    ]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)  # fmt: skip
    latency = dict(re.findall(r"^\s+(50|75|90|99)\.?0*%\s+(\S+)\s*$", output, re.MULTILINE))
    return {
        "connections": connections,
        "seconds": seconds,
        "requests": requests,
        "requests_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
    }


def measure(workers: int, seconds: int, corpus, site, with_running: bool) -> list[dict]:
    os.environ["FRUXON_API_WORKERS"] = str(workers)
    rows = []
    with running_stack("polling") as (stack, settings, client):
        from fruxon_api.auth import READ, issue_token

        token = issue_token(settings, tenants=[TENANT], scopes=[READ])
        page = {"urls": [f"{site.base_url}/{corpus.pages[0]}"], "maxDepth": 0}
        created = client.post(
            f"/v1/tenants/{TENANT}/assets",
            json={"config": {"sourceType": "web", "parameters": page}},
        ).json()
        asset_id, operation_id = created["asset"]["id"], created["longOperation"]["name"]
        wait_for_operation(client, asset_id, operation_id)
        url = stack.api_url() + operation_path(asset_id, operation_id)
        for connections in (16, 64):
            row = wrk(url, token, connections, seconds)
            rows.append({"api_workers": workers, "operation": "COMPLETED", **row})
        if not with_running:
            return rows
        sitemap = {"urls": [site.sitemap_url], "maxDepth": 0}
        created = client.post(
            f"/v1/tenants/{TENANT}/assets",
            json={"config": {"sourceType": "web", "parameters": sitemap}},
        ).json()
        asset_id, operation_id = created["asset"]["id"], created["longOperation"]["name"]
        path = operation_path(asset_id, operation_id)
        while client.get(path).json()["status"] != "RUNNING":
            time.sleep(0.1)
        row = wrk(stack.api_url() + path, token, 16, seconds)
        state = client.get(path).json()
        rows.append(
            {"api_workers": workers, "operation": f"RUNNING (then {state['status']})", **row}
        )
        wait_for_operation(client, asset_id, operation_id)
    return rows


def main() -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    seconds = 10 if quick_flag() else 20
    corpus = build_corpus(scratch_home("corpus"), QUICK_PAGES)
    with CorpusServer(corpus) as site:
        rows = measure(1, seconds, corpus, site, with_running=True)
        rows += measure(2, seconds, corpus, site, with_running=False)
    for row in rows:
        print(row)
    write_result("polling", {"rows": rows, "corpus_pages_for_running_row": QUICK_PAGES})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
