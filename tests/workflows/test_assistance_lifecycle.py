"""Whole requests for mutual legal assistance on the session's local dev server, with a real
worker and the real activities: opened through update-with-start as the API does, moved by the
authorities' acts on the request and on its measures' own workflows, and checked the way a user
sees a request (stage, outcome, grounds, measures, results, pending actions, the archive and the
visibility store)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from domain.assistance import (
    AssistanceView, AssistanceWithdrawal, Authorisation, InformationAnswer, MeasureResult, MeasureView, Review,
)
from stores.archive import FileArchive
from tests import support
from tests.workflows import assert_conflict
from treatyflow.cases import act as act_on, assistance_handle, measure_handle, open_assistance
from treatyflow.config import Settings
from treatyflow.samples import assistance_request
from workflows import search_attributes as sa
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MEASURE_KIND, MeasureWorkflow
from worker import create_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREATY = "kz-fr-mla-2021"
ROUTED = {"m1": "kz-afm", "m2": "kz-police", "m3": "kz-police"}
DEFAMATION = [{"article": "226", "iccs": "0209", "description": "Diffamation"}]
UNRESOLVED = [{"article": "999-9", "description": "an offence without ICCS code"}]  # FR has no article table
SEARCH_ONLY = [{"id": "s1", "kind": "search", "description": "Search of the office", "subject": "an office"}]


def today() -> date:
    return datetime.now(timezone.utc).date()


async def open_request(client: Client, settings: Settings, **changes: Any) -> tuple[AssistanceView, WorkflowHandle]:
    request = assistance_request(**changes)
    opening = await open_assistance(client, request, "fr-moj", settings.task_queue)
    assert opening.created
    return opening.view, assistance_handle(client, request.reference)


async def view_of(handle: WorkflowHandle) -> AssistanceView:
    return await handle.query(AssistanceWorkflow.view)


async def act(handle: WorkflowHandle, update, actor: str, body) -> Any:
    """The act, then the view of what it acted on: the request, or one of its measures."""
    view = MeasureWorkflow.view if handle.id.count(":") == 2 else AssistanceWorkflow.view
    return await act_on(handle, update, actor, body, view)


async def rejection(handle: WorkflowHandle, update, actor: str, body) -> ApplicationError:
    """The act is rejected by the workflow's validator: the reason, as the client receives it."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, args=[actor, body])
    assert isinstance(failed.value.cause, ApplicationError), failed.value.cause
    return failed.value.cause


until = partial(support.until, seconds=10.0)  # what these requests do is done within 10 s


async def measures_in(handle: WorkflowHandle, **stages: str) -> AssistanceView:
    """Wait until the request's view shows the measures in these stages (it learns them by signal)."""
    async def probe():
        view = await view_of(handle)
        return view if all(m.stage == stages[m.id] for m in view.measures if m.id in stages) else None
    return await until(probe, f"measures in stages {stages}")


def stages(view: AssistanceView) -> dict[str, str]:
    return {m.id: m.stage for m in view.measures}


def executed(*items: tuple[str, str]) -> MeasureResult:
    return MeasureResult(outcome="executed", note="done", evidence=[
        {"item_id": item_id, "description": description, "sha256": hashlib.sha256(description.encode()).hexdigest().upper(),
         "collected_on": today()} for item_id, description in items])


NOT_EXECUTED = MeasureResult(outcome="not_executed", note="the person could not be found")
ACCEPT = Review(decision="accept", note="in order")


async def accept(handle: WorkflowHandle, review: Review = ACCEPT) -> AssistanceView:
    """Accept, then wait until every permitted measure's workflow has started and reported its
    first stage: the measures start after the request entered ``executing``."""
    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo", review)
    assert view.stage == "executing"

    async def started():
        v = await view_of(handle)
        return v if all(m.stage != "pending" for m in v.measures) else None
    return await until(started, "the measures to start")


