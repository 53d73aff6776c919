"""Dual criminality, judged offence by offence on the conduct through ICCS 1.0 codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.citation import parse_citation
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
            f"“{o.article}”: {o.code or 'no ICCS code'} ({o.code_from}) {o.outcome}: {o.reason}"
            for o in self.offences
        )


def offence_code(article: str, iccs: str | None, articles: ArticleTable | None) -> tuple[str | None, str]:
    """The offence's ICCS code: the one given, else the sentencing state's article table, looked up
    by the citation as the court wrote it (``188 ч.2``: the part's entry, else the article's; see
    ``domain/citation.py``). The article stays as written; only the lookup reads it."""
    if iccs:
        return iccs, "given"
    citation = parse_citation(article)
    entry = articles.lookup(citation) if articles and citation else None
    return (entry.iccs, "article_table") if entry else (None, "none")


def unresolved_reason(article: str, articles: ArticleTable | None) -> str:
    """Why an offence given without a code has none: for the lawyer who reviews it."""
    citation = parse_citation(article)
    if citation is None:
        return "no ICCS code and the citation is not understood"
    if articles is None:
        return "no ICCS code and no article table for the state"
    if citation.code_of not in (None, articles.state):
        return f"no ICCS code and the citation names the criminal code of {citation.code_of}, not {articles.state}"
    return f"no ICCS code and no entry for {' or '.join(citation.lookup_keys)} in the {articles.state} article table"


def assess_offence(article: str, iccs: str | None, articles: ArticleTable | None,
                   criminalisation: Criminalisation, catalogue: IccsCatalogue) -> OffenceAssessment:
    code, code_from = offence_code(article, iccs, articles)
    if code is None:
        return OffenceAssessment(article, None, "none", "needs_review", unresolved_reason(article, articles))
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
    covers = next((e for e in criminalisation.always_review if e.code.startswith(code)), None)
    if covers:
        return OffenceAssessment(article, code, code_from, "needs_review",
                                 f"{code} is broader than {covers.code}, which always needs review in {state}")
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
