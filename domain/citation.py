"""Criminal-code citations as courts write them (DOMAIN.md, "Dual criminality").

``parse_citation`` reads a citation such as ``188``, ``188 ч.2``, ``п. 3 ч. 2 ст. 188 УК РК``,
``188-бап 2-бөлігі``, ``169-moddasi 3-qismi «a» bandi``, ``art. 624 bis c.p.`` or ``s. 1(1)``
and returns its article and, if given, its part: the ``key`` an article table is looked up by
(``188``, ``188:2``). It never changes the text kept in the case, never raises, and returns
``None`` for anything it does not understand (the offence then needs review). Pure: no I/O.

How a citation is read. The text is split into numbers, words and punctuation (case, accents,
spacing and optional dots do not matter; Latin look-alike letters inside a Cyrillic word count
as Cyrillic), then read clause by clause, in any order:

- **Article**: a number, bare or after ``ст.``/``статья``, ``art.``/``article``/``articolo``/
  ``artículo``, ``s.``/``sec.``/``section``, or before the Kazakh ``бап`` (``188-бап``,
  ``188-бабының``) or the Uzbek ``modda``/``модда`` (``169-moddasi``, ``169-моддаси``). A suffix
  is part of the article's number: ``-N`` or ``.N`` (``190-1``, ``190.1``, and the superscript
  ``216¹``, all written ``190-1``), and the Latin ``bis``, ``ter``, ``quater`` … (``624 bis``,
  ``624-bis`` and ``624bis`` are all ``624-bis``; ``416-bis.1`` is ``416-bis-1``).
- **Part**: ``ч.``/``часть``/``части``…, ``part``, ``para.``/``paragraph``, ``subsection``,
  ``al.``/``alinéa``, ``comma``/``co.``, ``apartado``; a parenthesised number after the article
  (``188(2)``); a number before the Kazakh ``бөлік`` (``2-бөлігі``) or the Uzbek ``qism``/``қисм``
  (``2-qismi``); the part may be spelt as an ordinal (``части второй``, ``ikkinchi qismi``,
  ``екінші бөлігі``). A part carries suffixes like an article (``ч. 2-1`` is part ``2-1``,
  ``comma 1-bis`` part ``1-bis``). The canonical key form ``188:2`` reads as itself.
- **Points** are read and ignored: ``п.``/``пп.``/``пункт``, ``подп.``, ``абз.``, ``p.``,
  ``point``, ``lit.``/``lett.``, ``n.``, letters (``«а»``, ``"б"``, ``а)``, ``(a)``, ``(ii)``),
  ``3)``, ``1°``, the Kazakh ``тармақ`` and the Uzbek ``band``/``банд``.
- **The criminal code's own name** is ignored: ``УК``, ``Уголовного кодекса``, ``ҚК``,
  ``Қылмыстық кодексі``, ``ЖК``/``JK``, ``Jinoyat kodeksi``, ``Code pénal``, ``C. pén.``, ``CP``,
  ``c.p.``, ``cod. pen.``, ``codice penale``, ``Código Penal``, ``Criminal Code``, ``Penal Code``,
  before or after the article. When the name says whose code it is (``УК РК``, ``ҚР ҚК``,
  ``УК РУз``, ``O'zR JK``, ``УК РФ``, ``… Республики Казахстан``), the state is kept in
  ``code_of``: a table looks up only citations of its own state's code, so ``ст. 158 УК РФ``
  never resolves through the Kazakh table. ``code_of`` is not part of the key.

Decisions:

- **Other statutes → None.** A citation naming any statute other than a criminal code
  (``s. 1 Theft Act 1968``, ``Fraud Act 2006, s. 2``, ``ст. 131 КоАП РК``, ``art. 73 d.P.R.
  309/1990``) is not understood: the article tables map one criminal code per state, and
  section 1 of the Theft Act is not section 1 of anything a table lists. Such an offence needs
  review (or an ``iccs`` code given with it). Carrying the statute in the key would need a
  canonical spelling of every statute's name; no table needs one today.
- **French prefixed numbers → None.** ``art. L. 3421-1`` or ``art. R. 625-1``: a ``L.``/``R.``/
  ``D.`` number belongs to a code's legislative or regulatory part with its own numbering (the
  ``L.`` ones are other codes: santé publique, route …); the Code pénal's offences proper carry
  no letter.
- **One offence per citation.** Two articles (``ст.ст. 188, 190``, ``ss. 1 and 2``) or two parts
  (``ч. 2 и 3 ст. 188``) → None: each offence is its own entry in the case.
- A word, sign or number the grammar has no place for → None (``188 (кража)``, ``ч. 2`` with no
  article, ``§ 242``, an article numbered 0).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# --- the result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Citation:
    """A parsed citation: the article (``188``, ``190-1``, ``624-bis``), its part or None, and the
    state whose criminal code the citation names, when it names one (``УК РК`` → ``KZ``)."""

    article: str
    part: str | None = None
    code_of: str | None = None

    @property
    def key(self) -> str:
        """The canonical key: ``188`` or ``188:2``."""
        return f"{self.article}:{self.part}" if self.part else self.article

    @property
    def lookup_keys(self) -> tuple[str, ...]:
        """The keys to try in an article table, in order: the part's, then the article's."""
        return (self.key, self.article) if self.part else (self.article,)


def parse_citation(text: str) -> Citation | None:
    """The citation's article and part, or None when it is not understood. Never raises."""
    if not isinstance(text, str):
        return None
    try:
        return _Reader(_tokens(text)).citation()
    except _NotUnderstood:
        return None


