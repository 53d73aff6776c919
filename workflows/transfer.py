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
import base64
from datetime import date, timedelta
from typing import get_args

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.case import Actor, acting
    from activities import handover as handovers, intake, letters
    from domain.eligibility import Eligibility, release_date_of, unassessed
    from domain.parties import StateAuthorities
    from domain.transfer import (
        TERMINAL_STAGES, Declaration, Decision, EligibilityCondition, Handover, HandoverConfirmation,
        LegalReview, RecordedDecision, TransferRequest, TransferStage, TransferView, Withdrawal, enforcement_problem,
        handover_problem, is_arranged_point,
    )
    from workflows.rejection import conflict, invalid, or_list

from workflows.case import PUBLISH_CHANGES, STEP, CaseWithdrawn, CaseWorkflow

ALWAYS_OPEN_GROUNDS = ("not_national", "state_declined")
# 0.3.0: a letter to the sentenced person (a person_notice document of the case file) when eligibility
# is decided, when each state decides, when the handover is arranged and when the case closes
PERSON_NOTICES = "person-notices"


class OpenTransfer(BaseModel):
    """The workflow's input: the request as received, and the authority that filed it."""

    request: TransferRequest
    opened_by: str


@workflow.defn(name="Transfer")
class TransferWorkflow(CaseWorkflow):
    kind = search_kind = "transfer"
    noun, title = "case", "Transfer"
    state_fields = ("sentencing_state", "administering_state")
    first_stage, stages, terminal = "checking_eligibility", get_args(TransferStage), TERMINAL_STAGES
    transient = frozenset({"checking_eligibility"})
    actions = {"awaiting_declaration": "record_declaration", "awaiting_legal_review": "legal_review",
               "awaiting_consents": "decide", "awaiting_handover": "confirm_handover"}

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case.request, case.opened_by)
        self.request: TransferRequest = case.request
        self.declaration: Declaration | None = case.request.declaration
        self.eligibility: Eligibility | None = None
        self.legal_review: LegalReview | None = None
        self.decisions: dict[str, RecordedDecision] = {}
        self.handover: Handover | None = None
        self.withdrawal: Withdrawal | None = None
        self.letters: list[asyncio.Task[None]] = []  # to the sentenced person, being written

    # ---- the procedure ------------------------------------------------------------------

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        await self.open(f"{self.request.sentencing_state} → {self.request.administering_state}, "
                        f"received {self.received_on}, initiated by the {self.request.initiated_by.replace('_', ' ')}"
                        + (f", following {self.request.previous_reference}" if self.request.previous_reference else ""))
        if self.treaty is None:
            return await self.close("refused", ["no_treaty"])
        try:
            if self.declaration is None and self.rules.declaration_required.value:
                if not await self.await_declaration():
                    return await self.close("expired", ["no_declaration"])
            await self.check_eligibility()
            if self.eligibility_grounds():  # the closing letter says so, with the grounds: one letter
                return await self.close("refused", self.eligibility_grounds())
            self.write_to_person(letters.EligibilityDecided())
            if self.needs_legal_review():
                await self.await_legal_review()
                if self.eligibility_grounds():
                    return await self.close("refused", self.eligibility_grounds())
                self.write_to_person(letters.EligibilityDecided())
            refusal = await self.await_consents()
            if refusal is not None:
                return await self.close("refused", refusal.grounds)
            await self.arrange_handover()
            await self.await_handover()
            return await self.close("transferred", [])
        except CaseWithdrawn:
            return await self.close("withdrawn", [])

    async def await_declaration(self) -> bool:
        self.enter("awaiting_declaration")
        return await self.await_acts([self.sentencing.prison_service],
                                     self.deadlines.declaration, lambda: self.declaration is not None, expires=True)

    async def check_eligibility(self) -> None:
        self.enter("checking_eligibility")
        assert self.treaty is not None
        try:
            self.eligibility = await workflow.execute_activity(
                intake.check_eligibility,
                intake.EligibilityQuestion(request=self.request, treaty_id=self.treaty.id, received_on=self.received_on),
                summary="Check eligibility (all six conditions)", **STEP)
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
        await self.await_acts([self.administering.central_authority],
                              self.deadlines.legal_review, lambda: self.legal_review is not None)

    async def await_consents(self) -> RecordedDecision | None:
        """Both states decide, in either order; the first refusal ends the case."""
        self.enter("awaiting_consents")
        await self.await_acts(
            [self.authorities[s].central_authority for s in self.states],
            self.deadlines.consent, lambda: len(self.decisions) == 2 or self.refusal() is not None)
        return self.refusal()

    async def arrange_handover(self) -> None:
        self.enter("awaiting_handover")
        assert self.treaty is not None
        due_on = (workflow.now() + timedelta(days=self.deadlines.handover)).date()
        self.handover = await workflow.execute_activity(
            handovers.arrange_handover,
            handovers.HandoverPlan(reference=self.reference, treaty_id=self.treaty.id, due_on=due_on),
            summary="Arrange the handover at the treaty's handover point", **STEP)
        self.record("system", "handover_arranged", f"at {self.handover.place}, by {self.handover.due_on}")
        self.write_to_person(letters.HandoverArranged(handover=self.handover))
        for state in self.states:
            self.notify(self.authorities[state].prison_service, "handover_arranged", due_on=self.handover.due_on)

    # ---- letters to the sentenced person ---------------------------------------------------

    def write_to_person(self, occasion: letters.Occasion) -> None:
        """A letter, written and kept in the case file without holding up the case; recorded
        (``document_added``) once stored. Its document id is drawn here, so a retry stores it once."""
        if not workflow.patched(PERSON_NOTICES):
            return
        document_id = "doc-" + base64.b32encode(workflow.uuid4().bytes).decode().rstrip("=").lower()
        order = letters.PersonNoticeOrder(
            reference=self.reference, document_id=document_id, issued_at=workflow.now(),
            notice=letters.PersonNoticeInput(occasion=occasion, language=self.request.person.language,
                                             facts=letters.LetterFacts.of(self.view(), self.request.person.full_name),
                                             issued_on=workflow.now().date()))

        async def write() -> None:
            try:
                document = await workflow.execute_activity_method(
                    letters.Letters.write_person_notice, order, summary=f"Write to the sentenced person: {occasion.kind}",
                    **STEP)
            except ActivityError:  # a letter that cannot be written: people see it in the trail
                self.record("system", "person_notice_failed", occasion.kind)
                return
            self.documents.append(document)
            self.record("system", "document_added", f"{document.type} {document.document_id}")

        self.letters.append(asyncio.create_task(write()))

    async def before_archive(self, outcome: str, grounds: list[str]) -> None:
        """The closing letter, and every letter still being written, in the archived case file."""
        self.write_to_person(letters.CaseClosed(outcome=outcome, grounds=grounds))
        await asyncio.gather(*self.letters)

    async def await_handover(self) -> None:
        await self.await_acts([self.administering.prison_service],
                              self.deadlines.handover, lambda: self.handover is not None
                              and self.handover.completed_on is not None)

    # ---- acts of the authorities: updates with validators ---------------------------------

    # Each act answers once the procedure has taken it into account; the client reads the view by
    # query, so that an act adds only itself to the history. Each handler checks again what its
    # validator checked: acts accepted together run one after the other, and the first may have
    # changed the case (of two conflicting acts, the second is a conflict).

    @workflow.update
    async def record_declaration(self, by: str | Actor, declaration: Declaration) -> None:
        actor, user = acting(by)
        self.validate_declaration(actor, declaration)
        self.declaration = declaration
        self.record(actor, "declaration_recorded", f"signed on {declaration.signed_on}", user=user)
        await self.moved_on_from("awaiting_declaration")

    @record_declaration.validator
    def validate_declaration(self, by: str | Actor, declaration: Declaration) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.sentencing, ("central_authority", "prison_service"), "record the declaration")
        self.require_not_future("signed_on", declaration.signed_on)
        self.require_stage("awaiting_declaration", "a declaration can be recorded")
        if self.declaration is not None:
            raise conflict("the declaration is already recorded")

    @workflow.update
    async def record_legal_review(self, by: str | Actor, review: LegalReview) -> None:
        actor, user = acting(by)
        self.validate_legal_review(actor, review)
        assert self.eligibility is not None
        self.legal_review = review
        outcome = "satisfied" if review.dual_criminality == "satisfied" else "failed"
        self.eligibility.conditions = [
            c if c.condition != "dual_criminality" else EligibilityCondition(
                condition=c.condition, outcome=outcome, basis=c.basis,
                detail=f"{c.detail} — legal review by {actor}: {review.dual_criminality}")
            for c in self.eligibility.conditions]
        self.record(actor, "legal_review_recorded", f"dual criminality {review.dual_criminality}", user=user)
        await self.moved_on_from("awaiting_legal_review")

    @record_legal_review.validator
    def validate_legal_review(self, by: str | Actor, review: LegalReview) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.administering, ("central_authority",), "record the legal review")
        self.require_stage("awaiting_legal_review", "a legal review can be recorded")
        if self.legal_review is not None:
            raise conflict("the legal review is already recorded")

    @workflow.update
    async def record_decision(self, by: str | Actor, decision: Decision) -> None:
        actor, user = acting(by)
        self.validate_decision(actor, decision)
        self.decisions[decision.state] = RecordedDecision(
            state=decision.state, decision=decision.decision, grounds=decision.grounds, note=decision.note,
            authority=actor, at=workflow.now(), enforcement=decision.enforcement,
            converted_sentence=decision.converted_sentence)
        self.pending = [p for p in self.pending if p.authority != actor]
        self.end_assignments()
        settles = len(self.decisions) == 2 or decision.decision == "refuse"
        if not (settles and workflow.patched(PUBLISH_CHANGES)):  # else the stage it settles publishes
            self.publish()
        enforcement = {None: "", "continued": ", enforcement continued",
                       "converted": f", sentence converted to {decision.converted_sentence}"}[decision.enforcement]
        self.record(actor, f"decision_{decision.decision}",
                    decision.state + (f": {', '.join(decision.grounds)}" if decision.grounds else "") + enforcement,
                    user=user)
        other = next(s for s in self.states if s != decision.state)
        self.notify(self.authorities[other].central_authority, "decision_recorded")
        if decision.decision == "consent":  # a refusal ends the case: the closing letter says it, with its grounds
            self.write_to_person(letters.DecisionRecorded(decision=self.decisions[decision.state]))
        if settles:
            await self.moved_on_from("awaiting_consents")

    @record_decision.validator
    def validate_decision(self, by: str | Actor, decision: Decision) -> None:
        actor = acting(by)[0]
        self.require_ready()
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
    async def confirm_handover(self, by: str | Actor, confirmation: HandoverConfirmation) -> None:
        actor, user = acting(by)
        self.validate_handover(actor, confirmation)
        assert self.handover is not None
        arranged = self.handover.place
        deviation = not is_arranged_point(confirmation.place, arranged)
        self.handover = Handover(place=confirmation.place, due_on=self.handover.due_on,
                                 completed_on=confirmation.completed_on, arranged_place=arranged, deviation=deviation,
                                 note=confirmation.note)
        self.record(actor, "handover_confirmed", f"completed on {confirmation.completed_on}"
                    + (f" at {confirmation.place}, a deviation from the arranged point ({arranged})" if deviation
                       else ""), user=user)
        await self.moved_on_from("awaiting_handover")

    @confirm_handover.validator
    def validate_handover(self, by: str | Actor, confirmation: HandoverConfirmation) -> None:
        actor = acting(by)[0]
        self.require_ready()
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
    async def withdraw(self, by: str | Actor, withdrawal: Withdrawal) -> None:
        actor, user = acting(by)
        self.validate_withdrawal(actor, withdrawal)
        self.withdrawal = withdrawal
        self.record(actor, "withdrawn", f"on {withdrawal.withdrawn_on}", user=user)
        await workflow.wait_condition(lambda: self.stage in TERMINAL_STAGES)

    @withdraw.validator
    def validate_withdrawal(self, by: str | Actor, withdrawal: Withdrawal) -> None:
        actor = acting(by)[0]
        self.require_ready()
        self.require_actor(actor, self.sentencing, ("central_authority", "prison_service"), "withdraw the case")
        self.require_not_future("withdrawn_on", withdrawal.withdrawn_on)
        self.require_withdrawable(self.closing())

    async def moved_on_from(self, stage: TransferStage) -> None:
        """Until the procedure has taken the act into account: the next waiting or terminal
        stage, never the transient eligibility check."""
        await workflow.wait_condition(lambda: self.stage != stage and self.stage not in self.transient)

    @workflow.query
    def view(self) -> TransferView:
        return TransferView(
            reference=self.reference, stage=self.stage, outcome=self.outcome, grounds=self.grounds,
            treaty=self.treaty.id if self.treaty else None,
            sentencing_state=self.request.sentencing_state, administering_state=self.request.administering_state,
            received_on=self.received_on, opened_at=self.opened_at,
            eligibility=self.eligibility.conditions if self.eligibility else [],
            release_date=self.release_date(), decisions=list(self.decisions.values()), handover=self.handover,
            enforcement=self.enforcement().enforcement if self.enforcement() else None,
            initiated_by=self.request.initiated_by, previous_reference=self.request.previous_reference,
            pending_actions=list(self.pending), overdue=any(p.overdue for p in self.pending),
            events=list(self.events), documents=list(self.documents))

    # ---- the state of the case ------------------------------------------------------------

    def allowed_refusal_grounds(self) -> list[str]:
        return [*ALWAYS_OPEN_GROUNDS, *(self.rules.refusal_grounds.value if self.treaty else [])]

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

    def closing(self) -> str | None:
        """Why the case can no longer be withdrawn although it is open: an act has settled how it
        ends, and the procedure is about to close it."""
        if self.refusal() is not None:
            return "the case is closing (a state has refused the transfer): it can no longer be withdrawn"
        if self.handover is not None and self.handover.completed_on is not None:
            return "the case is closing (the handover is confirmed): it can no longer be withdrawn"
        return None

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

    def details(self) -> list[str]:
        lines = [f"**Initiated by:** the {self.request.initiated_by.replace('_', ' ')}"
                 + (f", following {self.request.previous_reference}" if self.request.previous_reference else "")]
        if enforcement := self.enforcement():
            lines.append(f"**Enforcement:** {enforcement.enforcement}"
                         + (f" ({enforcement.converted_sentence}), release {self.release_date()}"
                            if enforcement.converted_sentence else ""))
        if self.handover is not None and self.handover.deviation:
            lines.append(f"**Handover:** at {self.handover.place}, not the arranged point")
        return lines


transfer_workflow_id = TransferWorkflow.workflow_id
