"""Run workers forked from a fork server that has imported fruxon's code, not spawned.

Dagster's code server (``dagster api grpc``, a ``DagsterApiServer``) starts each run in a new
process by multiprocessing's *spawn*: a fresh interpreter that imports Dagster, these
definitions, Dagster's storage and LanceDB before the run can start. On 2 cores that was most
of a launch, and ~3 CPU-seconds of every run besides, which its embedder on the same cores paid
for.

Here the code server starts run workers from a multiprocessing *fork server* instead: a process
started from the code server, that imports all that once; each run is then a fork of it.
bench/bench_launch.py, 10 runs each, alternately: POST /assets → RUNNING median 0.84 s against
2.72 s spawned, → COMPLETED 3.04 s against 5.48 s. A fork of the code server itself would not
do: it has threads (gRPC's, the heartbeat), and a child inherits every lock one of them holds at
that instant, for good (``fruxon_pipelines.parsing.workers`` says the same of parse workers).
The fork server has no thread of Python's; numpy's OpenBLAS and pyarrow's jemalloc each start
an idle native one on import, and both libraries make fork safe with their own at-fork handlers
(the parse workers' fork server has had OpenBLAS's all along).

Nothing else about a run changes: the worker is still the code server's (its descendant, in its
process group), Dagster's ``StartRun`` still watches it and hands it the termination event, and
``MonitoredRunLauncher`` checks its pid as before. What it inherits is the fork server's
environment, which is the code server's as it loaded the definitions.

Dagster has no setting for this; ``DagsterApiServer`` keeps its multiprocessing context in the
private ``_mp_ctx``. Should a Dagster release stop using that attribute, runs are spawned as
before (slower, nothing else), and tests/e2e/test_faults.py, which finds a real run's
worker's parent, fails to say so.
``FRUXON_RUN_WORKER_START=spawn`` turns this off.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
from multiprocessing.context import BaseContext

# What a run imports before its first step, imported once in the fork server:
# - the definitions;
# - Dagster's storage (with alembic): the run opens the instance before its first event, and
#   that took 0.58 s, 0.08 s once these were imported;
# - what LanceDB imports (1.0 of its 1.2 s), but not lancedb itself: importing it starts its
#   event loop's thread, which a fork would leave dead in the child (LanceDB then restarts it
#   and warns that its fork support is experimental). The run imports the rest in 0.2 s.
# A module that cannot be imported is skipped by multiprocessing: the run imports it itself.
PRELOADED_MODULES = (
    "fruxon_pipelines.definitions",
    "dagster._core.storage.sqlite_storage",
    "lance_namespace",
    "pyarrow.dataset",
)

_log = logging.getLogger("fruxon.run_workers")


def run_worker_context() -> BaseContext:
    """The fork server's context, with the modules its run workers need preloaded."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOADED_MODULES))
    return context


def in_code_server() -> bool:
    """This process is ``dagster api grpc``: what ``dagster code-server start`` runs behind its
    proxy, and what the Kubernetes deployment runs. Not the fork server (``python -c``), nor
    its run workers, nor a test or a run that imports the definitions."""
    return sys.argv[1:3] == ["api", "grpc"] and "dagster._grpc.server" in sys.modules


def fork_run_workers_in_code_server(start_method: str) -> bool:
    """In the code server, as it loads the definitions: start run workers from a preloaded
    fork server. Returns whether it did; anywhere else it does nothing.

    The fork server starts with the first run, or at once (off the loading thread, so the
    first run does not wait for it) where this code server's Dagster instance launches runs
    through it, as the embedded stack's does. A code server whose runs launch elsewhere
    (K8sRunLauncher: a Job each) never starts one."""
    if start_method != "forkserver" or not in_code_server():
        return False
    server_class = getattr(sys.modules["dagster._grpc.server"], "DagsterApiServer", None)
    if server_class is None or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    context = run_worker_context()
    # A data descriptor on the class wins over the "spawn" context __init__ stored on the
    # server instance, whether that instance was built before this import or after it.
    server_class._mp_ctx = property(lambda _server: context, lambda _server, _value: None)
    threading.Thread(target=_start_early, name="fruxon-run-fork-server", daemon=True).start()
    return True


def launches_runs_here(dagster_home: str | None) -> bool:
    """Whether the Dagster instance in ``dagster_home`` launches runs through the code server:
    with Dagster's default run launcher or a subclass (fruxon's MonitoredRunLauncher)."""
    if not dagster_home:
        return False
    import importlib

    from dagster import DefaultRunLauncher
    from dagster._core.instance.ref import InstanceRef

    launcher = InstanceRef.from_dir(dagster_home).run_launcher_data
    if launcher is None:
        return True
    launcher_class = getattr(importlib.import_module(launcher.module_name), launcher.class_name)
    return issubclass(launcher_class, DefaultRunLauncher)


def _start_early() -> None:
    from multiprocessing import forkserver

    try:
        if launches_runs_here(os.environ.get("DAGSTER_HOME")):
            forkserver.ensure_running()
    except Exception:  # the first run starts it, and fails with the reason if it must
        _log.warning("could not start the run workers' fork server early", exc_info=True)