def is_canonical_key(key: str) -> bool:
    """``key`` is a key as ``Citation.key`` writes it (``188``, ``190-1``, ``188:2``)."""
    citation = parse_citation(key)
    return citation is not None and citation.code_of is None and citation.key == key


# --- folding ------------------------------------------------------------------------------------

_LATIN_TO_CYRILLIC = str.maketrans("AaBCcEeHKkMOoPpTXxYyi", "АаВСсЕеНКкМОоРрТХхУуі")


def _fold(word: str) -> str:
    """Lower case without accents (й → и, ё → е, ў → у, é → e); Latin look-alikes inside a
    Cyrillic word made Cyrillic (a Latin ``c`` in ``cт``, a Latin ``i`` in ``бөлiгi``)."""
    if any("a" <= c.lower() <= "z" for c in word) and any("\u0400" <= c <= "\u04ff" for c in word):
        word = word.translate(_LATIN_TO_CYRILLIC)
    bare = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
    return unicodedata.normalize("NFC", bare.casefold())


def _words(*words: str) -> frozenset[str]:
    return frozenset(_fold(w) for w in words)


def _numbered(words: str) -> dict[str, str]:
    return {_fold(w): str(n) for n, w in enumerate(words.split(), start=1)}


# --- vocabulary (written as spelt; folded here) -------------------------------------------------

ARTICLE_WORDS = _words("ст", "статья", "статьи", "статье", "статью", "статьей", "art", "article", "articolo",
                       "artículo", "s", "sec", "sect", "section")
PART_WORDS = _words("ч", "част", "часть", "части", "частью", "part", "para", "paragraph", "subs", "subsection",
                    "al", "alinéa", "comma", "co", "apartado", "apdo")
POINT_WORDS = _words("п", "пп", "пункт", "пункта", "пункту", "пунктом", "подп", "подпункт", "подпункта", "абз",
                     "абзац", "абзаца", "p", "point", "lit", "litt", "litera", "lett", "lettera", "n")
MARKER_WORDS = ARTICLE_WORDS | PART_WORDS | POINT_WORDS
# Kazakh and Uzbek write the marker after the number, with a case ending: 188-бабының, 2-qismi.
ARTICLE_STEMS = tuple(_words("бап", "баб", "modda", "модда"))
PART_STEMS = tuple(_words("бөлік", "бөліг", "qism", "қисм", "кисм"))
POINT_STEMS = tuple(_words("тармақ", "тармағ", "band", "банд"))
LATIN_ORDINALS = _words("bis", "ter", "quater", "quinquies", "sexies", "septies", "octies", "novies", "nonies",
                        "decies", "undecies", "duodecies", "terdecies", "quaterdecies")
ROMAN = _words("i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii")
SKIPPED_WORDS = _words("of", "the", "du", "de", "des", "del", "della", "dello", "dei", "по",  # fillers
                       "and", "et", "va", "ва", "hamda", "ҳамда", "және")  # conjunctions
