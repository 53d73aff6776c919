"""Transfer of sentenced persons: what the parties send in (requests and acts) and what the case
shows (the view of API.md). Pure pydantic models; validation here is what does not depend on
the clock or on reference data (see ``domain.intake`` for that)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from domain.case import CaseEvent, PendingAction

StateCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{3,64}$")]
IccsCode = Annotated[str, StringConstraints(pattern=r"^\d{2}(\d{2}(\d{1,2})?)?$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]

TransferStage = Literal[
    "awaiting_declaration", "checking_eligibility", "awaiting_legal_review", "awaiting_consents",
    "awaiting_handover", "transferred", "refused", "withdrawn", "expired",
]
TERMINAL_STAGES: frozenset[str] = frozenset({"transferred", "refused", "withdrawn", "expired"})
Condition = Literal[
    "nationality", "final_judgment", "remaining_term", "dual_criminality", "financial_obligations",
    "pending_proceedings",
]
ConditionOutcome = Literal["satisfied", "failed", "needs_review", "not_applicable"]


class Body(BaseModel):
    """What a client sends: strict, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid")


class Person(Body):
    full_name: Text
    date_of_birth: date
    citizenships: list[StateCode] = Field(min_length=1)


class Offence(Body):
    article: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    iccs: IccsCode | None = None
    description: OptionalText = ""


class Judgment(Body):
    court: Text
    date: date
    final: bool
    offences: list[Offence] = Field(min_length=1)


class Sentence(Body):
    indeterminate: bool = False
    start_date: date
    years: int = Field(0, ge=0, le=100)
    months: int = Field(0, ge=0, le=1200)
    days: int = Field(0, ge=0, le=36500)
    pretrial_credit_days: int = Field(0, ge=0, le=36500)
    remission_days: int = Field(0, ge=0, le=36500)

    @model_validator(mode="after")
    def _term(self) -> Sentence:
        term = (self.years, self.months, self.days)
        if self.indeterminate and any(term):
            raise ValueError("years: an indeterminate sentence has no years, months or days")
        if not self.indeterminate and not any(term):
            raise ValueError("years: a determinate sentence needs years, months or days")
        return self


class FinancialObligation(Body):
    description: OptionalText = ""
    amount: Annotated[str, StringConstraints(pattern=r"^\d{1,15}(\.\d{1,4})?$")]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    settled: bool


class PendingProceeding(Body):
    kind: Literal["investigation", "trial"]
    description: OptionalText = ""


class Declaration(Body):
    """The sentenced person's declaration of intent to serve the sentence at home."""

    signed_on: date
    voluntary: bool
    informed_of_consequences: bool

    @model_validator(mode="after")
    def _freely_and_informed(self) -> Declaration:
        missing = [f for f in ("voluntary", "informed_of_consequences") if not getattr(self, f)]
        if missing:
            raise ValueError(f"{missing[0]}: a declaration must be {' and '.join(missing)} (true)")
        return self


class TransferRequest(Body):
    reference: Reference
    sentencing_state: StateCode
    administering_state: StateCode
    received_on: date | None = None
    person: Person
    judgment: Judgment
    sentence: Sentence
    financial_obligations: list[FinancialObligation] = []
    pending_proceedings: list[PendingProceeding] = []
    declaration: Declaration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TransferRequest:
        if self.sentencing_state == self.administering_state:
            raise ValueError("administering_state: sentencing_state and administering_state must differ")
        if self.received_on and self.judgment.date > self.received_on:
            raise ValueError("judgment.date: judgment.date may not lie after received_on")
        return self


def request_digest(request: BaseModel) -> str:
    """SHA-256 of the request's canonical JSON (keys sorted, defaults applied)."""
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


# --- acts on an open case ------------------------------------------------------------------


class LegalReview(Body):
    dual_criminality: Literal["satisfied", "not_satisfied"]
    note: OptionalText = ""


class Decision(Body):
    state: StateCode
    decision: Literal["consent", "refuse"]
    grounds: list[str] = []
    note: OptionalText = ""

    @model_validator(mode="after")
    def _grounds(self) -> Decision:
        if self.decision == "refuse" and not self.grounds:
            raise ValueError("grounds: grounds are required to refuse")
        if self.decision == "consent" and self.grounds:
            raise ValueError("grounds: grounds must be empty for consent")
        if len(set(self.grounds)) != len(self.grounds):
            raise ValueError("grounds: a ground is cited twice")
        return self


class HandoverConfirmation(Body):
    completed_on: date
    place: Text


class Withdrawal(Body):
    withdrawn_on: date
    reason: Text


# --- the case as shown ---------------------------------------------------------------------


class EligibilityCondition(BaseModel):
    condition: Condition
    outcome: ConditionOutcome
    detail: str
    basis: str


class RecordedDecision(BaseModel):
    state: str
    decision: Literal["consent", "refuse"]
    grounds: list[str]
    note: str
    authority: str
    at: datetime


class Handover(BaseModel):
    place: str
    due_on: date
    completed_on: date | None = None


class TransferView(BaseModel):
    reference: str
    kind: Literal["transfer"] = "transfer"
    stage: TransferStage
    outcome: TransferStage | None = None
    grounds: list[str] = []
    treaty: str | None = None
    sentencing_state: str
    administering_state: str
    received_on: date
    opened_at: datetime
    eligibility: list[EligibilityCondition] = []
    release_date: date | None = None
    decisions: list[RecordedDecision] = []
    handover: Handover | None = None
    pending_actions: list[PendingAction] = []
    overdue: bool = False
    events: list[CaseEvent] = []
