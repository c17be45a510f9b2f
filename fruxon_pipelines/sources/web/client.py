"""HTTP for one crawl: guarded GETs with politeness per origin, bodies read within limits.

Every request goes through the session's SSRF guard (netguard), waits for the origin's
Crawl-delay, and counts network failures per origin: after HOST_FAILURE_LIMIT in a row the
origin's remaining URLs fail without being requested. Failures are raised as FetchFailure, which
the crawl turns into a ``failed`` item; it never raises past that.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests

from fruxon_pipelines.sources.netguard import BlockedAddressError
from fruxon_pipelines.sources.web.urls import origin_of

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HOST_FAILURE_LIMIT = 3
_CHUNK = 64 * 1024
_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class FetchFailure(Exception):
    """One URL could not be fetched; ``transient`` failures let the crawl use known links."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


def describe_size(n: int) -> str:
    """A byte count as messages give it: "512 bytes", "64 KB", "1.5 MB"."""
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):g} MB"
    if n >= 1024:
        return f"{n / 1024:g} KB"
    return f"{n} bytes"


def _describe_connection_error(exc: requests.RequestException, url: str) -> str:
    text = str(exc)
    host = urlsplit(url).hostname or url
    if "NameResolutionError" in text or "Name or service not known" in text:
        return f"could not resolve host {host}"
    if "Connection refused" in text:
        return f"connection refused by {host}"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return f"{host} closed the connection"
    caused = re.search(r"Caused by (.*)\)$", text)
    return f"connection to {host} failed: {caused.group(1) if caused else text}"


class WebClient:
    """One crawl's HTTP: the session, and per origin the time of the last request, the delay
    robots.txt asks for between requests, and the network failures in a row.

    ``session``: a guarded session from :func:`~fruxon_pipelines.sources.netguard.make_session`
    (or the one a caller gave the source). ``max_body_bytes``: largest body read.
    """

    def __init__(
        self, session: requests.Session, *, user_agent: str, timeout: float, max_body_bytes: int
    ) -> None:
        self.session = session
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.body_seconds = max(30.0, 5 * timeout)
        self.last_request: dict[str, float] = {}
        self.network_failures: dict[str, tuple[int, str]] = {}
        # Seconds between two requests to an origin, as its robots.txt asks (capped there).
        self.crawl_delays: dict[str, float] = {}

    def get(self, url: str, headers: Mapping[str, str]) -> requests.Response:
        """One guarded GET (no redirects, streamed), after robots' Crawl-delay for the origin."""
        origin = origin_of(url)
        failures, last_error = self.network_failures.get(origin, (0, ""))
        if failures >= HOST_FAILURE_LIMIT:
            raise FetchFailure(
                f"not requested: {origin} failed {failures} times in a row (last: {last_error})",
                transient=True,
            )
        self._wait_for_turn(origin)
        request_headers = {"User-Agent": self.user_agent, "Accept": _ACCEPT, **headers}
        try:
            response = self.session.get(
                url,
                headers=request_headers,
                allow_redirects=False,
                stream=True,
                timeout=(self.timeout, self.timeout),
            )
        except BlockedAddressError as exc:
            raise FetchFailure(str(exc), transient=False) from exc
        except requests.Timeout as exc:
            message = f"timed out after {self.timeout:g} s"
            self.network_failures[origin] = (failures + 1, message)
            raise FetchFailure(message, transient=True) from exc
        except requests.exceptions.SSLError as exc:
            message = f"TLS error with {urlsplit(url).hostname}: {exc}"
            self.network_failures[origin] = (failures + 1, message)
            raise FetchFailure(message, transient=True) from exc
        except requests.ConnectionError as exc:
            message = _describe_connection_error(exc, url)
            self.network_failures[origin] = (failures + 1, message)
            raise FetchFailure(message, transient=True) from exc
        except requests.RequestException as exc:
            raise FetchFailure(f"request failed: {exc}", transient=True) from exc
        finally:
            self.last_request[origin] = time.monotonic()
        self.network_failures.pop(origin, None)
        return response

    def _wait_for_turn(self, origin: str) -> None:
        delay = self.crawl_delays.get(origin)
        last = self.last_request.get(origin)
        if not delay or last is None:
            return
        pause = last + delay - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def finished(self, url: str) -> None:
        """The response from ``url`` is read: the origin's Crawl-delay counts from now."""
        self.last_request[origin_of(url)] = time.monotonic()

    def read_body(
        self, response: requests.Response, limit: int | None = None, *, truncate: bool = False
    ) -> bytes:
        """The body, decoded (gzip …), at most ``limit`` bytes: beyond it a failure, or the
        first ``limit`` bytes with ``truncate``. Total time is capped too (slow-drip servers)."""
        limit = self.max_body_bytes if limit is None else limit
        deadline = time.monotonic() + self.body_seconds
        chunks: list[bytes] = []
        total = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > limit and truncate:
                    chunks.append(chunk[: len(chunk) - (total - limit)])
                    break
                if total > limit:
                    raise FetchFailure(
                        f"the document is larger than the {describe_size(limit)} limit",
                        transient=False,
                    )
                if time.monotonic() > deadline:
                    raise FetchFailure(
                        f"downloading took longer than {self.body_seconds:g} s", transient=True
                    )
                chunks.append(chunk)
        except requests.Timeout as exc:
            raise FetchFailure(f"timed out after {self.timeout:g} s", transient=True) from exc
        except requests.RequestException as exc:
            raise FetchFailure(f"the download broke off: {exc}", transient=True) from exc
        return b"".join(chunks)

    @staticmethod
    def drain(response: requests.Response) -> None:
        """Read a small body so the connection can be reused; a large one is just dropped."""
        try:
            total = 0
            for chunk in response.iter_content(_CHUNK):
                total += len(chunk)
                if total > _CHUNK:
                    break
        except requests.RequestException:
            pass
