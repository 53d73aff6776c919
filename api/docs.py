"""The API documentation pages, served entirely by the app: Swagger UI at ``/docs`` and ReDoc at
``/redoc``, their scripts, style sheet and icon from the ``fastapi-offline`` package (installed
from the package registry; its ``static`` folder holds ``swagger-ui-bundle.js``,
``swagger-ui.css``, ``redoc.standalone.js`` and ``favicon.png``), mounted at ``/docs/assets``.
FastAPI's own pages load these from a CDN and are blank without one; these render offline.

Nothing on the pages reaches another host: no Google fonts for ReDoc, and no online validator
badge in Swagger UI (``validatorUrl: null``). The pages are not in the OpenAPI document."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def install(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve the pages and their assets; the app is created with ``docs_url=None, redoc_url=None``."""
    missing = [name for name in ASSETS if not (ASSETS_DIR / name).is_file()]
    if missing:  # a release of the package that moved its files: fail at start-up, not in a browser
        raise RuntimeError(f"the documentation assets {missing} are not in {ASSETS_DIR}")
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return root + (app.openapi_url or "/openapi.json"), root + ASSETS_URL

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js", swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png", oauth2_redirect_url=None,
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None})

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = urls(request)
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc", redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png", with_google_fonts=False)
