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

from api.keys import DEV_PREFIX

log = structlog.get_logger("treatyflow.api")

RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, fields: list[str] | None = None,
                 headers: dict[str, str] | None = None, cause: str = "timeout") -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or []
        self.headers = headers or {}
        self.cause = cause  # of a 503: the label of the operators' metric
        self.problems: list[tuple[str, str]] = []  # of a 422: each field at fault and what is wrong with it


def unauthenticated(dev_example: str | None = None) -> ApiError:
    """401. ``dev_example``: in dev mode only, an authority id, for the hint at the demo keys."""
    message = "a valid API key is required, sent as Authorization: Bearer <key>"
    if dev_example:
        message += (f" (in dev mode the key of an authority is {DEV_PREFIX}<authority id>, such as "
                    f"{DEV_PREFIX}{dev_example})")
    return ApiError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


NOT_FOUND = {
    "case": "no such case: check the reference",
    "transfer": "no such transfer case: check the reference",
    "assistance": "no such request for assistance: check the reference",
    "treaty": "no such treaty: /v1/treaties lists the treaty ids",
}


def not_found(what: str, hint: str = "") -> ApiError:
    """404; ``hint``, when given, follows the message (``...: KZ-1 is a request for assistance, ...``)."""
    message = NOT_FOUND.get(what, f"no such {what}")
    return ApiError(404, "not_found", f"{message.split(':')[0]}: {hint}" if hint else message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def invalid(problems: list[tuple[str, str]]) -> ApiError:
    """422 naming each field at fault; each problem's message begins with its field (or with
    ``the body``), and the message is the problems', joined by ``; ``."""
    error = ApiError(422, "invalid", "; ".join(problem_text(f, m) for f, m in problems),
                     fields=[f for f, _ in problems])
    error.problems = [(f, problem_text(f, m)) for f, m in problems]
    return error


def problem_text(field: str, message: str) -> str:
    """The message as it is, when it begins with the field it is about; else ``field: message``."""
    if field == "(body)" or message.startswith((field + " ", field + ",", field + ":", subject(field) + " ")):
        return message
    return f"{field}: {message}"


def subject(field: str) -> str:
    """A field as the client wrote it: a query parameter without its ``query.`` location."""
    return field.removeprefix("query.").removeprefix("path.")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def unavailable(message: str = "the case could not answer in time; try again", cause: str = "timeout") -> ApiError:
    """503 with Retry-After; ``cause`` labels the operators' metric of such answers."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, cause=cause)


FIELD_FIRST = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.S)

# The patterns of the request models (domain.transfer, domain.assistance) and of the query
# parameters, in words: what a value must look like, with an example.
PATTERNS = {
    r"^[A-Z]{2}$": "must be a two-letter country code in capitals, such as UZ",
    r"^[A-Z]{3}$": "must be a three-letter currency code in capitals, such as KZT",
    r"^[A-Za-z0-9._-]{3,64}$": "must be 3 to 64 letters, digits, dots, hyphens or underscores, such as "
                               "KZ-2026-0001",
    r"^[A-Za-z0-9._-]{1,64}$": "must be 1 to 64 letters, digits, dots, hyphens or underscores, such as e1",
    r"^[A-Za-z0-9_-]{1,32}$": "must be 1 to 32 letters, digits, hyphens or underscores, such as m1",
    r"^\d{2}(\d{2}(\d{1,2})?)?$": "must be an ICCS code of 2, 4, 5 or 6 digits, such as 0501",
    r"^[0-9a-fA-F]{64}$": "must be a SHA-256 digest: 64 hexadecimal digits",
    r"^doc-[a-z2-7]{26}$": "must be the document_id of a document of the case file, such as doc-"
                           "7p2kq4x5vd3m6n8r2t4w6y2a3b",
    r"^\d{1,15}(\.\d{1,4})?$": "must be an amount written as a string, such as \"1500.00\": up to 15 digits, "
                                "then up to 4 decimals after a point",
}
DATE_FORM = "must be a date in the form YYYY-MM-DD, such as 2026-03-01"
# pydantic's error types, in words (the rest by ``predicate``)
PREDICATES = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this body: remove it",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "date_type": DATE_FORM,
    "date_parsing": DATE_FORM,
    "date_from_datetime_parsing": DATE_FORM,
    "date_from_datetime_inexact": DATE_FORM,
    "none_required": "must be null",
}


def predicate(err: dict[str, Any]) -> str:
    """What is wrong with the value, in words, to follow the field's name."""
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if message[:1].islower():  # the models' own errors are in words already (``may have at most 50 offences``)
        return message
    if kind in PREDICATES:
        return PREDICATES[kind]
    if kind == "string_pattern_mismatch":
        return PATTERNS.get(str(ctx.get("pattern")), "is not in the expected form")
    if kind == "literal_error":
        values = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"must be one of {', '.join(values)}"
    if kind in ("string_too_short", "too_short"):
        least = ctx.get("min_length", 1)
        return "may not be empty" if least == 1 else f"must have at least {least} items"
    if kind == "string_too_long":
        return f"may have at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"may have at most {ctx.get('max_length')} items"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        words = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
                 "less_than": "less than"}[kind]
        return "may not be negative" if (kind, bound) == ("greater_than_equal", 0) else f"must be {words} {bound}"
    if not message:
        return "is not valid"
    # any other error of pydantic's, in its words made to follow the field's name
    for generic, plain in (("Input should be", "must be"), ("String should", "must"), ("List should", "must"),
                           ("Value should", "must"), ("Input should", "must")):
        if message.startswith(generic):
            return plain + message[len(generic):]
    return "is not valid: " + message[:1].lower() + message[1:]


def problems_of(exc: ValidationError | RequestValidationError, prefix: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(field path, message) for each error; the message begins with the field
    (``sentencing_state must be a two-letter country code in capitals, such as UZ``). A
    model-level rule names its field first in its message (``grounds: grounds are required to
    refuse``), since pydantic gives such an error the model's location; its message then begins
    with the field's short name, which becomes the field's path."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        field = ".".join([*prefix, *loc]) or "(body)"
        named = FIELD_FIRST.match(str(err.get("msg", "")).removeprefix("Value error, ")) \
            if err.get("type") == "value_error" else None
        if named:
            short, message = named.group(1), named.group(2)
            field = ".".join([*prefix, *loc, short])
            if message.startswith(short + " "):
                message = subject(field) + message[len(short):]
        elif field == "(body)":
            message = f"the body {predicate(err).replace('an object', 'a JSON object')}"
        else:
            message = f"{subject(field)} {predicate(err)}"
        out.append((field, message))
    return out


def body(error: ApiError) -> dict[str, Any]:
    return {"error": {"status": error.status, "code": error.code, "message": error.message,
                      "fields": error.fields}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        if exc.status == 503:  # the client retries; the operators see it in the logs and metrics
            cause = exc.cause
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
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "error")
        return JSONResponse(body(ApiError(exc.status_code, code, http_message(request, exc))),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))


def http_message(request: Request, exc: StarletteHTTPException) -> str:
    """Starlette's own answers (no route, a method the route does not take), in words."""
    if exc.status_code == 404:
        return "no such path: /docs lists the paths of the API"
    if exc.status_code == 405:
        allowed = (getattr(exc, "headers", None) or {}).get("Allow", "")
        return f"the method {request.method} is not allowed on this path" + (f": use {allowed}" if allowed else "")
    detail = str(exc.detail)
    return detail[:1].lower() + detail[1:]


def _route(request: Request) -> str:
    return getattr(request.scope.get("route"), "path", "(unmatched)")

