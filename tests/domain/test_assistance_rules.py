"""Rules of mutual legal assistance (API.md "Mutual legal assistance", DOMAIN.md routing, dual
criminality, the evidence manifest), without Temporal: routing of measures, the authorising
court, the scope of a treaty, the validation of requests and acts, the manifest and the outcome
of a request."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.assistance import (
    AssistanceRequest, EvidenceItem, MeasureResult, MeasureView, Review, authorising_court, manifest,
    refusal_grounds_of, request_outcome, route_measure, scope,
)
from domain.reference import Treaty, reference
from treatyflow.samples import assistance_body, assistance_request

FAST = settings(max_examples=200, deadline=None)

KINDS = ["search", "seizure", "inspection", "identify_bank_accounts", "interrogation", "information_exchange"]
COERCIVE = {"search", "seizure"}
DEFAMATION = [{"article": "226", "iccs": "0209", "description": "Diffamation"}]
FRAUD = [{"article": "313-1", "iccs": "0701", "description": "Fraud"}]
UNRESOLVED = [{"article": "999-9", "description": "unmapped"}]  # no iccs; FR has no article table
DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def ref():
    return reference()


def treaty(treaty_id: str):
    found = reference().treaty(treaty_id)
    assert found is not None, treaty_id
    return found


def measures(*kinds: str) -> list[dict]:
    return [{"id": f"m{i + 1}", "kind": k, "description": f"measure {k}", "subject": "someone"}
            for i, k in enumerate(kinds)]


def by_id(views: list[MeasureView]) -> dict[str, MeasureView]:
    return {v.id: v for v in views}


# --- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, authority", [
    ("identify_bank_accounts", "kz-afm"),
    ("search", "kz-police"), ("seizure", "kz-police"), ("inspection", "kz-police"), ("interrogation", "kz-police"),
    ("information_exchange", "kz-gpo"),
])
def test_measures_are_routed_to_kazakh_executing_authorities_by_kind(ref, kind, authority):
    assert route_measure(ref, kind, "KZ") == authority


@pytest.mark.parametrize("kind", KINDS)
def test_a_state_without_executing_authorities_routes_every_measure_to_its_central_authority(ref, kind):
    assert route_measure(ref, kind, "GB") == "gb-ukca"


def test_the_authorising_court_is_the_court_else_the_central_authority(ref):
    assert authorising_court(ref, "KZ") == "kz-court"
    assert authorising_court(ref, "GB") == "gb-ukca"


# --- scope ------------------------------------------------------------------------------------

def test_scope_under_kz_fr_routes_each_measure_and_sends_the_search_to_the_court(ref):
    views = by_id(scope(assistance_request(), treaty("kz-fr-mla-2021"), ref))
    assert {i: (v.kind, v.stage, v.assigned_to, v.court, v.dual_criminality) for i, v in views.items()} == {
        "m1": ("identify_bank_accounts", "pending", "kz-afm", None, "not_applicable"),
        "m2": ("search", "pending", "kz-police", "kz-court", "satisfied"),
        "m3": ("interrogation", "pending", "kz-police", None, "not_applicable"),
    }
    assert all(v.grounds == [] for v in views.values())


@pytest.mark.parametrize("offences, outcome, stage, grounds", [
    # defamation or insult (0209) always needs review in Kazakhstan: insult is still a crime there
    (DEFAMATION, "needs_review", "pending", []),
    (FRAUD, "satisfied", "pending", []),
    (UNRESOLVED, "needs_review", "pending", []),
    (FRAUD + DEFAMATION, "needs_review", "pending", []),
    (FRAUD + UNRESOLVED, "needs_review", "pending", []),
])
def test_coercive_measures_need_dual_criminality_judged_in_kazakhstan(ref, offences, outcome, stage, grounds):
    request = assistance_request(offences=offences, measures=measures(*KINDS))
    views = scope(request, treaty("kz-fr-mla-2021"), ref)
    for v in views:
        if v.kind in COERCIVE:
            assert (v.dual_criminality, v.stage, v.grounds) == (outcome, stage, grounds), v.kind
            assert v.court == ("kz-court" if stage == "pending" else None), v.kind
        else:
            assert (v.dual_criminality, v.stage, v.grounds, v.court) == ("not_applicable", "pending", [], None), v.kind
    assert [v.id for v in views] == [m.id for m in request.measures]


@pytest.mark.parametrize("offences", [DEFAMATION, FRAUD + DEFAMATION])
def test_a_coercive_measure_for_conduct_not_criminal_in_the_requested_state_is_not_permitted(ref, offences):
    """0209 is not criminal in GB (criminal libel abolished): a KZ search for defamation fails there."""
    request = assistance_request(requesting_state="KZ", requested_state="GB", offences=offences,
                                 measures=measures(*KINDS))
    views = scope(request, treaty("kz-gb-mla-2015"), ref)
    for v in views:
        if v.kind in COERCIVE:
            assert (v.dual_criminality, v.stage, v.grounds, v.court) == (
                "failed", "not_permitted", ["no_dual_criminality"], None), v.kind
        else:
            assert (v.dual_criminality, v.stage, v.grounds) == ("not_applicable", "pending", []), v.kind


def treaty_dict(treaty_id: str, **assistance_changes) -> dict:
    """A registry entry shaped like domain/data/treaties.json, its assistance rules varied."""
    raw = json.loads((reference().treaty(treaty_id).model_dump_json()))
    for key, value in assistance_changes.items():
        raw["assistance"][key]["value"] = value
    raw["id"] = "test-mla"
    return raw


def test_a_measure_the_treaty_does_not_permit_is_not_covered(ref):
    narrow = Treaty.model_validate(treaty_dict(
        "kz-fr-mla-2021", permitted_measures=["identify_bank_accounts", "information_exchange", "search"]))
    request = assistance_request(measures=measures("identify_bank_accounts", "interrogation", "search", "seizure"))
    views = by_id(scope(request, narrow, ref))
    assert (views["m1"].stage, views["m1"].grounds) == ("pending", [])
    assert (views["m2"].stage, views["m2"].grounds) == ("not_permitted", ["not_covered_by_treaty"])
    assert (views["m3"].stage, views["m3"].court) == ("pending", "kz-court")
    assert (views["m4"].stage, views["m4"].grounds, views["m4"].court) == (
        "not_permitted", ["not_covered_by_treaty"], None)
    assert refusal_grounds_of([views["m2"], views["m4"]]) == ["not_covered_by_treaty"]


def test_a_measure_not_covered_is_not_permitted_even_with_a_failing_offence(ref):
    # defamation is not criminal in GB, so the search would fail dual criminality there
    narrow = Treaty.model_validate(treaty_dict("kz-gb-mla-2015", permitted_measures=["interrogation"]))
    request = assistance_request(requesting_state="KZ", requested_state="GB", offences=DEFAMATION,
                                 measures=measures("search", "interrogation"))
    views = scope(request, narrow, ref)
    assert [(v.stage, v.grounds) for v in views] == [("not_permitted", ["not_covered_by_treaty"]), ("pending", [])]


def test_without_dual_criminality_measures_a_coercive_measure_stays_pending(ref):
    """KZ–IT names no measure that needs dual criminality: a defamation search is not judged."""
    request = assistance_request(requesting_state="IT", offences=DEFAMATION, measures=measures("search", "seizure"))
    views = scope(request, treaty("kz-it-mla"), ref)
    assert [(v.stage, v.grounds, v.dual_criminality, v.court) for v in views] == [
        ("pending", [], "not_applicable", "kz-court")] * 2


def test_a_request_to_britain_routes_everything_to_the_uk_central_authority(ref):
    request = assistance_request(requesting_state="KZ", requested_state="GB", measures=measures(*KINDS))
    views = scope(request, treaty("kz-gb-mla-2015"), ref)
    assert {v.assigned_to for v in views} == {"gb-ukca"}
    assert {v.court for v in views if v.kind in COERCIVE} == {"gb-ukca"}
    assert {v.court for v in views if v.kind not in COERCIVE} == {None}


def test_refusal_grounds_are_the_sorted_union_of_the_measures_grounds():
    views = [MeasureView(id="a", kind="search", stage="not_permitted", grounds=["no_dual_criminality"]),
             MeasureView(id="b", kind="seizure", stage="not_permitted", grounds=["not_covered_by_treaty"]),
             MeasureView(id="c", kind="search", stage="not_permitted", grounds=["no_dual_criminality"])]
    assert refusal_grounds_of(views) == ["no_dual_criminality", "not_covered_by_treaty"]


# --- validation of the request and the acts -----------------------------------------------------

def test_the_factory_request_is_valid():
    request = assistance_request()
    assert [m.id for m in request.measures] == ["m1", "m2", "m3"]
    assert (request.urgent, request.confidential, request.respond_by) == (False, False, None)


@pytest.mark.parametrize("changes", [
    dict(measures=[*measures("search", "seizure")[:1], {**measures("seizure")[0], "id": "m1"}]),
    dict(requested_state="FR"),
    dict(respond_by="2026-10-31"),
    dict(measures=[]),
    dict(offences=[]),
    dict(measures=[{**measures("search")[0], "kind": "wiretap"}]),
    dict(measures=[{**measures("search")[0], "id": "bad id!"}]),
    dict(purpose=" "),
    dict(unknown_field=1),
], ids=["duplicate-measure-ids", "equal-states", "respond-by-before-receipt", "no-measures", "no-offences",
        "unknown-kind", "bad-measure-id", "blank-purpose", "unknown-field"])
def test_invalid_requests_are_rejected(changes):
    with pytest.raises(ValidationError):
        AssistanceRequest.model_validate(assistance_body(**changes))


def test_respond_by_on_the_day_of_receipt_is_accepted():
    assert assistance_request(respond_by="2026-11-01").respond_by == date(2026, 11, 1)


@pytest.mark.parametrize("body", [
    {"decision": "accept"},
    {"decision": "accept", "dual_criminality": "satisfied", "note": "ok"},
    {"decision": "refuse", "grounds": ["discrimination"], "note": "why"},
    {"decision": "request_information", "questions": "Which accounts?"},
    {"decision": "postpone", "postpone_until": "2030-01-01", "note": "ongoing domestic proceedings"},
])
def test_valid_reviews(body):
    Review.model_validate(body)


@pytest.mark.parametrize("body", [
    {"decision": "refuse"},
    {"decision": "refuse", "grounds": []},
    {"decision": "request_information"},
    {"decision": "request_information", "questions": "  "},
    {"decision": "postpone", "note": "a reason"},
    {"decision": "postpone", "postpone_until": "2030-01-01"},
    {"decision": "accept", "grounds": ["discrimination"]},
    {"decision": "accept", "questions": "why?"},
    {"decision": "accept", "postpone_until": "2030-01-01"},
    {"decision": "refuse", "grounds": ["discrimination"], "dual_criminality": "satisfied"},
    {"decision": "refuse", "grounds": ["discrimination"], "questions": "why?"},
    {"decision": "request_information", "questions": "q", "grounds": ["discrimination"]},
    {"decision": "request_information", "questions": "q", "postpone_until": "2030-01-01"},
    {"decision": "postpone", "postpone_until": "2030-01-01", "note": "r", "dual_criminality": "not_satisfied"},
    {"decision": "postpone", "postpone_until": "2030-01-01", "note": "r", "questions": "q"},
    {"decision": "grant"},
    {"decision": "accept", "extra": 1},
])
def test_invalid_reviews_are_rejected(body):
    with pytest.raises(ValidationError):
        Review.model_validate(body)


def evidence(item_id: str = "e1", sha256: str = DIGEST, description: str = "bank statement") -> dict:
    return {"item_id": item_id, "description": description, "sha256": sha256, "collected_on": "2026-11-10"}


def test_an_executed_result_needs_evidence():
    with pytest.raises(ValidationError):
        MeasureResult.model_validate({"outcome": "executed"})
    with pytest.raises(ValidationError):
        MeasureResult.model_validate({"outcome": "executed", "evidence": []})
    assert MeasureResult.model_validate({"outcome": "executed", "evidence": [evidence()]}).evidence[0].item_id == "e1"
    assert MeasureResult.model_validate({"outcome": "not_executed", "note": "no such office"}).evidence == []


@pytest.mark.parametrize("digest", ["ab" * 31, "ab" * 33, "g" * 64, "", "ab" * 31 + "a "])
def test_a_digest_must_be_64_hex_digits(digest):
    with pytest.raises(ValidationError):
        EvidenceItem.model_validate(evidence(sha256=digest))


def test_an_uppercase_digest_is_normalised_to_lowercase():
    assert EvidenceItem.model_validate(evidence(sha256="AB" * 32)).sha256 == "ab" * 32
    assert EvidenceItem.model_validate(evidence(sha256="aB" * 32)).sha256 == "ab" * 32


def test_evidence_item_ids_are_unique_within_a_result():
    with pytest.raises(ValidationError):
        MeasureResult.model_validate({"outcome": "executed", "evidence": [evidence("e1"), evidence("e1")]})


# --- the evidence manifest --------------------------------------------------------------------

def expected_digest(items: list[dict]) -> str:
    """API.md: SHA-256 of the UTF-8 JSON of ``items``, keys sorted, no whitespace, not ASCII-escaped."""
    encoded = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def executed(measure_id: str, items: list[dict]) -> MeasureView:
    return MeasureView.model_validate({"id": measure_id, "kind": "search", "stage": "executed", "evidence": items})


def test_the_manifest_lists_every_item_sorted_and_digests_canonical_json():
    views = [executed("m3", [evidence("z", "01" * 32), evidence("a", "02" * 32)]),
             executed("m1", [evidence("e2", "03" * 32), evidence("e1", "04" * 32)]),
             MeasureView(id="m2", kind="search", stage="denied")]
    results = manifest(views)
    assert [(i.measure_id, i.item_id) for i in results.items] == [("m1", "e1"), ("m1", "e2"), ("m3", "a"),
                                                                  ("m3", "z")]
    items = [{"measure_id": m, "item_id": e["item_id"], "description": e["description"], "sha256": e["sha256"],
              "collected_on": e["collected_on"]}
             for m, e in [("m1", evidence("e1", "04" * 32)), ("m1", evidence("e2", "03" * 32)),
                          ("m3", evidence("a", "02" * 32)), ("m3", evidence("z", "01" * 32))]]
    assert [i.model_dump(mode="json") for i in results.items] == items
    assert results.manifest_sha256 == expected_digest(items)
    assert results.manifest_sha256 == results.manifest_sha256.lower() and len(results.manifest_sha256) == 64


def test_an_empty_manifest_is_the_digest_of_an_empty_list():
    results = manifest([MeasureView(id="m1", kind="search", stage="not_executed")])
    assert results.items == []
    assert results.manifest_sha256 == hashlib.sha256(b"[]").hexdigest()


def test_non_ascii_descriptions_are_encoded_as_utf8_not_escaped():
    item = evidence("e1", DIGEST, "Выписка по счёту — relevé « société »")
    results = manifest([executed("m1", [item])])
    items = [{"measure_id": "m1", **item}]
    assert results.manifest_sha256 == expected_digest(items)
    escaped = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert results.manifest_sha256 != hashlib.sha256(escaped.encode()).hexdigest()


item_ids = st.text(alphabet="abcxyzAZ09._-", min_size=1, max_size=8)
descriptions = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and s.strip())
evidence_items = st.builds(
    lambda d, h, day: {"description": d, "sha256": h, "collected_on": date(2026, 1, day).isoformat()},
    descriptions, st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64), st.integers(1, 28))
measure_lists = st.dictionaries(
    st.text(alphabet="abmM0123_-", min_size=1, max_size=5),
    st.dictionaries(item_ids, evidence_items, max_size=4), max_size=5)


@settings(max_examples=100, deadline=None)
@given(measure_lists, st.randoms(use_true_random=False))
def test_the_digest_depends_neither_on_the_order_of_measures_nor_of_their_evidence(by_measure, rnd):
    def build(order_measures, order_items, reverse_keys):
        out = []
        for mid in order_measures:
            items = []
            for iid in order_items[mid]:
                raw = {"item_id": iid, **by_measure[mid][iid]}
                if reverse_keys:
                    raw = dict(reversed(list(raw.items())))
                items.append(raw)
            view = {"id": mid, "kind": "seizure", "stage": "executed", "evidence": items}
            out.append(MeasureView.model_validate(dict(reversed(list(view.items()))) if reverse_keys else view))
        return out

    ids = list(by_measure)
    first = build(ids, {m: list(by_measure[m]) for m in ids}, False)
    shuffled_ids = ids[:]
    rnd.shuffle(shuffled_ids)
    shuffled_items = {m: rnd.sample(list(by_measure[m]), len(by_measure[m])) for m in ids}
    second = build(shuffled_ids, shuffled_items, True)

    a, b = manifest(first), manifest(second)
    assert a == b
    items = sorted(({"measure_id": m, "item_id": i, "description": e["description"], "sha256": e["sha256"].lower(),
                     "collected_on": e["collected_on"]} for m in ids for i, e in by_measure[m].items()),
                   key=lambda d: (d["measure_id"], d["item_id"]))
    assert [i.model_dump(mode="json") for i in a.items] == items
    assert a.manifest_sha256 == expected_digest(items)


# --- the outcome of a request -----------------------------------------------------------------

MEASURE_STAGES = ["not_permitted", "executed", "not_executed", "denied", "cancelled"]


def oracle(stages: list[str]) -> str:
    """API.md: counted measures exclude not_permitted and cancelled; denied and not_executed count
    as not executed. completed: every counted measure executed; partially_completed: at least one
    executed and at least one not; unsuccessful: none executed."""
    counted = [s for s in stages if s not in ("not_permitted", "cancelled")]
    done = [s for s in counted if s == "executed"]
    if not done:
        return "unsuccessful"
    return "completed" if len(done) == len(counted) else "partially_completed"


@FAST
@given(st.lists(st.sampled_from(MEASURE_STAGES), min_size=1, max_size=8))
def test_the_outcome_follows_the_counted_measures(stages):
    views = [MeasureView(id=f"m{i}", kind="search", stage=s) for i, s in enumerate(stages)]
    assert request_outcome(views) == oracle(stages)


@pytest.mark.parametrize("stages, outcome", [
    (["executed", "executed"], "completed"),
    (["executed", "not_permitted", "cancelled"], "completed"),
    (["executed", "denied"], "partially_completed"),
    (["executed", "not_executed", "not_permitted"], "partially_completed"),
    (["denied", "not_executed"], "unsuccessful"),
    (["not_permitted", "not_executed"], "unsuccessful"),
    (["cancelled", "not_permitted"], "unsuccessful"),
])
def test_outcome_examples(stages, outcome):
    views = [MeasureView(id=f"m{i}", kind="search", stage=s) for i, s in enumerate(stages)]
    assert request_outcome(views) == outcome


def test_dual_criminality_is_judged_for_every_kind_the_treaty_lists_coercive_or_not(ref):
    """The treaty's list is data: a non-coercive kind on it is judged (defamation is not criminal
    in GB), a coercive kind off it is not, and only coercive kinds go to the court."""
    listed = Treaty.model_validate(treaty_dict(
        "kz-gb-mla-2015", dual_criminality_measures=["identify_bank_accounts", "interrogation"]))
    request = assistance_request(requesting_state="KZ", requested_state="GB", offences=DEFAMATION,
                                 measures=measures("identify_bank_accounts", "interrogation", "search",
                                                   "information_exchange"))
    views = by_id(scope(request, listed, ref))
    assert [(views[m].stage, views[m].grounds, views[m].dual_criminality) for m in ("m1", "m2")] == [
        ("not_permitted", ["no_dual_criminality"], "failed")] * 2
    assert (views["m3"].stage, views["m3"].dual_criminality, views["m3"].court) == (
        "pending", "not_applicable", "gb-ukca")
    assert (views["m4"].stage, views["m4"].dual_criminality, views["m4"].court) == ("pending", "not_applicable", None)

    fraud = assistance_request(requesting_state="KZ", requested_state="GB", offences=UNRESOLVED,
                               measures=measures("interrogation"))
    (only,) = scope(fraud, listed, ref)
    assert (only.stage, only.dual_criminality, only.court) == ("pending", "needs_review", None)
