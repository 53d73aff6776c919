"""Error answers: one JSON shape, the offending fields named, never a stack trace.

``{"error": {"status": 422, "code": "invalid", "message": "...", "fields": ["person.citizenships"]}}``"""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowQueryFailedError
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError

log = structlog.get_logger("treatyflow.api")

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, fields: list[str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or []
        self.headers = headers or {}


def unauthenticated() -> ApiError:
    return ApiError(401, "unauthenticated", "a valid API key is required (Authorization: Bearer <key>)",
                    headers={"WWW-Authenticate": "Bearer"})


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"no such {what}")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(problems: list[tuple[str, str]]) -> ApiError:
    return ApiError(422, "invalid", "; ".join(f"{f}: {m}" for f, m in problems), fields=[f for f, _ in problems])


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def unavailable(message: str = "the case could not answer in time; try again", cause: str = "timeout") -> ApiError:
    """503 with Retry-After; ``cause`` labels the operators' metric of such answers."""
    error = ApiError(503, "unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    error.cause = cause
    return error


FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.S)


def problems_of(exc: ValidationError | RequestValidationError, prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field path, message) for each error. A model-level rule names its field first in its
    message ("grounds: ..."), since pydantic gives such an error the model's location."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        else:
            message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            named = FIELD_FIRST.match(message) if err.get("type") == "value_error" else None
            if named:
                loc, message = [*loc, named.group(1)], named.group(2)
        out.append((".".join([*prefix, *loc]) or "(body)", message))
    return out


def body(error: ApiError) -> dict[str, Any]:
    return {"error": {"status": error.status, "code": error.code, "message": error.message,
                      "fields": error.fields}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 503:  # the client retries; the operators see it in the logs and metrics
            cause = getattr(exc, "cause", "timeout")
            log.warning("answered 503", route=_route(request), cause=cause)
            request.app.state.metrics.engine_errors.labels(cause).inc()
        return JSONResponse(body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return await _api_error(_, invalid(problems_of(exc)))

    @app.exception_handler(WorkflowQueryFailedError)
    async def _case_failing(request: Request, exc: WorkflowQueryFailedError) -> JSONResponse:
        # the case's workflow cannot answer (a failing workflow task): the operator must look at
        # it; the client may retry later
        log.error("case cannot answer", route=_route(request), reference=request.path_params.get("reference"),
                  cause=type(exc).__name__)
        return await _api_error(request, unavailable("the case cannot answer at the moment; the operators "
                                                     "have been alerted; try again later", "case_failing"))

    @app.exception_handler(RPCError)
    @app.exception_handler(TemporalError)
    async def _engine(request: Request, exc: Exception) -> JSONResponse:
        log.warning("engine call failed", route=_route(request), cause=type(exc).__name__,
                    status=getattr(getattr(exc, "status", None), "name", None))
        return await _api_error(request, unavailable(cause="engine_error"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # a defect of ours: never a 500 with a stack trace to the client, always an alert
        log.error("unexpected error", route=_route(request), cause=type(exc).__name__, exc_info=exc)
        return await _api_error(request, unavailable("the request could not be completed; try again later",
                                                     "unexpected"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
        return JSONResponse(body(ApiError(exc.status_code, code, str(exc.detail))), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def _route(request: Request) -> str:
    return getattr(request.scope.get("route"), "path", "(unmatched)")

