"""The API's fast path from a webhook delivery to a run.

The webhook sensor is evaluated once per daemon loop (every 5 s, fixed in Dagster), so a
delivery waited 2.5 s on average before anything looked at it. Here the API that stored the
delivery waits for the asset's events to be quiet for the debounce, then claims them and
submits their WEBHOOK operation itself (``services.auto_update.launch_webhook_operations``).
The claim is atomic, so the sensor, or another API process, never launches the same events
again; what the API cannot launch (the asset busy, the webserver away, this process stopped)
stays for the sensor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread

from fruxon_pipelines.services.auto_update import (
    debounce_wait,
    launch_webhook_operations,
    quiet_for,
)
from fruxon_pipelines.services.context import Services

logger = logging.getLogger(__name__)
T = TypeVar("T")


# Threads the launches may hold at once: each may wait on the webserver (up to the submit's
# timeout), and the request handlers share the API's own thread pool.
LAUNCH_THREADS = 4


class WebhookLaunches:
    """One waiting task per asset with fresh deliveries, on the API's event loop."""

    def __init__(self, svc: Services, debounce_seconds: float) -> None:
        self.svc = svc
        self.debounce_seconds = debounce_seconds
        self._waiting: dict[str, asyncio.Task] = {}
        self._delivered_at: dict[str, float] = {}
        self._threads: anyio.CapacityLimiter | None = None

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        if self._threads is None:  # made on the event loop that uses it
            self._threads = anyio.CapacityLimiter(LAUNCH_THREADS)
        return await anyio.to_thread.run_sync(partial(function, *args), limiter=self._threads)

    def delivered(self, asset_id: str) -> None:
        """A delivery for ``asset_id`` was stored: launch its events once they are quiet."""
        self._delivered_at[asset_id] = time.monotonic()
        if asset_id not in self._waiting:
            task = asyncio.get_running_loop().create_task(self._launch_when_quiet(asset_id))
            self._waiting[asset_id] = task

    async def _launch_when_quiet(self, asset_id: str) -> None:
        started = time.monotonic()
        try:
            while True:
                looked_at = time.monotonic()
                quiet = await self._in_thread(quiet_for, self.svc.catalog, asset_id)
                if quiet is None:
                    if self._delivered_at.get(asset_id, 0.0) < looked_at:
                        return  # the sensor, or another API process, took them
                    continue  # a delivery stored meanwhile is this task's to wait for
                left = debounce_wait(quiet, time.monotonic() - started, self.debounce_seconds)
                if left <= 0:
                    break  # quiet, or a burst that goes on: launch what is there
                await asyncio.sleep(left)
            # A delivery from now on waits for a launch of its own (or joins this one).
            self._forget(asset_id)
            await self._in_thread(launch_webhook_operations, self.svc, asset_id)
        except Exception:
            logger.warning(
                "launching the webhook operation of asset %s failed; the webhook sensor will",
                asset_id,
                exc_info=True,
            )
        finally:
            self._forget(asset_id)

    def _forget(self, asset_id: str) -> None:
        if self._waiting.get(asset_id) is asyncio.current_task():
            del self._waiting[asset_id]
            self._delivered_at.pop(asset_id, None)
