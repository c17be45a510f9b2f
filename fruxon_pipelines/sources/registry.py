"""Source types: their parameters, how to build a connector, and what they support."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources import confluence, notion, zendesk
from fruxon_pipelines.sources.auth import SourceCredentials
from fruxon_pipelines.sources.base import Source
from fruxon_pipelines.sources.confluence import ConfluenceParameters, ConfluenceSource
from fruxon_pipelines.sources.files import FileParameters, FileSource
from fruxon_pipelines.sources.google_drive import GoogleDriveParameters, GoogleDriveSource
from fruxon_pipelines.sources.notion import NotionParameters, NotionSource
from fruxon_pipelines.sources.web import WebParameters, WebSource
from fruxon_pipelines.sources.zendesk import ZendeskParameters, ZendeskSource


@dataclass(frozen=True)
class SourceReach:
    """What a connector may use: the files directory, the network rules and, for provider
    connectors, the server's settings (endpoints, OAuth app), the asset's credentials and the
    state its last complete run left."""

    files_dir: Path
    allow_private_networks: bool
    user_agent: str
    http_timeout_seconds: float
    settings: Settings | None = None
    credentials: SourceCredentials | None = None
    state: dict[str, Any] | None = None
    # The asset ingests only its registered documents (selection REGISTERED).
    registered_only: bool = False


@dataclass(frozen=True)
class SourceType:
    key: str
    display_name: str
    parameters: type[BaseModel]
    build: Callable[[Any, SourceReach], Source]  # a connector class takes these as they are
    # Webhook providers whose deliveries refresh this type (fruxon_pipelines.webhooks).
    webhook_providers: tuple[str, ...] = ()
    supports_poll: bool = False
    supports_oauth: bool = False
    # The `auth` methods the connector takes (empty: it needs no credentials).
    auth_methods: tuple[str, ...] = ()
    auth_needs_email: bool = False  # an API token goes with the account's e-mail
    # The source key of an item the sources API registers (`POST /resources/{provider}`);
    # None: the type has no discovery. Raises ValueError naming the field that is wrong.
    resource_key: Callable[[dict[str, Any]], str] | None = None

    @property
    def supports_webhook(self) -> bool:
        return bool(self.webhook_providers)


class InvalidSourceConfig(ValueError):
    """The configuration does not fit the source type's descriptor."""


def _web(params: WebParameters, reach: SourceReach) -> Source:
    return WebSource(
        params,
        allow_private_networks=reach.allow_private_networks,
        user_agent=reach.user_agent,
        timeout=reach.http_timeout_seconds,
        keep_requested_keys=reach.registered_only,
    )


def _file(params: FileParameters, reach: SourceReach) -> Source:
    return FileSource(params, files_dir=reach.files_dir)


class _Auth(NamedTuple):
    """The credentials a provider connector takes (``SourceType.auth_methods`` and
    ``auth_needs_email``)."""

    methods: tuple[str, ...]
    needs_email: bool = False


_OAUTH = _Auth(("OAUTH",))
_OAUTH_OR_TOKEN = _Auth(("OAUTH", "API_TOKEN"))  # the token is a bearer token
# The API token goes with the account's e-mail (HTTP Basic).
_OAUTH_OR_BASIC = _Auth(("OAUTH", "API_TOKEN"), needs_email=True)

# The provider connectors, one row each: display name, parameters, connector, credentials.
_PROVIDERS: dict[str, tuple[str, type[BaseModel], Callable[[Any, SourceReach], Source], _Auth]] = {
    "notion": ("Notion", NotionParameters, NotionSource, _OAUTH_OR_TOKEN),
    "zendesk": ("Zendesk Help Center", ZendeskParameters, ZendeskSource, _OAUTH_OR_BASIC),
    "google_drive": ("Google Drive", GoogleDriveParameters, GoogleDriveSource, _OAUTH),
    "confluence": ("Confluence Cloud", ConfluenceParameters, ConfluenceSource, _OAUTH_OR_BASIC),
}
# The providers whose items the sources API registers (discovery), by their source key.
_RESOURCE_KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "notion": notion.resource_key,
    "zendesk": zendesk.resource_key,
    "confluence": confluence.resource_key,
}


def _provider_type(
    key: str,
    display_name: str,
    parameters: type[BaseModel],
    build: Callable[[Any, SourceReach], Source],
    auth: _Auth,
) -> SourceType:
    """A provider connector: refreshed by its provider's webhooks (and generic ones), polled,
    connected with OAuth or, where the provider has them, an API token."""
    return SourceType(
        key,
        display_name,
        parameters,
        build,
        webhook_providers=(key, "generic"),
        supports_poll=True,
        supports_oauth=True,
        auth_methods=auth.methods,
        auth_needs_email=auth.needs_email,
        resource_key=_RESOURCE_KEYS.get(key),
    )


SOURCE_TYPES: dict[str, SourceType] = {
    "web": SourceType(
        "web", "Web site", WebParameters, _web, webhook_providers=("generic",), supports_poll=True
    ),
    "file": SourceType("file", "File", FileParameters, _file, webhook_providers=("generic",)),
    **{key: _provider_type(key, *row) for key, row in _PROVIDERS.items()},
}


def validate_parameters(source_type: str, parameters: dict[str, Any]) -> BaseModel:
    """Parse a source's parameters; errors name the offending fields."""
    kind = SOURCE_TYPES.get(source_type)
    if kind is None:
        known = ", ".join(sorted(SOURCE_TYPES))
        raise InvalidSourceConfig(f"unknown sourceType {source_type!r}; known: {known}")
    try:
        return kind.parameters.model_validate(parameters)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'parameters'}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidSourceConfig(f"invalid {source_type} parameters: {problems}") from error


def build_source(source_type: str, parameters: dict[str, Any], reach: SourceReach) -> Source:
    params = validate_parameters(source_type, parameters)
    return SOURCE_TYPES[source_type].build(params, reach)
