"""What the server supports: source types, embedding models, uploadable content types."""

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from fruxon_api.auth import Reader
from fruxon_pipelines.embedding import list_models
from fruxon_pipelines.parsing import SUPPORTED_CONTENT_TYPES
from fruxon_pipelines.sources.registry import SOURCE_TYPES

router = APIRouter(prefix="/v1/tenants/{tenant}", tags=["catalogue"])

SECRET_HINTS = ("token", "secret", "password", "apikey", "api_key")


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    described = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type") or next(
            (s.get("type") for s in spec.get("anyOf", []) if s.get("type") != "null"), "string"
        )
        described.append(
            {
                "name": name,
                "type": kind,
                "items": (spec.get("items") or {}).get("type"),
                "required": name in required,
                "secret": any(h in name.lower() for h in SECRET_HINTS),
                "default": spec.get("default"),
                "description": spec.get("description"),
            }
        )
    return described


@router.get("/assets:sourceTypes")
def source_types(tenant: str, principal: Reader) -> dict[str, Any]:
    return {
        "items": [
            {
                "key": kind.key,
                "displayName": kind.display_name,
                "parameters": _parameters(kind.parameters.model_json_schema()),
                "supportsOAuth": kind.supports_oauth,
                "authMethods": list(kind.auth_methods),
                "supportsWebhook": kind.supports_webhook,
                "webhookProviders": list(kind.webhook_providers),
                "supportsPollSchedule": kind.supports_poll,
                "createdWith": "POST /assets:file" if kind.key == "file" else "POST /assets",
            }
            for kind in SOURCE_TYPES.values()
        ]
    }


@router.get("/assets:embeddingModels")
def embedding_models(tenant: str, principal: Reader) -> dict[str, Any]:
    # Each model as the catalogue holds it, its field names camelCased (maxTokens).
    return {"items": [{_camel(k): v for k, v in asdict(m).items()} for m in list_models()]}


@router.get("/assets:supportedTypes")
def supported_types(tenant: str, principal: Reader) -> dict[str, Any]:
    return {
        "items": [
            {"contentType": media, "extensions": list(extensions)}
            for media, extensions in SUPPORTED_CONTENT_TYPES.items()
        ]
    }
