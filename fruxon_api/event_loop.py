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
"""

from __future__ import annotations

import asyncio
from typing import Any


class FairEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, accepting at most one connection each time the listening
    socket is ready (asyncio's own loop takes up to the listen backlog at once)."""

    def _accept_connection(  # type: ignore[override]
        self,
        protocol_factory: Any,
        sock: Any,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *timeouts: Any,
    ) -> None:
        super()._accept_connection(protocol_factory, sock, sslcontext, server, 1, *timeouts)
