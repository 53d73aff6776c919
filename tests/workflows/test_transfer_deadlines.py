"""Every deadline of a transfer, on the time-skipping test server with a real worker and the
real activities: declaration expiry, reminder timing, consent overdue, handover overdue."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.case import RequestSeal
from domain.transfer import Decision, HandoverConfirmation, TransferView, request_digest
from treatyflow.cases import act
from treatyflow.config import Settings
from treatyflow.samples import transfer_request
from worker import create_worker
from workflows.transfer import OpenTransfer, TransferWorkflow, transfer_workflow_id

DAY = timedelta(days=1)


def settings(tmp_path: Path) -> Settings:
    return Settings(task_queue=f"deadlines-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")


async def start(env: WorkflowEnvironment, s: Settings, **changes) -> WorkflowHandle:
    request = transfer_request(**changes)
    handle = await env.client.start_workflow(
        TransferWorkflow.run, OpenTransfer(request=request, opened_by="kz-gpo"),
        id=transfer_workflow_id(request.reference), task_queue=s.task_queue)
    await handle.execute_update(TransferWorkflow.opened, RequestSeal(request_sha256=request_digest(request)))
    return handle


def notices(view: TransferView, event: str) -> list:
    return [e for e in view.events if e.action == f"notice_{event}"]


def days_after_open(view: TransferView, at: datetime) -> float:
    return (at - view.opened_at) / DAY


async def test_declaration_expires_after_30_days_with_a_reminder_on_day_23(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s, declaration=None)
        view = await handle.query(TransferWorkflow.view)
        assert view.stage == "awaiting_declaration"
        assert [(p.authority, p.action) for p in view.pending_actions] == [("kz-penal", "record_declaration")]
        assert view.pending_actions[0].due_on == (view.opened_at + 30 * DAY).date()

        await skipping_env.sleep(22 * DAY)
        assert notices(await handle.query(TransferWorkflow.view), "reminder") == []

        await skipping_env.sleep(2 * DAY)
        view = await handle.query(TransferWorkflow.view)
        [reminder] = notices(view, "reminder")
        assert reminder.detail == "to kz-penal: record_declaration"
        assert 23 <= days_after_open(view, reminder.at) < 23.01
        assert view.stage == "awaiting_declaration"

        result = await handle.result()  # time skips to the deadline
        assert (result.stage, result.outcome, result.grounds) == ("expired", "expired", ["no_declaration"])
        closed = next(e for e in result.events if e.action == "case_closed")
        assert 30 <= days_after_open(result, closed.at) < 30.01
        assert (s.archive_dir / "transfer" / f"{result.reference}.json").exists()


async def test_consent_overdue_escalates_to_each_central_authority_and_the_case_waits(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s)
        view = await handle.query(TransferWorkflow.view)
        assert view.stage == "awaiting_consents" and not view.overdue

        await skipping_env.sleep(84 * DAY)
        view = await handle.query(TransferWorkflow.view)
        assert sorted(n.detail for n in notices(view, "reminder")) == ["to kz-gpo: decide", "to uz-gpo: decide"]
        assert all(83 <= days_after_open(view, n.at) < 83.01 for n in notices(view, "reminder"))
        assert not view.overdue and notices(view, "escalation") == []

        await skipping_env.sleep(7 * DAY)
        view = await handle.query(TransferWorkflow.view)
        assert view.stage == "awaiting_consents"  # no terminal consequence
        assert view.overdue and all(p.overdue for p in view.pending_actions)
        assert sorted(n.detail for n in notices(view, "escalation")) == ["to kz-gpo", "to uz-gpo"]

        await handle.execute_update(TransferWorkflow.record_decision, args=["uz-gpo", Decision(state="UZ", decision="consent")])
        view = await act(handle, TransferWorkflow.record_decision, "kz-gpo", Decision(state="KZ", decision="consent"),
                         TransferWorkflow.view)
        assert view.stage == "awaiting_handover" and not view.overdue


async def test_handover_overdue_escalates_to_the_administering_state(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s)
        for actor, state in (("kz-gpo", "KZ"), ("uz-gpo", "UZ")):
            await handle.execute_update(TransferWorkflow.record_decision,
                                        args=[actor, Decision(state=state, decision="consent")])
        await skipping_env.sleep(31 * DAY)
        view = await handle.query(TransferWorkflow.view)
        assert view.stage == "awaiting_handover" and view.overdue
        assert [(p.authority, p.action, p.overdue) for p in view.pending_actions] == [
            ("uz-penal", "confirm_handover", True)]
        assert [n.detail for n in notices(view, "escalation")] == ["to uz-gpo"]
        assert [n.detail for n in notices(view, "reminder")] == ["to uz-penal: confirm_handover"]

        assert view.handover is not None
        await handle.execute_update(
            TransferWorkflow.confirm_handover,
            args=["uz-penal", HandoverConfirmation(completed_on=view.handover.due_on, place=view.handover.place)])
        result = await handle.result()
        assert result.outcome == "transferred" and result.handover.completed_on == view.handover.due_on
