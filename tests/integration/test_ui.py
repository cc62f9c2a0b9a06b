"""The playground page: served by dropserve itself, locked to its origin, off by a setting."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.routes.ui import CONTENT_SECURITY_POLICY
from tests.integration.conftest import make_client

UI_DIR = Path(__file__).resolve().parents[2] / "service" / "api" / "ui"
ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "card.js": "text/javascript",
    "chart.js": "text/javascript",
    "results.js": "text/javascript",
    "image.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
# Any absolute URL, protocol-relative one or CSS import; the SVG namespace names no location.
EXTERNAL = re.compile(r"https?://(?!www\.w3\.org/2000/svg\b)|(?<![:\w])//[\w.-]+\.\w|@import")


@pytest.fixture(scope="module")
def without_ui(toy_models_dir: Path) -> Iterator[TestClient]:
    yield from make_client(toy_models_dir, ui=False)


def test_root_and_ui_redirect_to_the_page(client: TestClient) -> None:
    for path in ("/", "/ui"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "ui/"  # relative: works under a proxy prefix
    assert client.get("/").url.path == "/ui/"


@pytest.mark.parametrize(("name", "media_type"), ASSETS.items())
def test_assets_are_served_with_their_type_and_a_strict_policy(
    client: TestClient, name: str, media_type: str
) -> None:
    response = client.get("/ui/" if name == "index.html" else f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (UI_DIR / name).read_bytes()


def test_policy_allows_only_this_origin() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    for name in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[name] == "'self'", name
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_every_file_in_the_folder_is_served_and_none_else(client: TestClient) -> None:
    assert {p.name for p in UI_DIR.iterdir()} == set(ASSETS)
    for path in ("/ui/nope.js", "/ui/..%2Froutes%2Fui.py", "/ui/__init__.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_no_asset_names_another_host(name: str) -> None:
    text = (UI_DIR / name).read_text(encoding="utf-8")
    assert not EXTERNAL.findall(text), f"{name} refers to another host"


def test_page_links_its_own_assets_only(client: TestClient) -> None:
    html = client.get("/ui/").text
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert linked == {"favicon.svg", "style.css", "app.js", "../docs", "#inputs"}
    imported = set()
    for name in ("app.js", "api.js", "card.js", "chart.js", "results.js"):
        imported |= set(re.findall(r'from "\./([\w.]+)"', (UI_DIR / name).read_text()))
    assert imported <= set(ASSETS)
    assert "<style" not in html  # no inline styles or scripts: the policy would block them
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)


def test_setting_turns_the_page_off(without_ui: TestClient) -> None:
    for path in ("/", "/ui", "/ui/", "/ui/app.js"):
        response = without_ui.get(path, follow_redirects=False)
        assert response.status_code == 404, path
    assert without_ui.get("/v1/models").status_code == 200  # the API itself is unchanged


def test_page_stays_open_when_api_keys_protect_the_models(toy_models_dir: Path) -> None:
    for keyed in make_client(toy_models_dir, api_keys="k1"):
        assert keyed.get("/ui/").status_code == 200
        assert keyed.get("/v1/models").status_code == 401
        assert keyed.get("/v1/models", headers={"X-API-Key": "k1"}).status_code == 200


def test_model_detail_has_example_rows(client: TestClient) -> None:
    # The toy bundles predate examples: one row of the feature means stands in.
    body = client.get("/v1/models/toyreg/versions/1").json()
    assert len(body["examples"]) == 1
    assert len(body["examples"][0]) == len(body["features"])
    answer = client.post(
        "/v1/models/toyreg/versions/1/predict", json={"instances": body["examples"]}
    )
    assert answer.status_code == 200


def test_default_models_expose_their_held_out_rows() -> None:
    repo = Path(__file__).resolve().parents[2]
    for client in make_client(repo / "models"):
        body = client.get("/v1/models/concrete").json()
        assert len(body["examples"]) == 8
        assert all(len(row) == len(body["features"]) for row in body["examples"])
