"""`make chaos`: the product as `make run` starts it (`treatyflow up`, its own data directory, free
loopback ports, webhooks to a local receiver), a bounded load of cases of both kinds driven through
the HTTP API as a client would, while the worker, the API and the Temporal server are killed with
SIGKILL at random moments (and `up` starts them again) and the webhook receiver fails for a while;
then it checks what must hold, prints the counts and exits non-zero if anything failed.

    python -m benchmarks.chaos                          # 500 cases, 20 faults, a random seed
    python -m benchmarks.chaos --cases 6 --faults 3 --seed 7 --webhook-seconds 5
    python -m benchmarks.chaos --help

What is checked at the end (each a count in the report; any miss is a failure):

- every case reached the end its script implies (read through the API, as its clients read it);
- the notices: the engine's own record (each ``notify`` activity in every run of every case and
  measure workflow: its Notice, hence its Idempotency-Key) against the receiver's. A notice is
  *received* when the receiver acknowledged a delivery with its key (a 2xx answer it wrote); the receiver
  de-duplicates by key, as docs/api.md tells receivers to. Every key the engine sent is received,
  the receiver holds no key the engine did not send, every delivery of a key carries the same
  body, correctly signed, and no notice was given up (``notice_failed``). A key acknowledged more
  than once is a *redelivery*: at-least-once delivery allows it only when the sender lost the
  outcome of the acknowledged attempt, that is when the worker was killed, or the server was down,
  between the two acknowledgements; a redelivery without either is a failure;
- the archive: one record per case under ``<data dir>/archive/<kind>/<reference>.json``, readable
  with the run's codec key and of the case's end, no temporary file left, ``archive_case``
  scheduled once per case, and at most one first write per case in the worker's log (an identical
  rewrite by a retried activity is logged ``written: false``);
- no API call answered 500 (nor any 5xx but the contract's 503);
- every fault was injected and the product recovered from each (the killed process started again,
  the API ready) within ``--recovery`` seconds.

Everything listens on 127.0.0.1; every loop is bounded in count or time; the run stops by itself
(``--timeout`` for the load, then bounded checks). Processes are found by their parent's pid under
/proc and killed by pid, never by name."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx

from tests.support.processes import cmdline, proc_stat
from tests.support.serving import free_ports

ROOT = Path(__file__).resolve().parents[1]
UP = [sys.executable, "-m", "treatyflow.cli", "up"]
BANNER = "treatyflow is up"
KINDS = ("worker", "api", "server")
COMMANDS = {"worker": "treatyflow.cli worker", "api": "treatyflow.cli api", "server": "server start-dev"}
READ_AS = {"transfer": "kz-gpo", "assistance": "fr-moj"}
PATHS = {"transfer": "/v1/transfers", "assistance": "/v1/assistance-requests"}

# the scripts, each with the end it implies, and how often each is drawn
SCRIPTS: dict[str, tuple[str, str, float]] = {  # name: (kind, end, weight)
    "transfer-transferred": ("transfer", "transferred", 0.30),
    "transfer-refused-by-a-state": ("transfer", "refused", 0.08),
    "transfer-refused-at-intake": ("transfer", "refused", 0.05),
    "transfer-withdrawn": ("transfer", "withdrawn", 0.10),
    "assistance-completed": ("assistance", "completed", 0.25),
    "assistance-partially-completed": ("assistance", "partially_completed", 0.06),
    "assistance-refused": ("assistance", "refused", 0.08),
    "assistance-withdrawn": ("assistance", "withdrawn", 0.08),
}


# ---- options -----------------------------------------------------------------------------------------

@dataclass
class Options:
    cases: int = 500
    faults: int = 20
    seed: int | None = None
    concurrency: int = 16
    timeout: float = 1800.0  # seconds for the load (start to the last case's end); then the checks
    gap_min: float = 2.0  # seconds between the product being whole again and the next fault
    gap_max: float = 8.0
    recovery: float = 120.0  # seconds a killed process may take to be back (the backoff caps at 30 s)
    webhook_windows: int = 2
    webhook_seconds: float = 20.0
    check_timeout: float = 600.0  # seconds for the checks after the load (workflows to close, histories)
    restart_delay: float = 1.0  # TREATYFLOW_RESTART_DELAY given to `up` (its default)
    workdir: str | None = None
    keep: bool = False
    json: str | None = None


def parse(argv: list[str] | None) -> Options:
    d = Options()
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 when every check holds, 1 when one fails, 2 when the product "
                                       "could not be started.")
    p.add_argument("--cases", type=int, default=d.cases, help=f"cases to drive to their end (default {d.cases})")
    p.add_argument("--faults", type=int, default=d.faults,
                   help=f"SIGKILLs of the worker, the API or the server, at least one of each (default {d.faults})")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of every random choice (default: a random one, printed)")
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help=f"cases driven at once (default {d.concurrency})")
    p.add_argument("--timeout", type=float, default=d.timeout,
                   help=f"seconds the load may take before the run gives up on it (default {d.timeout:g})")
    p.add_argument("--gap", type=float, nargs=2, default=(d.gap_min, d.gap_max), metavar=("MIN", "MAX"),
                   help="seconds between recovery and the next fault, drawn uniformly "
                        f"(default {d.gap_min:g} {d.gap_max:g})")
    p.add_argument("--recovery", type=float, default=d.recovery,
                   help=f"seconds a killed process may take to be back (default {d.recovery:g})")
    p.add_argument("--webhook-windows", type=int, default=d.webhook_windows,
                   help=f"times the webhook receiver fails, at least 1 (default {d.webhook_windows})")
    p.add_argument("--webhook-seconds", type=float, default=d.webhook_seconds,
                   help=f"how long each failure lasts (default {d.webhook_seconds:g})")
    p.add_argument("--check-timeout", type=float, default=d.check_timeout,
                   help=f"seconds for the checks after the load (default {d.check_timeout:g})")
    p.add_argument("--restart-delay", type=float, default=d.restart_delay,
                   help=f"TREATYFLOW_RESTART_DELAY for `up` (default {d.restart_delay:g})")
    p.add_argument("--workdir", help="where the data directory and logs go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (it is kept anyway when a check fails)")
    p.add_argument("--json", help="also write the report as JSON to this file")
    a = p.parse_args(argv)
    if a.cases < 1 or a.faults < 3 or a.concurrency < 1 or a.webhook_windows < 1:
        p.error("--cases and --concurrency must be at least 1, --faults at least 3 (one of each process), "
                "--webhook-windows at least 1")
    if not 0 <= a.gap[0] <= a.gap[1]:
        p.error("--gap MIN MAX with 0 <= MIN <= MAX")
    return Options(cases=a.cases, faults=a.faults, seed=a.seed, concurrency=a.concurrency, timeout=a.timeout,
                   gap_min=a.gap[0], gap_max=a.gap[1], recovery=a.recovery, webhook_windows=a.webhook_windows,
                   webhook_seconds=a.webhook_seconds, check_timeout=a.check_timeout, restart_delay=a.restart_delay,
                   workdir=a.workdir, keep=a.keep, json=a.json)


# ---- processes, from /proc ---------------------------------------------------------------------------

def children_of(parent: int) -> dict[str, int]:
    """`up`'s living children by kind (worker, api, server): the processes whose parent is ``parent``."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = proc_stat(int(entry))
        if info is None or info[0] != parent or info[1] == "Z":
            continue
        line = cmdline(int(entry))
        for kind, text in COMMANDS.items():
            if text in line:
                found[kind] = int(entry)
    return found


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below ``root``."""
    below: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := proc_stat(int(entry))):
            below[info[0]].append(int(entry))
    found: dict[int, int] = {}
    todo = list(below.get(root, []))
    while todo:
        pid = todo.pop()
        if (info := proc_stat(pid)) is not None:
            found[pid] = info[2]
            todo += below.get(pid, [])
    return found


def die_with_parent() -> None:
    """In `up` before exec: SIGTERM it if this harness dies (its children die with it)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---- the webhook receiver ----------------------------------------------------------------------------

