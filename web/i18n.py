"""The web application's languages: English (the language of the source) and Russian.

Translations are Babel catalogs, ``web/locale/<lang>/LC_MESSAGES/messages.po``, compiled in memory
when the app starts (no binary files in the repository). Update them with
``pybabel extract -F web/babel.cfg -k _ -k N_ -k gettext -k ngettext:1,2 --no-location
-o web/locale/messages.pot web`` and
``pybabel update -i web/locale/messages.pot -d web/locale``. The language of a request is the one
chosen with the switch (kept in the session), else the best of ``Accept-Language``, else English.
Codes (stages, actions, grounds, conditions) are shown with their translated label and the code
itself, for cross-checking with the other state."""

from __future__ import annotations

import io
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = {"en": "English", "ru": "Русский"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).parent / "locale"


@lru_cache(maxsize=None)
def translations(lang: str) -> NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == DEFAULT or not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def negotiate(accept_language: str) -> str:
    """The best of ``LANGUAGES`` for an ``Accept-Language`` header."""
    wanted = []
    for part in accept_language.split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        if tag:
            wanted.append((weight, tag.replace("-", "_")))
    preferred = [tag for _, tag in sorted(wanted, key=lambda w: -w[0])]
    try:
        return str(Locale.negotiate(preferred, list(LANGUAGES), sep="_") or DEFAULT)
    except (UnknownLocaleError, ValueError):
        return DEFAULT


class Language:
    """What a template needs of the request's language."""

    def __init__(self, code: str) -> None:
        self.code = code if code in LANGUAGES else DEFAULT
        self._t = translations(self.code)

    def gettext(self, message: str, **values: object) -> str:
        text = self._t.gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        return self._t.ngettext(singular, plural, n) % {"num": n, **values}

    def day(self, value: date | datetime | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, datetime):
            return format_datetime(value, format="medium", locale=self.code)
        return format_date(value, format="medium", locale=self.code)
