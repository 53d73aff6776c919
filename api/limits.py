"""Limits that keep one client from costing the API or the engine more than its share:

- ``BodyLimit``: the request body size (413), enforced as the bytes arrive, before routing and
  authentication, so that no client — with or without a key — makes the API hold more than
  ``max_body_bytes`` of a body;
- ``RateLimiter``: a per-authority token bucket (429 with Retry-After);
- ``AgedCache`` and ``CountGate``: answers computed from visibility counts (stats, the metrics
  gauges) are shared for a bounded age, computed once at a time per scope, and the counts they
  make run a bounded number at a time, so that no number of callers can slow the engine for the
  reads of others."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

    def __init__(self, app: ASGIApp, limit: int, streamed: re.Pattern[str] | None = None,
                 streamed_limit: int = 0) -> None:
        self.app = app
        self.limit = limit
        # POSTs to these paths (document uploads) are read by their route as a stream, which
        # counts them against their own limit: here only a declared length past it is refused
        self.streamed, self.streamed_limit = streamed, streamed_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.streamed is not None and scope.get("method") == "POST" and self.streamed.match(scope.get("path", "")):
            declared = dict(scope.get("headers", ())).get(b"content-length", b"").decode("latin-1").strip()
            if declared.isdigit() and int(declared) > self.streamed_limit:
                await self.answer(send, ApiError(413, "too_large", f"the body may not exceed {self.streamed_limit} "
                                                                   "bytes"))
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
    """At most ``size`` visibility counts at a time for stats and the metrics gauges, all callers
    and scopes together (per API process): what they take of the visibility store is bounded
    whatever the number of callers and scopes, and the store keeps its other connections and
    its time for everyone else's lists, inboxes and case reads."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.semaphore = asyncio.Semaphore(self.size)

    async def count(self, client: Any, query: str) -> int:
        async with self.semaphore:
            return (await client.count_workflows(query)).count
