"""Which treaty governs a case (DOMAIN.md, "Which treaty"): a bilateral treaty of that kind in force
between the two states; failing one, a multilateral convention both are parties to; else none
(`no_treaty`). A treaty that records its entry into force governs only requests received on or
after that date. Where several multilateral conventions bind both states, the one a record says
supersedes the other wins (Chisinau 2002 over Minsk 1993), else the later in force."""

from __future__ import annotations

import itertools
import random
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.reference import Treaty, reference
from domain.treaties import resolve_treaty

RECEIVED = date(2026, 11, 20)
KINDS = ("transfer", "assistance")
FAST = settings(max_examples=200, deadline=None)


def _rule(value: Any) -> dict[str, Any]:
    return {"value": value, "source": "test fixture", "verified": True}


def make_treaty(treaty_id: str, parties: list[str], *, kind: str = "transfer", multilateral: bool = False,
                in_force_on: date | None = None, supersedes: list[str] = ()) -> Treaty:
    """A Treaty shaped like an entry of domain/data/treaties.json."""
    raw: dict[str, Any] = {
        "id": treaty_id,
        "title": f"Test treaty {treaty_id}",
        "kind": kind,
        "multilateral": multilateral,
        "parties": parties,
        "signed_on": None,
        "in_force_on": in_force_on.isoformat() if in_force_on else None,
        "note": "",
        "supersedes": list(supersedes),
    }
    if kind == "transfer":
        raw["transfer"] = {
            "min_remaining_months": _rule(6),
            "exclusive_nationality": _rule(False),
            "final_judgment": _rule(True),
            "dual_criminality": _rule(True),
            "declaration_required": _rule(True),
            "refusal_grounds": _rule(["sovereignty_or_security", "contrary_to_national_law"]),
            "handover_points": _rule([]),
        }
    else:
        raw["assistance"] = {
            "permitted_measures": _rule(["search", "seizure", "information_exchange"]),
            "dual_criminality_measures": _rule(["search", "seizure"]),
            "refusal_grounds": _rule(["contrary_to_national_law"]),
        }
    return Treaty.model_validate(raw)


def resolved_id(treaties, kind, a, b, received_on=RECEIVED) -> str | None:
    treaty = resolve_treaty(treaties, kind, a, b, received_on)
    return treaty.id if treaty else None


@pytest.fixture(scope="module")
def registry():
    return reference().treaties


SHIPPED_STATES = sorted({p for t in reference().treaties for p in t.parties})


# --- the shipped registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "a", "b", "expected"),
    [
        ("transfer", "KZ", "UZ", "kz-uz-transfer-2021"),
        ("transfer", "UZ", "KZ", "kz-uz-transfer-2021"),
        ("transfer", "FR", "IT", "coe-ets-112"),
        ("transfer", "GB", "HU", "coe-ets-112"),
        ("transfer", "KZ", "IT", "kz-it-transfer-2013"),
        ("transfer", "KZ", "HU", "kz-hu-transfer-2014"),
        ("transfer", "KZ", "ES", "kz-es-transfer"),
        ("transfer", "KZ", "FR", None),  # no transfer treaty between Kazakhstan and France
        ("transfer", "KZ", "GB", None),  # Kazakhstan is not a party to ETS 112
        ("transfer", "UZ", "FR", None),
        # the CIS network
        ("transfer", "KZ", "RU", "cis-1998-transfer"),
        ("transfer", "RU", "KZ", "cis-1998-transfer"),
        ("transfer", "KZ", "KG", "cis-1998-transfer"),
        ("transfer", "KG", "RU", "cis-1998-transfer"),
        ("transfer", "KZ", "AZ", "kz-az-transfer-1997"),  # a bilateral treaty beats the CIS convention
        ("transfer", "UZ", "RU", None),  # Uzbekistan signed the 1998 convention but did not ratify it
        ("transfer", "KZ", "CN", "kz-cn-transfer"),
        ("transfer", "KZ", "TR", "kz-tr-transfer-2013"),
        ("assistance", "KZ", "FR", "kz-fr-mla-2021"),
        ("assistance", "FR", "KZ", "kz-fr-mla-2021"),
        ("assistance", "KZ", "GB", "kz-gb-mla-2015"),
        ("assistance", "KZ", "MC", "kz-mc-mla"),
        ("assistance", "UZ", "KZ", "cis-2002-chisinau-legal-assistance"),  # both parties: it supersedes Minsk
        ("assistance", "KZ", "UZ", "cis-2002-chisinau-legal-assistance"),
        ("assistance", "KZ", "KG", "cis-2002-chisinau-legal-assistance"),
        ("assistance", "KZ", "RU", "cis-1993-minsk-legal-assistance"),  # only Minsk binds both
        ("assistance", "UZ", "TJ", "cis-1993-minsk-legal-assistance"),
        ("assistance", "KZ", "CN", "kz-cn-mla-1993"),
        ("assistance", "FR", "UZ", None),
        ("assistance", "FR", "IT", None),  # ETS 112 is a transfer convention
    ],
)
def test_shipped_registry_resolution(registry, kind, a, b, expected):
    assert resolved_id(registry, kind, a, b) == expected


