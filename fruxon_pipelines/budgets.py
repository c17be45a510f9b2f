"""Token budgets of a knowledge asset: totals and UTC daily and monthly windows.

A budget is given in tokens (``tokenBudget``, ``dailyTokenBudget``, ``monthlyTokenBudget``) or
in USD (``costBudget``, ``dailyCostBudget``, ``monthlyCostBudget``), which is converted to
tokens with the model's current price; the stricter limit of a window applies. Ingestion
batches and search queries reserve what they may cost before they embed (see
:meth:`fruxon_pipelines.catalog.store.Catalog.reserve_tokens`), so a budget is never exceeded.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fruxon_pipelines.validation import field_problems

TOKEN_FIELDS = ("tokenBudget", "dailyTokenBudget", "monthlyTokenBudget")
COST_FIELDS = ("costBudget", "dailyCostBudget", "monthlyCostBudget")
WINDOWS = ("total", "daily", "monthly")


class InvalidBudget(ValueError):
    """The budget is not valid; the message names the field."""


class BudgetExceeded(Exception):
    """Spending ``tokens`` now would exceed a budget; the message says which and by how much."""


class TokenBudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenBudget: int | None = Field(default=None, ge=0)
    dailyTokenBudget: int | None = Field(default=None, ge=0)
    monthlyTokenBudget: int | None = Field(default=None, ge=0)


class CurrencyBudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    costBudget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    dailyCostBudget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    monthlyCostBudget: float | None = Field(default=None, ge=0, allow_inf_nan=False)


def _parse(model: type[BaseModel], data: Any, field: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidBudget(f"{field}: must be an object")
    try:
        parsed = model.model_validate(data)
    except ValidationError as error:
        raise InvalidBudget(field_problems(error, field)) from error
    # Only what was sent changes; an explicit null removes that limit.
    return {name: getattr(parsed, name) for name in data}


def merged_budget(
    current: dict[str, Any] | None, budget: Any = None, currency_budget: Any = None
) -> dict[str, Any]:
    """``current`` with the request's `budget` and `currencyBudget` members applied."""
    merged = dict(current or {})
    if budget is not None:
        merged.update(_parse(TokenBudgetIn, budget, "budget"))
    if currency_budget is not None:
        merged.update(_parse(CurrencyBudgetIn, currency_budget, "currencyBudget"))
    return {k: v for k, v in merged.items() if v is not None}


def windows_of(now_ms: int) -> tuple[str, str]:
    """(UTC day, UTC month) of an instant, as the usage ledger keys them."""
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")


@dataclass(frozen=True)
class Usage:
    total: int
    daily: int
    monthly: int

    def of(self, window: str) -> int:
        return getattr(self, window)


def token_limits(budget: dict[str, Any] | None, price_per_million: float) -> dict[str, int]:
    """window → the most tokens it may hold, from token and (priced) currency budgets."""
    limits: dict[str, int] = {}
    for window, tokens_field, cost_field in zip(WINDOWS, TOKEN_FIELDS, COST_FIELDS, strict=True):
        candidates = []
        if (budget or {}).get(tokens_field) is not None:
            candidates.append(int(budget[tokens_field]))
        if (budget or {}).get(cost_field) is not None and price_per_million > 0:
            candidates.append(math.floor(budget[cost_field] / price_per_million * 1_000_000))
        if candidates:
            limits[window] = min(candidates)
    return limits


def check(usage: Usage, limits: dict[str, int], tokens: int) -> None:
    """Raise BudgetExceeded when spending ``tokens`` more would pass a limit."""
    for window, limit in limits.items():
        after = usage.of(window) + tokens
        if after > limit:
            name = {"total": "total", "daily": "daily (UTC)", "monthly": "monthly (UTC)"}[window]
            raise BudgetExceeded(
                f"the {name} token budget of {limit:,} tokens would be exceeded by "
                f"{after - limit:,} tokens ({usage.of(window):,} used, {tokens:,} needed next)"
            )


@dataclass
class MeteredEmbedder:
    """An embedder whose every call is booked against its asset's budgets first.

    ``limits`` is called before each call, so a budget changed meanwhile applies to the next
    batch or search. Raises BudgetExceeded without embedding anything. Built by
    :func:`metered_embedder_for`."""

    embedder: Any
    catalog: Any
    asset_id: str
    _: KW_ONLY
    kind: str
    limits: Callable[[], dict[str, int]]
    operation_id: str | None = None
    clock: Callable[[], int] | None = None

    @property
    def info(self) -> Any:
        return self.embedder.info

    @property
    def tokenizer(self) -> Any:
        return self.embedder.tokenizer

    def embed_counted(self, texts: Any) -> tuple[Any, int]:
        from fruxon_pipelines.catalog.models import now_ms
        from fruxon_pipelines.embedding import bounded_call

        bound, call = bounded_call(self.embedder, texts)
        reservation = self.catalog.reserve_tokens(
            self.asset_id,
            bound,
            now=(self.clock or now_ms)(),
            kind=self.kind,
            limits=self.limits(),
            operation_id=self.operation_id,
        )
        try:
            matrix, used = call()
        except BaseException:
            self.catalog.release_tokens(reservation)
            raise
        self.catalog.settle_tokens(reservation, used)
        return matrix, used

    def embed(self, texts: Any) -> Any:
        return self.embed_counted(texts)[0]


def metered_embedder_for(
    asset: Any,
    model: Any,
    catalog: Any,
    box: Any,
    *,
    kind: str,
    operation_id: str | None = None,
    live_budget: bool = False,
    embedders: Callable[..., Any] | None = None,
) -> MeteredEmbedder:
    """The embedder of ``asset`` with ``model`` (an embedding catalogue entry), every call of it
    booked against the asset's budgets as ``kind`` (INGEST, SEARCH).

    The provider's API key is the asset's (``fruxon_pipelines.credentials``), opened with
    ``box``; no box, no key (a full-text search embeds nothing, so it needs none).
    ``live_budget`` reads the asset's budget again before every call, so a budget changed during
    a long run applies to its next batch; otherwise the budget of ``asset`` as given applies.
    ``embedders(provider, model, api_key)`` makes the embedder (default: get_embedder).
    """
    from fruxon_pipelines.credentials import embedding_api_key

    if embedders is None:
        from fruxon_pipelines.embedding import get_embedder as embedders
    api_key = None if box is None else embedding_api_key(box, catalog, asset, model.provider)
    price = model.price_per_million_tokens

    def limits() -> dict[str, int]:
        current = catalog.get_asset(asset.id) if live_budget else asset
        return token_limits(current.budget if current else None, price)

    return MeteredEmbedder(
        embedders(model.provider, model.model, api_key),
        catalog,
        asset.id,
        kind=kind,
        limits=limits,
        operation_id=operation_id,
    )
