"""`fruxon mcp`: fruxon's search and knowledge assets as tools for MCP hosts.

The server is a client of the REST API (through fruxon_client): each tool call is one API call
made with the caller's fruxon token, so the API's tenants, scopes, rate limits and budgets hold
unchanged, and the server keeps no state of its own.

- stdio: the host starts ``fruxon mcp`` and the token comes from ``--token``/``FRUXON_TOKEN``.
- streamable HTTP (``--transport http``): every request carries ``Authorization: Bearer
  <fruxon token>``, verified here as the API verifies it (this FRUXON_HOME's secret, or
  FRUXON_JWT_PUBLIC_KEY); a request without a valid one gets 401.

Tools: ``search`` (tenant-wide, with filters), ``list_assets``, ``get_document`` and
``refresh_asset``, which needs a token with the write scope.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import jwt
from pydantic import BaseModel, Field, ValidationError

from fruxon_client import ApiError, Fruxon
from fruxon_client import models as m

T = TypeVar("T")
MAX_DOCUMENT_CHUNKS = 500
INSTRUCTIONS = (
    "fruxon keeps a search index of a team's knowledge (web sites, files, Google Drive, Notion, "
    "Zendesk, Confluence). Use `search` to find passages that answer a question, and cite their "
    "sourceUrl; `list_assets` shows what is indexed; `get_document` reads one document whole."
)


class DocumentText(BaseModel):
    """A document of an asset and its text: its chunks in order, joined."""

    document: m.DocumentOut
    text: str
    chunksShown: int
    truncated: bool = Field(description=f"True when it has more than {MAX_DOCUMENT_CHUNKS} chunks.")


def _token_tenant(token: str) -> str:
    """The one tenant a token names (the API checks the token; this only reads it)."""
    try:
        tenants = jwt.decode(token, options={"verify_signature": False}).get("tenants")
    except jwt.PyJWTError:
        tenants = None
    if isinstance(tenants, list) and len(tenants) == 1 and tenants[0] != "*":
        return str(tenants[0])
    if not isinstance(tenants, list) or not tenants:
        which = "no tenant"
    elif "*" in tenants:
        which = "any tenant"
    else:
        which = "several tenants"
    from mcp.server.mcpserver.exceptions import ToolError

    raise ToolError(f"the token names {which}: start fruxon mcp with --tenant")


def build_server(
    api_url: str, *, token: str | None = None, tenant: str | None = None, verifier: Any = None
) -> Any:
    """The MCP server. ``token``: the one token of a stdio server; without it each HTTP
    request's verified bearer token is used. ``tenant``: the tenant the tools address
    (default: the token's, when it names one)."""
    from mcp.server import MCPServer
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp_types import ToolAnnotations

    auth = None
    if verifier is not None:
        # The issuer URL only fills OAuth metadata, which is off (no resource server URL).
        auth = AuthSettings(issuer_url=api_url, resource_server_url=None)
    server = MCPServer(
        "fruxon",
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        token_verifier=verifier,
        auth=auth,
    )

    def client() -> Fruxon:
        caller = token
        if caller is None:
            access = get_access_token()
            caller = access.token if access is not None else None
        if not caller:
            raise ToolError("no fruxon token: set FRUXON_TOKEN (stdio) or send a bearer token")
        return Fruxon(api_url, caller, tenant or _token_tenant(caller), max_retries=1)

    def api_call(tool: Callable[..., T]) -> Callable[..., T]:
        """The API's refusals (problems) and invalid arguments as the tool's error message."""

        @functools.wraps(tool)
        def call(*args: Any, **kwargs: Any) -> T:
            try:
                return tool(*args, **kwargs)
            except ApiError as error:
                raise ToolError(f"{error.status} {error.title}: {error.detail}") from error
            except ValidationError as error:
                raise ToolError(f"invalid arguments: {error}") from error

        return call

    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=reads)
    @api_call
    def search(
        query: Annotated[str, Field(description="What to look for, in plain words.")],
        top_k: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 5,
        search_mode: Literal["VECTOR", "FULL_TEXT", "HYBRID"] = "HYBRID",
        asset_ids: Annotated[
            list[str] | None, Field(description="Only these assets (default: all).")
        ] = None,
        filter: Annotated[
            m.SearchFilterIn | None,
            Field(description="Narrow by URL prefix or glob, title, source type, dates, ids."),
        ] = None,
        max_chunks_per_document: Annotated[int | None, Field(ge=1, le=100)] = None,
    ) -> m.SearchResponse:
        """Search the tenant's knowledge assets; the best passages first, each with its
        source URL, title, heading path and score."""
        fields: dict[str, Any] = {"top_k": top_k, "search_mode": search_mode}
        for name, value in (
            ("asset_ids", asset_ids),
            ("filter", filter),
            ("max_chunks_per_document", max_chunks_per_document),
        ):
            if value is not None:
                fields[name] = value
        with client() as fruxon:
            return fruxon.search(query, **fields)

    @server.tool(annotations=reads)
    @api_call
    def list_assets(
        search: Annotated[str | None, Field(description="Only names containing this.")] = None,
    ) -> list[m.AssetOut]:
        """The tenant's knowledge assets (sources kept in the index) and their state."""
        with client() as fruxon:
            return list(fruxon.assets.list(search=search, page_size=500))

    @server.tool(annotations=reads)
    @api_call
    def get_document(asset_id: str, document_id: str) -> DocumentText:
        """One document of an asset (ids as search hits give them), with its whole text."""
        with client() as fruxon:
            document = fruxon.documents.get(asset_id, document_id)
            chunks = fruxon.documents.chunks(asset_id, document_id, page_size=100)
            texts = [chunk.content for chunk in itertools.islice(chunks, MAX_DOCUMENT_CHUNKS)]
            total = chunks.total_count or len(texts)
        return DocumentText(
            document=document,
            text="\n\n".join(texts),
            chunksShown=len(texts),
            truncated=total > len(texts),
        )

    # It starts work, changes no content; calling it twice is refused while the first runs.
    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True))
    @api_call
    def refresh_asset(
        asset_id: str,
        document_ids: Annotated[
            list[str] | None, Field(description="Only these documents (default: all).")
        ] = None,
        force: Annotated[bool, Field(description="Re-embed even what has not changed.")] = False,
    ) -> m.LongOperation:
        """Fetch the asset's source again and index what changed (needs a token with the
        write scope); returns the operation it started."""
        fields: dict[str, Any] = {"force": force}
        if document_ids is not None:
            fields["document_ids"] = document_ids
        with client() as fruxon:
            return fruxon.assets.refresh(asset_id, **fields).long_operation

    return server


