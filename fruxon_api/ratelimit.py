"""Per-tenant rate limits on the costly routes (search embeds a query; refresh launches a run).

One token bucket per (action, tenant) in each API process: a tenant may spend `per_minute`
requests in a burst, and the bucket refills at `per_minute` a minute. A refused request gets a
429 problem with `Retry-After` (whole seconds until the next token). With several API replicas
each keeps its own buckets, so a tenant's ceiling is the limit times the replicas.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fruxon_api.problems import Problem

SEARCH = "search"
REFRESH = "refresh"


class TenantRateLimits:
    def __init__(
        self, per_minute: dict[str, int], clock: Callable[[], float] = time.monotonic
    ) -> None:
        # 0 (or less) turns an action's limit off.
        self._per_minute = {action: n for action, n in per_minute.items() if n > 0}
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # → (tokens, at)
        self._lock = threading.Lock()

    def take(self, action: str, tenant: str) -> None:
        """Spend one of the tenant's requests for ``action``, or raise the 429."""
        limit = self._per_minute.get(action)
        if limit is None:
            return
        rate = limit / 60.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get((action, tenant), (float(limit), now))
            tokens = min(float(limit), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[(action, tenant)] = (tokens - 1.0, now)
                return
            self._buckets[(action, tenant)] = (tokens, now)
        retry_after = max(1, math.ceil((1.0 - tokens) / rate))
        raise Problem(
            429,
            "Too Many Requests",
            f"tenant {tenant} is over its {action} limit of {limit} a minute; "
            f"retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            errorCategory="RATE_LIMIT",
        )
