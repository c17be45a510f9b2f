"""The code server starts run workers from a fork server that has imported the definitions,
Dagster's storage and LanceDB's dependencies (fruxon_pipelines/orchestration/run_workers.py);
anywhere else nothing changes. tests/e2e/test_faults.py checks a real stack's run worker is
such a fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys

# As `dagster api grpc` loads the definitions ("server"), or as any other process does
# ("other"): Dagster's server module is imported, then the definitions. Then a run starts the
# way StartRun starts one, through the server's _mp_ctx, with a stand-in for the run that
# reports what it found imported when it began.
LOAD_DEFINITIONS = """
import json, multiprocessing, os, sys
if sys.argv[1] == "server":
    sys.argv[1:] = ["api", "grpc", "-m", "fruxon_pipelines.definitions"]
from dagster._grpc.server import DagsterApiServer
import fruxon_pipelines.definitions
from fruxon_pipelines.orchestration.run_workers import PRELOADED_MODULES

REPORT = '''
import json, os, sys
print(json.dumps({
    "parent": os.getppid(),
    "missing": sorted(set(PRELOADED_MODULES) - set(sys.modules)),
    "lancedb": "lancedb" in sys.modules,
}), flush=True)
'''
server = object.__new__(DagsterApiServer)
server._mp_ctx = multiprocessing.get_context("spawn")  # as DagsterApiServer.__init__ sets it
run = server._mp_ctx.Process(target=exec, args=(REPORT, {"PRELOADED_MODULES": PRELOADED_MODULES}))
run.start()
run.join(60)
print(json.dumps({
    "method": server._mp_ctx.get_start_method(), "pid": os.getpid(), "exitcode": run.exitcode
}), flush=True)
"""


def _load(role: str, **env: str) -> tuple[dict, dict]:
    """(what the run found, what the server saw)"""
    done = subprocess.run(
        [sys.executable, "-c", LOAD_DEFINITIONS, role],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    run, server = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert server["exitcode"] == 0, done.stderr
    return run, server


def test_the_code_server_forks_run_workers_from_a_server_that_imported_what_runs_need():
    run, server = _load("server")
    assert server["method"] == "forkserver"
    assert run["missing"] == []
    assert not run["lancedb"]  # its event loop's thread would not survive the fork
    assert run["parent"] != server["pid"]  # the fork server's child, not the code server's


def test_the_spawn_setting_and_other_processes_keep_dagsters_spawn():
    for role, env in [("server", {"FRUXON_RUN_WORKER_START": "spawn"}), ("other", {})]:
        run, server = _load(role, **env)
        assert server["method"] == "spawn", role
        assert run["missing"] != [], role
        assert run["parent"] == server["pid"], role
