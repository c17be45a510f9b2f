"""`fruxon`: create knowledge assets, launch ingestion, mint API tokens, run the stack.

Imports stay inside the commands: every call pays only for what it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fruxon_pipelines.domain import DEFAULT_EMBEDDING  # plain data: the options' defaults

app = typer.Typer(no_args_is_help=True, help="fruxon: keep a RAG index in sync with its sources.")
assets_app = typer.Typer(no_args_is_help=True, help="Knowledge assets (one configured source).")
db_app = typer.Typer(no_args_is_help=True, help="The catalog database.")
apikey_app = typer.Typer(
    no_args_is_help=True, help="Workspace API keys of the sources API (/v2/documents/public)."
)
app.add_typer(assets_app, name="assets")
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")


def _settings():
    from fruxon_pipelines.settings import get_settings

    return get_settings()


def _catalog():
    from fruxon_pipelines.catalog.store import Catalog

    return Catalog(_settings().catalog_url)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply catalog migrations (also done on every start)."""
    from fruxon_pipelines.catalog.store import migrate

    migrate(_settings().catalog_url)
    typer.echo("catalog is at the newest revision")


@app.command()
def stack() -> None:
    """Start the Dagster webserver and daemon on FRUXON_HOME (what `make run` does)."""
    from fruxon_pipelines.stack import run_stack

    raise typer.Exit(code=run_stack(_settings()))


@app.command()
def token(
    tenant: Annotated[list[str], typer.Option(help="Tenant the token may use (repeatable).")],
    scope: Annotated[str, typer.Option(help="read or write")] = "write",
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
    subject: Annotated[str, typer.Option(help="Who the token speaks for.")] = "cli",
) -> None:
    """Print a bearer token for the API of this FRUXON_HOME's stack."""
    from fruxon_api.auth import READ, WRITE, issue_token

    if scope not in {"read", "write"}:
        _fail("--scope is read or write")
    scopes = [READ] if scope == "read" else [READ, WRITE]
    typer.echo(
        issue_token(_settings(), tenants=tenant, scopes=scopes, subject=subject, ttl_seconds=ttl)
    )


@app.command()
def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (an MCP host starts this command) or http.")
    ] = "stdio",
    tenant: Annotated[
        str | None, typer.Option(help="The tenant the tools address (default: the token's).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FRUXON_TOKEN",
            help="stdio: the fruxon token every call is made with (`fruxon token`); best passed "
            "through the variable. http: each request sends its own.",
        ),
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="The API the tools call (default: this stack's).")
    ] = None,
    host: Annotated[str, typer.Option(help="http: the address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: the port (path /mcp).")] = 8765,
) -> None:
    """Serve fruxon's search and assets to MCP hosts: tools search, list_assets,
    get_document and refresh_asset (write scope), over stdio or streamable HTTP."""
    if transport not in {"stdio", "http"}:
        _fail("--transport is stdio or http")
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        _fail("the MCP server needs the mcp package: pip install 'fruxon[mcp]'")
    from fruxon_cli.mcp_server import serve

    if transport == "stdio" and not token:
        _fail("stdio needs a token: set FRUXON_TOKEN (see `fruxon token`)")
    settings = _settings()
    try:
        serve(
            settings,
            transport=transport,
            api_url=api_url or settings.api_base_url,
            token=token if transport == "stdio" else None,
            tenant=tenant,
            host=host,
            port=port,
        )
    except FileNotFoundError as error:  # no key to check the API's tokens with
        _fail(str(error))


@apikey_app.command("create")
def create_api_key(
    tenant: Annotated[str, typer.Option(help="The workspace (tenant) the key acts in.")],
    scope: Annotated[str, typer.Option(help="read (GET routes) or write (all routes)")] = "read",
    name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
) -> None:
    """Mint a key and print it once; only its hash is stored."""
    from fruxon_pipelines.services.api_keys import mint_api_key

    try:
        row, key = mint_api_key(_catalog(), tenant, scope, name)
    except ValueError as error:
        _fail(str(error))
    typer.echo(
        f"created API key {row.id} ({row.scope}, tenant {row.tenant}); it is shown once:", err=True
    )
    typer.echo(key)


