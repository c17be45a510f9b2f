"""Pydantic errors as the API reports them: every problem named by its field's path."""

from __future__ import annotations

from pydantic import ValidationError

from fruxon_client.checks import matching

__all__ = ["field_problems", "matching"]


def field_problems(error: ValidationError, field: str) -> str:
    """``field.member: message; …``. A model-level check names the member itself, at the
    start of its message ("pollDay: required when …")."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}.{where}: {message}" if where else f"{field}.{message}")
    return "; ".join(problems)
