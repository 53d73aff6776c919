"""Driving cases from the test process as the API does (update-with-start, updates), and the parts
of a closed case that must not depend on when (or how often) a process died."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import date, datetime, timezone
from typing import Any

from temporalio.client import Client, WorkflowHandle

from domain.assistance import AssistanceWithdrawal, Authorisation, MeasureResult, Review
from domain.transfer import Decision, HandoverConfirmation, Withdrawal
from tests.support import until
from treatyflow.cases import act, assistance_handle, measure_handle, open_assistance, open_transfer, transfer_handle
from treatyflow.samples import assistance_request, transfer_request
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MeasureWorkflow
from workflows.transfer import TransferWorkflow

ROUTED = {"m1": "kz-afm", "m2": "kz-police", "m3": "kz-police"}  # the executing authority of each measure


def today() -> date:
    return datetime.now(timezone.utc).date()


async def open_transfer_case(client: Client, task_queue: str) -> WorkflowHandle:
    request = transfer_request()
    opening = await open_transfer(client, request, "kz-gpo", task_queue)
    assert opening.view.stage == "awaiting_consents", opening.view.stage
    return transfer_handle(client, request.reference)


async def open_assistance_case(client: Client, task_queue: str) -> WorkflowHandle:
    request = assistance_request()
    opening = await open_assistance(client, request, "fr-moj", task_queue)
    assert opening.view.stage == "under_review", opening.view.stage
    return assistance_handle(client, request.reference)


def reference_of(handle: WorkflowHandle) -> str:
    return handle.id.split(":", 1)[1]


async def decide(handle: WorkflowHandle, state: str, decision: str = "consent") -> Any:
    actor = {"KZ": "kz-gpo", "UZ": "uz-gpo"}[state]
    return await act(handle, TransferWorkflow.record_decision, actor, Decision(state=state, decision=decision),
                     TransferWorkflow.view)


async def handover_arranged(handle: WorkflowHandle, seconds: float = 45.0) -> Any:
    async def probe():
        view = await handle.query(TransferWorkflow.view)
        return view if view.handover is not None else None
    return await until(probe, f"the handover of {handle.id} to be arranged", seconds, every=0.2)


async def confirm_handover(handle: WorkflowHandle) -> Any:
    view = await handle.query(TransferWorkflow.view)
    return await act(handle, TransferWorkflow.confirm_handover, "uz-penal",
                     HandoverConfirmation(completed_on=today(), place=view.handover.place), TransferWorkflow.view)


async def withdraw_transfer(handle: WorkflowHandle) -> Any:
    return await act(handle, TransferWorkflow.withdraw, "kz-gpo", Withdrawal(withdrawn_on=today(), reason="test over"),
                     TransferWorkflow.view)


async def withdraw_assistance(handle: WorkflowHandle) -> Any:
    return await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="test over"),
                     AssistanceWorkflow.view)


async def accept(handle: WorkflowHandle) -> Any:
    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo", Review(decision="accept", note="in order"),
                     AssistanceWorkflow.view)
    assert view.stage == "executing"
    return view


async def measures_started(handle: WorkflowHandle, seconds: float = 45.0) -> Any:
    async def probe():
        view = await handle.query(AssistanceWorkflow.view)
        return view if all(m.stage != "pending" for m in view.measures) else None
    return await until(probe, f"the measures of {handle.id} to start", seconds, every=0.2)


def executed(item: str) -> MeasureResult:
    return MeasureResult(outcome="executed", note="done", evidence=[
        {"item_id": item, "description": f"evidence {item}", "sha256": hashlib.sha256(item.encode()).hexdigest(),
         "collected_on": today()}])


async def execute_measures(client: Client, handle: WorkflowHandle) -> None:
    """The court authorises the search (m2); each executing authority reports its measure."""
    ref = reference_of(handle)
    await measure_handle(client, ref, "m2").execute_update(
        MeasureWorkflow.authorise, args=["kz-court", Authorisation(granted=True, note="reasoned order")])
    for m in ("m1", "m2", "m3"):
        await measure_handle(client, ref, m).execute_update(MeasureWorkflow.report_result,
                                                            args=[ROUTED[m], executed(f"{m}-item")])


def outcome(view: Any) -> dict[str, Any]:
    """A closed case without its times, ids and reference: what must be the same with or without a
    fault. Events are compared as a multiset (notices are recorded when delivered, so their place
    in the trail depends on the receiver and on retries), without the measures' own notices."""
    data = scrub(view.model_dump(mode="json", exclude={"events", "documents"}))
    ref = data.pop("reference")
    events = Counter((e.actor, e.action, re.sub(r"doc-[a-z2-7]{26}", "<document>", e.detail.replace(ref, "<ref>")))
                     for e in view.events if not measure_notice(e))
    # the case file, as a multiset too: a letter is recorded once stored, its id drawn by its run
    documents = Counter((d.type, d.filename.replace(ref, "<ref>"), d.sha256 if d.type != "person_notice" else "")
                        for d in view.documents)
    return {**data, "events": events, "documents": documents}


def measure_notice(event: Any) -> bool:
    """A measure's own notice: it may be delivered after the measure told the request its end, and
    then stays in the measure's trail only (counted per key by the receiver checks instead)."""
    return event.action.startswith("notice_") and event.detail.endswith((": report_result", ": authorise_measure"))


def scrub(value: Any) -> Any:
    """Without moments (``at``, ``opened_at``) and measure revisions."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if k not in ("at", "opened_at", "revision")}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def notice_events(view: Any) -> Counter:
    return Counter(e.action for e in view.events if e.action.startswith("notice_"))
