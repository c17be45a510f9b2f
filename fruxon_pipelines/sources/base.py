"""What every source connector speaks: what the catalog remembers, and what a fetch yields."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from fruxon_pipelines.errors import SOURCE_UNAVAILABLE, CategorizedError

FetchStatus = Literal["fetched", "unchanged", "failed", "gone"]


@dataclass(frozen=True)
class KnownDocument:
    """What the catalog remembers of one item, so the source can ask conditionally."""

    source_key: str
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    # Web: outgoing links seen last time, so a crawl continues past a 304.
    links: tuple[str, ...] = ()


@dataclass
class FetchedItem:
    """One item of a source as it is now.

    - ``fetched``: ``data`` holds the new bytes.
    - ``unchanged``: the source said the version is the one we have (HTTP 304, same revision).
    - ``failed``: the item exists (or was asked for) but could not be fetched; ``error`` says why.
    - ``gone``: the source says the item no longer exists (HTTP 404/410, file removed).
    """

    source_key: str
    status: FetchStatus
    source_url: str | None = None
    title: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    data: bytes | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    links: list[str] = field(default_factory=list)


class SourceError(CategorizedError):
    """The source as a whole cannot be listed (bad configuration, unreachable start URL,
    revoked credentials …); ``category`` is the asset's `errorCategory`."""

    def __init__(self, message: str, category: str = SOURCE_UNAVAILABLE) -> None:
        super().__init__(message, category)


class Source(Protocol):
    def fetch(
        self,
        known: Mapping[str, KnownDocument],
        only_keys: set[str] | None = None,
        force: bool = False,
    ) -> Iterator[FetchedItem]:
        """Yield every item that exists now (or only ``only_keys``).

        ``known`` maps source keys to what the catalog holds, for conditional requests;
        ``force`` fetches in full even where the version is unchanged.
        """
        ...
