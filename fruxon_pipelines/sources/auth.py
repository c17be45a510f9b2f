"""What a connector authenticates with: the `auth` block of POST /assets, stored sealed.

Two methods: ``OAUTH`` (the tokens GET /assets:oauthCredentials hands out, refreshed by the
connector and persisted again) and ``API_TOKEN`` (a provider's API token or an integration
secret, with the account's e-mail where the provider wants Basic auth). The block is sealed with
the secret box as one JSON document; no response returns it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fruxon_pipelines.errors import CREDENTIALS
from fruxon_pipelines.secretbox import SecretUnreadable
from fruxon_pipelines.sources.base import SourceError
from fruxon_pipelines.validation import field_problems

AuthMethod = Literal["OAUTH", "API_TOKEN"]


class InvalidSourceAuth(ValueError):
    """The `auth` block does not fit the source type (the message names the field)."""


class SourceAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: AuthMethod | None = None
    accessToken: str | None = Field(default=None, min_length=1, max_length=8192)
    refreshToken: str | None = Field(default=None, min_length=1, max_length=8192)
    tokenType: str | None = Field(default=None, max_length=64)
    expiresAt: int | None = Field(default=None, description="Milliseconds since the epoch.")
    apiToken: str | None = Field(default=None, min_length=1, max_length=8192)
    email: str | None = Field(default=None, max_length=320)

    @model_validator(mode="after")
    def _one_method(self) -> SourceAuth:
        if self.method is None:  # what :oauthCredentials returns carries no method
            self.method = "API_TOKEN" if self.apiToken and not self.accessToken else "OAUTH"
        if self.method == "OAUTH" and not self.accessToken:
            raise ValueError("accessToken is required for OAUTH")
        if self.method == "API_TOKEN" and not self.apiToken:
            raise ValueError("apiToken is required for API_TOKEN")
        return self

    def sealed_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


def parse_source_auth(
    data: dict[str, Any], methods: tuple[str, ...], *, needs_email: bool = False
) -> SourceAuth:
    """The request's `auth`, checked against the methods the source type takes."""
    try:
        auth = SourceAuth.model_validate(data)
    except ValidationError as error:
        raise InvalidSourceAuth(field_problems(error, "auth")) from error
    if auth.method not in methods:
        raise InvalidSourceAuth(
            f"auth.method: {auth.method} is not taken by this source type (takes "
            f"{', '.join(methods)})"
        )
    if auth.method == "API_TOKEN" and needs_email and not auth.email:
        raise InvalidSourceAuth("auth.email: required with an API token for this source type")
    return auth


def load_source_auth(opened: str) -> SourceAuth:
    return SourceAuth.model_validate(json.loads(opened))


@dataclass
class SourceCredentials:
    """A connector's credentials for one run, and how to keep refreshed tokens."""

    auth: SourceAuth
    save: Callable[[SourceAuth], None]


def source_credentials(store: Any, box: Any, asset: Any) -> SourceCredentials | None:
    """The asset's opened `auth`, saving refreshed tokens back, sealed, as soon as they come."""
    if not asset.source_auth:
        return None
    try:
        auth = load_source_auth(box.open(asset.source_auth))
    except SecretUnreadable as error:
        raise SourceError(
            "the asset's credentials cannot be decrypted with this server's FRUXON_SECRET_KEY",
            CREDENTIALS,
        ) from error

    def save(fresh: SourceAuth) -> None:
        store.update_asset(asset.id, source_auth=box.seal(fresh.sealed_json()))

    return SourceCredentials(auth=auth, save=save)
