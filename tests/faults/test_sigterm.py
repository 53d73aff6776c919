"""SIGTERM: the worker stops taking work and finishes — or hands back — its in-flight activities
within its graceful-shutdown time; the API stops accepting connections and answers the requests
in flight before it exits."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.faults.cases import decide, open_transfer_case, reference_of, withdraw_transfer
from tests.faults.support import (
    CLI, activity_runs, bounded, history, notice_of, pending_activities, start_worker, worker_env,
)
from tests.support import DevServer, Proc, Processes, Receiver, free_port, key, until
from treatyflow.cases import transfer_handle
from treatyflow.samples import transfer_body, transfer_request
from workflows.transfer import OpenTransfer, TransferWorkflow, transfer_workflow_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

GRACEFUL_SHUTDOWN = 10.0  # the workers' here (TREATYFLOW_GRACEFUL_SHUTDOWN), shorter than production's to keep the test short
FAST, SLOW = 3.0, 25.0  # seconds a delivery takes: within the graceful time, or beyond it


async def test_sigterm_worker_finishes_or_hands_back_in_flight_activities_and_takes_no_new_work(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    queue = f"sigterm-{uuid.uuid4().hex[:8]}"
    with Receiver(keep_alive=True) as receiver:
        # the consent requests: kz-gpo answers after 3 s; uz-gpo's answer trickles in over 25 s (a
        # byte a second, so no read timeout ends it) and cannot finish within the graceful time.
        # Deliveries arriving after the signal are answered at once.
        slowing = [True]
        receiver.policy = lambda a: (204, {"/kz-gpo": FAST, "/uz-gpo": -SLOW}.get(a.path, 0.0)
                                     if slowing[0] else 0.0)
        env = worker_env(server, queue, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        first = await start_worker(procs, env, "worker-1")
        handle = await open_transfer_case(client, queue)
        ref = reference_of(handle)
        await until(lambda: len(receiver.in_flight(ref)) == 2, "both consent requests in flight")

        slowing[0] = False
        signalled = time.monotonic()
        first.signal(signal.SIGTERM)
        await first.logged("worker stopping", 5)
        # work that arrives once the worker is stopping waits for the next worker
        later = transfer_request()
        later_handle = await client.start_workflow(
            TransferWorkflow.run, OpenTransfer(request=later, opened_by="kz-gpo"),
            id=transfer_workflow_id(later.reference), task_queue=queue)
        assert await first.exited(GRACEFUL_SHUTDOWN + 5) == 0
        took = time.monotonic() - signalled
        assert GRACEFUL_SHUTDOWN - 1 <= took <= GRACEFUL_SHUTDOWN + 5  # it waited for the slow one, no longer

        # the delivery that could finish did, once, by the stopping worker
        assert [(a.path, a.answered) for a in receiver.received(ref) if a.path == "/kz-gpo"] == [("/kz-gpo", True)]
        [done] = [r for r in activity_runs(await history(handle), "notify") if r.outcome == "completed"]
        assert (await notice_of(client, done)).recipient == "kz-gpo"
        assert done.attempt == 1 and done.identity.startswith(first.identity_prefix)
        # the one that could not was handed back at the graceful deadline, as a retryable failure
        [handed_back] = [p for p in pending_activities(await handle.describe()) if p.activity_type.name == "notify"]
        info = handed_back.last_failure.application_failure_info
        assert (handed_back.attempt, info.type, info.non_retryable) == (2, "WorkerShutdown", False)
        # and the stopping worker took nothing of the case started after the signal
        assert not [e for e in await history(later_handle)
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]

        # a new worker: the handed-back delivery goes out at once (not after the 30 s start-to-close
        # timeout of an attempt that was never reported), with the same key; both cases go on
        restarted = time.monotonic()
        await start_worker(procs, env, "worker-2")
        uz = await until(lambda: [a for a in receiver.received(ref) if a.path == "/uz-gpo"][1:],
                         "the handed-back notice", 10)
        assert uz[0].arrived - restarted < 10
        [first_try] = [a for a in receiver.received(ref) if a.path == "/uz-gpo"][:1]
        assert (uz[0].attempt, uz[0].key, uz[0].body) == (2, first_try.key, first_try.body)
        await decide(handle, "KZ")
        assert (await decide(handle, "UZ")).stage == "awaiting_handover"
        later_handle = transfer_handle(client, later.reference)
        assert (await until(lambda: later_handle.query(TransferWorkflow.view), "the later case")).stage \
            == "awaiting_consents"
        for h in (handle, later_handle):
            assert (await withdraw_transfer(h)).stage == "withdrawn"
        await bounded(asyncio.gather(handle.result(), later_handle.result()), 20, "both cases to close")


async def _healthy(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def _start_api(procs: Processes, env: dict[str, str], name: str) -> tuple[Proc, httpx.AsyncClient]:
    port = free_port()
    proc = procs.spawn(name, [*CLI, "api"], {**env, "TREATYFLOW_MODE": "dev", "TREATYFLOW_API_PORT": str(port)})
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                             headers=key("kz-gpo"))
    await until(lambda: _healthy(http), f"{name} to serve", 30, every=0.2)
    return proc, http


async def test_sigterm_api_drains_in_flight_requests_then_exits(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    """Two APIs, each with a request waiting on Temporal as SIGTERM arrives: one whose task queue
    has no worker (it answers 503 with Retry-After at its 4 s deadline) and one whose worker is
    started meanwhile (it answers with the case)."""
    unserved = worker_env(server, f"api-none-{uuid.uuid4().hex[:8]}", tmp_path, TREATYFLOW_API_TIMEOUT="4")
    served = worker_env(server, f"api-late-{uuid.uuid4().hex[:8]}", tmp_path, TREATYFLOW_API_TIMEOUT="10")
    (api_none, http_none), (api_late, http_late) = await asyncio.gather(
        _start_api(procs, unserved, "api-none"), _start_api(procs, served, "api-late"))
    try:
        bodies = [transfer_body(), transfer_body()]
        sent = time.monotonic()
        waiting = [asyncio.create_task(http.post("/v1/transfers", json=body))
                   for http, body in ((http_none, bodies[0]), (http_late, bodies[1]))]
        await asyncio.sleep(1.0)
        assert not any(t.done() for t in waiting)
        signalled = time.monotonic()
        api_none.signal(signal.SIGTERM)
        api_late.signal(signal.SIGTERM)
        await api_none.logged("Shutting down", 5)
        await api_late.logged("Shutting down", 5)
        # no new connection is accepted
        with pytest.raises(httpx.ConnectError):
            await http_none.get("/healthz")
        worker = await start_worker(procs, served, "worker")

        none_answer, late_answer = await bounded(asyncio.gather(*waiting), 20, "the in-flight requests")
        assert none_answer.status_code == 503 and none_answer.headers["Retry-After"]
        assert none_answer.json()["error"]["code"] == "unavailable"
        assert 4 <= time.monotonic() - sent
        assert late_answer.status_code == 201, late_answer.text
        assert late_answer.json()["reference"] == bodies[1]["reference"]
        assert late_answer.json()["stage"] == "awaiting_consents"
        # then each exits (uvicorn ends by re-raising the SIGTERM it caught: -15, or 0)
        for api in (api_none, api_late):
            assert await api.exited(10) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 4 + 5
        assert worker.alive()
    finally:
        await http_none.aclose()
        await http_late.aclose()
