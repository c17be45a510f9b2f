"""The API's event loop: a worker of several takes one connection per wake-up of the listening
socket, so the workers sharing that socket split a burst of connects between them; a lone
worker takes the whole burst at once, as asyncio does (fruxon_api/event_loop.py)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

from fruxon_api.event_loop import FairEventLoop, shares_listening_socket


def _connections_made_per_round(loop_class: type[asyncio.AbstractEventLoop]) -> list[int]:
    """Eight clients connect before the loop looks; connections made after each round of it."""
    loop = loop_class()
    made: list[asyncio.BaseTransport] = []

    class Counted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(transport)

    try:
        server = loop.run_until_complete(loop.create_server(Counted, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        rounds = []
        for _ in range(20):
            loop.run_until_complete(asyncio.sleep(0))
            rounds.append(len(made))
        for client in clients:
            client.close()
        for transport in made:
            transport.close()
        server.close()
        loop.run_until_complete(server.wait_closed())
        return rounds
    finally:
        loop.close()


# uvicorn starts more than one worker as multiprocessing (spawn) children of a supervisor.
_SUPERVISOR = """
import json, multiprocessing, sys
sys.path.insert(0, {tests!r})


def worker():
    from fruxon_api.event_loop import FairEventLoop, shares_listening_socket
    from test_api_event_loop import _connections_made_per_round

    return shares_listening_socket(), _connections_made_per_round(FairEventLoop)


if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        print(json.dumps(pool.apply(worker)))
"""


def test_a_worker_of_several_takes_a_burst_of_connects_one_at_a_time_and_serves_all(tmp_path):
    supervisor = tmp_path / "supervisor.py"
    supervisor.write_text(_SUPERVISOR.format(tests=str(Path(__file__).parent)))
    output = subprocess.run(
        [sys.executable, str(supervisor)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    shared, rounds = json.loads(output)
    assert shared
    assert rounds[0] < 8 and rounds[-1] == 8, rounds


def test_a_lone_worker_takes_a_burst_of_connects_at_its_first_wake_up():
    """One at a time only made a burst wait (p99 236-292 ms against 48-51 ms, 64 clients)."""
    assert not shares_listening_socket()  # uvicorn --workers 1 serves from its own process
    assert _connections_made_per_round(FairEventLoop)[0] == 8
    assert _connections_made_per_round(asyncio.SelectorEventLoop)[0] == 8