@apikey_app.command("list")
def list_api_keys(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List keys (never the keys themselves): id, tenant, scope, prefix, state, name."""
    for row in _catalog().list_api_keys(tenant):
        state = "revoked" if row.revoked_at else "live"
        typer.echo(
            f"{row.id}  {row.tenant:<12} {row.scope:<5} {row.prefix}…  {state:<7} {row.name}"
        )


@apikey_app.command("revoke")
def revoke_api_key(key_id: str) -> None:
    """Revoke a key: it is refused (401) from the next request on."""
    if not _catalog().revoke_api_key(key_id):
        _fail(f"no live API key {key_id}")
    typer.echo(f"revoked API key {key_id}")


def _secret_option(envvar: str, what: str) -> typer.models.OptionInfo:
    """An option for a secret, best passed through ``envvar``: a command line is visible to
    every user of the machine and stays in shell histories."""
    return typer.Option(
        envvar=envvar, help=f"{what}; sealed at rest. Best passed through the variable."
    )


def _json_option(value: str | None, option: str) -> dict | None:
    import json

    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        _fail(f"{option}: not valid JSON ({error})")
    if not isinstance(parsed, dict):
        _fail(f"{option}: must be a JSON object")
    return parsed


@assets_app.command("create")
def create_asset(
    tenant: Annotated[str, typer.Option(help="Tenant the asset belongs to.")],
    url: Annotated[list[str], typer.Option("--url", help="Start URL or sitemap (web).")] = None,
    file: Annotated[Path | None, typer.Option(help="A file to ingest (file source).")] = None,
    source_type: Annotated[
        str | None,
        typer.Option(
            help="A connector (google_drive, notion, zendesk, confluence); its "
            "parameters go in --parameters and its credentials in --auth."
        ),
    ] = None,
    parameters: Annotated[
        str | None, typer.Option(help="The source's parameters, a JSON object (as the API's).")
    ] = None,
    auth: Annotated[
        str | None,
        _secret_option(
            "FRUXON_ASSET_AUTH", "The source's credentials, a JSON object (the API's `auth`)"
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    max_depth: Annotated[int, typer.Option(help="Link hops from the start URLs.")] = 0,
    max_pages: Annotated[int, typer.Option(help="Most pages to index.")] = 1000,
    include: Annotated[list[str], typer.Option(help="URL glob to include.")] = None,
    exclude: Annotated[list[str], typer.Option(help="URL glob to exclude.")] = None,
    provider: Annotated[str, typer.Option(help="Embedding provider.")] = DEFAULT_EMBEDDING[
        "provider"
    ],
    model: Annotated[str, typer.Option(help="Embedding model.")] = DEFAULT_EMBEDDING["model"],
    chunk_size: Annotated[int, typer.Option(help="Chunk size in model tokens.")] = (
        DEFAULT_EMBEDDING["chunkSize"]
    ),
    chunk_overlap: Annotated[int, typer.Option(help="Chunk overlap in model tokens.")] = (
        DEFAULT_EMBEDDING["chunkOverlap"]
    ),
    embedding_api_key: Annotated[
        str | None,
        _secret_option("FRUXON_ASSET_EMBEDDING_API_KEY", "The embedding provider's API key"),
    ] = None,
    token_budget: Annotated[int | None, typer.Option(help="Most tokens, ever.")] = None,
    daily_token_budget: Annotated[int | None, typer.Option(help="Most tokens a UTC day.")] = None,
    monthly_token_budget: Annotated[
        int | None, typer.Option(help="Most tokens a UTC month.")
    ] = None,
    auto_update: Annotated[
        str | None, typer.Option(help="Auto-update config, a JSON object (the API's autoUpdate).")
    ] = None,
    ingest: Annotated[bool, typer.Option(help="Launch the first ingestion now.")] = True,
    wait: Annotated[bool, typer.Option(help="Show progress until the run ends.")] = True,
) -> None:
    """Create a knowledge asset (and launch its first ingestion), as the API does: the same
    checks, budgets, auto-update and credentials."""
    from fruxon_pipelines.domain import TENANT_PATTERN
    from fruxon_pipelines.services import assets
    from fruxon_pipelines.services.errors import ServiceError

    if sum(map(bool, (url, file, source_type))) != 1:
        _fail("give one of --url (web), --file (file) or --source-type (a connector)")
    if not TENANT_PATTERN.match(tenant):
        _fail("tenant must be 1-64 letters, digits, '-' or '_'")
    budget = {
        field: value
        for field, value in (
            ("tokenBudget", token_budget),
            ("dailyTokenBudget", daily_token_budget),
            ("monthlyTokenBudget", monthly_token_budget),
        )
        if value is not None
    }
    request = assets.AssetRequest(
        tenant=tenant,
        source_type="web" if url else "file" if file else source_type,
        parameters=_json_option(parameters, "--parameters") or {},
        created_by="cli",
        name=name,
        embedding=assets.EmbeddingRequest(
            config={
                "provider": provider,
                "model": model,
                "chunkSize": chunk_size,
                "chunkOverlap": chunk_overlap,
            },
            api_key=embedding_api_key,
        ),
        auth=_json_option(auth, "--auth"),
        auto_update=_json_option(auto_update, "--auto-update"),
        budget=budget or None,
    )
    if url:
        request.parameters = {
            "urls": url,
            "maxDepth": max_depth,
            "maxPages": max_pages,
            "includePatterns": include or [],
            "excludePatterns": exclude or [],
        }
    svc = _services()
    try:
        if file:
            change = assets.create_file_asset(
                svc, request, file.name, _copy_of(file), ingest=ingest
            )
        else:
            change = assets.create_asset(svc, request, ingest=ingest)
    except ServiceError as error:
        _fail(str(error))
    asset = change.asset
    typer.echo(f"created knowledge asset {asset.id} ({asset.source_type}, tenant {tenant})")
    if change.webhook is not None:
        from fruxon_pipelines.webhooks import webhook_url

        url_shown = webhook_url(
            svc.settings.api_base_url,
            change.webhook.registration.provider,
            change.webhook.webhook_id,
        )
        typer.echo(f"webhook (shown once): {url_shown}")
        if change.webhook.registration.auth_mode == "HMAC":
            typer.echo(f"signing secret (shown once): {change.webhook.signing_secret}")
    if change.launch_error is not None:  # the operation waits for the stack's sensor
        _fail(change.launch_error)
    if change.operation is not None:
        _show_and_watch(svc, change.operation, wait)


def _copy_of(file: Path):
    """What copies ``file`` into the asset's own folder; a path that is no file is refused."""
    from fruxon_pipelines.services.assets import copy_of
    from fruxon_pipelines.services.errors import InvalidRequest

    if not file.is_file():
        raise InvalidRequest(f"{file} is not a file")
    return copy_of(file)


@assets_app.command("list")
def list_assets(tenant: Annotated[str | None, typer.Option()] = None) -> None:
    """List knowledge assets with their document counts."""
    catalog = _catalog()
    for asset in catalog.list_assets(tenant):
        count = catalog.count_documents(asset.id)
        typer.echo(
            f"{asset.id}  {asset.tenant:<12} {asset.source_type:<5} {count:>6} docs  {asset.name}"
        )


@assets_app.command("documents")
def list_documents(asset_id: str) -> None:
    """List an asset's documents with status, chunk count and error."""
    catalog = _catalog()
    if catalog.get_asset(asset_id) is None:
        _fail(f"knowledge asset {asset_id} does not exist")
    for doc in sorted(catalog.documents_by_key(asset_id).values(), key=lambda d: d.source_key):
        error = f"  ({doc.error_message})" if doc.error_message else ""
        typer.echo(
            f"{doc.id}  {doc.status:<10} {doc.chunk_count:>5} chunks  {doc.source_key}{error}"
        )


@app.command()
def ingest(
    asset_id: str,
    document_id: Annotated[list[str], typer.Option(help="Refresh only this document.")] = None,
    force: Annotated[bool, typer.Option(help="Re-embed even unchanged content.")] = False,
    wait: Annotated[bool, typer.Option(help="Show progress until the run ends.")] = True,
) -> None:
    """Launch an ingestion run of a knowledge asset (it shows in the Dagster UI)."""
    from fruxon_pipelines.services import assets
    from fruxon_pipelines.services.errors import ServiceError
    from fruxon_pipelines.services.operations import LaunchError

    svc = _services()
    asset = svc.catalog.get_asset(asset_id)
    if asset is None:
        _fail(f"knowledge asset {asset_id} does not exist")
    try:
        operation = assets.refresh_asset(
            svc,
            asset,
            "cli",
            document_ids=document_id or [],
            force=force,
            required=True,
            queue_when_busy=True,  # the run queue holds it behind the asset's running one
        )
    except (ServiceError, LaunchError) as error:
        _fail(str(error))
    _show_and_watch(svc, operation, wait)


def _services():
    from fruxon_pipelines.services.context import Services

    return Services.from_settings(_settings())


def _show_and_watch(svc, operation, wait: bool) -> None:
    from fruxon_pipelines.domain import OperationStatus

    settings = svc.settings
    typer.echo(
        f"operation {operation.id}: run {operation.run_id} "
        f"(http://{settings.dagster_host}:{settings.dagster_port}/runs/{operation.run_id})"
    )
    if wait and _watch(svc, operation.id) != OperationStatus.COMPLETED:
        raise typer.Exit(code=1)


def _watch(svc, operation_id: str) -> str:
    """Progress until the operation ends, read through the same status path as the API's (which
    settles the outcome in the catalog)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fruxon_pipelines.domain import OperationStatus
    from fruxon_pipelines.services.operations import wait_for_operation

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("PENDING", total=None, extra="")

        def show(operation, state) -> None:
            bar.update(
                task,
                description=state.status.value,
                total=operation.items_total or None,
                completed=operation.items_processed,
                extra=f"{operation.chunk_count} chunks, {operation.token_count} tokens embedded",
            )

        state = wait_for_operation(svc, operation_id, show)
    if state.status == OperationStatus.FAILED:
        message = state.error or "see the run in the Dagster UI"
        typer.secho(f"FAILED: {message}", fg=typer.colors.RED, err=True)
    else:
        typer.echo(state.status.value)
    return state.status.value
