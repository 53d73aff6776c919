"""The Temporal dev server for the tests, the fault tests and the benchmarks: one way to start it."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from temporalio.client import Client

from tests.support.processes import Proc, Processes, base_env
from tests.support.serving import free_port
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings
from treatyflow.devserver import dev_server_command, wait_until_reachable


class DevServer:
    """``temporal server start-dev`` as treatyflow's launcher builds it for `make run`
    (``dev_server_command``: a SQLite file with the WAL pragmas, the search attributes), on free
    loopback ports, with its data under ``data_dir``, as a subprocess of ``procs``; stopped and
    started again on its file. ``settings`` are the launcher's beyond those (an archive
    directory, a log level); dev mode stays off: no --ui-codec-endpoint, no API runs beside it."""

    def __init__(self, data_dir: Path, procs: Processes, *, codec_keys: CodecKeys, **settings: Any) -> None:
        self.data_dir = data_dir
        self.procs = procs
        self.settings = Settings(**{"data_dir": data_dir, "temporal_address": f"127.0.0.1:{free_port()}",
                                    "ui_port": free_port(), "codec_keys": codec_keys, "dev_mode": False,
                                    **settings})
        self.proc: Proc | None = None

    @property
    def address(self) -> str:
        return self.settings.temporal_address

    @property
    def db(self) -> Path:
        return self.data_dir / "temporal.sqlite"

    async def start(self, timeout: float = 30.0) -> Client:
        """Start it and return a client (the settings' codec keys) once it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = dev_server_command(self.settings)
        assert "--ui-codec-endpoint" not in cmd
        self.proc = self.procs.spawn("temporal", cmd, base_env())
        try:
            return await wait_until_reachable(self.settings, timeout=timeout)
        except Exception:
            raise AssertionError(f"the dev server did not come up:\n{self.proc.log_text()[-3000:]}") from None

    async def stop(self, sig: int = signal.SIGTERM, seconds: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.signal(sig)
        return await self.proc.exited(seconds)

    async def connect(self) -> Client:
        return await wait_until_reachable(self.settings, timeout=30)