class FailingReceiver:
    """The tests' webhook receiver (tests/support/webhooks.py) with failure windows: while one is
    open, every delivery is answered ``status`` (500, or 503 with Retry-After for the next)."""

    def __init__(self) -> None:
        from tests.support.webhooks import Receiver

        self.receiver = Receiver()
        self.failing: int | None = None
        self.receiver.policy = lambda delivery: ((self.failing or 204), 0.0)

    def __enter__(self) -> FailingReceiver:
        self.receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.__exit__(*exc)


# ---- the API client: retries, and what every answer was ----------------------------------------------

class Stop(Exception):
    """The load's time is up."""


class ScriptFailed(Exception):
    """A case's script met an answer it cannot go on from."""


@dataclass
class Calls:
    statuses: Counter = field(default_factory=Counter)  # (route, status) -> count
    transport_errors: Counter = field(default_factory=Counter)  # exception name -> count
    retries: int = 0
    repeats_confirmed: int = 0  # a 409 to a repeated act whose effect the case then showed
    waits_409: int = 0  # a 409 to an act the case was not ready for yet (handover still being arranged, ...)


class Api:
    def __init__(self, base: str, deadline: float, rng: random.Random, calls: Calls,
                 alive: Callable[[], bool] = lambda: True) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(20.0, connect=5.0),
                                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))
        self.deadline, self.rng, self.calls, self.alive = deadline, rng, calls, alive

    async def aclose(self) -> None:
        await self.http.aclose()

    async def pause(self, attempt: int) -> None:
        delay = min(0.2 * 2 ** min(attempt, 5), 3.0) * (0.5 + self.rng.random())
        if time.monotonic() + delay > self.deadline or not self.alive():
            raise Stop
        await asyncio.sleep(delay)

    async def request(self, method: str, path: str, route: str, authority: str,
                      body: dict | None = None) -> httpx.Response:
        """The answer, once it is neither a transport error nor a 503/429/502/504 (each retried,
        with backoff, until the deadline)."""
        from treatyflow.samples import key

        for attempt in range(100_000):  # bounded by the deadline in ``pause``
            if time.monotonic() > self.deadline:
                raise Stop
            try:
                response = await self.http.request(method, path, json=body, headers=key(authority))
            except httpx.TransportError as exc:
                self.calls.transport_errors[type(exc).__name__] += 1
                self.calls.retries += 1
                await self.pause(attempt)
                continue
            self.calls.statuses[(f"{method} {route}", response.status_code)] += 1
            if response.status_code in (429, 502, 503, 504):
                self.calls.retries += 1
                await self.pause(attempt)
                continue
            return response
        raise Stop

    async def read(self, kind: str, reference: str) -> dict[str, Any]:
        path = f"{PATHS[kind]}/{reference}"
        response = await self.request("GET", path, f"{PATHS[kind]}/{{reference}}", READ_AS[kind])
        if response.status_code != 200:
            raise ScriptFailed(f"reading it answered {response.status_code} {error_code(response)}")
        return response.json()

    async def until(self, kind: str, reference: str, ready: Callable[[dict], bool], what: str) -> dict[str, Any]:
        for attempt in range(100_000):
            view = await self.read(kind, reference)
            if ready(view):
                return view
            if view["outcome"] is not None:
                raise ScriptFailed(f"closed as {view['stage']} while waiting for {what}")
            await self.pause(min(attempt, 2))
        raise Stop

    async def act(self, kind: str, reference: str, act: str, authority: str, body: dict,
                  done: Callable[[dict], bool], ready: Callable[[dict], bool] = lambda v: True) -> None:
        """Take an act until it is answered 2xx, or 409 with the case showing the act's effect (a
        repeat of an act that had been taken: the API is idempotent; the effect is given 10 s to
        show, as a measure's reaches its request by a signal); a 409 before the case is ready for
        it is waited out; anything else fails the script."""
        path = f"{PATHS[kind]}/{reference}/{act}"
        route = f"{PATHS[kind]}/{{reference}}/{re.sub(r'measures/[^/]+/', 'measures/{measure_id}/', act)}"
        for attempt in range(100_000):
            response = await self.request("POST", path, route, authority, body)
            if 200 <= response.status_code < 300:
                return
            if response.status_code != 409:
                raise ScriptFailed(f"{act} by {authority} answered {response.status_code} {error_code(response)}")
            settle = time.monotonic() + 10.0
            while True:
                view = await self.read(kind, reference)
                if done(view):
                    self.calls.repeats_confirmed += 1
                    return
                if view["outcome"] is not None or ready(view) and time.monotonic() > settle:
                    raise ScriptFailed(f"{act} by {authority} answered 409 in stage {view['stage']}")
                if not ready(view):
                    break
                await asyncio.sleep(0.5)
            self.calls.waits_409 += 1
            await self.pause(min(attempt, 2))
        raise Stop


def error_code(response: httpx.Response) -> str:
    with contextlib.suppress(Exception):
        return response.json()["error"]["code"]
    return ""


# ---- the scripts ---------------------------------------------------------------------------------------

def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def measure(view: dict, measure_id: str) -> dict:
    return next(m for m in view["measures"] if m["id"] == measure_id)


def decided(state: str, decision: str) -> Callable[[dict], bool]:
    return lambda v: any(d["state"] == state and d["decision"] == decision for d in v["decisions"])


def withdrawn(view: dict) -> bool:
    """The withdrawal was taken: the case is withdrawn, or is being withdrawn (a request's open
    measures are cancelled first; a repeated withdrawal meanwhile answers 409 "already being
    withdrawn" while the stage is still the one it was withdrawn in, the trail saying so)."""
    return view["stage"] == "withdrawn" or any(e["action"] == "withdrawn" for e in view["events"])


def evidence(reference: str, measure_id: str) -> list[dict]:
    digest = hashlib.sha256(f"{reference}/{measure_id}".encode()).hexdigest()
    return [{"item_id": f"{measure_id}-1", "description": f"record of {measure_id}", "sha256": digest,
             "collected_on": today()}]


@dataclass
class Case:
    index: int
    script: str
    reference: str
    kind: str
    expected: str
    stage: str | None = None  # as read at the end
    error: str | None = None
    seconds: float = 0.0


async def run_script(api: Api, case: Case, rng: random.Random) -> None:
    from treatyflow.samples import BASE, assistance_body, transfer_body

    ref, kind = case.reference, case.kind
    if kind == "transfer":
        body = transfer_body(reference=ref, received_on=today(),
                             declaration={**BASE["declaration"], "signed_on": today()})
        if case.script == "transfer-refused-at-intake":
            body["judgment"] = {**BASE["judgment"], "final": False}
        opened = await api.request("POST", PATHS[kind], PATHS[kind], "kz-gpo", body)
        if opened.status_code not in (200, 201):
            raise ScriptFailed(f"opening answered {opened.status_code} {error_code(opened)}")
        if case.script == "transfer-refused-at-intake":
            return
        states = rng.sample(["KZ", "UZ"], 2)
        gpo = {"KZ": "kz-gpo", "UZ": "uz-gpo"}
        if case.script == "transfer-transferred":
            for state in states:
                await api.act(kind, ref, "decisions", gpo[state], {"state": state, "decision": "consent"},
                              decided(state, "consent"))
            arranged = await api.until(kind, ref, lambda v: v["handover"] is not None, "the handover to be arranged")
            await api.act(kind, ref, "handover", "uz-penal",
                          {"completed_on": today(), "place": arranged["handover"]["place"]},
                          lambda v: v["stage"] == "transferred", lambda v: v["handover"] is not None)
        elif case.script == "transfer-refused-by-a-state":
            if rng.random() < 0.5:
                await api.act(kind, ref, "decisions", gpo[states[0]], {"state": states[0], "decision": "consent"},
                              decided(states[0], "consent"))
            await api.act(kind, ref, "decisions", gpo[states[1]],
                          {"state": states[1], "decision": "refuse", "grounds": ["state_declined"]},
                          decided(states[1], "refuse"))
        else:  # withdrawn
            if rng.random() < 0.5:
                await api.act(kind, ref, "decisions", gpo[states[0]], {"state": states[0], "decision": "consent"},
                              decided(states[0], "consent"))
            await api.act(kind, ref, "withdrawal", "kz-gpo", {"withdrawn_on": today(), "reason": "chaos run"},
                          withdrawn)
        return
    body = assistance_body(reference=ref, received_on=today())
    opened = await api.request("POST", PATHS[kind], PATHS[kind], "fr-moj", body)
    if opened.status_code not in (200, 201):
        raise ScriptFailed(f"opening answered {opened.status_code} {error_code(opened)}")
    if case.script == "assistance-refused":
        await api.act(kind, ref, "review", "kz-gpo",
                      {"decision": "refuse", "grounds": ["sovereignty_security_public_order"]},
                      lambda v: v["stage"] == "refused")
        return
    await api.act(kind, ref, "review", "kz-gpo", {"decision": "accept"},
                  lambda v: any(e["action"] == "review_accept" for e in v["events"]))
    started = await api.until(kind, ref, lambda v: all(m["stage"] != "pending" for m in v["measures"]),
                              "the measures to start")
    if case.script == "assistance-withdrawn":
        await api.act(kind, ref, "withdrawal", "fr-moj", {"reason": "chaos run"}, withdrawn)
        return
    granted = case.script == "assistance-completed"
    await api.act(kind, ref, "measures/m2/authorisation", "kz-court", {"granted": granted, "note": "chaos run"},
                  lambda v: measure(v, "m2")["stage"] in (("executing", "executed") if granted else ("denied",)),
                  lambda v: measure(v, "m2")["stage"] == "awaiting_authorisation")
    todo = [(m["id"], m["assigned_to"]) for m in started["measures"] if granted or m["id"] != "m2"]
    for measure_id, authority in rng.sample(todo, len(todo)):
        await api.act(kind, ref, f"measures/{measure_id}/result", authority,
                      {"outcome": "executed", "evidence": evidence(ref, measure_id)},
                      lambda v, m=measure_id: measure(v, m)["stage"] == "executed",
                      lambda v, m=measure_id: measure(v, m)["stage"] == "executing")


# ---- the run --------------------------------------------------------------------------------------------

@dataclass
class Fault:
    kind: str
    pid: int
    at: float  # seconds since the load began
    monotonic: float
    in_flight: int
    recovered_after: float | None = None  # seconds until the new process ran and the API was ready
    new_pid: int | None = None


@dataclass
class Run:
    options: Options
    seed: int
    workdir: Path
    data_dir: Path
    ports: list[int]
    up: subprocess.Popen | None = None
    log: Path | None = None
    began: float = 0.0
    cases: list[Case] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    windows: list[dict] = field(default_factory=list)
    calls: Calls = field(default_factory=Calls)
    started: int = 0
    finished: int = 0
    faults_over: bool = False  # the fault injection ended (done, or given up): the load goes on freely
    released: int = 1  # segments of the load released so far
    recorded: dict[int, int] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports[2]}"

    def allowed(self) -> int:
        """Cases that may have started by now: the load advances with the faults, a segment of
        cases / (faults + 1) released at each (and when a fault finds none in flight), so that
        every fault meets cases in flight and no segment runs without faults around it."""
        if self.faults_over or self.released > self.options.faults:
            return self.options.cases
        return min(self.options.cases, math.ceil(self.released * self.options.cases / (self.options.faults + 1)))

    def in_flight(self) -> int:
        return self.started - self.finished


def start_up(run: Run, receiver: FailingReceiver) -> None:
    hooks = receiver.receiver.webhooks_file(run.workdir / "webhooks.json")
    frontend, ui, api = run.ports
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TREATYFLOW_", "TEMPORAL_", "OTEL_"))}
    env.update({"TEMPORAL_ADDRESS": f"127.0.0.1:{frontend}", "TREATYFLOW_UI_PORT": str(ui),
                "TREATYFLOW_API_PORT": str(api), "TREATYFLOW_DATA_DIR": str(run.data_dir),
                "TREATYFLOW_WEBHOOKS_FILE": str(hooks), "TREATYFLOW_RATE_LIMIT": "1000",
                "TREATYFLOW_RESTART_DELAY": str(run.options.restart_delay), "PYTHONUNBUFFERED": "1"})
    run.log = run.workdir / "up.log"
    with open(run.log, "ab") as out:
        run.up = subprocess.Popen(UP, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)


def up_log(run: Run) -> str:
    try:
        return run.log.read_text(errors="replace") if run.log else ""
    except OSError:
        return ""


async def wait_for_banner(run: Run, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while BANNER not in up_log(run):
        if run.up.poll() is not None:
            raise RuntimeError(f"`treatyflow up` exited ({run.up.returncode}) before it was up:\n{up_log(run)[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"`treatyflow up` not up within {seconds:.0f} s:\n{up_log(run)[-3000:]}")
        await asyncio.sleep(0.2)


async def ready(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get("/readyz", timeout=5.0)).status_code == 200
    return False


async def whole(run: Run, http: httpx.AsyncClient, seconds: float, killed: int | None = None) -> dict[str, int]:
    """The three children, once all run (none of them ``killed``) and the API is ready (Temporal
    reachable), within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        kids = children_of(run.up.pid)
        if len(kids) == 3 and killed not in kids.values() and await ready(http):
            run.recorded.update(descendants(run.up.pid))
            return kids
        if run.up.poll() is not None:
            raise RuntimeError(f"`treatyflow up` exited ({run.up.returncode}):\n{up_log(run)[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the product was not whole again within {seconds:.0f} s (running: {kids})")
        await asyncio.sleep(0.1)


async def inject_faults(run: Run, rng: random.Random) -> None:
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(run.options.faults - len(KINDS))]
    rng.shuffle(kinds)
    try:
        await _inject(run, rng, kinds)
    finally:
        run.faults_over = True


async def _inject(run: Run, rng: random.Random, kinds: list[str]) -> None:
    async with httpx.AsyncClient(base_url=run.api) as http:
        for kind in kinds:
            await whole(run, http, run.options.recovery)
            await asyncio.sleep(rng.uniform(run.options.gap_min, run.options.gap_max))
            for _ in range(600):  # a fault meets cases in flight (a minute at most, while cases remain)
                if run.in_flight() or run.finished >= run.options.cases:
                    break
                if run.started >= run.allowed():
                    run.released += 1
                await asyncio.sleep(0.1)
            kids = children_of(run.up.pid)
            if kind not in kids:  # gone on its own meanwhile: wait for it again
                kids = await whole(run, http, run.options.recovery)
            pid = kids[kind]
            now = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            fault = Fault(kind, pid, round(now - run.began, 1), now, run.in_flight())
            run.faults.append(fault)
            run.released += 1
            print(f"  {fault.at:7.1f} s  SIGKILL {kind} (pid {pid}), {fault.in_flight} cases in flight", flush=True)
            kids = await whole(run, http, run.options.recovery, killed=pid)
            fault.new_pid = kids[kind]
            fault.recovered_after = round(time.monotonic() - now, 1)
            print(f"  {time.monotonic() - run.began:7.1f} s  {kind} back (pid {fault.new_pid}) after "
                  f"{fault.recovered_after} s", flush=True)


async def webhook_windows(run: Run, receiver: FailingReceiver, rng: random.Random) -> None:
    """Each window opens at a random moment after the recovery from a fault drawn at random (so that
    notices flow, and the window overlaps the load and the next faults); it lasts ``webhook_seconds``,
    longer (up to three times that) until it has failed a delivery while cases are in flight."""
    after = sorted(rng.sample(range(run.options.faults), min(run.options.webhook_windows, run.options.faults)))
    after += [run.options.faults - 1] * (run.options.webhook_windows - len(after))
    for n, fault_index in enumerate(after):
        while not run.faults_over and (len(run.faults) <= fault_index
                                       or run.faults[fault_index].recovered_after is None):
            await asyncio.sleep(0.1)
        await asyncio.sleep(rng.uniform(0, run.options.gap_max))
        status = 500 if n % 2 == 0 else 503
        opened = time.monotonic()
        receiver.failing = status
        window = {"status": status, "from": round(opened - run.began, 1)}
        print(f"  {window['from']:7.1f} s  the webhook receiver answers {status} for {run.options.webhook_seconds:g} s",
              flush=True)

        def failed() -> int:
            return sum(1 for d in receiver.receiver.received() if d.status == status and opened <= d.arrived)

        try:
            await asyncio.sleep(run.options.webhook_seconds)
            for _ in range(int(run.options.webhook_seconds * 2 / 0.1)):
                if failed() or run.finished >= run.options.cases:
                    break
                await asyncio.sleep(0.1)
        finally:
            receiver.failing = None
            window["to"] = round(time.monotonic() - run.began, 1)
            window["answered_failing"] = failed()
            run.windows.append(window)


async def drive(run: Run, rng: random.Random) -> None:
    deadline = run.began + run.options.timeout
    api = Api(run.api, deadline, random.Random(rng.random()), run.calls, alive=lambda: run.up.poll() is None)
    slots = asyncio.Semaphore(run.options.concurrency)

    async def one(case: Case, case_rng: random.Random) -> None:
        began = time.monotonic()
        try:
            await run_script(api, case, case_rng)
            await api.until(case.kind, case.reference,
                            lambda v: v["outcome"] is not None and (case.kind == "transfer" or v["stage"] not in (
                                "completed", "partially_completed") or v["results"] is not None), "its end")
        except ScriptFailed as err:
            case.error = str(err)
        except Stop:
            case.error = "the load's time ran out"
        finally:
            case.seconds = round(time.monotonic() - began, 2)
            run.finished += 1
            slots.release()

    tasks = []
    try:
        for case in run.cases:
            while case.index >= run.allowed():
                if time.monotonic() > deadline:
                    case.error = "never started: the load's time ran out"
                    break
                await asyncio.sleep(0.05)
            if case.error:
                continue
            await slots.acquire()
            run.started += 1
            tasks.append(asyncio.create_task(one(case, random.Random(rng.random()))))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await api.aclose()


def choose_cases(options: Options, rng: random.Random, stamp: str) -> list[Case]:
    names = list(SCRIPTS)
    weights = [SCRIPTS[n][2] for n in names]
    chosen = rng.choices(names, weights, k=options.cases)
    # every script at least once when there are cases enough
    for i, name in enumerate(names[:min(len(names), options.cases)]):
        if name not in chosen:
            chosen[rng.randrange(options.cases)] = name
    cases = []
    for i, name in enumerate(chosen):
        kind, end, _ = SCRIPTS[name]
        state = "KZ" if kind == "transfer" else "FR"
        cases.append(Case(i, name, f"{state}-CHAOS-{stamp}-{i:05d}", kind, end))
    return cases


# ---- the checks ---------------------------------------------------------------------------------------

@dataclass
class Check:
    name: str
    ok: bool
    counts: dict[str, Any]
    problems: list[str] = field(default_factory=list)


async def read_ends(run: Run) -> Check:
    api = Api(run.api, time.monotonic() + 300, random.Random(0), run.calls)  # its answers count too
    wrong: list[str] = []
    try:
        for case in run.cases:
            if case.error is None:
                try:
                    view = await api.read(case.kind, case.reference)
                    case.stage = view["stage"]
                except (ScriptFailed, Stop) as err:
                    case.error = f"not readable at the end: {err}"
            if case.error or case.stage != case.expected:
                wrong.append(f"{case.reference} ({case.script}): {case.error or f'ended {case.stage}'}")
    finally:
        await api.aclose()
    by_end = Counter(f"{c.kind} {c.stage}" for c in run.cases if c.stage == c.expected)
    return Check("every case reached the end its script implies", not wrong,
                 {"cases": len(run.cases), "as scripted": len(run.cases) - len(wrong),
                  "by end": dict(sorted(by_end.items()))},
                 wrong)


async def engine_record(run: Run, deadline: float) -> tuple[dict[str, dict], list[str]]:
    """Per case: its workflows' runs, the notices they sent (notice id -> recipient), and how often the
    archive activity was scheduled, from the engine's histories (after every case workflow closed)."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client, WorkflowExecutionStatus
    from temporalio.service import RPCError, RPCStatusCode

    from domain.case import Notice
    from treatyflow.client import data_converter
    from treatyflow.codec import configured_keys
    from workflows.measure import measure_workflow_id

    keys = configured_keys({}, run.data_dir, dev_mode=True)
    client = await Client.connect(f"127.0.0.1:{run.ports[0]}", namespace="default", data_converter=data_converter(keys))
    problems: list[str] = []
    record: dict[str, dict] = {}
    slots = asyncio.Semaphore(4)

    async def history(workflow_id: str, run_id: str | None) -> list:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        return [event async for event in handle.fetch_history_events()]

    async def runs_of(workflow_id: str) -> list[list] | None:
        try:
            events = await history(workflow_id, None)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        found = [events]
        for _ in range(100):
            previous = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
            if not previous:
                break
            events = await history(workflow_id, previous)
            found.append(events)
        return found

    async def closed(workflow_id: str) -> bool:
        """Whether the workflow exists; once it has closed (a case closes once its closing notices
        are delivered; a measure, abandoned by its request, once its own are), or the time is up."""
        handle = client.get_workflow_handle(workflow_id)
        while True:
            try:
                status = (await handle.describe()).status
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
            if status != WorkflowExecutionStatus.RUNNING:
                return True
            if time.monotonic() > deadline:
                problems.append(f"{workflow_id} still running when the checks' time ran out")
                return True
            await asyncio.sleep(1.0)

    async def one(case: Case) -> None:
        async with slots:
            workflow_id = f"{case.kind}:{case.reference}"
            entry = {"notices": {}, "archive_scheduled": 0, "runs": 0, "notify_open": 0, "workflows": 0}
            ids = [workflow_id] + ([measure_workflow_id(case.reference, m) for m in ("m1", "m2", "m3")]
                                   if case.kind == "assistance" else [])
            for wid in ids:
                if not await closed(wid):
                    continue
                entry["workflows"] += 1
                runs = await runs_of(wid)
                for events in runs or []:
                    entry["runs"] += 1
                    scheduled, completed = {}, set()
                    for event in events:
                        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                            attrs = event.activity_task_scheduled_event_attributes
                            if attrs.activity_type.name == "notify":
                                notice = (await client.data_converter.decode(attrs.input.payloads, [Notice]))[0]
                                scheduled[event.event_id] = notice
                            elif attrs.activity_type.name == "archive_case":
                                entry["archive_scheduled"] += 1
                        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                            completed.add(event.activity_task_completed_event_attributes.scheduled_event_id)
                    for event_id, notice in scheduled.items():
                        entry["notices"][notice.notice_id] = notice.recipient
                        if event_id not in completed:
                            entry["notify_open"] += 1
            if not entry["workflows"]:
                problems.append(f"{workflow_id}: no such workflow")
            record[case.reference] = entry

    await asyncio.gather(*(one(case) for case in run.cases))
    return record, problems


def check_notices(run: Run, receiver: FailingReceiver, record: dict[str, dict], problems: list[str]) -> Check:
    from tests.support.webhooks import signed_with

    expected: dict[str, str] = {}  # notice id -> reference
    not_delivered = 0
    for reference, entry in record.items():
        for notice_id in entry["notices"]:
            expected[notice_id] = reference
        not_delivered += entry["notify_open"]
    deliveries = receiver.receiver.received()
    by_key: dict[str, list] = defaultdict(list)
    for d in deliveries:
        by_key[d.key].append(d)
    # an acknowledgement: a 2xx answer the receiver wrote (not one whose sender was gone meanwhile)
    acknowledged = {k: [d for d in ds if 200 <= d.status < 300 and d.answered] for k, ds in by_key.items()}
    received = {k for k, ds in acknowledged.items() if ds}
    missing = sorted(set(expected) - received)
    unexpected = sorted(received - set(expected))
    # when the sender could lose the outcome of a delivery: the worker's kill, the server's outage
    lost = [(f.monotonic, f.monotonic + (f.recovered_after or 0.0) + 2.0 if f.kind == "server" else f.monotonic)
            for f in run.faults if f.kind in ("worker", "server")]
    redelivered, unexplained, bodies_differ, unsigned = 0, [], [], 0
    for k, ds in by_key.items():
        if len({d.body for d in ds}) > 1:
            bodies_differ.append(k)
        for d in ds:
            secret = f"{d.path.strip('/')}-webhook-secret-0123456789"
            if not signed_with(d, secret):
                unsigned += 1
        acks = sorted(d.arrived for d in acknowledged.get(k, []))
        for first, again in zip(acks, acks[1:]):
            redelivered += 1
            if not any(down <= again and first <= back for down, back in lost):
                unexplained.append(k)
    lines = list(problems)
    lines += [f"sent but never received: {k} ({expected[k]})" for k in missing[:20]]
    lines += [f"received but never sent: {k}" for k in unexpected[:20]]
    lines += [f"acknowledged twice with no kill between: {k}" for k in unexplained[:20]]
    lines += [f"deliveries of one key with different bodies: {k}" for k in bodies_differ[:20]]
    if unsigned:
        lines.append(f"{unsigned} deliveries not signed with their authority's secret")
    if not_delivered:
        lines.append(f"{not_delivered} notify activities never completed (notice_failed or still open)")
    ok = not (problems or missing or unexpected or unexplained or bodies_differ or unsigned or not_delivered)
    return Check("each notice received once per idempotency key", ok, {
        "notices sent (engine: notify activities)": len(expected),
        "distinct keys received (acknowledged 2xx)": len(received),
        "deliveries (all attempts)": len(deliveries),
        "deliveries acknowledged (2xx answer written)": sum(len(ds) for ds in acknowledged.values()),
        "2xx answers the sender was gone for": sum(1 for d in deliveries if 200 <= d.status < 300 and not d.answered),
        "deliveries answered 5xx (failure windows)": sum(1 for d in deliveries if d.status >= 500),
        "keys delivered more than once (any answer)": sum(1 for ds in by_key.values() if len(ds) > 1),
        "redeliveries after an acknowledgement (dropped by the receiver)": redelivered,
        "of which with no worker/server kill between": len(unexplained),
        "sent, never received": len(missing),
        "received, never sent": len(unexpected),
        "keys with differing bodies": len(bodies_differ),
        "not signed right": unsigned,
        "notify activities not completed": not_delivered,
    }, lines)


async def check_archive(run: Run, record: dict[str, dict]) -> Check:
    from stores.archive import FileArchive
    from treatyflow.codec import EncryptionCodec, configured_keys

    keys = configured_keys({}, run.data_dir, dev_mode=True)
    archive_dir = run.data_dir / "archive"
    archive = FileArchive(archive_dir, EncryptionCodec(keys))
    files = sorted(p for p in archive_dir.rglob("*") if p.is_file())
    records = [p for p in files if p.suffix == ".json"]
    leftovers = [p for p in files if p.suffix != ".json"]
    expected = {(c.kind, c.reference): c for c in run.cases}
    found = {(p.parent.name, p.stem) for p in records}
    problems = [f"no record of {k}:{r}" for k, r in sorted(set(expected) - found)][:20]
    problems += [f"a record of no case of this run: {k}:{r}" for k, r in sorted(found - set(expected))][:20]
    problems += [f"left behind: {p.relative_to(archive_dir)}" for p in leftovers][:20]
    wrong_end = 0
    for (kind, reference), case in expected.items():
        if (kind, reference) not in found:
            continue
        stored = await archive.read(kind, reference)
        if stored is None or stored.reference != reference or stored.view.get("stage") != case.expected:
            wrong_end += 1
            stage = stored.view.get("stage") if stored else None
            problems.append(f"the record of {reference} is not of its end ({stage})")
    first_writes: Counter = Counter()
    rewrites = 0
    for line in up_log(run).splitlines():
        if '"case archived"' not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line[line.index("{"):])
            if entry.get("written") is True:
                first_writes[entry.get("reference")] += 1
            elif entry.get("written") is False:
                rewrites += 1
    twice = [r for r, n in first_writes.items() if n > 1]
    problems += [f"written twice with different content: {r}" for r in twice][:20]
    scheduled_not_once = [r for r, e in record.items() if e["archive_scheduled"] != 1]
    problems += [f"archive_case scheduled {record[r]['archive_scheduled']} times for {r}"
                 for r in scheduled_not_once][:20]
    ok = not problems
    return Check("each archive record written once", ok, {
        "closed cases": len(expected), "records": len(records), "temporary files left": len(leftovers),
        "records of the wrong end": wrong_end,
        "first writes logged (at most one a case)": sum(first_writes.values()),
        "identical rewrites logged (retried activity)": rewrites,
        "cases written more than once": len(twice),
        "cases whose archive_case was not scheduled exactly once": len(scheduled_not_once),
    }, problems)


def check_api(run: Run) -> Check:
    statuses = Counter()
    for (_, status), n in run.calls.statuses.items():
        statuses[status] += n
    bad = {s: n for s, n in statuses.items() if s >= 500 and s != 503}
    by_route = defaultdict(Counter)
    for (route, status), n in run.calls.statuses.items():
        by_route[route][status] += n
    problems = [f"{route}: {dict(c)}" for route, c in by_route.items() if any(s >= 500 and s != 503 for s in c)]
    return Check("no API call answered 500", not bad, {
        "calls answered": sum(statuses.values()),
        "by status": dict(sorted(statuses.items())),
        "500 answers": statuses.get(500, 0),
        "transport errors (connection refused or reset), retried": dict(run.calls.transport_errors),
        "retries": run.calls.retries,
        "repeated acts answered 409 with the effect in place": run.calls.repeats_confirmed,
        "409 waited out (not ready yet)": run.calls.waits_409,
    }, problems)


def check_faults(run: Run) -> Check:
    by_kind = Counter(f.kind for f in run.faults)
    problems = []
    if len(run.faults) != run.options.faults:
        problems.append(f"{len(run.faults)} faults injected of {run.options.faults}")
    problems += [f"no {kind} was killed" for kind in KINDS if not by_kind[kind]]
    problems += [f"{f.kind} killed at {f.at} s did not come back" for f in run.faults if f.recovered_after is None]
    if len(run.windows) < run.options.webhook_windows:
        problems.append(f"{len(run.windows)} webhook failure windows of {run.options.webhook_windows}")
    if not sum(w["answered_failing"] for w in run.windows):
        problems.append("the webhook receiver's failure windows failed no delivery")
    log = up_log(run)
    restarts = Counter()
    for kind, name in (("worker", "the worker"), ("api", "the API"), ("server", "the Temporal dev server")):
        restarts[kind] = len(re.findall(rf"treatyflow: {re.escape(name)} \(pid \d+\) was killed by SIGKILL", log))
    problems += [f"`up` said {restarts[k]} SIGKILLs of the {k}, {by_kind[k]} were sent" for k in KINDS
                 if restarts[k] != by_kind[k]]
    recoveries = [f.recovered_after for f in run.faults if f.recovered_after is not None]
    delays = [float(x) for x in re.findall(r"starting it again in ([\d.]+) s", log)]
    return Check("every fault injected, every process back", not problems, {
        "faults": len(run.faults), "by kind": dict(sorted(by_kind.items())),
        "cases in flight at a fault (min/median/max)": spread([f.in_flight for f in run.faults]),
        "seconds to recover (min/median/max)": spread(recoveries),
        "restart delays `up` chose (s)": sorted(delays),
        "webhook failure windows": [f"{w['status']} from {w['from']} s to {w['to']} s "
                                    f"({w['answered_failing']} deliveries refused)"
                                    for w in run.windows],
    }, problems)


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[0]:g} / {ordered[len(ordered) // 2]:g} / {ordered[-1]:g}"


# ---- the report ---------------------------------------------------------------------------------------

def report(run: Run, checks: list[Check], timings: dict[str, float], machine: dict[str, str]) -> str:
    o = run.options
    by_script = Counter(c.script for c in run.cases)
    seconds = sorted(c.seconds for c in run.cases if c.error is None)
    lines = [f"### Chaos run of {machine['date']}", "",
             f"Seed **{run.seed}** (`python -m benchmarks.chaos --cases {o.cases} --faults {o.faults} "
             f"--seed {run.seed} --concurrency {o.concurrency} --gap {o.gap_min:g} {o.gap_max:g} "
             f"--webhook-windows {o.webhook_windows} --webhook-seconds {o.webhook_seconds:g}`). "
             f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory']}, "
             f"Linux {machine['kernel']}; Python {machine['python']}, temporalio {machine['temporalio']}, "
             f"{(machine['temporal_cli'] or 'temporal ?').splitlines()[0]}. "
             f"Load average before {machine['load_average_before']}, after {timings.get('load_after', '')}.", "",
             f"Durations: `up` ready in {timings['up']:.1f} s; load {timings['load']:.1f} s; "
             f"checks {timings['checks']:.1f} s; "
             f"whole run {timings['total']:.1f} s. Cases by script: "
             + ", ".join(f"{n} {s}" for s, n in sorted(by_script.items()))
             + (f". Seconds a case took (p50/p95/max): {pct(seconds, 50)} / {pct(seconds, 95)} / "
                f"{seconds[-1]:.1f}" if seconds else "")
             + ".", ""]
    for check in checks:
        lines.append(f"**{check.name}: {'yes' if check.ok else 'NO'}**")
        lines.append("")
        lines.append("| count | value |")
        lines.append("|---|---|")
        for name, value in check.counts.items():
            lines.append(f"| {name} | {fmt(value)} |")
        lines.append("")
        for problem in check.problems[:30]:
            lines.append(f"- {problem}")
        if check.problems:
            lines.append("")
    verdict = ("every check holds" if all(c.ok for c in checks)
               else "FAILED: " + ", ".join(c.name for c in checks if not c.ok))
    lines.append(f"Result: **{verdict}**.")
    return "\n".join(lines)


def pct(values: list[float], p: float) -> str:
    rank = max(1, math.ceil(p / 100 * len(values)))
    return f"{values[rank - 1]:.1f}"


def fmt(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return str(value)


# ---- main ---------------------------------------------------------------------------------------------

async def chaos(options: Options) -> int:
    from benchmarks.harness import load_average, machine

    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1, 2**31)
    rng = random.Random(seed)
    print(f"chaos: seed {seed}, {options.cases} cases, {options.faults} faults, concurrency {options.concurrency}",
          flush=True)
    workdir = Path(options.workdir) if options.workdir else Path(tempfile.mkdtemp(prefix="treatyflow-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    run = Run(options, seed, workdir, workdir / "data", free_ports(3, random.Random(rng.random())))
    stamp = datetime.now(timezone.utc).strftime("%H%M%S") + f"-{seed % 10000:04d}"
    run.cases = choose_cases(options, rng, stamp)
    about = machine()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    checks: list[Check] = []
    failed = True
    with FailingReceiver() as receiver:
        try:
            start_up(run, receiver)
            try:
                await wait_for_banner(run)
            except RuntimeError as err:
                print(f"chaos: {err}", file=sys.stderr, flush=True)
                return 2
            run.recorded.update(descendants(run.up.pid))
            timings["up"] = time.monotonic() - t0
            print(f"chaos: up in {timings['up']:.1f} s (work directory {workdir}); the load begins", flush=True)
            run.began = time.monotonic()
            faults = asyncio.create_task(inject_faults(run, random.Random(rng.random())))
            windows = asyncio.create_task(webhook_windows(run, receiver, random.Random(rng.random())))
            load = asyncio.create_task(drive(run, random.Random(rng.random())))
            fault_error: BaseException | None = None
            try:
                await asyncio.wait_for(asyncio.shield(faults), timeout=options.timeout)
            except asyncio.TimeoutError:
                fault_error = RuntimeError("the faults' time ran out")
            except Exception as err:  # noqa: BLE001 - reported as a failed check
                fault_error = err
            await load
            faults.cancel()
            with contextlib.suppress(BaseException):
                await faults
            with contextlib.suppress(asyncio.TimeoutError):  # a window still open runs its course
                await asyncio.wait_for(windows, options.webhook_seconds * options.webhook_windows + 10)
            receiver.failing = None
            timings["load"] = time.monotonic() - run.began
            print(f"chaos: load done in {timings['load']:.1f} s; checking", flush=True)
            checks_began = time.monotonic()
            checks.append(await read_ends(run))
            record, problems = await engine_record(run, time.monotonic() + options.check_timeout)
            await asyncio.sleep(1.0)  # a last redelivery in flight reaches the receiver
            checks.append(check_notices(run, receiver, record, problems))
            checks.append(await check_archive(run, record))
            checks.append(check_api(run))
            fault_check = check_faults(run)
            if fault_error is not None:
                fault_check.ok = False
                fault_check.problems.insert(0, f"fault injection stopped: {fault_error}")
            checks.append(fault_check)
            timings["checks"] = time.monotonic() - checks_began
            timings["total"] = time.monotonic() - t0
            timings["load_after"] = load_average()  # type: ignore[assignment]
            text = report(run, checks, timings, about)
            print("\n" + text, flush=True)
            failed = not all(c.ok for c in checks)
            if options.json:
                Path(options.json).write_text(json.dumps({
                    "seed": seed, "options": asdict(options), "machine": about, "timings": timings,
                    "checks": [asdict(c) for c in checks],
                    "faults": [asdict(f) for f in run.faults], "windows": run.windows,
                    "cases": [asdict(c) for c in run.cases], "report": text}, indent=2, default=str))
            return 1 if failed else 0
        finally:
            stop(run)
            if failed or options.keep:
                print(f"chaos: the work directory is kept: {workdir} (`up`'s log: {run.log})", flush=True)
            elif not options.workdir:
                shutil.rmtree(workdir, ignore_errors=True)


def stop(run: Run) -> None:
    """SIGTERM `up` (it stops its children in order), then SIGKILL whatever it started that is left."""
    if run.up is None:
        return
    if run.up.poll() is None:
        run.recorded.update(descendants(run.up.pid))
        run.up.send_signal(signal.SIGTERM)
        try:
            run.up.wait(60)
        except subprocess.TimeoutExpired:
            run.up.kill()
            run.up.wait(10)
    for pid, started in run.recorded.items():
        info = proc_stat(pid)
        if info is not None and info[2] == started and info[1] != "Z":
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    try:
        return asyncio.run(chaos(options))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
