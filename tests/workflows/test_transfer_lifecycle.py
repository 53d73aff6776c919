"""Whole transfer cases on the session's local dev server, with a real worker and the real
activities: opened through update-with-start as the API does, moved by the authorities' acts,
and checked the way a user sees a case (stage, outcome, grounds, eligibility, decisions,
pending actions, the audit trail, the archive and the visibility store)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.transfer import (
    request_digest,
    Declaration, Decision, HandoverConfirmation, LegalReview, TransferRequest, TransferView, Withdrawal,
)
from stores.archive import FileArchive
from tests import support
from tests.workflows import assert_conflict
from treatyflow.cases import ReferenceTaken, act as act_on, open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import BASE, transfer_request
from workflows import search_attributes as sa
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREATY = "kz-uz-transfer-2021"
CONDITIONS = ["nationality", "final_judgment", "remaining_term", "dual_criminality", "financial_obligations",
              "pending_proceedings"]
ALL_GROUNDS = ["not_national", "judgment_not_final", "insufficient_remaining_term", "no_dual_criminality",
               "outstanding_financial_obligations", "proceedings_pending"]

# request variations (top-level fields of the factory's KZ→UZ request)
KZ_CITIZEN = {**BASE["person"], "citizenships": ["KZ"]}
UZ_CITIZEN = BASE["person"]
NOT_FINAL = {**BASE["judgment"], "final": False}
SHORT_SENTENCE = {**BASE["sentence"], "years": 2}  # full term ends 2025-09-17, before receipt
DEFAMATION = {**BASE["judgment"], "court": "Tashkent City Court",
              "offences": [{"article": "139", "iccs": "0209", "description": "Defamation"}]}
UNMAPPED_OFFENCE = {**BASE["judgment"], "offences": [{"article": "9999", "description": "unmapped"}]}
UNSETTLED = [{"description": "court fine", "amount": "1500.00", "currency": "KZT", "settled": False}]
PENDING = [{"kind": "investigation", "description": "another case"}]
UZ_TO_KZ = {"sentencing_state": "UZ", "administering_state": "KZ"}


def today() -> date:
    """'Today' as the workflow sees it: the UTC date."""
    return datetime.now(timezone.utc).date()


async def open_case(client: Client, settings: Settings, **changes: Any) -> tuple[TransferView, WorkflowHandle]:
    request = transfer_request(**changes)
    opening = await open_transfer(client, request, "kz-gpo", settings.task_queue)
    assert opening.created
    return opening.view, transfer_handle(client, request.reference)


async def act(handle: WorkflowHandle, update, actor: str, body) -> TransferView:
    return await act_on(handle, update, actor, body, TransferWorkflow.view)


async def rejection(handle: WorkflowHandle, update, actor: str, body) -> ApplicationError:
    """The act is rejected by the workflow's validator: the reason, as the client receives it."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, args=[actor, body])
    assert isinstance(failed.value.cause, ApplicationError), failed.value.cause
    return failed.value.cause


async def view_of(handle: WorkflowHandle) -> TransferView:
    return await handle.query(TransferWorkflow.view)


def pending(view: TransferView) -> list[tuple[str, str, date]]:
    return sorted((p.authority, p.action, p.due_on) for p in view.pending_actions)


def due(view: TransferView, stage: str, days: int) -> date:
    """The due date of an action awaited in ``stage``: ``days`` after the case entered it."""
    entered = [e.at for e in view.events if e.action == "stage_entered" and e.detail == stage]
    assert entered, f"the case never entered {stage}"
    return (entered[-1] + timedelta(days=days)).date()


def outcomes(view: TransferView) -> dict[str, str]:
    return {c.condition: c.outcome for c in view.eligibility}


def acts_by(view: TransferView) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    for e in view.events:
        by.setdefault(e.actor, []).append(e.action)
    return by


def consent(state: str) -> Decision:
    return Decision(state=state, decision="consent")


def declaration(signed_on: date | None = None) -> Declaration:
    return Declaration(signed_on=signed_on or today(), voluntary=True, informed_of_consequences=True)


