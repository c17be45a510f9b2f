"""A LlamaIndex retriever over fruxon's search (``pip install 'fruxon[llamaindex]'``).

    from llama_index.core.query_engine import RetrieverQueryEngine
    from fruxon_client import Fruxon
    from fruxon_client.llamaindex import FruxonRetriever

    retriever = FruxonRetriever(Fruxon(url, token, tenant="acme"), top_k=5, search_mode="HYBRID")
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

Each hit becomes a ``NodeWithScore`` (a ``TextNode`` with the hit's score) whose metadata holds
its ``source_url``, ``heading_path``, ``score``, ``title`` and ids. Keyword arguments are fields
of the search request: ``top_k``, ``search_mode``, ``asset_ids``, ``filter`` ….
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from fruxon_client import models as m
from fruxon_client.hits import hit_metadata, hit_text


def _node(hit: m.SearchHitOut) -> NodeWithScore:
    # Only the URL and the heading go into the text the LLM sees with each node; ids do not.
    shown = {"source_url", "title", "heading_path"}
    metadata = hit_metadata(hit)
    node = TextNode(
        id_=hit.chunkId,
        text=hit_text(hit),
        metadata=metadata,
        excluded_llm_metadata_keys=[key for key in metadata if key not in shown],
        excluded_embed_metadata_keys=list(metadata),
    )
    return NodeWithScore(node=node, score=hit.score)


class FruxonRetriever(BaseRetriever):
    """Nodes for a query from one tenant-wide search of fruxon."""

    def __init__(
        self,
        client: Any,
        *,
        async_client: Any = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        **search_kwargs: Any,
    ) -> None:
        """``client``: a fruxon_client.Fruxon; ``async_client``: an AsyncFruxon for aretrieve
        (else the sync client is used there too)."""
        self._client = client
        self._async_client = async_client
        self._search_kwargs = search_kwargs
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self._client.search(query_bundle.query_str, **self._search_kwargs)
        return [_node(hit) for hit in found.results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self._async_client is None:  # the sync client, off the event loop
            return await asyncio.to_thread(self._retrieve, query_bundle)
        found = await self._async_client.search(query_bundle.query_str, **self._search_kwargs)
        return [_node(hit) for hit in found.results]
