"""What the framework retrievers share: one search, and a hit's metadata."""

from __future__ import annotations

from typing import Any

from fruxon_client import models as m


def hit_metadata(hit: m.SearchHitOut) -> dict[str, Any]:
    """Where a hit comes from and how well it matched, in snake_case as the frameworks'
    metadata usually is; ``source`` is the URL, as LangChain's loaders set it."""
    return {
        "source": hit.sourceUrl or hit.source,
        "source_url": hit.sourceUrl,
        "title": hit.title,
        "heading_path": hit.headingPath,
        "score": hit.score,
        "asset_id": hit.assetId,
        "document_id": hit.documentId,
        "chunk_id": hit.chunkId,
        "chunk_index": hit.chunkIndex,
        "source_type": hit.sourceType,
        "page_number": hit.pageNumber,
    }


def hit_text(hit: m.SearchHitOut) -> str:
    """The hit's text: with its neighbouring chunks when the search asked for them."""
    expanded = hit.contextText and hit.contextText != hit.headingPath  # else it is the heading
    return hit.contextText if expanded else hit.content
