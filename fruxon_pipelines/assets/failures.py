"""How a stage's failure becomes the run's: the Dagster side of ``fruxon_pipelines.ingest``.

The ingest functions raise plain exceptions; here they become ``dg.Failure`` (a readable
message, no stack trace) and a cancel is held until a batch is persisted.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from fruxon_pipelines.errors import CategorizedError
from fruxon_pipelines.ingest import RunStopped


@contextmanager
def failing_with_category(store: Any, operation_id: str, asset_id: str) -> Iterator[None]:
    """Turn a CategorizedError inside the block into a failed run whose operation, and asset,
    say why (the asset's category stays until a run completes); a RunStopped fails the run
    with its message."""
    try:
        yield
    except CategorizedError as error:
        store.update_operation(
            operation_id, error_category=error.category, error_message=str(error)
        )
        store.update_asset(asset_id, last_error=str(error), last_error_category=error.category)
        raise dg.Failure(description=str(error)) from error
    except RunStopped as stopped:
        raise dg.Failure(description=str(stopped)) from None


# Dagster's run worker cancels a run with SIGINT (a SIGTERM is taken the same way).
_CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def persisted_before_cancel() -> Iterator[None]:
    """Hold a cancel until the block is done, then honour it as Dagster does (by raising
    ``DagsterExecutionInterruptedError``), so a group of embedder calls is written whole or not
    at all."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: nothing to hold here
        return
    received: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in _CANCEL_SIGNALS}
    for signum in _CANCEL_SIGNALS:
        signal.signal(signum, lambda signo, _frame: received.append(signo))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, left as it is
                signal.signal(signum, handler)
    if received:
        raise dg.DagsterExecutionInterruptedError()
