"""What the fault tests share: a webhook receiver that can hold its answer (so a delivery is in flight
when a process dies) and fail for a while, the embedded dev server and the worker/API as real
subprocesses (every one of them ended by its owner, even when a test fails), and readers of a
workflow's history (pending timers, activity attempts and failures)."""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from treatyflow.codec import CodecKeys
from treatyflow.config import Settings
from treatyflow.devserver import dev_server_command, wait_until_reachable

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]

# One random codec key for the fault tests, given to every process through the environment.
KEYS = CodecKeys(current="faults", keys={"faults": os.urandom(32)})
KEYS_ENV = f"faults:{base64.b64encode(KEYS.keys['faults']).decode()}"

# Every authority a transfer KZ→UZ or an assistance request FR→KZ (tests.factories) notifies.
AUTHORITIES = ("kz-gpo", "uz-gpo", "kz-penal", "uz-penal", "fr-moj", "kz-court", "kz-afm", "kz-police")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(probe: Callable[[], Any], what: str, seconds: float = 20.0, every: float = 0.05) -> Any:
    """Poll ``probe`` (sync or async) until it answers something truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        answer = probe()
        if asyncio.iscoroutine(answer):
            answer = await answer
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(every)


async def bounded(call: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}") from None


# ---- the webhook receiver -----------------------------------------------------------------------

@dataclass
class Arrival:
    """One request as the receiver saw it."""

    path: str
    key: str  # Idempotency-Key
    attempt: int  # X-Treatyflow-Attempt
    body: bytes
    status: int  # what the receiver answers (decided on arrival)
    arrived: float  # time.monotonic()
    answered: bool | None = None  # None while held; True once the answer was written

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    @property
    def subject(self) -> str:
        return self.event["subject"]

    @property
    def notice(self) -> tuple[str, str, str]:
        """What the notice says, without its id: (event, recipient, stage)."""
        data = self.event["data"]
        return data["event"], data["recipient"], data["stage"]


# an arrival → (status, seconds to hold the answer; negative: the answer trickles in over that long)
Policy = Callable[[Arrival], "tuple[int, float]"]


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every request and answers it after ``hold``
    seconds with 204 — or what ``policy`` decides. A real receiver drops repeats by their
    Idempotency-Key: ``processed()`` is what such a receiver would have acted on."""

    def __init__(self, hold: float = 0.0) -> None:
        self.hold = hold
        self.policy: Policy | None = None
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrival = Arrival(self.path, self.headers.get("Idempotency-Key", ""),
                                  int(self.headers.get("X-Treatyflow-Attempt", "0")), body, 204, time.monotonic())
                status, hold = receiver.policy(arrival) if receiver.policy else (204, receiver.hold)
                arrival.status = status
                with receiver.lock:
                    receiver.arrivals.append(arrival)
                if hold < 0:  # trickle the answer, one byte a second: no read ever waits long
                    self.trickle(status, -hold, arrival)
                    return
                if hold:
                    time.sleep(hold)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.wfile.flush()
                    arrival.answered = True
                except OSError:  # the sender is gone (killed while we held the answer)
                    arrival.answered = False
                    self.close_connection = True

            def trickle(self, status: int, seconds: float, arrival: Arrival) -> None:
                answer = f"HTTP/1.1 {status} OK\r\nContent-Length: 0\r\nX-Slow: {'x' * int(seconds)}\r\n\r\n".encode()
                try:
                    for i in range(len(answer)):
                        self.wfile.write(answer[i:i + 1])
                        self.wfile.flush()
                        if answer[i:i + 1] == b"x":
                            time.sleep(1.0)
                    arrival.answered = True
                except OSError:
                    arrival.answered = False
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many notices at once: never refuse a connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def webhooks_file(self, path: Path, authorities: Iterable[str] = AUTHORITIES) -> Path:
        """A TREATYFLOW_WEBHOOKS_FILE registering each authority under its own path."""
        path.write_text(json.dumps({a: {"url": self.url(f"/{a}"), "secret": f"{a}-webhook-secret-0123456789"}
                                    for a in authorities}))
        return path

    def received(self, subject: str | None = None) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if subject is None or a.subject == subject]

    def in_flight(self, subject: str | None = None) -> list[Arrival]:
        return [a for a in self.received(subject) if a.answered is None]

    def by_key(self, subject: str | None = None) -> dict[str, list[Arrival]]:
        keys: dict[str, list[Arrival]] = defaultdict(list)
        for a in self.received(subject):
            keys[a.key].append(a)
        return dict(keys)

    def processed(self, subject: str | None = None) -> dict[str, Arrival]:
        """The notices an idempotent receiver acted on: the first accepted arrival of each key."""
        seen: dict[str, Arrival] = {}
        for a in self.received(subject):
            if 200 <= a.status < 300 and a.key not in seen:
                seen[a.key] = a
        return seen

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- processes ------------------------------------------------------------------------------------

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


