"""The interactive API docs, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served whole from
this origin: their scripts and styles come from an installed package (``fastapi-offline``'s
copies of swagger-ui-dist and the ReDoc standalone bundle), not a CDN, so the pages render on a
machine without internet and under a Content-Security-Policy that allows nothing but this
origin (and the one inline script of each page, by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

# Under /docs, so the pages and their assets share the docs' headers (fruxon_api.headers).
ASSETS = "/docs/assets"
SWAGGER_UI = "/docs"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
REDOC = "/redoc"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
REDOC_BUNDLE = "redoc.standalone.js"
# The one thing ReDoc's bundle loads from elsewhere: its makers' logo in the sidebar's footer.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def _script_hashes(*pages: HTMLResponse) -> list[str]:
    """CSP source expressions of the pages' inline scripts: only these may run."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for page in pages
        for script in _INLINE_SCRIPT.findall(page.body)
    ]


def _serving(body: bytes, media_type: str = "text/html") -> Callable[[], Awaitable[Response]]:
    """A route handler that answers ``body``, made once."""

    async def serve() -> Response:
        return Response(body, media_type=media_type)

    return serve


def install_docs(app: FastAPI) -> bytes:
    """Routes for the docs pages and their assets on ``app`` (made with ``docs_url=None`` and
    ``redoc_url=None``); returns the Content-Security-Policy the pages need."""
    openapi_url = app.openapi_url or "/openapi.json"
    static = files("fastapi_offline") / "static"
    favicon = f"{ASSETS}/favicon.png"
    # The policy would block the logo and log a violation on every view: show ours instead.
    redoc_bundle = (static / REDOC_BUNDLE).read_bytes().replace(_REDOC_LOGO, favicon.encode())
    # Before the mount, which would answer the path from the package's file.
    app.add_api_route(
        f"{ASSETS}/{REDOC_BUNDLE}",
        _serving(redoc_bundle, "text/javascript"),
        include_in_schema=False,
        methods=["GET"],
    )
    app.mount(ASSETS, StaticFiles(directory=str(static)), "docs")
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title}: API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=favicon,
        oauth2_redirect_url=OAUTH2_REDIRECT,
        # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )
    redirect = get_swagger_ui_oauth2_redirect_html()
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title}: API reference",
        redoc_js_url=f"{ASSETS}/{REDOC_BUNDLE}",
        redoc_favicon_url=favicon,
        with_google_fonts=False,
    )

    for path, response in ((SWAGGER_UI, swagger), (OAUTH2_REDIRECT, redirect), (REDOC, redoc)):
        app.add_api_route(path, _serving(response.body), include_in_schema=False, methods=["GET"])
    scripts = " ".join(_script_hashes(swagger, redirect))
    return (
        "default-src 'none'; "
        f"script-src 'self' {scripts}; "
        # Both set style attributes from script; ReDoc also writes <style> elements.
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; "
        "connect-src 'self'; "
        # ReDoc searches in a web worker it builds from a blob.
        "worker-src 'self' blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ).encode()
