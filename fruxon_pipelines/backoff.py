"""How long to wait before retrying an HTTP request: the server's word, else exponential."""

from __future__ import annotations

import email.utils
import random
import time

MAX_WAIT_SECONDS = 60.0


def retry_after_seconds(value: str | None, attempt: int, *, jitter: bool = True) -> float:
    """The server's Retry-After (seconds or an HTTP date), else 0.5 s × 2^attempt, with
    ±25 % jitter unless ``jitter`` is off; never more than a minute."""
    if value:
        value = value.strip()
        try:
            return min(max(0.0, float(value)), MAX_WAIT_SECONDS)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
            return min(max(0.0, when - time.time()), MAX_WAIT_SECONDS)
        except (TypeError, ValueError):
            pass
    spread = 0.75 + random.random() / 2 if jitter else 1.0
    return min(0.5 * 2**attempt * spread, MAX_WAIT_SECONDS)
