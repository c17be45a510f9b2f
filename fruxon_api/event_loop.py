"""The API's event loop (`uvicorn --loop fruxon_api.event_loop:FairEventLoop`).

Measured with wrk on 2 cores (bench/bench_polling.py and a trivial ASGI app):
- uvloop, uvicorn's pick when it is installed, serves a saturated worker's connections
  unevenly: polling one operation from 64 keep-alive clients, p99 100-234 ms at a p50 of 26 ms
  (a trivial app: p99 109-200 ms, max 570 ms). asyncio's loop serves them in turn: p99 29-38 ms
  (on this class), for ~3 % fewer requests/s.
- asyncio's loop accepts every waiting connection in one wake-up, so with several workers
  sharing the listening socket a burst of connects (a client's pool opening) can land on one
  worker: 16 clients polling two workers got 2,340 requests/s, one worker's worth. Accepting
  one connection per wake-up lets the workers' loops take turns: 4,320 requests/s.
- A lone worker has no one to take turns with, and one connection per wake-up only makes a
  burst wait: each wake-up also serves every request already waiting, so the 64th of 64
  clients connecting at once was accepted after ~1 s of others' requests. A trivial app
  spending 0.6 ms per request, 64 clients for 10 s: p99 236-292 ms one per wake-up, 48-51 ms
  taking them all (p50 44 ms both). So only a worker of several takes one at a time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any


def shares_listening_socket() -> bool:
    """Whether this process is one of several uvicorn workers on one listening socket.

    uvicorn serves ``--workers 1`` from its own process and starts more than one as
    multiprocessing children of a supervisor that holds the socket. (``--reload`` runs its
    one worker as such a child too: a development server, taking connections one at a
    time.)"""
    return multiprocessing.parent_process() is not None


class FairEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop; in a worker of several, accepting at most one connection each
    time the listening socket is ready (asyncio's own loop takes up to the listen backlog)."""

    def __init__(self, selector: Any = None) -> None:
        super().__init__(selector)
        self._one_accept_per_wakeup = shares_listening_socket()

    def _accept_connection(  # type: ignore[override]
        self,
        protocol_factory: Any,
        sock: Any,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *timeouts: Any,
    ) -> None:
        if self._one_accept_per_wakeup:
            backlog = 1
        super()._accept_connection(protocol_factory, sock, sslcontext, server, backlog, *timeouts)
