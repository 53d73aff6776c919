"""Every deadline of a request for mutual legal assistance, on the time-skipping test server with a
real worker and the real activities: postponement, the information deadline, review reminders
and escalation (halved when urgent), court authorisation and execution of measures."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta, timezone
from functools import partial
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.assistance import AssistanceView, Authorisation, Review
from domain.case import Notice, RequestSeal
from domain.transfer import request_digest
from tests import support
from treatyflow.cases import act, measure_handle
from treatyflow.config import Settings
from treatyflow.samples import assistance_request
from worker import create_worker
from workflows.assistance import AssistanceWorkflow, OpenAssistance, assistance_workflow_id
from workflows.measure import MeasureWorkflow

DAY = timedelta(days=1)
ACCEPT = Review(decision="accept")


def settings(tmp_path: Path) -> Settings:
    return Settings(task_queue=f"mla-deadlines-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")


async def start(env: WorkflowEnvironment, s: Settings, **changes) -> WorkflowHandle:
    request = assistance_request(**changes)
    handle = await env.client.start_workflow(
        AssistanceWorkflow.run, OpenAssistance(request=request, opened_by="fr-moj"),
        id=assistance_workflow_id(request.reference), task_queue=s.task_queue)
    opening = await handle.execute_update(AssistanceWorkflow.opened, RequestSeal(request_sha256=request_digest(request)))
    assert opening.created and opening.view.stage == "under_review"
    return handle


async def view_of(handle: WorkflowHandle) -> AssistanceView:
    return await handle.query(AssistanceWorkflow.view)


async def review(handle: WorkflowHandle, body: Review) -> AssistanceView:
    return await act(handle, AssistanceWorkflow.record_review, "kz-gpo", body, AssistanceWorkflow.view)


def notices(view: AssistanceView, event: str) -> list:
    return [e for e in view.events if e.action == f"notice_{event}"]


def entered(view: AssistanceView, stage: str) -> datetime:
    """When the request last entered ``stage`` (workflow time); a request opens under review."""
    times = [e.at for e in view.events if e.action == "stage_entered" and e.detail == stage]
    if not times and stage == "under_review":
        times = [view.opened_at]
    assert times, f"the request never entered {stage}"
    return times[-1]


def days_between(start: datetime, at: datetime) -> float:
    return (at - start) / DAY


def pending(view: AssistanceView) -> list[tuple]:
    return sorted((p.authority, p.action, p.measure_id or "", p.due_on, p.overdue) for p in view.pending_actions)


until = partial(support.until, seconds=5.0)  # the request learns its measures by signal, within 5 s


async def measure_notices(client: Client, reference: str, measure_id: str, event: str) -> list[Notice]:
    """The notices a measure's workflow sent (it keeps its own audit trail, which the request's
    view does not show): read from its history, as the notify activity received them."""
    history = await measure_handle(client, reference, measure_id).fetch_history()
    found = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "notify":
                [notice] = await client.data_converter.decode(list(attrs.input.payloads), [Notice])
                if notice.event == event:
                    found.append(notice)
    return found


async def executing_with_measures(handle: WorkflowHandle) -> AssistanceView:
    """After accept: wait until the request's view shows every measure's pending action."""
    async def ready():
        view = await view_of(handle)
        return view if view.stage == "executing" and len(view.pending_actions) == 3 else None
    return await until(ready, "the measures' pending actions in the request's view")


async def executing_until(env: WorkflowEnvironment, s: Settings, days: int) -> tuple[WorkflowHandle, AssistanceView]:
    """A request received today with ``respond_by`` in ``days``, accepted: its measures executing."""
    handle = await start(env, s, received_on=None,
                         respond_by=(datetime.now(timezone.utc).date() + days * DAY).isoformat())
    await review(handle, ACCEPT)
    return handle, await executing_with_measures(handle)


# ---- postponement -------------------------------------------------------------------------------

async def test_a_postponed_request_returns_to_review_on_the_date(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s)
        view = await view_of(handle)
        until_date = view.events[-1].at.date() + 10 * DAY
        view = await review(handle, Review(decision="postpone", postpone_until=until_date,
                                           note="domestic proceedings under way"))
        assert (view.stage, view.postponed_until, view.outcome) == ("postponed", until_date, None)
        assert view.pending_actions == [] and not view.overdue

        await skipping_env.sleep(9 * DAY)
        view = await view_of(handle)
        assert (view.stage, view.postponed_until) == ("postponed", until_date)
        assert view.pending_actions == []

        await skipping_env.sleep(2 * DAY)
        view = await view_of(handle)
        assert view.stage == "under_review" and view.postponed_until is None
        back = entered(view, "under_review")
        midnight = datetime.combine(until_date, datetime.min.time(), tzinfo=timezone.utc)
        assert timedelta(0) <= back - midnight < timedelta(minutes=1)  # at the start of that day
        assert pending(view) == [("kz-gpo", "review_request", "", (back + 30 * DAY).date(), False)]
        assert [e.detail for e in view.events if e.action == "postponement_ended"] == [str(until_date)]
        # a fresh review request was sent to the requested state's central authority
        assert [n.detail for n in notices(view, "action_requested")] == ["to kz-gpo: review_request"] * 2


# ---- additional information -----------------------------------------------------------------

async def test_unanswered_questions_expire_the_request_after_60_days_with_a_reminder_on_day_53(
        skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s)
        view = await review(handle, Review(decision="request_information", questions="Which accounts?"))
        assert (view.stage, view.questions) == ("awaiting_information", "Which accounts?")
        asked = entered(view, "awaiting_information")
        assert pending(view) == [("fr-moj", "answer_information", "", (asked + 60 * DAY).date(), False)]

        await skipping_env.sleep(52 * DAY)
        view = await view_of(handle)
        assert notices(view, "reminder") == [] and view.stage == "awaiting_information"

        await skipping_env.sleep(2 * DAY)
        view = await view_of(handle)
        [reminder] = notices(view, "reminder")
        assert reminder.detail == "to fr-moj: answer_information"
        assert 53 <= days_between(asked, reminder.at) < 53.01
        assert view.stage == "awaiting_information"

        result = await handle.result()  # time skips to the deadline
        assert (result.stage, result.outcome, result.grounds) == ("expired", "expired", ["no_information"])
        closed = next(e for e in result.events if e.action == "case_closed")
        assert 60 <= days_between(asked, closed.at) < 60.01
        assert result.pending_actions == [] and not result.overdue
        assert (s.archive_dir / "assistance" / f"{result.reference}.json").exists()


# ---- review: reminder and escalation ------------------------------------------------------------

@pytest.mark.parametrize("urgent, days", [(False, 30), (True, 15)], ids=["normal", "urgent"])
async def test_an_overdue_review_is_escalated_and_the_request_keeps_waiting(skipping_env, tmp_path, urgent, days):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s, urgent=urgent)
        view = await view_of(handle)
        opened = entered(view, "under_review")
        assert pending(view) == [("kz-gpo", "review_request", "", (opened + days * DAY).date(), False)]

        await skipping_env.sleep((days - 8) * DAY)
        view = await view_of(handle)
        assert notices(view, "reminder") == []

        await skipping_env.sleep(2 * DAY)
        view = await view_of(handle)
        [reminder] = notices(view, "reminder")
        assert reminder.detail == "to kz-gpo: review_request"
        assert days - 7 <= days_between(opened, reminder.at) < days - 7 + 0.01
        assert not view.overdue and notices(view, "escalation") == []

        await skipping_env.sleep(7 * DAY)
        view = await view_of(handle)
        assert view.stage == "under_review" and view.outcome is None  # no terminal consequence
        assert view.overdue and [p.overdue for p in view.pending_actions] == [True]
        [passed] = [e for e in view.events if e.action == "deadline_passed"]
        assert passed.detail == "kz-gpo: review_request"
        assert days <= days_between(opened, passed.at) < days + 0.01
        assert [n.detail for n in notices(view, "escalation")] == ["to kz-gpo"]

        # the late review is still taken
        view = await review(handle, Review(decision="refuse", grounds=["discrimination"]))
        assert (view.stage, view.grounds, view.overdue) == ("refused", ["discrimination"], False)


# ---- measures: court authorisation and execution ------------------------------------------------

async def test_measures_are_reminded_and_escalated_on_their_own_deadlines(skipping_env, tmp_path):
    s = settings(tmp_path)
    client = skipping_env.client
    async with create_worker(client, s):
        handle = await start(skipping_env, s)
        await review(handle, ACCEPT)
        view = await executing_with_measures(handle)
        ref = view.reference
        started = entered(view, "executing")
        execution_due, authorisation_due = (started + 90 * DAY).date(), (started + 30 * DAY).date()
        assert pending(view) == [("kz-afm", "report_result", "m1", execution_due, False),
                                 ("kz-court", "authorise_measure", "m2", authorisation_due, False),
                                 ("kz-police", "report_result", "m3", execution_due, False)]
        assert {m.id: m.stage for m in view.measures} == {
            "m1": "executing", "m2": "awaiting_authorisation", "m3": "executing"}

        # court authorisation: 30 days, reminder on day 23
        await skipping_env.sleep(22 * DAY)
        assert await measure_notices(client, ref, "m2", "reminder") == []
        await skipping_env.sleep(2 * DAY)
        [reminder] = await measure_notices(client, ref, "m2", "reminder")
        assert (reminder.recipient, reminder.action, reminder.measure_id) == ("kz-court", "authorise_measure", "m2")
        assert 23 <= days_between(started, reminder.at) < 23.01
        await measure_handle(client, ref, "m2").execute_update(MeasureWorkflow.authorise,
                                                                  args=["kz-court", Authorisation(granted=True)])

        # execution: 90 days from the start of execution (no respond_by), reminder on day 83
        await skipping_env.sleep(58 * DAY)  # day 82
        assert await measure_notices(client, ref, "m1", "reminder") == []
        await skipping_env.sleep(2 * DAY)  # day 84
        [reminder] = await measure_notices(client, ref, "m1", "reminder")
        assert (reminder.recipient, reminder.action, reminder.measure_id) == ("kz-afm", "report_result", "m1")
        assert 83 <= days_between(started, reminder.at) < 83.01
        view = await view_of(handle)
        assert not view.overdue and await measure_notices(client, ref, "m1", "escalation") == []

        await skipping_env.sleep(7 * DAY)  # day 91

        async def overdue():
            v = await view_of(handle)
            return v if v.overdue and any(p.overdue for p in v.pending_actions if p.measure_id == "m1") else None

        view = await until(overdue, "the request to show m1 overdue")
        by_measure = {p.measure_id: p for p in view.pending_actions}
        assert (by_measure["m1"].authority, by_measure["m1"].action, by_measure["m1"].overdue) == (
            "kz-afm", "report_result", True)
        assert by_measure["m2"].overdue is False  # its execution started on day 24
        assert view.stage == "executing"
        [escalation] = await measure_notices(client, ref, "m1", "escalation")
        assert escalation.recipient == "kz-gpo"
        assert 90 <= days_between(started, escalation.at) < 90.01


async def test_an_urgent_request_halves_the_execution_deadline_but_not_the_court_s(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle = await start(skipping_env, s, urgent=True)
        await review(handle, ACCEPT)
        view = await executing_with_measures(handle)
        started = entered(view, "executing")
        assert pending(view) == [("kz-afm", "report_result", "m1", (started + 45 * DAY).date(), False),
                                 ("kz-court", "authorise_measure", "m2", (started + 30 * DAY).date(), False),
                                 ("kz-police", "report_result", "m3", (started + 45 * DAY).date(), False)]


async def test_execution_runs_until_respond_by(skipping_env, tmp_path):
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle, view = await executing_until(skipping_env, s, days=60)
        respond_by = view.respond_by
        assert respond_by is not None
        assert {p.measure_id: p.due_on for p in view.pending_actions if p.action == "report_result"} == {
            "m1": respond_by, "m3": respond_by}


async def test_a_measure_is_due_all_day_on_respond_by_and_overdue_from_the_next(skipping_env, tmp_path):
    """A deadline given as a date ends at the end of that day (UTC): at noon on respond_by the
    measures are not overdue, a minute after midnight they are (and the central authority is told)."""
    s = settings(tmp_path)
    async with create_worker(skipping_env.client, s):
        handle, view = await executing_until(skipping_env, s, days=20)
        assert view.respond_by is not None
        noon = datetime.combine(view.respond_by, time(12), tzinfo=timezone.utc)
        await skipping_env.sleep(noon - await skipping_env.get_current_time())

        view = await view_of(handle)
        results = [p for p in view.pending_actions if p.action == "report_result"]
        assert [(p.due_on, p.overdue) for p in results] == [(view.respond_by, False)] * 2, pending(view)
        assert not view.overdue

        await skipping_env.sleep(12 * timedelta(hours=1) + timedelta(minutes=1))

        async def overdue():
            v = await view_of(handle)
            late = [p.measure_id for p in v.pending_actions if p.action == "report_result" and p.overdue]
            return v if sorted(late) == ["m1", "m3"] else None

        view = await until(overdue, "m1 and m3 to be overdue the day after respond_by")
        assert view.overdue


async def test_a_close_respond_by_sends_the_execution_reminder_at_once(skipping_env, tmp_path):
    s = settings(tmp_path)
    client = skipping_env.client
    async with create_worker(client, s):
        handle, view = await executing_until(skipping_env, s, days=3)
        started = entered(view, "executing")

        async def reminded():
            return await measure_notices(client, view.reference, "m1", "reminder")

        [reminder] = await until(reminded, "the reminder to kz-afm")
        assert (reminder.recipient, reminder.action, reminder.due_on) == ("kz-afm", "report_result", view.respond_by)
        assert days_between(started, reminder.at) < 0.01
        assert await measure_notices(client, view.reference, "m2", "reminder") == []  # the court has 30 days


async def test_a_measure_authorised_later_is_still_due_on_respond_by(skipping_env, tmp_path):
    s = settings(tmp_path)
    client = skipping_env.client
    async with create_worker(client, s):
        handle, view = await executing_until(skipping_env, s, days=60)
        await skipping_env.sleep(10 * DAY)
        await measure_handle(client, view.reference, "m2").execute_update(
            MeasureWorkflow.authorise, args=["kz-court", Authorisation(granted=True)])

        async def m2_executing():
            v = await view_of(handle)
            return next((p for p in v.pending_actions if p.measure_id == "m2" and p.action == "report_result"), None)

        action = await until(m2_executing, "m2 to be executing")
        assert (action.authority, action.due_on) == ("kz-police", view.respond_by)
