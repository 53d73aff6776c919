"""One pool of PostgreSQL connections per store and process (psycopg_pool), for the archive and
the document store: at most ``size`` connections to the server however many activities or
requests run at once (a worker runs up to 100 activities), opened when first needed, closed after
``max_idle`` unused, checked before each use (a server restarted meanwhile costs no failure).

The pool belongs to the event loop that first used it; a store used from another loop (a test
calling ``asyncio.run`` again) gets a pool of its own there. The URL is passed to psycopg as it is:
``sslmode=verify-full``, ``sslrootcert=...`` and every other libpq parameter hold. Connections
show in ``pg_stat_activity`` under the pool's name (``treatyflow-archive``,
``treatyflow-documents``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

DEFAULT_SIZE = 4
WAIT_SECONDS = 10.0  # how long a caller waits for a connection (the server unreachable, or every one in use)
IDLE_SECONDS = 300.0  # a connection unused this long is closed: an idle process holds none


class Unreachable(Exception):
    """No connection within the wait: the database is unreachable or every connection stayed busy."""


class Pool:
    def __init__(self, url: str, *, name: str, size: int = DEFAULT_SIZE, wait: float = WAIT_SECONDS) -> None:
        if size < 1:
            raise ValueError(f"a pool of connections holds at least one (the {name} pool's size is {size})")
        self.url, self.name, self.size, self.wait = url, name, size, wait
        self._pool: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = asyncio.Lock()

    async def _opened(self) -> Any:
        from psycopg_pool import AsyncConnectionPool

        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._loop is not loop:
            self._opening, self._pool = asyncio.Lock(), None
        async with self._opening:
            if self._pool is None:
                pool = AsyncConnectionPool(
                    self.url, min_size=0, max_size=self.size, open=False, name=self.name, timeout=self.wait,
                    max_idle=IDLE_SECONDS, check=AsyncConnectionPool.check_connection,
                    # prepare_threshold None: no server-side prepared statements, which a PgBouncer
                    # in transaction mode (docs/operations.md, "Connection budget") would break
                    kwargs={"autocommit": True, "connect_timeout": max(2, int(self.wait)),
                            "application_name": self.name, "prepare_threshold": None})
                await pool.open()
                self._pool, self._loop = pool, loop
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A connection of the pool for the block (autocommit), back in the pool after it."""
        from psycopg_pool import PoolTimeout

        pool = await self._opened()
        try:
            connection = await pool.getconn()
        except PoolTimeout:
            raise Unreachable(f"no connection to the {self.name} database within {self.wait:g} s") from None
        try:
            yield connection
        finally:
            await pool.putconn(connection)

    def stats(self) -> dict[str, int]:
        return self._pool.get_stats() if self._pool is not None else {}

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._loop is asyncio.get_running_loop():
            await pool.close()