class DevServer:
    """``temporal server start-dev`` as treatyflow's launcher builds it (SQLite file with WAL
    pragmas, search attributes), on free loopback ports; stopped and started again on its file."""

    def __init__(self, data_dir: Path, procs: Processes) -> None:
        self.data_dir = data_dir
        self.procs = procs
        # dev_mode False: no --ui-codec-endpoint (no API runs beside this server)
        self.settings = Settings(data_dir=data_dir, temporal_address=f"127.0.0.1:{free_port()}",
                                 ui_port=free_port(), codec_keys=KEYS, dev_mode=False)
        self.proc: Proc | None = None

    @property
    def address(self) -> str:
        return self.settings.temporal_address

    @property
    def db(self) -> Path:
        return self.data_dir / "temporal.sqlite"

    async def start(self) -> Client:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = dev_server_command(self.settings)
        assert "--ui-codec-endpoint" not in cmd
        self.proc = self.procs.spawn("temporal", cmd, base_env())
        try:
            return await wait_until_reachable(self.settings, timeout=30)
        except Exception:
            raise AssertionError(f"the dev server did not come up:\n{self.proc.log_text()[-3000:]}") from None

    async def stop(self, sig: int = signal.SIGTERM, seconds: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.signal(sig)
        return await self.proc.exited(seconds)

    async def connect(self) -> Client:
        return await wait_until_reachable(self.settings, timeout=30)


def worker_env(server: DevServer, task_queue: str, data_dir: Path, *, webhooks: Path | None = None,
               archive_dir: Path | None = None, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update({
        "TEMPORAL_ADDRESS": server.address,
        "TREATYFLOW_TASK_QUEUE": task_queue,
        "TREATYFLOW_CODEC_KEYS": KEYS_ENV,
        "TREATYFLOW_DATA_DIR": str(data_dir),
        "TREATYFLOW_ARCHIVE_DIR": str(archive_dir or data_dir / "archive"),
        "TREATYFLOW_LOG_LEVEL": "INFO",
    })
    if webhooks is not None:
        env["TREATYFLOW_WEBHOOKS_FILE"] = str(webhooks)
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "treatyflow.cli"]


async def start_worker(procs: Processes, env: dict[str, str], name: str = "worker") -> Proc:
    """``treatyflow worker`` as a subprocess, once it has connected and started polling."""
    proc = procs.spawn(name, [*CLI, "worker"], env)
    await proc.logged("worker started")
    return proc


# ---- a workflow's history -------------------------------------------------------------------------

async def history(handle: WorkflowHandle) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def pending_timers(events: list[HistoryEvent]) -> dict[str, HistoryEvent]:
    """Timers started and neither fired nor cancelled, by timer id."""
    started = {e.timer_started_event_attributes.timer_id: e for e in events
               if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            started.pop(e.timer_fired_event_attributes.timer_id, None)
        elif e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            started.pop(e.timer_canceled_event_attributes.timer_id, None)
    return started


@dataclass
class ActivityRun:
    """One scheduled activity and how it ended in history (retries are not in history: the
    attempt of its ActivityTaskStarted event is the last one)."""

    name: str
    scheduled: HistoryEvent
    started: HistoryEvent | None = None
    closed: HistoryEvent | None = None
    input: Any = None

    @property
    def outcome(self) -> str | None:
        return None if self.closed is None else EventType.Name(self.closed.event_type).removeprefix(
            "EVENT_TYPE_ACTIVITY_TASK_").lower()

    @property
    def attempt(self) -> int:
        return self.started.activity_task_started_event_attributes.attempt if self.started else 0

    @property
    def identity(self) -> str:
        return self.started.activity_task_started_event_attributes.identity if self.started else ""


def activity_runs(events: list[HistoryEvent], name: str | None = None) -> list[ActivityRun]:
    runs: dict[int, ActivityRun] = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            runs[e.event_id] = ActivityRun(e.activity_task_scheduled_event_attributes.activity_type.name, e)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            runs[e.activity_task_started_event_attributes.scheduled_event_id].started = e
        else:
            for attr in ("activity_task_completed_event_attributes", "activity_task_failed_event_attributes",
                         "activity_task_timed_out_event_attributes", "activity_task_canceled_event_attributes"):
                if e.HasField(attr):
                    runs[getattr(e, attr).scheduled_event_id].closed = e
    return [r for r in runs.values() if name is None or r.name == name]


async def notice_of(client: Client, run: ActivityRun) -> Any:
    """The Notice a ``notify`` activity was scheduled with (decoded with the test key)."""
    from domain.case import Notice

    payloads = run.scheduled.activity_task_scheduled_event_attributes.input.payloads
    [notice] = await client.data_converter.decode(payloads, [Notice])
    return notice


def pending_activities(description: Any) -> list[Any]:
    return list(description.raw_description.pending_activities)


async def snapshot(handle: WorkflowHandle, query: Any | None = None) -> dict[str, Any]:
    """What a case shows from outside: its status, search attributes, pending timers (id → started
    event id, duration, fire time) and, through a worker, its view without the notice events
    (a notice delivered meanwhile adds one)."""
    from workflows import search_attributes

    described = await handle.describe()
    timers = {tid: (e.event_id, e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta(),
                    e.event_time.ToDatetime(timezone.utc)
                    + e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta())
              for tid, e in pending_timers(await history(handle)).items()}
    state: dict[str, Any] = {
        "status": described.status,
        "attributes": {k.name: described.typed_search_attributes.get(k) for k in search_attributes.ALL},
        "timers": timers,
    }
    if query is not None:
        view = (await handle.query(query)).model_dump(mode="json")
        view["events"] = [e for e in view.get("events", []) if not e["action"].startswith("notice_")]
        state["view"] = view
    return state