def test_ets_112_does_not_govern_requests_received_before_it_entered_into_force(registry):
    ets = next(t for t in registry if t.id == "coe-ets-112")
    assert ets.in_force_on is not None
    assert resolved_id(registry, "transfer", "FR", "IT", ets.in_force_on) == "coe-ets-112"
    assert resolved_id(registry, "transfer", "FR", "IT", date(ets.in_force_on.year - 1, 1, 1)) is None


def test_order_of_the_two_states_does_not_matter_for_any_shipped_pair(registry):
    found = set()
    for kind in KINDS:
        for a, b in itertools.combinations(SHIPPED_STATES, 2):
            forward = resolved_id(registry, kind, a, b)
            assert forward == resolved_id(registry, kind, b, a), (kind, a, b)
            found.add(forward)
    # guard: the loop did resolve real treaties, not only None
    assert {"kz-uz-transfer-2021", "coe-ets-112", "kz-fr-mla-2021"} <= found


@FAST
@given(st.sampled_from(KINDS), st.sampled_from(SHIPPED_STATES), st.sampled_from(SHIPPED_STATES),
       st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 12, 31)))
def test_order_of_the_two_states_does_not_matter_on_any_date(kind, a, b, received_on):
    registry = reference().treaties
    assert resolved_id(registry, kind, a, b, received_on) == resolved_id(registry, kind, b, a, received_on)


def test_the_cis_legal_assistance_conventions_and_their_supersession(registry):
    minsk = next(t for t in registry if t.id == "cis-1993-minsk-legal-assistance")
    chisinau = next(t for t in registry if t.id == "cis-2002-chisinau-legal-assistance")
    assert chisinau.supersedes == [minsk.id] and minsk.supersedes == []
    assert {"KZ", "UZ"} <= set(minsk.parties) and {"KZ", "UZ"} <= set(chisinau.parties)
    common = sorted(set(minsk.parties) & set(chisinau.parties))
    for a, b in itertools.combinations(common, 2):
        assert resolved_id(registry, "assistance", a, b) == chisinau.id, (a, b)
    only_minsk = sorted(set(minsk.parties) - set(chisinau.parties))
    assert "RU" in only_minsk
    for a in only_minsk:
        for b in sorted(set(minsk.parties) - {a}):
            assert resolved_id(registry, "assistance", a, b) == minsk.id, (a, b)


def test_uzbekistan_is_no_party_to_the_cis_transfer_convention(registry):
    cis = next(t for t in registry if t.id == "cis-1998-transfer")
    assert cis.multilateral and {"KZ", "RU", "KG"} <= set(cis.parties)
    assert "UZ" not in cis.parties
    assert cis.transfer.min_remaining_months.value == 6 and cis.transfer.min_remaining_months.verified is False


# --- the registry's data ----------------------------------------------------------------------


def test_every_rule_has_a_source_and_a_treaty_is_verified_only_when_all_its_rules_are(registry):
    for t in registry:
        rules = [getattr(t.rules, name) for name in type(t.rules).model_fields]
        assert all(r.source.strip() for r in rules), t.id
        assert t.verified == all(r.verified for r in rules), t.id


