"""fruxon's Python SDK: typed sync and async clients for the Assets API, the tenant-wide search
and the sources API, with retrievers for LangChain (``fruxon_client.langchain``) and LlamaIndex
(``fruxon_client.llamaindex``).

    from fruxon_client import Fruxon

    with Fruxon("http://127.0.0.1:8000", token, tenant="acme") as client:
        change = client.assets.create(config={"sourceType": "web", "parameters": {...}})
        change.operation.wait(progress=True)
        hits = client.search("how do I rotate a key?", top_k=5).results

It depends on httpx and pydantic only; the wire models in ``fruxon_client.models`` are the ones
the API itself validates and documents with.
"""

from __future__ import annotations

from typing import Any

from fruxon_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ContentTooLarge,
    Forbidden,
    FruxonError,
    NotFound,
    OperationFailed,
    ServerError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

__all__ = [
    "ApiError",
    "AssetChange",
    "AsyncFruxon",
    "AsyncOperation",
    "BadRequest",
    "Conflict",
    "ContentTooLarge",
    "Forbidden",
    "Fruxon",
    "FruxonError",
    "NotFound",
    "Operation",
    "OperationFailed",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
]
_CLIENT = {"AssetChange", "AsyncFruxon", "AsyncOperation", "Fruxon", "Operation"}


def __getattr__(name: str) -> Any:
    # The server imports fruxon_client.models; it need not load the clients for that.
    if name in _CLIENT:
        from fruxon_client import client

        return getattr(client, name)
    raise AttributeError(name)
