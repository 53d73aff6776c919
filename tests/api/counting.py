"""A Temporal client that counts the visibility counts made through it (how many, and how many at
once), for the tests of what stats and metrics may cost the engine. Everything else is the real
client's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from temporalio.client import Client


class CountingClient:
    def __init__(self, client: Client, ignore: Callable[[str], bool] | None = None) -> None:
        self._client = client
        self.ignore = ignore or (lambda query: False)  # counts that pass uncounted (another reader's)
        self.counts = 0  # count_workflows calls so far
        self.in_flight = 0
        self.peak = 0  # the most count_workflows calls at once
        self.queries: list[str] = []
        self.seconds: list[float] = []  # how long each count took

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def count_workflows(self, query: str | None = None, **kwargs: Any) -> Any:
        if self.ignore(query or ""):
            return await self._client.count_workflows(query, **kwargs)
        self.counts += 1
        self.queries.append(query or "")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        started = time.perf_counter()
        try:
            return await self._client.count_workflows(query, **kwargs)
        finally:
            self.in_flight -= 1
            self.seconds.append(time.perf_counter() - started)
