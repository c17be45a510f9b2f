"""Bearer tokens: the local HS256 secret, RS256 against a configured public key, the CLI."""

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fruxon_api.auth import READ, WRITE, VerifiedTokens, issue_token, verify_token
from fruxon_api.problems import Problem
from fruxon_pipelines.settings import Settings


def test_local_tokens_round_trip_and_expire(settings):
    token = issue_token(settings, tenants=["acme"], scopes=[READ], subject="ada")
    principal = verify_token(settings, token)
    assert principal.subject == "ada" and principal.may_use("acme")
    assert not principal.may_use("other") and principal.scopes == {READ}
    expired = issue_token(settings, tenants=["acme"], scopes=[READ], ttl_seconds=-5)
    with pytest.raises(Problem) as error:
        verify_token(settings, expired)
    assert error.value.status == 401


def test_a_remembered_token_still_expires_and_a_forged_one_is_never_remembered(settings):
    tokens = VerifiedTokens(settings, None, size=2)
    token = issue_token(settings, tenants=["acme"], scopes=[READ], ttl_seconds=1)
    assert tokens.principal(token).may_use("acme")
    assert tokens.principal(token) is tokens.principal(token)  # verified once, then remembered
    time.sleep(1.1)
    with pytest.raises(Problem) as error:
        tokens.principal(token)
    assert error.value.status == 401 and "expired" in str(error.value)
    valid = issue_token(settings, tenants=["acme"], scopes=[READ])
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    remembered = dict(tokens._principals)
    with pytest.raises(Problem):
        tokens.principal(forged)
    assert tokens._principals == remembered  # a refusal is not remembered
    tokens.principal(valid)
    for tenant in ("b", "c"):
        tokens.principal(issue_token(settings, tenants=[tenant], scopes=[READ]))
        tokens.principal(valid)  # in use: the least recently used goes, not this one
    assert len(tokens._principals) == 2 and valid in tokens._principals


def test_tokens_of_another_secret_are_refused(settings, tmp_path):
    stranger = Settings(home=tmp_path / "elsewhere")
    token = issue_token(stranger, tenants=["acme"], scopes=[WRITE])
    with pytest.raises(Problem):
        verify_token(settings, token)


def test_rs256_tokens_verify_against_the_configured_public_key(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(home=tmp_path, jwt_public_key=public)
    claims = {
        "sub": "svc",
        "tenants": ["acme"],
        "scope": f"{READ} {WRITE}",
        "exp": int(time.time()) + 60,
    }
    principal = verify_token(settings, jwt.encode(claims, key, algorithm="RS256"))
    assert principal.subject == "svc" and WRITE in principal.scopes
    hs256 = issue_token(Settings(home=tmp_path), tenants=["acme"], scopes=[READ])
    with pytest.raises(Problem):
        verify_token(settings, hs256)  # with a public key configured, only RS256 counts


def test_cli_prints_a_token_the_api_accepts(tmp_path):
    env = {**os.environ, "FRUXON_HOME": str(tmp_path)}
    fruxon = Path(sys.executable).parent / "fruxon"
    result = subprocess.run(
        [str(fruxon), "token", "--tenant", "acme", "--scope", "read"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    principal = verify_token(Settings(home=tmp_path), result.stdout.strip())
    assert principal.may_use("acme") and principal.scopes == {READ}
