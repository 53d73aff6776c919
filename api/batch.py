"""``POST /v1/transfers/batch``: many transfer cases at once — a central authority's list of
applicants (API.md). One transfer request a JSON line in, one result line a line out, in the same
order, each written as soon as it and every line before it are judged (a client's progress is
cases judged, never lines read).

Each line is judged exactly as a single ``POST /v1/transfers`` (``api.transfers.open_transfer``:
the same checks, the same idempotent opening), so a repeat of the batch, or of any line, answers
``existing`` and opens nothing; a line is never half-opened. A line naming a reference an earlier
line of the batch named waits for that line, so the first is the one opened and the later ones
are answered as their single POSTs sent after it would be.

The lines are opened ``batch_concurrency`` at a time for all batches together, and only one at
a time while other openings are under way (api.limits.IntakeGate): a batch of 2,000 takes the
engine's spare intake, and other authorities' single POSTs go on being answered beside it. The batch is an audit event: who sent it (the authority, and the user
of the web application), how many lines, what became of them, the body's SHA-256 — never a line's
content."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from api.acts import acting, acting_user
from api.auth import Caller, deny
from api.body import read_at_most, utc_today
from api.errors import ApiError, conflict, invalid, problems_of
from api.limits import BATCH_LINE, IntakeGate
from api.transfers import CENTRAL, open_transfer
from domain.reference import Authority
from domain.transfer import TransferRequest, request_digest
from workflows.rejection import only, reference_taken

log = structlog.get_logger("treatyflow.api.batch")

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
MEDIA_TYPE = "application/x-ndjson"
MAX_LINES = 2_000  # API.md
MAX_BYTES = 16 * 1_048_576  # API.md
PATH = re.compile(r"^/v1/transfers/batch$")
"""The batch's body is read by its route, counted against ``MAX_BYTES`` (api.limits.BodyLimit lets
it through)."""
RESULTS = {201: "created", 200: "existing", 422: "invalid"}  # any other status: refused


@dataclass
class Judged:
    """What became of one line (of a batch, or of a file's row in the web application's preview)."""

    row: int
    reference: str | None
    status: int  # what the single POST would have answered
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def result(self) -> str:
        return RESULTS.get(self.status, "refused")

    def line(self) -> bytes:
        return json.dumps({"row": self.row, "reference": self.reference, "result": self.result,
                           "status": self.status,
                           "problems": [{"field": f, "message": m} for f, m in self.problems]}
                          ).encode() + b"\n"  # ASCII: no line separator a reader's splitlines() breaks at


def reference_in(line: bytes | dict[str, Any]) -> str | None:
    """The line's reference as it was sent, when it is a string (an invalid line's too)."""
    try:
        raw = json.loads(line) if isinstance(line, bytes) else line
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None
    reference = raw.get("reference") if isinstance(raw, dict) else None
    return reference[:64] if isinstance(reference, str) else None


def request_of(line: bytes) -> TransferRequest:
    """A line read as ``api.body.parse`` reads a single POST's body (strictly, unknown fields
    refused), its problems a 422."""
    if not line.strip():
        raise invalid([("(body)", "the line is empty: send one JSON object a line")])
    try:
        return TransferRequest.model_validate_json(line, strict=True)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise invalid([("(body)", "the line is not valid JSON: send one JSON object a line, in UTF-8")]) from None
        raise invalid(problems_of(exc)) from None


async def judge(request: Request, who: Authority, row: int, line: bytes, reference: str | None, opening: bool = True,
                previewed: dict[str, str] | None = None) -> Judged:
    """One line (whose ``reference_in`` is ``reference``), as its single POST (without
    ``opening``: as it would be, nothing opened; then ``previewed`` holds the requests earlier
    lines would open, by reference, so that a later line of the same reference is judged as it
    will be once they are: existing, or a reference taken)."""
    limit = request.app.state.settings.max_body_bytes
    if len(line) > limit:  # as the single POST's body limit answers it
        return Judged(row, reference, 413, [("(body)", f"the body may not exceed {limit} bytes")])
    try:
        response = Response()
        body = request_of(line)
        await open_transfer(request, response, who, body, opening)
        if previewed is not None and response.status_code == 201:
            digest = request_digest(body.model_copy(update={"received_on": body.received_on or utc_today()}))
            if body.reference not in previewed:
                previewed[body.reference] = digest
            elif previewed[body.reference] != digest:
                raise conflict(reference_taken(body.reference))
            else:
                response.status_code = 200
        return Judged(row, reference, response.status_code)
    except ApiError as err:
        field = "reference" if err.status == 409 else "(body)"
        return Judged(row, reference, err.status, err.problems or [(field, err.message)])
    except Exception as exc:  # noqa: BLE001 - one line's failure is that line's answer, never the batch's
        log.warning("batch line failed", row=row, cause=type(exc).__name__)
        return Judged(row, reference, 503, [("(body)", "the case could not be opened in time; send the batch "
                                                       "again: the lines already opened then answer existing")])


async def judge_all(request: Request, who: Authority, lines: list[bytes], opening: bool = True
                    ) -> AsyncIterator[Judged]:
    """Every line judged through the app's intake gate (api.limits.IntakeGate), yielded in order
    as each is ready; a line whose reference an earlier line named waits for it. The lines are
    taken in order by as many judges as the gate lets through at most; when the caller stops
    reading (a client gone), the judges stop (a repeat is safe)."""
    gate: IntakeGate = request.app.state.intake
    loop = asyncio.get_running_loop()
    judged: list[asyncio.Future[Judged]] = [loop.create_future() for _ in lines]
    earlier: dict[str, asyncio.Future[Judged]] = {}
    queue = iter(enumerate(lines))
    previewed: dict[str, str] | None = None if opening else {}

    async def judge_in_turn() -> None:
        BATCH_LINE.set(True)
        for index, line in queue:
            reference = reference_in(line)
            before = earlier.get(reference) if reference else None
            if reference:
                earlier[reference] = judged[index]
            if before is not None:
                await asyncio.wait([before])
            async with gate.line():
                try:
                    judged[index].set_result(await judge(request, who, index + 1, line, reference, opening,
                                                         previewed))
                except Exception as exc:  # noqa: BLE001 - never a line left without its answer
                    judged[index].set_exception(exc)

    judges = [asyncio.create_task(judge_in_turn()) for _ in range(min(gate.size, len(lines)))]
    try:
        for result in judged:
            yield await result
    finally:
        for task in judges:
            task.cancel()


def lines_of(body: bytes) -> list[bytes]:
    """The body's lines (``\\n`` or ``\\r\\n``; a last line break is no line); 422 past the limit."""
    lines = body.split(b"\n")
    while lines and not lines[-1].strip():  # blank lines at the end are no lines
        lines.pop()
    if not lines:
        raise invalid([("(body)", "the batch is empty: send one transfer request a line")])
    if len(lines) > MAX_LINES:
        raise invalid([("(body)", f"a batch may hold at most {MAX_LINES:,} lines; this one holds {len(lines):,}: "
                                  "send it in parts")])
    return [line.rstrip(b"\r") for line in lines]


