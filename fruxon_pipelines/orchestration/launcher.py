"""Dagster's default run launcher, with the health check run monitoring needs to fail a run
whose code server died.

A run worker is the code server's descendant (forked from its fork server, see
run_workers.py, or spawned by it), in its process group. When the code server dies, its workers
die with it (a crashed container, a killed process group), and nobody is left to report the
run: Dagster shows it STARTED, and its operation RUNNING, for ever.
``DefaultRunLauncher`` has no health check, so run monitoring (``run_monitoring`` in
dagster.yaml, every ``poll_interval_seconds``) never looks. This one answers it:

- the worker's process, when it is on this machine (the code server's address is loopback):
  gone, a zombie or a later process with its pid → FAILED; alive → RUNNING;
- otherwise the code server: it lists the run → RUNNING; it does not (it restarted since)
  → FAILED; it has not answered for ``UNREACHABLE_GRACE_SECONDS`` → FAILED.

The daemon then marks the run failed with the reason, and the operation shows it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from dagster import DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

# A code server restarting takes a few seconds; one that stays silent this long is gone.
UNREACHABLE_GRACE_SECONDS = 45.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


def _failed(message: str) -> CheckRunHealthResult:
    return CheckRunHealthResult(WorkerStatus.FAILED, message)


def _process_started_at(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; None when it is gone or a
    zombie. Raises OSError when this machine has no /proc to tell."""
    if not os.path.isdir("/proc/self"):
        raise OSError("no /proc")
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in {"Z", "X"}:
        return None
    with open("/proc/stat") as handle:
        boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


class MonitoredRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus ``check_run_worker_health`` (see the module's doc)."""

    def __init__(self, inst_data: Any = None) -> None:
        super().__init__(inst_data=inst_data)
        self._silent_since: dict[str, float] = {}  # run id → when its code server went quiet

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: Any) -> CheckRunHealthResult:
        grpc_info = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
        if not grpc_info:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched through a server")
        where = grpc_info.get("socket") or f"{grpc_info.get('host')}:{grpc_info.get('port')}"
        local = grpc_info.get("socket") or grpc_info.get("host") in _LOOPBACK
        worker = self._worker_pid(run.run_id) if local else None
        if worker is not None:
            try:
                alive = self._worker_alive(run.run_id, worker)
            except OSError:
                alive = None  # no /proc here: ask the code server
            if alive is True:
                return CheckRunHealthResult(WorkerStatus.RUNNING)
            if alive is False:
                return self._unless_finished(
                    run.run_id,
                    f"its run worker (pid {worker}) is gone: the code server at {where} that ran "
                    "it stopped or lost it",
                )
        return self._ask_code_server(run.run_id, grpc_info, where)

    def _worker_pid(self, run_id: str) -> int | None:
        """The pid the run worker reported when it started ("Started process for run")."""
        from dagster import DagsterEventType

        records = self._instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            metadata = getattr(getattr(event, "event_specific_data", None), "metadata", None)
            pid = (metadata or {}).get("pid")
            if pid is not None:
                return int(getattr(pid, "value", pid))
        return None

    def _worker_alive(self, run_id: str, pid: int) -> bool:
        started = _process_started_at(pid)
        if started is None:
            return False
        record = self._instance.get_run_record_by_id(run_id)
        created = record.create_timestamp.timestamp() if record is not None else 0.0
        # A process older than the run holds a reused pid: the worker itself is gone.
        return started >= created - 5.0

    def _ask_code_server(
        self, run_id: str, grpc_info: dict[str, Any], where: str
    ) -> CheckRunHealthResult:
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._grpc.types import GetCurrentRunsResult
        from dagster._serdes import deserialize_value

        client = DagsterGrpcClient(
            port=grpc_info.get("port"),
            socket=grpc_info.get("socket"),
            host=grpc_info.get("host"),
            use_ssl=bool(grpc_info.get("use_ssl", False)),
        )
        try:
            serialized = client.get_current_runs()
        except Exception:  # noqa: BLE001 — any failure to answer is silence
            silent = time.monotonic() - self._silent_since.setdefault(run_id, time.monotonic())
            if silent < UNREACHABLE_GRACE_SECONDS:
                return CheckRunHealthResult(WorkerStatus.RUNNING, "code server restarting?")
            return self._unless_finished(
                run_id, f"the code server at {where} that ran it is silent for {silent:.0f} s"
            )
        self._silent_since.pop(run_id, None)
        if run_id in deserialize_value(serialized, GetCurrentRunsResult).current_runs:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return self._unless_finished(
            run_id, f"the code server at {where} no longer runs it: it restarted since launching it"
        )

    def _unless_finished(self, run_id: str, message: str) -> CheckRunHealthResult:
        """FAILED with ``message``, unless the worker finished the run just before it ended."""
        self._silent_since.pop(run_id, None)
        run = self._instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        return _failed(message)