ORDINALS: dict[str, str] = {
    **{_fold(stem + end): str(n) for n, stem in ((1, "перв"), (2, "втор"), (4, "четвёрт"), (5, "пят"), (6, "шест"),
                                                 (7, "седьм"), (8, "восьм"), (9, "девят"), (10, "десят"))
       for end in ("ая", "ой", "ую")},  # часть первая, части второй, частью третьей
    **{_fold(w): "3" for w in ("третья", "третьей", "третью")},
    **_numbered("birinchi ikkinchi uchinchi to'rtinchi beshinchi oltinchi yettinchi sakkizinchi to'qqizinchi "
                "o'ninchi"),
    **_numbered("биринчи иккинчи учинчи тўртинчи бешинчи олтинчи еттинчи саккизинчи тўққизинчи ўнинчи"),
    **_numbered("бірінші екінші үшінші төртінші бесінші алтыншы жетінші сегізінші тоғызыншы оныншы"),
}

# The criminal code's own name, as phrases. A trailing ``*`` takes any ending (кодексінің,
# kodeksining); a trailing ``+`` a Turkic case ending, glued or after a hyphen (ҚК-нің, JKning).
CODE_NAMES: tuple[tuple[str, ...], ...] = tuple(tuple(_fold(w) for w in name.split()) for name in (
    "ук", "уголовного кодекса", "уголовный кодекс", "уголовному кодексу", "уголовным кодексом",
    "қк+", "қылмыстық кодекс*", "жк+", "jk+", "жиноят кодекс*", "jinoyat kodeks*",
    "code pénal", "c pén", "c pen", "cp", "c p", "cod pen", "codice penale", "código penal",
    "criminal code", "penal code",
))
QUALIFIERS: dict[tuple[str, ...], str] = {tuple(_fold(w) for w in name.split()): state for name, state in (
    ("рк", "KZ"), ("республики казахстан", "KZ"), ("қр", "KZ"), ("қазақстан республикасы*", "KZ"),
    ("republic of kazakhstan", "KZ"),
    ("руз", "UZ"), ("республики узбекистан", "UZ"), ("o'zr", "UZ"), ("ўзр", "UZ"),
    ("o'zbekiston respublikasi*", "UZ"), ("ўзбекистон республикаси*", "UZ"), ("republic of uzbekistan", "UZ"),
    ("рф", "RU"), ("российской федерации", "RU"), ("кр", "KG"), ("кыргызской республики", "KG"),
    ("рб", "BY"), ("республики беларусь", "BY"),
)}
TURKIC_ENDINGS = _words("нің", "ның", "дің", "дың", "тің", "тың", "нинг", "ning", "да", "де", "та", "те", "da",
                        "дағы", "даги", "dagi", "га", "ga", "ка", "ге")


_BETWEEN_NAMES = SKIPPED_WORDS | {"."}  # du Code pénal; Criminal Code of the Republic of Kazakhstan


# --- tokens -------------------------------------------------------------------------------------


class _NotUnderstood(Exception):
    pass


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "word" or "sign"
    text: str  # a word folded
    gap: bool  # white space before it


_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
_SIGNS = str.maketrans({
    "º": "°", "ª": "°", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-",
    "ʻ": "'", "ʼ": "'", "’": "'", "‘": "'", "`": "'", "´": "'",
    "«": '"', "»": '"', "“": '"', "”": '"', "„": '"', "‟": '"',
})
_TOKEN = re.compile(r"(?P<space>\s+)|(?P<num>[0-9]+)|(?P<word>[^\W\d_]+(?:'[^\W\d_]+)*)|(?P<sign>.)", re.S)


def _tokens(text: str) -> list[_Tok]:
    """Numbers, folded words and signs; a superscript is a suffix (216¹ → 216-1); quotes around a
    letter point are dropped."""
    text = _SUPERSCRIPT_RUN.sub(lambda m: "-" + m.group().translate(_SUPERSCRIPTS), text)
    text = unicodedata.normalize("NFKC", text.translate(_SIGNS))
    tokens: list[_Tok] = []
    gap = False
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "sign"
        if kind == "space":
            gap = True
            continue
        if not (kind == "sign" and m.group() in "\"'"):
            tokens.append(_Tok(kind, _fold(m.group()) if kind == "word" else m.group(), gap))
        gap = False
    return tokens


# --- the grammar --------------------------------------------------------------------------------


