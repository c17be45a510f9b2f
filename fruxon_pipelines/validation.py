"""Pydantic errors as the API reports them: every problem named by its field's path."""

from __future__ import annotations

import re

from pydantic import AfterValidator, ValidationError


def field_problems(error: ValidationError, field: str) -> str:
    """``field.member: message; …``. A model-level check names the member itself, at the
    start of its message ("pollDay: required when …")."""
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}.{where}: {message}" if where else f"{field}.{message}")
    return "; ".join(problems)


def matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """A field's check (``Annotated[str | None, matching(…)]``): the value passes when it is
    absent or matches ``pattern``; otherwise the field's problem is ``message``."""

    def check(value: str | None) -> str | None:
        if value is not None and not pattern.match(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)
