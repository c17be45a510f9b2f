"""Security on the in-process app: tokens an attacker would forge, per-tenant rate limits, the
response headers, hostile upload names, and the SSRF guard against redirects and DNS."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient
from sitegen import Site

from fruxon_api.app import create_app
from fruxon_api.auth import ISSUER, READ, WRITE, issue_token
from fruxon_api.ratelimit import TenantRateLimits
from fruxon_pipelines.settings import PRODUCT_USER_AGENT
from fruxon_pipelines.sources import netguard
from fruxon_pipelines.sources.web import WebParameters, WebSource

ASSETS = "/v1/tenants/acme/assets"
WEB = {"config": {"sourceType": "web", "parameters": {"urls": ["https://a.test/"]}}}


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides: object) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": "mallory",
        "tenants": ["acme"],
        "scope": f"{READ} {WRITE}",
        "iat": now,
        "exp": now + 600,
    } | overrides


# Tokens --------------------------------------------------------------------------------------


def _forged_tokens(settings) -> dict[str, str]:
    secret = settings.jwt_secret_path.read_bytes()
    claims = _claims()
    return {
        # The classic: no signature at all.
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg None, signature kept": (
            f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(claims)}."
            + jwt.encode(claims, secret, algorithm="HS256").rsplit(".", 1)[1]
        ),
        "wrong key": jwt.encode(claims, b"x" * 32, algorithm="HS256"),
        "HS512 with the right key": jwt.encode(claims, secret, algorithm="HS512"),
        "expired": jwt.encode(_claims(exp=int(time.time()) - 5), secret, algorithm="HS256"),
        "another issuer": jwt.encode(_claims(iss="elsewhere"), secret, algorithm="HS256"),
        "no tenants claim": jwt.encode(
            {k: v for k, v in claims.items() if k != "tenants"}, secret, algorithm="HS256"
        ),
        "garbage": "not.a.token",
    }


def test_forged_and_expired_tokens_get_401_on_every_kind_of_route(client, app_settings):
    created = client.post(ASSETS, json=WEB).json()
    # The poll checks its token in its own body, not through a declared dependency.
    poll = f"{ASSETS}/{created['asset']['id']}/operations/{created['longOperation']['name']}"
    assert client.get(poll).status_code == 200
    for name, token in _forged_tokens(app_settings).items():
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in [
            ("GET", ASSETS),
            ("POST", ASSETS),
            ("POST", f"{ASSETS}/00000000-0000-0000-0000-000000000000:search"),
            ("GET", poll),
        ]:
            response = client.request(method, path, headers=headers, json={})
            body = _problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer", name
            assert token not in response.text, name
            assert "expired" in body["detail"] if name == "expired" else True
    # Nothing a forged token sent was written.
    assert len(client.get(ASSETS).json()["items"]) == 1


def test_a_public_key_used_as_an_hmac_secret_is_refused(tmp_path):
    """Algorithm confusion: with RS256 configured, an HS256 token keyed by the public PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from fruxon_api.auth import verify_token
    from fruxon_api.problems import Problem
    from fruxon_pipelines.settings import Settings

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(home=tmp_path, jwt_public_key=public.decode())
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64(_claims())
    signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    token = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(Problem) as refused:
        verify_token(settings, token)
    assert refused.value.status == 401


def test_a_token_for_another_tenant_sees_nothing_and_writes_nothing(client, app_settings):
    created = client.post(ASSETS, json=WEB)
    asset_id = created.json()["asset"]["id"]
    operation_id = created.json()["longOperation"]["name"]
    other = issue_token(app_settings, tenants=["globex"], scopes=[READ, WRITE])
    headers = {"Authorization": f"Bearer {other}"}
    for method, path in [
        ("GET", ASSETS),
        ("GET", f"{ASSETS}/{asset_id}"),
        ("GET", f"{ASSETS}/{asset_id}/operations/{operation_id}"),
        ("POST", f"{ASSETS}/{asset_id}:refresh"),
        ("POST", f"{ASSETS}/{asset_id}:search"),
        ("DELETE", f"{ASSETS}/{asset_id}"),
    ]:
        _problem(client.request(method, path, headers=headers, json={"query": "x"}), 404)
    # And its own tenant's path shows only its own (empty) list.
    mine = client.get("/v1/tenants/globex/assets", headers=headers)
    assert mine.status_code == 200 and mine.json()["items"] == []
    assert client.get(f"{ASSETS}/{asset_id}").status_code == 200  # still there


def test_a_token_without_the_read_scope_gets_403_from_the_poll_as_from_the_asset(
    client, app_settings
):
    created = client.post(ASSETS, json=WEB).json()
    asset = f"{ASSETS}/{created['asset']['id']}"
    headers = {"Authorization": f"Bearer {issue_token(app_settings, tenants=['acme'], scopes=[])}"}
    for path in (asset, f"{asset}/operations/{created['longOperation']['name']}"):
        assert "assets:read" in _problem(client.get(path, headers=headers), 403)["detail"]


