"""Transfer eligibility: every condition evaluated and reported with its basis; refused with
all failing grounds, not the first one."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from domain.dual_criminality import assess_dual_criminality
from domain.reference import Reference, Treaty
from domain.term import full_term_end, remaining_term_satisfied
from domain.transfer import EligibilityCondition, Term, TransferRequest

GROUND_OF = {
    "nationality": "not_national",
    "final_judgment": "judgment_not_final",
    "remaining_term": "insufficient_remaining_term",
    "dual_criminality": "no_dual_criminality",
    "financial_obligations": "outstanding_financial_obligations",
    "pending_proceedings": "proceedings_pending",
}


class Eligibility(BaseModel):
    conditions: list[EligibilityCondition]
    release_date: date | None

    @property
    def grounds(self) -> list[str]:
        """The grounds of every failed condition, in the order of the conditions."""
        return [GROUND_OF[c.condition] for c in self.conditions if c.outcome == "failed"]

    @property
    def needs_review(self) -> bool:
        return any(c.outcome == "needs_review" for c in self.conditions)


def unassessed(reason: str) -> Eligibility:
    """When the rules cannot be computed for a case's data: every condition is for a person to
    judge (the case goes to legal review, then to the states' decisions), never retried in vain."""
    return Eligibility(release_date=None, conditions=[
        EligibilityCondition(condition=c, outcome="needs_review", basis="",
                             detail=f"not assessed automatically ({reason}); to be judged by the central authorities")
        for c in GROUND_OF])


def release_date_of(request: TransferRequest, converted: Term | None = None) -> date | None:
    """The full-term end; once the administering state converted the sentence, the end of the
    converted term, from the same start date and with the same credits (DOMAIN.md, Enforcement)."""
    s = request.sentence
    if converted is not None:
        return full_term_end(s.start_date, converted.years, converted.months, converted.days,
                             s.pretrial_credit_days, s.remission_days)
    if s.indeterminate:
        return None
    return full_term_end(s.start_date, s.years, s.months, s.days, s.pretrial_credit_days, s.remission_days)


def assess_eligibility(request: TransferRequest, treaty: Treaty, ref: Reference, received_on: date) -> Eligibility:
    rules = treaty.transfer
    assert rules is not None, f"{treaty.id} is not a transfer treaty"
    admin, sentencing = request.administering_state, request.sentencing_state
    citizenships = set(request.person.citizenships)
    conditions: list[EligibilityCondition] = []

    def add(condition, outcome, detail, basis):
        conditions.append(EligibilityCondition(condition=condition, outcome=outcome, detail=detail, basis=basis))

    # nationality
    if admin not in citizenships:
        add("nationality", "failed", f"not a citizen of the administering state {admin}",
            rules.exclusive_nationality.source)
    elif rules.exclusive_nationality.value and citizenships & (set(treaty.parties) - {admin}):
        also = ", ".join(sorted(citizenships & (set(treaty.parties) - {admin})))
        add("nationality", "failed",
            f"citizen of {admin} but also of {also}; the treaty requires exclusive nationality",
            rules.exclusive_nationality.source)
    else:
        add("nationality", "satisfied", f"citizen of the administering state {admin}",
            rules.exclusive_nationality.source)

    # final judgment
    if not rules.final_judgment.value:
        add("final_judgment", "not_applicable", "the treaty does not require a final judgment",
            rules.final_judgment.source)
    elif request.judgment.final:
        add("final_judgment", "satisfied", f"judgment of {request.judgment.date} is final", rules.final_judgment.source)
    else:
        add("final_judgment", "failed", "the judgment is not final", rules.final_judgment.source)

    # remaining term
    release = release_date_of(request)
    months = rules.min_remaining_months.value
    if release is None:
        add("remaining_term", "satisfied", "indeterminate sentence", rules.min_remaining_months.source)
    elif remaining_term_satisfied(release, received_on, months):
        add("remaining_term", "satisfied",
            f"full term ends {release}; at least {months} months remain on {received_on}",
            rules.min_remaining_months.source)
    else:
        add("remaining_term", "failed",
            f"full term ends {release}; less than {months} months remain on {received_on}",
            rules.min_remaining_months.source)

    # dual criminality, judged in the administering state
    if not rules.dual_criminality.value:
        add("dual_criminality", "not_applicable", "the treaty does not require dual criminality",
            rules.dual_criminality.source)
    else:
        dc = assess_dual_criminality(
            [(o.article, o.iccs) for o in request.judgment.offences],
            ref.articles.get(sentencing), ref.criminalisation_of(admin), ref.iccs,
        )
        add("dual_criminality", dc.outcome, dc.describe(), rules.dual_criminality.source)

    # financial obligations and pending proceedings, where the treaty lists those grounds
    grounds = set(rules.refusal_grounds.value)
    if "outstanding_financial_obligations" not in grounds:
        add("financial_obligations", "not_applicable", "not a ground under this treaty",
            rules.refusal_grounds.source)
    else:
        unsettled = sum(not f.settled for f in request.financial_obligations)
        add("financial_obligations", "failed" if unsettled else "satisfied",
            f"{unsettled} unsettled of {len(request.financial_obligations)} obligations",
            rules.refusal_grounds.source)
    if "proceedings_pending" not in grounds:
        add("pending_proceedings", "not_applicable", "not a ground under this treaty", rules.refusal_grounds.source)
    else:
        pending = request.pending_proceedings
        add("pending_proceedings", "failed" if pending else "satisfied",
            f"{len(pending)} pending: {', '.join(p.kind for p in pending)}" if pending else "none pending",
            rules.refusal_grounds.source)
    return Eligibility(conditions=conditions, release_date=release)
