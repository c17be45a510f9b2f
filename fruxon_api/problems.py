"""RFC 9457 problem details: every error the API returns has this shape."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("fruxon_api")


class Problem(Exception):
    """Raise anywhere in a route: becomes a problem+json response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extensions = extensions


# A webhook URL's last segment is its credential: never logged.
_WEBHOOK_PATH = re.compile(r"^(/v1/webhooks/[^/]+/)[^/]+")


def loggable_path(request: Request) -> str:
    return _WEBHOOK_PATH.sub(r"\1<redacted>", request.url.path)


def categorized_problem(
    error: Any, detail: str, otherwise: tuple[int, str] = (409, "Conflict")
) -> Problem:
    """A provider's refusal (a CategorizedError) as a problem: 429 when it is rate limiting,
    502 when it is down, ``otherwise`` when the user has credentials or config to fix."""
    from fruxon_pipelines.errors import RATE_LIMIT, SOURCE_UNAVAILABLE

    if error.category == RATE_LIMIT:
        return Problem(429, "Too Many Requests", detail, errorCategory=error.category)
    if error.category == SOURCE_UNAVAILABLE:
        return Problem(502, "Bad Gateway", detail, errorCategory=error.category)
    return Problem(*otherwise, detail, errorCategory=error.category)


def bad_request(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


def not_found(what: str) -> Problem:
    return Problem(404, "Not Found", f"{what} does not exist")


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": loggable_path(request),
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_detail(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    problems = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        problems.append({"field": location, "message": item.get("msg", "invalid")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return summary or "the request is invalid", problems


def service_problem(error: Any) -> Problem:
    """A use case's refusal (fruxon_pipelines.services.errors) as the problem it answers."""
    from fruxon_pipelines.services import errors

    status, title = next(
        (answer for kind, answer in _SERVICE_ANSWERS if isinstance(error, getattr(errors, kind))),
        (400, "Bad Request"),
    )
    headers = None
    if isinstance(error, errors.Busy):
        headers = {"Retry-After": str(error.retry_after_seconds)}
    return Problem(status, title, error.detail, headers=headers, **error.extensions)


_SERVICE_ANSWERS = (
    ("NotFound", (404, "Not Found")),
    ("Conflict", (409, "Conflict")),
    ("Busy", (429, "Too Many Requests")),
    ("TooLarge", (413, "Content Too Large")),
    ("UnsupportedType", (415, "Unsupported Media Type")),
    ("Unauthenticated", (401, "Unauthorized")),
    ("Unavailable", (503, "Service Unavailable")),
)


def install_problem_handlers(app: FastAPI) -> None:
    from fruxon_pipelines.services.errors import ServiceError

    @app.exception_handler(ServiceError)
    async def _refused(request: Request, exc: ServiceError) -> JSONResponse:
        problem = service_problem(exc)
        return problem_response(
            request,
            problem.status,
            problem.title,
            problem.detail,
            problem.headers,
            **problem.extensions,
        )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.title, exc.detail, exc.headers, **exc.extensions
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return problem_response(request, 400, "Bad Request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not Found", 405: "Method Not Allowed"}.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, title, detail, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, loggable_path(request))
        return problem_response(
            request, 500, "Internal Server Error", "an unexpected error occurred; it was logged"
        )


# What every operation may answer besides its success, in the schema (/openapi.json) as in
# fact: all of them RFC 9457 problems. Validation errors are 400s here, never FastAPI's 422.
DOCUMENTED_PROBLEMS = {
    "400": "Bad Request: a parameter or the body is invalid",
    "401": "Unauthorized: no token or key, or not a valid one",
    "403": "Forbidden: the token or key lacks the scope",
    "404": "Not Found: no such tenant, asset, document or operation for this caller",
    "409": "Conflict: the resource's state forbids it (e.g. credentials to fix first)",
    "413": "Content Too Large",
    "415": "Unsupported Media Type",
    "429": "Too Many Requests: a rate limit, a budget, or an operation already running",
    "502": "Bad Gateway: the source's provider or the embedding provider failed",
}
PROBLEM_SCHEMA = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errorCategory": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI schema with the problem answers every operation can give."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            for status, description in DOCUMENTED_PROBLEMS.items():
                responses.setdefault(status, {"description": description, "content": problem})
    return schema
