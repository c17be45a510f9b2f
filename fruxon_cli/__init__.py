"""`fruxon`: create knowledge assets, launch ingestion, mint API tokens, run the stack.

Imports stay inside the commands: every call pays only for what it uses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

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


@apikey_app.command("create")
def create_api_key(
    tenant: Annotated[str, typer.Option(help="The workspace (tenant) the key acts in.")],
    scope: Annotated[str, typer.Option(help="read (GET routes) or write (all routes)")] = "read",
    name: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
) -> None:
    """Mint a key and print it once; only its hash is stored."""
    from fruxon_pipelines.api_keys import mint_api_key

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


@assets_app.command("create")
def create_asset(
    tenant: Annotated[str, typer.Option(help="Tenant the asset belongs to.")],
    url: Annotated[list[str], typer.Option("--url", help="Start URL or sitemap (web).")] = None,
    file: Annotated[Path | None, typer.Option(help="A file to ingest (file source).")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    max_depth: Annotated[int, typer.Option(help="Link hops from the start URLs.")] = 0,
    max_pages: Annotated[int, typer.Option(help="Most pages to index.")] = 1000,
    include: Annotated[list[str], typer.Option(help="URL glob to include.")] = None,
    exclude: Annotated[list[str], typer.Option(help="URL glob to exclude.")] = None,
    provider: Annotated[str, typer.Option(help="Embedding provider.")] = "local",
    model: Annotated[str, typer.Option(help="Embedding model.")] = "all-MiniLM-L6-v2",
    chunk_size: Annotated[int, typer.Option(help="Chunk size in model tokens.")] = 256,
    chunk_overlap: Annotated[int, typer.Option(help="Chunk overlap in model tokens.")] = 32,
    ingest: Annotated[bool, typer.Option(help="Launch the first ingestion now.")] = True,
    wait: Annotated[bool, typer.Option(help="Show progress until the run ends.")] = True,
) -> None:
    """Create a web or file knowledge asset (and launch its first ingestion)."""
    from fruxon_pipelines.assets_admin import create_file_asset, create_web_asset

    if bool(url) == bool(file):
        _fail("give either --url (web) or --file (file)")
    embedding = {
        "provider": provider,
        "model": model,
        "chunkSize": chunk_size,
        "chunkOverlap": chunk_overlap,
    }
    settings = _settings()
    catalog = _catalog()
    try:
        if url:
            parameters = {
                "urls": url,
                "maxDepth": max_depth,
                "maxPages": max_pages,
                "includePatterns": include or [],
                "excludePatterns": exclude or [],
            }
            asset = create_web_asset(settings, catalog, tenant, name, parameters, embedding)
        else:
            asset = create_file_asset(settings, catalog, tenant, name, file, embedding)
    except ValueError as error:
        _fail(str(error))
    typer.echo(f"created knowledge asset {asset.id} ({asset.source_type}, tenant {tenant})")
    if ingest:
        _launch_and_watch(asset.id, "INGEST", [], False, wait)


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
    _launch_and_watch(asset_id, "REFRESH", document_id or [], force, wait)


def _launch_and_watch(
    asset_id: str, operation_type: str, document_ids: list[str], force: bool, wait: bool
) -> None:
    from fruxon_pipelines.launcher import LaunchError, dagster_instance, launch_ingest

    settings = _settings()
    catalog = _catalog()
    try:
        launched = launch_ingest(
            settings,
            catalog,
            asset_id=asset_id,
            operation_type=operation_type,
            document_ids=document_ids,
            force=force,
            created_by="cli",
        )
    except LaunchError as error:
        _fail(str(error))
    typer.echo(
        f"operation {launched.operation.id}: run {launched.run_id} "
        f"(http://{settings.dagster_host}:{settings.dagster_port}/runs/{launched.run_id})"
    )
    if wait:
        status = _watch(dagster_instance(settings), catalog, launched.operation.id, launched.run_id)
        if status != "COMPLETED":
            raise typer.Exit(code=1)


def _watch(instance, catalog, operation_id: str, run_id: str) -> str:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from fruxon_pipelines.launcher import operation_status, run_failure_message

    status = "PENDING"
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("PENDING", total=None, extra="")
        while True:
            run = instance.get_run_by_id(run_id)
            status = operation_status(run.status.value if run else None)
            operation = catalog.get_operation(operation_id)
            total = operation.items_total or None
            bar.update(
                task,
                description=status,
                total=total,
                completed=operation.items_processed,
                extra=f"{operation.chunk_count} chunks, {operation.token_count} tokens embedded",
            )
            if status in {"COMPLETED", "FAILED", "CANCELLED"}:
                break
            time.sleep(0.5)
    if status == "FAILED":
        message = run_failure_message(instance, run_id) or "see the run in the Dagster UI"
        typer.secho(f"FAILED: {message}", fg=typer.colors.RED, err=True)
    else:
        typer.echo(status)
    return status


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="fruxon")
    sys.exit(0)
