"""Subprocesses of a test (servers, workers, the API), each ended by its owner, by its own id,
even when the test fails or the test process itself dies; and the environment they start from."""

from __future__ import annotations

import base64
import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.polling import until
from treatyflow.codec import CodecKeys

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def identity_prefix(self) -> str:
        """The start of the Temporal identity of a worker in this process (``<pid>@<host>``)."""
        return f"{self.pid}@"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL and reap (by this process's own id)."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    async def exited(self, seconds: float) -> int:
        """The exit code, waiting up to ``seconds`` for it."""
        await until(lambda: not self.alive(), f"{self.name} (pid {self.pid}) to exit", seconds, every=0.02)
        return self.popen.returncode

    async def logged(self, text: str, seconds: float = 30.0) -> None:
        def probe() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited ({self.popen.returncode}):\n{self.log_text()[-3000:]}")
            return text in self.log_text()
        await until(probe, f"{self.name} to log {text!r}", seconds, every=0.1)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process dies (Linux PR_SET_PDEATHSIG), so
    that no server or worker outlives a test run even when pytest itself is killed."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


class Processes:
    """Every subprocess a test starts; ``close()`` kills those still running, one by one, by id."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Proc] = []

    def spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> Proc:
        log = self.logs / f"{name}-{len(self.started)}.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.started:
            proc.kill()

    def report(self) -> str:
        return "\n".join(f"--- {p.name} pid {p.pid} rc {p.popen.returncode}\n{p.log_text()[-2500:]}"
                         for p in self.started)


def base_env() -> dict[str, str]:
    """The test process's environment without any treatyflow or Temporal configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TREATYFLOW_", "TEMPORAL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def codec_keys_env(keys: CodecKeys) -> str:
    """``keys``' current key as TREATYFLOW_CODEC_KEYS gives it to a process (``<id>:<base64>``)."""
    return f"{keys.current}:{base64.b64encode(keys.keys[keys.current]).decode()}"


# ---- processes, read from /proc (tests/shell, benchmarks/chaos.py) ----------------------------------

def proc_stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of ``pid``, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def cmdline(pid: int) -> str:
    """The command line of ``pid``, or "" when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