class _Reader:
    """Reads the tokens clause by clause; a token with no place in a clause is _NotUnderstood."""

    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0
        self.article: str | None = None
        self.part: str | None = None
        self.code_named = False
        self.code_of: str | None = None

    def citation(self) -> Citation:
        while self.i < len(self.toks):
            self.clause()
        if self.article is None:
            raise _NotUnderstood
        return Citation(self.article, self.part, self.code_of)

    # -- looking at tokens

    def tok(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def sign(self, signs: str, ahead: int = 0, glued: bool = False) -> bool:
        t = self.tok(ahead)
        return t is not None and t.kind == "sign" and t.text in signs and not (glued and t.gap)

    def num(self, ahead: int = 0, glued: bool = False) -> bool:
        t = self.tok(ahead)
        return t is not None and t.kind == "num" and not (glued and t.gap)

    def word(self, test: Callable[[str], bool], ahead: int = 0, glued: bool = False) -> bool:
        t = self.tok(ahead)
        return t is not None and t.kind == "word" and test(t.text) and not (glued and t.gap)

    def take(self) -> _Tok:
        t = self.tok()
        if t is None:
            raise _NotUnderstood
        self.i += 1
        return t

    def skip_dot(self) -> None:
        if self.sign("."):
            self.i += 1

    def marker_after(self, stems: tuple[str, ...]) -> bool:
        """A Kazakh or Uzbek marker next, after an optional hyphen (-бап, -бөлігі, bandi): taken."""
        hyphen = 1 if self.sign("-") else 0
        if self.word(lambda w: w.startswith(stems), ahead=hyphen):
            self.i += hyphen + 1
            return True
        return False

    # -- clauses

    def clause(self) -> None:
        t = self.toks[self.i]
        if t.kind == "sign" and t.text in ".,;":
            self.i += 1
        elif t.kind == "sign" and t.text == "(":
            self.parenthesis()
        elif t.kind == "num":
            self.numbered()
        elif t.kind == "word":
            self.worded(t.text)
        else:
            raise _NotUnderstood

    def worded(self, word: str) -> None:
        if self.code_name():
            return
        self.i += 1
        if word in SKIPPED_WORDS:
            return
        if word in ARTICLE_WORDS:
            self.skip_dot()
            self.set_article(self.number())
        elif word in PART_WORDS:
            self.skip_dot()
            self.set_part(ORDINALS[self.take().text] if self.word(ORDINALS.__contains__) else self.number())
        elif word in POINT_WORDS:
            self.skip_dot()
            self.points()
        elif word in ORDINALS and self.marker_after(PART_STEMS):  # ikkinchi qismi, екінші бөлігі
            self.set_part(ORDINALS[word])
        elif word in ORDINALS or _is_letter(word):  # a point before its marker: «а» bandi, а)
            if not (self.point_close() or self.marker_after(POINT_STEMS)):
                raise _NotUnderstood
        else:
            raise _NotUnderstood

    def numbered(self) -> None:
        """A number and what follows it says what it is: 188-бап, 2-бөлігі, 3) тармағы, 1°, the
        canonical 188:2; else it is the article."""
        n = self.number()
        if self.sign(":", glued=True) and self.num(ahead=1, glued=True):
            self.i += 1
            self.set_article(n)
            self.set_part(self.number())
        elif self.marker_after(ARTICLE_STEMS):
            self.set_article(n)
        elif self.marker_after(PART_STEMS):
            self.set_part(n)
        elif not (self.point_close() or self.marker_after(POINT_STEMS)):
            self.set_article(n)

    def parenthesis(self) -> None:
        """``(2)`` right after the article is its part (188(2), s. 1(1)); a further ``(3)``,
        ``(a)`` and ``(ii)`` are points."""
        self.i += 1
        part: str | None = None
        if self.num():
            n = self.number()
            part = n if self.article is not None and self.part is None else None
        elif self.word(_is_letter):
            self.i += 1
        else:
            raise _NotUnderstood
        if not self.sign(")"):
            raise _NotUnderstood
        self.i += 1
        if part:
            self.set_part(part)

    def points(self) -> None:
        """The values after a point marker, read and ignored: 3, «а», а), 1-1), а, б и в, седьмой."""
        while self.word(POINT_WORDS.__contains__) and self.sign(".", ahead=1):  # п.п. «а»
            self.i += 2
        values = 0
        while self.i < len(self.toks) and not self.starts_code_name():
            if self.num():
                self.number()
            elif self.word(lambda w: (_is_letter(w) and not self.is_marker()) or w in ORDINALS):
                self.i += 1
            elif values and (self.sign(",-.") or self.word(SKIPPED_WORDS.__contains__)):
                self.i += 1
                continue
            else:
                break
            values += 1
            self.point_close()
        if not values:
            raise _NotUnderstood

    def is_marker(self) -> bool:
        """The word here is a marker followed by its number (ч. 2), not a point's letter («ч»)."""
        after = 2 if self.sign(".", ahead=1) else 1
        return self.toks[self.i].text in MARKER_WORDS and (self.num(ahead=after) or self.word(
            ORDINALS.__contains__, ahead=after))

    def point_close(self) -> bool:
        """``)`` or ``°`` after a point's value, and the marker that may follow it: taken."""
        if self.sign(")°"):
            self.i += 1
            self.marker_after(POINT_STEMS)
            return True
        return False

    # -- numbers

    def number(self) -> str:
        """A number with its suffixes, joined by ``-``: 190-1, 190.1 → 190-1, 624 bis, 624-bis and
        624bis → 624-bis, 416-bis.1 → 416-bis-1. Leading zeros dropped; 0 is not understood."""
        t = self.take()
        if t.kind != "num" or not t.text.strip("0"):
            raise _NotUnderstood
        pieces = [t.text.lstrip("0")]
        while True:
            glued_sign = self.sign("-.", glued=True)
            if glued_sign and self.num(ahead=1, glued=True):
                self.i += 1
                pieces.append(self.take().text.lstrip("0") or "0")
            elif glued_sign and self.word(LATIN_ORDINALS.__contains__, ahead=1, glued=True):
                self.i += 1
                pieces.append(self.take().text)
            elif self.word(LATIN_ORDINALS.__contains__):
                pieces.append(self.take().text)
            else:
                return "-".join(pieces)

    def set_article(self, n: str) -> None:
        if self.article is not None:
            raise _NotUnderstood  # two articles: two offences
        self.article = n

    def set_part(self, n: str) -> None:
        if self.part is not None:
            raise _NotUnderstood  # two parts: two offences
        self.part = n

    # -- the code's own name

    def code_name(self) -> bool:
        """A run of one code name and its qualifiers (ҚР ҚК-нің, УК РК, Уголовного кодекса
        Республики Казахстан, du Code pénal): taken, and the state a qualifier names kept."""
        j, names, states = self.i, 0, set()
        while True:
            k = j
            while k < len(self.toks) and self.toks[k].text in _BETWEEN_NAMES:
                k += 1
            if (hit := self.longest(CODE_NAMES, k)) is not None:
                names += 1
            elif (hit := self.longest(QUALIFIERS, k)) is not None:
                states.add(QUALIFIERS[hit[1]])
            else:
                break
            j = hit[0]
        if not names:
            return False
        if names > 1 or len(states) > 1 or self.code_named:
            raise _NotUnderstood
        self.code_named, self.code_of, self.i = True, next(iter(states), None), j
        return True

    def starts_code_name(self) -> bool:
        return self.longest(CODE_NAMES, self.i) is not None

    def longest(self, names: Iterable[tuple[str, ...]], j: int) -> tuple[int, tuple[str, ...]] | None:
        """The longest of ``names`` that starts at token ``j``: where it ends, and which it is."""
        hits = [(end, name) for name in names if (end := self.match(name, j)) is not None]
        return max(hits, key=lambda hit: hit[0], default=None)

    def match(self, name: tuple[str, ...], j: int) -> int | None:
        for pattern in name:
            while j < len(self.toks) and self.toks[j].text == ".":
                j += 1
            if j >= len(self.toks) or self.toks[j].kind != "word":
                return None
            word, stem = self.toks[j].text, pattern.rstrip("*+")
            if pattern.endswith("*"):
                ok = word.startswith(stem)
            elif pattern.endswith("+"):
                ok = word == stem or (word.startswith(stem) and word[len(stem):] in TURKIC_ENDINGS)
                if word == stem and j + 2 < len(self.toks) and self.toks[j + 1].text == "-" \
                        and self.toks[j + 2].text in TURKIC_ENDINGS:
                    j += 2  # ҚК-нің
            else:
                ok = word == pattern
            if not ok:
                return None
            j += 1
        return j


def _is_letter(word: str) -> bool:
    """A point's letter: one letter of any script, or a small Roman numeral."""
    return len(word) == 1 or word in ROMAN
