"""An ASGI app over real HTTP: uvicorn on a loopback port, for as long as a block runs."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    """A loopback port nothing listens on (once the probing socket is closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """Free loopback ports below the ephemeral range, where the dev server takes its random ones (and
    the kernel the local ports of connections): none of them can take ours before our servers do."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    chosen: list[socket.socket] = []
    try:
        for port in (rng or random).sample(range(10000, ephemeral), 200):
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.close()
                continue
            chosen.append(probe)
            if len(chosen) == count:
                return [s.getsockname()[1] for s in chosen]
        raise RuntimeError("no free ports below the ephemeral range")
    finally:
        for s in chosen:
            s.close()


@asynccontextmanager
async def serve(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """``app`` over real HTTP: uvicorn on ``port`` (a free loopback port unless given), its URL
    once it has started; stopped when the block ends."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
