"""A request for mutual legal assistance, as one durable workflow per request and a child
workflow per measure (``workflows/measure.py``).

Read ``AssistanceWorkflow.run`` top to bottom: the treaty is resolved and each measure checked
against it at intake; the requested state's central authority reviews the request — it may
accept, refuse, ask the requesting state for more information (which must come within the
deadline) or postpone it to a date; once accepted, each permitted measure runs as its own
workflow (court authorisation for coercive ones, execution by the routed authority); when every
measure has ended, the evidence manifest is built and the request closes as completed, partially
completed or unsuccessful. The requesting state may withdraw it at any open stage.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import get_args

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities import intake, manifest
    from domain.assistance import (
        ASSISTANCE_TERMINAL, MEASURE_TERMINAL, AssistanceRequest, AssistanceStage, AssistanceView,
        AssistanceWithdrawal, InformationAnswer, MeasureView, Results, Review, refusal_grounds_of, request_outcome,
    )
    from domain.case import Actor, CaseEvent, PendingAction, acting
    from domain.caseload import StageTimes
    from domain.documents import DocumentRecord
    from domain.parties import StateAuthorities
    from domain.reference import Treaty
    from workflows.rejection import and_list, conflict, invalid, or_list

from workflows.case import INBOX_ASSIGNMENTS, STEP, CaseWithdrawn, CaseWorkflow
from workflows.measure import EVIDENCE_BUDGET, MeasureOrder, MeasureWorkflow, measure_workflow_id


class Resumption(BaseModel):
    """What a request carries into its next run when its history has grown long (continue-as-new,
    at the top of its review): all it has established and recorded, so that clients see one case."""

    opened_at: datetime
    treaty: Treaty
    authorities: list[StateAuthorities]
    measures: list[MeasureView]
    events: list[CaseEvent]
    open_requests: int
    # who handles what the request awaits, and its blind index (Procedure.assigned, .assignment_index)
    assigned: dict[str, str] = {}
    assignment_index: dict[str, str] = {}
    documents: list[DocumentRecord] = []  # the case file's records (the contents are in the document store)
    stage_times: StageTimes | None = None  # how long it spent in each stage (None: from a run before 0.3.0)


class OpenAssistance(BaseModel):
    request: AssistanceRequest
    opened_by: str
    resumed: Resumption | None = None
    # past this history length (or when the server suggests it) the request continues as new
    continue_after_events: int = 10_000


@workflow.defn(name="Assistance")
class AssistanceWorkflow(CaseWorkflow):
    kind = search_kind = "assistance"
    noun, title = "request", "Assistance request"
    state_fields = ("requesting_state", "requested_state")
    first_stage, stages, terminal = "under_review", get_args(AssistanceStage), ASSISTANCE_TERMINAL
    actions = {"under_review": "review_request", "awaiting_information": "answer_information"}

    @workflow.init
    def __init__(self, case: OpenAssistance) -> None:
        super().__init__(case.request, case.opened_by)
        self.request: AssistanceRequest = case.request
        self.measures: dict[str, MeasureView] = {
            m.id: MeasureView(id=m.id, kind=m.kind, stage="pending") for m in case.request.measures}
        self.review: Review | None = None
        self.answer: InformationAnswer | None = None
        self.questions: str | None = None
        self.postponed_until: date | None = None
        self.withdrawal: AssistanceWithdrawal | None = None
        self.results: Results | None = None
        self.children: dict[str, workflow.ChildWorkflowHandle] = {}
        self.assembling = False  # every measure has ended: the results go back, no withdrawal now
        if case.resumed is not None:
            self.opened_at = case.resumed.opened_at
            self.received_on = case.request.received_on or self.opened_at.date()
            self.treaty = case.resumed.treaty
            self.authorities = {a.state: a for a in case.resumed.authorities}
            self.measures = {m.id: m for m in case.resumed.measures}
            self.events = list(case.resumed.events)
            self.open_requests = case.resumed.open_requests
            self.assigned = dict(case.resumed.assigned)
            self.assignment_index = dict(case.resumed.assignment_index)
            self.documents = list(case.resumed.documents)
            if case.resumed.stage_times is not None:
                self.stage_times = case.resumed.stage_times.model_copy(deep=True)
            self.intake_done = True

    # ---- the procedure ------------------------------------------------------------------

    @workflow.run
    async def run(self, case: OpenAssistance) -> AssistanceView:
        if case.resumed is None:  # a request resumed after continue-as-new has had its intake
            refusal = await self.intake()
            if refusal is not None:
                return refusal
        elif self.assigned and workflow.patched(INBOX_ASSIGNMENTS):  # a new run's memo is its start's
            workflow.upsert_memo({"assigned": dict(self.assigned)})
        try:
            while True:
                review = await self.await_review(case)
                if review.decision == "refuse":
                    return await self.close("refused", review.grounds)
                if review.decision == "request_information":
                    if not await self.await_information(review.questions):
                        return await self.close("expired", ["no_information"])
                elif review.decision == "postpone":
                    assert review.postpone_until is not None
                    await self.postpone(review.postpone_until)
                else:
                    self.settle_dual_criminality(review)
                    break
            if not self.open_measures():
                return await self.close("refused", refusal_grounds_of(list(self.measures.values())))
            await self.execute()
            self.results = await workflow.execute_activity(
                manifest.build_manifest,
                manifest.ManifestOrder(reference=self.reference, measures=list(self.measures.values())),
                summary="Build the evidence manifest", **STEP)
            self.record("system", "manifest_built", f"{len(self.results.items)} items, {self.results.manifest_sha256}")
            return await self.close(request_outcome(list(self.measures.values())), [])
        except CaseWithdrawn:
            await self.cancel_measures()
            return await self.close("withdrawn", [])

    async def intake(self) -> AssistanceView | None:
        """The treaty and each measure's scope; the closed view when the request is refused at once."""
        await self.open(f"{self.request.requesting_state} → {self.request.requested_state}, received "
                        f"{self.received_on}, {len(self.measures)} measures" + (", urgent" if self.request.urgent else ""))
        if self.treaty is None:
            for m in self.measures.values():
                m.stage, m.grounds = "not_permitted", ["no_treaty"]
            return await self.close("refused", ["no_treaty"])
        if not await self.check_scope():
            return await self.close("refused", ["not_covered_by_treaty"])
        if not self.open_measures():
            return await self.close("refused", refusal_grounds_of(list(self.measures.values())))
        return None

    async def continue_as_new_if_long(self, case: OpenAssistance) -> None:
        """A request that went round its review many times (information asked and answered,
        postponements) continues as a new run before its history nears the engine's limits: the
        same workflow id, the same view, its trail and who handles what it awaits kept (the new
        run's memo is the one the request was started with: the new run upserts ``assigned`` again);
        the new run resumes at the review (once the act that brought it back there has had its
        answer)."""
        info = workflow.info()
        if not (info.is_continue_as_new_suggested() or info.get_current_history_length() > case.continue_after_events):
            return
        if not all(n.done() for n in self.notices):  # next time round: no notice is ever dropped
            return
        self.continuing = True  # acts arriving now are answered "try again" (503) and reach the new run
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self.treaty is not None
        workflow.continue_as_new(case.model_copy(update={"resumed": Resumption(
            opened_at=self.opened_at, treaty=self.treaty, authorities=list(self.authorities.values()),
            measures=list(self.measures.values()), events=self.events, open_requests=self.open_requests,
            assigned=self.assigned, assignment_index=self.assignment_index, documents=self.documents,
            stage_times=self.stage_times)}))

    async def check_scope(self) -> bool:
        """False when the coverage of the treaty could not be established (a permanent failure)."""
        assert self.treaty is not None
        try:
            checked = await workflow.execute_activity(
                intake.check_assistance_scope, intake.ScopeQuestion(request=self.request, treaty_id=self.treaty.id),
                summary="Check each measure against the treaty", **STEP)
        except ActivityError as err:
            self.record("system", "scope_not_established", str(getattr(err.cause, "type", None) or "failure"))
            for m in self.measures.values():
                m.stage, m.grounds = "not_permitted", ["not_covered_by_treaty"]
            return False
        self.measures = {m.id: m for m in checked}
        self.record("system", "scope_checked", ", ".join(
            f"{m.id}={m.stage}" + (f" ({', '.join(m.grounds)})" if m.grounds else "")
            + (f" dual criminality {m.dual_criminality}" if m.dual_criminality != "not_applicable" else "")
            for m in checked))
        return True

    async def await_review(self, case: OpenAssistance) -> Review:
        self.enter("under_review")
        await self.continue_as_new_if_long(case)
        self.review = None
        await self.await_acts([self.requested.central_authority], self.days("review"),
                              lambda: self.review is not None)
        assert self.review is not None
        return self.review

    async def await_information(self, questions: str) -> bool:
        self.questions = questions
        self.answer = None
        self.enter("awaiting_information")
        return await self.await_acts([self.requesting.central_authority], self.deadlines.information,
                                     lambda: self.answer is not None, expires=True)

    async def postpone(self, until: date) -> None:
        self.postponed_until = until
        self.enter("postponed")
        back = datetime.combine(until, time(0), tzinfo=timezone.utc)
        if await self.wait_until(self.withdrawn, back, "postponed until"):
            raise CaseWithdrawn
        self.postponed_until = None
        self.record("system", "postponement_ended", str(until))

    def settle_dual_criminality(self, review: Review) -> None:
        """A doubt on dual criminality is settled by the reviewer's answer."""
        for m in self.measures.values():
            if m.stage == "pending" and m.dual_criminality == "needs_review":
                if review.dual_criminality == "not_satisfied":
                    m.stage, m.grounds, m.court, m.assigned_to = "not_permitted", ["no_dual_criminality"], None, None
                m.dual_criminality = "satisfied" if review.dual_criminality == "satisfied" else "failed"

    async def execute(self) -> None:
        """Each permitted measure as its own workflow; wait until all have ended. Measures tell
        their end by signal and deliver their own last notices, on their own (abandoned, not
        cancelled, when the request closes): a webhook that is down holds up no request."""
        self.enter("executing")
        started = self.open_measures()
        for m in started:
            order = MeasureOrder(
                reference=self.reference, measure=m, states=self.states,
                requested_central_authority=self.requested.central_authority,
                authorisation_days=self.deadlines.authorisation, execution_days=self.days("execution"),
                execution_due_on=self.request.respond_by,
                reminder_days=self.deadlines.reminder_before, confidential=self.confidential,
                request_workflow_id=workflow.info().workflow_id,
                evidence_allowance=EVIDENCE_BUDGET // len(started))
            self.children[m.id] = await workflow.start_child_workflow(
                MeasureWorkflow.run, order, id=measure_workflow_id(self.reference, m.id),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"Measure {m.id} ({m.kind}) of {self.reference}")
        await workflow.wait_condition(lambda: self.measures_ended() or self.withdrawn())
        if self.withdrawn():
            raise CaseWithdrawn
        self.assembling = True  # from here the results go back; the request can no longer be withdrawn

    def measures_ended(self) -> bool:
        return all(self.measures[mid].stage in MEASURE_TERMINAL for mid in self.children)

    async def cancel_measures(self) -> None:
        for mid, handle in self.children.items():
            if self.measures[mid].stage not in MEASURE_TERMINAL:
                try:
                    await handle.signal(MeasureWorkflow.cancel)
                except FailureError:  # the measure ended meanwhile: its result stands
                    pass
        await workflow.wait_condition(self.measures_ended)
        for m in self.measures.values():  # measures never started
            if m.stage == "pending":
                m.stage = "cancelled"

    # ---- acts: updates with validators, and the measures' signals ----------------------------

    # Acts answer once the procedure took them into account, without the view (clients read it by
    # query, so an act adds only itself to the history); each handler checks again what its
    # validator checked, since acts accepted together run one after the other.

    @workflow.update
    async def record_review(self, by: str | Actor, review: Review) -> None:
        actor, user = acting(by)
        self.validate_review(actor, review)
        self.review = review
        self.record(actor, f"review_{review.decision}",
                    ", ".join(review.grounds) or (str(review.postpone_until) if review.postpone_until else ""),
                    user=user)
        await workflow.wait_condition(lambda: self.stage != "under_review" or self.review is None)

    @record_review.validator
    def validate_review(self, by: str | Actor, review: Review) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.requested, ("central_authority",), "review this request")
        if review.decision == "refuse":
            allowed = self.rules.refusal_grounds.value
            cited = [g for g in review.grounds if g not in allowed]
            if cited:
                raise invalid("grounds", f"grounds may cite only {or_list(allowed)} under this treaty, not "
                                         f"{or_list(cited)}")
        if review.postpone_until and review.postpone_until <= workflow.now().date():
            raise invalid("postpone_until", "postpone_until must lie in the future")
        needs = [m.id for m in self.measures.values() if m.stage == "pending" and m.dual_criminality == "needs_review"]
        if review.decision == "accept" and needs and review.dual_criminality is None:
            raise invalid("dual_criminality", "dual_criminality (satisfied or not_satisfied) is required to accept: "
                                              f"{'measure' if len(needs) == 1 else 'measures'} {and_list(needs)} "
                                              f"{'needs' if len(needs) == 1 else 'need'} a review of dual criminality")
        self.require_stage("under_review", "it can be reviewed")
        if self.review is not None:
            raise conflict("a review of this request is already recorded")

    @workflow.update
    async def record_information(self, by: str | Actor, answer: InformationAnswer) -> None:
        actor, user = acting(by)
        self.validate_information(actor, answer)
        self.answer = answer
        self.record(actor, "information_answered", "", user=user)
        await workflow.wait_condition(lambda: self.stage != "awaiting_information")

    @record_information.validator
    def validate_information(self, by: str | Actor, answer: InformationAnswer) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.requesting, ("central_authority",), "answer the questions of this request")
        self.require_stage("awaiting_information", "information is answered")
        if self.answer is not None:
            raise conflict("the information asked for is already answered")

    @workflow.update
    async def withdraw(self, by: str | Actor, withdrawal: AssistanceWithdrawal) -> None:
        actor, user = acting(by)
        self.validate_withdrawal(actor, withdrawal)
        self.withdrawal = withdrawal
        self.record(actor, "withdrawn", "", user=user)
        await workflow.wait_condition(lambda: self.stage in ASSISTANCE_TERMINAL)

    @withdraw.validator
    def validate_withdrawal(self, by: str | Actor, withdrawal: AssistanceWithdrawal) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.requesting, ("central_authority",), "withdraw this request")
        self.require_withdrawable("every measure has ended and the results are being sent: the request can no "
                                  "longer be withdrawn" if self.assembling else None)

    @workflow.signal
    def measure_changed(self, measure: MeasureView) -> None:
        known = self.measures.get(measure.id)
        if known is not None and measure.revision > known.revision:
            self.measures[measure.id] = measure
            self.publish()

    @workflow.query
    def view(self) -> AssistanceView:
        measures = [m.model_copy(update={"pending_actions": [], "events": []}) for m in self.measures.values()]
        pending = self.waiting()
        events = sorted([*self.events, *(e for m in self.measures.values() for e in m.events)], key=lambda e: e.at)
        return AssistanceView(
            reference=self.reference, stage=self.stage, outcome=self.outcome, grounds=self.grounds,
            treaty=self.treaty.id if self.treaty else None, requesting_state=self.request.requesting_state,
            requested_state=self.request.requested_state, received_on=self.received_on, opened_at=self.opened_at,
            urgent=self.request.urgent, confidential=self.confidential, respond_by=self.request.respond_by,
            postponed_until=self.postponed_until, questions=self.questions if self.stage == "awaiting_information"
            else None, measures=measures, results=self.results, pending_actions=pending,
            overdue=any(p.overdue for p in pending), events=events, documents=list(self.documents))

    # ---- the state of the request ----------------------------------------------------------

    @property
    def requesting(self) -> StateAuthorities:
        return self.authorities[self.request.requesting_state]

    @property
    def requested(self) -> StateAuthorities:
        return self.authorities[self.request.requested_state]

    @property
    def rules(self):
        assert self.treaty is not None and self.treaty.assistance is not None
        return self.treaty.assistance

    def days(self, stage: str) -> int:
        """The deadline of a stage in days: halved for an urgent request."""
        days = getattr(self.deadlines, stage)
        return max(1, days // 2) if self.request.urgent else days

    def open_measures(self) -> list[MeasureView]:
        return [m for m in self.measures.values() if m.stage == "pending"]

    def waiting(self) -> list[PendingAction]:
        return [*self.pending, *(p for m in self.measures.values() for p in m.pending_actions)]

    def details(self) -> list[str]:
        return [f"**Measure {m.id}** ({m.kind}): {m.stage}" for m in self.measures.values()]


assistance_workflow_id = AssistanceWorkflow.workflow_id