def withdrawal(withdrawn_on: date | None = None) -> Withdrawal:
    return Withdrawal(withdrawn_on=withdrawn_on or today(), reason="the person withdrew consent")


until = partial(support.until, seconds=10.0, every=0.1)  # what these cases do is done within 10 s


# ---- 1. the happy path, in both orders of decision ---------------------------------------------

@pytest.mark.parametrize("order", [("UZ", "KZ"), ("KZ", "UZ")], ids=["UZ-then-KZ", "KZ-then-UZ"])
async def test_a_complete_case_is_transferred_archived_and_visible(dev_client, dev_settings, order):
    central = {"KZ": "kz-gpo", "UZ": "uz-gpo"}
    view, handle = await open_case(dev_client, dev_settings)
    ref = view.reference

    assert (view.stage, view.outcome, view.grounds, view.treaty) == ("awaiting_consents", None, [], TREATY)
    assert [c.condition for c in view.eligibility] == CONDITIONS
    assert set(outcomes(view).values()) == {"satisfied"}
    assert view.release_date == date(2028, 9, 17)  # 2024-01-15 + 5 years − 120 days
    consent_due = due(view, "awaiting_consents", 90)
    assert pending(view) == [("kz-gpo", "decide", consent_due), ("uz-gpo", "decide", consent_due)]
    assert not view.overdue and view.decisions == []

    # the visibility store lists the case in kz-gpo's inbox while consents are awaited
    query = (f"AwaitingAuthorities = 'kz-gpo' AND CaseStage = 'awaiting_consents' "
             f"AND WorkflowId = 'transfer:{ref}'")

    async def listed():
        return [w.id async for w in dev_client.list_workflows(query)]

    assert await until(listed, "the case in the visibility store", seconds=5) == [f"transfer:{ref}"]

    first, second = order
    view = await act(handle, TransferWorkflow.record_decision, central[first], consent(first))
    assert view.stage == "awaiting_consents"
    assert [(d.state, d.decision, d.authority) for d in view.decisions] == [(first, "consent", central[first])]
    assert pending(view) == [(central[second], "decide", consent_due)]

    view = await act(handle, TransferWorkflow.record_decision, central[second], consent(second))
    assert view.stage == "awaiting_handover"
    assert [(d.state, d.decision, d.grounds, d.authority) for d in view.decisions] == [
        (first, "consent", [], central[first]), (second, "consent", [], central[second])]

    # the handover is arranged by an activity after the second consent
    view = await until(lambda: _with_handover(handle), "the handover to be arranged")
    assert "Zhibek Zholy" in view.handover.place and view.handover.completed_on is None
    handover_due = due(view, "awaiting_handover", 30)
    assert view.handover.due_on == handover_due
    assert pending(view) == [("uz-penal", "confirm_handover", handover_due)]

    # the sentencing state's prison service may not confirm the reception
    error = await rejection(handle, TransferWorkflow.confirm_handover, "kz-penal",
                            HandoverConfirmation(completed_on=today(), place=view.handover.place))
    assert error.type == "not_permitted"

    view = await act(handle, TransferWorkflow.confirm_handover, "uz-penal",
                     HandoverConfirmation(completed_on=today(), place=view.handover.place))
    assert (view.stage, view.outcome, view.grounds) == ("transferred", "transferred", [])
    assert view.handover.completed_on == today() and view.pending_actions == []

    result = await handle.result()
    assert (result.stage, result.outcome, result.grounds) == ("transferred", "transferred", [])

    stored = (dev_settings.archive_dir / "transfer" / f"{ref}.json").read_bytes()
    assert ref.encode() not in stored  # encrypted at rest
    archived = await FileArchive(dev_settings.archive_dir, dev_client.data_converter.payload_codec).read("transfer", ref)
    assert archived.reference == ref and archived.kind == "transfer"
    assert archived.view["stage"] == "transferred" and archived.view["outcome"] == "transferred"

    by = acts_by(result)
    assert "case_opened" in by["kz-gpo"] and "decision_consent" in by["kz-gpo"]
    assert by["uz-gpo"] == ["decision_consent"]
    assert by["uz-penal"] == ["handover_confirmed"]
    assert "case_closed" in by["system"] and "handover_arranged" in by["system"]

    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.CASE_KIND) == "transfer"
    assert attrs.get(sa.CASE_STAGE) == "transferred"
    assert attrs.get(sa.CASE_OUTCOME) == "transferred"
    assert attrs.get(sa.TREATY_ID) == TREATY
    assert attrs.get(sa.CASE_STATES) == ["KZ", "UZ"]
    assert attrs.get(sa.AWAITING_AUTHORITIES) is None


