"""Waiting for what a test cannot see happen: ``until`` a probe answers something truthy (and
fail when it never does), or ``poll`` a read until its answer satisfies a check (and hand back
the last answer either way, for the caller to assert on)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def read_until(read: Callable[[], Any], done: Callable[[Any], bool], seconds: float,
                     every: float) -> tuple[Any, bool]:
    """``read()`` (sync or async) every ``every`` seconds until ``done`` holds of its answer, for
    at most ``seconds``: the last answer, and whether ``done`` held of it."""
    deadline = time.monotonic() + seconds
    while True:
        answer = read()
        if inspect.isawaitable(answer):
            answer = await answer
        if done(answer):
            return answer, True
        if time.monotonic() > deadline:
            return answer, False
        await asyncio.sleep(every)


async def until(probe: Callable[[], Any], what: str, seconds: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``probe`` (sync or async) until it answers something truthy; fail after ``seconds``."""
    answer, done = await read_until(probe, bool, seconds, every)
    if not done:
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
    return answer


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout: float = 5.0,
               every: float = 0.05) -> T:
    """``fetch()`` until ``done`` holds of its answer; the last answer otherwise (the caller asserts)."""
    return (await read_until(fetch, done, timeout, every))[0]
