"""Error answers: one JSON shape, the offending fields named, never a stack trace.

``{"error": {"status": 422, "code": "invalid", "message": "...", "fields": ["person.citizenships"]}}``"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def unavailable(message: str = "the case could not answer in time; try again") -> ApiError:
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


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
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return await _api_error(_, invalid(problems_of(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
        return JSONResponse(body(ApiError(exc.status_code, code, str(exc.detail))), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
