"""Every route of the API is reached by its own paths, whatever order the routers are tried in;
the polled route is tried first (fruxon_api/app.py says why)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.routing import APIRoute

from fruxon_api.app import create_app


def _api_routes(routes: list) -> Iterator[APIRoute]:
    """The app's routes in the order routing tries them, included routers' routes in place."""
    for route in routes:
        if hasattr(route, "original_router"):  # a router the app included
            yield from _api_routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def _route_taking(app: FastAPI, method: str, path: str) -> APIRoute | None:
    """The route the app's routing picks for a request (run without a token, so no endpoint
    does anything: routing has picked before the token is checked)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "app": app,
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    # A refusal after routing (no token) is expected: what routing picked is in the scope.
    with contextlib.suppress(Exception):
        asyncio.run(app.router(scope, receive, send))
    return scope.get("route")


def _misrouted(app: FastAPI) -> list[str]:
    """Routes a request for their own path (each parameter a UUID) does not reach."""
    wrong = []
    for route in _api_routes(app.router.routes):
        path = re.sub(r"{[^}]+}", "00000000-0000-0000-0000-000000000000", route.path_format)
        for method in sorted(route.methods):
            taken = _route_taking(app, method, path)
            if taken is not route:
                wrong.append(f"{method} {route.path_format} -> {getattr(taken, 'path', None)}")
    return wrong


def test_every_route_is_reached_by_its_own_paths(app_settings):
    app = create_app(app_settings)
    assert len(list(_api_routes(app.router.routes))) > 40
    assert _misrouted(app) == []


def test_a_route_shadowed_by_an_earlier_one_is_found():
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: str) -> str:
        return item

    @app.get("/items/00000000-0000-0000-0000-000000000000")
    def special() -> str:
        return "special"

    assert _misrouted(app) == ["GET /items/00000000-0000-0000-0000-000000000000 -> /items/{item}"]


def test_the_polled_route_is_the_first_api_route_tried(app_settings):
    first = next(_api_routes(create_app(app_settings).router.routes))
    assert (first.name, sorted(first.methods)) == ("get_operation", ["GET"])
