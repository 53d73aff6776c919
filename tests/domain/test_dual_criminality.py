"""Dual criminality (DOMAIN.md, "Dual criminality"): judged offence by offence through ICCS 1.0
codes. An offence's code is its `iccs` if given, else the sentencing state's article table;
neither → needs_review. A code excluded (prefix match) in the judging state fails; any
unresolved offence with none failing → needs_review; otherwise satisfied."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.dual_criminality import assess_dual_criminality, assess_offence
from domain.reference import ArticleTable, Criminalisation, reference

FAST = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="module")
def ref():
    return reference()


def article_table(state: str, mapping: dict[str, str]) -> ArticleTable:
    return ArticleTable.model_validate({
        "state": state, "code": f"test criminal code of {state}", "source": "test fixture",
        "articles": [{"article": a, "iccs": c, "title": f"art. {a}", "verified": True}
                     for a, c in mapping.items()],
    })


def criminalisation(state: str, not_criminal: list[str] = (), always_review: list[str] = ()) -> Criminalisation:
    def entries(codes):
        return [{"code": c, "source": "test fixture", "verified": True} for c in codes]
    return Criminalisation.model_validate({
        "state": state, "not_criminal": entries(not_criminal), "always_review": entries(always_review),
    })


# --- where the code comes from --------------------------------------------------------------


def test_an_explicit_iccs_code_wins_over_the_article_table(ref):
    table = article_table("UZ", {"42": "0502"})
    gb = ref.criminalisation_of("GB")  # 0209 is not criminal in GB
    given_code = assess_offence("42", "0209", table, gb, ref.iccs)
    assert (given_code.code, given_code.code_from, given_code.outcome) == ("0209", "given", "failed")
    from_table = assess_offence("42", None, table, gb, ref.iccs)
    assert (from_table.code, from_table.code_from, from_table.outcome) == ("0502", "article_table", "satisfied")


def test_the_article_table_resolves_an_offence_without_a_code(ref):
    table = article_table("UZ", {"139": "0209", "169": "0502"})
    gb = ref.criminalisation_of("GB")
    defamation = assess_offence("139", None, table, gb, ref.iccs)
    assert (defamation.code, defamation.code_from, defamation.outcome) == ("0209", "article_table", "failed")
    # in KZ the same offence goes to review: insult (within 0209) is still a crime there
    in_kz = assess_offence("139", None, table, ref.criminalisation_of("KZ"), ref.iccs)
    assert (in_kz.code, in_kz.code_from, in_kz.outcome) == ("0209", "article_table", "needs_review")
    theft = assess_offence("169", None, table, gb, ref.iccs)
    assert (theft.code, theft.code_from, theft.outcome) == ("0502", "article_table", "satisfied")


@pytest.mark.parametrize("state", ["KZ", "UZ"])
def test_every_shipped_article_resolves_through_its_table(ref, state):
    table = ref.articles[state]
    uz = ref.criminalisation_of("UZ")  # criminalises every valid code in the demo data
    assert table.articles
    for entry in table.articles:
        result = assess_offence(entry.article, None, table, uz, ref.iccs)
        assert (result.code, result.code_from) == (entry.iccs, "article_table"), entry.article
        assert result.outcome == "satisfied", entry.article


def test_a_shipped_kazakh_article_is_judged_by_its_code(ref):
    table = ref.articles["KZ"]
    entry = next(e for e in table.articles if not e.iccs.startswith("0209"))
    assert assess_offence(entry.article, None, table, ref.criminalisation_of("UZ"), ref.iccs).outcome == "satisfied"


@pytest.mark.parametrize("table_given", [True, False])
def test_unknown_article_and_no_code_needs_review(ref, table_given):
    table = article_table("KZ", {"188": "0502"}) if table_given else None
    result = assess_offence("no-such-article", None, table, ref.criminalisation_of("UZ"), ref.iccs)
    assert (result.code, result.code_from, result.outcome) == (None, "none", "needs_review")
    combined = assess_dual_criminality([("no-such-article", None)], table, ref.criminalisation_of("UZ"), ref.iccs)
    assert combined.outcome == "needs_review"


def test_article_lookup_ignores_surrounding_whitespace(ref):
    table = article_table("KZ", {"188": "0502"})
    assert assess_offence(" 188 ", None, table, ref.criminalisation_of("UZ"), ref.iccs).code == "0502"


@pytest.mark.parametrize("article", ["188 ч.2", "ч. 2 ст. 188 УК РК", "188-бап 2-бөлігі", "188(2)"])
def test_a_citation_as_courts_write_it_resolves_through_the_shipped_table(ref, article):
    result = assess_offence(article, None, ref.articles["KZ"], ref.criminalisation_of("UZ"), ref.iccs)
    assert (result.article, result.code, result.code_from, result.outcome) == \
        (article, "0502", "article_table", "satisfied")


def test_a_parts_own_entry_gives_its_own_code(ref):
    kz, uz = ref.articles["KZ"], ref.criminalisation_of("UZ")
    assert assess_offence("191 ч.1", None, kz, uz, ref.iccs).code == "0502"  # open theft
    assert assess_offence("191 ч.2", None, kz, uz, ref.iccs).code == "0401"  # the article's entry


@pytest.mark.parametrize(("article", "reason"), [
    ("ст. 999", "no entry for 999 in the KZ article table"),
    ("999 ч.2", "no entry for 999:2 or 999 in the KZ article table"),
    ("gibberish", "the citation is not understood"),
    ("s. 1 Theft Act 1968", "the citation is not understood"),
    ("ст. 188 УК РФ", "names the criminal code of RU"),
])
def test_an_unknown_or_unreadable_citation_needs_review_without_error(ref, article, reason):
    result = assess_offence(article, None, ref.articles["KZ"], ref.criminalisation_of("UZ"), ref.iccs)
    assert (result.article, result.code, result.code_from, result.outcome) == (article, None, "none", "needs_review")
    assert reason in result.reason
    combined = assess_dual_criminality([("188 ч.2", None), (article, None)], ref.articles["KZ"],
                                       ref.criminalisation_of("UZ"), ref.iccs)
    assert combined.outcome == "needs_review"
    assert article in combined.describe()


# --- criminalisation in the judging state ---------------------------------------------------


@pytest.mark.parametrize(
    ("state", "code", "expected"),
    [
        # defamation left the Kazakh criminal code in 2020, insult stayed: 0209 always needs review
        ("KZ", "0209", "needs_review"),
        ("KZ", "02091", "needs_review"),   # prefix: a group under 0209
        ("KZ", "020911", "needs_review"),  # and a class
        ("KZ", "02", "needs_review"),      # a section broader than 0209 may be that conduct too
        ("KZ", "0208", "satisfied"),       # the neighbouring division is not concerned
        ("KZ", "0502", "satisfied"),
        ("KZ", "05", "satisfied"),         # a section with no entry under it
        ("GB", "0209", "failed"),      # criminal libel abolished in England and Wales (2009)
        ("GB", "02091", "failed"),     # prefix exclusion: a group under 0209
        ("GB", "020911", "failed"),    # and a class
        ("GB", "02", "needs_review"),  # broader than the excluded division
        ("UZ", "0209", "satisfied"),   # defamation is a crime in Uzbekistan
        ("UZ", "02091", "satisfied"),
        ("FR", "0209", "satisfied"),   # and in France
    ],
)
def test_shipped_criminalisation(ref, state, code, expected):
    result = assess_offence("1", code, None, ref.criminalisation_of(state), ref.iccs)
    assert result.outcome == expected
    assert assess_dual_criminality([("1", code)], None, ref.criminalisation_of(state), ref.iccs).outcome == expected


def test_the_exclusion_is_a_prefix_of_the_code_not_the_other_way_round(ref):
    table = criminalisation("XX", not_criminal=["02091"])
    assert assess_offence("1", "02091", None, table, ref.iccs).outcome == "failed"
    assert assess_offence("1", "020911", None, table, ref.iccs).outcome == "failed"
    # a broader code may or may not be the excluded conduct: a lawyer decides
    assert assess_offence("1", "0209", None, table, ref.iccs).outcome == "needs_review"
    assert assess_offence("1", "02092", None, table, ref.iccs).outcome == "satisfied"


def test_always_review_entries_need_review(ref):
    table = criminalisation("XX", always_review=["0703"])
    assert assess_offence("1", "0703", None, table, ref.iccs).outcome == "needs_review"
    assert assess_offence("1", "07031", None, table, ref.iccs).outcome == "needs_review"
    assert assess_offence("1", "0701", None, table, ref.iccs).outcome == "satisfied"


def test_a_code_broader_than_an_always_review_entry_needs_review_too(ref):
    table = criminalisation("XX", always_review=["02091"])
    broader = assess_offence("1", "0209", None, table, ref.iccs)
    assert broader.outcome == "needs_review"
    assert "02091" in broader.reason and "XX" in broader.reason
    assert assess_offence("1", "02", None, table, ref.iccs).outcome == "needs_review"
    # a sibling group, or another section, is not covered by the entry
    assert assess_offence("1", "02092", None, table, ref.iccs).outcome == "satisfied"
    assert assess_offence("1", "0208", None, table, ref.iccs).outcome == "satisfied"
    assert assess_offence("1", "07", None, table, ref.iccs).outcome == "satisfied"


def test_a_kazakh_conviction_for_insult_goes_to_review_not_refusal(ref):
    """An Uzbek judgment for insult (UZ art. 140, ICCS 0209) transferred to Kazakhstan: insult is
    still a crime in KZ, defamation is not; the conduct decides, so a lawyer reviews it."""
    result = assess_dual_criminality([("140", None)], ref.articles["UZ"], ref.criminalisation_of("KZ"), ref.iccs)
    assert result.outcome == "needs_review"
    (offence,) = result.offences
    assert (offence.code, offence.code_from) == ("0209", "article_table")
    assert "always needs review" in offence.reason and "KZ" in offence.reason


def test_not_criminal_outranks_always_review(ref):
    table = criminalisation("XX", not_criminal=["0209"], always_review=["0209"])
    assert assess_offence("1", "0209", None, table, ref.iccs).outcome == "failed"


@pytest.mark.parametrize("code", ["0599", "1201", "12", "059911"])
def test_a_well_formed_but_unknown_code_needs_review(ref, code):
    result = assess_offence("1", code, None, ref.criminalisation_of("UZ"), ref.iccs)
    assert result.outcome == "needs_review"
    assert result.code == code


def test_an_unknown_code_from_the_article_table_needs_review(ref):
    table = article_table("KZ", {"7": "0599"})
    assert assess_offence("7", None, table, ref.criminalisation_of("UZ"), ref.iccs).outcome == "needs_review"


def test_the_state_judged_is_named_in_the_reason(ref):
    failed = assess_offence("1", "0209", None, ref.criminalisation_of("GB"), ref.iccs)
    assert "GB" in failed.reason and "0209" in failed.reason
    described = assess_dual_criminality([("130", "0209")], None, ref.criminalisation_of("GB"), ref.iccs).describe()
    assert "130" in described and "0209" in described and "failed" in described
    review = assess_offence("1", "0209", None, ref.criminalisation_of("KZ"), ref.iccs)
    assert "KZ" in review.reason and "0209" in review.reason


# --- combining offences ---------------------------------------------------------------------

# A synthetic criminalisation: 0209 not criminal, 0101 always reviewed.
SYNTHETIC = criminalisation("XX", not_criminal=["0209"], always_review=["0101"])
TABLE = article_table("YY", {"188": "0502", "130": "0209", "99": "0101"})
OFFENCE_OF = {
    "satisfied": [("188", None), ("1", "0502"), ("2", "0701"), ("3", "02081")],
    "failed": [("130", None), ("4", "0209"), ("5", "020911")],
    "needs_review": [("99", None), ("6", "0101"), ("unknown-article", None), ("7", "0599")],
}


@st.composite
def offence_lists(draw):
    outcomes = draw(st.lists(st.sampled_from(sorted(OFFENCE_OF)), min_size=1, max_size=8))
    return outcomes, [draw(st.sampled_from(OFFENCE_OF[o])) for o in outcomes]


@FAST
@given(offence_lists())
def test_combination_of_offences(drawn):
    outcomes, offences = drawn
    result = assess_dual_criminality(offences, TABLE, SYNTHETIC, reference().iccs)
    if "failed" in outcomes:
        expected = "failed"
    elif "needs_review" in outcomes:
        expected = "needs_review"
    else:
        expected = "satisfied"
    assert result.outcome == expected
    assert len(result.offences) == len(offences)
    assert [o.outcome for o in result.offences] == outcomes
    assert [o.article for o in result.offences] == [a for a, _ in offences]


def test_one_failing_offence_fails_the_whole_condition_even_with_others_unresolved(ref):
    result = assess_dual_criminality(
        [("188", "0502"), ("unknown-article", None), ("130", "0209")], None, ref.criminalisation_of("GB"), ref.iccs)
    assert result.outcome == "failed"
    assert [o.outcome for o in result.offences] == ["satisfied", "needs_review", "failed"]
