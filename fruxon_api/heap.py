"""Keeping the cyclic garbage collector's full collections short in the API's workers.

A full (generation 2) collection walks every tracked object that is not frozen, and every
request in flight waits for it. Polling one operation from 64 clients (bench/bench_polling.py),
the worker's full collections took 35-205 ms each, a few times a minute: the p99. What they
walked was not requests' garbage but modules, ~120,000 objects of Dagster, gql and the rest
that the API imports lazily on its first launch or run read, after start-up had frozen the
heap. `freeze_long_lived()` freezes start-up's heap now and again after any full collection
that finds more modules imported than the last freeze saw, so each of the first waves of lazy
imports is walked by one full collection (later ones by every one: see MAX_LATER_FREEZES).
"""

from __future__ import annotations

import gc
import sys

# Freezes after start-up's, at most: one per wave of lazy imports is a handful in a worker's
# life (see _freeze for what each may keep).
MAX_LATER_FREEZES = 8

_modules_at_freeze = 0
_later_freezes = 0


def _freeze() -> None:
    global _modules_at_freeze
    _modules_at_freeze = len(sys.modules)
    # Everything still alive after a full collection goes to the permanent generation. What
    # is not garbage now stays unscanned, and reference counting still frees it; only a
    # cycle that becomes garbage later (a request in flight at the freeze: its task, an
    # exception's traceback) is never collected. Hence the cap on later freezes.
    gc.freeze()


def _after_full_collection(phase: str, info: dict[str, int]) -> None:
    global _later_freezes
    if (
        phase == "stop"
        and info["generation"] == 2
        and len(sys.modules) > _modules_at_freeze
        and _later_freezes < MAX_LATER_FREEZES
    ):
        _later_freezes += 1
        _freeze()


def freeze_long_lived() -> None:
    """Collect and freeze what exists now, and freeze again after later imports."""
    gc.collect()
    _freeze()
    if _after_full_collection not in gc.callbacks:
        gc.callbacks.append(_after_full_collection)
