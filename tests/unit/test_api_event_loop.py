"""The API's event loop takes one connection per wake-up of the listening socket, so uvicorn
workers sharing that socket split a burst of connects between them (fruxon_api/event_loop.py)."""

from __future__ import annotations

import asyncio
import socket

from fruxon_api.event_loop import FairEventLoop


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


def test_a_burst_of_connects_is_taken_one_at_a_time_and_all_are_served():
    fair = _connections_made_per_round(FairEventLoop)
    assert fair[0] < 8 and fair[-1] == 8, fair
    # asyncio's own loop takes the whole burst at its first wake-up: what let one of two
    # workers take every connection.
    assert _connections_made_per_round(asyncio.SelectorEventLoop)[0] == 8
