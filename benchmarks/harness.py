"""What every benchmark runs on: the Temporal dev server as `make run` starts it (the `temporal`
CLI from the virtualenv, ``treatyflow.devserver.dev_server_command``: a SQLite file with the WAL
pragmas, the search attributes), on free loopback ports in a directory of its own, started as the
tests start it (``tests.support.DevServer``); the worker and
the API as separate processes, as production runs them (so their memory can be read from /proc);
one encrypting data converter with a random key for every client. Everything started here is
stopped here (the last started first, the server last), whatever happens."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from stores.signing import SigningKeys, directory_states
from tests.support import DevServer, Processes, codec_keys_env, free_port
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings
from treatyflow.devserver import dev_server_command

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")

WORKER_BENCH = [sys.executable, "-m", "benchmarks.worker"]  # the production worker + the baseline
WORKER_PRODUCTION = [sys.executable, "-m", "treatyflow.cli", "worker"]  # exactly `treatyflow worker`
API_PRODUCTION = [sys.executable, "-m", "treatyflow.cli", "api"]  # exactly `treatyflow api`
SIGNING_KEYS = SigningKeys.generate(directory_states()).to_json()  # the states' keys of every bench process


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    """Seconds in, milliseconds out: count, p50, p95, max."""
    return {"n": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1) if values else math.nan}


class Timings(dict[str, list[float]]):
    """Durations in seconds by call name."""

    async def timed(self, name: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await call
        self.setdefault(name, []).append(time.perf_counter() - started)
        return result

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: summary_ms(values) for name, values in self.items()}


async def drive(count: int, concurrency: int, lifecycle) -> float:
    """Run ``lifecycle(i)`` for i in range(count), at most ``concurrency`` at a time; the seconds
    it took. Any failure stops the benchmark."""
    next_index = iter(range(count))

    async def lane() -> None:
        for i in next_index:
            await lifecycle(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return time.perf_counter() - started


# ---- processes ----------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB), from /proc/<pid>/status."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs (the worker's letter press among them)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, with that of every process it started: those
    running (``descendants``) and those it has waited for (cutime, cstime)."""
    ticks = 0
    for process in (pid, *descendants(pid)):
        try:
            with open(f"/proc/{process}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


async def settle(pids: list[int], *, quiet: float = 0.05, every: float = 1.0, timeout: float = 120.0) -> float:
    """Wait until the processes are idle (less than ``quiet`` CPU seconds each over ``every``
    seconds), at most ``timeout`` seconds; the seconds waited."""
    started = time.monotonic()
    before = [cpu_seconds(p) for p in pids]
    while time.monotonic() - started < timeout:
        await asyncio.sleep(every)
        now = [cpu_seconds(p) for p in pids]
        if all(b - a < quiet for a, b in zip(before, now)):
            break
        before = now
    return time.monotonic() - started


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    """A dev server, and the processes started against it."""

    workdir: Path
    settings: Settings
    keys: CodecKeys
    client: Client
    server: subprocess.Popen
    processes: list[subprocess.Popen] = field(default_factory=list)
    variant: str = ""  # worker options under test (benchmarks.worker); "" is the production worker
    profile_dir: Path | None = None  # py-spy records each worker and the API here (collapsed stacks)
    profilers: dict[int, subprocess.Popen] = field(default_factory=dict)

    def env(self, task_queue: str, **extra: str) -> dict[str, str]:
        """The environment of a worker or API process on this stack: this process's, unchanged but
        for the stack's addresses and keys; with the ``bytecode`` variant, Python caches bytecode
        (in the working directory) even where PYTHONDONTWRITEBYTECODE is set."""
        env = dict(os.environ)
        if "bytecode" in self.variant.split(","):
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        return {**env, "TREATYFLOW_BENCH_VARIANT": self.variant, "PYTHONPATH": str(ROOT),
                "TEMPORAL_ADDRESS": self.settings.temporal_address,
                "TEMPORAL_NAMESPACE": self.settings.temporal_namespace, "TREATYFLOW_TASK_QUEUE": task_queue,
                "TREATYFLOW_CODEC_KEYS": codec_keys_env(self.keys),
                "TREATYFLOW_SIGNING_KEYS": SIGNING_KEYS,
                "TREATYFLOW_DATA_DIR": str(self.workdir / "data"),
                "TREATYFLOW_ARCHIVE_DIR": str(self.workdir / "archive"), **extra}

    def spawn(self, command: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen:
        log = open(self.workdir / log_name, "ab")
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        self.processes.append(proc)
        if self.profile_dir is not None:
            self.profile(proc, log_name.removesuffix(".log"))
        return proc

    def profile(self, proc: subprocess.Popen, name: str) -> None:
        """py-spy (``pip install py-spy``) samples ``proc`` until it stops, into collapsed stacks
        (``<name>.txt``, one line a stack with its sample count: flamegraph.pl, speedscope)."""
        assert self.profile_dir is not None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        if spy is None:
            raise FileNotFoundError("--profile needs py-spy: .venv/bin/pip install py-spy")
        log = open(self.profile_dir / f"{name}.py-spy.log", "ab")
        self.profilers[proc.pid] = subprocess.Popen(
            [spy, "record", "--pid", str(proc.pid), "--rate", "100", "--nonblocking", "--format", "raw",
             "--output", str(self.profile_dir / f"{name}.txt")], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

    def stop_profiler(self, proc: subprocess.Popen) -> None:
        spy = self.profilers.pop(proc.pid, None)
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()

    async def start_worker(self, command: list[str], task_queue: str, timeout: float = 60.0) -> subprocess.Popen:
        """A worker process; returns once it polls ``task_queue``."""
        proc = self.spawn(command, self.env(task_queue), f"worker-{task_queue}.log")
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}: see {self.workdir}/worker-{task_queue}.log")
            described = await self.client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                namespace=self.settings.temporal_namespace, task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
            if described.pollers:
                return proc
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker polls {task_queue} after {timeout}s")
            await asyncio.sleep(0.2)

    async def start_api(self, task_queue: str, timeout: float = 60.0) -> tuple[subprocess.Popen, str]:
        """`treatyflow api` in dev mode (demo keys) on a free loopback port; returns once ready. The
        per-authority rate limit is lifted: the benchmark measures the API, not its limiter."""
        import httpx

        port = free_port()
        proc = self.spawn(API_PRODUCTION, self.env(task_queue, TREATYFLOW_MODE="dev", TREATYFLOW_API_HOST="127.0.0.1",
                                                   TREATYFLOW_API_PORT=str(port), TREATYFLOW_RATE_LIMIT="1000000"),
                          "api.log")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the API exited with {proc.returncode}: see {self.workdir}/api.log")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return proc, url
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the API is not ready after {timeout}s")
                await asyncio.sleep(0.2)

    async def stop(self, proc: subprocess.Popen) -> None:
        await asyncio.to_thread(self.stop_profiler, proc)
        await asyncio.to_thread(stop_process, proc)
        if proc in self.processes:
            self.processes.remove(proc)

    def db_bytes(self) -> dict[str, int]:
        """The server's SQLite files (database, WAL, shared memory)."""
        files = {p.name: p.stat().st_size for p in (self.workdir / "data").glob("temporal.sqlite*")}
        return {**files, "total": sum(files.values())}


@asynccontextmanager
async def dev_stack(workdir: Path, profile_dir: Path | None = None, variant: str = "") -> AsyncIterator[Stack]:
    """The dev server of `make run` (same command, same pragmas) under ``workdir``, and a client
    with the encrypting data converter; stops everything started on it on the way out."""
    keys = CodecKeys(current="bench", keys={"bench": os.urandom(32)})
    procs = Processes(workdir)  # the server's log: temporal-0.log
    server = DevServer(workdir / "data", procs, codec_keys=keys, archive_dir=workdir / "archive",
                       log_level="WARNING")
    stack: Stack | None = None
    try:
        client = await server.start(timeout=60.0)
        assert server.proc is not None
        stack = Stack(workdir=workdir, settings=server.settings, keys=keys, client=client, server=server.proc.popen,
                      variant=variant, profile_dir=profile_dir)
        yield stack
    finally:
        if stack is not None:
            for proc in reversed(list(stack.processes)):  # the last started first
                await stack.stop(proc)
        if server.proc is not None:
            await asyncio.to_thread(stop_process, server.proc.popen)
        procs.close()


# ---- the machine ----------------------------------------------------------------------------


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine shows here."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        memory = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        memory = "unknown"
    import temporalio

    try:
        temporal_cli = subprocess.run(dev_server_command(Settings())[:1] + ["--version"], capture_output=True,
                                      text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        temporal_cli = "unknown"
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": str(os.cpu_count()),
            "cpu_model": cpu, "memory": memory, "load_average_before": load_average(), "kernel": platform.release(),
            "python": platform.python_version(),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""), "temporalio": temporalio.__version__, "temporal_cli": temporal_cli}
