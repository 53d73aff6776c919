"""The FastAPI application: one Temporal client shared by every request, created at start-up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from temporalio.client import Client

from api import assistance, batch, codec, common, docs, documents, errors, openapi, ops, signing, transfers
from api.keys import KeyRing
from api.limits import AgedCache, BodyLimit, CountGate, IntakeGate, RateLimiter
from api.oidc import OperatorTokens
from domain.reference import reference
from stores.archive import open_archive
from stores.documents import open_documents
from stores.signing import configured_signing_keys
from treatyflow.client import codec_keys, connect, verify_keys
from treatyflow.codec import EncryptionCodec
from treatyflow.config import Settings
from treatyflow.tracing import Tracing


def create_app(settings: Settings, client: Client | None = None, tracing: Tracing | None = None) -> FastAPI:
    """The app; ``client`` given (tests) or connected at start-up. Key configuration errors
    fail here, loudly, not at the first request. ``tracing`` (tests; otherwise as configured,
    treatyflow/tracing.py): a span per request, continued by the Temporal client it connects."""
    ref = reference()
    owned = tracing is None  # then this app shuts its tracing down
    tracing = tracing or Tracing.configured(settings, "api")
    keys = KeyRing.configured(ref, dev_mode=settings.dev_mode, pairs=settings.api_keys, file=settings.api_keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if client is None:
            app.state.client = await connect(settings, tracing=tracing)
            await verify_keys(app.state.client)
        app.state.archive = open_archive(url=settings.archive_url, directory=settings.archive_dir,
                                         codec=app.state.client.data_converter.payload_codec,
                                         pool_size=settings.archive_pool_size)
        app.state.documents = open_documents(url=settings.documents_url, directory=settings.documents_dir,
                                             keys=app.state.codec.keys, limit=settings.document_limit_bytes,
                                             pool_size=settings.documents_pool_size)
        sweeping = asyncio.create_task(documents.sweep_hourly(app.state))  # orphans of a crash, hourly
        try:
            yield
        finally:
            sweeping.cancel()
            await app.state.archive.close()  # the pools' connections
            await app.state.documents.close()
            if tracing and owned:
                tracing.shutdown()  # the spans still batched are sent

    # docs_url/redoc_url None: FastAPI's pages load Swagger UI and ReDoc from a CDN; api/docs.py
    # serves both from an installed package instead (they render offline)
    app = FastAPI(title="treatyflow", version="0.2.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="International cooperation in criminal matters: transfer of sentenced persons "
                              "and mutual legal assistance. Authenticate with `Authorization: Bearer <key>`.")
    app.state.settings = settings
    app.state.reference = ref
    app.state.keys = keys
    app.state.limiter = RateLimiter(settings.rate_limit)
    app.state.metrics = ops.Metrics()
    app.state.operator = ops.OperatorCredential(settings.operator_token_hash, keys, ref)
    app.state.operator_tokens = OperatorTokens.of(settings)  # the operators' SSO tokens (codec only); None: off
    app.state.count_gate = CountGate(settings.stats_concurrency)  # visibility counts of stats and metrics
    app.state.stats_cache = AgedCache(settings.stats_max_age)  # /v1/stats answers, by scope
    app.state.caseload_cache = AgedCache(settings.caseload_max_age)  # /v1/stats's caseload figures, by scope
    app.state.gauge_cache = AgedCache(settings.stats_max_age)  # the /metrics case gauges
    app.state.intake = IntakeGate(settings.batch_concurrency)  # batches' lines, yielding to single openings
    app.state.client = client
    app.state.codec = EncryptionCodec(codec_keys(settings))
    # the states' signing keys, the worker's (in dev: the same file under the data directory)
    app.state.signing = configured_signing_keys(os.environ, settings.data_dir, dev_mode=settings.dev_mode)
    app.state.signing_jwks = signing.KeySet.model_validate(app.state.signing.jwks())
    errors.install(app)
    # innermost first: the body limit runs before routing and authentication (a keyless client
    # cannot make the API hold a large body), inside CORS and the request metrics (its 413s are
    # counted and carry the UI origin's CORS headers)
    # (the web application adds the paths its own routes read as a stream: web/importing.py)
    app.state.streamed = {documents.UPLOAD_PATH: settings.document_limit_bytes + documents.MULTIPART_OVERHEAD,
                          batch.PATH: batch.MAX_BYTES}
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, streamed=app.state.streamed)
    app.add_middleware(CORSMiddleware, allow_origins=list(codec.ui_origins(settings)), allow_methods=["POST"],
                       allow_headers=["content-type", "x-namespace", "authorization"], allow_credentials=True)
    app.add_middleware(ops.MetricsMiddleware)
    for router in (batch.router, transfers.router, assistance.router, documents.router, common.router, signing.router, codec.router,
                   ops.router):
        app.include_router(router)
    openapi.install(app)
    docs.install(app)
    if tracing:  # off: not a line of OpenTelemetry runs
        tracing.instrument(app)
    return app
