"""The words of the letters to the sentenced person (``activities.letters``), one module per
language: ``en`` and ``ru``. Everything a letter says is in those two modules and nowhere else:
the legal labels of the codes (the same wording as ``web/labels.py`` and its Russian catalog, so
that a letter and the case page name a ground alike), a plain explanation of every ground and
condition, the names of the states and of their authorities, the handover points, the letter's
sentences (``str.format`` templates) and how dates and terms are written.

``tests/activities/test_letters.py`` fails when a code the domain knows has no wording in either
language, or when a legal label drifts from the web application's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class StateName:
    """A state's name in the forms a letter needs. Russian declines it, so each form is given
    whole; English uses the name alone (with its article) in every form but those with a
    preposition (``from_``, ``to``, ``in_``)."""

    name: str  # "Республика Казахстан" / "the Republic of Kazakhstan"
    of: str  # genitive: "Республики Казахстан" / "the Republic of Kazakhstan"
    from_: str  # "из Республики Казахстан" / "from the Republic of Kazakhstan"
    to: str  # "в Республику Казахстан" / "to the Republic of Kazakhstan"
    in_: str  # "в Республике Казахстан" / "in the Republic of Kazakhstan"


@dataclass(frozen=True)
class Wording:
    language: str
    labels: Mapping[str, str]  # code → its legal label (web/labels.py, web/locale/ru)
    grounds: Mapping[str, str]  # ground → what it means, plainly (a clause; the label precedes it)
    conditions: Mapping[str, str]  # eligibility condition → what was checked, plainly
    states: Mapping[str, StateName]
    authorities: Mapping[str, str]  # authority id (domain/data/authorities.json) → its full name
    places: Mapping[str, str]  # a handover point as the treaty registry records it → its words
    text: Mapping[str, str]  # the letter's sentences, with {placeholders}
    write_date: Callable[[date], str]  # "1 декабря 2026 года" / "1 December 2026"
    write_term: Callable[[int, int, int], str]  # years, months, days → "4 года 6 месяцев"
    unknown_state: Callable[[str], StateName]  # a state code without a name here


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


from activities.letter_wording import en, ru  # noqa: E402 - they build on the classes above

WORDINGS: dict[str, Wording] = {"en": en.WORDING, "ru": ru.WORDING}
