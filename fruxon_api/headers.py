"""Security headers on every API response (a pure ASGI middleware: no per-request task hop)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fruxon_api.docs import REDOC, SWAGGER_UI

# A JSON API renders nothing and is framed by no one. The interactive docs (Swagger UI and
# ReDoc, served from this origin: fruxon_api.docs) get a policy of their own that lets their
# scripts and styles from this origin run, and nothing from anywhere else.
_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_DOC_PAGES = (SWAGGER_UI, REDOC)  # prefixes: the docs' assets and OAuth2 page are under /docs


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, https: bool = False, docs_policy: bytes) -> None:
        self.app = app
        # Both variants made once: this runs on every request, polling included.
        base = [*_ALWAYS, _HSTS] if https else list(_ALWAYS)
        self._docs_headers = [*base, (_CSP[0], docs_policy)]
        self._api_headers = [*base, _CSP]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(_DOC_PAGES)
        extra = self._docs_headers if docs else self._api_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in extra if h[0] not in names]
                if b"cache-control" not in names:
                    # Answers carry tenant data: no shared cache may keep them.
                    headers.append(_NO_STORE)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
