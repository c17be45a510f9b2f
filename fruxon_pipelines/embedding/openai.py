"""The ``openai`` provider: any OpenAI-compatible ``POST {base}/embeddings`` endpoint (OpenAI,
Azure OpenAI, Ollama, vLLM, TEI).

Token counts are the server's own (``usage.prompt_tokens``): they are what is billed. Chunks
are still measured with the local WordPiece tokenizer (no tokenizer is downloaded at run
time); before a batch, budgets are checked against :meth:`OpenAIEmbedder.token_bound`, the
texts' UTF-8 length, which no byte-level BPE tokenizer exceeds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from fruxon_pipelines.backoff import retry_after_seconds
from fruxon_pipelines.errors import (
    CREDENTIALS,
    INVALID_CONFIG,
    PERMISSIONS,
    RATE_LIMIT,
    SOURCE_UNAVAILABLE,
    CategorizedError,
)

from .base import EmbeddingModel
from .tokenizer import MiniLMTokenizer, get_tokenizer

RETRYABLE = {429, 500, 502, 503, 504}


class EmbeddingServiceError(CategorizedError):
    """The endpoint refused or failed; ``category`` says what the user can do about it."""


class OpenAIEmbedder:
    def __init__(
        self,
        info: EmbeddingModel,
        *,
        base_url: str,
        api_key: str | None,
        max_retries: int = 6,
        timeout: float = 60.0,
        sleep: Any = time.sleep,
    ) -> None:
        import httpx

        self.info = info
        self.url = base_url.rstrip("/") + "/embeddings"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout)
        self.max_retries = max_retries
        self._sleep = sleep

    @property
    def tokenizer(self) -> MiniLMTokenizer:
        return get_tokenizer()

    @staticmethod
    def token_bound(texts: Sequence[str]) -> int:
        return sum(len(t.encode("utf-8")) for t in texts)

    def embed_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, int]:
        """Vectors (L2-normalised, in order) and the tokens the server says it read."""
        body = {"model": self.info.model, "input": list(texts), "encoding_format": "float"}
        if self.info.dimensions:
            body["dimensions"] = self.info.dimensions
        data = self._post(body)
        try:
            items = sorted(data["data"], key=lambda d: d["index"])
            matrix = np.asarray([d["embedding"] for d in items], dtype=np.float32)
            usage = data.get("usage") or {}
            tokens = int(usage.get("prompt_tokens", usage.get("total_tokens")))
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingServiceError(
                f"the embeddings endpoint answered without data or usage: {error!r}",
                SOURCE_UNAVAILABLE,
            ) from error
        if matrix.shape != (len(texts), self.info.dimensions):
            raise EmbeddingServiceError(
                f"the endpoint returned vectors of shape {matrix.shape}; the model is configured "
                f"with {self.info.dimensions} dimensions",
                INVALID_CONFIG,
            )
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms), tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_counted(texts)[0]

    def _post(self, body: dict) -> dict:
        return post_json(
            self._client, self.url, body, self.max_retries, self._sleep, "the embeddings endpoint"
        )


def post_json(
    client: Any,
    url: str,
    body: dict,
    max_retries: int,
    sleep: Any,
    service: str,
    error: type[CategorizedError] = EmbeddingServiceError,
) -> dict:
    """POST ``body`` to a model-serving endpoint (embeddings, rerank) and its JSON answer;
    429 and 5xx are retried after Retry-After (or a backoff), the rest raise ``error`` with the
    category the status means. ``service`` names the endpoint in messages."""
    import httpx

    for attempt in range(max_retries + 1):
        try:
            response = client.post(url, json=body)
        except httpx.HTTPError as failure:
            if attempt == max_retries:
                raise error(f"{service} is unreachable: {failure}", SOURCE_UNAVAILABLE) from failure
            sleep(retry_after_seconds(None, attempt, jitter=False))
            continue
        if response.status_code == 200:
            return response.json()
        if response.status_code in RETRYABLE and attempt < max_retries:
            sleep(retry_after_seconds(response.headers.get("retry-after"), attempt, jitter=False))
            continue
        category = {
            401: CREDENTIALS,
            403: PERMISSIONS,
            429: RATE_LIMIT,
            400: INVALID_CONFIG,
            404: INVALID_CONFIG,
        }.get(response.status_code, SOURCE_UNAVAILABLE)
        raise error(f"{service} answered {response.status_code}: {response.text[:300]}", category)
    raise AssertionError("unreachable")
