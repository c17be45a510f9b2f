"""Secrets at rest: encrypted with FRUXON_SECRET_KEY (or a key generated into FRUXON_HOME).

Webhook signing secrets (and, later, provider tokens) must be readable by fruxon itself — an
HMAC is checked with the secret, not with a hash of it — so they are encrypted, never hashed.
Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) gives authenticated encryption; the
key is derived from the configured material, so any string works as FRUXON_SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr

from fruxon_pipelines.settings import Settings


class SecretUnreadable(ValueError):
    """The stored value was not encrypted with this key (the key changed, or it was altered)."""


def ensure_secret_file(path: Path) -> bytes:
    """Random material in ``path`` (mode 0600), created on first use; returns it.

    Written to a private temporary file and linked into place, so a process racing this one
    reads either nothing (and creates its own, losing the race to link) or the whole key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process linked its key first: that one is the key
        finally:
            temporary.unlink()
    return path.read_bytes().strip()


class SecretBox:
    def __init__(self, material: bytes) -> None:
        from cryptography.fernet import Fernet

        key = base64.urlsafe_b64encode(hashlib.sha256(b"fruxon secrets\0" + material).digest())
        self._fernet = Fernet(key)
        # A separate key for signatures (OAuth state), derived from the same material.
        self._signing_key = hashlib.sha256(b"fruxon signatures\0" + material).digest()

    def sign(self, message: str) -> str:
        digest = hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError) as error:
            raise SecretUnreadable("the secret cannot be decrypted with this key") from error


@lru_cache(maxsize=4)
def _box(material: bytes) -> SecretBox:
    return SecretBox(material)


def secret_box(settings: Settings) -> SecretBox:
    """The box for FRUXON_SECRET_KEY, else for the key file under FRUXON_HOME."""
    return secret_box_at(settings.secret_key_path, settings.secret_key)


def secret_box_at(key_path: Path, secret_key: SecretStr | None) -> SecretBox:
    """The box for ``secret_key`` if set, else for the key file at ``key_path``."""
    if secret_key:
        return _box(secret_key.get_secret_value().encode())
    return _box(ensure_secret_file(key_path))
