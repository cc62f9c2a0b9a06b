"""/docs and /redoc load nothing from another host: every script, style and icon is ours."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from service.api.routes.ui import CONTENT_SECURITY_POLICY

# Every URL a page names: attributes and the quoted `url:`/`spec-url` of the viewer's set-up.
URL = re.compile(r"""(?:src|href|spec-url|url)\s*[=:]\s*['"]([^'"]+)['"]""")
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_from_this_server(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    html = answer.text
    assert "http://" not in html
    assert "https://" not in html
    urls = URL.findall(html)
    assert "/openapi.json" in urls
    assert len(urls) >= 3
    for url in urls:
        assert url.startswith("/")
        assert not url.startswith("//")
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert fetched.headers["content-type"].startswith(TYPES[suffix]), url
        assert len(fetched.content) > 0


def test_unknown_docs_asset(client: TestClient) -> None:
    assert client.get("/docs/assets/secrets.txt").status_code == 404
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404


def test_the_playground_policy_still_allows_only_this_origin() -> None:
    sources = re.findall(r"(\S+-src) ([^;]+)", CONTENT_SECURITY_POLICY)
    assert sources
    for directive, allowed in sources:
        assert allowed.split() in (["'self'"], ["'none'"]), directive
