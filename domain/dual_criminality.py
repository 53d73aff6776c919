"""Dual criminality, judged offence by offence on the conduct through ICCS 1.0 codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.reference import ArticleTable, Criminalisation, IccsCatalogue

Outcome = Literal["satisfied", "failed", "needs_review"]


@dataclass(frozen=True)
class OffenceAssessment:
    article: str
    code: str | None  # the ICCS code used, None when unresolved
    code_from: Literal["given", "article_table", "none"]
    outcome: Outcome
    reason: str


@dataclass(frozen=True)
class DualCriminality:
    outcome: Outcome
    offences: tuple[OffenceAssessment, ...]

    def describe(self) -> str:
        return "; ".join(
            f"art. {o.article}: {o.code or 'no ICCS code'} ({o.code_from}) {o.outcome}: {o.reason}"
            for o in self.offences
        )


def offence_code(article: str, iccs: str | None, articles: ArticleTable | None) -> tuple[str | None, str]:
    """The offence's ICCS code: the one given, else the sentencing state's article table."""
    if iccs:
        return iccs, "given"
    entry = articles.lookup(article) if articles else None
    return (entry.iccs, "article_table") if entry else (None, "none")


def assess_offence(article: str, iccs: str | None, articles: ArticleTable | None,
                   criminalisation: Criminalisation, catalogue: IccsCatalogue) -> OffenceAssessment:
    code, code_from = offence_code(article, iccs, articles)
    if code is None:
        return OffenceAssessment(article, None, "none", "needs_review", "no ICCS code and article not in the table")
    if not catalogue.is_valid(code):
        return OffenceAssessment(article, code, code_from, "needs_review", "unknown ICCS code")
    state = criminalisation.state
    excluded = next((e for e in criminalisation.not_criminal if code.startswith(e.code)), None)
    if excluded:
        return OffenceAssessment(article, code, code_from, "failed",
                                 f"{excluded.code} is not a criminal offence in {state}")
    narrower = next((e for e in criminalisation.not_criminal if e.code.startswith(code)), None)
    if narrower:
        return OffenceAssessment(article, code, code_from, "needs_review",
                                 f"{code} is broader than {narrower.code}, which is not criminal in {state}")
    review = next((e for e in criminalisation.always_review if code.startswith(e.code)), None)
    if review:
        return OffenceAssessment(article, code, code_from, "needs_review",
                                 f"{review.code} always needs review in {state}")
    return OffenceAssessment(article, code, code_from, "satisfied", f"criminal in {state}")


def assess_dual_criminality(offences: list[tuple[str, str | None]], articles: ArticleTable | None,
                            criminalisation: Criminalisation, catalogue: IccsCatalogue) -> DualCriminality:
    """``offences`` are (article, iccs-or-None) pairs. Fails if any offence is not criminal in the
    state judging it; needs review if any is unresolved and none fails; satisfied otherwise."""
    assessed = tuple(assess_offence(a, c, articles, criminalisation, catalogue) for a, c in offences)
    outcomes = {o.outcome for o in assessed}
    outcome: Outcome = (
        "failed" if "failed" in outcomes else "needs_review" if "needs_review" in outcomes else "satisfied"
    )
    return DualCriminality(outcome, assessed)
