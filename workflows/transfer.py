"""Transfer of a sentenced person, as one durable workflow per case.

Read ``TransferWorkflow.run`` top to bottom: it is the treaty procedure. The treaty is resolved
at intake; the person's declaration of intent is awaited (or came with the request); eligibility
is checked, every condition at once; a doubt on dual criminality goes to the administering
state's central authority; both states decide, in either order; the administering state's prison
service receives the person at the handover point. The sentencing state may withdraw the case at
any open stage. Every waiting stage has a deadline with a reminder 7 days before it and an
escalation (``overdue``) after it; only the declaration's deadline ends the case.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.handover import HandoverPlan
    from activities.intake import EligibilityQuestion, TreatyAnswer, TreatyQuestion
    from domain.case import ArchivedCase, RequestSeal
    from domain.eligibility import Eligibility, release_date_of, unassessed
    from domain.parties import StateAuthorities
    from domain.reference import Deadlines, Treaty
    from domain.transfer import (
        TERMINAL_STAGES, Declaration, Decision, EligibilityCondition, Handover, HandoverConfirmation,
        LegalReview, RecordedDecision, TransferRequest, TransferStage, TransferView, Withdrawal, enforcement_problem,
        handover_problem, is_arranged_point, request_digest,
    )
    from workflows.rejection import conflict, invalid, not_permitted, only, or_list, reference_taken

from workflows.case import STEP, CaseWithdrawn, CaseWorkflow

ALWAYS_OPEN_GROUNDS = ("not_national", "state_declined")


def transfer_workflow_id(reference: str) -> str:
    return f"transfer:{reference}"


class OpenTransfer(BaseModel):
    """The workflow's input: the request as received, and the authority that filed it."""

    request: TransferRequest
    opened_by: str


class Opening(BaseModel):
    """The answer to opening a case (the ``opened`` update) and to a client looking before it
    opens (the ``opening`` query, which adds nothing to the history). ``view`` is None when this
    update was not the one that created the case: the client reads the view by query."""

    view: TransferView | None
    created: bool
    request_sha256: str = ""
    intake_done: bool = True


