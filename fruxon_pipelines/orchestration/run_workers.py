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
environment, which is the code server's as it loaded the definitions. Should the fork server
itself be killed, its workers' liveness comes from their own pidfds (``_RunWorkerPopen``), so
runs under way are not reported failed while they go on.

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
import time
from collections.abc import Sequence
from multiprocessing import connection, forkserver, popen_forkserver, util
from multiprocessing.context import BaseContext, ForkServerContext, ForkServerProcess
from typing import Any

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

# Run launchers that start runs through the code server's StartRun, known without importing.
LAUNCHERS_THROUGH_CODE_SERVER = {
    ("dagster", "DefaultRunLauncher"),
    ("dagster._core.launcher", "DefaultRunLauncher"),
    ("dagster._core.launcher.default_run_launcher", "DefaultRunLauncher"),
    ("fruxon_pipelines.orchestration.launcher", "MonitoredRunLauncher"),
}

_log = logging.getLogger("fruxon.run_workers")


class _RunWorkerPopen(popen_forkserver.Popen):
    """multiprocessing's forkserver Popen, except when the fork server dies before its worker.

    A forkserver child's exit status comes through the fork server; with the fork server gone
    (killed, or by the OOM killer), CPython's Popen reads the end of that pipe and reports the
    worker dead (exit code 255) while it runs on. Dagster's code server would then report the
    run failed and forget it (no cancel reaches it) while it goes on writing. Here the worker's
    own pidfd, opened as it starts, says when it has really ended.
    """

    def _launch(self, process_obj: Any) -> None:
        super()._launch(process_obj)
        self._lost_fork_server = False
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd here, or the worker ended already
            self._pidfd = None
        else:
            util.Finalize(self, os.close, (self._pidfd,))

    def wait(self, timeout: float | None = None) -> int | None:
        """The worker's exit code once it has ended (255 when its status went with the fork
        server), or None after ``timeout`` seconds. Once the fork server is gone its pipe is
        readable for good, so the wait goes on on the worker's pidfd, for what is left of it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            watched = self._pidfd if self._lost_fork_server else self.sentinel
            if not connection.wait([watched], left):
                return None
            if self._lost_fork_server:
                self.returncode = 255
                break
            try:
                self.returncode = forkserver.read_signed(self.sentinel)
            except (OSError, EOFError):
                if self._pidfd is None:
                    self.returncode = 255
                else:
                    self._lost_fork_server = True
        return self.returncode

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        return self.wait(0 if flag == os.WNOHANG else None)


class _RunWorkerProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _RunWorkerPopen:  # noqa: N802 (multiprocessing's name)
        return _RunWorkerPopen(process_obj)


class RunWorkerContext(ForkServerContext):
    """The forkserver context, with processes whose liveness outlives their fork server."""

    Process = _RunWorkerProcess


def run_worker_context(preload: Sequence[str] = PRELOADED_MODULES) -> BaseContext:
    """The fork server's context, with the modules its run workers need preloaded."""
    context = RunWorkerContext()
    context.set_forkserver_preload(list(preload))
    return context


def in_code_server() -> bool:
    """This process is ``dagster api grpc``: what ``dagster code-server start`` runs behind its
    proxy, and what the Kubernetes deployment runs. Not the fork server (``python -c``), nor
    its run workers (multiprocessing's children, with the code server's argv), nor a test or a
    run that imports the definitions."""
    return (
        sys.argv[1:3] == ["api", "grpc"]
        and "dagster._grpc.server" in sys.modules
        and multiprocessing.parent_process() is None
    )


def fork_run_workers_in_code_server(start_method: str) -> bool:
    """In the code server, as it loads the definitions: start run workers from a preloaded
    fork server. Returns whether it did; anywhere else it does nothing.

    The fork server starts at once where this code server's Dagster instance launches runs
    through it, as the embedded stack's does (it then imports while the code server finishes
    loading, and the first run does not wait for it); otherwise with the first run. A code
    server whose runs launch elsewhere (K8sRunLauncher: a Job each) never starts one."""
    if start_method != "forkserver" or not in_code_server():
        return False
    server_class = getattr(sys.modules["dagster._grpc.server"], "DagsterApiServer", None)
    if server_class is None or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    context = run_worker_context()
    # A data descriptor on the class wins over the "spawn" context __init__ stored on the
    # server instance, whether that instance was built before this import or after it.
    server_class._mp_ctx = property(lambda _server: context, lambda _server, _value: None)
    try:
        if launches_runs_here(os.environ.get("DAGSTER_HOME")):
            forkserver.ensure_running()  # starts the server process; it preloads on its own
    except Exception:  # the first run starts it, and fails with the reason if it must
        _log.warning("could not start the run workers' fork server early", exc_info=True)
    return True


def launches_runs_here(dagster_home: str | None) -> bool:
    """Whether the Dagster instance in ``dagster_home`` launches runs through the code server:
    with Dagster's default run launcher or a subclass (fruxon's MonitoredRunLauncher). Imports
    no launcher's module (dagster-k8s's would cost the code server seconds): one not imported
    yet is taken for one that launches elsewhere."""
    if not dagster_home:
        return False
    from dagster import DefaultRunLauncher
    from dagster._core.instance.ref import InstanceRef

    launcher = InstanceRef.from_dir(dagster_home).run_launcher_data
    if launcher is None or (launcher.module_name, launcher.class_name) in (
        LAUNCHERS_THROUGH_CODE_SERVER
    ):
        return True
    launcher_class = getattr(sys.modules.get(launcher.module_name), launcher.class_name, None)
    return isinstance(launcher_class, type) and issubclass(launcher_class, DefaultRunLauncher)
