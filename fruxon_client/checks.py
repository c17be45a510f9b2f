"""Field checks the wire models share with the server's own models (pydantic only)."""

from __future__ import annotations

import re

from pydantic import AfterValidator


def matching(pattern: re.Pattern[str], message: str) -> AfterValidator:
    """A field's check (``Annotated[str | None, matching(…)]``): the value passes when it is
    absent or matches ``pattern``; otherwise the field's problem is ``message``."""

    def check(value: str | None) -> str | None:
        if value is not None and not pattern.match(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)
