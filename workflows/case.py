"""What every case workflow does the same way: the audit trail, notices sent without holding up
the case, and waiting for people with a deadline, a reminder and an escalation."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Callable, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.case import Action, ArchivedCase, CaseEvent, Notice, PendingAction, due_day, end_of_day
    from workflows import search_attributes as sa

STEP = dict(start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)))
NOTICE = dict(start_to_close_timeout=timedelta(seconds=30), schedule_to_close_timeout=timedelta(days=1),
              retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)))


class CaseWithdrawn(Exception):
    """Raised inside a workflow when the case was withdrawn while it waited."""


class CaseWorkflow:
    """Base of the case workflows. A subclass sets ``kind``, ``reference``, ``stage``,
    ``reminder_days`` and implements ``publish`` and ``withdrawn``."""

    kind: Literal["transfer", "assistance"]
    reference: str
    stage: str
    reminder_days: int = 7
    confidential: bool = False  # notices then carry only reference and action

    def __init__(self) -> None:
        self.events: list[CaseEvent] = []
        self.notices: list[asyncio.Task[None]] = []
        self.pending: list[PendingAction] = []
        self.due_at: datetime | None = None

    def publish(self) -> None:
        raise NotImplementedError

    def withdrawn(self) -> bool:
        raise NotImplementedError

    def escalation_recipient(self, authority: str) -> str:
        """The central authority of the state ``authority`` acts for (``authorities`` by state,
        resolved at intake)."""
        return next(a.central_authority for a in self.authorities.values()  # type: ignore[attr-defined]
                    if authority in (a.central_authority, a.prison_service))

    def upsert_case_attributes(self, states: tuple[str, str], treaty_id: str | None, outcome: str | None) -> None:
        """The search attributes of a case (lists, inbox, stats and overdue queries read them)."""
        workflow.upsert_search_attributes([
            sa.CASE_KIND.value_set(self.kind),
            sa.CASE_STAGE.value_set(self.stage),
            sa.CASE_STATES.value_set(list(states)),
            sa.TREATY_ID.value_set(treaty_id) if treaty_id else sa.TREATY_ID.value_unset(),
            sa.CASE_OUTCOME.value_set(outcome) if outcome else sa.CASE_OUTCOME.value_unset(),
            sa.AWAITING_AUTHORITIES.value_set(sorted({p.authority for p in self.pending}))
            if self.pending else sa.AWAITING_AUTHORITIES.value_unset(),
            sa.ACTION_DUE_AT.value_set(self.due_at) if self.due_at else sa.ACTION_DUE_AT.value_unset(),
        ])

    def record(self, actor: str, action: str, detail: str) -> None:
        self.events.append(CaseEvent(at=workflow.now(), actor=actor, action=action, detail=detail))

    async def await_acts(self, acts: list[tuple[str, Action]], days: int | date | datetime,
                         done: Callable[[], bool], *, expires: bool = False, measure_id: str | None = None) -> bool:
        """Wait until ``done()``, for ``days`` from now, or until the end of a due date, or until a
        fixed moment: remind the authorities ``reminder_days`` before the deadline (at once if that
        moment has passed); after it, either expire (``expires``: returns False) or flag the actions
        overdue and escalate to each state's central authority, and keep waiting. Raises
        CaseWithdrawn if the case is withdrawn meanwhile."""
        if isinstance(days, datetime):
            due = days
        elif isinstance(days, date):
            due = end_of_day(days)
        else:
            due = workflow.now() + timedelta(days=days)
        self.due_at = due
        self.pending = [PendingAction(authority=a, action=act, due_on=due_day(due), measure_id=measure_id)
                        for a, act in acts]
        self.publish()
        for p in self.pending:
            self.notify(p.authority, "action_requested", action=p.action, due_on=p.due_on, measure_id=measure_id)

        def ready() -> bool:
            return done() or self.withdrawn()

        remind_at = due - timedelta(days=self.reminder_days)
        if not await self.wait_until(ready, remind_at, "reminder"):
            for p in self.pending:
                self.notify(p.authority, "reminder", action=p.action, due_on=p.due_on, measure_id=measure_id)
            if not await self.wait_until(ready, due, "deadline"):
                if expires:
                    return False
                self.escalate()
                await workflow.wait_condition(ready)
        self.pending = []
        self.due_at = None
        if self.withdrawn():
            raise CaseWithdrawn
        return True

    @staticmethod
    async def wait_until(ready: Callable[[], bool], moment: datetime, what: str) -> bool:
        if ready():
            return True
        remaining = moment - workflow.now()
        if remaining <= timedelta(0):
            return False
        try:
            await workflow.wait_condition(ready, timeout=remaining, timeout_summary=what)
            return True
        except asyncio.TimeoutError:
            return False

    def escalate(self) -> None:
        for p in self.pending:
            p.overdue = True
        self.record("system", "deadline_passed", ", ".join(f"{p.authority}: {p.action}" for p in self.pending))
        for recipient in sorted({self.escalation_recipient(p.authority) for p in self.pending}):
            self.notify(recipient, "escalation", due_on=self.pending[0].due_on)
        self.publish()

    async def archive_record(self, record: ArchivedCase) -> None:
        """Archive the closed case. A failure that retrying cannot mend (a misconfigured archive,
        type ``archive_misconfigured``, visible in the UI's history) is recorded on the case, which
        still closes: its workflow stays readable for the retention period."""
        try:
            await workflow.execute_activity("archive_case", record, summary="Archive the closed case", **STEP)
        except ActivityError as err:
            cause = getattr(err.cause, "type", None) or type(err.cause).__name__
            self.record("system", "archive_failed", str(cause))

    def notify(self, recipient: str, event: str, *, action: Action | None = None,
               due_on: date | None = None, measure_id: str | None = None) -> None:
        """Send a notice without holding up the case; record it as a case event once delivered."""
        hidden = self.confidential
        notice = Notice(kind=self.kind, reference=self.reference, event=event, recipient=recipient,
                        stage="" if hidden else self.stage, action=action, due_on=None if hidden else due_on,
                        measure_id=None if hidden else measure_id,
                        notice_id=f"{workflow.info().workflow_id}/{workflow.info().run_id}/{len(self.notices)}",
                        at=workflow.now())

        async def deliver() -> None:
            try:
                await workflow.execute_activity("notify", notice, summary=f"Notify {recipient}: {event}",
                                                **NOTICE)
                self.record("system", f"notice_{event}", f"to {recipient}" + (f": {action}" if action else ""))
            except ActivityError:
                self.record("system", "notice_failed", f"{event} to {recipient}")

        self.notices.append(asyncio.create_task(deliver()))