async def _with_handover(handle: WorkflowHandle) -> TransferView | None:
    view = await view_of(handle)
    return view if view.handover is not None and view.pending_actions else None


async def test_a_state_without_a_prison_service_acts_through_its_central_authority(dev_client, dev_settings):
    """KZ→IT under the KZ–IT treaty: Italy has no prison service in the directory and the treaty
    names no handover point."""
    view, handle = await open_case(dev_client, dev_settings, administering_state="IT",
                                   person={**BASE["person"], "citizenships": ["IT"]})
    assert (view.stage, view.treaty) == ("awaiting_consents", "kz-it-transfer-2013")
    assert [p[:2] for p in pending(view)] == [("it-moj", "decide"), ("kz-gpo", "decide")]
    # KZ–IT lists neither financial obligations nor pending proceedings as grounds
    assert outcomes(view)["financial_obligations"] == outcomes(view)["pending_proceedings"] == "not_applicable"

    await act(handle, TransferWorkflow.record_decision, "it-moj", consent("IT"))
    await act(handle, TransferWorkflow.record_decision, "kz-gpo", consent("KZ"))
    view = await until(lambda: _with_handover(handle), "the handover to be arranged")
    assert view.handover.place == "to be agreed between the central authorities"
    assert [p[:2] for p in pending(view)] == [("it-moj", "confirm_handover")]

    view = await act(handle, TransferWorkflow.confirm_handover, "it-moj",
                     HandoverConfirmation(completed_on=today(), place="Malpensa airport"))
    assert (view.stage, view.outcome) == ("transferred", "transferred")
    assert view.handover.place == "Malpensa airport"


# ---- 2. refusal at intake ----------------------------------------------------------------------

# no_dual_criminality has its own test below: no offence code is simply not criminal in KZ or UZ
# (0209 goes to review in Kazakhstan, insult being still a crime there).
INTAKE_FAILURES = {
    "not_national": dict(person=KZ_CITIZEN),
    "judgment_not_final": dict(judgment=NOT_FINAL),
    "insufficient_remaining_term": dict(sentence=SHORT_SENTENCE),
    "outstanding_financial_obligations": dict(financial_obligations=UNSETTLED),
    "proceedings_pending": dict(pending_proceedings=PENDING),
}


@pytest.mark.parametrize("ground", list(INTAKE_FAILURES))
async def test_one_failed_condition_refuses_at_intake_with_that_ground(dev_client, dev_settings, ground):
    view, handle = await open_case(dev_client, dev_settings, **INTAKE_FAILURES[ground])

    assert (view.stage, view.outcome, view.grounds, view.treaty) == ("refused", "refused", [ground], TREATY)
    assert [c.condition for c in view.eligibility] == CONDITIONS
    failed = CONDITIONS[ALL_GROUNDS.index(ground)]
    assert outcomes(view) == {c: ("failed" if c == failed else "satisfied") for c in CONDITIONS}
    assert all(c.basis for c in view.eligibility)
    assert view.pending_actions == [] and view.decisions == []

    result = await handle.result()
    assert (result.outcome, result.grounds) == ("refused", [ground])