class FruxonTokenVerifier:
    """The HTTP transport's check of a bearer token: the API's own (fruxon_api.auth), with the
    API's key: FRUXON_JWT_PUBLIC_KEY, or the secret in FRUXON_HOME, read once."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._secret: bytes | None = None
        if not settings.jwt_public_key:
            from fruxon_api.auth import ensure_jwt_secret

            path = settings.jwt_secret_path
            if not path.exists():  # ensure_jwt_secret would make a new one no token matches
                raise FileNotFoundError(
                    f"no API token secret at {path}: run fruxon mcp with the API's FRUXON_HOME "
                    "(or FRUXON_JWT_PUBLIC_KEY), so that it accepts the API's tokens"
                )
            self._secret = ensure_jwt_secret(settings)

    async def verify_token(self, token: str) -> Any:
        from mcp.server.auth.provider import AccessToken

        from fruxon_api.auth import verify_token
        from fruxon_api.problems import Problem

        try:
            principal = verify_token(self._settings, token, self._secret)
        except Problem:
            return None
        return AccessToken(
            token=token,
            client_id=principal.subject,
            subject=principal.subject,
            scopes=sorted(principal.scopes),
            claims={"tenants": sorted(principal.tenants)},
        )


def serve(
    settings: Any,
    *,
    transport: str,
    api_url: str,
    token: str | None,
    tenant: str | None,
    host: str,
    port: int,
) -> None:
    if transport == "stdio":
        build_server(api_url, token=token, tenant=tenant).run("stdio")
        return
    verifier = FruxonTokenVerifier(settings)
    server = build_server(api_url, tenant=tenant, verifier=verifier)
    server.run("streamable-http", host=host, port=port)