async def read_body(request: Request) -> bytes:
    """The body, counted as it arrives: 413 as soon as it passes ``MAX_BYTES``."""
    body = await read_at_most(request, MAX_BYTES)
    if body is None:
        raise ApiError(413, "too_large", f"a batch may not exceed {MAX_BYTES // 1_048_576} MiB: send it in parts")
    return body


def may_open(request: Request, who: Authority) -> None:
    """403 unless ``who`` may open transfer cases by the batch (a central authority): asked before
    a body is read, by the API's batch and by the web application's import (before it reads a file,
    and for its page: the web app keeps no rule of its own)."""
    if who.role != CENTRAL:
        raise deny(request, who, only("open transfer cases", acting(request, who.state, {CENTRAL})))


async def open_all(request: Request, who: Authority, lines: list[bytes], sha256: str) -> AsyncIterator[Judged]:
    """Every line opened (``judge_all``), and the batch recorded as an audit event once its lines
    are done or its reader has gone: who sent it (the authority; the person, when the web
    application's import sent it: ``api.acts.acting_user``), how many lines, what became of them,
    and ``sha256`` (of the API's body; of the web import's file) — never a line's content. The
    API's batch and the web application's import both open through here, so both are recorded
    alike."""
    counts: Counter[str] = Counter()
    try:
        async with aclosing(judge_all(request, who, lines)) as judged_lines:
            async for judged in judged_lines:
                counts[judged.result] += 1
                yield judged
    finally:
        log.info("transfer batch", authority=who.id, user=acting_user(request), lines=len(lines),
                 complete=sum(counts.values()) == len(lines), sha256=sha256, **counts)


RESULT_SCHEMA = {"type": "object", "required": ["row", "reference", "result", "status", "problems"], "properties": {
    "row": {"type": "integer", "minimum": 1}, "reference": {"type": ["string", "null"]},
    "result": {"enum": ["created", "existing", "invalid", "refused"]}, "status": {"type": "integer"},
    "problems": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}}}}}}


@router.post("/batch", response_class=StreamingResponse, openapi_extra={
    "requestBody": {"required": True, "content": {MEDIA_TYPE: {"schema": {
        "type": "array", "minItems": 1, "maxItems": MAX_LINES, "items": {"$ref": "#/components/schemas/TransferRequestBody"},
        "description": "the lines of the body: one TransferRequestBody a line (at most 16 MiB in all)"}}}}},
    responses={200: {"description": "one result a line, in the order of the lines", "content": {MEDIA_TYPE: {
        "schema": {"type": "array", "items": RESULT_SCHEMA}}}}})
async def open_batch(request: Request, who: Caller) -> StreamingResponse:
    """Many transfer cases at once: ``application/x-ndjson``, one transfer request a line (at most
    2,000 lines and 16 MiB). Answers ``200`` with one line per input line, in the same order:
    ``{"row", "reference", "result": created | existing | invalid | refused, "status", "problems"}``,
    each line judged exactly as a single ``POST /v1/transfers``."""
    may_open(request, who)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != MEDIA_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send the batch as {MEDIA_TYPE}: one JSON object a line")
    body = await read_body(request)
    lines = lines_of(body)

    async def results() -> AsyncIterator[bytes]:
        async with aclosing(open_all(request, who, lines, hashlib.sha256(body).hexdigest())) as judged_lines:
            async for judged in judged_lines:
                yield judged.line()

    return StreamingResponse(results(), media_type=MEDIA_TYPE)
