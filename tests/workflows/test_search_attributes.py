"""What lists, the inbox, stats and the overdue query read of a case (its search attributes), from
its first moment to its end: the attributes always say what the case's view says, although the
workflow sends only those that changed, once per workflow task, and holds them back during intake.
StageTimes says what the case's trail says (its stage_entered events): how long it spent in each
stage, to the second, also across days of engine time (the time-skipping server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.intake import TreatyQuestion
from domain.transfer import Declaration, Decision, HandoverConfirmation, TransferRequest
from tests.support.polling import poll, until
from treatyflow.cases import act, open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import BASE, transfer_body, transfer_request
from worker import create_worker
from workflows import search_attributes as sa
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


@activity.defn(name="resolve_treaty")
async def registry_unreachable(question: TreatyQuestion):
    raise ApplicationError("the registry is unreachable")  # retryable: the intake waits


async def test_a_case_whose_intake_is_held_up_is_listed_in_its_first_stage(dev_client: Client, tmp_path: Path):
    settings = Settings(task_queue=f"held-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    request = TransferRequest.model_validate(transfer_body())
    query = (f"WorkflowId = 'transfer:{request.reference}' AND CaseKind = 'transfer' "
             f"AND CaseStage = 'checking_eligibility' AND CaseStates = 'UZ'")
    async with create_worker(dev_client, settings, activity_overrides=[registry_unreachable]):
        opening = asyncio.create_task(open_transfer(dev_client, request, "kz-gpo", settings.task_queue))
        try:
            async def listed() -> list[str]:
                return [w.id async for w in dev_client.list_workflows(query)]

            assert await until(listed, "the held-up case in its first stage", seconds=10) == \
                [f"transfer:{request.reference}"]
        finally:  # the opening ends with the case
            await transfer_handle(dev_client, request.reference).terminate("test over")
            with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                await opening


def attributes(described: Any) -> dict[str, Any]:
    """The attributes the workflow publishes (the name's index is set once at start: see
    tests/api/test_name_search.py)."""
    found = described.typed_search_attributes
    return {key.name: found.get(key) for key in sa.ALL
            if found.get(key) is not None and key != sa.PERSON_NAME_INDEX}


def stage_times(view: Any) -> str:
    """StageTimes as the case's trail gives it: the case opened in its first stage, then each
    stage_entered event; for each stage left, the whole seconds of the sum of its visits (indexes
    in TransferStage's order), and the stage it is in, if open, with its entry's whole second."""
    stages = TransferWorkflow.stages
    entries = [(TransferWorkflow.first_stage, view.opened_at)] + \
        [(e.detail, e.at) for e in view.events if e.action == "stage_entered"]
    spent: dict[int, timedelta] = {}
    for (stage, at), (_, left_at) in zip(entries, entries[1:]):
        spent[stages.index(stage)] = spent.get(stages.index(stage), timedelta()) + (left_at - at)
    items = [f"{i}={int(spent[i].total_seconds())}" for i in sorted(spent)]
    stage, at = entries[-1]
    if stage not in TransferWorkflow.terminal:
        items.append(f"{stages.index(stage)}@{int(at.timestamp())}")
    return " ".join(items)


def expected(view: Any) -> dict[str, Any]:
    """What the view says, as the attributes must say it."""
    shown: dict[str, Any] = {"CaseKind": "transfer", "CaseStage": view.stage, "TreatyId": view.treaty,
                             "CaseStates": [view.sentencing_state, view.administering_state],
                             "StageTimes": stage_times(view)}
    if view.outcome:
        shown["CaseOutcome"] = view.outcome
    if view.pending_actions:
        shown["AwaitingAuthorities"] = sorted({p.authority for p in view.pending_actions})
        shown["InboxAssignments"] = [sa.unassigned(a) for a in shown["AwaitingAuthorities"]]  # nobody took them
        shown["ActionDueAt"] = {p.due_on for p in view.pending_actions}
    return shown


async def published(handle: WorkflowHandle, view: Any) -> dict[str, Any]:
    """The case's attributes once they say what ``view`` says (visibility follows the history by
    a moment); the due date compared by day, as the view gives it."""
    want = expected(view)

    async def read() -> dict[str, Any]:
        got = attributes(await handle.describe())
        if "ActionDueAt" in got:
            got["ActionDueAt"] = {got["ActionDueAt"].date()}
        return got

    return await poll(read, lambda got: got == want, timeout=5)


async def test_the_attributes_say_what_the_view_says_at_every_stage(dev_client: Client, dev_settings: Settings):
    request = TransferRequest.model_validate(transfer_body())
    view = (await open_transfer(dev_client, request, "kz-gpo", dev_settings.task_queue)).view
    handle = transfer_handle(dev_client, request.reference)
    assert await published(handle, view) == expected(view)
    assert expected(view)["AwaitingAuthorities"] == ["kz-gpo", "uz-gpo"]

    view = await act(handle, TransferWorkflow.record_decision, "kz-gpo", Decision(state="KZ", decision="consent"),
                     TransferWorkflow.view)
    assert await published(handle, view) == expected(view)
    assert expected(view)["AwaitingAuthorities"] == ["uz-gpo"]

    view = await act(handle, TransferWorkflow.record_decision, "uz-gpo", Decision(state="UZ", decision="consent"),
                     TransferWorkflow.view)
    view = await poll(lambda: handle.query(TransferWorkflow.view), lambda v: v.handover is not None)
    assert await published(handle, view) == expected(view)
    assert (view.stage, expected(view)["AwaitingAuthorities"]) == ("awaiting_handover", ["uz-penal"])

    view = await act(handle, TransferWorkflow.confirm_handover, "uz-penal",
                     HandoverConfirmation(completed_on=view.opened_at.date(), place=view.handover.place),
                     TransferWorkflow.view)
    await handle.result()
    closed = await published(handle, view)
    assert closed == expected(view)
    assert (closed["CaseStage"], closed["CaseOutcome"]) == ("transferred", "transferred")
    assert "AwaitingAuthorities" not in closed and "ActionDueAt" not in closed and "InboxAssignments" not in closed


DAY = timedelta(days=1)


async def stage_times_attribute(client: Client, workflow_id: str) -> str:
    """StageTimes as the server holds it (the time-skipping server's other attributes, such as a
    Datetime, are not in a form the SDK's describe decodes: this one is read raw)."""
    described = await client.workflow_service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)))
    return json.loads(described.workflow_execution_info.search_attributes.indexed_fields[sa.STAGE_TIMES.name].data)


