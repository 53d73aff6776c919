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
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from domain.case import CaseEvent, PendingAction
from domain.documents import DocumentRecord
from domain.term import full_term_end


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

# in order: StageTimes names a stage by its index here (domain/caseload.py), so a new stage goes last
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
# who asked for the transfer: the person may ask either state, either state may ask (ETS 112 Art. 2)
InitiatedBy = Literal["sentenced_person", "sentencing_state", "administering_state"]
Enforcement = Literal["continued", "converted"]  # ETS 112 Art. 9: continued enforcement or conversion


class Body(BaseModel):
    """What a client sends: strict, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid")


class Person(Body):
    full_name: Name
    date_of_birth: Day  # in the past: checked at intake (domain.intake), it needs the clock
    citizenships: Annotated[list[StateCode], Field(min_length=1), AtMost(20, "citizenships")]
    language: Literal["ru", "en"] = "ru"  # of the letters the system writes to the person (API.md)


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
    initiated_by: InitiatedBy = "sentenced_person"
    # an earlier, closed case between the same two states that this one follows (a new request once
    # the ground of a refusal is gone); that it exists and may be read is checked where cases are read
    previous_reference: Reference | None = None

    # fields added after cases were opened: left out of the request's digest while they hold their
    # default, so that the digest of a request opened before them does not change
    DIGEST_OMITS_DEFAULTS: ClassVar[tuple[str, ...]] = ("initiated_by", "previous_reference", "person.language")

    @model_validator(mode="after")
    def _consistent(self) -> TransferRequest:
        if self.sentencing_state == self.administering_state:
            raise ValueError("administering_state: administering_state must differ from sentencing_state")
        if self.previous_reference == self.reference:
            raise ValueError("previous_reference: previous_reference names an earlier case, not this one")
        if self.received_on and self.judgment.date > self.received_on:
            raise ValueError("judgment.date: judgment.date may not lie after received_on")
        return self


def request_digest(request: BaseModel) -> str:
    """SHA-256 of the request's canonical JSON (keys sorted, defaults applied, except those of
    fields added later: ``DIGEST_OMITS_DEFAULTS``)."""
    dumped = request.model_dump(mode="json")
    for path in getattr(request, "DIGEST_OMITS_DEFAULTS", ()):  # "field" or "field.subfield"
        *parents, name = path.split(".")
        model, values = request, dumped
        for parent in parents:
            model, values = getattr(model, parent), values[parent]
        if getattr(model, name) == type(model).model_fields[name].default:
            values.pop(name)
    body = json.dumps(dumped, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


# --- acts on an open case ------------------------------------------------------------------


class LegalReview(Body):
    dual_criminality: Literal["satisfied", "not_satisfied"]
    note: OptionalText = ""


class Term(Body):
    """A term of imprisonment: the sentence as converted by the administering state."""

    years: Years = 0
    months: Months = 0
    days: Days = 0

    def __str__(self) -> str:
        return f"{self.years} years, {self.months} months and {self.days} days"


class Decision(Body):
    state: StateCode
    decision: Literal["consent", "refuse"]
    grounds: list[str] = []
    note: OptionalText = ""
    # the administering state's choice, with its consent (whose state it is, the case knows:
    # ``enforcement_problem``)
    enforcement: Enforcement | None = None
    converted_sentence: Term | None = None

    @model_validator(mode="after")
    def _enforcement(self) -> Decision:
        if self.enforcement and self.decision != "consent":
            raise ValueError("enforcement: enforcement is stated only with a consent")
        if self.enforcement == "converted" and self.converted_sentence is None:
            raise ValueError("converted_sentence: converted_sentence is required when enforcement is converted: "
                             "give the converted term in years, months and days")
        if self.converted_sentence is not None and self.enforcement != "converted":
            raise ValueError("converted_sentence: converted_sentence is given only when enforcement is converted")
        if self.converted_sentence is not None and not any(
                (self.converted_sentence.years, self.converted_sentence.months, self.converted_sentence.days)):
            raise ValueError("converted_sentence: the converted term needs years, months or days")
        return self

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


def enforcement_problem(decision: Decision, request: TransferRequest) -> tuple[str, str] | None:
    """What the case says of a decision's ``enforcement``: only the administering state states it,
    and a converted term may not aggravate the imposed sentence (ETS 112 Art. 11(1)(d)): it may not
    end later than the imposed one, counted from the same start date with the same credits."""
    if decision.enforcement is None:
        return None
    if decision.state != request.administering_state:
        return "enforcement", (f"enforcement is stated by the administering state ({request.administering_state}) "
                               f"with its consent, not by {decision.state}")
    converted, imposed = decision.converted_sentence, request.sentence
    if converted is not None and not imposed.indeterminate and (
            full_term_end(imposed.start_date, converted.years, converted.months, converted.days)
            > full_term_end(imposed.start_date, imposed.years, imposed.months, imposed.days)):
        return "converted_sentence", (f"converted_sentence may not aggravate the imposed sentence of "
                                      f"{Term(years=imposed.years, months=imposed.months, days=imposed.days)}")
    return None


class HandoverConfirmation(Body):
    completed_on: Day
    place: Name
    note: OptionalText = ""  # required when the place is not the arranged point: why


# the arranged place when the treaty names no handover point: any place is then the agreed one
TO_BE_AGREED = "to be agreed between the central authorities"
_DASHES_AND_SPACES = re.compile(r"[\s\-\u2010-\u2015]+")
_STATE_IN_PARENTHESES = re.compile(r"\([^)]*\)")
_SIDES = re.compile(r"\s[\-\u2013\u2014]\s")


def _place_key(place: str) -> str:
    key = _DASHES_AND_SPACES.sub("", _STATE_IN_PARENTHESES.sub("", place).casefold())
    return key.removesuffix("bordercrossing")


def is_arranged_point(place: str, arranged: str) -> bool:
    """Whether ``place`` is the arranged handover point, compared without regard to case, spaces
    and dashes: the whole point, or one side of a border crossing (``Zhibek Zholy`` for
    ``Zhibek Zholy (KZ) – Gishtkuprik (UZ) border crossing``). A point still to be agreed is
    wherever the handover took place."""
    if arranged == TO_BE_AGREED:
        return True
    return _place_key(place) in {_place_key(arranged), *(_place_key(side) for side in _SIDES.split(arranged))}


def handover_problem(confirmation: HandoverConfirmation, arranged: str) -> tuple[str, str] | None:
    """A handover elsewhere than the arranged point needs a note saying why (API.md)."""
    if not confirmation.note and not is_arranged_point(confirmation.place, arranged):
        return "note", (f"note is required when the handover took place elsewhere than the arranged point "
                        f"({arranged}): say why")
    return None


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
    enforcement: Enforcement | None = None
    converted_sentence: Term | None = None


class Handover(BaseModel):
    """Where and by when the person is handed over; once confirmed, where it took place. A
    handover elsewhere than the ``arranged_place`` is a ``deviation``, with its ``note``."""

    place: str
    due_on: date
    completed_on: date | None = None
    arranged_place: str | None = None  # set when confirmed
    deviation: bool = False
    note: str = ""


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
    enforcement: Enforcement | None = None
    initiated_by: InitiatedBy = "sentenced_person"
    previous_reference: str | None = None
    pending_actions: list[PendingAction] = []
    overdue: bool = False
    events: list[CaseEvent] = []
    documents: list[DocumentRecord] = []  # the case file (API.md): metadata and digests, the contents elsewhere
