"""The inbound webhook receiver: anonymous; the URL's webhook id (and, with HMAC, the body's
signature) is the credential. A delivery is stored before the 202; the webhook sensor turns
stored deliveries into WEBHOOK operations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fruxon_api.deps import Services, Svc
from fruxon_api.problems import Problem
from fruxon_api.schemas import WebhookAccepted
from fruxon_pipelines.secretbox import SecretUnreadable, secret_box
from fruxon_pipelines.webhooks import (
    WEBHOOK_PROVIDERS,
    InvalidDelivery,
    WebhookRevoked,
    accept_delivery,
    webhook_id_hash,
)

router = APIRouter(tags=["webhooks"])
MAX_WEBHOOK_ID_LENGTH = 128


def _unknown() -> Problem:
    # The same answer for a wrong provider, an unknown id and a revoked one.
    return Problem(404, "Not Found", "no active webhook has this URL")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Content Too Large", f"a delivery may be at most {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise Problem(413, "Content Too Large", f"a delivery may be at most {limit} bytes")
    return bytes(body)


def _store(svc: Services, provider: str, webhook_id: str, body: bytes, headers: Any):
    registration, asset = svc.catalog.find_webhook(webhook_id_hash(webhook_id))
    if (
        registration is None
        or asset is None
        or registration.provider != provider
        or registration.status != "ACTIVE"
        or asset.status == "DELETING"
    ):
        raise _unknown()
    if registration.auth_mode == "HMAC":
        try:
            secret = secret_box(svc.settings).open(registration.signing_secret)
        except SecretUnreadable as error:
            raise Problem(
                503,
                "Service Unavailable",
                "the webhook's signing secret cannot be read with the server's FRUXON_SECRET_KEY "
                "(was the key changed?); rotate the webhook with :regenerateWebhook",
            ) from error
        kind = WEBHOOK_PROVIDERS[provider]
        if not kind.verify(secret, body, headers.get(kind.signature_header)):
            raise Problem(
                401,
                "Unauthorized",
                f"the {kind.signature_header} header is missing or does not match",
            )
    try:
        return accept_delivery(svc.catalog, asset, registration, body, headers)
    except InvalidDelivery as error:
        raise Problem(400, "Bad Request", str(error)) from error
    except WebhookRevoked as error:
        raise _unknown() from error


@router.post(
    "/v1/webhooks/{provider}/{webhook_id}", status_code=202, response_model=WebhookAccepted
)
async def receive_webhook(provider: str, webhook_id: str, request: Request, svc: Svc):
    """Accept one delivery for the asset behind this URL; it refreshes what it names."""
    if provider not in WEBHOOK_PROVIDERS or len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise _unknown()
    body = await _read_body(request, svc.settings.webhook_max_body_bytes)
    event_id = await run_in_threadpool(_store, svc, provider, webhook_id, body, request.headers)
    return WebhookAccepted(eventId=event_id)