def test_every_party_has_a_central_authority_and_supersession_stays_within_a_kind(registry):
    ref = reference()
    central = {a.state for a in ref.authorities if a.role == "central_authority"}
    assert {p for t in registry for p in t.parties} <= central
    by_id = {t.id: t for t in registry}
    for t in registry:
        for other in t.supersedes:
            assert by_id[other].kind == t.kind and other != t.id


def test_the_registry_counts(registry):
    counts = reference().registry_counts()
    rules = [r for t in registry for r in t.recorded_rules]
    assert counts == {
        "treaties": len(registry),
        "treaties_verified": sum(1 for t in registry if t.verified),
        "partner_states": len({p for t in registry for p in t.parties}),
        "rules": len(rules),
        "rules_verified": sum(1 for r in rules if r.verified),
    }
    assert counts["treaties"] >= 25 and counts["rules_verified"] < counts["rules"]


# --- synthetic registries -------------------------------------------------------------------


def test_a_superseding_convention_wins_between_common_parties_else_the_superseded_one_governs():
    old = make_treaty("old", ["AA", "BB", "CC", "DD"], kind="assistance", multilateral=True,
                      in_force_on=date(1994, 5, 19))
    new = make_treaty("new", ["AA", "BB", "CC"], kind="assistance", multilateral=True, supersedes=["old"])
    for treaties in ([old, new], [new, old]):
        assert resolved_id(treaties, "assistance", "AA", "BB") == "new"   # both bind both: new supersedes
        assert resolved_id(treaties, "assistance", "AA", "DD") == "old"   # only the old binds DD
        assert resolved_id(treaties, "assistance", "DD", "CC") == "old"


def test_supersession_outranks_the_later_entry_into_force():
    old = make_treaty("old", ["AA", "BB"], multilateral=True, in_force_on=date(2010, 1, 1))
    new = make_treaty("new", ["AA", "BB"], multilateral=True, in_force_on=date(2004, 1, 1), supersedes=["old"])
    assert resolved_id([old, new], "transfer", "AA", "BB") == "new"
    # without the record, the later in force wins
    plain = make_treaty("new", ["AA", "BB"], multilateral=True, in_force_on=date(2004, 1, 1))
    assert resolved_id([old, plain], "transfer", "AA", "BB") == "old"


def test_a_superseding_convention_not_yet_in_force_leaves_the_old_one():
    old = make_treaty("old", ["AA", "BB"], multilateral=True, in_force_on=date(1994, 1, 1))
    new = make_treaty("new", ["AA", "BB"], multilateral=True, in_force_on=date(2030, 1, 1), supersedes=["old"])
    assert resolved_id([old, new], "transfer", "AA", "BB", date(2029, 12, 31)) == "old"
    assert resolved_id([old, new], "transfer", "AA", "BB", date(2030, 1, 1)) == "new"


def test_a_bilateral_treaty_still_beats_a_superseding_convention():
    old = make_treaty("old", ["AA", "BB", "CC"], multilateral=True)
    new = make_treaty("new", ["AA", "BB", "CC"], multilateral=True, supersedes=["old"])
    bilateral = make_treaty("bilateral", ["AA", "BB"])
    assert resolved_id([old, new, bilateral], "transfer", "AA", "BB") == "bilateral"
    assert resolved_id([old, new, bilateral], "transfer", "AA", "CC") == "new"




def test_bilateral_beats_a_multilateral_covering_both_states():
    multi = make_treaty("multi", ["AA", "BB", "CC"], multilateral=True)
    bilateral = make_treaty("bilateral", ["AA", "BB"])
    for treaties in ([multi, bilateral], [bilateral, multi]):
        assert resolved_id(treaties, "transfer", "AA", "BB") == "bilateral"
    # the multilateral still governs a pair without a bilateral
    assert resolved_id([multi, bilateral], "transfer", "AA", "CC") == "multi"


