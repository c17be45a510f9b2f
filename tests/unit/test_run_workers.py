"""The code server starts run workers from a fork server that has imported the definitions,
Dagster's storage and LanceDB's dependencies (fruxon_pipelines/orchestration/run_workers.py);
anywhere else nothing changes. tests/e2e/test_faults.py checks a real stack's run worker is
such a fork."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

# As `dagster api grpc` loads the definitions ("server"), or as any other process does
# ("other"): Dagster's server module is imported, then the definitions. Then a run starts the
# way StartRun starts one, through the server's _mp_ctx, with a stand-in for the run that
# reports what it found imported when it began.
LOAD_DEFINITIONS = """
import json, multiprocessing, os, sys
from multiprocessing import forkserver
if sys.argv[1] == "server":
    sys.argv[1:] = ["api", "grpc", "-m", "fruxon_pipelines.definitions"]
from dagster._grpc.server import DagsterApiServer
import fruxon_pipelines.definitions
from fruxon_pipelines.orchestration.run_workers import PRELOADED_MODULES
started_early = forkserver._forkserver._forkserver_pid is not None

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
    "method": server._mp_ctx.get_start_method(), "pid": os.getpid(), "exitcode": run.exitcode,
    "started_early": started_early,
}), flush=True)
"""


def _load(role: str, **env: str) -> tuple[dict, dict]:
    """(what the run found, what the server saw)"""
    environment = {k: v for k, v in os.environ.items() if k not in {"FRUXON_RUN_WORKER_START"}}
    environment.pop("DAGSTER_HOME", None)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_DEFINITIONS, role],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **env},
    )
    assert done.returncode == 0, done.stderr
    run, server = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert server["exitcode"] == 0, done.stderr
    return run, server


def test_the_code_server_forks_run_workers_from_a_server_that_imported_what_runs_need(tmp_path):
    shutil.copy(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
    run, server = _load("server", DAGSTER_HOME=str(tmp_path))
    assert server["method"] == "forkserver"
    assert server["started_early"]  # its instance launches runs through the code server
    assert run["missing"] == []
    assert not run["lancedb"]  # its event loop's thread would not survive the fork
    assert run["parent"] != server["pid"]  # the fork server's child, not the code server's


def test_without_an_instance_that_launches_through_it_the_fork_server_waits_for_a_run():
    run, server = _load("server")
    assert server["method"] == "forkserver" and not server["started_early"]
    assert run["missing"] == [] and run["parent"] != server["pid"]


def test_the_spawn_setting_and_other_processes_keep_dagsters_spawn():
    for role, env in [("server", {"FRUXON_RUN_WORKER_START": "spawn"}), ("other", {})]:
        run, server = _load(role, **env)
        assert server["method"] == "spawn", role
        assert not server["started_early"], role
        assert run["missing"] != [], role
        assert run["parent"] == server["pid"], role


def test_dagsters_code_server_starts_runs_through_the_context_replaced():
    """The one private thing this relies on: StartRun makes its run's process with
    self._mp_ctx. (tests/e2e/test_faults.py sees a real run's worker forked.)"""
    from dagster._grpc.server import DagsterApiServer

    assert "self._mp_ctx.Process(" in inspect.getsource(DagsterApiServer.StartRun)


# A worker whose fork server is killed: multiprocessing's own Popen calls it dead at once.
LOSE_THE_FORK_SERVER = """
import json, os, signal, sys, time
from multiprocessing import forkserver
from fruxon_pipelines.orchestration.run_workers import run_worker_context
worker = run_worker_context(preload=[]).Process(target=time.sleep, args=(60,))
worker.start()
os.kill(forkserver._forkserver._forkserver_pid, signal.SIGKILL)
time.sleep(0.5)
# The first to read the dead fork server's pipe: a join with a timeout still returns.
worker.join(0.2)
alive, exitcode = worker.is_alive(), worker.exitcode
worker.join(0.2)  # and again, with that pipe readable for good
alive_after_join = worker.is_alive()
os.kill(worker.pid, signal.SIGKILL)
worker.join(30)
print(json.dumps({"alive": [alive, alive_after_join, worker.is_alive()],
                  "exitcode": [exitcode, worker.exitcode]}), flush=True)
"""


def test_a_worker_outlives_its_fork_server_until_it_ends():
    done = subprocess.run(
        [sys.executable, "-c", LOSE_THE_FORK_SERVER],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"alive": [True, True, False], "exitcode": [None, 255]}
