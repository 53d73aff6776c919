"""The shipped reference data loads and says what DOMAIN.md says; broken data fails with an error
that names the file and the entry at fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from domain.reference import DATA_DIR, ReferenceDataError, load_reference

DEMO_REGISTRY = {
    "kz-uz-transfer-2021": ("transfer", {"KZ", "UZ"}),
    "kz-it-transfer-2013": ("transfer", {"KZ", "IT"}),
    "kz-hu-transfer-2014": ("transfer", {"KZ", "HU"}),
    "kz-es-transfer": ("transfer", {"KZ", "ES"}),
    "coe-ets-112": ("transfer", {"FR", "IT", "ES", "GB", "HU"}),
    "kz-fr-mla-2021": ("assistance", {"KZ", "FR"}),
    "kz-gb-mla-2015": ("assistance", {"KZ", "GB"}),
    "kz-it-mla": ("assistance", {"KZ", "IT"}),
    "kz-es-mla": ("assistance", {"KZ", "ES"}),
    "kz-mc-mla": ("assistance", {"KZ", "MC"}),
    "kz-hu-mla": ("assistance", {"KZ", "HU"}),
}
STATES = {"KZ", "UZ", "FR", "IT", "ES", "GB", "HU", "MC"}
DOMAIN_DIVISIONS = ["0101", "0208", "0209", "0401", "0501", "0502", "0601", "0701", "0703"]


@pytest.fixture(scope="module")
def ref():
    return load_reference()


# --- the shipped data -------------------------------------------------------------------------


def test_shipped_data_loads(ref):
    assert ref.treaties
    assert ref.authorities
    assert set(ref.criminalisation) == STATES
    assert {"KZ", "UZ"} <= set(ref.articles)


def test_registry_has_the_demo_treaties_with_kinds_and_parties(ref):
    assert {t.id for t in ref.treaties} >= set(DEMO_REGISTRY)
    for treaty_id, (kind, parties) in DEMO_REGISTRY.items():
        treaty = ref.treaty(treaty_id)
        assert treaty is not None, treaty_id
        assert treaty.kind == kind, treaty_id
        assert set(treaty.parties) == parties, treaty_id
    assert ref.treaty("coe-ets-112").multilateral


def test_no_transfer_treaty_between_kazakhstan_and_france(ref):
    assert not [t for t in ref.treaties if t.kind == "transfer" and {"KZ", "FR"} <= set(t.parties)]


@pytest.mark.parametrize("treaty_id", ["kz-hu-transfer-2014", "kz-es-transfer"])
def test_unverified_transfer_treaties(ref, treaty_id):
    assert ref.treaty(treaty_id).verified is False


def test_kz_uz_transfer_rules(ref):
    rules = ref.treaty("kz-uz-transfer-2021").transfer
    assert rules.min_remaining_months.value == 12
    assert any("Zhibek Zholy" in point for point in rules.handover_points.value)
    assert {"outstanding_financial_obligations", "proceedings_pending"} <= set(rules.refusal_grounds.value)


def test_kazakhstan_sends_defamation_or_insult_to_review(ref):
    """Defamation left the Kazakh criminal code in 2020, insult stayed: 0209 is neither excluded
    nor presumed criminal, it always needs review, and says where that comes from."""
    kz = ref.criminalisation_of("KZ")
    assert "0209" not in {entry.code for entry in kz.not_criminal}
    (entry,) = [e for e in kz.always_review if e.code == "0209"]
    assert "130" in entry.note and "insult" in entry.note.lower()
    assert "fergana" in entry.source and entry.verified is False


def test_britain_does_not_criminalise_defamation(ref):
    assert "0209" in {entry.code for entry in ref.criminalisation_of("GB").not_criminal}


@pytest.mark.parametrize("state", ["UZ", "FR"])
def test_defamation_is_criminal_in_uzbekistan_and_france(ref, state):
    table = ref.criminalisation_of(state)
    assert not [e for e in table.not_criminal if "0209".startswith(e.code) or e.code.startswith("0209")]


def test_iccs_has_all_eleven_sections_with_titles(ref):
    sections = {s.code: s for s in ref.iccs.sections}
    assert set(sections) == {f"{n:02d}" for n in range(1, 12)}
    assert all(s.title.strip() for s in sections.values())


@pytest.mark.parametrize("code", DOMAIN_DIVISIONS)
def test_iccs_has_the_divisions_named_in_domain(ref, code):
    assert ref.iccs.titles.get(code, "").strip()


def test_iccs_titles_of_key_divisions(ref):
    titles = ref.iccs.titles
    assert titles["0101"] == "Intentional homicide"
    assert titles["0209"] == "Defamation or insult"
    assert titles["0502"] == "Theft"
    assert titles["0703"] == "Corruption"


@pytest.mark.parametrize("code", ["0502", "05021", "050211", "02", "0209"])
def test_iccs_accepts_known_codes(ref, code):
    assert ref.iccs.is_valid(code)


@pytest.mark.parametrize("code", ["0599", "12", "05021x", "", "5", "050", "0502111"])
def test_iccs_rejects_unknown_codes(ref, code):
    assert not ref.iccs.is_valid(code)


def test_article_tables_use_valid_iccs_codes(ref):
    for table in ref.articles.values():
        for entry in table.articles:
            assert ref.iccs.is_valid(entry.iccs), (table.state, entry.article)


def test_article_lookup(ref):
    assert ref.articles["KZ"].lookup("188").iccs == "0502"
    assert ref.articles["KZ"].lookup(" 188 ").iccs == "0502"
    assert ref.articles["UZ"].lookup("139").iccs == "0209"
    assert ref.articles["KZ"].lookup("130") is None  # defamation left the KZ criminal code in 2020


# --- broken data fails loudly -----------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _save(path: Path, raw) -> None:
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")


def _entry(entries: list[dict], key: str, value: str) -> dict:
    return next(e for e in entries if e[key] == value)


def test_copied_data_loads(data_dir):
    load_reference(data_dir)


def test_unknown_iccs_code_in_article_table(data_dir):
    path = data_dir / "articles" / "KZ.json"
    raw = _load(path)
    _entry(raw["articles"], "article", "188")["iccs"] = "0599"
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "article='188'" in str(err.value)


def test_treaty_with_a_bad_refusal_ground(data_dir):
    path = data_dir / "treaties.json"
    raw = _load(path)
    treaty = _entry(raw["treaties"], "id", "kz-uz-transfer-2021")
    treaty["transfer"]["refusal_grounds"]["value"].append("bad_weather")
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "id='kz-uz-transfer-2021'" in str(err.value)
    assert "bad_weather" in str(err.value)


@pytest.mark.parametrize(("authority", "treaty_id", "state"), [
    ("uz-gpo", "kz-uz-transfer-2021", "UZ"),
    ("ru-gp", "cis-1998-transfer", "RU"),  # a state of the wider network, too
])
def test_treaty_party_without_a_central_authority(data_dir, authority, treaty_id, state):
    path = data_dir / "authorities.json"
    raw = _load(path)
    raw["authorities"] = [a for a in raw["authorities"] if a["id"] != authority]
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(data_dir / "treaties.json") in str(err.value)
    assert treaty_id in str(err.value)
    assert state in str(err.value)


def test_invalid_json(data_dir):
    path = data_dir / "treaties.json"
    path.write_text('{"treaties": [', encoding="utf-8")
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "not valid JSON" in str(err.value)


def test_duplicate_authority_id(data_dir):
    path = data_dir / "authorities.json"
    raw = _load(path)
    raw["authorities"].append(dict(_entry(raw["authorities"], "id", "kz-gpo")))
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "'kz-gpo'" in str(err.value)


def test_authority_missing_a_field(data_dir):
    path = data_dir / "authorities.json"
    raw = _load(path)
    del _entry(raw["authorities"], "id", "kz-penal")["name"]
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "id='kz-penal'" in str(err.value)
    assert "name" in str(err.value)


def test_unknown_iccs_code_in_criminalisation(data_dir):
    path = data_dir / "criminalisation" / "FR.json"
    raw = _load(path)
    raw["not_criminal"].append({"code": "0599", "source": "test", "verified": False})
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert "code='0599'" in str(err.value)


@pytest.mark.parametrize(("superseded", "why"), [
    ("cis-1994-atlantis", "unknown id"),
    ("cis-1998-transfer", "a treaty of the other kind"),
    ("cis-2002-chisinau-legal-assistance", "itself"),
])
def test_a_treaty_superseding_what_is_not_another_treaty_of_its_kind(data_dir, superseded, why):
    path = data_dir / "treaties.json"
    raw = _load(path)
    _entry(raw["treaties"], "id", "cis-2002-chisinau-legal-assistance")["supersedes"] = [superseded]
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value), why
    assert "cis-2002-chisinau-legal-assistance" in str(err.value) and superseded in str(err.value), why


def test_two_treaties_superseding_each_other(data_dir):
    path = data_dir / "treaties.json"
    raw = _load(path)
    _entry(raw["treaties"], "id", "cis-1993-minsk-legal-assistance")["supersedes"] = [
        "cis-2002-chisinau-legal-assistance"]
    _save(path, raw)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert "cis-1993-minsk-legal-assistance" in str(err.value)
