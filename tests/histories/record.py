"""Record the committed histories that the replay test replays after every change:
`python -m tests.histories.record v6` writes `<path>-v6.json` (a local dev server and a worker
start and stop by themselves); names after the version record only those scenarios. Keep the
older versions: they prove that cases begun under earlier code still replay. Re-record only on
purpose: an old history that no longer replays means running cases would break, which needs
`workflow.patched()`, not a new recording (the one exception, 0.2.0, is in docs/operations.md)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

from temporalio.client import WorkflowContinuedAsNewError
from temporalio.testing import WorkflowEnvironment

from domain.assistance import (
    AssistanceWithdrawal, Authorisation, EvidenceItem, InformationAnswer, MeasureResult, Review,
)
from domain.case import Actor, Assignment, RequestSeal
from domain.transfer import Declaration, Decision, HandoverConfirmation, LegalReview, Term, Withdrawal, request_digest
from treatyflow.cases import assistance_handle, measure_handle, open_assistance, open_transfer, transfer_handle
from treatyflow.client import PLAIN_CONVERTER
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings
from treatyflow.devserver import installed_binary
from treatyflow.samples import BASE, assistance_request, transfer_request
from worker import create_worker
from workflows import search_attributes
from workflows.assistance import AssistanceWorkflow, OpenAssistance, assistance_workflow_id
from workflows.measure import MeasureWorkflow
from workflows.transfer import TransferWorkflow

HERE = Path(__file__).parent


async def until_handover_arranged(handle) -> None:
    for _ in range(100):
        if (await handle.query(TransferWorkflow.view)).handover:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("handover never arranged")


async def transferred(client, tq):
    view = (await open_transfer(client, transfer_request(reference="HIST-TRANSFERRED"), "kz-gpo", tq)).view
    h = transfer_handle(client, view.reference)
    await h.execute_update(TransferWorkflow.record_decision, args=["uz-gpo", Decision(state="UZ", decision="consent")])
    await h.execute_update(TransferWorkflow.record_decision, args=["kz-gpo", Decision(state="KZ", decision="consent")])
    await until_handover_arranged(h)
    today = (await h.query(TransferWorkflow.view)).opened_at.date()
    await h.execute_update(TransferWorkflow.confirm_handover,
                           args=["uz-penal", HandoverConfirmation(completed_on=today, place="Zhibek Zholy")])
    return h


async def declaration_then_legal_review_then_state_refusal(client, tq):
    offences = [{"article": "9999", "description": "unmapped"}]
    request = transfer_request(reference="HIST-REVIEW-REFUSED", declaration=None,
                               judgment={**BASE["judgment"], "offences": offences})
    await open_transfer(client, request, "kz-gpo", tq)
    h = transfer_handle(client, request.reference)
    await h.execute_update(TransferWorkflow.record_declaration,
                           args=["kz-penal", Declaration.model_validate(BASE["declaration"])])
    await h.execute_update(TransferWorkflow.record_legal_review,
                           args=["uz-gpo", LegalReview(dual_criminality="satisfied", note="conduct is theft")])
    await h.execute_update(TransferWorkflow.record_decision,
                           args=["kz-gpo", Decision(state="KZ", decision="refuse", grounds=["proceedings_pending"])])
    return h


async def withdrawn(client, tq):
    view = (await open_transfer(client, transfer_request(reference="HIST-WITHDRAWN"), "kz-gpo", tq)).view
    h = transfer_handle(client, view.reference)
    await h.execute_update(TransferWorkflow.withdraw,
                           args=["kz-penal", Withdrawal(withdrawn_on=view.opened_at.date(), reason="changed mind")])
    return h


async def refused_at_intake(client, tq):
    request = transfer_request(reference="HIST-REFUSED", person={**BASE["person"], "citizenships": ["KZ"]})
    await open_transfer(client, request, "kz-gpo", tq)
    return transfer_handle(client, request.reference)


def evidence(item: str) -> list[EvidenceItem]:
    return [EvidenceItem(item_id=item, description="record", sha256="ab" * 32, collected_on=date.today())]


async def until_measures_started(handle) -> None:
    for _ in range(100):
        if all(m.stage != "pending" for m in (await handle.query(AssistanceWorkflow.view)).measures):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("measures never started")


async def execute_every_measure(client, reference: str, handle) -> None:
    """Once accepted: the court authorises the search (m2), and every measure is executed."""
    await until_measures_started(handle)
    await measure_handle(client, reference, "m2").execute_update(
        MeasureWorkflow.authorise, args=["kz-court", Authorisation(granted=True)])
    for measure, who in (("m1", "kz-afm"), ("m2", "kz-police"), ("m3", "kz-police")):
        await measure_handle(client, reference, measure).execute_update(
            MeasureWorkflow.report_result, args=[who, MeasureResult(outcome="executed", evidence=evidence(measure))])


async def assistance_information_then_completed(client, tq):
    request = assistance_request(reference="HIST-ASSISTANCE-COMPLETED")
    await open_assistance(client, request, "fr-moj", tq)
    h = assistance_handle(client, request.reference)
    await h.execute_update(AssistanceWorkflow.record_review,
                           args=["kz-gpo", Review(decision="request_information", questions="Which accounts?")])
    await h.execute_update(AssistanceWorkflow.record_information, args=["fr-moj", InformationAnswer(answers="All")])
    await h.execute_update(AssistanceWorkflow.record_review, args=["kz-gpo", Review(decision="accept")])
    await execute_every_measure(client, request.reference, h)
    return h, [measure_handle(client, request.reference, "m2")]


async def assistance_withdrawn_during_execution(client, tq):
    request = assistance_request(reference="HIST-ASSISTANCE-WITHDRAWN")
    await open_assistance(client, request, "fr-moj", tq)
    h = assistance_handle(client, request.reference)
    await h.execute_update(AssistanceWorkflow.record_review, args=["kz-gpo", Review(decision="accept")])
    await until_measures_started(h)
    await measure_handle(client, request.reference, "m1").execute_update(
        MeasureWorkflow.report_result, args=["kz-afm", MeasureResult(outcome="executed", evidence=evidence("m1"))])
    await h.execute_update(AssistanceWorkflow.withdraw, args=["fr-moj", AssistanceWithdrawal(reason="case closed")])
    return h, [measure_handle(client, request.reference, "m2")]


async def assistance_continued_as_new(client, tq):
    """Rounds of information past a (small) threshold: the first run ends in continue-as-new."""
    request = assistance_request(reference="HIST-ASSISTANCE-CONTINUED")
    first = await client.start_workflow(
        AssistanceWorkflow.run, OpenAssistance(request=request, opened_by="fr-moj", continue_after_events=40),
        id=assistance_workflow_id(request.reference), task_queue=tq)
    await first.execute_update(AssistanceWorkflow.opened, RequestSeal(request_sha256=request_digest(request)))
    h = assistance_handle(client, request.reference)
    for round_ in range(4):
        await h.execute_update(AssistanceWorkflow.record_review,
                               args=["kz-gpo", Review(decision="request_information", questions=f"Round {round_}?")])
        await h.execute_update(AssistanceWorkflow.record_information, args=["fr-moj", InformationAnswer(answers="Yes")])
    await h.execute_update(AssistanceWorkflow.withdraw, args=["fr-moj", AssistanceWithdrawal(reason="case closed")])
    return client.get_workflow_handle(first.id, run_id=first.result_run_id), []


async def assistance_due_by_date(client, tq):
    """Measures executing until a ``respond_by`` date (due all that day)."""
    request = assistance_request(reference="HIST-ASSISTANCE-DUE-BY-DATE", received_on=None,
                                 respond_by=date.today() + timedelta(days=30))
    await open_assistance(client, request, "fr-moj", tq)
    h = assistance_handle(client, request.reference)
    await h.execute_update(AssistanceWorkflow.record_review, args=["kz-gpo", Review(decision="accept")])
    await execute_every_measure(client, request.reference, h)
    return h, [measure_handle(client, request.reference, "m1")]


async def transfer_converted_handed_over_elsewhere(client, tq):
    """Asked for by the administering state; converted by it; handed over elsewhere, with a note."""
    request = transfer_request(reference="HIST-CONVERTED", initiated_by="administering_state")
    view = (await open_transfer(client, request, "kz-gpo", tq)).view
    h = transfer_handle(client, view.reference)
    await h.execute_update(TransferWorkflow.record_decision, args=["uz-gpo", Decision(
        state="UZ", decision="consent", enforcement="converted", converted_sentence=Term(years=4))])
    await h.execute_update(TransferWorkflow.record_decision, args=["kz-gpo", Decision(state="KZ", decision="consent")])
    await until_handover_arranged(h)
    today = (await h.query(TransferWorkflow.view)).opened_at.date()
    await h.execute_update(TransferWorkflow.confirm_handover, args=["uz-penal", HandoverConfirmation(
        completed_on=today, place="Tashkent airport", note="the crossing was closed")])
    return h


def taking(authority: str, user: str) -> tuple[Actor, Assignment]:
    """``user`` of ``authority`` takes an item; the recorder holds no key, so the assignment's
    index is any 32 hex digits (code before the index existed ignores it)."""
    return Actor(authority=authority, user=user), Assignment(
        user=user, index=hashlib.sha256(f"{authority}/{user}".encode()).hexdigest()[:32])


async def transfer_assigned(client, tq):
    """Who handles it: people take the item, give it back, a senior gives it to a colleague; each
    authority acts, and the next authority's item is taken too."""
    view = (await open_transfer(client, transfer_request(reference="HIST-ASSIGNED"), "kz-gpo", tq)).view
    h = transfer_handle(client, view.reference)
    await h.execute_update(TransferWorkflow.assign, args=taking("uz-gpo", "alice.uz"))
    await h.execute_update(TransferWorkflow.assign, args=taking("kz-gpo", "bob.kz"))
    await h.execute_update(TransferWorkflow.assign, args=[Actor(authority="kz-gpo", user="bob.kz"), Assignment()])
    await h.execute_update(TransferWorkflow.assign, args=[Actor(authority="kz-gpo", user="chief.kz"),
                                                          taking("kz-gpo", "carol.kz")[1]])
    await h.execute_update(TransferWorkflow.record_decision, args=[Actor(authority="uz-gpo", user="alice.uz"),
                                                                   Decision(state="UZ", decision="consent")])
    await h.execute_update(TransferWorkflow.record_decision, args=[Actor(authority="kz-gpo", user="carol.kz"),
                                                                   Decision(state="KZ", decision="consent")])
    await until_handover_arranged(h)
    await h.execute_update(TransferWorkflow.assign, args=taking("uz-penal", "dan.uz"))
    today = (await h.query(TransferWorkflow.view)).opened_at.date()
    await h.execute_update(TransferWorkflow.confirm_handover, args=[
        Actor(authority="uz-penal", user="dan.uz"), HandoverConfirmation(completed_on=today, place="Zhibek Zholy")])
    return h