def test_bilateral_not_yet_in_force_falls_back_to_the_multilateral():
    multi = make_treaty("multi", ["AA", "BB", "CC"], multilateral=True, in_force_on=date(2000, 1, 1))
    bilateral = make_treaty("bilateral", ["AA", "BB"], in_force_on=date(2026, 11, 21))
    assert resolved_id([bilateral, multi], "transfer", "AA", "BB", date(2026, 11, 20)) == "multi"


def test_bilateral_not_yet_in_force_and_no_multilateral_gives_no_treaty():
    bilateral = make_treaty("bilateral", ["AA", "BB"], in_force_on=date(2026, 11, 21))
    assert resolved_id([bilateral], "transfer", "AA", "BB", date(2026, 11, 20)) is None


def test_a_treaty_governs_requests_received_on_its_entry_into_force_date():
    multi = make_treaty("multi", ["AA", "BB", "CC"], multilateral=True)
    bilateral = make_treaty("bilateral", ["AA", "BB"], in_force_on=date(2026, 11, 20))
    assert resolved_id([bilateral, multi], "transfer", "AA", "BB", date(2026, 11, 20)) == "bilateral"
    assert resolved_id([bilateral, multi], "transfer", "AA", "BB", date(2026, 11, 19)) == "multi"


def test_a_treaty_without_an_entry_into_force_date_has_no_time_limit():
    bilateral = make_treaty("bilateral", ["AA", "BB"], in_force_on=None)
    assert resolved_id([bilateral], "transfer", "AA", "BB", date(1900, 1, 1)) == "bilateral"


def test_a_treaty_of_the_other_kind_is_never_chosen():
    assistance = make_treaty("mla", ["AA", "BB"], kind="assistance")
    transfer_multi = make_treaty("ets", ["AA", "BB", "CC"], multilateral=True)
    assert resolved_id([assistance], "transfer", "AA", "BB") is None
    assert resolved_id([assistance, transfer_multi], "transfer", "AA", "BB") == "ets"
    assert resolved_id([assistance, transfer_multi], "assistance", "AA", "BB") == "mla"
    assert resolved_id([transfer_multi], "assistance", "AA", "BB") is None


def test_a_treaty_between_other_states_is_never_chosen():
    assert resolved_id([make_treaty("ab", ["AA", "BB"])], "transfer", "AA", "CC") is None
    assert resolved_id([make_treaty("abd", ["AA", "BB", "DD"], multilateral=True)], "transfer", "AA", "CC") is None


POOL = ["AA", "BB", "CC", "DD", "EE"]


@st.composite
def registries(draw):
    """A registry of up to 8 synthetic treaties with unique ids."""
    treaties = []
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        multilateral = draw(st.booleans())
        size = draw(st.integers(min_value=2, max_value=len(POOL))) if multilateral else 2
        parties = draw(st.lists(st.sampled_from(POOL), min_size=size, max_size=size, unique=True))
        in_force_on = draw(st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)))
        treaties.append(make_treaty(f"t{i}", parties, kind=draw(st.sampled_from(KINDS)),
                                    multilateral=multilateral, in_force_on=in_force_on))
    return treaties


PAIRS = st.lists(st.sampled_from(POOL), min_size=2, max_size=2, unique=True)


@FAST
@given(registries(), st.sampled_from(KINDS), PAIRS, st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)))
def test_resolution_property(treaties, kind, pair, received_on):
    a, b = pair
    result = resolve_treaty(treaties, kind, a, b, received_on)
    candidates = [t for t in treaties if t.kind == kind and {a, b} <= set(t.parties)
                  and (t.in_force_on is None or t.in_force_on <= received_on)]
    if result is None:
        assert candidates == []
        return
    assert result.kind == kind
    assert {a, b} <= set(result.parties)
    assert result.in_force_on is None or result.in_force_on <= received_on
    if any(not t.multilateral for t in candidates):
        assert not result.multilateral  # a bilateral is always preferred
    # symmetric, and independent of the order of the registry
    assert resolve_treaty(treaties, kind, b, a, received_on) == result
    shuffled = list(treaties)
    random.Random(0).shuffle(shuffled)
    assert resolve_treaty(list(reversed(treaties)), kind, a, b, received_on) == result
    assert resolve_treaty(shuffled, kind, a, b, received_on) == result