async def authorise(client: Client, ref: str, measure_id: str, granted: bool, actor: str = "kz-court") -> MeasureView:
    return await act(measure_handle(client, ref, measure_id), MeasureWorkflow.authorise, actor,
                     Authorisation(granted=granted, note="reasoned order"))


async def report(client: Client, ref: str, measure_id: str, result: MeasureResult,
                 actor: str | None = None) -> MeasureView:
    return await act(measure_handle(client, ref, measure_id), MeasureWorkflow.report_result,
                     actor or ROUTED[measure_id], result)


def manifest_digest(items: list[dict]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


# ---- 1. outcomes after execution ----------------------------------------------------------------

async def test_a_complete_request_is_completed_with_its_evidence_manifest(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    assert (view.stage, view.outcome, view.grounds, view.treaty) == ("under_review", None, [], TREATY)
    assert {m.id: (m.stage, m.assigned_to, m.court, m.dual_criminality) for m in view.measures} == {
        "m1": ("pending", "kz-afm", None, "not_applicable"),
        "m2": ("pending", "kz-police", "kz-court", "satisfied"),
        "m3": ("pending", "kz-police", None, "not_applicable"),
    }
    assert [(p.authority, p.action, p.measure_id) for p in view.pending_actions] == [
        ("kz-gpo", "review_request", None)]

    await accept(handle)
    view = await measures_in(handle, m1="executing", m2="awaiting_authorisation", m3="executing")
    assert sorted((p.authority, p.action, p.measure_id) for p in view.pending_actions) == [
        ("kz-afm", "report_result", "m1"), ("kz-court", "authorise_measure", "m2"),
        ("kz-police", "report_result", "m3")]

    m2 = await authorise(dev_client, ref, "m2", granted=True)
    assert m2.stage == "executing"
    assert [(p.authority, p.action) for p in m2.pending_actions] == [("kz-police", "report_result")]

    done = await report(dev_client, ref, "m3", executed(("hearing", "Минутка допроса — procès-verbal")))
    assert done.stage == "executed" and done.evidence[0].sha256 == done.evidence[0].sha256.lower()
    await report(dev_client, ref, "m2", executed(("photo-2", "Photographs of the office"),
                                                  ("photo-1", "Ledger found in the office")))
    await report(dev_client, ref, "m1", executed(("statement", "Account statements 2024–2026")))

    result = await handle.result()
    assert (result.stage, result.outcome, result.grounds) == ("completed", "completed", [])
    assert stages(result) == {"m1": "executed", "m2": "executed", "m3": "executed"}
    assert result.pending_actions == [] and not result.overdue
    assert result.results is not None
    items = [i.model_dump(mode="json") for i in result.results.items]
    assert [(i["measure_id"], i["item_id"]) for i in items] == [
        ("m1", "statement"), ("m2", "photo-1"), ("m2", "photo-2"), ("m3", "hearing")]
    assert result.results.manifest_sha256 == manifest_digest(items)
    evidence = {(m.id, e.item_id): e for m in result.measures for e in m.evidence}
    assert all(evidence[(i["measure_id"], i["item_id"])].sha256 == i["sha256"] for i in items)

    assert (dev_settings.archive_dir / "assistance" / f"{ref}.json").exists()
    archived = await FileArchive(dev_settings.archive_dir, dev_client.data_converter.payload_codec).read("assistance", ref)
    assert archived is not None and (archived.kind, archived.reference) == ("assistance", ref)
    assert archived.view["outcome"] == "completed"
    assert archived.view["results"]["manifest_sha256"] == result.results.manifest_sha256

    actions = [e.action for e in result.events]
    assert "manifest_built" in actions and "case_closed" in actions
    assert (await handle.describe()).typed_search_attributes.get(sa.CASE_OUTCOME) == "completed"


async def test_one_measure_not_executed_makes_the_request_partially_completed(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    await accept(handle)
    await authorise(dev_client, ref, "m2", granted=True)
    await report(dev_client, ref, "m1", executed(("e1", "Account statements")))
    await report(dev_client, ref, "m2", NOT_EXECUTED)
    await report(dev_client, ref, "m3", executed(("e1", "Hearing record")))

    result = await handle.result()
    assert (result.stage, result.outcome, result.grounds) == ("partially_completed", "partially_completed", [])
    assert stages(result) == {"m1": "executed", "m2": "not_executed", "m3": "executed"}
    assert [(i.measure_id, i.item_id) for i in result.results.items] == [("m1", "e1"), ("m3", "e1")]
    assert result.results.manifest_sha256 == manifest_digest(
        [i.model_dump(mode="json") for i in result.results.items])


async def test_a_denied_search_and_nothing_executed_make_the_request_unsuccessful(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    await accept(handle)
    m2 = await authorise(dev_client, ref, "m2", granted=False)
    assert m2.stage == "denied" and m2.pending_actions == []
    await report(dev_client, ref, "m1", NOT_EXECUTED)
    await report(dev_client, ref, "m3", NOT_EXECUTED)

    result = await handle.result()
    assert (result.stage, result.outcome, result.grounds) == ("unsuccessful", "unsuccessful", [])
    assert stages(result) == {"m1": "not_executed", "m2": "denied", "m3": "not_executed"}
    assert result.results is not None and result.results.items == []
    assert result.results.manifest_sha256 == hashlib.sha256(b"[]").hexdigest()


# ---- 2. refusal ---------------------------------------------------------------------------------

async def test_the_requested_state_refuses_on_a_ground_the_treaty_lists(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)

    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo",
                            Review(decision="refuse", grounds=["political_offence"]))
    assert error.type == "invalid" and error.details[0] == {"field": "grounds"}
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo",
                            Review(decision="refuse", grounds=["not_covered_by_treaty"]))
    assert error.type == "invalid" and error.details[0] == {"field": "grounds"}
    assert (await view_of(handle)).stage == "under_review"

    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo",
                     Review(decision="refuse", grounds=["discrimination"], note="purpose is discriminatory"))
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["discrimination"])
    assert view.pending_actions == [] and view.results is None
    result = await handle.result()
    assert (result.outcome, result.grounds) == ("refused", ["discrimination"])
    assert (dev_settings.archive_dir / "assistance" / f"{view.reference}.json").exists()


