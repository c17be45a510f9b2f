"""What routes share: the app's services (settings, catalog, vector store, run gateway), the
tenants' rate limits, paging, and the asset a path names."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from fruxon_api.problems import Problem
from fruxon_api.ratelimit import TenantRateLimits
from fruxon_pipelines.services.assets import load_asset
from fruxon_pipelines.services.context import Services
from fruxon_pipelines.services.errors import parse_uuid

__all__ = ["ApiServices", "Paging", "Svc", "load_asset", "parse_uuid"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass
class ApiServices(Services):
    """The services, and what only the API has: per-tenant rate limits."""

    limits: TenantRateLimits | None = None


async def services(request: Request) -> ApiServices:  # async: no thread-pool hop per request
    return request.app.state.services


Svc = Annotated[ApiServices, Depends(services)]


@dataclass(frozen=True)
class PageRequest:
    size: int
    skip: int

    def window(self, items: list) -> list:
        return items[self.skip : self.skip + self.size]

    def next_token(self, total: int) -> str | None:
        end = self.skip + self.size
        if end >= total:
            return None
        return base64.urlsafe_b64encode(f"skip:{end}".encode()).decode().rstrip("=")


def page_request(
    page_size: Annotated[int | None, Query(alias="PageSize")] = None,
    skip: Annotated[int | None, Query(alias="PageToken.Skip")] = None,
    cursor: Annotated[str | None, Query(alias="PageToken.Cursor")] = None,
) -> PageRequest:
    size = DEFAULT_PAGE_SIZE if page_size is None else page_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise Problem(400, "Bad Request", f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    offset = skip or 0
    if cursor:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            kind, _, value = base64.urlsafe_b64decode(padded).decode().partition(":")
            if kind != "skip":
                raise ValueError(kind)
            offset = int(value)
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise Problem(
                400, "Bad Request", "PageToken.Cursor is not a valid page token"
            ) from error
    if offset < 0:
        raise Problem(400, "Bad Request", "PageToken.Skip must not be negative")
    return PageRequest(size=size, skip=offset)


Paging = Annotated[PageRequest, Depends(page_request)]