async def test_stage_times_count_the_days_each_stage_took(skipping_env, tmp_path: Path):
    """A transfer waits 2 days for its declaration, 3 for the consents and 1 for the handover (the
    time-skipping server's clock): StageTimes says so, to the second, as its trail does, at each
    stage and once closed (no current stage then)."""
    settings = Settings(task_queue=f"stage-times-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    client = skipping_env.client
    async with create_worker(client, settings):
        view = (await open_transfer(client, transfer_request(declaration=None), "kz-gpo", settings.task_queue)).view
        handle = transfer_handle(client, view.reference)
        assert view.stage == "awaiting_declaration"
        await skipping_env.sleep(2 * DAY)
        view = await act(handle, TransferWorkflow.record_declaration, "kz-penal",
                         Declaration.model_validate(BASE["declaration"]), TransferWorkflow.view)
        assert view.stage == "awaiting_consents"
        waiting = await stage_times_attribute(client, handle.id)
        assert waiting == stage_times(view)
        declaration, eligibility, consents = (f"{TransferWorkflow.stages.index(s)}" for s in (
            "awaiting_declaration", "checking_eligibility", "awaiting_consents"))
        spent = dict(item.split("=") for item in waiting.split() if "=" in item)
        assert 2 * 86_400 <= int(spent[declaration]) < 2 * 86_400 + 60, waiting
        assert int(spent[eligibility]) < 60 and waiting.split()[-1].startswith(f"{consents}@"), waiting

        await skipping_env.sleep(3 * DAY)
        for actor, state in (("kz-gpo", "KZ"), ("uz-gpo", "UZ")):
            await handle.execute_update(TransferWorkflow.record_decision,
                                        args=[actor, Decision(state=state, decision="consent")])
        view = await poll(lambda: handle.query(TransferWorkflow.view), lambda v: v.handover is not None)
        await skipping_env.sleep(DAY)
        await handle.execute_update(TransferWorkflow.confirm_handover, args=[
            "uz-penal", HandoverConfirmation(completed_on=view.handover.due_on - 29 * DAY, place=view.handover.place)])
        view = await handle.result()
        closed = await stage_times_attribute(client, handle.id)
    assert closed == stage_times(view) and "@" not in closed, closed
    spent = dict(item.split("=") for item in closed.split())
    assert 3 * 86_400 <= int(spent[consents]) < 3 * 86_400 + 60, closed
    assert 86_400 <= int(spent[f"{TransferWorkflow.stages.index('awaiting_handover')}"]) < 86_400 + 60, closed