@workflow.defn(name="Transfer")
class TransferWorkflow(CaseWorkflow):
    kind = "transfer"

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__()
        self.request = case.request
        self.request_sha256 = request_digest(case.request)
        self.reference = case.request.reference
        self.opened_by = case.opened_by
        self.opened_at = workflow.now()
        self.received_on: date = case.request.received_on or self.opened_at.date()
        self.stage: TransferStage = "checking_eligibility"
        self.outcome: TransferStage | None = None
        self.grounds: list[str] = []
        self.treaty: Treaty | None = None
        self.authorities: dict[str, StateAuthorities] = {}
        self.declaration: Declaration | None = case.request.declaration
        self.eligibility: Eligibility | None = None
        self.legal_review: LegalReview | None = None
        self.decisions: dict[str, RecordedDecision] = {}
        self.handover: Handover | None = None
        self.withdrawal: Withdrawal | None = None
        self.stage_entered_on: date = self.opened_at.date()
        self.intake_done = False
        self.open_requests = 0

    # ---- the procedure ------------------------------------------------------------------

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        self.record(self.opened_by, "case_opened",
                    f"{self.request.sentencing_state} → {self.request.administering_state}, "
                    f"received {self.received_on}, initiated by the {self.request.initiated_by.replace('_', ' ')}"
                    + (f", following {self.request.previous_reference}" if self.request.previous_reference else ""))
        await self.resolve_treaty()
        if self.treaty is None:
            return await self.close("refused", ["no_treaty"])
        try:
            if self.declaration is None and self.rules.declaration_required.value:
                if not await self.await_declaration():
                    return await self.close("expired", ["no_declaration"])
            await self.check_eligibility()
            if self.eligibility_grounds():
                return await self.close("refused", self.eligibility_grounds())
            if self.needs_legal_review():
                await self.await_legal_review()
                if self.eligibility_grounds():
                    return await self.close("refused", self.eligibility_grounds())
            refusal = await self.await_consents()
            if refusal is not None:
                return await self.close("refused", refusal.grounds)
            await self.arrange_handover()
            await self.await_handover()
            return await self.close("transferred", [])
        except CaseWithdrawn:
            return await self.close("withdrawn", [])

    async def resolve_treaty(self) -> None:
        answer: TreatyAnswer = await workflow.execute_activity(
            "resolve_treaty",
            TreatyQuestion(kind="transfer", received_on=self.received_on,
                           states=(self.request.sentencing_state, self.request.administering_state)),
            result_type=TreatyAnswer, summary="Resolve the governing treaty", **STEP)
        self.treaty = answer.treaty
        self.authorities = {a.state: a for a in answer.authorities}
        self.record("system", "treaty_resolved", self.treaty.id if self.treaty else "no treaty in force")

    async def await_declaration(self) -> bool:
        self.enter("awaiting_declaration")
        return await self.await_acts(
            [(self.sentencing.prison_service, "record_declaration")], self.deadlines.declaration,
            lambda: self.declaration is not None, expires=True)

    async def check_eligibility(self) -> None:
        self.enter("checking_eligibility")
        assert self.treaty is not None
        try:
            self.eligibility = await workflow.execute_activity(
                "check_eligibility",
                EligibilityQuestion(request=self.request, treaty_id=self.treaty.id, received_on=self.received_on),
                result_type=Eligibility, summary="Check eligibility (all six conditions)", **STEP)
        except ActivityError as err:  # a permanent failure (retries are unbounded): people judge
            cause = getattr(err.cause, "type", None) or type(err.cause).__name__
            self.record("system", "eligibility_not_assessed", str(cause))
            self.eligibility = unassessed(str(cause))
        outcomes = ", ".join(f"{c.condition}={c.outcome}" for c in self.eligibility.conditions)
        self.record("system", "eligibility_checked", outcomes)
        if self.withdrawal is not None:
            raise CaseWithdrawn

    async def await_legal_review(self) -> None:
        self.enter("awaiting_legal_review")
        await self.await_acts([(self.administering.central_authority, "legal_review")],
                              self.deadlines.legal_review, lambda: self.legal_review is not None)

    async def await_consents(self) -> RecordedDecision | None:
        """Both states decide, in either order; the first refusal ends the case."""
        self.enter("awaiting_consents")
        await self.await_acts(
            [(self.authorities[s].central_authority, "decide") for s in self.states],
            self.deadlines.consent, lambda: len(self.decisions) == 2 or self.refusal() is not None)
        return self.refusal()

    async def arrange_handover(self) -> None:
        self.enter("awaiting_handover")
        assert self.treaty is not None
        due_on = (workflow.now() + timedelta(days=self.deadlines.handover)).date()
        self.handover = await workflow.execute_activity(
            "arrange_handover", HandoverPlan(reference=self.request.reference, treaty_id=self.treaty.id,
                                             due_on=due_on),
            result_type=Handover, summary="Arrange the handover at the treaty's handover point", **STEP)
        self.record("system", "handover_arranged", f"at {self.handover.place}, by {self.handover.due_on}")
        for state in self.states:
            self.notify(self.authorities[state].prison_service, "handover_arranged", due_on=self.handover.due_on)

    async def await_handover(self) -> None:
        await self.await_acts([(self.administering.prison_service, "confirm_handover")],
                              self.deadlines.handover, lambda: self.handover is not None
                              and self.handover.completed_on is not None)

    async def close(self, outcome: TransferStage, grounds: list[str]) -> TransferView:
        self.grounds = list(grounds)
        self.outcome = outcome
        self.pending = []
        self.due_at = None
        self.enter(outcome)
        self.record("system", "case_closed", f"{outcome}" + (f": {', '.join(grounds)}" if grounds else ""))
        for state in self.states:
            if state in self.authorities:  # a state missing from the directory has no one to tell
                self.notify(self.authorities[state].central_authority, "case_closed")
        if workflow.patched("archive-before-notices"):
            # the record of the closed case does not wait for webhooks that may be down for hours
            await self.archive()
            await asyncio.gather(*self.notices)
        else:  # cases closed before this change
            await asyncio.gather(*self.notices)
            await self.archive()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    async def archive(self) -> None:
        view = self.view()
        await self.archive_record(ArchivedCase(kind="transfer", reference=self.request.reference,
                                               closed_at=workflow.now(), view=view.model_dump(mode="json"),
                                               request_sha256=self.request_sha256))

    # ---- acts of the authorities: updates with validators ---------------------------------

    @workflow.update
    async def opened(self, seal: RequestSeal | TransferRequest) -> Opening:
        """Answers once intake has run: a waiting stage or ``refused``, never a transient one.
        The first call is the one that opened the case. Clients send the request's seal; cases
        opened before that change received the request itself."""
        self.open_requests += 1
        created = self.open_requests == 1
        await workflow.wait_condition(lambda: self.intake_done)
        return Opening(view=self.view() if created else None, created=created, request_sha256=self.request_sha256)

    @opened.validator
    def validate_opened(self, seal: RequestSeal | TransferRequest) -> None:
        digest = seal.request_sha256 if isinstance(seal, RequestSeal) else request_digest(seal)
        if digest != self.request_sha256:
            raise conflict(reference_taken(self.reference))

    @workflow.query
    def opening(self) -> Opening:
        """For a client about to open the case again: the seal to compare, and the view."""
        return Opening(view=self.view() if self.intake_done else None, created=False,
                       request_sha256=self.request_sha256, intake_done=self.intake_done)

    # Each act answers once the procedure has taken it into account; the client reads the view by
    # query, so that an act adds only itself to the history. Each handler checks again what its
    # validator checked: acts accepted together run one after the other, and the first may have
    # changed the case (of two conflicting acts, the second is a conflict).

    @workflow.update
    async def record_declaration(self, actor: str, declaration: Declaration) -> None:
        self.validate_declaration(actor, declaration)
        self.declaration = declaration
        self.record(actor, "declaration_recorded", f"signed on {declaration.signed_on}")
        await self.moved_on_from("awaiting_declaration")

    @record_declaration.validator
    def validate_declaration(self, actor: str, declaration: Declaration) -> None:
        self.require_intake_done()
        self.require_actor(actor, self.sentencing, ("central_authority", "prison_service"), "record the declaration")
        self.require_not_future("signed_on", declaration.signed_on)
        self.require_stage("awaiting_declaration", "a declaration can be recorded")

    @workflow.update
    async def record_legal_review(self, actor: str, review: LegalReview) -> None:
        self.validate_legal_review(actor, review)
        assert self.eligibility is not None
        self.legal_review = review
        outcome = "satisfied" if review.dual_criminality == "satisfied" else "failed"
        self.eligibility.conditions = [
            c if c.condition != "dual_criminality" else EligibilityCondition(
                condition=c.condition, outcome=outcome, basis=c.basis,
                detail=f"{c.detail} — legal review by {actor}: {review.dual_criminality}")
            for c in self.eligibility.conditions]
        self.record(actor, "legal_review_recorded", f"dual criminality {review.dual_criminality}")
        await self.moved_on_from("awaiting_legal_review")

    @record_legal_review.validator
    def validate_legal_review(self, actor: str, review: LegalReview) -> None:
        self.require_intake_done()
        self.require_actor(actor, self.administering, ("central_authority",), "record the legal review")
        self.require_stage("awaiting_legal_review", "a legal review can be recorded")

    @workflow.update
    async def record_decision(self, actor: str, decision: Decision) -> None:
        self.validate_decision(actor, decision)
        self.decisions[decision.state] = RecordedDecision(
            state=decision.state, decision=decision.decision, grounds=decision.grounds, note=decision.note,
            authority=actor, at=workflow.now(), enforcement=decision.enforcement,
            converted_sentence=decision.converted_sentence)
        self.pending = [p for p in self.pending if p.authority != actor]
        self.publish()
        enforcement = {None: "", "continued": ", enforcement continued",
                       "converted": f", sentence converted to {decision.converted_sentence}"}[decision.enforcement]
        self.record(actor, f"decision_{decision.decision}",
                    decision.state + (f": {', '.join(decision.grounds)}" if decision.grounds else "") + enforcement)
        other = next(s for s in self.states if s != decision.state)
        self.notify(self.authorities[other].central_authority, "decision_recorded")
        if len(self.decisions) == 2 or decision.decision == "refuse":
            await self.moved_on_from("awaiting_consents")

    @record_decision.validator
    def validate_decision(self, actor: str, decision: Decision) -> None:
        self.require_intake_done()
        if decision.state not in self.states:
            raise invalid("state", f"state must be {or_list(self.states)}, a state of this case")
        self.require_actor(actor, self.authorities[decision.state], ("central_authority",),
                           f"decide for {decision.state}")
        allowed = self.allowed_refusal_grounds()
        cited = [g for g in decision.grounds if g not in allowed]
        if cited:
            raise invalid("grounds", f"grounds may cite only {or_list(allowed)} in this case, not "
                                     f"{or_list(cited)}")
        if problem := enforcement_problem(decision, self.request):
            raise invalid(*problem)
        self.require_stage("awaiting_consents", "a decision can be recorded")
        if decision.state in self.decisions:
            raise conflict(f"a decision for {decision.state} is already recorded: each state decides once")

    @workflow.update
    async def confirm_handover(self, actor: str, confirmation: HandoverConfirmation) -> None:
        self.validate_handover(actor, confirmation)
        assert self.handover is not None
        arranged = self.handover.place
        deviation = not is_arranged_point(confirmation.place, arranged)
        self.handover = Handover(place=confirmation.place, due_on=self.handover.due_on,
                                 completed_on=confirmation.completed_on, arranged_place=arranged, deviation=deviation,
                                 note=confirmation.note)
        self.record(actor, "handover_confirmed", f"completed on {confirmation.completed_on}"
                    + (f" at {confirmation.place}, a deviation from the arranged point ({arranged})" if deviation
                       else ""))
        await self.moved_on_from("awaiting_handover")

    @confirm_handover.validator
    def validate_handover(self, actor: str, confirmation: HandoverConfirmation) -> None:
        self.require_intake_done()
        self.require_actor(actor, self.administering, ("central_authority", "prison_service"),
                           "confirm the handover")
        self.require_not_future("completed_on", confirmation.completed_on)
        self.require_stage("awaiting_handover", "the handover can be confirmed")
        if self.handover is None:
            raise conflict("the handover is still being arranged; try again shortly")
        if self.handover.completed_on is not None:
            raise conflict("the handover is already confirmed")
        if confirmation.completed_on < self.stage_entered_on:
            raise invalid("completed_on", f"completed_on may not lie before {self.stage_entered_on}, the day both "
                                          "states had consented")
        if problem := handover_problem(confirmation, self.handover.place):
            raise invalid(*problem)

    @workflow.update
    async def withdraw(self, actor: str, withdrawal: Withdrawal) -> None:
        self.validate_withdrawal(actor, withdrawal)
        self.withdrawal = withdrawal
        self.record(actor, "withdrawn", f"on {withdrawal.withdrawn_on}")
        await workflow.wait_condition(lambda: self.stage in TERMINAL_STAGES)

    @withdraw.validator
    def validate_withdrawal(self, actor: str, withdrawal: Withdrawal) -> None:
        self.require_intake_done()
        self.require_actor(actor, self.sentencing, ("central_authority", "prison_service"), "withdraw the case")
        self.require_not_future("withdrawn_on", withdrawal.withdrawn_on)
        if self.stage in TERMINAL_STAGES:
            raise conflict(f"the case is closed ({self.stage}): it can no longer be withdrawn")
        if self.withdrawal is not None:
            raise conflict("the case is already being withdrawn")
        if self.closing():
            raise conflict("the case is closing (" + ("the handover is confirmed" if self.refusal() is None
                                                     else "a state has refused the transfer")
                           + "): it can no longer be withdrawn")

    async def moved_on_from(self, stage: TransferStage) -> None:
        """Until the procedure has taken the act into account: the next waiting or terminal
        stage, never the transient eligibility check."""
        await workflow.wait_condition(lambda: self.stage not in (stage, "checking_eligibility"))

    @workflow.query
    def view(self) -> TransferView:
        return TransferView(
            reference=self.request.reference, stage=self.stage, outcome=self.outcome, grounds=self.grounds,
            treaty=self.treaty.id if self.treaty else None,
            sentencing_state=self.request.sentencing_state, administering_state=self.request.administering_state,
            received_on=self.received_on, opened_at=self.opened_at,
            eligibility=self.eligibility.conditions if self.eligibility else [],
            release_date=self.release_date(), decisions=list(self.decisions.values()), handover=self.handover,
            enforcement=self.enforcement().enforcement if self.enforcement() else None,
            initiated_by=self.request.initiated_by, previous_reference=self.request.previous_reference,
            pending_actions=list(self.pending), overdue=any(p.overdue for p in self.pending),
            events=list(self.events))

    # ---- validation helpers ---------------------------------------------------------------

    def require_actor(self, actor: str, state: StateAuthorities, roles: tuple[str, ...], what: str) -> None:
        """``actor`` must be the authority of ``state`` of one of ``roles`` (the central authority
        stands in for a state without a prison service)."""
        acting = [(role, getattr(state, role)) for role in roles]
        if actor not in {a for _, a in acting}:
            raise not_permitted(only(what, (state.state, acting)))

    def require_intake_done(self) -> None:
        if not self.intake_done:
            raise conflict("the case is still being opened; try again shortly")

    def require_stage(self, stage: TransferStage, what: str) -> None:
        """``what``: the act in the passive (``a decision can be recorded``)."""
        if self.withdrawal is not None:
            raise conflict("the case is being withdrawn: no more acts are possible on it")
        if self.stage in TERMINAL_STAGES:
            raise conflict(f"the case is closed ({self.stage}): no more acts are possible on it")
        if self.stage != stage:
            raise conflict(f"the case is in stage {self.stage}: {what} only in stage {stage}")

    def require_not_future(self, field: str, day: date) -> None:
        if day > workflow.now().date():
            raise invalid(field, f"{field} may not lie in the future")

    def allowed_refusal_grounds(self) -> list[str]:
        return [*ALWAYS_OPEN_GROUNDS, *(self.rules.refusal_grounds.value if self.treaty else [])]

    # ---- state, visibility and notices ----------------------------------------------------

    @property
    def states(self) -> tuple[str, str]:
        return self.request.sentencing_state, self.request.administering_state

    @property
    def sentencing(self) -> StateAuthorities:
        return self.authorities[self.request.sentencing_state]

    @property
    def administering(self) -> StateAuthorities:
        return self.authorities[self.request.administering_state]

    @property
    def rules(self):
        assert self.treaty is not None and self.treaty.transfer is not None
        return self.treaty.transfer

    @property
    def deadlines(self) -> Deadlines:
        assert self.treaty is not None
        return self.treaty.deadlines

    def withdrawn(self) -> bool:
        return self.withdrawal is not None


    @property
    def reminder_days(self) -> int:  # type: ignore[override]
        return self.deadlines.reminder_before if self.treaty else 7

    def closing(self) -> bool:
        """An act has settled how the case ends, and the procedure is about to close it."""
        return self.refusal() is not None or (self.handover is not None and self.handover.completed_on is not None)

    def enforcement(self) -> RecordedDecision | None:
        """The administering state's consent, when it stated how it enforces the sentence."""
        consent = self.decisions.get(self.request.administering_state)
        return consent if consent is not None and consent.enforcement else None

    def release_date(self) -> date | None:
        """The full-term end, or that of the converted term once the administering state converted it."""
        converted = self.enforcement().converted_sentence if self.enforcement() else None
        if converted is not None:
            return release_date_of(self.request, converted)
        return self.eligibility.release_date if self.eligibility else None

    def refusal(self) -> RecordedDecision | None:
        return next((d for d in self.decisions.values() if d.decision == "refuse"), None)

    def eligibility_grounds(self) -> list[str]:
        return self.eligibility.grounds if self.eligibility else []

    def needs_legal_review(self) -> bool:
        return bool(self.eligibility and self.eligibility.needs_review)

    def enter(self, stage: TransferStage) -> None:
        if stage != self.stage:
            self.record("system", "stage_entered", stage)
        self.stage = stage
        self.stage_entered_on = workflow.now().date()
        self.intake_done = self.intake_done or stage != "checking_eligibility"
        self.publish()

    def publish(self) -> None:
        """Search attributes and the Temporal UI's current details, after every change."""
        self.upsert_case_attributes(self.states, self.treaty.id if self.treaty else None, self.outcome)
        lines = [f"**Transfer {self.request.reference}** ({self.request.sentencing_state} → "
                 f"{self.request.administering_state}), treaty {self.treaty.id if self.treaty else '—'}",
                 f"**Stage:** {self.stage}" + (f" — outcome {self.outcome}" if self.outcome else "")]
        if self.grounds:
            lines.append(f"**Grounds:** {', '.join(self.grounds)}")
        lines.append(f"**Initiated by:** the {self.request.initiated_by.replace('_', ' ')}"
                     + (f", following {self.request.previous_reference}" if self.request.previous_reference else ""))
        if enforcement := self.enforcement():
            lines.append(f"**Enforcement:** {enforcement.enforcement}"
                         + (f" ({enforcement.converted_sentence}), release {self.release_date()}"
                            if enforcement.converted_sentence else ""))
        if self.handover is not None and self.handover.deviation:
            lines.append(f"**Handover:** at {self.handover.place}, not the arranged point")
        for p in self.pending:
            lines.append(f"**Waiting for:** {p.authority} to {p.action}, by {p.due_on}"
                         + (" — **OVERDUE**" if p.overdue else ""))
        workflow.set_current_details("\n\n".join(lines))
