"""`fruxon mcp` with the official MCP client library against the real stack, over stdio and
over streamable HTTP: the four tools, the token's tenant and scopes, refusals as tool errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sitegen import Site, generate_pages

from e2e.conftest import wait_for
from fruxon_api.auth import READ, WRITE, issue_token
from fruxon_client import Fruxon
from fruxon_pipelines.stack import free_port

pytestmark = pytest.mark.e2e
TENANT = "mcp"
NEEDLE = "The observatory dome opens only on cloudless nights after ten."
TOOLS = {"search", "list_assets", "get_document", "refresh_asset"}
FRUXON = str(Path(sys.executable).parent / "fruxon")


def _token(stack, *scopes: str, tenants=(TENANT,)) -> str:
    return issue_token(stack.settings, tenants=list(tenants), scopes=list(scopes))


@pytest.fixture(scope="module")
def asset_id(stack):
    with Site() as site, Fruxon(stack.api_url(), _token(stack, READ, WRITE), TENANT) as client:
        pages = generate_pages(3, links="all", seed=47)
        pages["/page-1.html"] = pages["/page-1.html"].replace("</h1>", f"</h1><p>{NEEDLE}</p>", 1)
        for path, body in pages.items():
            site.put(path, body)
        change = client.assets.create(
            name="observatory",
            config={"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
            embedding={"provider": "local", "model": "all-MiniLM-L6-v2"},
        )
        assert change.operation.wait(timeout=300).status == "COMPLETED"
        yield change.asset.id


@asynccontextmanager
async def _stdio(stack, token: str, *args: str):
    from mcp import Client, StdioServerParameters

    # The client starts the server with a minimal environment: hand it the stack's settings.
    env = dict(stack.environment) | {"FRUXON_TOKEN": token}
    command = [FRUXON, "mcp", "--api-url", stack.api_url(), *args]
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with Client(params) as client:
        yield client


@pytest.fixture(scope="module")
def http_server(stack):
    """`fruxon mcp --transport http` beside the stack, verifying tokens as the API does."""
    port = free_port()
    command = [FRUXON, "mcp", "--transport", "http", "--port", str(port)]
    command += ["--api-url", stack.api_url()]
    process = subprocess.Popen(command, env=stack.environment, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"

    def listening():
        try:
            return httpx.post(url, json={}, timeout=2).status_code == 401
        except httpx.TransportError:
            return process.poll() is not None and pytest.fail(process.stderr.read().decode())

    wait_for(listening, 60, "fruxon mcp to listen")
    yield url
    process.terminate()
    process.wait(timeout=30)


@asynccontextmanager
async def _http(url: str, token: str):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def _use_every_tool(client, asset_id: str, *, may_write: bool) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    assert "filter" in tools["search"].input_schema["properties"]

    listed = await client.call_tool("list_assets", {})
    assert not listed.is_error, listed.content
    [asset] = listed.structured_content["result"]
    assert (asset["id"], asset["displayName"]) == (asset_id, "observatory")

    found = await client.call_tool("search", {"query": "when does the dome open?", "top_k": 3})
    assert not found.is_error, found.content
    best = found.structured_content["results"][0]
    assert NEEDLE in best["content"] and best["sourceUrl"].endswith("/page-1.html")
    assert best["score"] > 0 and best["assetId"] == asset_id
    narrowed = await client.call_tool(
        "search",
        {"query": "dome", "filter": {"urlGlob": "**/page-2.html"}, "search_mode": "FULL_TEXT"},
    )
    assert {h["sourceUrl"] for h in narrowed.structured_content["results"]} <= {
        best["sourceUrl"].replace("page-1", "page-2")
    }

    read = await client.call_tool(
        "get_document", {"asset_id": asset_id, "document_id": best["documentId"]}
    )
    assert not read.is_error, read.content
    assert NEEDLE in read.structured_content["text"]
    assert read.structured_content["document"]["sourceUrl"] == best["sourceUrl"]
    assert read.structured_content["truncated"] is False

    missing = await client.call_tool(
        "get_document",
        {"asset_id": asset_id, "document_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert missing.is_error and "404 Not Found" in missing.content[0].text

    refreshed = await client.call_tool("refresh_asset", {"asset_id": asset_id})
    if may_write:
        assert not refreshed.is_error, refreshed.content
        operation = refreshed.structured_content
        assert operation["resourceName"] == asset_id and operation["status"] in {
            "PENDING",
            "RUNNING",
        }
    else:
        assert refreshed.is_error
        assert "403 Forbidden: this token lacks the assets:write scope" in (
            refreshed.content[0].text
        )


def _settle(stack, asset_id: str) -> None:
    """Wait for the refresh a tool started, so the next test's refresh is not refused."""
    with Fruxon(stack.api_url(), _token(stack, READ), TENANT) as client:
        for operation in client.operations.list(asset_id):
            client.operations.handle(asset_id, operation.id).wait(timeout=300)


def test_stdio_with_a_read_token_searches_and_may_not_refresh(stack, asset_id):
    async def session() -> None:
        async with _stdio(stack, _token(stack, READ)) as client:
            await _use_every_tool(client, asset_id, may_write=False)

    asyncio.run(session())


def test_stdio_with_a_write_token_refreshes(stack, asset_id):
    async def session() -> None:
        # A token of several tenants needs --tenant.
        token = _token(stack, READ, WRITE, tenants=(TENANT, "elsewhere"))
        async with _stdio(stack, token, "--tenant", TENANT) as client:
            await _use_every_tool(client, asset_id, may_write=True)
        async with _stdio(stack, token) as client:
            unsure = await client.call_tool("list_assets", {})
            assert unsure.is_error and "--tenant" in unsure.content[0].text

    asyncio.run(session())
    _settle(stack, asset_id)


def test_streamable_http_uses_each_callers_token(stack, asset_id, http_server):
    async def sessions() -> None:
        async with _http(http_server, _token(stack, READ)) as reader:
            await _use_every_tool(reader, asset_id, may_write=False)
        async with _http(http_server, _token(stack, READ, WRITE)) as writer:
            await _use_every_tool(writer, asset_id, may_write=True)
        async with _http(http_server, _token(stack, READ, tenants=("other",))) as stranger:
            listed = await stranger.call_tool("list_assets", {})
            assert not listed.is_error and listed.structured_content["result"] == []

    asyncio.run(sessions())
    _settle(stack, asset_id)


def test_streamable_http_refuses_a_request_without_a_valid_token(stack, http_server):
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    assert httpx.post(http_server, json=ping, headers=accept).status_code == 401
    forged = issue_token(stack.settings, tenants=[TENANT], scopes=[READ]) + "x"
    refused = httpx.post(
        http_server, json=ping, headers=accept | {"Authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401 and "Bearer" in refused.headers["WWW-Authenticate"]
