"""Mutual legal assistance: the request, the acts on it, the view of API.md, and the rules that
are particular to it (scope of the treaty, routing of measures, the evidence manifest)."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from domain.case import CaseEvent, PendingAction
from domain.documents import DocumentId, DocumentRecord
from domain.dual_criminality import assess_dual_criminality
from domain.parties import responsible_authority
from domain.reference import COERCIVE_MEASURES, MeasureKind, Reference, Treaty
from domain.transfer import (
    AtMost, Body, Day, Name, Offences, OptionalText, Reference as CaseReference, StateCode, Text,
)

MeasureId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]

# in order: StageTimes names a stage by its index here (domain/caseload.py), so a new stage goes last
AssistanceStage = Literal[
    "under_review", "awaiting_information", "postponed", "executing",
    "completed", "partially_completed", "unsuccessful", "refused", "withdrawn", "expired",
]
ASSISTANCE_TERMINAL: frozenset[str] = frozenset(
    {"completed", "partially_completed", "unsuccessful", "refused", "withdrawn", "expired"})
MeasureStage = Literal[
    "not_permitted", "pending", "awaiting_authorisation", "executing", "executed", "not_executed", "denied",
    "cancelled",
]
MEASURE_TERMINAL: frozenset[str] = frozenset({"not_permitted", "executed", "not_executed", "denied", "cancelled"})


class Measure(Body):
    id: MeasureId
    kind: MeasureKind
    description: Text
    subject: OptionalText = ""


class AssistanceRequest(Body):
    reference: CaseReference
    requesting_state: StateCode
    requested_state: StateCode
    received_on: Day | None = None
    issuing_authority: Name
    purpose: Text
    facts: Text
    offences: Offences
    measures: Annotated[list[Measure], Field(min_length=1), AtMost(50, "measures")]
    urgent: bool = False
    confidential: bool = False
    respond_by: Day | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AssistanceRequest:
        if self.requesting_state == self.requested_state:
            raise ValueError("requested_state: requested_state must differ from requesting_state")
        ids = [m.id for m in self.measures]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"measures: measures must each have an id of their own ({', '.join(twice)} "
                             f"{'is' if len(twice) == 1 else 'are'} used more than once)")
        if self.respond_by and self.received_on and self.respond_by < self.received_on:
            raise ValueError("respond_by: respond_by may not lie before received_on")
        return self


# --- acts ----------------------------------------------------------------------------------


class Review(Body):
    decision: Literal["accept", "refuse", "request_information", "postpone"]
    grounds: list[str] = []
    questions: OptionalText = ""
    postpone_until: Day | None = None
    dual_criminality: Literal["satisfied", "not_satisfied"] | None = None
    note: OptionalText = ""

    @model_validator(mode="after")
    def _fields_of_the_decision(self) -> Review:
        uses = {"accept": {"dual_criminality", "note"}, "refuse": {"grounds", "note"},
                "request_information": {"questions", "note"}, "postpone": {"postpone_until", "note"}}[self.decision]
        unused = [f for f in ("grounds", "questions", "postpone_until", "dual_criminality")
                  if f not in uses and getattr(self, f)]
        if unused:
            listed = ", ".join(unused[:-1]) + " and " + unused[-1] if len(unused) > 1 else unused[0]
            raise ValueError(f"{unused[0]}: {listed} must be empty when the decision is {self.decision}")
        if self.decision == "refuse" and not self.grounds:
            raise ValueError("grounds: grounds are required to refuse: cite at least one")
        if self.decision == "request_information" and not self.questions:
            raise ValueError("questions: questions are required to request information")
        if self.decision == "postpone" and self.postpone_until is None:
            raise ValueError("postpone_until: postpone_until is required to postpone: give the day the review "
                             "resumes" + (", and a note giving the reason" if not self.note else ""))
        if self.decision == "postpone" and not self.note:
            raise ValueError("note: note is required to postpone: give the reason")
        return self


class InformationAnswer(Body):
    answers: Text


class Authorisation(Body):
    granted: bool
    note: OptionalText = ""


class EvidenceItem(Body):
    """An item of evidence: its digest, given (``sha256``) or that of an ``evidence`` document of
    the measure stored in the case file (``document_id``; the API puts the stored digest in
    ``sha256``, so the manifest is over digests either way)."""

    item_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    description: Text
    document_id: DocumentId | None = None
    sha256: Sha256 | None = Field(default=None, validate_default=True)
    collected_on: Day

    @field_validator("sha256")
    @classmethod
    def _digest(cls, digest: str | None, info: ValidationInfo) -> str | None:
        if digest is None and info.data.get("document_id") is None:
            raise ValueError("is required: give the digest of the evidence, or the document_id of an evidence "
                             "document of this measure")
        return digest.lower() if digest else digest


class MeasureResult(Body):
    outcome: Literal["executed", "not_executed"]
    evidence: Annotated[list[EvidenceItem], AtMost(200, "evidence items")] = []
    note: OptionalText = ""

    @model_validator(mode="after")
    def _evidence(self) -> MeasureResult:
        if self.outcome == "executed" and not self.evidence:
            raise ValueError("evidence: evidence must list at least one item when the outcome is executed")
        ids = [e.item_id for e in self.evidence]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"evidence: evidence items must each have an item_id of their own ({', '.join(twice)} "
                             f"{'is' if len(twice) == 1 else 'are'} used more than once)")
        return self


class AssistanceWithdrawal(Body):
    reason: Text


# --- the view ------------------------------------------------------------------------------


class MeasureView(BaseModel):
    id: str
    kind: str
    stage: MeasureStage
    grounds: list[str] = []
    evidence: list[EvidenceItem] = []
    assigned_to: str | None = None
    court: str | None = None
    dual_criminality: Literal["satisfied", "failed", "needs_review", "not_applicable"] = "not_applicable"
    pending_actions: list[PendingAction] = []
    events: list[CaseEvent] = []  # the measure's own audit trail; the request's view merges it
    # raised by the measure at every change: the request keeps the latest, whatever the order
    # in which the measure's signals arrive
    revision: int = 0


class ManifestItem(BaseModel):
    measure_id: str
    item_id: str
    description: str
    sha256: str
    collected_on: date


class Results(BaseModel):
    manifest_sha256: str
    items: list[ManifestItem]
    # the requested state's JWS (compact, detached payload, EdDSA) over ``manifest_bytes(items)``;
    # None in results built before manifests were signed (their histories still replay)
    signature: str | None = None


class AssistanceView(BaseModel):
    reference: str
    kind: Literal["assistance"] = "assistance"
    stage: AssistanceStage
    outcome: AssistanceStage | None = None
    grounds: list[str] = []
    treaty: str | None = None
    requesting_state: str
    requested_state: str
    received_on: date
    opened_at: datetime
    urgent: bool = False
    confidential: bool = False
    respond_by: date | None = None
    postponed_until: date | None = None
    questions: str | None = None
    measures: list[MeasureView] = []
    results: Results | None = None
    pending_actions: list[PendingAction] = []
    overdue: bool = False
    events: list[CaseEvent] = []
    documents: list[DocumentRecord] = []  # the case file (API.md): metadata and digests, the contents elsewhere


# --- rules ---------------------------------------------------------------------------------


def route_measure(ref: Reference, kind: str, requested_state: str) -> str:
    """The authority of the requested state that executes a measure (DOMAIN.md, routing)."""
    if kind == "identify_bank_accounts":
        return responsible_authority(ref, requested_state, "executing_authority", "financial")
    if kind == "information_exchange":
        return responsible_authority(ref, requested_state, "central_authority")
    return responsible_authority(ref, requested_state, "executing_authority", "police")


def authorising_court(ref: Reference, requested_state: str) -> str:
    return responsible_authority(ref, requested_state, "court")


def scope(request: AssistanceRequest, treaty: Treaty, ref: Reference) -> list[MeasureView]:
    """Each measure against the treaty: covered at all, and for every kind the treaty lists as
    needing it (coercive or not), dual criminality judged in the requested state (needs_review is
    settled in review). Coercive measures also need the court's authorisation."""
    rules = treaty.assistance
    assert rules is not None, f"{treaty.id} is not an assistance treaty"
    dc = None
    out = []
    for m in request.measures:
        view = MeasureView(id=m.id, kind=m.kind, stage="pending",
                           assigned_to=route_measure(ref, m.kind, request.requested_state))
        if m.kind not in rules.permitted_measures.value:
            view.stage, view.grounds = "not_permitted", ["not_covered_by_treaty"]
        elif m.kind in rules.dual_criminality_measures.value:
            dc = dc or assess_dual_criminality([(o.article, o.iccs) for o in request.offences],
                                               ref.articles.get(request.requesting_state),
                                               ref.criminalisation_of(request.requested_state), ref.iccs)
            view.dual_criminality = dc.outcome
            if dc.outcome == "failed":
                view.stage, view.grounds = "not_permitted", ["no_dual_criminality"]
        if m.kind in COERCIVE_MEASURES and view.stage == "pending":
            view.court = authorising_court(ref, request.requested_state)
        if view.stage == "not_permitted":  # routed to no one: it reveals the request to no one
            view.assigned_to = None
        out.append(view)
    return out


