"""fruxon_client's own logic against a real HTTP server on 127.0.0.1 that answers as told:
when a 429 is retried and when not, errors that are not problem+json, exceptions that cross
processes, requests refused before they are sent, models that stay readable as the API grows,
secrets kept out of reprs, and a client that imports nothing of the server."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fruxon_client import Fruxon, NotFound, OperationFailed, ServerError, TooManyRequests, models
from fruxon_client.client import camel

PROBLEM = {"type": "about:blank", "title": "Too Many Requests", "status": 429, "detail": "wait"}


class Replies:
    """An HTTP server that answers each request with the next of its replies."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append((self.command, self.path))
                status, headers, body = outer.replies.pop(0)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, status: int, body: dict | bytes, **headers: str) -> None:
        if isinstance(body, dict):
            kind = "application/problem+json" if status >= 400 else "application/json"
            headers = {"Content-Type": kind, **headers}
            body = json.dumps(body).encode()
        self.replies.append((status, headers, body))


@pytest.fixture
def server() -> Iterator[Replies]:
    replies = Replies()
    yield replies
    replies.server.shutdown()
    replies.server.server_close()


def _usage(asset_id: str = "a1") -> dict:
    return {"assetId": asset_id, "totalTokenCount": 5, "totalChunkCount": 2, "operationCount": 1}


def test_a_429_with_retry_after_is_sent_again_up_to_max_retries(server):
    for _ in range(2):
        server.add(429, PROBLEM, **{"Retry-After": "0"})
    server.add(200, _usage())
    with Fruxon(server.url, "t", "acme", max_retries=2) as client:
        assert client.assets.usage("a1").totalTokenCount == 5
    assert len(server.requests) == 3

    for _ in range(3):
        server.add(429, PROBLEM, **{"Retry-After": "0"})
    with Fruxon(server.url, "t", "acme", max_retries=2) as client, pytest.raises(TooManyRequests):
        client.assets.usage("a1")
    assert len(server.requests) == 6 and not server.replies


def test_a_429_is_raised_at_once_without_retry_after_or_when_the_wait_is_too_long(server):
    server.add(429, PROBLEM | {"errorCategory": "BUDGET"})  # a budget: waiting will not help
    server.add(429, PROBLEM, **{"Retry-After": "120"})
    with Fruxon(server.url, "t", "acme", max_retry_wait=60) as client:
        with pytest.raises(TooManyRequests) as budget:
            client.assets.usage("a1")
        assert budget.value.retry_after is None and budget.value.error_category == "BUDGET"
        with pytest.raises(TooManyRequests) as limited:
            client.assets.usage("a1")
        assert limited.value.retry_after == 120
    assert len(server.requests) == 2


def test_an_error_that_is_not_problem_json_is_still_typed(server):
    server.add(502, b"<html>bad gateway</html>", **{"Content-Type": "text/html"})
    with Fruxon(server.url, "t", "acme") as client, pytest.raises(ServerError) as raised:
        client.assets.get("a1")
    assert raised.value.status == 502 and "bad gateway" in raised.value.detail


def test_errors_pickle_across_processes(server):
    server.add(429, PROBLEM, **{"Retry-After": "7"})
    with (
        Fruxon(server.url, "t", "acme", max_retry_wait=1) as client,
        pytest.raises(TooManyRequests) as raised,
    ):
        client.assets.usage("a1")
    again = pickle.loads(pickle.dumps(raised.value))
    assert (type(again), again.status, again.detail, again.retry_after) == (
        TooManyRequests,
        429,
        "wait",
        7,
    )
    missing = pickle.loads(pickle.dumps(NotFound({"status": 404, "title": "Not Found"})))
    assert isinstance(missing, NotFound) and missing.status == 404
    failed = models.OperationOut.model_validate(
        {
            **dict.fromkeys(("startedAt", "completedAt", "createdBy"), None),
            "id": "o1",
            "assetId": "a1",
            "tenantId": "acme",
            "type": "INGEST",
            "status": "FAILED",
            "done": True,
            "itemsProcessed": 0,
            "itemsTotal": 0,
            "tokenCount": 0,
            "chunkCount": 0,
            "cost": 0,
            "errorMessage": "over budget",
        }
    )
    assert pickle.loads(pickle.dumps(OperationFailed(failed))).operation == failed


def test_a_request_is_refused_before_it_is_sent(server):
    with Fruxon(server.url, "t", "acme", api_key="k") as client:
        with pytest.raises(ValueError, match="topK"):
            client.search("q", top_k=0)
        # The sources API's models ignore unknown fields, as the API does; a typo is refused.
        with pytest.raises(TypeError, match="documentIdsToAd"):
            client.sources.ingest(document_ids_to_ad=["https://example.com/"])
        with pytest.raises(TypeError, match="tenant"):
            Fruxon(server.url, "t").assets.get("a1")
    assert server.requests == []
    assert [camel(n) for n in ("top_k", "topK", "embedding_llm_config_id")] == [
        "topK",
        "topK",
        "embeddingLlmConfigId",
    ]


def test_a_response_with_members_a_newer_server_added_still_reads():
    config = {"strategy": "POLL", "pollFrequency": "DAILY", "timezone": "Mars/Olympus"}
    read = models.AutoUpdateConfig.model_validate(config | {"pollJitterSeconds": 30})
    assert read.timezone == "Mars/Olympus" and read.pollHour == "0"
    hit = {
        "content": "c",
        "assetId": "a",
        "sourceType": "web",
        "chunkId": "c1",
        "chunkIndex": 0,
        "documentId": "d",
        "score": 0.5,
        "newScoreBreakdown": {"vector": 0.5},
    } | dict.fromkeys(
        ("source", "sourceUrl", "startCharIdx", "endCharIdx", "pageNumber", "startLine")
        + ("endLine", "headingPath", "contextText"),
        None,
    )
    assert models.SearchHitOut.model_validate(hit).score == 0.5


def test_secrets_stay_out_of_reprs():
    webhook = models.WebhookRegistrationOut(
        id="w",
        provider="generic",
        authMode="HMAC",
        status="ACTIVE",
        expiresAt=None,
        createdAt=0,
        modifiedAt=0,
        webhookUrl="https://x/v1/webhooks/generic/sekrit-url-id",
        signingSecret="sekrit-signing",
    )
    request = models.CreateAssetRequest(
        config={"sourceType": "notion"},
        auth={"apiToken": "sekrit-token"},
        embedding={"apiKey": "sekrit-key"},
    )
    with Fruxon("http://127.0.0.1:9", "sekrit-bearer", "acme", api_key="sekrit-api") as client:
        shown = repr(webhook) + repr(request) + repr(client) + str(client)
    assert "sekrit" not in shown
    assert webhook.model_dump()["signingSecret"] == "sekrit-signing"  # still sent and read


def test_the_client_imports_nothing_of_the_server():
    check = (
        "import sys, fruxon_client, fruxon_client.client, fruxon_client.models;"
        "from fruxon_client import Fruxon, AsyncFruxon;"
        "server = {'fruxon_api', 'fruxon_pipelines', 'fruxon_cli', 'fastapi', 'dagster',"
        " 'lancedb', 'sqlalchemy', 'langchain_core', 'llama_index', 'mcp'};"
        "print(sorted({m.split('.')[0] for m in sys.modules} & server))"
    )
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    # And the API's side: its wire models come without the client's HTTP stack.
    models_only = "import sys, fruxon_client.models; print('httpx' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", models_only], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr
