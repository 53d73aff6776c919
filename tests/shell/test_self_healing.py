"""`treatyflow up` (what `make run` runs) heals itself: a child that dies, however it dies, is said in
one line with its exit status and started again after a backoff while the rest keeps running; the
worker and the API ride out an outage of the Temporal server, which is started again on its SQLite
file; a stop request still stops everything, also during a backoff wait.

First the supervisor (treatyflow/supervisor.py) on stand-in processes (`sleep`): its lines, its
backoff, a child waiting for the one it needs, a stop during a wait; a second or two each. Then the
product itself: one `up`, cases of both kinds opened through the API, the worker, the API and the
server SIGKILLed in turn (as the OOM killer would), the next acts sent as soon as the part killed
runs again, before it is ready (retried on 503 or a refused connection, as a client retries), until
every case reaches its end, nothing started by hand; then the worker killed once more and `up`
stopped during its (doubled) wait. Its `finally` kills by id every process it recorded."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.shell.test_up import STOP, Up, command, descendants, free_ports, parent_of, running_up, still_alive, \
    up_env
from treatyflow.samples import BASE, assistance_body, key, transfer_body
from treatyflow.supervisor import STABLE_AFTER, Backoff, Child, Supervisor, stop_in_order

FIRST_DELAY = 1.0  # TREATYFLOW_RESTART_DELAY of the `up` under test: seconds before the first restart
BACK = 60.0  # seconds a killed child may take to be running again (a loaded 2-core machine)


# ---- the supervisor, on stand-in processes ---------------------------------------------------------

def test_the_backoff_doubles_to_its_cap_and_starts_over_after_a_stable_run() -> None:
    backoff = Backoff(1.0, cap=30.0, stable_after=60.0)
    assert [backoff.after(up_for=5.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.after(up_for=60.0) == 1  # up a minute: from the first delay again
    assert backoff.after(up_for=0.5) == 2


def sleeper(seconds: int = 120) -> Callable[[], subprocess.Popen]:
    return lambda: subprocess.Popen(["sleep", str(seconds)], stdin=subprocess.DEVNULL)


class Supervised:
    """The supervisor over ``children`` (started on entering) in a thread of its own: what it says
    goes to ``lines``; ``stop`` asks it to stop; on leaving, the children are stopped in order."""

    def __init__(self, children: list[Child], first_delay: float, **options: Any) -> None:
        self.children, self.lines, self.stop = children, [], threading.Event()
        self.stopped_at: float | None = None
        self.supervisor = Supervisor(children, stop_asked=self.stop.is_set, say=self.lines.append,
                                     first_delay=first_delay, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.supervisor.run())
        self.stopped_at = time.monotonic()

    def __enter__(self) -> Supervised:
        for child in self.children:
            child.start()
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        stop_in_order(self.children)


def wait_for(probe: Callable[[], Any], what: str, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, f"no {what} within {seconds:.0f} s"
        time.sleep(0.02)
    return found


def restarted(child: Child, old: int, seconds: float = 10.0) -> float:
    """When ``child`` runs as another process than ``old``."""
    wait_for(lambda: child.process.pid != old and child.process.poll() is None, f"{child.name} again", seconds)
    return time.monotonic()


def test_a_dead_child_is_said_and_started_again_after_its_backoff_while_the_rest_runs() -> None:
    one, other = Child("the first", "its output is above", sleeper()), Child("the second", "nowhere", sleeper())
    with Supervised([one, other], first_delay=0.4, stable_after=60.0) as run:
        steady = other.process.pid
        for delay in (0.4, 0.8):  # killed again before it had been up a while: twice the wait
            old, killed = one.process.pid, time.monotonic()
            one.process.send_signal(signal.SIGKILL)
            waited = restarted(one, old) - killed
            assert waited >= delay, (delay, waited)
            assert f"treatyflow: the first (pid {old}) was killed by SIGKILL; starting it again in {delay:g} s " \
                   "(its output is above)" in run.lines, run.lines
            assert f"treatyflow: the first started again (pid {one.process.pid})" in run.lines
        assert other.process.pid == steady and other.process.poll() is None  # the rest ran on
        other.process.terminate()  # another signal, said by its name
        wait_for(lambda: any(line.startswith("treatyflow: the second (pid") for line in run.lines), "a line")
        assert f"treatyflow: the second (pid {steady}) was killed by SIGTERM; starting it again in 0.4 s (nowhere)" \
            in run.lines, run.lines
    exiting = Child("the third", "above", lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]))
    with Supervised([exiting], first_delay=0.1, cap=0.2) as run:
        wait_for(lambda: sum("was killed" in line or "exited" in line for line in run.lines) >= 3, "three deaths")
        deaths = [line for line in run.lines if "exited" in line]
        assert deaths[0].endswith("exited with code 3; starting it again in 0.1 s (above)"), deaths
        assert deaths[1].endswith("in 0.2 s (above)") and deaths[2].endswith("in 0.2 s (above)"), deaths  # the cap


def test_a_child_starts_again_only_once_the_one_it_needs_answers() -> None:
    answering = threading.Event()

    async def ready() -> None:
        if not answering.is_set():
            raise ConnectionError("not yet")

    server = Child("the server", "its log", sleeper(), ready=ready)
    worker = Child("the worker", "above", sleeper(), needs=server)
    with Supervised([worker, server], first_delay=0.2) as run:
        old_server, old_worker = server.process.pid, worker.process.pid
        server.process.send_signal(signal.SIGKILL)
        worker.process.send_signal(signal.SIGKILL)
        restarted(server, old_server)
        wait_for(lambda: "treatyflow: the worker starts again once the server answers" in run.lines, "the wait")
        time.sleep(0.5)
        assert worker.process.pid == old_worker, "started before the server answered"
        answering.set()
        restarted(worker, old_worker)
        assert run.lines.index("treatyflow: the server answers again") < run.lines.index(
            f"treatyflow: the worker started again (pid {worker.process.pid})"), run.lines


def test_a_stop_request_ends_a_backoff_wait_at_once() -> None:
    one, other = Child("the first", "above", sleeper()), Child("the second", "above", sleeper())
    with Supervised([one, other], first_delay=30.0) as run:
        old = one.process.pid
        one.process.send_signal(signal.SIGKILL)
        wait_for(lambda: any("starting it again in 30 s" in line for line in run.lines), "the death line")
        asked = time.monotonic()
        run.stop.set()
        run.thread.join(5)
        assert run.stopped_at is not None and run.stopped_at - asked < 1.0
        assert one.process.pid == old  # never started again
    assert other.process.poll() is not None  # stopped in order by stop_in_order


# ---- the product: `up` with every part killed in turn ------------------------------------------------

PARTS = {"the worker": "treatyflow.cli worker", "the API": "treatyflow.cli api",
         "the Temporal dev server": "temporal server start-dev"}


def parts(run: Up) -> dict[str, int]:
    """The pid of each of `up`'s own children, by name, from /proc."""
    found = {}
    for pid in descendants(run.up_pid):
        if parent_of(pid) == run.up_pid:
            for name, cmdline in PARTS.items():
                if cmdline in command(pid):
                    found[name] = pid
    return found


class Desk:
    """The authorities at the API: every answer recorded; a 503 or a refused connection retried as a
    client retries (a part is being started again); an act retried after one and answered 409
    because an earlier attempt took effect gives the case as it now stands."""

    def __init__(self, api: str) -> None:
        self.http = httpx.Client(base_url=api, timeout=30.0)
        self.statuses: list[int] = []
        self.retried: list[str] = []  # "<status> <method> <path>" of each answer retried or taken as done

    def call(self, method: str, path: str, who: str, body: dict | None = None) -> tuple[int, dict]:
        deadline, retried = time.monotonic() + BACK, False
        while True:
            try:
                r = self.http.request(method, path, json=body, headers=key(who))
            except httpx.TransportError:  # the API is not listening (again) yet
                r = None
            if r is not None:
                self.statuses.append(r.status_code)
                if r.status_code in (409, 503):
                    self.retried.append(f"{r.status_code} {method} {path}")
                assert r.status_code < 500 or r.status_code == 503, f"{method} {path}: {r.status_code} {r.text}"
                if r.status_code != 503:
                    if r.status_code == 409 and retried and path.count("/") > 3:  # an act on a case
                        _, _, kind, reference, *_ = path.split("/")
                        return 200, self.view(kind, reference)
                    return r.status_code, r.json()
            assert time.monotonic() < deadline, f"{method} {path}: no answer but 503 within {BACK:.0f} s"
            retried = True
            time.sleep(0.25)

    def act(self, path: str, who: str, body: dict) -> dict:
        status, answer = self.call("POST", path, who, body)
        assert status in (200, 201), (path, status, answer)
        return answer

    def view(self, kind: str, reference: str, who: str = "kz-gpo") -> dict:
        status, answer = self.call("GET", f"/v1/{kind}/{reference}", who)
        assert status == 200, answer
        return answer

    def until(self, kind: str, reference: str, done: Callable[[dict], bool], what: str) -> dict:
        deadline = time.monotonic() + BACK
        while not done(view := self.view(kind, reference)):
            assert time.monotonic() < deadline, f"{reference}: {what} not within {BACK:.0f} s: {view}"
            time.sleep(0.2)
        return view


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def consents(desk: Desk, ref: str) -> None:
    desk.act(f"/v1/transfers/{ref}/decisions", "uz-gpo", {"state": "UZ", "decision": "consent"})
    moved = desk.act(f"/v1/transfers/{ref}/decisions", "kz-gpo", {"state": "KZ", "decision": "consent"})
    assert moved["stage"] == "awaiting_handover", moved


def handover(desk: Desk, ref: str) -> None:
    arranged = desk.until("transfers", ref, lambda v: v["handover"] is not None, "the handover arranged")
    done = desk.act(f"/v1/transfers/{ref}/handover", "uz-penal",
                    {"completed_on": today(), "place": arranged["handover"]["place"]})
    assert done["stage"] == "transferred", done


def accept(desk: Desk, ref: str) -> None:
    assert desk.act(f"/v1/assistance-requests/{ref}/review", "kz-gpo", {"decision": "accept"})["stage"] == "executing"


def authorise(desk: Desk, ref: str) -> None:
    view = desk.until("assistance-requests", ref, lambda v: all(m["stage"] != "pending" for m in v["measures"]),
                      "every measure started")
    for measure in view["measures"]:
        if measure["stage"] == "awaiting_authorisation":
            desk.act(f"/v1/assistance-requests/{ref}/measures/{measure['id']}/authorisation",
                     measure["court"] or "kz-gpo", {"granted": True, "note": "warrant"})


def results(desk: Desk, ref: str) -> None:
    for measure in desk.view("assistance-requests", ref)["measures"]:
        assert measure["stage"] == "executing", measure
        evidence = [{"item_id": f"{measure['id']}-1", "description": "record", "sha256": "ab" * 32,
                     "collected_on": today()}]
        desk.act(f"/v1/assistance-requests/{ref}/measures/{measure['id']}/result", measure["assigned_to"] or "kz-gpo",
                 {"outcome": "executed", "evidence": evidence})


def killed(run: Up, name: str) -> tuple[int, int]:
    """SIGKILL `up`'s ``name`` now; (its pid, the pid it runs as again), once its restart is seen,
    after its death was said in one line with its status and the backoff was waited."""
    old = parts(run)[name]
    at = time.monotonic()
    os.kill(old, signal.SIGKILL)
    line = f"treatyflow: {name} (pid {old}) was killed by SIGKILL; starting it again in {FIRST_DELAY:g} s"
    run.output.wait_for(line, BACK, lambda: run.process.poll() is None)
    deadline = time.monotonic() + BACK
    while (new := parts(run).get(name, old)) == old:
        assert time.monotonic() < deadline, f"{name} not started again within {BACK:.0f} s:\n{run.output.text[-3000:]}"
        time.sleep(0.05)
    waited = time.monotonic() - at
    assert waited >= FIRST_DELAY, f"{name} started again {waited:.2f} s after its death: no backoff"
    run.recorded.update(descendants(run.up_pid))
    run.output.wait_for(f"treatyflow: {name} started again (pid {new})", 10, lambda: True)
    print(f"{name}: pid {old} killed, pid {new} started {waited:.1f} s later")
    return old, new


def test_every_part_killed_in_turn_and_every_case_reaches_its_end(tmp_path: Path) -> None:
    ports = free_ports(3)
    began = time.monotonic()
    with running_up(up_env(tmp_path / "data", ports, TREATYFLOW_RESTART_DELAY=str(FIRST_DELAY))) as run:
        desk = Desk(f"http://127.0.0.1:{ports[2]}")
        up_at = time.monotonic()
        t1, t2 = (transfer_body(received_on=today(), declaration={**BASE["declaration"], "signed_on": today()})
                  for _ in range(2))
        a1, a2 = assistance_body(received_on=today()), assistance_body(received_on=today())
        for body in (t1, t2):
            assert desk.act("/v1/transfers", "kz-gpo", body)["stage"] == "awaiting_consents"
        for body in (a1, a2):
            assert desk.act("/v1/assistance-requests", "fr-moj", body)["stage"] == "under_review"
        t1, t2, a1, a2 = (body["reference"] for body in (t1, t2, a1, a2))

        # the worker: the acts wait for it (or are answered 503 and retried) and go on
        killed(run, "the worker")
        worker_back = time.monotonic()
        consents(desk, t1)
        accept(desk, a1)

        # the API: nothing listens for a moment, then the same cases answer
        killed(run, "the API")
        consents(desk, t2)
        accept(desk, a2)
        authorise(desk, a1)

        # the server: started again on its SQLite file; the worker and the API ride the outage out
        survivors = {name: pid for name, pid in parts(run).items() if name != "the Temporal dev server"}
        killed(run, "the Temporal dev server")
        handover(desk, t1)
        results(desk, a1)
        authorise(desk, a2)
        handover(desk, t2)
        results(desk, a2)
        assert {name: pid for name, pid in parts(run).items() if name in survivors} == survivors, \
            "the worker or the API did not ride out the server's outage"

        for ref in (t1, t2):
            assert desk.view("transfers", ref)["stage"] == "transferred"
        for ref in (a1, a2):
            done = desk.until("assistance-requests", ref, lambda v: v["stage"] == "completed", "completion")
            assert done["results"]["manifest_sha256"], done
        assert 500 not in desk.statuses
        print(f"up in {up_at - began:.1f} s; three kills and four cases to their end in "
              f"{time.monotonic() - up_at:.1f} s; answers: "
              f"{ {s: desk.statuses.count(s) for s in sorted(set(desk.statuses))} } {desk.retried}")

        # and a stop still stops everything, the parts started again included, also while one waits
        # to be started again: the worker killed a second time within a minute waits twice as long
        children = dict(descendants(run.up_pid))
        worker = parts(run)["the worker"]
        delay = 2 * FIRST_DELAY if time.monotonic() - worker_back < STABLE_AFTER - 5 else None
        at = time.monotonic()
        os.kill(worker, signal.SIGKILL)
        died = re.compile(rf"treatyflow: the worker \(pid {worker}\) was killed by SIGKILL; starting it again in "
                          r"(\S+) s")
        run.output.wait_for(f"the worker (pid {worker}) was killed", BACK, lambda: run.process.poll() is None)
        asked = time.monotonic()
        os.kill(run.up_pid, signal.SIGTERM)
        waiting = float(died.search(run.output.text).group(1))  # type: ignore[union-attr]
        assert delay is None or waiting == delay, f"waits {waiting} s, not {delay} s"
        assert run.process.wait(STOP) == 0, run.output.text[-3000:]
        assert not (left := still_alive(children, 1.0)), f"left running: {left}"
        assert re.search(r"^treatyflow stopped\.$", run.output.text, re.M)
        print(f"stopped in {time.monotonic() - asked:.1f} s by a SIGTERM sent {asked - at:.1f} s into the "
              f"worker's wait of {waiting:g} s")
        if asked - at < waiting - 0.75:  # up saw the stop (within a quarter of a second) before the wait ended
            assert run.output.text.count("treatyflow: the worker started again") == 1, run.output.text[-3000:]
