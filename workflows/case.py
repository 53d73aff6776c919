"""What every case workflow does the same way, written once.

``Procedure``: anything that waits for people — a case, or one measure of a request: the audit
trail, notices sent without holding up the case, waiting with a deadline, a reminder and an
escalation, and what the engine shows of it (search attributes, the Temporal UI's summary).

``CaseWorkflow``: a case. It owns the intake (the ``case_opened`` event, the treaty resolved and
the authorities of both states; the ``opened`` update and the ``opening`` query), stage entry,
the checks its acts' validators share, and closing (the archive, the closing notices, every
handler finished). A case kind supplies its procedure (``run``), its acts and its view, and
declares its facts as class attributes: which request fields are its two states, its terminal
and transient stages, and the action each waiting stage awaits (``actions``: the inbox reads it).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Callable, ClassVar, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.archive import Archiver
    from activities.intake import TreatyAnswer, TreatyQuestion, resolve_treaty
    from activities.notify import Notifier
    from domain.assistance import AssistanceView
    from domain.caseload import StageTimes
    from domain.case import (
        Action, Actor, ArchivedCase, Assignment, CaseEvent, Notice, PendingAction, RequestSeal, acting, due_day,
        end_of_day,
    )
    from domain.documents import DocumentRecord
    from domain.parties import StateAuthorities
    from domain.reference import Deadlines, Treaty
    from domain.transfer import TransferView, request_digest
    from workflows import search_attributes as sa
    from workflows.rejection import already_opened, conflict, invalid, moving, not_permitted, only

STEP = dict(start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)))
NOTICE = dict(start_to_close_timeout=timedelta(seconds=30), schedule_to_close_timeout=timedelta(days=1),
              retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)))

# 0.3.0: search attributes are upserted once per workflow task and only those that changed; a case
# holds them back while its intake runs (the start attributes name its kind, states and stage)
PUBLISH_CHANGES = "publish-changes"
# 0.3.0: an assignment is published for the inbox's "mine" and "unassigned" (InboxAssignments,
# upserted by the `assign` update), and ends — memo and attribute — when its authority has nothing
# of the procedure left to do
INBOX_ASSIGNMENTS = "inbox-assignments"
# 0.3.0: a case publishes how long it spent in each stage (StageTimes) with its stage; a case begun
# before keeps the times in memory (a request carries them into its next run) but publishes none
STAGE_TIMES = "stage-times"

Kind = Literal["transfer", "assistance"]
CaseView = Annotated[TransferView | AssistanceView, Field(discriminator="kind")]


class CaseWithdrawn(Exception):
    """Raised inside a workflow when the case was withdrawn while it waited."""


class Opening(BaseModel):
    """The answer to opening a case (the ``opened`` update) and to a client looking before it
    opens (the ``opening`` query, which adds nothing to the history). ``view`` is None when this
    update was not the one that created the case: the client reads the view by query."""

    view: CaseView | None
    created: bool
    request_sha256: str = ""
    intake_done: bool = True


class Procedure:
    """Waiting for people: the audit trail, notices, deadlines, and what the engine shows."""

    kind: ClassVar[Kind]
    search_kind: ClassVar[str]  # the CaseKind search attribute: the kind, or a measure's
    actions: ClassVar[dict[str, Action]]  # the action each waiting stage awaits (the inbox reads it)

    def __init__(self, reference: str, stage: str, confidential: bool) -> None:
        self.reference = reference
        self.stage = stage
        self.confidential = confidential  # notices then carry only reference and action
        self.events: list[CaseEvent] = []
        self.notices: list[asyncio.Task[None]] = []
        self.pending: list[PendingAction] = []
        self.due_at: datetime | None = None
        self.treaty: Treaty | None = None  # a case's, once resolved
        self.outcome: str | None = None  # a case's, once closed
        self.publishing = False  # changes to publish at the end of this workflow task
        self.assigned: dict[str, str] = {}  # authority id → the user of it who handles what this awaits
        self.assignment_index: dict[str, str] = {}  # authority id → the blind index of authority/user

    # ---- what a procedure supplies ----------------------------------------------------------

    @property
    def states(self) -> tuple[str, str]:
        raise NotImplementedError

    @property
    def reminder_days(self) -> int:
        raise NotImplementedError

    def withdrawn(self) -> bool:
        raise NotImplementedError

    def escalation_recipient(self, authority: str) -> str:
        """The central authority told when ``authority`` misses a deadline."""
        raise NotImplementedError

    def summary(self) -> list[str]:
        """The lines of the Temporal UI's current details."""
        raise NotImplementedError

    # ---- the trail, the engine's view, notices ----------------------------------------------

    def record(self, actor: str, action: str, detail: str, user: str | None = None) -> None:
        """``user``: the person who acted for ``actor`` through the web application, if any."""
        self.events.append(CaseEvent(at=workflow.now(), actor=actor, action=action, detail=detail, user=user))

    def publish(self) -> None:
        """Search attributes (lists, inbox, stats and overdue queries read them) and the Temporal
        UI's current details, after every change: once at the end of the workflow task, and only
        the attributes that changed (``PUBLISH_CHANGES``)."""
        if not workflow.patched(PUBLISH_CHANGES):  # histories of 0.2.0: every attribute, at every change
            workflow.upsert_search_attributes(self.attributes())
            self.published()
            return
        if not self.publishing:
            self.publishing = True
            asyncio.get_running_loop().call_soon(self.publish_changes)

    def publish_changes(self) -> None:
        """What ``publish`` asked for; called directly when what publishing starts must be awaited
        (a measure's last report to its request)."""
        if not self.publishing:
            return
        self.publishing = False
        current = workflow.info().typed_search_attributes
        changed = [u for u in self.attributes()
                   if current.get(u.key) != u.value and (u.value is not None or u.key in current)]
        if changed and self.searchable():
            workflow.upsert_search_attributes(changed)
        self.published()

    def attributes(self) -> list[SearchAttributeUpdate]:
        return [
            sa.CASE_KIND.value_set(self.search_kind),
            sa.CASE_STAGE.value_set(self.stage),
            sa.CASE_STATES.value_set(list(self.states)),
            sa.TREATY_ID.value_set(self.treaty.id) if self.treaty else sa.TREATY_ID.value_unset(),
            sa.CASE_OUTCOME.value_set(self.outcome) if self.outcome else sa.CASE_OUTCOME.value_unset(),
            sa.AWAITING_AUTHORITIES.value_set(sorted({p.authority for p in self.pending}))
            if self.pending else sa.AWAITING_AUTHORITIES.value_unset(),
            sa.ACTION_DUE_AT.value_set(self.due_at) if self.due_at else sa.ACTION_DUE_AT.value_unset(),
            *([sa.CASE_CONFIDENTIAL.value_set(self.confidential)] if self.kind == "assistance" else []),
            self.assignments(),
        ]

    def assignments(self) -> SearchAttributeUpdate:
        """InboxAssignments: for each authority this awaits, the blind index of the person of it who
        took the item, or ``unassigned:<authority>`` (an item taken before the index existed has
        neither until it is taken again)."""
        values = [self.assignment_index.get(a, "") if a in self.assigned else sa.unassigned(a)
                  for a in sorted({p.authority for p in self.pending})]
        values = [v for v in values if v]
        return sa.INBOX_ASSIGNMENTS.value_set(values) if values else sa.INBOX_ASSIGNMENTS.value_unset()

    def searchable(self) -> bool:
        """Whether changed attributes go to the server now (a case holds them back during intake)."""
        return True

    def published(self) -> None:
        """After the attributes: the current details (and what a procedure adds)."""
        workflow.set_current_details("\n\n".join(self.summary()))

    @staticmethod
    def waiting_lines(pending: list[PendingAction]) -> list[str]:
        return [f"**Waiting for:** {p.authority} to {p.action}" + (f" ({p.measure_id})" if p.measure_id else "")
                + f", by {p.due_on}" + (" — **OVERDUE**" if p.overdue else "") for p in pending]

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
                await workflow.execute_activity_method(Notifier.notify, notice, summary=f"Notify {recipient}: {event}",
                                                       **NOTICE)
                self.record("system", f"notice_{event}", f"to {recipient}" + (f": {action}" if action else ""))
            except ActivityError:
                self.record("system", "notice_failed", f"{event} to {recipient}")

        self.notices.append(asyncio.create_task(deliver()))

    # ---- who handles it ---------------------------------------------------------------------

    @workflow.update
    async def assign(self, by: str | Actor, assignment: Assignment) -> None:
        """A person of an authority this awaits takes the item, or is given it, or gives it back;
        the case's memo (encrypted) says who, for the inbox's rows, and InboxAssignments the blind
        index of who (``assignment.index``), for its "mine" and "unassigned"."""
        actor, user = acting(by)
        self.validate_assign(by, assignment)
        if assignment.user:
            self.assigned[actor] = assignment.user
            if assignment.index:
                self.assignment_index[actor] = assignment.index
            else:  # from a client without the key: found under neither "mine" nor "unassigned"
                self.assignment_index.pop(actor, None)
            self.record(actor, "assigned", f"to {assignment.user}", user=user)
        else:
            self.assigned.pop(actor, None)
            self.assignment_index.pop(actor, None)
            self.record(actor, "unassigned", "", user=user)
        workflow.upsert_memo({"assigned": dict(self.assigned)})
        if workflow.patched(INBOX_ASSIGNMENTS) and self.searchable():
            workflow.upsert_search_attributes([self.assignments()])

    def end_assignments(self) -> None:
        """An assignment lasts while its authority has something of this procedure to do: once it
        has acted (or the wait ended otherwise), the next time it is awaited nobody has taken it yet.
        The memo now; the attribute with the next publish, which the change of pending actions makes."""
        waiting = {p.authority for p in self.pending}
        ended = [a for a in self.assigned if a not in waiting]
        if not ended or not workflow.patched(INBOX_ASSIGNMENTS):  # before 0.3.0 an assignment stayed
            return
        for authority in ended:
            del self.assigned[authority]
            self.assignment_index.pop(authority, None)
        workflow.upsert_memo({"assigned": dict(self.assigned)})

    @assign.validator
    def validate_assign(self, by: str | Actor, assignment: Assignment) -> None:
        actor, user = acting(by)
        if user is None:
            raise not_permitted("an item is assigned by a person signed in to the web application, not with a key")
        if actor not in {p.authority for p in self.pending}:  # a measure's are assigned on the measure
            raise conflict(f"nothing of {self.reference} waits for {actor} now")
        if self.assigned.get(actor) == assignment.user:
            raise conflict(f"{self.reference} is already " + (f"assigned to {assignment.user}" if assignment.user
                                                             else "unassigned"))

    # ---- waiting for people -----------------------------------------------------------------

    async def await_acts(self, authorities: list[str], days: int | date, done: Callable[[], bool],
                         *, expires: bool = False, measure_id: str | None = None) -> bool:
        """Wait for ``authorities`` to take the action of the stage (``actions``) until ``done()``,
        for ``days`` from now or until the end of a due date: remind them ``reminder_days`` before the deadline (at once if that moment has passed);
        after it, either expire (``expires``: returns False) or flag the actions overdue and
        escalate to each state's central authority, and keep waiting. Raises CaseWithdrawn if the
        case is withdrawn meanwhile."""
        due = end_of_day(days) if isinstance(days, date) else workflow.now() + timedelta(days=days)
        self.due_at = due
        self.pending = [PendingAction(authority=a, action=self.actions[self.stage], due_on=due_day(due),
                                      measure_id=measure_id) for a in authorities]
        self.publish()
        for p in self.pending:
            self.notify(p.authority, "action_requested", action=p.action, due_on=p.due_on, measure_id=measure_id)

        def ready() -> bool:
            return done() or self.withdrawn()

        if not await self.wait_until(ready, due - timedelta(days=self.reminder_days), "reminder"):
            for p in self.pending:
                self.notify(p.authority, "reminder", action=p.action, due_on=p.due_on, measure_id=measure_id)
            if not await self.wait_until(ready, due, "deadline"):
                if expires:
                    return False
                self.escalate()
                await workflow.wait_condition(ready)
        self.pending = []
        self.due_at = None
        self.end_assignments()
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


