"""The API documentation renders offline: /docs (Swagger UI) and /redoc (ReDoc) reference only
assets the app itself serves (from the fastapi-offline package), none on another host, and each
of them answers 200 with its proper content type; the OpenAPI document they load is served too,
and the pages are not in it."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.api.helpers import http  # noqa: F401 - the fixture

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONTENT_TYPES = {".js": ("javascript",), ".css": ("text/css",), ".png": ("image/png",),
                 ".json": ("application/json",)}


class References(HTMLParser):
    """Every URL a page makes the browser load: src= and href= of any element, and string URLs
    handed to the page's inline scripts (Swagger UI's ``url: '/openapi.json'``)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url", "data", "srcset", "poster", "action") and value:
                self.urls.append(value.strip())
        self.in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.scripts.append(data)
            # quoted strings that look like URLs or paths, and any host at all
            self.urls += re.findall(r"""["'`]((?:https?:)?//[^"'`]+|/[^"'`\s]*)["'`]""", data)


def references(page: str) -> References:
    parser = References()
    parser.feed(page)
    return parser


async def check_page(http: httpx.AsyncClient, path: str) -> set[str]:
    """The page's references: each local, each served with its content type; their paths."""
    page = await http.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), \
        f"{path} names another host: {re.findall(r'(?i)(?:https?:)?//[a-z0-9./-]+', text)}"
    found = references(text)
    assert found.urls, f"{path} references nothing?"
    served: set[str] = set()
    for url in found.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("//"), f"{path}: {url} is not local"
        target = urljoin(path, url)
        r = await http.get(target)
        assert r.status_code == 200, (path, url, r.status_code)
        suffix = "." + target.rsplit(".", 1)[-1] if "." in target.rsplit("/", 1)[-1] else ""
        wanted = CONTENT_TYPES.get(suffix)
        assert wanted, f"{path}: {url} of an unexpected kind"
        assert any(w in r.headers["content-type"] for w in wanted), (url, r.headers["content-type"])
        assert len(r.content) > 100, (url, len(r.content))
        served.add(target)
    return served


async def test_swagger_ui_is_served_by_the_app(http):
    served = await check_page(http, "/docs")
    # what Swagger UI needs to render: its bundle, its style sheet, and the OpenAPI document
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/openapi.json"} <= served, served
    bundle = await http.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert 'PACKAGE_VERSION:"5.' in bundle.text  # Swagger UI 5 (OpenAPI 3.1, as FastAPI writes)
    page = (await http.get("/docs")).text
    assert '"validatorUrl": null' in page  # no badge from the online validator


async def test_redoc_is_served_by_the_app(http):
    served = await check_page(http, "/redoc")
    assert {"/docs/assets/redoc.standalone.js", "/openapi.json"} <= served, served
    assert "fonts.googleapis" not in (await http.get("/redoc")).text


async def test_the_openapi_document_is_served_and_leaves_the_pages_out(http):
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"].startswith("application/json")
    paths = spec.json()["paths"]
    assert {"/v1/transfers", "/v1/inbox", "/v1/stats"} <= set(paths)
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))], sorted(paths)


async def test_an_unknown_asset_is_a_404_and_the_folder_is_not_listed(http):
    assert (await http.get("/docs/assets/nothing-here.js")).status_code == 404
    assert (await http.get("/docs/assets/")).status_code == 404
    assert (await http.get("/docs/assets/../../pyproject.toml")).status_code == 404
