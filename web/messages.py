"""The API's messages in the user's language. The API speaks English (its clients and the other
state's systems read it); a person reads its refusals on a page, in the language of the page. Each
template below is an API message with its variable parts named; a message that matches one is
shown translated with its parts (codes, references, field paths) as they are, anything else as the
API said it. The templates are msgids of the catalogs, so `tests/web/test_catalog.py` holds each
to its translation."""

from __future__ import annotations

import re
from functools import lru_cache

from web.i18n import Language
from web.labels import N_

TEMPLATES = (
    # a field's problem (api.errors.problems_of: the field's path, then what is wrong with it)
    N_("%(field)s is required"),
    N_("%(field)s may not be empty"),
    N_("%(field)s must be a date in the form YYYY-MM-DD, such as 2026-03-01"),
    N_("%(field)s must be a whole number"),
    N_("%(field)s must be true or false"),
    N_("%(field)s may not be negative"),
    N_("%(field)s may not lie in the future"),
    N_("%(field)s must be one of %(values)s"),
    N_("%(field)s may have at most %(count)s characters"),
    N_("%(field)s must be a two-letter country code in capitals, such as UZ"),
    N_("%(field)s must be 3 to 64 letters, digits, dots, hyphens or underscores, such as KZ-2026-0001"),
    N_("%(field)s must be an ICCS code of 2, 4, 5 or 6 digits, such as 0501"),
    N_("%(field)s must be a SHA-256 digest: 64 hexadecimal digits"),
    N_("%(field)s is not in the expected form"),
    # the workflows' refusals (workflows/*.py validators, domain rules)
    N_("grounds are required to refuse: cite at least one"),
    N_("a decision for %(state)s is already recorded: each state decides once"),
    N_("the declaration is already recorded"),
    N_("the legal review is already recorded"),
    N_("the handover is already confirmed"),
    N_("the handover is still being arranged; try again shortly"),
    N_("the case is still being opened; try again shortly"),
    N_("the case is being withdrawn: no more acts are possible on it"),
    N_("the case is closed (%(stage)s): no more acts are possible on it"),
    N_("the case has closed: no more acts are possible on it"),
    N_("the request is closed (%(stage)s): no more acts are possible on it"),
    N_("a review of this request is already recorded"),
    N_("the information asked for is already answered"),
    N_("the result of measure %(measure)s is already reported"),
    N_("the authorisation of measure %(measure)s is already recorded"),
    N_("reference %(reference)s is already used by a different request: a new case needs a new reference, and an "
       "identical request answers the existing case"),
    N_("the case could not answer in time; try again"),
)
PART = re.compile(r"%\((\w+)\)s")


@lru_cache(maxsize=None)
def patterns() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in TEMPLATES:
        pieces = PART.split(template)  # text, name, text, name, ...
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(pieces))
        out.append((re.compile(f"^{regex}$", re.S), template))
    return out


def in_language(message: str, lang: Language) -> str:
    """``message`` of the API in ``lang`` when a template knows it; else as the API said it."""
    for regex, template in patterns():
        if match := regex.match(message):
            return lang.gettext(template, **match.groupdict())
    return message
