"""A local OpenAI-compatible embeddings server on 127.0.0.1 (real HTTP, the real JSON shapes).

``POST /v1/embeddings`` with ``Authorization: Bearer <key>`` and ``{"model", "input": [...],
"dimensions"?, "encoding_format"?}`` answers ``{"object": "list", "data": [{"object":
"embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``.

- Tokens are counted as whitespace-separated words (never more than the UTF-8 bytes, like a
  byte-level BPE), and :attr:`OpenAIServer.tokens_billed` adds up what ``usage`` reported.
- Vectors are deterministic per text (a seeded normal draw), so equal texts get equal vectors.
- :meth:`OpenAIServer.fail_next` queues error answers (429 with ``Retry-After``, 500, 401 …).
- Errors use OpenAI's body: ``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class OpenAIServer:
    def __init__(self, *, api_key: str = "sk-test", models: dict[str, int] | None = None) -> None:
        self.api_key = api_key
        self.accepted_keys = {api_key}  # `accept` adds more (assets' own keys, LLM configs')
        self.models = models or {"text-embedding-3-small": 64}
        self.tokens_billed = 0
        self.requests: list[dict] = []
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def accept(self, *keys: str) -> None:
        with self._lock:
            self.accepted_keys.update(keys)

    def keys_used(self) -> list[str]:
        """The key of every request answered 200, in order."""
        with self._lock:
            return [r["key"] for r in self.requests]

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self._lock:
            self._failures += [(status, headers)] * times

    def __enter__(self) -> OpenAIServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.api = self
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # what the handler calls
    def answer(self, headers, body: bytes) -> tuple[int, dict, dict[str, str]]:
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, extra = failure
            return status, _error(f"injected {status}", "rate_limit_exceeded"), extra
        key = (headers.get("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            known = key in self.accepted_keys
        if not known:
            return 401, _error("Incorrect API key provided", "invalid_api_key"), {}
        try:
            request = json.loads(body)
            texts = request["input"]
            model = request["model"]
        except (ValueError, KeyError, TypeError):
            return 400, _error("could not parse the JSON body", "invalid_request_error"), {}
        if model not in self.models:
            return 404, _error(f"The model `{model}` does not exist", "model_not_found"), {}
        if isinstance(texts, str):
            texts = [texts]
        dimensions = int(request.get("dimensions") or self.models[model])
        tokens = sum(len(t.split()) for t in texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(t, dimensions)}
            for i, t in enumerate(texts)
        ]
        with self._lock:
            self.tokens_billed += tokens
            self.requests.append(
                {"model": model, "texts": len(texts), "tokens": tokens, "key": key}
            )
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {"object": "list", "data": data, "model": model, "usage": usage}, {}


def _error(message: str, code: str) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


def _vector(text: str, dimensions: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dimensions).astype(float).tolist()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/embeddings":
            status, payload, extra = 404, _error("not found", "not_found"), {}
        else:
            status, payload, extra = self.server.api.answer(self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass
