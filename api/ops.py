"""Operations: /healthz, /readyz, /metrics, the request metrics middleware, and the operators'
credential (``TREATYFLOW_OPERATOR_TOKEN_HASH``) that /metrics (outside dev mode) and the codec
endpoints take — never an authority's key.
Metric labels are route templates, methods and status codes: never references or personal data."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import datetime, timezone

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware

from api.auth import refused
from api.engine import within
from api.errors import ApiError, forbidden, unauthenticated
from api.keys import DEV_PREFIX, HEX64, KeyConfigError, KeyRing, key_hash
from api.limits import AgedCache, CountGate
from domain.reference import Reference
from workflows.kinds import KINDS

router = APIRouter(tags=["operations"])
log = structlog.get_logger("treatyflow.api.ops")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("treatyflow_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("treatyflow_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.cases = Gauge("treatyflow_cases", "Cases by kind and stage (visibility counts, at most "
                           "TREATYFLOW_STATS_MAX_AGE seconds old)", ["kind", "stage"], registry=self.registry)
        self.overdue = Gauge("treatyflow_overdue_actions", "Open cases and measures whose nearest deadline "
                             "has passed (visibility count, at most TREATYFLOW_STATS_MAX_AGE seconds old)",
                             registry=self.registry)
        self.engine_errors = Counter("treatyflow_engine_errors_total", "Requests answered 503 because a case's "
                                     "workflow could not answer (case_failing: alert), the engine failed "
                                     "(engine_error) or a defect of ours (unexpected)", ["kind"],
                                     registry=self.registry)


class MetricsMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "(unmatched)")
            metrics: Metrics = request.app.state.metrics
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)


# ---- the operators' credential ---------------------------------------------------------------------

class OperatorCredential:
    """The operators' token, kept as SHA-256 hashes and compared in constant time against each
    (no early exit), like the authorities' keys (api/keys.py). An authority's key is never the
    operator credential: a configured hash equal to a key of the directory stops the API at
    start-up, and a presented key that is an authority's is refused before the operator hashes are
    even looked at."""

    def __init__(self, configured: str, keys: KeyRing, ref: Reference) -> None:
        hashes: list[bytes] = []
        for item in filter(None, (p.strip().lower() for p in configured.split(","))):
            if not HEX64.match(item):
                raise KeyConfigError("TREATYFLOW_OPERATOR_TOKEN_HASH holds SHA-256 hex digests (64 lowercase "
                                     "hex digits), comma separated")
            digest = bytes.fromhex(item)
            demo = any(hmac.compare_digest(digest, bytes.fromhex(key_hash(DEV_PREFIX + a.id))) for a in ref.authorities)
            authority = any(hmac.compare_digest(digest, known) for known, _ in getattr(keys, "_hashes", ()))
            if demo or authority:
                raise KeyConfigError("TREATYFLOW_OPERATOR_TOKEN_HASH holds the hash of an authority's key: the "
                                     "operator credential must be a token of its own")
            hashes.append(digest)
        self._hashes = hashes
        self._keys = keys

    @property
    def configured(self) -> bool:
        return bool(self._hashes)

    def matches(self, token: str) -> bool:
        presented = hashlib.sha256(token.encode()).digest()
        found = False
        for digest in self._hashes:
            found |= hmac.compare_digest(presented, digest)
        return found

    def check(self, request: Request, what: str) -> None:
        """Pass with the operator token; 403 for an authority's key (valid, but not for this), 401
        for anything else (no credential, an unknown one, another scheme)."""
        if not self.presented(request, what)[1]:
            raise self.unauthenticated(request, what)

    def presented(self, request: Request, what: str) -> tuple[str, bool]:
        """The bearer token presented and whether it is the operators' token; 401 without a bearer
        token, 403 for an authority's key (before anything else is looked at)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise self.unauthenticated(request, what)
        authority = self._keys.authority_for(token)
        if authority is not None:
            refused(request, authority, 403)
            raise forbidden(f"{what} take the operators' credential, not an authority's key")
        return token, self.matches(token)

    @staticmethod
    def unauthenticated(request: Request, what: str) -> ApiError:
        log.warning("operator request refused", status=401, path=request.url.path, method=request.method)
        return ApiError(401, "unauthenticated", f"{what} need the operators' credential (Authorization: Bearer "
                                                "<operator token>)", headers=unauthenticated().headers)


# ---- probes and metrics -------------------------------------------------------------------------------

@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    app = request.app.state
    try:
        await within(min(app.settings.api_timeout, 3.0), app.client.service_client.check_health())
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "temporal": "unreachable"}, status_code=503,
                            headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", "temporal": "reachable"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text. Outside dev mode only with the operators' token (a scrape job's bearer
    token); in dev mode open, as the whole API is on loopback there."""
    app = request.app.state
    if not app.settings.dev_mode:
        app.operator.check(request, "the metrics")
    await count_cases(request)
    return Response(generate_latest(app.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def count_cases(request: Request) -> None:
    """Stage counts and overdue actions for the dashboard, from visibility counts made at most
    once per TREATYFLOW_STATS_MAX_AGE (shared by every scrape and every API caller: a scrape flood
    costs the engine one round of counts per age), through the same bounded gate as the stats. A
    scrape while Temporal is unreachable keeps the last values."""
    app = request.app.state
    gate: CountGate = app.count_gate
    cache: AgedCache = app.gauge_cache

    async def compute() -> tuple[dict[tuple[str, str], int], int]:
        async with asyncio.timeout(min(app.settings.api_timeout, 5.0)):
            queries = [(name, stage) for name, kind in KINDS.items() for stage in kind.stages]
            counts = await asyncio.gather(*(gate.count(app.client, f"CaseKind = '{kind}' AND CaseStage = '{stage}'")
                                            for kind, stage in queries))
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            overdue = await gate.count(app.client, f"ExecutionStatus = 'Running' AND ActionDueAt < '{now}'")
        return dict(zip(queries, counts)), overdue

    try:
        by_stage, overdue = await cache.get("cases", compute, timeout=min(app.settings.api_timeout, 5.0))
    except Exception:  # noqa: BLE001 - metrics never fail the scrape
        return
    for (kind, stage), n in by_stage.items():
        app.metrics.cases.labels(kind, stage).set(n)
    app.metrics.overdue.set(overdue)
