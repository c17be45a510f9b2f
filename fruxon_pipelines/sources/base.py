"""What every source connector speaks: what the catalog remembers, and what a fetch yields."""

from __future__ import annotations

import email.utils
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

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
    # When the content held was last found current, at the latest (epoch seconds): the start of
    # the operation that last read or confirmed it. A sitemap <lastmod> before it means the
    # page has not changed since.
    confirmed_at: float | None = None


@dataclass(kw_only=True)
class ItemMetadata:
    """What a source says of one item besides its bytes; the fetch stage keeps it as it came
    (``ingest.manifests.FetchedRecord``)."""

    source_url: str | None = None
    title: str | None = None
    file_name: str | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    links: list[str] = field(default_factory=list)

    @property
    def modified_ms(self) -> int | None:
        """``last_modified`` (an HTTP date or ISO 8601, as sources report it) in epoch ms; None
        when absent or unreadable."""
        value = (self.last_modified or "").strip()
        if not value:
            return None
        try:
            if value[:4].isdigit():
                stamp = datetime.fromisoformat(value)  # 3.11 reads "Z" and offsets
                stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            else:
                stamp = email.utils.parsedate_to_datetime(value)
            return int(stamp.timestamp() * 1000)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None

    def metadata(self) -> dict[str, Any]:
        """These fields by name (the links a list of their own), for another record of the
        same item."""
        values = {f.name: getattr(self, f.name) for f in fields(ItemMetadata)}
        return values | {"links": list(self.links)}


@dataclass
class FetchedItem(ItemMetadata):
    """One item of a source as it is now.

    - ``fetched``: ``data`` holds the new bytes.
    - ``unchanged``: the source said the version is the one we have (HTTP 304, same revision).
    - ``failed``: the item exists (or was asked for) but could not be fetched; ``error`` says why.
    - ``gone``: the source says the item no longer exists (HTTP 404/410, file removed).
    """

    source_key: str
    status: FetchStatus
    data: bytes | None = None


class SourceError(CategorizedError):
    """The source as a whole cannot be listed (bad configuration, unreachable start URL,
    revoked credentials …); ``category`` is the asset's `errorCategory`."""

    def __init__(self, message: str, category: str = SOURCE_UNAVAILABLE) -> None:
        super().__init__(message, category)


class Source:
    """A source connector: what a run asks it, and what it says of the listing it gave.

    A run calls :meth:`fetch` once, then reads ``complete_listing`` and ``next_state``. A
    connector implements :meth:`list_items` (everything that exists now) and :meth:`fetch_keys`
    (only the items asked for), and :meth:`close` if it holds a client; or overrides
    :meth:`fetch` whole.
    """

    # Whether the last fetch listed everything that exists. False for a changes feed, which
    # names only what changed: what it leaves out is not removed from the index.
    complete_listing: bool = True
    # The connector's state after the last fetch (a changes cursor), kept once the run
    # completes and given back to the next one; None keeps the state stored before.
    next_state: dict[str, Any] | None = None

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
        try:
            if only_keys is None:
                yield from self.list_items(known, force)
            else:
                yield from self.fetch_keys(only_keys, known, force)
        finally:
            self.close()

    def list_items(self, known: Mapping[str, KnownDocument], force: bool) -> Iterator[FetchedItem]:
        """Every item that exists now."""
        raise NotImplementedError

    def fetch_keys(
        self, keys: set[str], known: Mapping[str, KnownDocument], force: bool
    ) -> Iterator[FetchedItem]:
        """Only the items of ``keys`` this connector has (an item that no longer exists is
        ``gone``); keys of other connectors are passed over."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the fetch held (an HTTP client); called once the fetch is done."""
