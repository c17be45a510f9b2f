"""The interactive API docs as a new user meets them: ``/docs`` (Swagger UI) and ``/redoc`` of
the embedded stack, in a real headless browser (Debian's chromium, installed if missing) that
can resolve no host but 127.0.0.1, as on a machine without internet."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from debian import apt_install

pytestmark = pytest.mark.e2e
DOC_PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        apt_install("chromium")
    path = shutil.which("chromium")
    assert path, "Debian's chromium did not install"
    return path


def rendered(chromium: str, url: str, profile: Path) -> tuple[str, str]:
    """(the page's DOM once its scripts ran, the browser's console log)."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # tests run as root
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            # Offline: every host name fails to resolve, a CDN's included.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result.stdout, result.stderr


def _operations(api_url: str) -> list[tuple[str, str, str]]:
    """(method, path, summary) of every documented operation."""
    spec = httpx.get(f"{api_url}/openapi.json", timeout=30).json()
    return [
        (method, path, operation.get("summary", ""))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def test_swagger_ui_renders_every_operation_offline(stack, chromium, tmp_path):
    api = stack.api_url()
    dom, console = rendered(chromium, f"{api}/docs", tmp_path)
    assert "Content Security Policy" not in console, console
    operations = _operations(api)
    assert len(operations) > 30
    rendered_paths = set(re.findall(r'data-path="([^"]+)"', dom))
    missing = {path for _, path, _ in operations} - rendered_paths
    assert not missing, f"Swagger UI did not render {sorted(missing)[:5]}"


def test_redoc_renders_the_reference_offline(stack, chromium, tmp_path):
    api = stack.api_url()
    dom, console = rendered(chromium, f"{api}/redoc", tmp_path)
    assert "Content Security Policy" not in console, console
    assert not re.findall(r'src="https?://', dom)  # nothing loads from elsewhere
    summaries = [summary for _, _, summary in _operations(api) if summary]
    assert summaries
    shown = [s for s in summaries if s in dom]
    assert shown == summaries, set(summaries) - set(shown)


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


def test_no_docs_page_references_another_origin(stack):
    api = stack.api_url()
    origin = urlsplit(api).netloc
    with httpx.Client(base_url=api, timeout=30) as client:
        for page in DOC_PAGES:
            response = client.get(page)
            assert response.status_code == 200, page
            policy = response.headers["content-security-policy"]
            assert "http" not in policy and "*" not in policy, policy
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
            parser = _References()
            parser.feed(response.text)
            for reference in parser.urls:
                url = urljoin(f"{api}{page}", reference)
                assert urlsplit(url).netloc == origin, (page, reference)
                asset = client.get(url)
                assert asset.status_code == 200, url
                assert asset.headers["content-type"].split(";")[0] in (
                    "application/javascript",
                    "text/javascript",
                    "text/css",
                    "image/png",
                    "application/json",
                ), url
