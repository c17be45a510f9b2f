"""SSRF guard for web sources: refuse private, loopback, link-local … addresses at connect time.

Checking a URL's host before the request is not enough: DNS can answer differently between the
check and the connect (DNS rebinding), and a redirect can lead anywhere. So the check lives in the
urllib3 connection itself: it resolves the host once, classifies every address, connects only to
an address that passed, and checks the peer address of the socket it actually got. Every request
of a session from :func:`make_session` (every redirect hop too) goes through it.

``allow_private_networks=True`` turns the guard off (FRUXON_ALLOW_PRIVATE_NETWORKS=1).

Proxies are not supported: through a proxy the guard would see the proxy's address, not the
target's. :func:`make_session` therefore ignores the environment (``trust_env = False``).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

__all__ = [
    "BlockedAddressError",
    "GuardedHTTPAdapter",
    "blocked_reason",
    "is_blocked_address",
    "make_session",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# 64:ff9b::/96 (NAT64) carries an IPv4 address in its last 32 bits; Python counts it as global.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_ALLOW_HINT = "set FRUXON_ALLOW_PRIVATE_NETWORKS=1 to allow private networks"


class BlockedAddressError(requests.exceptions.ConnectionError):
    """A request was refused because its host resolves to a non-public address.

    Raised by :meth:`GuardedHTTPAdapter.send`, so ``session.get(...)`` raises it directly.
    It is a ``requests.ConnectionError``: code catching those keeps working.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        address: str | None = None,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.host = host
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "blocked address"


class _BlockedSocketAddress(OSError):
    """Raised inside the connection; urllib3 wraps it, the adapter unwraps it again."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(
            f"refused to connect to {host!r}: it resolves to {address}, a {reason} address "
            f"({_ALLOW_HINT})"
            if host != address
            else f"refused to connect to {address}, a {reason} address ({_ALLOW_HINT})"
        )
        self.host = host
        self.address = address
        self.reason = reason


def _parse_address(address: str | IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return address
    text = address.strip().strip("[]")
    # Link-local IPv6 from getaddrinfo may carry a scope ("fe80::1%eth0"); the scope is irrelevant.
    text = text.split("%", 1)[0]
    return ipaddress.ip_address(text)


def blocked_reason(address: str | IPAddress) -> str | None:
    """Why the guard refuses ``address`` ("loopback", "private" …), or None for a public address.

    IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64) are judged
    by the embedded address too, since they can reach it. Anything Python does not consider
    globally routable (e.g. 100.64.0.0/10, documentation ranges) is refused as well.
    Raises ValueError if ``address`` is not an IP address.
    """
    ip = _parse_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # The socket really talks IPv4 to the embedded address: only that one counts.
            inner = blocked_reason(ip.ipv4_mapped)
            return f"{inner} (embedded in {ip})" if inner is not None else None
        embedded: ipaddress.IPv4Address | None = ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"{inner} (embedded in {ip})"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


def is_blocked_address(address: str | IPAddress) -> bool:
    """True when the guard refuses ``address`` (see :func:`blocked_reason`)."""
    return blocked_reason(address) is not None


def _guarded_create_connection(
    address: tuple[str, int],
    timeout: Any,
    source_address: tuple[str, int] | None = None,
    socket_options: Sequence[tuple[int, int, int | bytes]] | None = None,
) -> socket.socket:
    """urllib3's ``create_connection``, but connecting only to addresses that pass the guard.

    The host is resolved once here and the socket connects to exactly the address that was
    checked, so there is no second resolution an attacker's DNS could answer differently.
    """
    host, port = address
    blocked: _BlockedSocketAddress | None = None
    error: OSError | None = None
    for family, socktype, proto, _canon, sockaddr in socket.getaddrinfo(
        host, port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        ip = str(sockaddr[0])
        reason = blocked_reason(ip)
        if reason is not None:
            blocked = _BlockedSocketAddress(host, ip, reason)
            continue
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            # urllib3 passes a sentinel for "default timeout": only set real values.
            if timeout is None or isinstance(timeout, int | float):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            # Belt and braces: judge the peer of the socket we really hold.
            peer = str(sock.getpeername()[0])
            reason = blocked_reason(peer)
            if reason is not None:
                sock.close()
                blocked = _BlockedSocketAddress(host, peer, reason)
                continue
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    if error is not None:
        # Some address was allowed but could not be reached: that is the more useful error.
        raise error
    if blocked is not None:
        raise blocked
    raise OSError(f"getaddrinfo returned no address for {host!r}")


class _GuardedConnectionMixin:
    """Replaces ``HTTPConnection._new_conn`` (urllib3 2.x) with the guarded connect."""

    host: str
    port: int
    timeout: Any
    source_address: tuple[str, int] | None
    socket_options: Sequence[tuple[int, int, int | bytes]] | None

    def _new_conn(self) -> socket.socket:
        dns_host = getattr(self, "_dns_host", self.host)
        try:
            sock = _guarded_create_connection(
                (dns_host, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(
                self,  # type: ignore[arg-type]
                f"Failed to establish a new connection: {exc}",
            ) from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    # TLS still verifies the certificate and sends SNI for the host name, not the IP.
    pass


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def _find_blocked(exc: BaseException) -> _BlockedSocketAddress | None:
    """Dig the guard's refusal out of the requests → urllib3 exception wrapping."""
    stack: list[object] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        if isinstance(current, _BlockedSocketAddress):
            return current
        stack.extend(current.args)
        stack.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
    return None


class GuardedHTTPAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections refuse non-public peers (unless allowed)."""

    # Pickled with the adapter, so an unpickled copy rebuilds its pools guarded too.
    __attrs__ = [*HTTPAdapter.__attrs__, "allow_private_networks"]

    def __init__(self, *, allow_private_networks: bool = False, **kwargs: Any) -> None:
        # Set before super().__init__, which builds the pool manager.
        self.allow_private_networks = allow_private_networks
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        if not self.allow_private_networks:
            # Per-instance override: no global state is touched.
            self.poolmanager.pool_classes_by_scheme = {
                "http": _GuardedHTTPConnectionPool,
                "https": _GuardedHTTPSConnectionPool,
            }

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            blocked = _find_blocked(exc)
            if blocked is None:
                raise
            raise BlockedAddressError(
                str(blocked),
                host=blocked.host,
                address=blocked.address,
                reason=blocked.reason,
                request=request,
            ) from exc


def make_session(user_agent: str, allow_private_networks: bool) -> requests.Session:
    """A session whose every request (and redirect hop) passes the SSRF guard.

    It sends ``user_agent`` on every request and ignores proxy/netrc settings from the
    environment (a proxy would hide the real target from the guard).
    """
    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = user_agent
    adapter = GuardedHTTPAdapter(allow_private_networks=allow_private_networks)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
