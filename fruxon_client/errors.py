"""The API's RFC 9457 problems as exceptions: one class per status the API documents.

Every error response of the API is ``application/problem+json`` with ``type``, ``title``,
``status``, ``detail`` and ``instance``; some add ``errorCategory`` (BUDGET, CREDENTIALS,
RATE_LIMIT …) or ``errors`` (one ``{field, message}`` per invalid field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server imports this package's models: no httpx for it
    import httpx


class FruxonError(Exception):
    """Anything the SDK raises on purpose."""


class ApiError(FruxonError):
    """The API answered with a problem (or, from something in front of it, a non-JSON error)."""

    status: int = 0

    def __init__(self, problem: dict[str, Any], response: httpx.Response | None = None) -> None:
        self.problem = problem
        self.response = response
        sent = response.status_code if response is not None else 0
        self.status = int(problem.get("status") or sent)
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or self.title)
        self.type: str = str(problem.get("type") or "about:blank")
        self.instance: str | None = problem.get("instance")
        self.error_category: str | None = problem.get("errorCategory")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the problem alone (the response does not pickle): across processes too.
        return (type(self), (self.problem,))


class BadRequest(ApiError):
    """400: a parameter or the body is invalid; ``errors`` names the fields."""


class Unauthorized(ApiError):
    """401: no token or key, or not a valid one."""


class Forbidden(ApiError):
    """403: the token or key lacks the scope or the tenant."""


class NotFound(ApiError):
    """404: no such tenant, asset, document or operation for this caller."""


class Conflict(ApiError):
    """409: the resource's state forbids it (credentials to fix first, …)."""


class ContentTooLarge(ApiError):
    """413: the upload is larger than the server takes."""


class UnsupportedMediaType(ApiError):
    """415: a file type the server cannot parse."""


class TooManyRequests(ApiError):
    """429: a rate limit, a budget, or another operation of the asset still running.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it gave one; the client
    has already waited and retried that many times (``max_retries``) before raising this."""

    def __init__(self, problem: dict[str, Any], response: httpx.Response | None = None) -> None:
        super().__init__(problem, response)
        self.retry_after = retry_after(response) if response is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt_too_many, (self.problem, self.retry_after))


def _rebuilt_too_many(problem: dict[str, Any], waited: float | None) -> TooManyRequests:
    error = TooManyRequests(problem)
    error.retry_after = waited
    return error


class ServerError(ApiError):
    """5xx: the server, the source's provider or the embedding provider failed."""


class OperationFailed(FruxonError):
    """An operation ended FAILED; ``operation`` is its final state (``errorMessage``,
    ``errorCategory``)."""

    def __init__(self, operation: Any) -> None:
        self.operation = operation
        category = f" [{operation.errorCategory}]" if operation.errorCategory else ""
        super().__init__(f"operation {operation.id} failed{category}: {operation.errorMessage}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.operation,))


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: ContentTooLarge,
    415: UnsupportedMediaType,
    429: TooManyRequests,
}


def retry_after(response: httpx.Response) -> float | None:
    """The response's ``Retry-After`` in seconds (the API sends whole seconds), if any."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: not what this API sends


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error response: problem+json as sent, anything else wrapped."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:500]
        body = {"status": response.status_code, "title": response.reason_phrase, "detail": text}
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else ApiError
    return kind(body, response)
