"""Tenants' LLM configs (our extension): stored embedding credentials that assets name with
`embeddingLlmConfigId` instead of carrying a key. A key goes in once and never comes out."""

from fastapi import APIRouter, Response
from pydantic import Field

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Services, Svc, parse_uuid
from fruxon_api.problems import Problem, not_found
from fruxon_api.schemas import Request, Wire
from fruxon_pipelines.catalog.models import LlmConfig
from fruxon_pipelines.embedding import KEYED_PROVIDERS
from fruxon_pipelines.secretbox import secret_box

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["llm configs"])


class LlmConfigIn(Request):
    name: str = Field(min_length=1, max_length=256)
    provider: str
    apiKey: str = Field(min_length=1, max_length=4096)


class RotateKeyIn(Request):
    apiKey: str = Field(min_length=1, max_length=4096)


class LlmConfigOut(Wire):
    id: str
    name: str
    provider: str
    revision: int
    createdAt: int
    modifiedAt: int


def _out(config: LlmConfig) -> LlmConfigOut:
    return LlmConfigOut(
        id=config.id,
        name=config.name,
        provider=config.provider,
        revision=config.revision,
        createdAt=config.created_at,
        modifiedAt=config.modified_at,
    )


def tenant_llm_config(svc: Services, tenant: str, config_id: str, field: str) -> LlmConfig:
    """The tenant's config, or 404 naming ``field`` (another tenant's is not confirmed)."""
    config = svc.catalog.get_llm_config(parse_uuid(config_id, field))
    if config is None or config.tenant != tenant:
        raise not_found(f"{field} {config_id}")
    return config


@router.post("/llmConfigs", response_model=LlmConfigOut, status_code=201)
def create_llm_config(tenant: str, body: LlmConfigIn, principal: Writer, svc: Svc):
    """Store an embedding provider's API key, sealed; assets then name it."""
    if body.provider not in KEYED_PROVIDERS:
        keyed = ", ".join(sorted(KEYED_PROVIDERS))
        raise Problem(
            400, "Bad Request", f"provider: {body.provider!r} takes no API key (keyed: {keyed})"
        )
    config = svc.catalog.create_llm_config(
        tenant=tenant,
        name=body.name,
        provider=body.provider,
        sealed_api_key=secret_box(svc.settings).seal(body.apiKey),
    )
    return _out(config)


@router.get("/llmConfigs", response_model=list[LlmConfigOut])
def list_llm_configs(tenant: str, principal: Reader, svc: Svc):
    return [_out(c) for c in svc.catalog.list_llm_configs(tenant)]


@router.get("/llmConfigs/{config}", response_model=LlmConfigOut)
def get_llm_config(tenant: str, config: str, principal: Reader, svc: Svc):
    return _out(tenant_llm_config(svc, tenant, config, "llmConfig"))


@router.post("/llmConfigs/{config}:rotateKey", response_model=LlmConfigOut)
def rotate_llm_config_key(tenant: str, config: str, body: RotateKeyIn, principal: Writer, svc: Svc):
    """Publish a new key (revision + 1); every asset naming the config uses it from its next
    batch or search."""
    current = tenant_llm_config(svc, tenant, config, "llmConfig")
    rotated = svc.catalog.rotate_llm_config(current.id, secret_box(svc.settings).seal(body.apiKey))
    return _out(rotated)


@router.delete("/llmConfigs/{config}", status_code=204)
def delete_llm_config(tenant: str, config: str, principal: Writer, svc: Svc) -> Response:
    """Remove the config. Assets that still name it fail with CREDENTIALS until PATCHed."""
    current = tenant_llm_config(svc, tenant, config, "llmConfig")
    svc.catalog.delete_llm_config(current.id)
    return Response(status_code=204)
