"""How the stack starts its processes: SIGINT and SIGTERM reach them even when the stack itself
was started with those signals ignored (a background job of a shell), and Popen keeps its vfork
path otherwise (any preexec_fn forces a fork, which can hang in gRPC's fork handlers). And how
the run launcher tells a run worker's process from one gone (tests/e2e/test_faults.py loses a
whole code server)."""

from __future__ import annotations

import subprocess
import sys

SPAWN_AND_SHOW = """
import signal, subprocess, sys
from fruxon_pipelines.stack import _signal_reset
if sys.argv[1] == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(_signal_reset() is None)
child = "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('SigIgn')][0])"
subprocess.run([sys.executable, "-c", child], preexec_fn=_signal_reset(), check=True)
"""


def _ignored_in_child(parent: str) -> tuple[bool, int]:
    shown = subprocess.run(
        [sys.executable, "-c", SPAWN_AND_SHOW, parent], capture_output=True, text=True, check=True
    ).stdout.split()
    return shown[0] == "True", int(shown[1], 16)


def test_no_preexec_fn_when_nothing_is_ignored():
    vfork_path, ignored = _ignored_in_child("handled")
    assert vfork_path
    assert not ignored & (1 << 1 | 1 << 14)  # SIGINT is signal 2, SIGTERM 15: bits 1 and 14


def test_ignored_signals_are_restored_in_the_child():
    vfork_path, ignored = _ignored_in_child("ignored")
    assert not vfork_path
    assert not ignored & (1 << 1 | 1 << 14)


def test_the_launcher_reads_a_process_start_time_and_knows_a_gone_one():
    import os
    import time

    from fruxon_pipelines.orchestration.launcher import _process_started_at

    started = _process_started_at(os.getpid())
    assert started is not None and started <= time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid is free (or, much later, another process's)
    again = _process_started_at(dead.pid)
    assert again is None or again > started


def test_stack_processes_get_two_malloc_arenas_unless_told_otherwise(tmp_path, monkeypatch):
    """The stack caps glibc's malloc arenas (the API's RSS grew 13 % in a soak without it); an
    operator's own setting wins."""
    from fruxon_pipelines.settings import Settings
    from fruxon_pipelines.stack import stack_environment

    settings = Settings(home=tmp_path)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert stack_environment(settings)["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert stack_environment(settings)["MALLOC_ARENA_MAX"] == "4"


def test_the_api_runs_on_asyncio_s_event_loop_wherever_fruxon_starts_it():
    """uvloop serves a saturated API's connections unevenly (README: polling p99 100-234 ms at
    64 clients against 29-38 ms on FairEventLoop); the stack and the k8s manifest both say so."""
    from pathlib import Path

    import yaml

    from fruxon_pipelines.settings import Settings
    from fruxon_pipelines.stack import API_EVENT_LOOP, stack_commands

    assert API_EVENT_LOOP == ("--loop", "fruxon_api.event_loop:FairEventLoop")
    [api] = [command for name, command in stack_commands(Settings()) if name == "fruxon-api"]
    manifest = Path(__file__).parents[2] / "deploy" / "k8s" / "fruxon.yaml"
    containers = [
        container
        for document in yaml.safe_load_all(manifest.read_text())
        if document and document.get("kind") == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        if "fruxon_api.main:app" in container.get("command", [])
    ]
    assert containers, "the manifest starts the API"
    for command in [api, *(container["command"] for container in containers)]:
        at = command.index("--loop")
        assert command[at : at + 2] == list(API_EVENT_LOOP), command
