"""Reranking search candidates with a cross-encoder served over the common ``POST /rerank`` wire
format (Cohere, Jina, vLLM; Hugging Face TEI answers it too):
``{model, query, documents, top_n}`` → ``{results: [{index, relevance_score}], usage?}``.

Tokens are the server's count (``usage.total_tokens``) when it gives one; otherwise an estimate
with the local WordPiece tokenizer of what a cross-encoder reads: the query once per document,
plus every document.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fruxon_pipelines.errors import SOURCE_UNAVAILABLE, CategorizedError


class RerankError(CategorizedError):
    """The reranker refused or failed; ``category`` says what the operator can do about it."""


@dataclass(frozen=True)
class Reranked:
    """The reranker's order: ``(index into the documents, relevance score)``, best first, and
    the tokens it read (what is billed)."""

    order: list[tuple[int, float]]
    tokens: int


def estimate_tokens(query: str, documents: Sequence[str]) -> int:
    """What a cross-encoder reads for these pairs, by the local tokenizer: a budget's bound."""
    from fruxon_pipelines.embedding.tokenizer import get_tokenizer

    counts = get_tokenizer().count([query, *documents])
    return counts[0] * len(documents) + sum(counts[1:])


class HttpReranker:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        max_retries: int = 2,
        timeout: float = 30.0,
        sleep: Any = time.sleep,
    ) -> None:
        import httpx

        self.url = base_url.rstrip("/") + "/rerank"
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)
        self.max_retries = max_retries
        self._sleep = sleep

    def rerank(self, query: str, documents: Sequence[str], top_n: int) -> Reranked:
        from fruxon_pipelines.embedding.openai import post_json

        if not documents:
            return Reranked([], 0)
        body: dict[str, Any] = {"query": query, "documents": list(documents), "top_n": top_n}
        if self.model:
            body["model"] = self.model
        answer = post_json(
            self._client, self.url, body, self.max_retries, self._sleep, "the reranker", RerankError
        )
        try:
            # TEI answers a bare list with `score`; the others {results: [...relevance_score]}.
            results = answer["results"] if isinstance(answer, dict) else answer
            order = [
                (int(r["index"]), float(r.get("relevance_score", r.get("score")))) for r in results
            ]
            usage = (answer.get("usage") if isinstance(answer, dict) else None) or {}
            tokens = usage.get("total_tokens")
        except (KeyError, TypeError, ValueError) as error:
            raise RerankError(
                f"the reranker answered without results: {error!r}", SOURCE_UNAVAILABLE
            ) from error
        if any(not 0 <= index < len(documents) for index, _ in order):
            raise RerankError("the reranker answered an index out of range", SOURCE_UNAVAILABLE)
        order.sort(key=lambda item: item[1], reverse=True)
        counted = int(tokens) if tokens is not None else estimate_tokens(query, documents)
        return Reranked(order[:top_n], counted)
