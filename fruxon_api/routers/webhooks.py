"""The inbound webhook receiver: anonymous; the URL's webhook id (and, with HMAC, the body's
signature) is the credential. A delivery is stored before the 202; once the asset's deliveries
are quiet, the API launches their WEBHOOK operation (``fruxon_api.webhook_launches``), or the
webhook sensor does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fruxon_api.deps import Svc
from fruxon_api.problems import Problem
from fruxon_client.models import WebhookAccepted
from fruxon_pipelines.services.webhooks import UNKNOWN, receive_delivery
from fruxon_pipelines.webhooks import WEBHOOK_PROVIDERS

router = APIRouter(tags=["webhooks"])
MAX_WEBHOOK_ID_LENGTH = 128


def _unknown() -> Problem:
    # The same answer for a wrong provider, an unknown id and a revoked one.
    return Problem(404, "Not Found", UNKNOWN)


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


@router.post(
    "/v1/webhooks/{provider}/{webhook_id}", status_code=202, response_model=WebhookAccepted
)
async def receive_webhook(provider: str, webhook_id: str, request: Request, svc: Svc):
    """Accept one delivery for the asset behind this URL; it refreshes what it names."""
    if provider not in WEBHOOK_PROVIDERS or len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise _unknown()
    body = await _read_body(request, svc.settings.webhook_max_body_bytes)
    delivery = await run_in_threadpool(
        receive_delivery, svc, provider, webhook_id, body, request.headers
    )
    launches = request.app.state.webhook_launches
    if delivery.event_id is not None and launches is not None:
        launches.delivered(delivery.asset_id)
    return WebhookAccepted(eventId=delivery.event_id)
