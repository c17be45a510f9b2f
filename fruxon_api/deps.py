"""What routes share: the app's settings, catalog, vector store and Dagster gateway."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from fruxon_api.problems import Problem, not_found
from fruxon_api.ratelimit import TenantRateLimits
from fruxon_api.runs import Runs
from fruxon_pipelines.catalog.models import KnowledgeAsset
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.vectors import VectorStore

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    vectors: VectorStore
    runs: Runs
    limits: TenantRateLimits


async def services(request: Request) -> Services:  # async: no thread-pool hop per request
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]


def parse_uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise Problem(400, "Bad Request", f"{what} {value!r} is not a UUID") from error


def load_asset(svc: Services, tenant: str, asset_id: str) -> KnowledgeAsset:
    """The tenant's asset, or 404 (also for another tenant's asset: nothing is confirmed)."""
    return visible_asset(svc.catalog.get_asset(parse_uuid(asset_id, "asset")), tenant, asset_id)


def visible_asset(asset: KnowledgeAsset | None, tenant: str, asset_id: str) -> KnowledgeAsset:
    if asset is None or asset.tenant != tenant or asset.status == "DELETING":
        raise not_found(f"asset {asset_id}")
    return asset


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
