"""What the benchmark scripts share: the stack on a scratch FRUXON_HOME, an API client, the
operation poller, percentiles, peak RSS of a run worker, and the results files.

Each script writes ``bench/results/<name>.json``; ``bench/report.py`` turns them into
``bench/results/latest.md``. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path.insert(0, str(REPO))
TENANT = "bench"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def scratch_home(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"fruxon-{prefix}-"))


@contextmanager
def running_stack(prefix: str) -> Iterator[tuple[Any, Any, Any]]:
    """(stack, settings, httpx client with a read/write token) on a scratch FRUXON_HOME."""
    from fruxon_pipelines.stack import free_port

    os.environ.update(
        FRUXON_HOME=str(scratch_home(prefix)),
        FRUXON_DAGSTER_PORT=str(free_port()),
        FRUXON_API_PORT=str(free_port()),
        FRUXON_CODE_SERVER_PORT=str(free_port()),
        FRUXON_ALLOW_PRIVATE_NETWORKS="1",
        # The benchmarks measure the system, not the per-tenant limiter in front of it.
        FRUXON_SEARCH_RATE_LIMIT_PER_MINUTE="0",
        FRUXON_REFRESH_RATE_LIMIT_PER_MINUTE="0",
    )
    import httpx

    from fruxon_api.auth import READ, WRITE, issue_token
    from fruxon_pipelines.settings import Settings
    from fruxon_pipelines.stack import Stack

    settings = Settings()
    with Stack(settings) as stack:
        stack.wait_until_ready(timeout=300)
        token = issue_token(settings, tenants=[TENANT], scopes=[READ, WRITE])
        client = httpx.Client(
            base_url=stack.api_url(), headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        try:
            yield stack, settings, client
        finally:
            client.close()


def operation_path(asset_id: str, operation_id: str) -> str:
    return f"/v1/tenants/{TENANT}/assets/{asset_id}/operations/{operation_id}"


def wait_for_operation(
    client: Any, asset_id: str, operation_id: str, *, interval: float = 0.1, timeout: float = 3600
) -> dict:
    """Poll until done; the final operation (its startedAt and completedAt time the run)."""
    deadline = time.perf_counter() + timeout
    while True:
        state = client.get(operation_path(asset_id, operation_id)).json()
        if state.get("done"):
            return state
        if time.perf_counter() > deadline:
            raise TimeoutError(f"operation {operation_id} not done after {timeout:.0f} s: {state}")
        time.sleep(interval)


def _is_run_worker(proc: Path) -> bool:
    """A run worker or one of its parse workers (see RunWorkerPeakRss)."""
    cmdline = (proc / "cmdline").read_bytes()
    if b"spawn_main" in cmdline or b"execute_run" in cmdline:
        return True
    if b"multiprocessing.forkserver" not in cmdline:
        return False
    status = (proc / "status").read_text()
    parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
    return b"multiprocessing.forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()


class RunWorkerPeakRss:
    """Peak resident memory of the Dagster run worker processes seen while the block runs.

    The code server forks each run worker from its fork server (orchestration/run_workers.py),
    so a worker's command line is the fork server's (``multiprocessing.forkserver``) and so is
    its parent's; with ``FRUXON_RUN_WORKER_START=spawn`` it runs ``spawn_main``, and
    ``dagster api execute_run`` where a launcher runs the CLI. Their kernel-kept high-water mark
    (VmHWM) is sampled every 0.2 s, so a worker that lives at least that long is caught; the
    forked parse workers are smaller and sampled too. The run workers' fork server, a child of
    the code server, is not counted.
    """

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if not _is_run_worker(proc):
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, ValueError):
                    continue
            self._stop.wait(0.2)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)

    def __enter__(self) -> RunWorkerPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def self_peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def quick_flag(argv: Sequence[str] | None = None) -> bool:
    return "--quick" in (argv if argv is not None else sys.argv[1:])
