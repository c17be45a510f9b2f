"""What the sources API (`/v2/documents/public`, Fini's documents API) needs beyond the catalog:
which asset a workspace's items of one source go to, discovery of a connected provider's
importable items, and deep crawls of seed links. A workspace is a tenant; a source record is a
document of one of its knowledge assets, so both APIs show the same documents.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import Any

from fruxon_pipelines.catalog.models import KnowledgeAsset
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.secretbox import SecretBox
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.auth import source_credentials
from fruxon_pipelines.sources.registry import SourceReach, build_source

# The sources API's names of source types, and ours.
SOURCE_TYPE_OF = {
    "web": "web",
    "files": "file",
    "googledrive": "google_drive",
    "notion": "notion",
    "zendesk": "zendesk",
    "confluence": "confluence",
}
WIRE_SOURCE = {ours: theirs for theirs, ours in SOURCE_TYPE_OF.items()}
INGEST_SOURCES = ("web", "googledrive", "notion", "zendesk", "confluence")
DISCOVERY_PROVIDERS = ("notion", "zendesk", "confluence")
# A deep crawl answers within this long, with what it found by then.
DEEP_CRAWL_SECONDS = 60.0


def connection(catalog: Catalog, tenant: str, source_type: str) -> KnowledgeAsset | None:
    """The asset a workspace's items of ``source_type`` are registered in and discovered
    through: an active asset of that type (with credentials, for a provider), one that ingests
    only registered documents first, then the oldest."""
    needs_auth = source_type not in ("web", "file")
    candidates = [
        asset
        for asset in catalog.list_assets(tenant)
        if asset.source_type == source_type
        and asset.status == "ACTIVE"
        and (asset.source_auth or not needs_auth)
    ]
    candidates.sort(key=lambda a: (a.selection != "REGISTERED", a.created_at))
    if source_type == "web":  # web items go to a web asset that ingests only what it is given
        candidates = [a for a in candidates if a.selection == "REGISTERED"]
    return candidates[0] if candidates else None


def reach_of(settings: Settings, catalog: Catalog, box: SecretBox, asset: KnowledgeAsset):
    return SourceReach(
        files_dir=Path(settings.files_dir),
        allow_private_networks=settings.allow_private_networks,
        user_agent=settings.user_agent,
        http_timeout_seconds=settings.http_timeout_seconds,
        settings=settings,
        credentials=source_credentials(catalog, box, asset),
        state=asset.source_state,
    )


def discover(
    settings: Settings, catalog: Catalog, box: SecretBox, asset: KnowledgeAsset
) -> list[dict[str, Any]]:
    """The provider's importable items as the asset's credentials and parameters reach them,
    without those the asset has indexed already. Raises SourceError (categorized) when the
    provider refuses or fails."""
    source = build_source(
        asset.source_type, asset.source_config, reach_of(settings, catalog, box, asset)
    )
    imported = {
        key for key, doc in catalog.documents_by_key(asset.id).items() if doc.status == "COMPLETED"
    }
    return _without(source.discover(), imported)


def _without(nodes: list[dict[str, Any]], imported: set[str]) -> list[dict[str, Any]]:
    """``nodes`` without the leaves whose key is imported (and containers left empty)."""
    kept = []
    for node in nodes:
        if "key" in node:
            key = node.pop("key")
            if key not in imported:
                kept.append(node)
            continue
        for field in ("children", "pages"):
            if field in node:
                node[field] = _without(node[field], imported)
                if node[field]:
                    kept.append(node)
    return kept


def deep_crawl(settings: Settings, links: list[str], limit: int) -> list[str]:
    """Up to ``limit`` URLs found from the seed links (pages, their links on the same sites,
    sitemap entries), the seeds left out; fetched as an ingestion would (robots.txt, the
    network guard), nothing stored."""
    from fruxon_pipelines.sources.web import WebParameters, WebSource, in_scope, normalize_url

    params = WebParameters(urls=links, maxDepth=3, maxPages=limit)
    source = WebSource(
        params,
        allow_private_networks=settings.allow_private_networks,
        user_agent=settings.user_agent,
        timeout=settings.http_timeout_seconds,
    )
    seeds = {normalize_url(link) for link in links}
    found: dict[str, None] = {}
    deadline = time.monotonic() + DEEP_CRAWL_SECONDS
    with closing(source.fetch({})) as items:  # closed at once on break: its session too
        for item in items:
            candidates = [item.source_key] if item.status == "fetched" else []
            candidates += [k for k in (in_scope(params, link) for link in item.links) if k]
            for key in candidates:
                if key not in seeds:
                    found.setdefault(key)
            if len(found) >= limit or time.monotonic() > deadline:
                break
    return list(found)[:limit]
