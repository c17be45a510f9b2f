"""Why a use case refused, in the request's own words. Each interface shows these its way:
the API as problem+json (400, 404, 409, 413, 415, 429), the CLI as an error line."""

from __future__ import annotations

import re
import uuid
from typing import Any

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ServiceError(Exception):
    """A use case refused; ``str(error)`` says why and names the field at fault."""

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidRequest(ServiceError):
    """The request cannot be carried out as asked (a bad field, a bad combination)."""


class NotFound(ServiceError):
    """The thing named does not exist, or belongs to another tenant (never confirmed)."""


class Conflict(ServiceError):
    """The state of what the request names forbids it now (being deleted, say)."""


class Busy(ServiceError):
    """Another operation of the asset is pending or running; retry when it is done."""

    retry_after_seconds = 5


class TooLarge(ServiceError):
    """An upload past the size limit."""


class Unauthenticated(ServiceError):
    """The credential the request carries does not match."""


class Unavailable(ServiceError):
    """The server cannot serve this now (a secret it cannot read, say)."""


class UnsupportedType(ServiceError):
    """A file of a type no parser takes."""


def parse_uuid(value: str, what: str) -> str:
    """``value`` as a canonical UUID, or InvalidRequest naming ``what``."""
    if _CANONICAL_UUID.fullmatch(value):  # what ids look like: the parse costs a poll ~1 %
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise InvalidRequest(f"{what} {value!r} is not a UUID") from error
