"""One case driven through every step to ``transferred``, three ways: the real transfer through
the Temporal client (as ``treatyflow.cases`` and the tests do), the same through the HTTP API,
and the baseline workflow through the client. Each records how long each call took, and each
ends once the workflow has completed (archive written, closing notices delivered)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from benchmarks.baseline import BaselineTransfer, baseline_workflow_id
from benchmarks.harness import Timings
from domain.transfer import Decision, HandoverConfirmation
from tests.support import key
from treatyflow.cases import act, open_transfer, transfer_handle
from treatyflow.samples import new_reference, transfer_body, transfer_request
from workflows.transfer import TransferWorkflow

POLL = 0.02  # seconds between reads while the handover is being arranged (an activity)
MAX_POLLS = 1500  # 30 s: a handover never arranged fails the benchmark


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


class Unexpected(RuntimeError):
    """A case did not move as the lifecycle expects: the benchmark stops."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Unexpected(what)


async def real_direct(client: Client, task_queue: str, timings: Timings) -> str:
    """open_transfer (update-with-start), both decisions, the handover once arranged, the result."""
    request = transfer_request()
    opening = await timings.timed("open_transfer", open_transfer(client, request, "kz-gpo", task_queue))
    expect(opening.view.stage == "awaiting_consents", f"opened in {opening.view.stage}")
    handle = transfer_handle(client, request.reference)
    await timings.timed("record_decision", handle.execute_update(
        TransferWorkflow.record_decision, args=["kz-gpo", Decision(state="KZ", decision="consent")]))
    view = await timings.timed("record_decision", act(
        handle, TransferWorkflow.record_decision, "uz-gpo", Decision(state="UZ", decision="consent"),
        TransferWorkflow.view))
    expect(view.stage == "awaiting_handover", f"after both consents: {view.stage}")
    for _ in range(MAX_POLLS):
        if view.handover is not None:
            break
        await asyncio.sleep(POLL)
        view = await timings.timed("view", handle.query(TransferWorkflow.view))
    expect(view.handover is not None, "the handover was never arranged")
    view = await timings.timed("confirm_handover", act(
        handle, TransferWorkflow.confirm_handover, "uz-penal",
        HandoverConfirmation.model_validate({"completed_on": today(), "place": view.handover.place}),
        TransferWorkflow.view))
    expect(view.stage == "transferred", f"after the handover: {view.stage}")
    await timings.timed("result", handle.result())
    return request.reference


async def real_http(http: httpx.AsyncClient, client: Client, timings: Timings) -> str:
    """The same lifecycle through the HTTP API (route templates as names); the workflow's result
    is awaited through the client, as in ``real_direct``."""
    body = transfer_body()
    ref = body["reference"]

    async def call(name: str, method: str, url: str, by: str, json: dict | None = None) -> dict:
        r = await timings.timed(name, http.request(method, url, headers=key(by), json=json))
        expect(r.status_code in (200, 201), f"{method} {url}: {r.status_code} {r.text[:300]}")
        return r.json()

    view = await call("POST /v1/transfers", "POST", "/v1/transfers", "kz-gpo", body)
    expect(view["stage"] == "awaiting_consents", f"opened in {view['stage']}")
    decisions = "POST /v1/transfers/{reference}/decisions"
    await call(decisions, "POST", f"/v1/transfers/{ref}/decisions", "kz-gpo", {"state": "KZ", "decision": "consent"})
    view = await call(decisions, "POST", f"/v1/transfers/{ref}/decisions", "uz-gpo",
                      {"state": "UZ", "decision": "consent"})
    expect(view["stage"] == "awaiting_handover", f"after both consents: {view['stage']}")
    for _ in range(MAX_POLLS):
        if view["handover"] is not None:
            break
        await asyncio.sleep(POLL)
        view = await call("GET /v1/transfers/{reference}", "GET", f"/v1/transfers/{ref}", "uz-penal")
    expect(view["handover"] is not None, "the handover was never arranged")
    view = await call("POST /v1/transfers/{reference}/handover", "POST", f"/v1/transfers/{ref}/handover", "uz-penal",
                      {"completed_on": today(), "place": view["handover"]["place"]})
    expect(view["stage"] == "transferred", f"after the handover: {view['stage']}")
    await timings.timed("result", transfer_handle(client, ref).result())
    return ref


async def open_baseline(client: Client, task_queue: str, timings: Timings) -> str:
    """A baseline case opened as a transfer is (update-with-start), waiting for the consents."""
    ref = new_reference("B")
    start = WithStartWorkflowOperation(
        BaselineTransfer.run, ref, id=baseline_workflow_id(ref), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    view = await timings.timed("open_transfer", client.execute_update_with_start_workflow(
        BaselineTransfer.opened, ref, start_workflow_operation=start))
    expect(view["stage"] == "consents", f"opened in {view['stage']}")
    return ref


async def baseline(client: Client, task_queue: str, timings: Timings) -> str:
    """The baseline through the same calls: update-with-start, two acts, polling, one act, result."""
    ref = await open_baseline(client, task_queue, timings)
    handle = client.get_workflow_handle_for(BaselineTransfer.run, baseline_workflow_id(ref))
    await timings.timed("record_decision", handle.execute_update(BaselineTransfer.decide, "KZ"))
    view = await timings.timed("record_decision", handle.execute_update(BaselineTransfer.decide, "UZ"))
    expect(view["stage"] == "handover", f"after both acts: {view['stage']}")
    for _ in range(MAX_POLLS):
        if view["arranged"]:
            break
        await asyncio.sleep(POLL)
        view = await timings.timed("view", handle.query(BaselineTransfer.view))
    expect(bool(view["arranged"]), "the baseline's handover step never ran")
    view = await timings.timed("confirm_handover", handle.execute_update(BaselineTransfer.confirm, "place"))
    expect(view["stage"] == "closed", f"after the last act: {view['stage']}")
    await timings.timed("result", handle.result())
    return ref
