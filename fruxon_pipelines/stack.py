"""The embedded stack: Dagster's code server, webserver and daemon and the API on one
FRUXON_HOME, stopped together.

The webserver and the daemon load the definitions from the one code server (not a server
each), and run workers are the code server's (forked from its fork server): the daemon can be
restarted while ingestions run, as on Kubernetes (deploy/).

Children get SIGINT/SIGTERM reset to their defaults (a background shell hands them down as
ignored, and a dagster process started that way hangs on shutdown) and run in their own process
group, so Ctrl-C here stops them in order and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from fruxon_pipelines.orchestration.gateway import PROJECT_ROOT, prepare_dagster_home
from fruxon_pipelines.orchestration.runs import LOCATION_NAME
from fruxon_pipelines.settings import Settings

_ports_handed_out: set[int] = set()


def _ephemeral_range_start() -> int:
    """Where the ports of outgoing connections begin (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server started a moment later.

    Picked at random below the range of outgoing connections' ports (a port from that range,
    once released, can be taken by any client's next connect() before the server binds it),
    and never handed out twice by this process, so the servers a test suite or a benchmark
    starts do not race each other or the suite's own HTTP clients. Where no such range is left
    (a host that gives all ports to outgoing connections), the kernel's pick."""
    ephemeral = _ephemeral_range_start()
    below = range(max(1024, ephemeral // 2), ephemeral)
    for attempt in range(200):
        port = random.choice(below) if attempt < 100 and len(below) > 1000 else 0
        if port in _ports_handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            port = probe.getsockname()[1]
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port
    raise OSError(errno.EADDRINUSE, "no free port on 127.0.0.1")


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _signal_reset() -> Callable[[], None] | None:
    """What a child needs run before exec so that SIGINT and SIGTERM stop it: a signal this
    process ignores stays ignored across exec (a handler does not). Only then, because any
    ``preexec_fn`` makes Popen fork instead of vfork, and a fork runs gRPC's fork handlers,
    which can hang for good just after a gRPC channel closed (the code server's ping)."""
    ignored = any(signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM))
    return _reset_signals if ignored else None


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def stack_environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["FRUXON_HOME"] = str(settings.resolved_home)
    env["DAGSTER_HOME"] = str(settings.dagster_home)
    # glibc gives every thread that allocates its own malloc arena (up to 8 per CPU) and keeps
    # what is freed in them: under a 15-minute soak the API's RSS grew 13 % that way, with its
    # Python heap flat. Two arenas: +1.3 %, at the same request rate (bench/soak.py).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _workspace_path(settings: Settings) -> Path:
    return settings.dagster_home / "workspace.yaml"


def stack_workspace(settings: Settings) -> Path:
    """The workspace the webserver and the daemon share: the stack's one code server."""
    path = _workspace_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {settings.dagster_host}\n"
        f"      port: {settings.code_server_port}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    return path


# The API's event loop: asyncio's, taking turns between connections and between workers
# (fruxon_api/event_loop.py has the measurements against uvloop, uvicorn's default pick).
API_EVENT_LOOP = ("--loop", "fruxon_api.event_loop:FairEventLoop")


def stack_commands(settings: Settings) -> list[tuple[str, list[str]]]:
    workspace = str(_workspace_path(settings))
    return [
        (
            "dagster-code-server",
            [
                _bin("dagster"),
                "code-server",
                "start",
                "-m",
                "fruxon_pipelines.definitions",
                "-h",
                settings.dagster_host,
                "-p",
                str(settings.code_server_port),
                "--location-name",
                LOCATION_NAME,
            ],
        ),
        (
            "dagster-webserver",
            [
                _bin("dagster-webserver"),
                "-w",
                workspace,
                "-h",
                settings.dagster_host,
                "-p",
                str(settings.dagster_port),
            ],
        ),
        ("dagster-daemon", [_bin("dagster-daemon"), "run", "-w", workspace]),
        (
            "fruxon-api",
            [
                _bin("uvicorn"),
                "fruxon_api.main:app",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
                "--workers",
                str(settings.api_workers),
                "--no-access-log",
                *API_EVENT_LOOP,
            ],
        ),
    ]


class Stack:
    """The stack's processes; usable as a context manager (tests start it the same way)."""

    def __init__(self, settings: Settings, log_dir: Path | None = None) -> None:
        self.settings = settings
        # Where each process's output goes (`<name>.log`, appended); the terminal when None.
        self.log_dir = log_dir
        self.processes: list[tuple[str, subprocess.Popen]] = []
        # Taken once, at start: a restarted process gets the environment its peers have.
        self.environment: dict[str, str] | None = None

    def start(self) -> None:
        from fruxon_pipelines.catalog.store import migrate

        migrate(self.settings.catalog_url)
        # Create Dagster's SQLite storages here, once: the webserver, the daemon and the API
        # creating them at the same moment race on their schema-version tables.
        from dagster import DagsterInstance

        DagsterInstance.from_config(str(prepare_dagster_home(self.settings))).dispose()
        stack_workspace(self.settings)
        self.environment = stack_environment(self.settings)
        try:
            for name, command in stack_commands(self.settings):
                self.processes.append((name, self._spawn(name, command)))
                if name == "dagster-code-server":
                    self._wait_for_code_server(self.processes[-1][1])
        except BaseException:
            self.stop()
            raise

    def _wait_for_code_server(self, process: subprocess.Popen, timeout: float = 180) -> None:
        """Until the code server answers a ping: started before it, the webserver and the
        daemon would load the location as an error."""
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(
            port=self.settings.code_server_port, host=self.settings.dagster_host
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self._exited("dagster-code-server", process)
            try:
                client.ping("")
                return
            except Exception:  # noqa: BLE001 — any failure means "not serving yet"
                time.sleep(0.25)
        raise TimeoutError(f"the code server did not answer in {timeout:.0f} s")

    def _exited(self, name: str, process: subprocess.Popen) -> RuntimeError:
        """Why the stack cannot start: which process exited, and the end of what it wrote."""
        return RuntimeError(f"{name} exited with code {process.returncode}{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 40) -> str:
        """The end of a process's log file, for an error message ("" when it writes to the
        terminal, where it can already be read)."""
        log = self.log_dir / f"{name}.log" if self.log_dir is not None else None
        if log is None or not log.exists():
            return ""
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return f"; the end of {log}:\n" + "\n".join(tail)

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(
                command,
                env=self.environment or stack_environment(self.settings),
                cwd=PROJECT_ROOT,
                preexec_fn=_signal_reset(),
                start_new_session=True,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor

    @contextlib.contextmanager
    def down(self, name: str, timeout: float = 30.0, *, crash: bool = False) -> Iterator[None]:
        """One process stopped (as Ctrl-C would) for the block, then started again. ``crash``:
        SIGKILL to its process group instead, as when its container dies: the code server's
        run workers with it."""
        command = dict(stack_commands(self.settings))[name]
        index = next(i for i, (n, _) in enumerate(self.processes) if n == name)
        if crash:
            os.killpg(self.processes[index][1].pid, signal.SIGKILL)
        _stop_processes([self.processes[index][1]], timeout)
        try:
            yield
        finally:
            self.processes[index] = (name, self._spawn(name, command))
            if name == "dagster-code-server":
                self._wait_for_code_server(self.processes[index][1])

    def dagster_url(self) -> str:
        return f"http://{self.settings.dagster_host}:{self.settings.dagster_port}"

    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def wait_until_ready(self, timeout: float = 120.0) -> None:
        """Until the API's /healthz answers 200, which it does once the webserver does."""
        deadline = time.monotonic() + timeout
        url = self.api_url() + "/healthz"
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise self._exited(name, process)
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        logs = "".join(self._log_tail(name, lines=10) for name, _ in self.processes)
        raise TimeoutError(f"the stack did not become ready ({url}) in {timeout:.0f} s{logs}")

    def stop(self, timeout: float = 30.0) -> None:
        _stop_processes([process for _, process in self.processes], timeout)
        self.processes.clear()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _stop_processes(processes: list[subprocess.Popen], timeout: float) -> None:
    """SIGINT to each process group, then SIGKILL for any still there after ``timeout``."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _say(message: str) -> None:
    """Print, unless the terminal or pipe is gone: shutting down must not depend on it."""
    with contextlib.suppress(OSError):
        print(message, flush=True)


def run_stack(settings: Settings) -> int:
    """Start everything, wait for Ctrl-C (or a child dying), stop everything."""
    stack = Stack(settings)
    stopping = False

    def _stop(_signo: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    stack.start()
    _say(
        f"fruxon: Dagster UI on {stack.dagster_url()}, API docs on {stack.api_url()}/docs\n"
        f"fruxon: FRUXON_HOME={settings.resolved_home}; Ctrl-C stops everything."
    )
    code = 0
    try:
        while not stopping:
            for name, process in stack.processes:
                if process.poll() is not None:
                    _say(f"fruxon: {name} exited ({process.returncode}); stopping")
                    stopping, code = True, 1
            time.sleep(0.5)
    finally:
        _say("fruxon: stopping …")
        stack.stop()
    return code