async def test_conduct_not_criminal_in_the_administering_state_refuses_at_intake(dev_client, dev_settings):
    """An FR→GB transfer under ETS 112 for defamation: criminal libel was abolished in England and
    Wales, so dual criminality fails at intake, with that ground alone."""
    request = transfer_request(opening_state="FR", sentencing_state="FR", administering_state="GB",
                               person={**BASE["person"], "citizenships": ["GB"]},
                               judgment={**DEFAMATION, "court": "Tribunal correctionnel de Paris"})
    opening = await open_transfer(dev_client, request, "fr-moj", dev_settings.task_queue)
    assert opening.created
    view, handle = opening.view, transfer_handle(dev_client, request.reference)

    assert (view.stage, view.outcome, view.grounds, view.treaty) == (
        "refused", "refused", ["no_dual_criminality"], "coe-ets-112")
    assert outcomes(view)["dual_criminality"] == "failed"
    assert {c: o for c, o in outcomes(view).items() if c != "dual_criminality"} == {
        "nationality": "satisfied", "final_judgment": "satisfied", "remaining_term": "satisfied",
        "financial_obligations": "not_applicable", "pending_proceedings": "not_applicable"}
    assert (await handle.result()).grounds == ["no_dual_criminality"]


async def test_an_uzbek_defamation_conviction_goes_to_legal_review_in_kazakhstan(dev_client, dev_settings):
    view, _ = await open_case(dev_client, dev_settings, **UZ_TO_KZ, person=KZ_CITIZEN, judgment=DEFAMATION)
    assert (view.stage, view.grounds) == ("awaiting_legal_review", [])
    assert outcomes(view)["dual_criminality"] == "needs_review"


async def test_every_failed_condition_is_reported_at_once_in_condition_order(dev_client, dev_settings):
    """Five conditions fail; the sixth, dual criminality of a 0209 offence in Kazakhstan, needs
    review, which hides none of the failures and sends nothing to review: the case is refused."""
    view, handle = await open_case(
        dev_client, dev_settings, **UZ_TO_KZ, person=UZ_CITIZEN, judgment={**DEFAMATION, "final": False},
        sentence=SHORT_SENTENCE, financial_obligations=UNSETTLED, pending_proceedings=PENDING)

    failing = [g for g in ALL_GROUNDS if g != "no_dual_criminality"]
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", failing)
    assert outcomes(view) == {c: ("needs_review" if c == "dual_criminality" else "failed") for c in CONDITIONS}
    assert list(outcomes(view)) == CONDITIONS
    assert (await handle.result()).grounds == failing


async def test_no_treaty_refuses_at_intake_without_checking_eligibility(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings, administering_state="FR",
                                   person={**BASE["person"], "citizenships": ["FR"]})

    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["no_treaty"])
    assert view.treaty is None and view.eligibility == [] and view.release_date is None
    assert view.pending_actions == []
    result = await handle.result()
    assert (result.outcome, result.grounds) == ("refused", ["no_treaty"])
    assert (dev_settings.archive_dir / "transfer" / f"{view.reference}.json").exists()


# ---- 3. the declaration of intent -------------------------------------------------------------

async def test_a_missing_declaration_is_awaited_from_the_sentencing_prison_service(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings, declaration=None)

    assert (view.stage, view.outcome, view.treaty) == ("awaiting_declaration", None, TREATY)
    assert pending(view) == [("kz-penal", "record_declaration", due(view, "awaiting_declaration", 30))]
    assert view.eligibility == []  # not checked before the declaration

    error = await rejection(handle, TransferWorkflow.record_declaration, "uz-penal", declaration())
    assert error.type == "not_permitted"
    error = await rejection(handle, TransferWorkflow.record_declaration, "kz-penal",
                            declaration(today() + timedelta(days=2)))
    assert error.type == "invalid" and error.details[0] == {"field": "signed_on"}
    assert (await view_of(handle)).stage == "awaiting_declaration"

    view = await act(handle, TransferWorkflow.record_declaration, "kz-penal", declaration())
    assert view.stage == "awaiting_consents"
    assert set(outcomes(view).values()) == {"satisfied"} and list(outcomes(view)) == CONDITIONS
    assert [p[:2] for p in pending(view)] == [("kz-gpo", "decide"), ("uz-gpo", "decide")]
    assert "declaration_recorded" in acts_by(view)["kz-penal"]

    error = await rejection(handle, TransferWorkflow.record_declaration, "kz-penal", declaration())
    assert error.type == "conflict"
    assert (await view_of(handle)).stage == "awaiting_consents"


