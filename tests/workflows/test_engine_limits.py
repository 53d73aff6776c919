"""A case never ended by the engine: a step that retrying cannot mend ends its retries at once and
the case waits where a person can act; a history that grows long continues as new."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from api.engine import closed_meanwhile
from activities.intake import INCOMPUTABLE, EligibilityQuestion, check_eligibility
from domain.assistance import AssistanceRequest, AssistanceWithdrawal, InformationAnswer, Review
from domain.case import RequestSeal
from domain.transfer import Decision, HandoverConfirmation, LegalReview, TransferRequest, Withdrawal, request_digest
from treatyflow.cases import act, open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import assistance_body, transfer_body
from worker import create_worker
from workflows.assistance import AssistanceWorkflow, OpenAssistance, assistance_workflow_id
from workflows.kinds import ASSISTANCE
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_eligibility_that_cannot_be_computed_is_not_retried():
    """The attack's sentence (start 0001-01-01, large credits) — no longer accepted by the API —
    given to the activity directly: a typed, non-retryable failure, not an endless retry."""
    request = TransferRequest.model_validate(transfer_body())
    request = request.model_copy(update={"sentence": request.sentence.model_copy(  # unvalidated, as before
        update={"start_date": date(1, 1, 1), "pretrial_credit_days": 36_600})})
    with pytest.raises(Exception) as failure:
        await ActivityEnvironment().run(check_eligibility, EligibilityQuestion(
            request=request, treaty_id="kz-uz-transfer-2021", received_on=date(2026, 11, 20)))
    assert getattr(failure.value, "type", None) == INCOMPUTABLE and failure.value.non_retryable


@activity.defn(name="check_eligibility")
async def failing_eligibility(question: EligibilityQuestion):
    from activities.intake import permanent

    raise permanent(OverflowError("date value out of range"), "eligibility")


async def test_a_case_whose_eligibility_fails_for_good_waits_for_legal_review(dev_client, tmp_path: Path):
    s = Settings(task_queue=f"permanent-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    async with create_worker(dev_client, s, activity_overrides=[failing_eligibility]):
        request = TransferRequest.model_validate(transfer_body())
        opening = await open_transfer(dev_client, request, "kz-gpo", s.task_queue)
        view = opening.view
        assert view.stage == "awaiting_legal_review", view.stage
        assert {c.outcome for c in view.eligibility} == {"needs_review"}
        assert [(p.authority, p.action) for p in view.pending_actions] == [("uz-gpo", "legal_review")]
        assert any(e.action == "eligibility_not_assessed" and e.detail == INCOMPUTABLE for e in view.events)
        handle = transfer_handle(dev_client, request.reference)
        view = await act(handle, TransferWorkflow.record_legal_review, "uz-gpo",
                         LegalReview(dual_criminality="satisfied"), TransferWorkflow.view)
        assert view.stage == "awaiting_consents"
        closed = await act(handle, TransferWorkflow.withdraw, "kz-gpo",
                           Withdrawal(withdrawn_on=datetime.now(timezone.utc).date(), reason="test over"),
                           TransferWorkflow.view)
        assert closed.outcome == "withdrawn"



async def test_a_request_whose_history_grows_long_continues_as_new_and_stays_one_case(dev_client, dev_settings):
    """Rounds of information asked and answered make the history long; past the threshold (small
    here, 10,000 events in production) the request continues as a new run at its review, with
    the same view, trail and pending actions, and goes on to its end."""
    request = AssistanceRequest.model_validate(assistance_body(received_on=datetime.now(timezone.utc).date().isoformat()))
    handle = await dev_client.start_workflow(
        AssistanceWorkflow.run, OpenAssistance(request=request, opened_by="fr-moj", continue_after_events=60),
        id=assistance_workflow_id(request.reference), task_queue=dev_settings.task_queue)
    first_run = handle.result_run_id
    seal = RequestSeal(request_sha256=request_digest(request))
    opening = await handle.execute_update(AssistanceWorkflow.opened, seal)
    assert opening.created and opening.view.stage == "under_review"
    current = dev_client.get_workflow_handle(handle.id)  # whichever run is current
    trail = len(opening.view.events)
    for round_ in range(6):
        view = await act(current, AssistanceWorkflow.record_review, "kz-gpo",
                         Review(decision="request_information", questions=f"question {round_}"), AssistanceWorkflow.view)
        assert view.stage == "awaiting_information" and view.questions == f"question {round_}"
        view = await act(current, AssistanceWorkflow.record_information, "fr-moj",
                         InformationAnswer(answers=f"answer {round_}"), AssistanceWorkflow.view)
        assert view.stage == "under_review"
        assert len(view.events) > trail  # the trail only grows, across runs
        trail = len(view.events)
    assert (await current.describe()).run_id != first_run, "the request never continued as new"
    assert (view.opened_at, view.events[0].action) == (opening.view.opened_at, "case_opened")
    assert [e.action for e in view.events].count("information_answered") == 6
    assert [(p.authority, p.action) for p in view.pending_actions] == [("kz-gpo", "review_request")]
    assert [m.stage for m in view.measures] == [m.stage for m in opening.view.measures]
    # a repeated opening finds the one case, and the case goes on to its end
    again = await current.query(AssistanceWorkflow.opening)
    assert (again.request_sha256, again.intake_done) == (seal.request_sha256, True)
    view = await act(current, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="test over"),
                     AssistanceWorkflow.view)
    assert view.outcome == "withdrawn" and view.events[0].action == "case_opened"


async def test_a_handover_and_a_withdrawal_in_one_task_exactly_one_takes_effect(dev_client, tmp_path):
    """Both acts reach the case while no worker runs, so it takes them in one workflow task: one is
    recorded, the other is a conflict — never a withdrawn case with a completed handover. Which one
    wins is the engine's choice (the server does not promise to deliver pending updates in the order
    they were sent; CI saw the later one win once), so the test asserts that the case is consistent
    with whichever it recorded."""
    s = Settings(task_queue=f"race-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    async with create_worker(dev_client, s):
        request = TransferRequest.model_validate(transfer_body())
        await open_transfer(dev_client, request, "kz-gpo", s.task_queue)
        handle = transfer_handle(dev_client, request.reference)
        for actor, state in (("kz-gpo", "KZ"), ("uz-gpo", "UZ")):
            await act(handle, TransferWorkflow.record_decision, actor, Decision(state=state, decision="consent"),
                      TransferWorkflow.view)
        for _ in range(100):
            view = await handle.query(TransferWorkflow.view)
            if view.handover is not None:
                break
            await asyncio.sleep(0.1)
        assert view.handover is not None
    today = datetime.now(timezone.utc).date()
    acts = {"handover": (TransferWorkflow.confirm_handover, "uz-penal",
                         HandoverConfirmation(completed_on=today, place=view.handover.place)),
            "withdrawal": (TransferWorkflow.withdraw, "kz-gpo", Withdrawal(withdrawn_on=today, reason="changed mind"))}
    sent = {}
    for name, (update, actor, body) in acts.items():
        sent[name] = asyncio.create_task(handle.execute_update(update, args=[actor, body]))
        await asyncio.sleep(0.2)
    async with create_worker(dev_client, s):
        answers = dict(zip(sent, await asyncio.gather(*sent.values(), return_exceptions=True)))
        result = await handle.result()
    recorded = [name for name, answer in answers.items() if answer is None]
    assert len(recorded) == 1, answers
    (refused,) = (answers[name] for name in answers if name not in recorded)
    assert (isinstance(refused, WorkflowUpdateFailedError) and refused.cause.type == "conflict"
            or isinstance(refused, RPCError) and closed_meanwhile(refused)), answers
    if recorded == ["handover"]:
        assert result.outcome == "transferred" and result.handover.completed_on == today
    else:
        assert result.outcome == "withdrawn" and result.handover.completed_on is None


async def take_when_awaited(handle, authority: str, user: str) -> None:
    """``user`` of ``authority`` takes the item as the web application does (with the blind index),
    once the case awaits the authority (a new run may not have reached its wait yet)."""
    from api.listing import ASSIGNMENT_INDEX
    from domain.case import Actor, Assignment
    from domain.names import assignee_index
    from tests.conftest import CODEC_KEYS
    from tests.support.polling import until

    await until(lambda: awaits(handle, authority), f"{authority} awaited")
    index = assignee_index(CODEC_KEYS.derived(ASSIGNMENT_INDEX), authority, user)
    await handle.execute_update(AssistanceWorkflow.assign, args=[Actor(authority=authority, user=user),
                                                                 Assignment(user=user, index=index)])


async def awaits(handle, authority: str) -> bool:
    return authority in {p.authority for p in (await handle.query(AssistanceWorkflow.view)).pending_actions}


async def test_a_request_continuing_as_new_keeps_who_handles_it(dev_client, dev_settings):
    """Round after round a person of each state takes what the request awaits and acts; each
    assignment ends with its act, so the request that continued as new has nobody assigned — memo,
    InboxAssignments and the update's checks agree — and takes an assignment in its new run. An
    assignment in force when a request continues as new goes into the new run with it (whose memo
    is the one the request started with): a run resumed from the request's own Resumption with
    one keeps it — in its memo, InboxAssignments and the update's checks."""
    from api.listing import ASSIGNMENT_INDEX
    from domain.case import Actor, Assignment
    from domain.names import assignee_index
    from tests.conftest import CODEC_KEYS
    from tests.support.polling import until
    from workflows import search_attributes as sa

    request = AssistanceRequest.model_validate(assistance_body(received_on=datetime.now(timezone.utc).date().isoformat()))
    handle = await dev_client.start_workflow(
        AssistanceWorkflow.run, OpenAssistance(request=request, opened_by="fr-moj", continue_after_events=60),
        id=assistance_workflow_id(request.reference), task_queue=dev_settings.task_queue,
        memo=ASSISTANCE.memo(request))
    first_run = handle.result_run_id
    await handle.execute_update(AssistanceWorkflow.opened, RequestSeal(request_sha256=request_digest(request)))
    current = dev_client.get_workflow_handle(handle.id)
    for round_ in range(10):
        await take_when_awaited(current, "kz-gpo", "clerk.kz")
        await act(current, AssistanceWorkflow.record_review, "kz-gpo",
                  Review(decision="request_information", questions=f"question {round_}"), AssistanceWorkflow.view,
                  user="clerk.kz")
        await take_when_awaited(current, "fr-moj", "clerk.fr")
        await act(current, AssistanceWorkflow.record_information, "fr-moj", InformationAnswer(answers="yes"),
                  AssistanceWorkflow.view, user="clerk.fr")
        if (await current.describe()).run_id != first_run:
            break
    assert (await current.describe()).run_id != first_run, "the request never continued as new"
    await until(lambda: awaits(current, "kz-gpo"), "the review awaited in the new run")
    described = await current.describe()
    assert (await described.memo()).get("assigned") in (None, {})  # a new run's memo is its start's
    assert described.typed_search_attributes.get(sa.INBOX_ASSIGNMENTS) == [sa.unassigned("kz-gpo")]
    await take_when_awaited(current, "kz-gpo", "clerk.kz")  # nobody holds it: it can be taken
    index = assignee_index(CODEC_KEYS.derived(ASSIGNMENT_INDEX), "kz-gpo", "clerk.kz")
    described = await current.describe()
    assert (await described.memo()).get("assigned") == {"kz-gpo": "clerk.kz"}
    assert described.typed_search_attributes.get(sa.INBOX_ASSIGNMENTS) == [index]

    # the run's own input, a Resumption, with an assignment in force, as a run of another request
    history = await current.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (case,) = await dev_client.data_converter.decode(started.input.payloads, [OpenAssistance])
    assert case.resumed is not None
    other = request.reference + "-R"
    resumed = case.model_copy(update={
        "request": case.request.model_copy(update={"reference": other}),
        "resumed": case.resumed.model_copy(update={"assigned": {"kz-gpo": "clerk.kz"},
                                                   "assignment_index": {"kz-gpo": index}})})
    again = await dev_client.start_workflow(AssistanceWorkflow.run, resumed, id=assistance_workflow_id(other),
                                            task_queue=dev_settings.task_queue, memo=ASSISTANCE.memo(request))
    await until(lambda: awaits(again, "kz-gpo"), "the resumed run's review")
    await until(lambda: again_published(again, [index]), "the resumed run's assignment published")
    assert (await (await again.describe()).memo()).get("assigned") == {"kz-gpo": "clerk.kz"}
    with pytest.raises(WorkflowUpdateFailedError) as repeat:
        await again.execute_update(AssistanceWorkflow.assign, args=[
            Actor(authority="kz-gpo", user="clerk.kz"), Assignment(user="clerk.kz", index=index)])
    assert repeat.value.cause.type == "conflict" and "already assigned to clerk.kz" in str(repeat.value.cause)
    for h in (current, again):
        await act(h, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="test over"),
                  AssistanceWorkflow.view)


async def again_published(handle, values: list[str]) -> bool:
    from workflows import search_attributes as sa

    return (await handle.describe()).typed_search_attributes.get(sa.INBOX_ASSIGNMENTS) == values