# Rate limits ---------------------------------------------------------------------------------


def test_the_token_bucket_refills_at_its_rate_per_tenant():
    now = [1000.0]
    limits = TenantRateLimits({"search": 3, "refresh": 0}, clock=lambda: now[0])
    for _ in range(3):
        limits.take("search", "acme")
    from fruxon_api.problems import Problem

    with pytest.raises(Problem) as refused:
        limits.take("search", "acme")
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "20"}  # one token per 20 s at 3 a minute
    limits.take("search", "globex")  # another tenant has its own bucket
    for _ in range(50):
        limits.take("refresh", "acme")  # 0 is no limit
    now[0] += 20.0
    limits.take("search", "acme")
    with pytest.raises(Problem):
        limits.take("search", "acme")


@pytest.fixture
def limited(app_settings):
    settings = app_settings.model_copy(
        update={"search_rate_limit_per_minute": 3, "refresh_rate_limit_per_minute": 2}
    )
    app = create_app(settings)
    with TestClient(app) as c:
        c.services = app.state.services
        c.token = lambda *tenants: {
            "Authorization": "Bearer "
            + issue_token(settings, tenants=list(tenants), scopes=[READ, WRITE])
        }
        yield c


def _cancel_pending(client, headers, tenant: str, asset_id: str) -> None:
    for operation in client.services.catalog.list_operations(asset_id):
        if operation.final_status is None:
            client.post(
                f"/v1/tenants/{tenant}/assets/{asset_id}/operations/{operation.id}:cancel",
                headers=headers,
            )


def test_search_and_refresh_are_limited_per_tenant(limited):
    headers = {t: limited.token(t) for t in ("acme", "globex")}
    assets = {}
    for tenant in headers:
        response = limited.post(
            f"/v1/tenants/{tenant}/assets",
            headers=headers[tenant],
            json=WEB,
        )
        assert response.status_code == 200, response.text
        assets[tenant] = response.json()["asset"]["id"]

    def search(tenant: str):
        return limited.post(
            f"/v1/tenants/{tenant}/assets/{assets[tenant]}:search",
            headers=headers[tenant],
            json={"query": "anything", "searchMode": "FULL_TEXT"},
        )

    for _ in range(3):
        assert search("acme").status_code == 200
    body = _problem(refused := search("acme"), 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert body["errorCategory"] == "RATE_LIMIT" and "search limit of 3" in body["detail"]
    assert search("globex").status_code == 200  # one tenant's flood is not another's

    def refresh(tenant: str):
        _cancel_pending(limited, headers[tenant], tenant, assets[tenant])
        return limited.post(
            f"/v1/tenants/{tenant}/assets/{assets[tenant]}:refresh", headers=headers[tenant]
        )

    for _ in range(2):
        assert refresh("acme").status_code == 200
    operations = len(limited.services.catalog.list_operations(assets["acme"]))
    _problem(refresh("acme"), 429)
    assert len(limited.services.catalog.list_operations(assets["acme"])) == operations
    assert refresh("globex").status_code == 200
    # A request the auth refuses does not spend the tenant's budget.
    forged = {"Authorization": "Bearer " + jwt.encode(_claims(), b"k" * 32, algorithm="HS256")}
    for _ in range(5):
        limited.post(f"{ASSETS}/{assets['acme']}:search", headers=forged, json={"query": "x"})
    assert search("globex").status_code == 200


def test_sources_api_ingest_and_refresh_share_the_refresh_limit(limited):
    from sources_api import SOURCES, workspace_key

    headers = workspace_key(limited)
    urls = {"source": "web", "documentIdsToAdd": ["https://a.test/one"]}
    assert limited.post(SOURCES, headers=headers, json=urls).status_code == 200
    [document] = limited.get(SOURCES, headers=headers).json()["documents"]
    assert (
        limited.post(
            f"{SOURCES}/refresh", headers=headers, json={"documentIds": [document["id"]]}
        ).status_code
        == 200
    )
    body = _problem(limited.post(SOURCES, headers=headers, json=urls), 429)
    assert body["errorCategory"] == "RATE_LIMIT"
    assert limited.post(SOURCES, headers=workspace_key(limited, tenant="globex"), json=urls)


# Headers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "authorized"),
    [
        ("GET", ASSETS, True),  # a 200
        ("GET", ASSETS, False),  # a 401 problem
        ("GET", "/nowhere", True),  # a 404 from the router
        ("GET", "/openapi.json", False),
        ("POST", "/v1/webhooks/generic/nope", False),
    ],
)
def test_every_answer_carries_the_security_headers(client, method, path, authorized):
    headers = None if authorized else {"Authorization": ""}
    response = client.request(method, path, headers=headers)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # app_settings' public URL is https: browsers are told to keep to it.
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_the_docs_pages_have_a_policy_of_their_own_that_allows_only_this_origin(client):
    api_policy = client.get("/openapi.json").headers["content-security-policy"]
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["x-frame-options"] == "DENY"
        policy = response.headers["content-security-policy"]
        assert policy != api_policy
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        # this origin, and the one inline script of each page by its hash: nothing else runs
        assert directives["script-src"].split()[0] == "'self'"
        assert all(s.startswith("'sha256-") for s in directives["script-src"].split()[1:])
        assert "unsafe-inline" not in directives["script-src"]
        assert "http" not in policy
    # the assets are served from here
    assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 200


