"""Dagster's queued run coordinator, with a dequeue interval that may be under a second.

Dagster types ``dequeue_interval_seconds`` as an integer, and the run-queue daemon waits at
least that long between two passes; at 1 s a run waits half a second on average before the
daemon even looks. The daemon itself takes any number (its loop waits in steps of 0.5 s), so
this coordinator only widens the config type: 0.5 s takes about a quarter of a second off
every run's start. Everything else (limits, tag limits, cancellation) is Dagster's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import Field
from dagster._core.run_coordinator import QueuedRunCoordinator as DagsterQueuedRunCoordinator
from dagster._serdes import ConfigurableClassData

DEFAULT_DEQUEUE_INTERVAL_SECONDS = 0.5


class QueuedRunCoordinator(DagsterQueuedRunCoordinator):
    """``dagster.core.run_coordinator.QueuedRunCoordinator`` with a fractional
    ``dequeue_interval_seconds`` (default 0.5)."""

    def __init__(self, *args: Any, dequeue_interval_seconds: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._fractional_interval = float(
            DEFAULT_DEQUEUE_INTERVAL_SECONDS
            if dequeue_interval_seconds is None
            else dequeue_interval_seconds
        )

    @property
    def dequeue_interval_seconds(self) -> float:  # type: ignore[override]
        return self._fractional_interval

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        schema = dict(super().config_type())
        schema["dequeue_interval_seconds"] = Field(
            float,
            is_required=False,
            description="Seconds between two passes of the daemon over the run queue "
            f"(default {DEFAULT_DEQUEUE_INTERVAL_SECONDS}; the daemon waits in 0.5 s steps).",
        )
        return schema

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> QueuedRunCoordinator:
        rest = {k: v for k, v in config_value.items() if k != "dequeue_interval_seconds"}
        coordinator = super().from_config_value(inst_data, rest)
        interval = config_value.get("dequeue_interval_seconds")
        if interval is not None:
            if interval <= 0:
                raise ValueError("dequeue_interval_seconds must be more than 0")
            coordinator._fractional_interval = float(interval)
        return coordinator
