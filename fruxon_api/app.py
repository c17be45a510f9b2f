"""create_app(): the HTTP facade over the catalog, LanceDB and Dagster runs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from fruxon_api.auth import ensure_jwt_secret
from fruxon_api.deps import ApiServices
from fruxon_api.docs import install_docs
from fruxon_api.headers import SecurityHeaders
from fruxon_api.problems import document_problems, install_problem_handlers
from fruxon_api.ratelimit import REFRESH, SEARCH, TenantRateLimits
from fruxon_api.routers import (
    assets,
    documents,
    llm_configs,
    meta,
    oauth,
    operations,
    search,
    sources,
    storage,
    webhooks,
)
from fruxon_api.webhook_launches import WebhookLaunches
from fruxon_pipelines.orchestration.gateway import RunGateway
from fruxon_pipelines.services.stored_files import sweep_temporary_uploads
from fruxon_pipelines.settings import Settings, get_settings

# The reference's sections, in the order of the API's pages.
DOCUMENTED_ROUTERS = (
    meta,
    oauth,
    storage,
    assets,
    operations,
    documents,
    search,
    webhooks,
    llm_configs,
    sources,
)


def create_app(settings: Settings | None = None, gateway: RunGateway | None = None) -> FastAPI:
    """The API over the stack ``settings`` describe; ``gateway`` replaces the stack's Dagster
    (a test's instance)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="fruxon",
        version="0.1.0",
        description="Knowledge assets kept in sync with their sources (Fruxon Assets API).",
        # Served from this origin by fruxon_api.docs: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
        # The sections in the reference's order; the routes are not in that order (below).
        openapi_tags=[
            {"name": tag}
            for tags in [*(module.router.tags for module in DOCUMENTED_ROUTERS), ["health"]]
            for tag in tags
        ],
    )
    # Routing tries the routes in order. Operations come first: a poll is most of what the
    # API serves, and matching it behind the docs, catalogue, storage and asset routes was
    # a fifth of a poll's CPU. No earlier route can take an operation's path, nor an
    # operation's route another path: all of them are under .../assets/{asset}/operations.
    # The others keep the reference's order (meta before assets: `/assets:sourceTypes` must
    # not be taken for an asset id).
    for module in (operations, *(m for m in DOCUMENTED_ROUTERS if m is not operations)):
        app.include_router(module.router)
    app.state.jwt_secret = ensure_jwt_secret(settings)
    app.state.settings = settings
    app.state.services = ApiServices.from_settings(settings, gateway)
    app.state.services.limits = TenantRateLimits(
        {
            SEARCH: settings.search_rate_limit_per_minute,
            REFRESH: settings.refresh_rate_limit_per_minute,
        }
    )
    app.add_middleware(
        SecurityHeaders,
        https=(settings.public_url or "").lower().startswith("https://"),
        docs_policy=install_docs(app),
    )
    app.state.webhook_launches = (
        WebhookLaunches(app.state.services, settings.webhook_debounce_seconds)
        if settings.webhook_api_launch
        else None
    )
    install_problem_handlers(app)
    sweep_temporary_uploads(app.state.services)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 once runs can be launched: the Dagster webserver answers."""
        import urllib.request

        url = f"http://{settings.dagster_host}:{settings.dagster_port}/server_info"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                ok = response.status == 200
        except OSError:
            ok = False
        status = 200 if ok else 503
        return JSONResponse({"status": "ok" if ok else "dagster webserver unreachable"}, status)

    _document_problems_in_openapi(app)
    return app


def _document_problems_in_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
