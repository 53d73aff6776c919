"""The embedded Temporal server stopped (SIGTERM, then SIGKILL) and started again on its SQLite file
while cases are open: every case is where it was, with its deadlines still pending, and goes on."""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from tests.faults.cases import (
    accept, confirm_handover, decide, handover_arranged, measures_started, open_assistance_case,
    open_transfer_case, reference_of, withdraw_assistance,
)
from tests.faults.support import bounded, history, snapshot, start_worker, worker_env
from tests.support import DevServer, Processes, Receiver, until
from treatyflow.cases import measure_handle
from workflows import search_attributes as sa
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MeasureWorkflow
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

REMINDER_BEFORE = timedelta(days=7)  # the treaties' reminder_before (KZ-UZ, KZ-FR)


async def everything(client: Client, cases: list[tuple[str, object]]) -> dict[str, dict]:
    """Each case's snapshot (status, search attributes, pending timers, view) and its full history."""
    seen = {}
    for workflow_id, query in cases:
        handle = client.get_workflow_handle(workflow_id)
        seen[workflow_id] = {**await snapshot(handle, query),
                             "history": await history(handle)}  # protobuf messages compare by value
    return seen


async def test_server_restarted_on_its_sqlite_file_finds_every_case_where_it_was(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    with Receiver(keep_alive=True) as receiver:
        env = worker_env(server, queue, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        worker = await start_worker(procs, env)
        # a transfer awaiting consents, one awaiting its handover, a request under review and one
        # whose measures are executing (m2 awaiting the court): each waits on a person, with a timer
        waiting, handing_over = await asyncio.gather(open_transfer_case(client, queue),
                                                     open_transfer_case(client, queue))
        reviewing, executing = await asyncio.gather(open_assistance_case(client, queue),
                                                    open_assistance_case(client, queue))
        await decide(handing_over, "KZ")
        await decide(handing_over, "UZ")
        await handover_arranged(handing_over)
        await accept(executing)
        await measures_started(executing)
        measures = [measure_handle(client, reference_of(executing), m) for m in ("m1", "m2", "m3")]
        cases = [(waiting.id, TransferWorkflow.view), (handing_over.id, TransferWorkflow.view),
                 (reviewing.id, AssistanceWorkflow.view), (executing.id, AssistanceWorkflow.view),
                 *[(m.id, MeasureWorkflow.view) for m in measures]]
        # every notice delivered and recorded, so that nothing moves while the server is away
        await until(lambda: _quiet(client, cases), "every notice delivered and recorded in its case", 15)
        assert len(receiver.processed()) == 2 + 7 + 1 + 4
        before = await everything(client, cases)

        # deadlines: each case's pending timer fires at its reminder moment, 7 days before ActionDueAt
        # (the request whose measures execute waits on them, each measure with its own deadline)
        for workflow_id, seen in before.items():
            assert seen["status"] == WorkflowExecutionStatus.RUNNING
            if workflow_id == executing.id:
                assert seen["timers"] == {} and seen["attributes"]["ActionDueAt"] is None
                continue
            [(_, _, fires_at)] = seen["timers"].values()
            due = seen["attributes"]["ActionDueAt"]
            assert abs(fires_at - (due - REMINDER_BEFORE)) < timedelta(seconds=2), workflow_id

        for how in (signal.SIGTERM, signal.SIGKILL):
            code = await server.stop(how)
            assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
            fresh = await server.start()  # the same SQLite file, the same port
            after = await everything(fresh, cases)
            for workflow_id in before:
                assert after[workflow_id] == before[workflow_id], (signal.Signals(how).name, workflow_id)
            # visibility (what lists and the inbox read) was kept too
            listed = [w.id async for w in fresh.list_workflows(
                f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'")]
            assert sorted(listed) == sorted(before)
            # the worker rode out the restart on its own (it reconnects)
            assert worker.alive()

        # and the cases go on: acts are taken, cases close
        fresh = await server.connect()
        waiting_now = fresh.get_workflow_handle(waiting.id)
        await decide(waiting_now, "KZ")
        moved = await decide(waiting_now, "UZ")
        assert moved.stage == "awaiting_handover"
        handing_over_now = fresh.get_workflow_handle(handing_over.id)
        assert (await confirm_handover(handing_over_now)).stage == "transferred"
        withdrawn = await withdraw_assistance(fresh.get_workflow_handle(reviewing.id))
        assert withdrawn.stage == "withdrawn"
        withdrawn = await withdraw_assistance(fresh.get_workflow_handle(executing.id))
        assert withdrawn.stage == "withdrawn"
        assert {m.stage for m in withdrawn.measures} == {"cancelled"}
        ended = await bounded(asyncio.gather(*(fresh.get_workflow_handle(h.id).result()
                                              for h in (handing_over, reviewing, executing))), 30, "cases to close")
        assert [v["stage"] for v in ended] == ["transferred", "withdrawn", "withdrawn"]  # untyped handles: dicts
        described = await waiting_now.describe()
        assert described.typed_search_attributes.get(sa.CASE_STAGE) == "awaiting_handover"


async def _quiet(client: Client, cases: list[tuple[str, object]]) -> bool:
    """No activity and no workflow task pending in any case: nothing moves until someone acts."""
    for workflow_id, _ in cases:
        raw = (await client.get_workflow_handle(workflow_id).describe()).raw_description
        if raw.pending_activities or raw.HasField("pending_workflow_task"):
            return False
    return True
