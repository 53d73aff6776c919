"""Fixtures of the fault tests: one real embedded Temporal dev server per test module (a
subprocess on a SQLite file under a temporary directory, as `treatyflow up` starts it), a client
with the test codec key, and a registry of the subprocesses a test starts, all killed at the end
of the test whatever happened."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.faults.support import KEYS
from tests.support import DevServer, Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    registry = Processes(logs)
    try:
        yield registry
    finally:
        registry.close()
        print(registry.report())  # shown by pytest when the test failed


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DevServer]:
    root = tmp_path_factory.mktemp("temporal")
    logs = root / "logs"
    logs.mkdir()
    registry = Processes(logs)
    dev = DevServer(root / "data", registry, codec_keys=KEYS)
    try:
        await dev.start()
        yield dev
    finally:
        registry.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client(server: DevServer) -> Client:
    return await server.connect()
