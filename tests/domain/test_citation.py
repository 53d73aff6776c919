"""Criminal-code citations as courts write them (DOMAIN.md, "Dual criminality"): normalised to
the article and, if given, its part; prefixes, points and the code's own name ignored; the text
kept in the case as written; anything not understood is None (needs review), never an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.citation import Citation, is_canonical_key, parse_citation
from domain.dual_criminality import assess_dual_criminality, assess_offence
from domain.reference import DATA_DIR, ArticleTable, ReferenceDataError, load_reference, reference

FAST = settings(max_examples=300, deadline=None)


def key(text: str) -> str | None:
    parsed = parse_citation(text)
    return parsed.key if parsed else None


# --- (b) real shapes of citation, with their keys ------------------------------------------------

SHAPES = [
    # Kazakhstan, in Russian
    ("188", "188"),
    ("188 ч.2", "188:2"),
    ("ст. 188 ч. 2 п. 3", "188:2"),
    ("ч.2 ст.188 УК РК", "188:2"),
    ("п. 3 ч. 2 ст. 188 УК РК", "188:2"),
    ("части 2 статьи 188 УК Республики Казахстан", "188:2"),
    ("частью второй статьи 190 Уголовного кодекса Республики Казахстан", "190:2"),
    ("ст. 190-1", "190-1"),
    ("ч.2-1 ст. 99", "99:2-1"),
    ("cт. 188 ч. 2", "188:2"),  # a Latin "c" in "ст"
    # Kazakhstan, in Kazakh
    ("188-бап 2-бөлігі", "188:2"),
    ("ҚР ҚК 188-бабының 2-бөлігі", "188:2"),
    ("ҚК-нің 190-бабы 3-бөлігінің 2) тармағы", "190:3"),
    ("Қазақстан Республикасы Қылмыстық кодексінің 99-бабы 2-бөлігінің 1) тармағы", "99:2"),
    ("188-баптың екінші бөлігі", "188:2"),
    ("191-бап 1-бөлiгi", "191:1"),  # Latin "i" for the Kazakh "і", as often typed
    # Uzbekistan, in Russian
    ("п. «а» ч. 3 ст. 169 УК РУз", "169:3"),
    ("п.п. «а», «б» ч. 3 ст. 169 УК РУз", "169:3"),
    ('ч. 2 ст. 168 УК Республики Узбекистан, п. "б"', "168:2"),
    ("ст. 216¹ УК РУз", "216-1"),  # an inserted article, printed with a superscript
    # Uzbekistan, in Uzbek (Latin and Cyrillic)
    ("169-modda 2-qism", "169:2"),
    ("JK 169-moddasi 3-qismi «a» bandi", "169:3"),
    ("O'zR JK 168-moddasi ikkinchi qismi", "168:2"),
    ("Oʻzbekiston Respublikasi Jinoyat kodeksining 169-moddasi 3-qismi", "169:3"),
    ("ЖК 169-моддаси 2-қисми «б» банди", "169:2"),
    ("169-моддаси", "169"),
    # France
    ("art. 311-1 du Code pénal", "311-1"),
    ("article 222-34 C. pén.", "222-34"),
    ("art. 222-13, al. 1, 1° du code pénal", "222-13:1"),
    ("art. 313-1 CP", "313-1"),
    ("art. L. 3421-1 CSP", None),  # a prefixed number: another code (santé publique)
    ("art. R. 625-1 du Code pénal", None),  # the regulatory part: not read
    # Italy
    ("art. 624-bis c.p.", "624-bis"),
    ("art. 624 bis c.p.", "624-bis"),
    ("art. 624bis cod. pen.", "624-bis"),
    ("art. 640 comma 2 c.p.", "640:2"),
    ("art. 640, co. 2, c.p.", "640:2"),
    ("art. 625, comma 1, n. 2, c.p.", "625:1"),
    ("art. 416-bis.1 c.p.", "416-bis-1"),
    ("art. 61 n. 5 codice penale", "61"),
    ("art. 73, comma 5, d.P.R. 309/1990", None),  # the drugs statute, not the code
    # England and Wales, and the DOMAIN.md shapes
    ("s. 1(1)", "1:1"),
    ("section 18", "18"),
    ("s.47", "47"),
    ("s. 9(1)(a)", "9:1"),
    ("section 343 of the Criminal Code", "343"),
    ("188(2)", "188:2"),
    ("188 part 2", "188:2"),
    ("art. 188, para. 2", "188:2"),
    ("188:2", "188:2"),
    # another statute, or more than one offence: needs review
    ("s. 1 Theft Act 1968", None),
    ("Fraud Act 2006, s. 2", None),
    ("s. 18 Offences Against the Person Act 1861", None),
    ("ст. 131 КоАП РК", None),
    ("ss. 1 and 2", None),
    ("ст.ст. 188, 190 УК РК", None),
    ("ч. 2 и 3 ст. 188", None),
    # not understood
    ("", None),
    ("   ", None),
    ("кража", None),
    ("ч. 2", None),
    ("ст.", None),
    ("188 (кража)", None),
    ("§ 242 StGB", None),
    ("0", None),
    ("no-such-article", None),
]


@pytest.mark.parametrize(("text", "expected"), SHAPES, ids=[s for s, _ in SHAPES])
def test_real_citation_shapes(text, expected):
    assert key(text) == expected


def test_there_are_enough_real_shapes():
    assert len(SHAPES) >= 30


@pytest.mark.parametrize(("text", "state", "expected"), [
    ("ст. 188 УК РК", "KZ", "188"), ("ҚР ҚК 188-бабы", "KZ", "188"), ("ч. 3 ст. 169 УК РУз", "UZ", "169:3"),
    ("O'zR JK 169-moddasi", "UZ", "169"), ("ст. 158 УК РФ", "RU", "158"), ("ст. 188", None, "188"),
    ("art. 311-1 du Code pénal", None, "311-1"),
])
def test_a_code_name_that_says_whose_code_it_is_is_kept_out_of_the_key(text, state, expected):
    parsed = parse_citation(text)
    assert (parsed.key, parsed.code_of) == (expected, state)


def test_other_statutes_never_collapse_to_the_criminal_codes_section():
    bare = key("s. 1")
    assert bare == "1"
    for text in ("s. 1 Theft Act 1968", "Theft Act 1968, s. 1", "s. 1 of the Theft Act 1968", "Fraud Act 2006, s. 1"):
        assert key(text) != bare
        assert key(text) is None


def test_the_keys_to_try_part_first():
    assert parse_citation("188 ч.2").lookup_keys == ("188:2", "188")
    assert parse_citation("ст. 188").lookup_keys == ("188",)
    assert Citation("190-1", "2").key == "190-1:2"


@pytest.mark.parametrize(("text", "canonical"), [
    ("188", True), ("190-1", True), ("188:2", True), ("624-bis", True), ("188:2-1", True),
    ("188 ", False), ("ст. 188", False), ("188(2)", False), ("190.1", False), ("624 bis", False), ("0188", False),
    ("188 УК РК", False), ("", False),
])
def test_canonical_keys(text, canonical):
    assert is_canonical_key(text) is canonical


# --- (a) the same citation however it is written ---------------------------------------------------

ARTICLE_PREFIXES = ["", "ст.", "ст", "Ст. ", "статья ", "статьи ", "art.", "Art. ", "article ", "articolo ",
                    "artículo ", "s.", "section ", "sec. "]
PART_FORMS = ["ч.{}", "ч. {}", "ч{}", "часть {}", "части {}", "part {}", "para. {}", "paragraph {}", "al. {}",
              "comma {}", "co. {}", "{}-бөлігі", "{} бөлік", "{}-qism", "{}-qismi", "{}-қисми"]
TURKIC_ARTICLE = ["{}-бап", "{}-бабы", "{}-бабының", "{}-modda", "{}-moddasi", "{}-моддаси", "{} бап"]
CODE_NAMES = ["", "УК РК", "УК РУз", "УК", "Уголовного кодекса Республики Казахстан", "c.p.", "Code pénal",
              "du Code pénal", "C. pén.", "CP", "Criminal Code", "ҚР ҚК", "O'zR JK", "Jinoyat kodeksi"]
POINTS = ["", "п. 3", "п.«а»", 'п. "б"', "пп. а, б", "lit. a", "lett. b)", "n. 2", "3)", "1°", "«a» bandi"]
SPACES = st.sampled_from([" ", "  ", "\t", "\u00a0", " \n "])


@st.composite
def article_numbers(draw) -> tuple[str, str]:
    """(as written, as keyed): 188, 190-1 / 190.1 / 190¹, 624 bis / 624-bis / 624bis."""
    base = str(draw(st.integers(1, 999)))
    kind = draw(st.sampled_from(["plain", "number", "latin"]))
    if kind == "plain":
        return base, base
    if kind == "number":
        n = draw(st.integers(1, 9))
        sep = draw(st.sampled_from(["-", ".", "superscript"]))
        written = base + ("⁰¹²³⁴⁵⁶⁷⁸⁹"[n] if sep == "superscript" else f"{sep}{n}")
        return written, f"{base}-{n}"
    latin = draw(st.sampled_from(["bis", "ter", "quater", "quinquies"]))
    return base + draw(st.sampled_from(["-", " ", ""])) + latin, f"{base}-{latin}"


def recase(draw, text: str) -> str:
    return draw(st.sampled_from([text, text.upper(), text.lower(), text.title()]))


@st.composite
def citations(draw) -> tuple[str, str]:
    """A citation written one of many ways, and the key every way of writing it must give."""
    article, article_key = draw(article_numbers())
    part = draw(st.none() | st.integers(1, 9).map(str))
    space = draw(SPACES)
    if draw(st.booleans()):
        prefix = recase(draw, draw(st.sampled_from(ARTICLE_PREFIXES)))
        article_text = prefix + (draw(SPACES) if prefix and not prefix.endswith((" ", ".")) else "") + article
    else:
        article_text = recase(draw, draw(st.sampled_from(TURKIC_ARTICLE))).format(article)
    pieces = [article_text]
    if part is not None:
        if draw(st.booleans()):  # 188(2), s. 1 (1)
            pieces[0] += draw(st.sampled_from(["", " "])) + f"({part})"
        else:
            part_text = recase(draw, draw(st.sampled_from(PART_FORMS))).format(part)
            pieces.insert(draw(st.integers(0, 1)), part_text)
    point = draw(st.sampled_from(POINTS))
    if point:
        where = draw(st.integers(0, len(pieces)))
        if where < len(pieces) and pieces[where][0].isdigit():
            where = len(pieces)  # "п. 3 188" would read 188 as a second point: no court writes it
        pieces.insert(where, point)
    code = recase(draw, draw(st.sampled_from(CODE_NAMES)))
    if code:
        pieces.insert(draw(st.sampled_from([0, len(pieces)])), code)
    separator = draw(st.sampled_from([space, "," + space]))
    text = separator.join(pieces)
    if draw(st.booleans()):
        text = draw(SPACES) + text + draw(SPACES)
    return text, f"{article_key}:{part}" if part else article_key


@FAST
@given(citations())
def test_every_way_of_writing_a_citation_gives_the_same_key(drawn):
    text, expected = drawn
    assert key(text) == expected, text


@FAST
@given(citations())
def test_the_case_keeps_the_citation_as_written(drawn):
    text, _ = drawn
    before = str(text)
    table = ArticleTable.model_validate({
        "state": "KZ", "code": "test", "source": "test fixture",
        "articles": [{"article": "1", "iccs": "0502", "title": "art. 1", "verified": True}]})
    catalogue = reference().iccs
    assessed = assess_offence(text, None, table, reference().criminalisation_of("UZ"), catalogue)
    assert assessed.article == text == before
    combined = assess_dual_criminality([(text, None)], table, reference().criminalisation_of("UZ"), catalogue)
    assert combined.offences[0].article == text
    assert text in combined.describe()


@FAST
@given(st.text(max_size=60))
def test_any_text_parses_or_is_none_never_raises_and_its_key_is_canonical(text):
    parsed = parse_citation(text)
    if parsed is not None:
        assert is_canonical_key(parsed.key)
        assert parse_citation(parsed.key).key == parsed.key


# --- (c) lookup -------------------------------------------------------------------------------


@pytest.fixture
def table() -> ArticleTable:
    return ArticleTable.model_validate({
        "state": "KZ", "code": "test criminal code", "source": "test fixture",
        "articles": [
            {"article": "191", "iccs": "0401", "title": "robbery", "verified": True},
            {"article": "191:1", "iccs": "0502", "title": "open theft", "verified": True},
            {"article": "190-1", "iccs": "0701", "title": "an inserted article", "verified": True},
        ],
    })


@pytest.mark.parametrize("text", ["191 ч.1", "ч. 1 ст. 191 УК РК", "191-бап 1-бөлігі", "191(1)", "191:1"])
def test_the_parts_entry_is_used_before_the_articles(table, text):
    assert table.lookup(text).article == "191:1"


@pytest.mark.parametrize("text", ["191", "ст. 191", "191 ч.2", "п. 1 ч. 3 ст. 191 УК РК", "191-бап 2-бөлігі"])
def test_the_articles_entry_otherwise(table, text):
    assert table.lookup(text).article == "191"


def test_a_suffixed_article_is_its_own_article(table):
    assert table.lookup("ст. 190-1 ч. 2").article == "190-1"
    assert table.lookup("190.1").article == "190-1"
    assert table.lookup("190") is None


@pytest.mark.parametrize("text", ["", "кража", "ч. 2", "ст. 999", "s. 191 Theft Act 1968", "ст. 191 УК РФ",
                                  "ст. 191 УК РУз"])
def test_unparseable_unknown_or_another_states_code_finds_nothing(table, text):
    assert table.lookup(text) is None


def test_the_shipped_part_level_entries():
    kz = reference().articles["KZ"]
    assert kz.lookup("191 ч.1").iccs == "0502"
    assert kz.lookup("ч. 2 ст. 191 УК РК").iccs == "0401"
    assert reference().articles["UZ"].lookup("166-modda 1-qism").iccs == "0502"


# --- (d) the tables must be written in canonical keys, each once ----------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _add_entry(path: Path, article: str) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["articles"].append({"article": article, "iccs": "0502", "title": "test", "verified": False})
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=2), encoding="utf-8")


@pytest.mark.parametrize(("written", "hint"), [
    ("ст. 188 ч. 3", "'188:3'"), ("188 ч.3", "'188:3'"), ("188.1", "'188-1'"), (" 500", "'500'"),
    ("кража", None),
])
def test_a_non_canonical_key_does_not_load(data_dir, written, hint):
    path = data_dir / "articles" / "KZ.json"
    _add_entry(path, written)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    message = str(err.value)
    assert str(path) in message
    assert f"article={written!r}" in message
    assert "canonical" in message
    if hint:
        assert hint in message


@pytest.mark.parametrize("duplicate", ["188", "191:1"])
def test_a_key_listed_twice_does_not_load(data_dir, duplicate):
    path = data_dir / "articles" / "KZ.json"
    _add_entry(path, duplicate)
    with pytest.raises(ReferenceDataError) as err:
        load_reference(data_dir)
    assert str(path) in str(err.value)
    assert f"article={duplicate!r}" in str(err.value)
    assert "listed twice" in str(err.value)


def test_a_part_entry_beside_its_article_loads(data_dir):
    path = data_dir / "articles" / "KZ.json"
    _add_entry(path, "188:3")
    loaded = load_reference(data_dir)
    assert loaded.articles["KZ"].lookup("ч. 3 ст. 188 УК РК").article == "188:3"
    assert loaded.articles["KZ"].lookup("ч. 2 ст. 188 УК РК").article == "188"
