"""Pydantic errors as the API reports them: every problem named by its field's path."""

from __future__ import annotations

import re

from pydantic import ValidationError


def field_problems(error: ValidationError, field: str) -> str:
    """``field.member: message; …``. A model-level check names the member itself, at the
    start of its message ("pollDay: required when …")."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}.{where}: {message}" if where else f"{field}.{message}")
    return "; ".join(problems)


def optional_match(pattern: re.Pattern[str], value: str | None, message: str) -> str | None:
    """``value`` when it is absent or matches ``pattern``; otherwise ``ValueError(message)``
    (a field validator's answer)."""
    if value is not None and not pattern.match(value):
        raise ValueError(message)
    return value
