"""Inbound webhooks: minting their URLs, checking deliveries, turning them into events.

- The webhook id in the URL is the credential: 256 random bits, stored only as its SHA-256.
- With ``authMode`` HMAC a delivery also carries ``X-Fruxon-Signature-256: sha256=<hex>``, the
  HMAC-SHA256 of the raw body under the signing secret (compared in constant time).
- A provider turns a body into the documents to refresh. ``generic`` takes
  ``{"documentIds": [...]}``, ``{"urls": [...]}`` (both may be given) or an empty body / ``{}``
  for a full refresh. Connector providers add their own parsers here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fruxon_pipelines.catalog.models import KnowledgeAsset, WebhookEvent, WebhookRegistration
from fruxon_pipelines.catalog.store import Catalog
from fruxon_pipelines.secretbox import SecretBox

SIGNATURE_HEADER = "X-Fruxon-Signature-256"
MAX_ITEMS_PER_DELIVERY = 10_000


class InvalidDelivery(ValueError):
    """The body is not what the provider sends; the message says what is wrong."""


@dataclass(frozen=True)
class MintedWebhook:
    """A new registration and the two values shown once: the webhook id and the secret."""

    webhook_id: str
    signing_secret: str
    registration: WebhookRegistration


def webhook_id_hash(webhook_id: str) -> str:
    return hashlib.sha256(webhook_id.encode()).hexdigest()


def mint_webhook(
    catalog: Catalog, box: SecretBox, asset_id: str, provider: str, auth_mode: str
) -> MintedWebhook:
    """Replace the asset's webhook (if any) with a new one; the old URL stops at once."""
    webhook_id = secrets.token_urlsafe(32)
    signing_secret = "whsec_" + secrets.token_urlsafe(32)
    registration = WebhookRegistration(
        id_hash=webhook_id_hash(webhook_id),
        asset_id=asset_id,
        provider=provider,
        auth_mode=auth_mode,
        status="ACTIVE",
        signing_secret=box.seal(signing_secret),
    )
    catalog.replace_webhook(registration)
    return MintedWebhook(webhook_id, signing_secret, registration)


def webhook_url(base_url: str, provider: str, webhook_id: str) -> str:
    return f"{base_url}/v1/webhooks/{provider}/{webhook_id}"


def signature_of(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    return hmac.compare_digest(signature_of(secret, body).encode(), header.strip().encode())


# Providers -------------------------------------------------------------------------------------


@dataclass
class RequestedChanges:
    """What a delivery asks to refresh; nothing named means everything."""

    document_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    # Items by the connector's own source keys (a provider's event names its page).
    source_keys: list[str] = field(default_factory=list)
    # Nothing to refresh (a subscription handshake, an event about something else).
    nothing: bool = False

    @property
    def full_refresh(self) -> bool:
        return not self.nothing and not (self.document_ids or self.urls or self.source_keys)


def _string_list(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidDelivery(f"{name} must be a list of non-empty strings")
    return value


def parse_generic(body: bytes, headers: Mapping[str, str]) -> RequestedChanges:
    if not body.strip():
        return RequestedChanges()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # also: huge integers, deep nesting
        raise InvalidDelivery(f"the body is not JSON we can read: {error}") from error
    if not isinstance(data, dict):
        raise InvalidDelivery("the body must be a JSON object")
    unknown = sorted(set(data) - {"documentIds", "urls"})
    if unknown:
        raise InvalidDelivery(
            f"unknown members {unknown}; the generic provider takes documentIds and urls"
        )
    changes = RequestedChanges(_string_list(data, "documentIds"), _string_list(data, "urls"))
    if len(changes.document_ids) + len(changes.urls) > MAX_ITEMS_PER_DELIVERY:
        raise InvalidDelivery(f"at most {MAX_ITEMS_PER_DELIVERY} items per delivery")
    return changes


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise InvalidDelivery(f"the body is not JSON we can read: {error}") from error
    if not isinstance(data, dict):
        raise InvalidDelivery("the body must be a JSON object")
    return data


def parse_notion(body: bytes, headers: Mapping[str, str]) -> RequestedChanges:
    """A Notion integration webhook event: ``{"type": "page.content_updated", "entity":
    {"id", "type": "page"}, …}``. Page events refresh that page (a deleted one is found gone);
    database events refresh everything, since rows may have come or gone. The one-time
    ``{"verification_token"}`` handshake asks for nothing."""
    data = _json_object(body)
    if "verification_token" in data and "type" not in data:
        return RequestedChanges(nothing=True)
    kind, entity = data.get("type"), data.get("entity")
    if not isinstance(kind, str) or not isinstance(entity, dict):
        raise InvalidDelivery("a Notion event has a type and an entity")
    if entity.get("type") == "page" and isinstance(entity.get("id"), str):
        from fruxon_pipelines.sources.notion import page_key

        try:
            return RequestedChanges(source_keys=[page_key(entity["id"])])
        except (IndexError, ValueError) as error:
            raise InvalidDelivery("entity.id is not a Notion id") from error
    if kind.startswith(("database.", "data_source.")):
        return RequestedChanges()
    return RequestedChanges(nothing=True)  # comments and the like change no page text


# Article events that change what is indexed; votes, comments and subscriptions do not.
ZENDESK_TEXT_EVENTS = frozenset(
    {"zen:event-type:article.published", "zen:event-type:article.unpublished"}
)


def parse_zendesk(body: bytes, headers: Mapping[str, str]) -> RequestedChanges:
    """A Zendesk event-type webhook: ``{"type": "zen:event-type:article.published", "detail":
    {"id": "7005414006398"}, …}``. Published and unpublished events refresh that article (an
    unpublished one is found gone); other events ask for nothing. Zendesk has no
    article-updated event: edits of a published article arrive through the incremental export
    of the next refresh."""
    data = _json_object(body)
    kind, detail = data.get("type"), data.get("detail")
    if not isinstance(kind, str) or not isinstance(detail, dict):
        raise InvalidDelivery("a Zendesk event has a type and a detail")
    if kind in ZENDESK_TEXT_EVENTS and str(detail.get("id", "")).isdigit():
        from fruxon_pipelines.sources.zendesk import article_key

        return RequestedChanges(source_keys=[article_key(detail["id"])])
    return RequestedChanges(nothing=True)


def parse_confluence(body: bytes, headers: Mapping[str, str]) -> RequestedChanges:
    """A Confluence Cloud webhook (``page_created``, ``page_updated``, ``page_trashed``,
    ``page_removed`` …): ``{"timestamp", "userAccountId", "page": {"id", "spaceKey", …}}``
    refreshes that page (a trashed or removed one is found gone); other events (comments,
    spaces, blog posts) ask for nothing."""
    data = _json_object(body)
    page = data.get("page")
    if isinstance(page, dict) and str(page.get("id", "")).isdigit():
        from fruxon_pipelines.sources.confluence import page_key

        return RequestedChanges(source_keys=[page_key(page["id"])])
    if "timestamp" not in data:
        raise InvalidDelivery("a Confluence event has a timestamp and the entity it is about")
    return RequestedChanges(nothing=True)


def parse_google_drive(body: bytes, headers: Mapping[str, str]) -> RequestedChanges:
    """A Drive push notification: no body, the news is in the channel headers. ``sync`` (the
    channel's first message) asks for nothing; any other state asks for a refresh, which reads
    Drive's change list from the asset's stored page token (so it refreshes what changed)."""
    state = headers.get("x-goog-resource-state")
    if not state:
        raise InvalidDelivery("a Drive notification carries X-Goog-Resource-State")
    if state == "sync":
        return RequestedChanges(nothing=True)
    return RequestedChanges()


def channel_token_matches(secret: str, body: bytes, header: str | None) -> bool:
    """Drive echoes the channel's ``token`` in X-Goog-Channel-Token: the signing secret, set as
    the token when the channel is created."""
    return bool(header) and hmac.compare_digest(secret.encode(), header.strip().encode())


@dataclass(frozen=True)
class WebhookProvider:
    parse: Callable[[bytes, Mapping[str, str]], RequestedChanges]
    # With authMode HMAC: the header that proves a delivery, and how it is checked.
    signature_header: str = SIGNATURE_HEADER
    verify: Callable[[str, bytes, str | None], bool] = signature_matches


# provider → how its deliveries read. The provider is part of the webhook's URL.
WEBHOOK_PROVIDERS: dict[str, WebhookProvider] = {
    "generic": WebhookProvider(parse_generic),
    "notion": WebhookProvider(parse_notion),
    "zendesk": WebhookProvider(parse_zendesk),
    "confluence": WebhookProvider(parse_confluence),
    "google_drive": WebhookProvider(
        parse_google_drive, "X-Goog-Channel-Token", channel_token_matches
    ),
}


def _resolve(catalog: Catalog, asset: KnowledgeAsset, changes: RequestedChanges) -> WebhookEvent:
    """The event for ``changes``: document ids checked against the asset, URLs mapped to it."""
    document_ids = []
    for value in changes.document_ids:
        try:
            document_ids.append(str(uuid.UUID(value)))
        except ValueError as error:
            raise InvalidDelivery(f"documentIds: {value!r} is not a UUID") from error
    known = {d.id for d in catalog.documents_by_id(asset.id, document_ids)}
    missing = [d for d in document_ids if d not in known]
    if missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise InvalidDelivery(f"documentIds not in this asset: {shown}")
    source_keys: list[str] = list(changes.source_keys)
    if changes.urls:
        if asset.source_type != "web":
            raise InvalidDelivery(f"{asset.source_type} assets take documentIds, not urls")
        from fruxon_pipelines.sources.registry import validate_parameters
        from fruxon_pipelines.sources.web import in_scope

        params = validate_parameters("web", asset.source_config)
        for url in changes.urls:
            key = in_scope(params, url)
            if key is None:
                raise InvalidDelivery(
                    f"urls: {url!r} is not a page this asset crawls (another site, or "
                    "excluded by its patterns)"
                )
            source_keys.append(key)
    return WebhookEvent(
        asset_id=asset.id,
        document_ids=sorted(set(document_ids)),
        source_keys=sorted(set(source_keys)),
        full_refresh=changes.full_refresh,
    )


class WebhookRevoked(LookupError):
    """The registration was rotated or revoked while the delivery was being read."""


def accept_delivery(
    catalog: Catalog,
    asset: KnowledgeAsset,
    registration: WebhookRegistration,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> int | None:
    """Parse and store one delivery; returns the event id (None: it asked for nothing).

    Raises InvalidDelivery for a body the provider would not send, WebhookRevoked when the
    URL stopped working meanwhile."""
    changes = WEBHOOK_PROVIDERS[registration.provider].parse(body, headers or {})
    if changes.nothing:
        return None
    event = _resolve(catalog, asset, changes)
    event.provider = registration.provider
    event.webhook_id_hash = registration.id_hash
    event_id = catalog.add_webhook_event(event)
    if event_id is None:
        raise WebhookRevoked(registration.id_hash)
    return event_id


def merged_request(events: list[WebhookEvent]) -> dict[str, Any]:
    """One operation's request for many events: the union, or a full refresh if any asks."""
    if any(e.full_refresh for e in events):
        return {"documentIds": [], "sourceKeys": [], "force": False}
    document_ids = sorted({d for e in events for d in e.document_ids})
    source_keys = sorted({k for e in events for k in e.source_keys})
    return {"documentIds": document_ids, "sourceKeys": source_keys, "force": False}
