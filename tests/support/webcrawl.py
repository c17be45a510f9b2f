"""Helpers for the web source's tests: a WebSource over sitegen's real sites on 127.0.0.1, a crawl
collected by key, what the catalog would know after indexing, and a small page to serve."""

from __future__ import annotations

from collections.abc import Iterable

from fruxon_pipelines.settings import PRODUCT_USER_AGENT
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument
from fruxon_pipelines.sources.web import DEFAULT_MAX_BODY_BYTES, WebParameters, WebSource

UA = PRODUCT_USER_AGENT


def source(
    urls: Iterable[str],
    *,
    allow_private_networks: bool = True,
    timeout: float = 5.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    **params: object,
) -> WebSource:
    return WebSource(
        WebParameters.model_validate({"urls": list(urls), **params}),
        allow_private_networks=allow_private_networks,
        user_agent=UA,
        timeout=timeout,
        max_body_bytes=max_body_bytes,
    )


def crawl(src: WebSource, known: dict[str, KnownDocument] | None = None, **kw: object) -> dict:
    items = list(src.fetch(known or {}, **kw))  # type: ignore[arg-type]
    keys = [i.source_key for i in items]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return {i.source_key: i for i in items}


def known_from(items: Iterable[FetchedItem]) -> dict[str, KnownDocument]:
    """What the catalog would remember after indexing these items."""
    return {
        i.source_key: KnownDocument(
            source_key=i.source_key,
            etag=i.etag,
            last_modified=i.last_modified,
            links=tuple(i.links),
        )
        for i in items
        if i.status in ("fetched", "unchanged")
    }


def page(title: str, *hrefs: str, extra: str = "") -> str:
    links = "".join(f'<a href="{h}">{h}</a> ' for h in hrefs)
    return f"<html><head><title>{title}</title>{extra}</head><body><p>{links}</p></body></html>"