# KZ and UZ now share the CIS legal-assistance conventions; France and Uzbekistan share no treaty.
@pytest.mark.parametrize("states", [("UZ", "FR"), ("FR", "UZ")], ids=["UZ-to-FR", "FR-to-UZ"])
async def test_without_a_treaty_the_request_is_refused_at_intake(dev_client, dev_settings, states):
    request = assistance_request(requesting_state=states[0], requested_state=states[1])
    opened_by = {"UZ": "uz-gpo", "FR": "fr-moj"}[states[0]]
    opening = await open_assistance(dev_client, request, opened_by, dev_settings.task_queue)
    view = opening.view
    assert (view.stage, view.outcome, view.grounds, view.treaty) == ("refused", "refused", ["no_treaty"], None)
    assert view.pending_actions == []
    result = await assistance_handle(dev_client, request.reference).result()
    assert (result.outcome, result.grounds) == ("refused", ["no_treaty"])


async def test_when_no_measure_is_permitted_the_request_is_refused_at_intake(dev_client, dev_settings):
    """A Kazakh search in the United Kingdom for defamation, which is not criminal there (in KZ,
    0209 would go to review: insult is still a crime)."""
    request = assistance_request(requesting_state="KZ", requested_state="GB", offences=DEFAMATION,
                                 measures=SEARCH_ONLY)
    opening = await open_assistance(dev_client, request, "kz-gpo", dev_settings.task_queue)
    assert opening.created
    view, handle = opening.view, assistance_handle(dev_client, request.reference)
    assert view.treaty == "kz-gb-mla-2015"
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["no_dual_criminality"])
    assert [(m.id, m.stage, m.grounds, m.dual_criminality) for m in view.measures] == [
        ("s1", "not_permitted", ["no_dual_criminality"], "failed")]
    assert view.pending_actions == []
    assert (await handle.result()).grounds == ["no_dual_criminality"]


