"""The product's one app: the HTTP API (``api.app.create_app``) with the web application in it —
its pages, its static files, its error pages."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from api.app import create_app as create_api
from stores.users import open_users
from treatyflow.config import Settings
from treatyflow.tracing import Tracing
from web import case_file, filing, importing, oidc, pages, statistics


def create_app(settings: Settings, client: Client | None = None, tracing: Tracing | None = None) -> FastAPI:
    """What ``treatyflow api`` serves: the API, and the web application at ``/`` (its requests
    traced like the API's)."""
    app = create_api(settings, client, tracing)
    install(app, settings)
    return app


def install(app: FastAPI, settings: Settings) -> None:
    """After the API's routes and error handlers: the pages at ``/``, the static files at
    ``/static``, and error answers as pages for every path that is not the API's; the users'
    accounts (in the data directory, or PostgreSQL), the identity provider when one is configured, and
    the limits of signing in."""
    app.state.users = open_users(settings.users_url, settings.data_dir)
    app.state.sign_in_limits = pages.SignInLimits()
    app.state.oidc = oidc.Provider.of(settings)  # None: passwords (and keys) only
    app.include_router(oidc.router)
    # the import's upload and confirm are read by their routes, which answer a file past its limit
    # with a page (whatever its declared length): the body limit lets them through
    app.state.streamed[importing.PATH] = sys.maxsize
    app.include_router(importing.router)  # /transfers/import before pages' /transfers/{reference}
    app.include_router(filing.router)  # /assistance-requests/new before pages' /assistance-requests/{reference}
    app.include_router(case_file.router)  # /transfers/{reference}/documents before pages' /transfers/{reference}/{act}
    app.include_router(pages.router)
    app.include_router(statistics.router)  # the statistics page and its CSV export
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="web-static")
    pages.install_errors(app)
