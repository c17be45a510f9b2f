"""Starting the embedded stack: ports for its servers, and what a failed start says."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fruxon_pipelines.stack import Stack, free_port


def test_free_ports_are_distinct_bindable_and_clear_of_outgoing_connections():
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    if low > 2048:  # else the host leaves no room below outgoing connections' ports
        assert not [p for p in ports if low <= p <= high]
    for port in ports[:20]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_stack_that_cannot_start_says_which_process_failed_and_what_it_wrote(settings):
    """The webserver's port is taken: the start fails with that process's own words, not just
    an exit code (all that a CI run would show)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = Stack(
            # Every port named: the environment may hold another stack's.
            settings.model_copy(
                update={
                    "dagster_port": port,
                    "code_server_port": free_port(),
                    "api_port": free_port(),
                }
            ),
            log_dir=settings.resolved_home / "logs",
        )
        try:
            with pytest.raises(RuntimeError, match="dagster-webserver exited") as failed:
                stack.start()
                stack.wait_until_ready(timeout=120)
        finally:
            stack.stop()
    log_tail = str(failed.value).split("dagster-webserver.log", 1)[1]
    assert "address already in use" in log_tail.lower(), log_tail
