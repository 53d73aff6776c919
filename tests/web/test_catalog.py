"""Every word the web application shows has its Russian: the messages in its code and templates,
extracted as `pybabel extract` extracts them, each translated in the Russian catalog with the same
placeholders. A new label without its translation fails here."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

WEB = Path(__file__).parents[2] / "web"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def test_every_message_of_the_web_application_is_translated_into_russian():
    catalog = read_po((WEB / "locale" / "ru" / "LC_MESSAGES" / "messages.po").open("rb"), locale="ru")
    extracted = {message for _, _, message, _, _ in extract_from_dir(str(WEB), METHODS, KEYWORDS)}
    assert len(extracted) > 200
    problems = []
    for message in extracted:
        entry = catalog.get(message)
        translations = entry.string if entry is not None and isinstance(entry.string, tuple) else \
            (entry.string,) if entry is not None else ()
        source = " ".join(message) if isinstance(message, tuple) else message
        if not translations or not all(translations):
            problems.append(f"untranslated: {source!r}")
        elif any(set(PLACEHOLDER.findall(t)) != set(PLACEHOLDER.findall(source)) for t in translations):
            problems.append(f"placeholders differ: {source!r}")
    assert problems == []