async def test_the_central_authority_may_record_the_declaration_too(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings, declaration=None)
    view = await act(handle, TransferWorkflow.record_declaration, "kz-gpo", declaration())
    assert view.stage == "awaiting_consents"


# ---- 4. legal review of dual criminality -----------------------------------------------------

async def open_needing_review(client: Client, settings: Settings) -> tuple[TransferView, WorkflowHandle]:
    view, handle = await open_case(client, settings, judgment=UNMAPPED_OFFENCE)
    assert (view.stage, view.outcome) == ("awaiting_legal_review", None)
    assert outcomes(view)["dual_criminality"] == "needs_review"
    assert {c: o for c, o in outcomes(view).items() if c != "dual_criminality"} == {
        c: "satisfied" for c in CONDITIONS if c != "dual_criminality"}
    assert pending(view) == [("uz-gpo", "legal_review", due(view, "awaiting_legal_review", 30))]
    return view, handle


async def test_a_satisfied_legal_review_leads_to_consents(dev_client, dev_settings):
    view, handle = await open_needing_review(dev_client, dev_settings)

    error = await rejection(handle, TransferWorkflow.record_legal_review, "kz-gpo",
                            LegalReview(dual_criminality="satisfied"))
    assert error.type == "not_permitted"
    assert (await view_of(handle)).stage == "awaiting_legal_review"

    view = await act(handle, TransferWorkflow.record_legal_review, "uz-gpo",
                     LegalReview(dual_criminality="satisfied", note="the conduct is theft"))
    assert view.stage == "awaiting_consents"
    assert outcomes(view)["dual_criminality"] == "satisfied"
    assert [p[:2] for p in pending(view)] == [("kz-gpo", "decide"), ("uz-gpo", "decide")]
    assert "legal_review_recorded" in acts_by(view)["uz-gpo"]

    error = await rejection(handle, TransferWorkflow.record_legal_review, "uz-gpo",
                            LegalReview(dual_criminality="not_satisfied"))
    assert error.type == "conflict"


async def test_a_negative_legal_review_refuses_for_no_dual_criminality(dev_client, dev_settings):
    view, handle = await open_needing_review(dev_client, dev_settings)

    view = await act(handle, TransferWorkflow.record_legal_review, "uz-gpo",
                     LegalReview(dual_criminality="not_satisfied"))
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["no_dual_criminality"])
    assert outcomes(view)["dual_criminality"] == "failed"
    assert view.pending_actions == []
    assert (await handle.result()).grounds == ["no_dual_criminality"]


# ---- 5. withdrawal ----------------------------------------------------------------------------

async def test_the_prison_service_withdraws_while_consents_are_awaited(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings)
    assert view.stage == "awaiting_consents"

    error = await rejection(handle, TransferWorkflow.withdraw, "uz-gpo", withdrawal())
    assert error.type == "not_permitted"
    error = await rejection(handle, TransferWorkflow.withdraw, "kz-penal", withdrawal(today() + timedelta(days=2)))
    assert error.type == "invalid" and error.details[0] == {"field": "withdrawn_on"}
    assert (await view_of(handle)).stage == "awaiting_consents"

    view = await act(handle, TransferWorkflow.withdraw, "kz-penal", withdrawal())
    assert (view.stage, view.outcome, view.grounds) == ("withdrawn", "withdrawn", [])
    assert view.pending_actions == []
    assert "withdrawn" in acts_by(view)["kz-penal"]

    # the case is closed: a second withdrawal is a conflict (sent while the run finishes closing)
    await assert_conflict(handle, TransferWorkflow.withdraw, "kz-penal", withdrawal())

    result = await handle.result()
    assert (result.stage, result.outcome) == ("withdrawn", "withdrawn")


