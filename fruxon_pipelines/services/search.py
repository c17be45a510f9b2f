"""Search inside one knowledge asset, as the API (and any other interface) asks for it.

The query is embedded with the model the asset's searches use (the previous one until a model
change is complete), booked against the asset's budgets, and the search itself is
``fruxon_pipelines.search``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fruxon_pipelines.budgets import BudgetExceeded, metered_embedder_for
from fruxon_pipelines.catalog.models import KnowledgeAsset, serving_model_config
from fruxon_pipelines.embedding import find_model
from fruxon_pipelines.errors import BUDGET, CategorizedError
from fruxon_pipelines.search import SearchHit, SearchRequest, search_asset

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services


class QueryNotEmbedded(CategorizedError):
    """The query could not be embedded: the embedding provider refused it (its credentials, a
    rate limit, an outage: ``category`` says which)."""


class QueryOverBudget(QueryNotEmbedded):
    """Embedding the query would exceed a token budget of the asset."""

    def __init__(self, message: str) -> None:
        super().__init__(message, BUDGET)


def search_in_asset(
    svc: Services, asset: KnowledgeAsset, request: SearchRequest
) -> list[SearchHit]:
    """The hits of ``request`` in ``asset`` (already found visible to the caller).

    Raises QueryOverBudget or QueryNotEmbedded when the query cannot be embedded."""
    from fruxon_pipelines.secretbox import secret_box

    config = serving_model_config(asset)  # the previous model until a change is complete
    model = find_model(config["provider"], config["model"])
    try:
        # The query's embedding is booked against the asset's budgets (FULL_TEXT embeds
        # nothing, so it needs no key).
        box = None if request.mode == "FULL_TEXT" else secret_box(svc.settings)
        embedder = metered_embedder_for(asset, model, svc.catalog, box, kind="SEARCH")
        return search_asset(
            svc.vectors,
            tenant=asset.tenant,
            asset_id=asset.id,
            embedding_model=model,
            embedder=embedder,
            request=request,
        )
    except BudgetExceeded as exceeded:
        raise QueryOverBudget(f"the query cannot be embedded: {exceeded}") from exceeded
    except CategorizedError as error:
        raise QueryNotEmbedded(f"the query cannot be embedded: {error}", error.category) from error
