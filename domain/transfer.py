"""Transfer of sentenced persons: what the parties send in (requests and acts) and what the case
shows (the view of API.md). Pure pydantic models; validation here is what does not depend on
the clock or on reference data (see ``domain.intake`` for that).

Every input is bounded (API.md, "Sizes"), so that no case can outgrow what the engine stores and
no sentence can overflow date arithmetic: lists, text and numbers by ``AtMost``, dates by ``Day``.
The workflows store these models in their history, so a bound may only tighten *new* input:
whatever a running case already holds must still validate when it replays."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from domain.case import CaseEvent, PendingAction


@dataclass(frozen=True)
class AtMost:
    """Annotation: at most ``limit`` characters of a string, items of a list, or as the value of an
    integer. The error says it plainly, to follow the field's name ("may have at most 50
    offences", "may be at most 100 years") and the JSON schema carries the bound (maxLength,
    maxItems, maximum)."""

    limit: int
    unit: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        shown = handler(schema)
        key = {"string": "maxLength", "array": "maxItems", "integer": "maximum"}[shown["type"]]
        return {**shown, key: self.limit}

    def _check(self, value: Any) -> Any:
        size = value if isinstance(value, int) else len(value)
        if size > self.limit:
            raise PydanticCustomError("too_large" if isinstance(value, int) else "too_long",
                                      f"may {'be' if isinstance(value, int) else 'have'} at most {self.limit:,} "
                                      f"{self.unit}", {"max": self.limit})
        return value


EARLIEST_DAY = date(1900, 1, 1)


def _from_earliest_day(day: date) -> date:
    if day < EARLIEST_DAY:
        raise PydanticCustomError("date_too_early", "must be 1900-01-01 or later")
    return day


# Every date a client sends: none before 1900 (a sentence begun in year 1 with large credits
# would run date arithmetic below date.min). Dates that need the clock are checked at intake.
Day = Annotated[date, AfterValidator(_from_earliest_day)]

StateCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{3,64}$")]
IccsCode = Annotated[str, StringConstraints(pattern=r"^\d{2}(\d{2}(\d{1,2})?)?$")]
# free text (description, note, reason, questions, answers, purpose, facts, subject)
TEXT_LIMIT = 10_000
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AtMost(TEXT_LIMIT, "characters")]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True), AtMost(TEXT_LIMIT, "characters")]
# names of persons, courts, authorities and places
NAME_LIMIT = 300
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1), AtMost(NAME_LIMIT, "characters")]
# sentences: terms and credits
DAYS_LIMIT = 36_600
Years = Annotated[int, Field(ge=0), AtMost(100, "years")]
Months = Annotated[int, Field(ge=0), AtMost(1_200, "months")]
Days = Annotated[int, Field(ge=0), AtMost(DAYS_LIMIT, "days")]

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
    full_name: Name
    date_of_birth: Day  # in the past: checked at intake (domain.intake), it needs the clock
    citizenships: Annotated[list[StateCode], Field(min_length=1), AtMost(20, "citizenships")]


class Offence(Body):
    article: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    iccs: IccsCode | None = None
    description: OptionalText = ""


Offences = Annotated[list[Offence], Field(min_length=1), AtMost(50, "offences")]


class Judgment(Body):
    court: Name
    date: Day
    final: bool
    offences: Offences


class Sentence(Body):
    indeterminate: bool = False
    start_date: Day
    years: Years = 0
    months: Months = 0
    days: Days = 0
    pretrial_credit_days: Days = 0
    remission_days: Days = 0

    @model_validator(mode="after")
    def _term(self) -> Sentence:
        term = (self.years, self.months, self.days)
        if self.indeterminate and any(term):
            raise ValueError("years: an indeterminate sentence has no term: send years, months and days as 0")
        if not self.indeterminate and not any(term):
            raise ValueError("years: a determinate sentence needs a term: send years, months or days (or set "
                             "indeterminate to true)")
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

    signed_on: Day
    voluntary: bool
    informed_of_consequences: bool

    @model_validator(mode="after")
    def _freely_and_informed(self) -> Declaration:
        missing = [f for f in ("voluntary", "informed_of_consequences") if not getattr(self, f)]
        if missing:
            raise ValueError(f"{missing[0]}: {' and '.join(missing)} must be true: a declaration counts only when "
                             "the person made it voluntarily and informed of its consequences")
        return self


class TransferRequest(Body):
    reference: Reference
    sentencing_state: StateCode
    administering_state: StateCode
    received_on: Day | None = None
    person: Person
    judgment: Judgment
    sentence: Sentence
    financial_obligations: Annotated[list[FinancialObligation], AtMost(50, "financial obligations")] = []
    pending_proceedings: Annotated[list[PendingProceeding], AtMost(20, "pending proceedings")] = []
    declaration: Declaration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TransferRequest:
        if self.sentencing_state == self.administering_state:
            raise ValueError("administering_state: administering_state must differ from sentencing_state")
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
            raise ValueError("grounds: grounds are required to refuse: cite at least one")
        if self.decision == "consent" and self.grounds:
            raise ValueError("grounds: grounds must be empty to consent")
        twice = sorted({g for g in self.grounds if self.grounds.count(g) > 1})
        if twice:
            raise ValueError(f"grounds: grounds must cite each ground once ({', '.join(twice)} "
                             f"{'is' if len(twice) == 1 else 'are'} cited more than once)")
        return self


class HandoverConfirmation(Body):
    completed_on: Day
    place: Name


class Withdrawal(Body):
    withdrawn_on: Day
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