async def test_a_doubtful_search_is_settled_by_the_reviewer(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings, offences=UNRESOLVED)
    assert view.stage == "under_review"
    m2 = next(m for m in view.measures if m.id == "m2")
    assert (m2.stage, m2.dual_criminality, m2.court) == ("pending", "needs_review", "kz-court")

    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo", Review(decision="accept"))
    assert error.type == "invalid" and error.details[0] == {"field": "dual_criminality"}
    assert (await view_of(handle)).stage == "under_review"

    await accept(handle, Review(decision="accept", dual_criminality="not_satisfied"))
    view = await measures_in(handle, m1="executing", m2="not_permitted", m3="executing")
    m2 = next(m for m in view.measures if m.id == "m2")
    assert (m2.grounds, m2.dual_criminality, m2.court) == (["no_dual_criminality"], "failed", None)
    assert sorted((p.authority, p.measure_id) for p in view.pending_actions) == [("kz-afm", "m1"), ("kz-police", "m3")]

    await report(dev_client, view.reference, "m1", executed(("e1", "Account statements")))
    await report(dev_client, view.reference, "m3", executed(("e1", "Hearing record")))
    result = await handle.result()
    assert result.outcome == "completed"  # the search, not permitted, is not counted


async def test_a_doubtful_search_alone_declined_by_the_reviewer_refuses_the_request(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings, offences=UNRESOLVED, measures=SEARCH_ONLY)
    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo",
                     Review(decision="accept", dual_criminality="not_satisfied"))
    assert (view.stage, view.outcome, view.grounds) == ("refused", "refused", ["no_dual_criminality"])


# ---- 3. withdrawal, information, permissions ----------------------------------------------------

async def test_a_withdrawal_during_execution_cancels_the_open_measures(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    await accept(handle)
    await report(dev_client, ref, "m1", executed(("e1", "Account statements")))
    await measures_in(handle, m1="executed", m2="awaiting_authorisation", m3="executing")

    error = await rejection(handle, AssistanceWorkflow.withdraw, "kz-gpo", AssistanceWithdrawal(reason="x"))
    assert error.type == "not_permitted"

    view = await act(handle, AssistanceWorkflow.withdraw, "fr-moj",
                     AssistanceWithdrawal(reason="the investigation was closed"))
    assert (view.stage, view.outcome, view.grounds) == ("withdrawn", "withdrawn", [])
    assert stages(view) == {"m1": "executed", "m2": "cancelled", "m3": "cancelled"}
    assert view.pending_actions == [] and view.results is None
    result = await handle.result()
    assert stages(result) == {"m1": "executed", "m2": "cancelled", "m3": "cancelled"}
    for measure_id, stage in (("m2", "cancelled"), ("m3", "cancelled")):
        assert (await measure_handle(dev_client, ref, measure_id).result()).stage == stage


async def test_a_withdrawal_under_review_cancels_every_measure(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    view = await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="no longer needed"))
    assert (view.stage, view.outcome) == ("withdrawn", "withdrawn")
    assert set(stages(view).values()) == {"cancelled"}
    await assert_conflict(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="again"))


