"""A local reranker on 127.0.0.1 speaking the common ``POST /rerank`` wire format (Cohere, Jina,
vLLM): ``{model, query, documents, top_n}`` → ``{results: [{index, relevance_score}], usage:
{total_tokens}}``, with ``Authorization: Bearer <key>``.

Its relevance is made to disagree with any retriever, so a test sees the order change: a
document holding :attr:`RerankServer.favourite` scores 0.99, every other one less the later it
came (0.5 − index/1000). Tokens are whitespace-separated words of the query (once per document)
and of the documents; :attr:`RerankServer.tokens_billed` adds up what ``usage`` reported.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RerankServer:
    def __init__(self, *, api_key: str = "rk-test", favourite: str = "") -> None:
        self.api_key = api_key
        self.favourite = favourite
        self.tokens_billed = 0
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> RerankServer:
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

    def answer(self, headers, body: bytes) -> tuple[int, dict]:
        if (headers.get("Authorization") or "") != f"Bearer {self.api_key}":
            return 401, {"message": "invalid api token"}
        try:
            request = json.loads(body)
            query, documents = request["query"], request["documents"]
            top_n = int(request.get("top_n") or len(documents))
        except (ValueError, KeyError, TypeError):
            return 400, {"message": "invalid request"}
        scores = [
            0.99 if self.favourite and self.favourite in text else 0.5 - index / 1000
            for index, text in enumerate(documents)
        ]
        order = sorted(range(len(documents)), key=lambda i: scores[i], reverse=True)[:top_n]
        tokens = len(query.split()) * len(documents) + sum(len(d.split()) for d in documents)
        with self._lock:
            self.tokens_billed += tokens
            self.requests.append(request)
        results = [{"index": i, "relevance_score": scores[i]} for i in order]
        return 200, {"id": "rerank-1", "results": results, "usage": {"total_tokens": tokens}}


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/rerank":
            status, payload = 404, {"message": "not found"}
        else:
            status, payload = self.server.api.answer(self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass
