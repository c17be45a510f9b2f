"""Inbound webhook deliveries: the URL's webhook id (and, with HMAC, the body's signature) is
the credential; a delivery is stored as an event, which the webhook sensor turns into a WEBHOOK
operation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from fruxon_pipelines.domain import AssetStatus
from fruxon_pipelines.secretbox import SecretUnreadable, secret_box
from fruxon_pipelines.services.errors import InvalidRequest, NotFound, Unauthenticated, Unavailable
from fruxon_pipelines.webhooks import (
    WEBHOOK_PROVIDERS,
    InvalidDelivery,
    WebhookRevoked,
    accept_delivery,
    webhook_id_hash,
)

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

UNKNOWN = "no active webhook has this URL"


class Delivery(NamedTuple):
    """A stored delivery: its event's id (None: it asked for nothing) and its asset's."""

    event_id: int | None
    asset_id: str


def receive_delivery(
    svc: Services, provider: str, webhook_id: str, body: bytes, headers: Mapping[str, str]
) -> Delivery:
    """Store one delivery for the asset behind the URL. The same NotFound for a wrong
    provider, an unknown id and a revoked one."""
    registration, asset = svc.catalog.find_webhook(webhook_id_hash(webhook_id))
    if (
        registration is None
        or asset is None
        or registration.provider != provider
        or registration.status != "ACTIVE"  # a registration's own status
        or asset.status == AssetStatus.DELETING
    ):
        raise NotFound(UNKNOWN)
    if registration.auth_mode == "HMAC":
        try:
            secret = secret_box(svc.settings).open(registration.signing_secret)
        except SecretUnreadable as error:
            raise Unavailable(
                "the webhook's signing secret cannot be read with the server's FRUXON_SECRET_KEY "
                "(was the key changed?); rotate the webhook with :regenerateWebhook"
            ) from error
        kind = WEBHOOK_PROVIDERS[provider]
        if not kind.verify(secret, body, headers.get(kind.signature_header)):
            raise Unauthenticated(
                f"the {kind.signature_header} header is missing or does not match"
            )
    try:
        return Delivery(accept_delivery(svc.catalog, asset, registration, body, headers), asset.id)
    except InvalidDelivery as error:
        raise InvalidRequest(str(error)) from error
    except WebhookRevoked as error:
        raise NotFound(UNKNOWN) from error