async def test_the_central_authority_withdraws_while_the_declaration_is_awaited(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings, declaration=None)
    assert view.stage == "awaiting_declaration"

    view = await act(handle, TransferWorkflow.withdraw, "kz-gpo", withdrawal())
    assert (view.stage, view.outcome, view.grounds) == ("withdrawn", "withdrawn", [])
    assert view.pending_actions == [] and view.eligibility == []
    assert (await handle.result()).outcome == "withdrawn"


# ---- 6. a state's decision ----------------------------------------------------------------------

async def test_a_state_refusal_closes_the_case_with_its_grounds(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings)

    view = await act(handle, TransferWorkflow.record_decision, "uz-gpo",
                     Decision(state="UZ", decision="refuse", grounds=["outstanding_financial_obligations"],
                              note="a civil claim is unpaid"))
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["outstanding_financial_obligations"])
    assert [(d.state, d.decision, d.grounds, d.note, d.authority) for d in view.decisions] == [
        ("UZ", "refuse", ["outstanding_financial_obligations"], "a civil claim is unpaid", "uz-gpo")]
    assert set(outcomes(view).values()) == {"satisfied"}  # eligibility was fine: the state refused
    assert view.pending_actions == []

    await assert_conflict(handle, TransferWorkflow.record_decision, "kz-gpo", consent("KZ"))

    result = await handle.result()
    assert (result.outcome, result.grounds) == ("refused", ["outstanding_financial_obligations"])
    assert [d.state for d in result.decisions] == ["UZ"]


@pytest.mark.parametrize("actor, decision, expected, field", [
    ("uz-gpo", Decision(state="UZ", decision="refuse", grounds=["judgment_not_final"]), "invalid", "grounds"),
    ("uz-gpo", Decision(state="UZ", decision="refuse", grounds=["no_treaty"]), "invalid", "grounds"),
    ("fr-moj", Decision(state="FR", decision="consent"), "invalid", "state"),
    ("kz-gpo", Decision(state="FR", decision="consent"), "invalid", "state"),
    ("kz-gpo", Decision(state="UZ", decision="consent"), "not_permitted", None),
    ("uz-penal", Decision(state="UZ", decision="consent"), "not_permitted", None),
], ids=["ground-not-open", "system-ground", "third-state", "third-state-by-party", "other-state",
        "prison-service"])
async def test_a_decision_that_may_not_be_taken_changes_nothing(dev_client, dev_settings, actor, decision,
                                                                 expected, field):
    view, handle = await open_case(dev_client, dev_settings)

    error = await rejection(handle, TransferWorkflow.record_decision, actor, decision)
    assert error.type == expected
    if field is not None:
        assert error.details[0] == {"field": field}
    if field == "grounds":
        assert "state_declined" in error.message and "proceedings_pending" in error.message  # names what is open

    after = await view_of(handle)
    assert after.stage == "awaiting_consents" and after.decisions == []
    assert pending(after) == pending(view)


async def test_a_state_may_cite_the_grounds_always_open_and_those_of_the_treaty(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings)
    view = await act(handle, TransferWorkflow.record_decision, "kz-gpo",
                     Decision(state="KZ", decision="refuse", grounds=["state_declined", "sovereignty_or_security"]))
    assert (view.stage, view.grounds) == ("refused", ["state_declined", "sovereignty_or_security"])


# ---- 7. one decision per state ----------------------------------------------------------------

async def test_a_second_decision_for_the_same_state_is_a_conflict(dev_client, dev_settings):
    view, handle = await open_case(dev_client, dev_settings)
    view = await act(handle, TransferWorkflow.record_decision, "uz-gpo", consent("UZ"))
    [first] = view.decisions

    error = await rejection(handle, TransferWorkflow.record_decision, "uz-gpo",
                            Decision(state="UZ", decision="refuse", grounds=["state_declined"]))
    assert error.type == "conflict"
    error = await rejection(handle, TransferWorkflow.record_decision, "uz-gpo", consent("UZ"))
    assert error.type == "conflict"

    after = await view_of(handle)
    assert after.stage == "awaiting_consents"
    assert after.decisions == [first]
    assert [p[:2] for p in pending(after)] == [("kz-gpo", "decide")]