def refusal_grounds_of(measures: list[MeasureView]) -> list[str]:
    """When no measure remains permitted: the union of the measures' grounds, sorted."""
    return sorted({g for m in measures for g in m.grounds})


def manifest(measures: list[MeasureView]) -> Results:
    """The evidence manifest: every item of every measure, sorted by (measure_id, item_id); its
    digest is over canonical JSON, so it never depends on dict or arrival order."""
    items = sorted((ManifestItem(measure_id=m.id, item_id=e.item_id, description=e.description,
                                 sha256=e.sha256, collected_on=e.collected_on)
                    for m in measures for e in m.evidence), key=lambda i: (i.measure_id, i.item_id))
    return Results(manifest_sha256=hashlib.sha256(manifest_bytes(items)).hexdigest(), items=items)


def manifest_bytes(items: list[ManifestItem]) -> bytes:
    """The bytes the manifest's digest and its signature are both over (API.md): the UTF-8 JSON
    encoding of the items, keys sorted, no whitespace, non-ASCII characters as they are."""
    return json.dumps([i.model_dump(mode="json") for i in items], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def request_outcome(measures: list[MeasureView]) -> Literal["completed", "partially_completed", "unsuccessful"]:
    counted = [m for m in measures if m.stage not in ("not_permitted", "cancelled")]
    executed = sum(m.stage == "executed" for m in counted)
    if counted and executed == len(counted):
        return "completed"
    return "partially_completed" if executed else "unsuccessful"