def test_plain_http_deployments_send_no_hsts(settings):
    with TestClient(create_app(settings)) as plain:
        assert "strict-transport-security" not in plain.get("/openapi.json").headers


# Upload names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../../../escape.md",
        "/etc/cron.d/escape.md",
        "a/../../escape.md",
        "..\\..\\escape.md",
        "....//....//escape.md",
        "%2e%2e%2fescape.md",
        "escape.md\x00.txt",
        "..",
        "",
    ],
)
def test_upload_names_cannot_leave_the_upload_directory(client, app_settings, name):
    home = Path(app_settings.home).resolve()
    outside = home.parent
    before = {p for p in outside.rglob("*") if not p.is_relative_to(home)}
    for path in ("/v1/tenants/acme/storage", f"{ASSETS}:file"):
        response = client.post(path, files={"File": (name, b"# Title\n\ntext\n", "text/markdown")})
        assert response.status_code in (200, 400, 415, 422), response.text
        if response.status_code == 200:
            body = response.json()
            stored = body.get("fileName") or body["asset"]["displayName"]
            assert "/" not in stored and "\x00" not in stored and stored not in ("", ".", "..")
        else:
            _problem(response, response.status_code)
    after = {p for p in outside.rglob("*") if not p.is_relative_to(home)}
    assert after == before, f"written outside FRUXON_HOME: {sorted(after - before)}"
    for stored in Path(app_settings.uploads_dir).rglob("*"):
        assert stored.resolve().is_relative_to(Path(app_settings.uploads_dir).resolve())


# SSRF ----------------------------------------------------------------------------------------


@pytest.fixture
def public_site(monkeypatch):
    """A site the guard treats as public (its 127.0.0.1 stands for an Internet address), and
    DNS names that resolve to private addresses."""
    real_reason = netguard.blocked_reason
    monkeypatch.setattr(
        netguard,
        "blocked_reason",
        lambda address: None if str(address) == "127.0.0.1" else real_reason(address),
    )
    real_getaddrinfo = socket.getaddrinfo
    names = {"metadata.internal.test": "169.254.169.254", "db.internal.test": "10.20.30.40"}

    def resolve(host, port, *args, **kwargs):
        return real_getaddrinfo(names.get(host, host), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with Site() as site:
        yield site


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.7:8080/admin", "private"),
        ("http://[::1]:9/", "loopback"),
        ("http://[::ffff:127.0.0.2]/", "loopback"),
        ("http://metadata.internal.test/latest/meta-data/", "resolves to 169.254.169.254"),
        ("http://db.internal.test:5432/", "resolves to 10.20.30.40"),
    ],
)
def test_a_redirect_to_a_private_address_is_refused(public_site, target, reason):
    public_site.put("/", "<html><body><p>Home <a href='/go'>go</a></p></body></html>")
    public_site.redirect("/go", target, status=302)
    # The crawler keeps to its site, so it refuses the hop before the guard is asked …
    [item] = list(_web_source(public_site.url("/go")).fetch({}))
    assert item.status == "failed" and "redirects off-site" in (item.error or "")
    # … and the guarded session under it (every request a web source makes) refuses the
    # private address itself, whoever follows the redirect.
    session = netguard.make_session(PRODUCT_USER_AGENT, allow_private_networks=False)
    with pytest.raises(netguard.BlockedAddressError) as refused:
        session.get(public_site.url("/go"), timeout=5)
    assert reason in str(refused.value)
    assert public_site.requested_paths() == ["/go", "/go"]  # nothing else was asked


def test_a_seed_whose_name_resolves_to_a_private_address_is_refused(public_site):
    [item] = list(_web_source("http://metadata.internal.test/latest/").fetch({}))
    assert item.status == "failed"
    assert "resolves to 169.254.169.254" in (item.error or ""), item.error


def _web_source(url: str) -> WebSource:
    return WebSource(
        WebParameters.model_validate({"urls": [url], "maxDepth": 0}),
        allow_private_networks=False,
        user_agent=PRODUCT_USER_AGENT,
        timeout=5,
    )


def test_the_public_site_itself_is_fetched(public_site):
    """The stand-in is really reachable: the refusals above are the guard's, not the network's."""
    public_site.put("/", "<html><body><main><p>Home page text</p></main></body></html>")
    public_site.redirect("/go", "/", status=302)
    [item] = list(_web_source(public_site.url("/go")).fetch({}))
    assert item.status == "fetched", item.error
