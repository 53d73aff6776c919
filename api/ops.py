"""Operations: /healthz, /readyz, /metrics, and the request metrics middleware.
Metric labels are route templates, methods and status codes: never references or personal data."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware

from api.engine import within

router = APIRouter(tags=["operations"])


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("treatyflow_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("treatyflow_http_request_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry)
        self.cases = Gauge("treatyflow_cases", "Cases by kind and stage (visibility counts at scrape time)",
                           ["kind", "stage"], registry=self.registry)
        self.overdue = Gauge("treatyflow_overdue_actions", "Open cases and measures whose nearest deadline "
                             "has passed (visibility count at scrape time)", registry=self.registry)


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
    await count_cases(request)
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def count_cases(request: Request) -> None:
    """Stage counts and overdue actions for the dashboard, from visibility counts; a scrape while
    Temporal is unreachable keeps the last values."""
    from api.common import STAGES

    app = request.app.state
    client = app.client

    async def count(query: str) -> int:
        return (await client.count_workflows(query)).count

    try:
        async with asyncio.timeout(min(app.settings.api_timeout, 5.0)):
            for kind, stages in STAGES.items():
                counts = await asyncio.gather(*(count(f"CaseKind = '{kind}' AND CaseStage = '{s}'") for s in stages))
                for stage, n in zip(stages, counts):
                    app.metrics.cases.labels(kind, stage).set(n)
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            app.metrics.overdue.set(await count(f"ExecutionStatus = 'Running' AND ActionDueAt < '{now}'"))
    except Exception:  # noqa: BLE001 - metrics never fail the scrape
        pass
