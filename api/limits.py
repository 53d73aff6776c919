"""Limits that keep one client from costing the API or the engine more than its share:

- ``BodyLimit``: the request body size (413), enforced as the bytes arrive, before routing and
  authentication, so that no client — with or without a key — makes the API hold more than
  ``max_body_bytes`` of a body;
- ``RateLimiter``: a per-authority token bucket (429 with Retry-After);
- ``AgedCache`` and ``CountGate``: answers computed from visibility counts and lists (stats and
  their caseload figures, the metrics gauges) are shared for a bounded age, computed once at a time
  per scope, and the counts and list pages they make run a bounded number at a time, so that no
  number of callers can slow the engine for the reads of others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from api.errors import ApiError, body

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when allowed, else the seconds until a token is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def now(self) -> float:
        """The tokens there are now, without taking one."""
        return min(self.capacity, self.tokens + (time.monotonic() - self.at) * self.rate)


class RateLimiter:
    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.buckets: dict[str, TokenBucket] = {}

    def check(self, authority_id: str) -> None:
        bucket = self.buckets.setdefault(
            authority_id, TokenBucket(self.per_second, self.per_second, tokens=self.per_second))
        wait = bucket.take()
        if wait:
            raise ApiError(429, "rate_limited", "too many requests for this authority",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})


# ---- the body limit -------------------------------------------------------------------------------

class BodyLimit:
    """Pure ASGI middleware: a request whose declared Content-Length exceeds ``limit`` is answered
    413 at once (its body is never read; an ``Expect: 100-continue`` client is never told to send
    it); any other request with a body (Content-Length or Transfer-Encoding) has its body read
    here, counting the bytes as they arrive, and is answered 413 as soon as the count passes the
    limit — nothing more is read here and at most ``limit`` bytes are ever held. A body within the
    limit is handed to the application unchanged (one ``http.request`` message), then ``receive``
    is the server's again (disconnects). This runs before routing and authentication: a client
    without a key cannot make the API hold more than the limit either.

    After a 413 the server (uvicorn) discards whatever of the body is still coming, chunk by chunk
    as it arrives, holding none of it, and keeps the connection. No ``Connection: close``: closing
    a socket with unread data makes the kernel reset the connection, and the client would lose the
    413 it is owed."""

    def __init__(self, app: ASGIApp, limit: int, streamed: dict[re.Pattern[str], int] | None = None) -> None:
        self.app = app
        self.limit = limit
        # POSTs to these paths (document uploads, batches) are read by their route as a stream,
        # which counts them against their own limit: here only a declared length past it is refused
        self.streamed = streamed or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = next((limit for path, limit in self.streamed.items() if path.match(scope.get("path", ""))), None) \
            if scope.get("method") == "POST" else None
        if streamed is not None:
            declared = dict(scope.get("headers", ())).get(b"content-length", b"").decode("latin-1").strip()
            if declared.isdigit() and int(declared) > streamed:
                await self.answer(send, ApiError(413, "too_large", f"the body may not exceed {streamed} bytes"))
            else:
                await self.app(scope, receive, send)
            return
        declared: str | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self.too_large(send)
            return
        if not chunked and (declared is None or declared in ("0", "")):
            await self.app(scope, receive, send)  # no body: nothing to count
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # the client left before its body arrived: nobody reads an answer, but the layers
                # around this one expect a response
                await self.answer(send, ApiError(400, "incomplete_body", "the body did not arrive"))
                return
            part = message.get("body", b"")
            size += len(part)
            if size > self.limit:
                chunks.clear()
                await self.too_large(send)
                return
            if part:
                chunks.append(part)
            if not message.get("more_body", False):
                break

        whole: Message | None = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        chunks.clear()

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def too_large(self, send: Send) -> None:
        await self.answer(send, ApiError(413, "too_large", f"the body may not exceed {self.limit} bytes"))

    @staticmethod
    async def answer(send: Send, error: ApiError) -> None:
        content = json.dumps(body(error)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": content, "more_body": False})


# ---- answers computed from visibility counts ------------------------------------------------------

class AgedCache(Generic[K, V]):
    """Values at most ``max_age`` seconds old (measured from the start of their computation),
    one key (a scope) at a time: callers of a key whose value is too old wait for the one
    computation under way — single flight — instead of starting their own. A computation that
    fails is not kept (the next caller starts a new one); a caller that stops waiting (its
    deadline) does not cancel the computation others wait for."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.values: dict[K, tuple[float, V]] = {}
        self.pending: dict[K, asyncio.Task[V]] = {}
        self.computations = 0  # how many computations were started (tests, diagnostics)

    def fresh(self, key: K) -> V | None:
        kept = self.values.get(key)
        if kept is not None and time.monotonic() - kept[0] <= self.max_age:
            return kept[1]
        return None

    async def get(self, key: K, compute: Callable[[], Awaitable[V]], timeout: float) -> V:
        """The value of ``key``; ``asyncio.TimeoutError`` after ``timeout`` seconds of waiting."""
        kept = self.fresh(key)
        if kept is not None:
            return kept
        task = self.pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._compute(key, compute))
            task.add_done_callback(_retrieve)
            self.pending[key] = task
            self.computations += 1
        return await asyncio.wait_for(asyncio.shield(task), timeout)

    async def _compute(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        started = time.monotonic()
        try:
            value = await compute()
            self.values[key] = (started, value)
            return value
        finally:
            self.pending.pop(key, None)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A computation whose every caller stopped waiting: its failure is not an unhandled error."""
    if not task.cancelled():
        task.exception()


class CountGate:
    """At most ``size`` visibility counts or list pages at a time for stats (and their caseload
    figures) and the metrics gauges, all callers and scopes together (per API process): what they
    take of the visibility store is bounded whatever the number of callers and scopes, and the
    store keeps its other connections and its time for everyone else's lists, inboxes and case
    reads."""

    PAGE = 1000  # executions a list page gives at most (the server's own limit)

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.semaphore = asyncio.Semaphore(self.size)

    async def count(self, client: Any, query: str) -> int:
        async with self.semaphore:
            return (await client.count_workflows(query)).count

    async def list(self, client: Any, query: str, timeout: float) -> list[WorkflowExecutionInfo]:
        """Every execution ``query`` finds, as the raw rows of the visibility store (search
        attributes undecoded, memos never decoded), page by page: each page takes the gate's place
        in turn with others' counts, and at most ``timeout`` seconds."""
        rows: list[WorkflowExecutionInfo] = []
        token = b""
        while True:
            async with self.semaphore:
                answer = await client.workflow_service.list_workflow_executions(ListWorkflowExecutionsRequest(
                    namespace=client.namespace, query=query, page_size=self.PAGE, next_page_token=token),
                    retry=True, timeout=timedelta(seconds=timeout))
            rows += answer.executions
            token = answer.next_page_token
            if not token or not answer.executions:
                return rows


# ---- the engine's intake: batches and single openings -----------------------------------------------

BATCH_LINE: ContextVar[bool] = ContextVar("batch_line", default=False)
"""Set while a line of a batch is judged: its opening is the batch's, not a single one."""


class IntakeGate:
    """The engine's intake shared between the lines of batches and single openings (per API
    process). Lines open at most ``size`` at a time for all batches together; while a single
    opening (``POST /v1/transfers`` or ``/v1/assistance-requests``) is under way, or was less than
    ``quiet`` seconds ago, at most ``shared`` — so another authority's opening finds at most that
    many of a batch's cases ahead of it in the engine, and the batch takes its whole share back as
    soon as the others are quiet. A batch always keeps ``shared`` (≥ 1): it never starves."""

    def __init__(self, size: int, shared: int = 1, quiet: float = 1.0) -> None:
        self.size, self.shared, self.quiet = max(1, size), max(1, min(shared, size)), quiet
        self.lines = 0  # lines in flight
        self.singles = 0  # single openings in flight
        self.single_ended = -math.inf  # when the last one ended (monotonic)
        self._changed: asyncio.Condition | None = None

    @property
    def changed(self) -> asyncio.Condition:
        if self._changed is None:  # made in the running loop, on first use
            self._changed = asyncio.Condition()
        return self._changed

    def allowed(self) -> tuple[int, float]:
        """Lines allowed in flight now, and the seconds until that may grow by itself."""
        if self.singles:
            return self.shared, self.quiet
        quiet_for = time.monotonic() - self.single_ended
        return (self.shared, self.quiet - quiet_for) if quiet_for < self.quiet else (self.size, math.inf)

    @contextlib.asynccontextmanager
    async def line(self) -> AsyncIterator[None]:
        async with self.changed:
            while True:
                allowed, until = self.allowed()
                if self.lines < allowed:
                    break
                with contextlib.suppress(TimeoutError):  # asyncio.timeout: a cancellation is never swallowed
                    async with asyncio.timeout(None if until == math.inf else max(until, 0.01)):
                        await self.changed.wait()
            self.lines += 1
        try:
            yield
        finally:
            async with self.changed:
                self.lines -= 1
                self.changed.notify_all()

    @contextlib.asynccontextmanager
    async def opening(self) -> AsyncIterator[None]:
        """Around an opening: a single one counts (a batch's line is already counted)."""
        if BATCH_LINE.get():
            yield
            return
        self.singles += 1
        try:
            yield
        finally:
            self.singles -= 1
            self.single_ended = time.monotonic()