TRANSFERS = [("transfer-transferred", transferred),
             ("transfer-review-then-state-refusal", declaration_then_legal_review_then_state_refusal),
             ("transfer-withdrawn", withdrawn), ("transfer-refused-at-intake", refused_at_intake),
             ("transfer-converted-handed-over-elsewhere", transfer_converted_handed_over_elsewhere),
             ("transfer-assigned", transfer_assigned)]
REQUESTS = [("assistance-information-then-completed", assistance_information_then_completed),
            ("assistance-withdrawn-during-execution", assistance_withdrawn_during_execution),
            ("assistance-continued-as-new", assistance_continued_as_new),
            ("assistance-due-by-date", assistance_due_by_date)]


async def main(version: str, only: set[str]) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), data_converter=PLAIN_CONVERTER,
        search_attributes=search_attributes.ALL, dev_server_log_level="error")
    # dev mode: the states' signing keys are created in the temporary data directory; a throwaway
    # codec key seals the letters' documents (the histories' payloads stay plain: PLAIN_CONVERTER)
    data_dir = Path(tempfile.mkdtemp())
    settings = Settings(task_queue=f"record-{uuid.uuid4().hex[:6]}", archive_dir=data_dir / "archive",
                        data_dir=data_dir, documents_dir=data_dir / "documents", dev_mode=True,
                        codec_keys=CodecKeys(current="record", keys={"record": os.urandom(32)}))
    async with create_worker(env.client, settings):
        for name, scenario in TRANSFERS:
            if only and name not in only:
                continue
            handle = await scenario(env.client, settings.task_queue)
            await save(handle, name, version)
        for name, scenario in REQUESTS:
            if only and name not in only:
                continue
            handle, measures = await scenario(env.client, settings.task_queue)
            await save(handle, name, version)
            for measure in measures:
                await save(measure, f"measure-of-{name}", version)
    await env.shutdown()


async def save(handle, name: str, version: str) -> None:
    try:
        await asyncio.wait_for(handle.result(follow_runs=False), timeout=timedelta(seconds=30).total_seconds())
    except WorkflowContinuedAsNewError:  # the history of a run that continued as new
        pass
    path = HERE / f"{name}-{version}.json"
    if path.exists():  # a committed history is never rewritten
        print("kept", path.name, flush=True)
        return
    history = await handle.fetch_history()
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1))
    print("recorded", name, flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.histories.record <version tag, e.g. v3> [scenario name ...]")
    asyncio.run(main(sys.argv[1], set(sys.argv[2:])))
    sys.stdout.flush()
    os._exit(0)