async def test_the_requesting_state_answers_questions_and_the_review_resumes(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)

    error = await rejection(handle, AssistanceWorkflow.record_information, "fr-moj", InformationAnswer(answers="a"))
    assert error.type == "conflict"

    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo",
                     Review(decision="request_information", questions="Which bank accounts?"))
    assert (view.stage, view.questions) == ("awaiting_information", "Which bank accounts?")
    assert [(p.authority, p.action) for p in view.pending_actions] == [("fr-moj", "answer_information")]

    error = await rejection(handle, AssistanceWorkflow.record_information, "kz-gpo", InformationAnswer(answers="a"))
    assert error.type == "not_permitted"
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo", ACCEPT)
    assert error.type == "conflict"

    view = await act(handle, AssistanceWorkflow.record_information, "fr-moj",
                     InformationAnswer(answers="Accounts at two banks in Almaty"))
    assert view.stage == "under_review" and view.questions is None
    assert [(p.authority, p.action) for p in view.pending_actions] == [("kz-gpo", "review_request")]

    await accept(handle)
    assert [e.action for e in (await view_of(handle)).events if e.actor != "system"] == [
        "case_opened", "review_request_information", "information_answered", "review_accept"]
    await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="cleanup"))


async def test_only_the_competent_authorities_act_on_a_request_and_its_measures(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference

    error = await rejection(handle, AssistanceWorkflow.record_review, "fr-moj", ACCEPT)
    assert error.type == "not_permitted"
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-police", ACCEPT)
    assert error.type == "not_permitted"
    await accept(handle)
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo", ACCEPT)
    assert error.type == "conflict"

    m2 = measure_handle(dev_client, ref, "m2")
    m1 = measure_handle(dev_client, ref, "m1")
    error = await rejection(m2, MeasureWorkflow.authorise, "kz-police", Authorisation(granted=True))
    assert error.type == "not_permitted"
    error = await rejection(m2, MeasureWorkflow.authorise, "kz-gpo", Authorisation(granted=True))
    assert error.type == "not_permitted"
    error = await rejection(m2, MeasureWorkflow.report_result, "kz-police", executed(("e1", "too early")))
    assert error.type == "conflict"
    error = await rejection(m1, MeasureWorkflow.authorise, "kz-court", Authorisation(granted=True))
    assert error.type == "conflict"  # m1 is not coercive: it is never awaiting authorisation

    await authorise(dev_client, ref, "m2", granted=True)
    error = await rejection(m2, MeasureWorkflow.authorise, "kz-court", Authorisation(granted=False))
    assert error.type == "conflict"
    error = await rejection(m2, MeasureWorkflow.report_result, "kz-afm", executed(("e1", "not mine")))
    assert error.type == "not_permitted"
    error = await rejection(m1, MeasureWorkflow.report_result, "fr-moj", executed(("e1", "not mine")))
    assert error.type == "not_permitted"

    # the requested state's central authority may report any measure's result
    done = await report(dev_client, ref, "m2", executed(("e1", "Ledger")), actor="kz-gpo")
    assert done.stage == "executed"
    await assert_conflict(m2, MeasureWorkflow.report_result, "kz-police", executed(("e2", "a second result")))
    await report(dev_client, ref, "m1", NOT_EXECUTED, actor="kz-gpo")
    await report(dev_client, ref, "m3", executed(("e1", "Hearing record")))
    result = await handle.result()
    assert result.outcome == "partially_completed"
    assert [e.evidence[0].description for e in result.measures if e.id == "m2"] == ["Ledger"]


async def test_a_postponed_request_can_be_withdrawn_but_not_reviewed(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo",
                            Review(decision="postpone", postpone_until=today(), note="proceedings under way"))
    assert error.type == "invalid" and error.details[0] == {"field": "postpone_until"}

    later = today() + timedelta(days=20)
    view = await act(handle, AssistanceWorkflow.record_review, "kz-gpo",
                     Review(decision="postpone", postpone_until=later, note="proceedings under way"))
    assert (view.stage, view.postponed_until, view.pending_actions) == ("postponed", later, [])
    error = await rejection(handle, AssistanceWorkflow.record_review, "kz-gpo", ACCEPT)
    assert error.type == "conflict"

    view = await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="no longer needed"))
    assert (view.stage, view.outcome) == ("withdrawn", "withdrawn")
    assert set(stages(view).values()) == {"cancelled"}


