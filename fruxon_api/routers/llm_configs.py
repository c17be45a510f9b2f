"""Tenants' LLM configs (our extension): stored embedding credentials that assets name with
`embeddingLlmConfigId` instead of carrying a key. A key goes in once and never comes out."""

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Svc
from fruxon_api.present import from_row
from fruxon_client.models import Request, Wire
from fruxon_pipelines.services import llm_configs as llm_config_service

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


def _out(config: Any) -> LlmConfigOut:  # a catalog row
    return from_row(LlmConfigOut, config)


@router.post("/llmConfigs", response_model=LlmConfigOut, status_code=201)
def create_llm_config(tenant: str, body: LlmConfigIn, principal: Writer, svc: Svc):
    """Store an embedding provider's API key, sealed; assets then name it."""
    config = llm_config_service.create_llm_config(
        svc, tenant, body.name, body.provider, body.apiKey
    )
    return _out(config)


@router.get("/llmConfigs", response_model=list[LlmConfigOut])
def list_llm_configs(tenant: str, principal: Reader, svc: Svc):
    return [_out(c) for c in llm_config_service.list_llm_configs(svc, tenant)]


@router.get("/llmConfigs/{config}", response_model=LlmConfigOut)
def get_llm_config(tenant: str, config: str, principal: Reader, svc: Svc):
    return _out(llm_config_service.load_llm_config(svc, tenant, config, "llmConfig"))


@router.post("/llmConfigs/{config}:rotateKey", response_model=LlmConfigOut)
def rotate_llm_config_key(tenant: str, config: str, body: RotateKeyIn, principal: Writer, svc: Svc):
    """Publish a new key (revision + 1); every asset naming the config uses it from its next
    batch or search."""
    current = llm_config_service.load_llm_config(svc, tenant, config, "llmConfig")
    return _out(llm_config_service.rotate_llm_config_key(svc, current, body.apiKey))


@router.delete("/llmConfigs/{config}", status_code=204)
def delete_llm_config(tenant: str, config: str, principal: Writer, svc: Svc) -> Response:
    """Remove the config. Assets that still name it fail with CREDENTIALS until PATCHed."""
    current = llm_config_service.load_llm_config(svc, tenant, config, "llmConfig")
    llm_config_service.delete_llm_config(svc, current)
    return Response(status_code=204)