class CaseWorkflow(Procedure):
    """A case: its request, its intake, its stages, the checks of its acts, its closing."""

    noun: ClassVar[str]  # how messages name it: "case", "request"
    title: ClassVar[str]  # how the Temporal UI names it: "Transfer", "Assistance request"
    state_fields: ClassVar[tuple[str, str]]  # the request's fields holding the two states
    first_stage: ClassVar[str]  # the stage it opens in (a search attribute from its start)
    stages: ClassVar[tuple[str, ...]]  # every stage, in the view's order (StageTimes gives their indexes)
    terminal: ClassVar[frozenset[str]]
    transient: ClassVar[frozenset[str]] = frozenset()  # stages the intake passes through

    def __init__(self, request: Any, opened_by: str) -> None:
        super().__init__(request.reference, self.first_stage, confidential=getattr(request, "confidential", False))
        self.request = request
        self.request_sha256 = request_digest(request)
        self.opened_by = opened_by
        self.opened_at = workflow.now()
        self.received_on: date = request.received_on or self.opened_at.date()
        self.stage_entered_on: date = self.opened_at.date()
        self.stage_times = StageTimes()
        self.stage_times.enter(self.stage, self.opened_at)
        self.grounds: list[str] = []
        self.authorities: dict[str, StateAuthorities] = {}
        self.withdrawal: Any = None
        self.intake_done = False
        self.open_requests = 0
        self.continuing = False  # moving to a new run (continue-as-new): acts are answered "try again"
        self.documents: list[DocumentRecord] = []  # the case file: metadata and digests, the contents elsewhere

    # ---- facts of the case ------------------------------------------------------------------

    @classmethod
    def workflow_id(cls, reference: str) -> str:
        return f"{cls.kind}:{reference}"

    @property
    def states(self) -> tuple[str, str]:
        first, second = (getattr(self.request, f) for f in self.state_fields)
        return first, second

    @property
    def deadlines(self) -> Deadlines:
        assert self.treaty is not None
        return self.treaty.deadlines

    @property
    def reminder_days(self) -> int:
        return self.deadlines.reminder_before if self.treaty else 7

    def withdrawn(self) -> bool:
        return self.withdrawal is not None

    def escalation_recipient(self, authority: str) -> str:
        return next(a.central_authority for a in self.authorities.values()
                    if authority in (a.central_authority, a.prison_service))

    def view(self) -> Any:
        """The case as API.md shows it: a kind's ``@workflow.query``."""
        raise NotImplementedError

    # ---- intake, stages, closing ------------------------------------------------------------

    async def open(self, detail: str) -> None:
        """The ``case_opened`` event, then the governing treaty and who acts for each state."""
        self.record(self.opened_by, "case_opened", detail)
        answer: TreatyAnswer = await workflow.execute_activity(
            resolve_treaty, TreatyQuestion(kind=self.kind, received_on=self.received_on, states=self.states),
            summary="Resolve the governing treaty", **STEP)
        self.treaty = answer.treaty
        self.authorities = {a.state: a for a in answer.authorities}
        self.record("system", "treaty_resolved", self.treaty.id if self.treaty else "no treaty in force")

    def enter(self, stage: str) -> None:
        if stage != self.stage:
            self.record("system", "stage_entered", stage)
        self.stage = stage
        self.stage_entered_on = workflow.now().date()
        self.stage_times.enter(stage, workflow.now(), closing=stage in self.terminal)
        self.intake_done = self.intake_done or stage not in self.transient
        self.publish()

    def attributes(self) -> list[SearchAttributeUpdate]:
        """A case's attributes add the time it spent in each stage (``STAGE_TIMES``), which changes
        only with its stage, so it goes with the same upserts."""
        if not workflow.patched(STAGE_TIMES):
            return super().attributes()
        return [*super().attributes(), sa.STAGE_TIMES.value_set(self.stage_times.value(self.stages))]

    def searchable(self) -> bool:
        """While the intake runs, the attributes set at start (kind, states, first stage) stand;
        the treaty and the stage it reaches go with the first waiting or closing stage."""
        return self.intake_done

    def summary(self) -> list[str]:
        first, second = self.states
        lines = [f"**{self.title} {self.reference}** ({first} → {second}), "
                 f"treaty {self.treaty.id if self.treaty else '—'}",
                 f"**Stage:** {self.stage}" + (f" — outcome {self.outcome}" if self.outcome else "")]
        if self.grounds:
            lines.append(f"**Grounds:** {', '.join(self.grounds)}")
        return lines + self.details() + self.waiting_lines(self.waiting())

    def details(self) -> list[str]:
        """What a kind adds to the Temporal UI's summary."""
        return []

    def waiting(self) -> list[PendingAction]:
        """The actions the case waits for (a request's include its measures')."""
        return self.pending

    async def close(self, outcome: str, grounds: list[str]) -> Any:
        """Close the case: the record in the archive first (it does not wait for webhooks that may
        be down for hours), then the closing notices, then every handler finished."""
        self.grounds = list(grounds)
        self.outcome = outcome
        self.pending = []
        self.due_at = None
        self.end_assignments()  # an expired wait ends here
        self.enter(outcome)
        self.record("system", "case_closed", outcome + (f": {', '.join(grounds)}" if grounds else ""))
        for state in self.states:
            if state in self.authorities:  # a state missing from the directory has no one to tell
                self.notify(self.authorities[state].central_authority, "case_closed")
        await self.before_archive(outcome, grounds)
        record = ArchivedCase(kind=self.kind, reference=self.reference, closed_at=workflow.now(),
                              view=self.view().model_dump(mode="json"), request_sha256=self.request_sha256)
        try:
            await workflow.execute_activity_method(Archiver.archive_case, record, summary="Archive the closed case",
                                                   **STEP)
        except ActivityError as err:  # a misconfigured archive: recorded; the workflow stays readable
            cause = getattr(err.cause, "type", None) or type(err.cause).__name__
            self.record("system", "archive_failed", str(cause))
        await asyncio.gather(*self.notices)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def before_archive(self, outcome: str, grounds: list[str]) -> None:
        """What a kind does once closed and before its record is archived (nothing by default)."""

    # ---- opening: the update and the query --------------------------------------------------

    @workflow.update
    async def opened(self, seal: RequestSeal) -> Opening:
        """Answers once intake has run: a waiting stage or a terminal one, never a transient one.
        The first call is the one that opened the case."""
        self.open_requests += 1
        created = self.open_requests == 1
        await workflow.wait_condition(lambda: self.intake_done)
        return Opening(view=self.view() if created else None, created=created, request_sha256=self.request_sha256)

    @opened.validator
    def validate_opened(self, seal: RequestSeal) -> None:
        """Only the first opening is taken: a repeat, or another request under the reference, is
        refused (which adds nothing to the history) for the client to read the case by query."""
        if self.open_requests or seal.request_sha256 != self.request_sha256:
            raise already_opened(self.reference)

    @workflow.query
    def opening(self) -> Opening:
        """For a client about to open the case again: the seal to compare, and the view."""
        return Opening(view=self.view() if self.intake_done else None, created=False,
                       request_sha256=self.request_sha256, intake_done=self.intake_done)

    # ---- the checks acts share (validators) -------------------------------------------------

    def require_ready(self) -> None:
        if self.continuing:
            raise moving()
        if not self.intake_done:
            raise conflict(f"the {self.noun} is still being opened; try again shortly")

    def require_actor(self, actor: str, state: StateAuthorities, roles: tuple[str, ...], what: str) -> None:
        """``actor`` must be the authority of ``state`` of one of ``roles`` (the central authority
        stands in for a state without a prison service)."""
        acting = [(role, getattr(state, role)) for role in roles]
        if actor not in {a for _, a in acting}:
            raise not_permitted(only(what, (state.state, acting)))

    @staticmethod
    def require_not_future(field: str, day: date) -> None:
        if day > workflow.now().date():
            raise invalid(field, f"{field} may not lie in the future")

    def require_stage(self, stage: str, what: str) -> None:
        """``what``: the act in the passive (``a decision can be recorded``)."""
        if self.withdrawal is not None:
            raise conflict(f"the {self.noun} is being withdrawn: no more acts are possible on it")
        if self.stage in self.terminal:
            raise conflict(f"the {self.noun} is closed ({self.stage}): no more acts are possible on it")
        if self.stage != stage:
            raise conflict(f"the {self.noun} is in stage {self.stage}: {what} only in stage {stage}")

    def require_withdrawable(self, closing: str | None) -> None:
        """``closing``: why the case can no longer be withdrawn although it is open, or None."""
        if self.stage in self.terminal:
            raise conflict(f"the {self.noun} is closed ({self.stage}): it can no longer be withdrawn")
        if self.withdrawal is not None:
            raise conflict(f"the {self.noun} is already being withdrawn")
        if closing:
            raise conflict(closing)

    # ---- the case file ----------------------------------------------------------------------

    @workflow.update
    async def add_document(self, by: str | Actor, document: DocumentRecord) -> None:
        """A document stored in the document store, recorded in its case: its metadata and digest
        (never its content; its title and file name only in the view, not in the trail)."""
        actor, user = acting(by)
        self.documents.append(document)
        self.record(actor, "document_added", f"{document.type} {document.document_id}", user=user)

    @add_document.validator
    def validate_add_document(self, by: str | Actor, document: DocumentRecord) -> None:
        self.require_ready()
        if self.withdrawal is not None:
            raise conflict(f"the {self.noun} is being withdrawn: no more documents can be added")
        if self.stage in self.terminal:
            raise conflict(f"the {self.noun} is closed ({self.stage}): no more documents can be added")
        if any(d.document_id == document.document_id for d in self.documents):
            raise conflict(f"document {document.document_id} is already recorded")