@pytest.mark.parametrize("act_name", ["report_result", "authorise"])
async def test_two_acts_on_a_measure_at_once_one_is_a_conflict(dev_client, tmp_path, act_name):
    """Both acts are sent while no worker runs, so the workflow receives them in one task."""
    s = Settings(task_queue=f"together-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")
    async with create_worker(dev_client, s):
        view, handle = await open_request(dev_client, s)
        await accept(handle)
    if act_name == "report_result":
        measure, update = measure_handle(dev_client, view.reference, "m1"), MeasureWorkflow.report_result
        acts = [("kz-afm", executed(("first", "the first result"))), ("kz-gpo", NOT_EXECUTED)]
    else:
        measure, update = measure_handle(dev_client, view.reference, "m2"), MeasureWorkflow.authorise
        acts = [("kz-court", Authorisation(granted=True)), ("kz-court", Authorisation(granted=False))]
    both = asyncio.gather(*(measure.execute_update(update, args=[actor, body]) for actor, body in acts),
                          return_exceptions=True)
    await asyncio.sleep(0.3)
    async with create_worker(dev_client, s):
        answers = await both
        accepted = [a for a in answers if not isinstance(a, BaseException)]
        refused = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
        await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="cleanup"))
    assert len(accepted) == 1 and len(refused) == 1, answers
    assert refused[0].cause.type == "conflict"


# ---- 4. the visibility store ------------------------------------------------------------------

async def test_search_attributes_of_the_request_and_of_a_measure(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.CASE_KIND) == "assistance"
    assert attrs.get(sa.CASE_STAGE) == "under_review"
    assert attrs.get(sa.TREATY_ID) == TREATY
    assert attrs.get(sa.CASE_STATES) == ["FR", "KZ"]
    assert attrs.get(sa.AWAITING_AUTHORITIES) == ["kz-gpo"]

    await accept(handle)
    m2 = measure_handle(dev_client, ref, "m2")
    assert m2.id == f"assistance:{ref}:m2"

    async def awaiting_court():
        try:
            a = (await m2.describe()).typed_search_attributes
        except RPCError:
            return None
        return a if a.get(sa.AWAITING_AUTHORITIES) == ["kz-court"] else None

    attrs = await until(awaiting_court, "the measure to await the court")
    assert attrs.get(sa.CASE_KIND) == MEASURE_KIND == "assistance_measure"
    assert attrs.get(sa.CASE_STAGE) == "awaiting_authorisation"
    assert attrs.get(sa.ACTION_DUE_AT) is not None

    query = f"AwaitingAuthorities = 'kz-court' AND CaseKind = 'assistance_measure' AND WorkflowId = '{m2.id}'"

    async def listed():
        return [w.id async for w in dev_client.list_workflows(query)]

    assert await until(listed, "the measure in the visibility store") == [m2.id]
    await act(handle, AssistanceWorkflow.withdraw, "fr-moj", AssistanceWithdrawal(reason="cleanup"))


# ---- 5. the audit trail -----------------------------------------------------------------------

async def test_the_audit_trail_shows_who_authorised_and_who_reported(dev_client, dev_settings):
    view, handle = await open_request(dev_client, dev_settings)
    ref = view.reference
    await accept(handle)
    await authorise(dev_client, ref, "m2", granted=True)
    await report(dev_client, ref, "m1", executed(("e1", "Account statements")))
    await report(dev_client, ref, "m2", executed(("e1", "Ledger")))
    await report(dev_client, ref, "m3", NOT_EXECUTED)
    result = await handle.result()
    acts = {(e.actor, e.action) for e in result.events}
    assert ("kz-court", "authorisation_granted") in acts
    assert {("kz-afm", "result_executed"), ("kz-police", "result_executed"),
            ("kz-police", "result_not_executed")} <= acts
