"""The SSRF guard of the web source's session (sources/netguard.py), against a real HTTP server
on 127.0.0.1 (tests/support/sitegen.py). The address-classification tests only classify:
nothing connects to those addresses.
"""

from __future__ import annotations

import socket

import pytest
import requests
from sitegen import Site
from webcrawl import UA, crawl, page, source

from fruxon_pipelines.sources.netguard import (
    BlockedAddressError,
    blocked_reason,
    is_blocked_address,
    make_session,
)

# -- SSRF guard ---------------------------------------------------------------------------------


def test_ssrf_guard_refuses_loopback_unless_allowed(site: Site) -> None:
    site.put("/", page("Home"))
    src = source([site.url()], allow_private_networks=False)
    item = crawl(src)[site.url()]
    assert item.status == "failed"
    assert "127.0.0.1" in (item.error or "") and "loopback" in (item.error or "")
    assert "FRUXON_ALLOW_PRIVATE_NETWORKS" in (item.error or "")
    assert site.requests == []

    item = crawl(source([site.url()], allow_private_networks=True))[site.url()]
    assert item.status == "fetched"


def test_guard_checks_the_resolved_address(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """A public-looking name that resolves to loopback (DNS rebinding) is refused at connect."""
    site.put("/", page("Home"))
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host == "rebound.example":
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    url = f"http://rebound.example:{site.port}/"
    with pytest.raises(BlockedAddressError) as caught:
        make_session(UA, allow_private_networks=False).get(url, timeout=5)
    assert "resolves to 127.0.0.1" in str(caught.value)
    assert isinstance(caught.value, requests.ConnectionError)
    assert site.requests == []

    response = make_session(UA, allow_private_networks=True).get(url, timeout=5)
    assert response.status_code == 200
    assert site.requests[-1][3]["User-Agent"] == UA


def test_guard_applies_to_every_redirect_hop(site: Site) -> None:
    """Even a session following redirects itself checks each hop at connect time."""
    site.redirect("/hop", "/")
    session = make_session(UA, allow_private_networks=False)
    with pytest.raises(BlockedAddressError):
        session.get(site.url("/hop"), timeout=5)


def test_guard_covers_https_connections() -> None:
    # Refused before any connection is made: no TLS server needed, no traffic at all.
    with pytest.raises(BlockedAddressError, match="loopback"):
        make_session(UA, allow_private_networks=False).get("https://127.0.0.1:9/", timeout=2)
    with pytest.raises(BlockedAddressError, match="link-local"):
        make_session(UA, allow_private_networks=False).get("http://169.254.169.254/", timeout=2)


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ],
)
def test_guard_blocks_non_public_addresses(address: str) -> None:
    assert is_blocked_address(address), address
    assert blocked_reason(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"]
)
def test_guard_allows_public_addresses(address: str) -> None:
    # Classification only: nothing connects to these.
    assert not is_blocked_address(address)
    assert blocked_reason(address) is None


def test_guard_reasons_are_specific() -> None:
    assert blocked_reason("127.0.0.1") == "loopback"
    assert blocked_reason("10.0.0.1") == "private"
    assert blocked_reason("169.254.169.254") == "link-local"
    assert blocked_reason("0.0.0.0") == "unspecified"
    assert blocked_reason("::ffff:127.0.0.1") == "loopback (embedded in ::ffff:7f00:1)"
