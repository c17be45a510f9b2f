"""A provider's HTTP API on 127.0.0.1, for connector tests: what every fake shares.

Real HTTP (ThreadingHTTPServer), and the parts of a provider a connector must cope with:
- an OAuth 2.0 authorization server: a login page at ``/oauth/authorize`` whose form posts to
  ``/oauth/login`` and redirects back with ``code`` and ``state``; a token endpoint at
  ``/oauth/token`` checking the client's credentials (Basic or in the body, JSON or form, as the
  real provider does), the redirect URI, PKCE (S256) and single-use codes, and rotating refresh
  tokens where the real provider rotates them;
- bearer tokens that expire (``expire_access_tokens``) or are revoked (``revoke_all``);
- injected failures: ``fail_next(429, retry_after="1")``, ``fail_next(503)``;
- a log of every API request (method, path, query), so tests see what was fetched.
Subclasses route the provider's own API in ``api``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

Response = tuple[int, dict[str, str], bytes]


def point_fruxon_at(monkeypatch: Any, server: FakeProvider, app: str, endpoints: dict) -> None:
    """Settings that send fruxon to ``server``: each FRUXON_<name> endpoint (a path on the
    server), the OAuth app's client id and secret (FRUXON_<app>_CLIENT_*), few retries."""
    from fruxon_pipelines.settings import get_settings

    variables = {f"FRUXON_{name}": server.url + path for name, path in endpoints.items()}
    variables |= {
        f"FRUXON_{app}_CLIENT_ID": server.client_id,
        f"FRUXON_{app}_CLIENT_SECRET": server.client_secret,
        "FRUXON_PROVIDER_MAX_RETRIES": "3",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json"} | (headers or {}), json.dumps(body).encode()


class FakeProvider:
    client_id = "fruxon-test-client"
    client_secret = "fruxon-test-client-secret"
    # How the real provider's token endpoint takes client credentials and its body.
    client_auth = "body"  # or "basic"
    token_body = "json"  # or "form"
    rotates_refresh_tokens = True
    token_lifetime_seconds: int | None = 3600
    token_status = 200

    def __init__(self) -> None:
        self.access_tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
        self.refresh_tokens: set[str] = set()
        self.api_tokens: set[str] = set()  # static tokens (integration secrets, API tokens)
        self.codes: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, Any]] = []
        self._failures: list[tuple[int, dict[str, str]]] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # lifecycle --------------------------------------------------------------------------------

    def __enter__(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.provider = self
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # tokens -----------------------------------------------------------------------------------

    def issue_tokens(self) -> dict[str, Any]:
        """A fresh access and refresh token, as the token endpoint would answer."""
        access, refresh = f"at-{secrets.token_hex(12)}", f"rt-{secrets.token_hex(12)}"
        with self.lock:
            lifetime = self.token_lifetime_seconds
            self.access_tokens[access] = time.time() + (lifetime or 10**9)
            self.refresh_tokens.add(refresh)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
        }
        if lifetime is not None:
            answer["expires_in"] = lifetime
        return answer

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens = dict.fromkeys(self.access_tokens, 0.0)

    def revoke_all(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()
            self.api_tokens.clear()

    def bearer_ok(self, headers: Any) -> bool:
        value = headers.get("Authorization") or ""
        token = value.removeprefix("Bearer ").strip()
        with self.lock:
            if token in self.api_tokens:
                return True
            return self.access_tokens.get(token, 0.0) > time.time()

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        extra = {"Retry-After": retry_after} if retry_after is not None else {}
        with self.lock:
            self._failures += [(status, extra)] * times

    def api_paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]

    # OAuth ------------------------------------------------------------------------------------

    def login_page(self, query: dict[str, str]) -> Response:
        missing = [k for k in ("client_id", "redirect_uri", "response_type") if not query.get(k)]
        if missing or query.get("client_id") != self.client_id:
            return 400, {"Content-Type": "text/plain"}, f"bad request: {missing}".encode()
        hidden = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in query.items())
        page = f'<html><body><form method="post" action="/oauth/login">{hidden}'
        page += '<button type="submit">Allow access</button></form></body></html>'
        return 200, {"Content-Type": "text/html"}, page.encode()

    def login(self, form: dict[str, str]) -> Response:
        """The user allowed access: back to the app with a single-use code."""
        code = f"code-{secrets.token_hex(8)}"
        with self.lock:
            self.codes[code] = {
                "redirect_uri": form["redirect_uri"],
                "challenge": form.get("code_challenge"),
                "method": form.get("code_challenge_method"),
            }
        target = form["redirect_uri"] + "?" + urlencode({"code": code, "state": form["state"]})
        return 302, {"Location": target}, b""

    def token(self, headers: Any, raw: bytes) -> Response:
        content_type = headers.get("Content-Type") or ""
        if self.token_body == "json":
            if "json" not in content_type:
                return self.token_error(400, "invalid_request", "JSON body expected")
            body = json.loads(raw or b"{}")
        else:
            if "x-www-form-urlencoded" not in content_type:
                return self.token_error(400, "invalid_request", "form body expected")
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        with self.lock:
            self.token_requests.append(dict(body))
        if not self._client_ok(headers, body):
            return self.token_error(401, "invalid_client", "client authentication failed")
        grant = body.get("grant_type")
        if grant == "authorization_code":
            with self.lock:
                issued = self.codes.pop(body.get("code", ""), None)
            if issued is None or issued["redirect_uri"] != body.get("redirect_uri"):
                return self.token_error(400, "invalid_grant", "code is invalid or was used")
            if issued["challenge"]:
                verifier = body.get("code_verifier") or ""
                digest = hashlib.sha256(verifier.encode()).digest()
                expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
                if expected != issued["challenge"]:
                    return self.token_error(400, "invalid_grant", "PKCE verification failed")
            return json_response(self.token_status, self.issue_tokens())
        if grant == "refresh_token":
            refresh = body.get("refresh_token", "")
            with self.lock:
                known = refresh in self.refresh_tokens
                if known and self.rotates_refresh_tokens:
                    self.refresh_tokens.discard(refresh)
            if not known:
                return self.token_error(400, "invalid_grant", "refresh token is invalid")
            answer = self.issue_tokens()
            if not self.rotates_refresh_tokens:
                with self.lock:
                    self.refresh_tokens.discard(answer.pop("refresh_token"))
            return json_response(self.token_status, answer)
        return self.token_error(400, "unsupported_grant_type", str(grant))

    def token_error(self, status: int, code: str, message: str) -> Response:
        return json_response(status, {"error": code, "error_description": message})

    def _client_ok(self, headers: Any, body: dict[str, Any]) -> bool:
        if self.client_auth == "basic":
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode())
            return headers.get("Authorization") == f"Basic {expected.decode()}"
        return (body.get("client_id"), body.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )

    # dispatch ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Response:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/oauth/authorize" and method == "GET":
            return self.login_page(query)
        if parts.path == "/oauth/login" and method == "POST":
            return self.login({k: v[0] for k, v in parse_qs(body.decode()).items()})
        if parts.path == "/oauth/token" and method == "POST":
            return self.token(headers, body)
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "query": query})
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return self.failure(*failure)
        return self.api(method, parts.path, query, headers, body)

    def failure(self, status: int, headers: dict[str, str]) -> Response:
        return json_response(status, {"error": f"injected {status}"}, headers)

    def api(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes):
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            status, headers, payload = self.server.provider.handle(
                method, self.path, self.headers, body
            )
        except Exception as error:  # the fake must answer, as a real server would
            status, headers, payload = json_response(500, {"error": repr(error)})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def log_message(self, *args: object) -> None:
        pass
