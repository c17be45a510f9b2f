"""A LangChain retriever over fruxon's search (``pip install 'fruxon[langchain]'``).

    from fruxon_client import Fruxon
    from fruxon_client.langchain import FruxonRetriever

    retriever = FruxonRetriever(
        client=Fruxon(url, token, tenant="acme"),
        search_kwargs={"top_k": 5, "search_mode": "HYBRID"},
    )
    documents = retriever.invoke("how do I rotate a key?")

Each hit becomes a ``Document`` whose metadata holds its ``source_url``, ``heading_path``,
``score``, ``title`` and ids. The search is tenant-wide, or narrowed by ``asset_ids``,
``filter`` and any other field of the search request given in ``search_kwargs``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from fruxon_client import models as m
from fruxon_client.hits import hit_metadata, hit_text


def _document(hit: m.SearchHitOut) -> Document:
    return Document(page_content=hit_text(hit), metadata=hit_metadata(hit), id=hit.chunkId)


class FruxonRetriever(BaseRetriever):
    """Documents for a query from one tenant-wide search of fruxon."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Any = Field(description="A fruxon_client.Fruxon (sync calls).")
    async_client: Any = Field(
        default=None, description="A fruxon_client.AsyncFruxon for ainvoke; else the sync one."
    )
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields of the search request: top_k, search_mode, asset_ids, filter, …",
    )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        found = self.client.search(query, **self.search_kwargs)
        return [_document(hit) for hit in found.results]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        found = await self.async_client.search(query, **self.search_kwargs)
        return [_document(hit) for hit in found.results]