# ---- 8. opening is idempotent -----------------------------------------------------------------

async def test_opening_the_same_case_twice_returns_the_existing_case(dev_client, dev_settings):
    request = transfer_request()
    first = await open_transfer(dev_client, request, "kz-gpo", dev_settings.task_queue)
    again = await open_transfer(dev_client, TransferRequest.model_validate(request.model_dump()), "kz-gpo",
                                dev_settings.task_queue)

    assert first.created and not again.created
    assert again.view.reference == first.view.reference and again.view.opened_at == first.view.opened_at
    assert again.view.stage == first.view.stage == "awaiting_consents"
    assert [e.action for e in again.view.events].count("case_opened") == 1


async def test_the_same_reference_with_a_different_request_is_a_conflict(dev_client, dev_settings):
    request = transfer_request()
    await open_transfer(dev_client, request, "kz-gpo", dev_settings.task_queue)
    different = request.model_copy(update={"received_on": date(2026, 11, 19)})
    with pytest.raises(ReferenceTaken):
        await open_transfer(dev_client, different, "kz-gpo", dev_settings.task_queue)


async def test_a_closed_case_is_never_opened_again(dev_client, dev_settings):
    request = transfer_request(person=KZ_CITIZEN)
    first = await open_transfer(dev_client, request, "kz-gpo", dev_settings.task_queue)
    assert first.view.stage == "refused"
    await transfer_handle(dev_client, request.reference).result()
    again = await open_transfer(dev_client, request, "kz-gpo", dev_settings.task_queue)
    assert (again.created, again.view.stage, again.view.opened_at) == (False, "refused", first.view.opened_at)
    with pytest.raises(ReferenceTaken):
        await open_transfer(dev_client, request.model_copy(update={"received_on": date(2026, 11, 19)}), "kz-gpo",
                            dev_settings.task_queue)
    archived = await FileArchive(dev_settings.archive_dir, dev_client.data_converter.payload_codec).read(
        "transfer", request.reference)
    assert archived is not None
    assert datetime.fromisoformat(archived.view["opened_at"]) == first.view.opened_at
    assert archived.request_sha256 == request_digest(request)


# ---- races: of two acts accepted together, the second is a conflict ------------------------------

async def outcome_of(send) -> str:
    try:
        await send
    except WorkflowUpdateFailedError as failed:
        return getattr(failed.cause, "type", "failed")
    return "accepted"


@pytest.mark.parametrize("stage", ["awaiting_legal_review", "awaiting_declaration"])
async def test_two_legal_reviews_or_declarations_sent_at_once_record_one(dev_client, dev_settings, stage):
    """Two acts sent together may both pass their validators before either handler runs (the
    fuzz sequences met two legal reviews that both succeeded, the second overwriting the first):
    each handler checks again, so exactly one is recorded and the other is a conflict."""
    for _ in range(6):
        if stage == "awaiting_legal_review":
            view, handle = await open_case(dev_client, dev_settings, judgment=UNMAPPED_OFFENCE)
            acts = [(TransferWorkflow.record_legal_review, "uz-gpo", LegalReview(dual_criminality=d))
                    for d in ("satisfied", "not_satisfied")]
        else:
            view, handle = await open_case(dev_client, dev_settings, declaration=None)
            acts = [(TransferWorkflow.record_declaration, by, declaration()) for by in ("kz-penal", "kz-gpo")]
        assert view.stage == stage
        outcomes_ = await asyncio.gather(*(outcome_of(handle.execute_update(u, args=[by, body]))
                                           for u, by, body in acts))
        assert sorted(outcomes_) == ["accepted", "conflict"], outcomes_
        recorded = [e for e in (await view_of(handle)).events
                    if e.action in ("legal_review_recorded", "declaration_recorded")]
        assert len(recorded) == 1, recorded
        if (await view_of(handle)).stage not in ("refused", "withdrawn"):
            await act(handle, TransferWorkflow.withdraw, "kz-gpo", withdrawal())
