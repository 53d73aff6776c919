"""Letters to the sentenced person (ETS 112 Art. 4(5); API.md, "Notices to the sentenced person"):
when eligibility is decided, when each state decides, when the handover is arranged and when the
case closes, the person is told in writing, in his language (``ru``, the default, or ``en``), what
was decided, on which grounds and what happens next. The prison service hands the letter over.

Two pure steps and a thin activity:

- ``compose_letter(occasion, facts, language, issued_on)`` → ``Letter``: the letter's words, in
  sections (``Letter.text`` is the whole letter as plain text). Every word comes from
  ``activities.letter_wording`` (one module per language): the legal labels of the codes are the
  web application's, each ground is explained in plain words with its code in brackets so that
  the two states and the person's lawyer can cross-check it against the case.
- ``render_pdf(letter)`` → the PDF bytes: A4, a header naming the issuing system and the central
  authority of the state where the person is held, the date and the case reference, and a footer
  saying the prison service hands it to the person, with "page N of M". The same letter gives the
  same bytes: the PDF's creation date is the letter's date, never the clock, and reportlab's
  invariant mode fixes the file identifier (a digest of the title), so writing a notice again on a
  retry gives an identical document.
- ``Letters.write_person_notice``: the activity: writes the letter (``person_notice``, from
  ``PersonNoticeInput`` to ``PersonNotice``: the bytes, their size and SHA-256), stores it in the
  case file's document store and returns only the document's record.

Libraries. The PDF is made with **reportlab** (BSD; ReportLab Inc., maintained since 2000): its
platypus lays the letter out (paragraphs, bulleted items, page breaks, a header and footer on every
page, "page N of M" by holding the pages back until the last: ``_NumberedCanvas``), and TrueType
fonts are embedded as subsets, each with a ToUnicode map, so the text can be searched and
extracted. It replaced fpdf2 (LGPL-3.0), which spent 70–90 ms of CPU on every letter — parsing
both font files again for each document (~12 ms; fpdf2 subsets the parsed fontTools font in place
when it writes the document, so one parsed font cannot serve a second document), breaking lines by
summing character widths in Python (~45 ms) and subsetting with fontTools (~30 ms) — when a
transferred case writes five letters and these were most of the worker's CPU per case (issue 14).
reportlab takes some 13 ms a letter (pure Python too: its optional C accelerator ``rl_accel`` is
not installed): it parses each font once per process (``_fonts``), keeps each document's subset
apart and writes only the glyphs the letter uses (``asciiReadable=False``; by default it would add
all of ASCII). Keeping fpdf2 with the fonts parsed once would have saved only the ~12 ms.
reportlab's font object holds the subset of each document being written and is not to serve two
documents at the same time, so a process renders one letter at a time (``_RENDERING``). Its output
also depends on its settings (``RL_*`` environment variables, a ``reportlab_settings`` module,
``~/.reportlab_settings``) and, in invariant mode, on ``SOURCE_DATE_EPOCH`` (which then enters the
file identifier): the workers of one deployment must agree on these, as they do when none is set.
The font is **PT Sans** (ParaType, SIL Open Font License 1.1), from the
PyPI package **fontpkg-pt-sans** (the Google Fonts files, unmodified; the package and its locator
``fontpkg`` are MIT; fontpkg is young, and only its ``fontpkg.path`` look-up is used): PT Sans was drawn for the Russian public-type project to
cover Latin and the Cyrillic of the languages of Russia and its neighbours, Kazakh and Uzbek
Cyrillic letters included, and its wheel installs regular and bold static TrueType files on a
machine that has only Python — no Debian font package is needed (nor found on a fresh machine).
Weighed and left: DejaVu Sans ships inside matplotlib, which would bring numpy and a plotting
library for one font; reportlab's bundled Vera fonts have no Cyrillic; Noto Sans on PyPI
(fontpkg-noto-sans) is a variable font only, with no static bold to register (fpdf2 took some 20
seconds per weight to instance it with fontTools); the one-font packages of 2018–2019 (``font-roboto``) are
no longer released.

PT Sans lacks one letter a name may hold: the Uzbek Latin ʻ (U+02BB, in Oʻ and Gʻ), which is drawn
as its usual stand-in ‘ (U+2018). Any other character the font lacks (a name written in Chinese
characters, say) would be drawn as empty boxes, so rendering refuses such a letter
(``UnrenderableLetter``) rather than hand the person a letter without his name.

Personal data: the letter holds the person's name; it is never logged, and neither the PDF's
metadata nor the error messages carry it.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import io
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from functools import cache, partial
from pathlib import Path
from typing import Annotated, Literal
from xml.sax.saxutils import escape

import fontpkg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from reportlab.lib.colors import Color
from reportlab.lib.enums import TA_CENTER, TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import BaseDocTemplate, CondPageBreak, Flowable, Frame, KeepTogether, PageTemplate, Paragraph
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.letter_wording import WORDINGS, StateName, Wording, lower_first
from domain.eligibility import GROUND_OF
from domain.reference import reference
from domain.documents import DocumentRecord
from domain.transfer import (Condition, ConditionOutcome, Enforcement, Handover,
                             RecordedDecision, Term, TransferView)
from stores.documents import DocumentExists, Documents

Language = Literal["ru", "en"]
LANGUAGES: tuple[str, ...] = ("ru", "en")
DEFAULT_LANGUAGE: Language = "ru"
FONT_FAMILY = "PT Sans"  # the fontpkg family
# its weights by their PostScript names: reportlab's names for them, and the PDF's BaseFont (``AAAAAA+PTSans-Bold``)
FONTS = {400: "PTSans-Regular", 700: "PTSans-Bold"}
# characters PT Sans lacks, drawn as the look-alike it has
LOOKALIKES = str.maketrans({"\u02bb": "\u2018"})  # Uzbek Latin oʻ, gʻ: modifier letter turned comma
DOCUMENT_TYPE = "person_notice"  # API.md, the case file
CONTENT_TYPE = "application/pdf"

# --- what the letter is about -----------------------------------------------------------------


class _Occasion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EligibilityDecided(_Occasion):
    """The conditions were checked (or, after a legal review, judged): the outcome of each is in
    the facts' ``eligibility``."""

    kind: Literal["eligibility_decided"] = "eligibility_decided"


def without_note(decision: RecordedDecision) -> RecordedDecision:
    """A decision as a letter states it: a state's note (up to 10,000 characters of its reasoning,
    for the other state) is not the person's letter and is not carried to it."""
    return decision.model_copy(update={"note": ""}) if decision.note else decision


class DecisionRecorded(_Occasion):
    """A state decided: consent (with the administering state's enforcement) or refusal, with its
    grounds."""

    kind: Literal["decision_recorded"] = "decision_recorded"
    decision: Annotated[RecordedDecision, AfterValidator(without_note)]


class HandoverArranged(_Occasion):
    """Both states consented and the handover is arranged: where, and by which day."""

    kind: Literal["handover_arranged"] = "handover_arranged"
    handover: Handover


class CaseClosed(_Occasion):
    """The case reached a terminal stage (its ``outcome``), with the grounds it closed on."""

    kind: Literal["case_closed"] = "case_closed"
    outcome: Literal["transferred", "refused", "withdrawn", "expired"]
    grounds: list[str] = []


Occasion = Annotated[EligibilityDecided | DecisionRecorded | HandoverArranged | CaseClosed,
                     Field(discriminator="kind")]
OCCASIONS: tuple[str, ...] = ("eligibility_decided", "decision_recorded", "handover_arranged", "case_closed")


class CheckedCondition(BaseModel):
    """An eligibility condition as a letter states it: which, and its outcome. Its detail and basis
    (the case view's) are not carried to the letter, which explains each condition in its own words."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    condition: Condition
    outcome: ConditionOutcome


class LetterFacts(BaseModel):
    """What a letter says of the case, from the transfer view (``LetterFacts.of``) and the
    person's name, which the view does not show (it lives in the request). Only what a letter
    says travels to the activity (and into the case's history): five letters a case carried the
    conditions' details and bases and the states' notes five times."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    full_name: str
    sentencing_state: str
    administering_state: str
    eligibility: list[CheckedCondition] = []
    decisions: list[Annotated[RecordedDecision, AfterValidator(without_note)]] = []
    handover: Handover | None = None
    release_date: date | None = None
    enforcement: Enforcement | None = None

    @classmethod
    def of(cls, view: TransferView, full_name: str) -> LetterFacts:
        return cls(reference=view.reference, full_name=full_name, sentencing_state=view.sentencing_state,
                   administering_state=view.administering_state, eligibility=view.eligibility,
                   decisions=view.decisions, handover=view.handover, release_date=view.release_date,
                   enforcement=view.enforcement)


# --- the letter's words -----------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: Literal["paragraph", "item"]  # an item is a bulleted line
    text: str


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Letter:
    language: str
    issued_on: date
    reference: str
    issuer: str  # "treatyflow — <the central authority>": the PDF's header
    authority: str  # the central authority, who signs
    title: str
    date_line: str
    reference_line: str
    addressee: str
    salutation: str
    intro: str
    sections: tuple[Section, ...]
    help: str
    regards: str
    footer: str
    page: str  # "Page {page} of {pages}"

    @property
    def text(self) -> str:
        """The whole letter as plain text, header and footer included."""
        lines = [self.issuer, self.date_line, self.reference_line, self.addressee, "", self.title, "",
                 self.salutation, "", self.intro]
        for section in self.sections:
            lines += ["", section.heading]
            lines += [("• " if b.kind == "item" else "") + b.text for b in section.blocks]
        lines += ["", self.help, "", self.regards, self.authority, "", self.footer]
        return "\n".join(lines) + "\n"


def state_name(wording: Wording, code: str) -> StateName:
    return wording.states.get(code) or wording.unknown_state(code)


def authority_name(wording: Wording, state: str, role: str) -> str | None:
    """The full name of ``state``'s authority of ``role`` in the directory; ``None`` when the
    directory has none (a state without a prison service of its own, say)."""
    found = next((a for a in reference().authorities_of(state) if a.role == role), None)
    if found is None:
        return None
    return wording.authorities.get(found.id) or f"{found.name} ({state_name(wording, state).name})"


def holding_state(occasion: Occasion, facts: LetterFacts) -> str:
    """Where the person is held when the letter is handed over: the sentencing state until the
    transfer took place, then the administering state."""
    if isinstance(occasion, CaseClosed) and occasion.outcome == "transferred":
        return facts.administering_state
    return facts.sentencing_state


def compose_letter(occasion: Occasion, facts: LetterFacts, language: Language = DEFAULT_LANGUAGE, *,
                   issued_on: date) -> Letter:
    """The letter to the person for ``occasion``, in ``language``, dated ``issued_on``. Pure: the
    same arguments give the same letter."""
    if language not in WORDINGS:
        raise ValueError(f"no letters in {language!r}: one of {', '.join(LANGUAGES)}")
    w = WORDINGS[language]
    words = _Words(w, facts)
    holding = holding_state(occasion, facts)
    central = (authority_name(w, holding, "central_authority")
               or state_name(w, holding).name)
    prison = authority_name(w, holding, "prison_service")
    sections = {
        "eligibility_decided": words.eligibility_decided,
        "decision_recorded": words.decision_recorded,
        "handover_arranged": words.handover_arranged,
        "case_closed": words.case_closed,
    }[occasion.kind](occasion)
    t = w.text
    return Letter(
        language=language, issued_on=issued_on, reference=facts.reference,
        issuer=t["issuer"].format(authority=central), authority=central,
        title=t[f"title.{occasion.kind}"],
        date_line=t["date_line"].format(date=w.write_date(issued_on)),
        reference_line=t["reference_line"].format(reference=facts.reference),
        addressee=t["addressee"].format(name=facts.full_name),
        salutation=t["salutation"].format(name=facts.full_name),
        intro=t["intro"].format(sentencing_from=words.sentencing.from_, administering_to=words.administering.to,
                                reference=facts.reference),
        sections=tuple(s for s in sections if s.blocks),
        help=t["help"], regards=t["regards"],
        footer=t["footer"].format(prison_service=t["footer.prison_service"].format(name=prison) if prison else ""),
        page=t["page"],
    )


def letter_text(occasion: Occasion, facts: LetterFacts, language: Language = DEFAULT_LANGUAGE, *,
                issued_on: date) -> str:
    """The letter as plain text (``compose_letter(...).text``)."""
    return compose_letter(occasion, facts, language, issued_on=issued_on).text


def _paragraphs(*texts: str) -> tuple[Block, ...]:
    return tuple(Block("paragraph", t) for t in texts if t)


def _items(*texts: str) -> tuple[Block, ...]:
    return tuple(Block("item", t) for t in texts if t)


class _Words:
    """The sections of each kind of letter, in one language, for one case."""

    def __init__(self, wording: Wording, facts: LetterFacts) -> None:
        self.w, self.t, self.facts = wording, wording.text, facts
        self.sentencing = state_name(wording, facts.sentencing_state)
        self.administering = state_name(wording, facts.administering_state)

    def section(self, heading: str, *blocks: Block) -> Section:
        return Section(self.t[f"heading.{heading}"], tuple(blocks))

    # each ground, condition and enforcement in words

    def ground(self, code: str) -> str:
        if code not in self.w.grounds:
            return self.t["ground.unknown"].format(code=code)
        return self.t["ground"].format(label=self.w.labels[code], code=code, explanation=self.w.grounds[code])

    def grounds(self, codes: list[str]) -> Section:
        return self.section("grounds", *_items(*(self.ground(c) for c in codes)))

    def condition(self, c: CheckedCondition) -> str:
        key = "condition.not_applicable" if c.outcome == "not_applicable" else "condition"
        return self.t[key].format(label=self.w.labels[c.condition], code=c.condition,
                                  outcome=lower_first(self.w.labels[c.outcome]),
                                  question=self.w.conditions[c.condition])

    def enforcement(self, enforcement: Enforcement | None, converted: Term | None) -> str:
        if enforcement is None:
            return ""
        term = self.w.write_term(converted.years, converted.months, converted.days) if converted else ""
        return self.t[f"enforcement.{enforcement}"].format(
            label=self.w.labels[enforcement], code=enforcement, administering=self.administering.of,
            administering_in=self.administering.in_, term=term)

    def case_enforcement(self) -> str:
        """The administering state's enforcement, as its consent stated it."""
        consent = self.decision_of(self.facts.administering_state)
        if consent is None or consent.decision != "consent":
            return self.enforcement(self.facts.enforcement, None)
        return self.enforcement(consent.enforcement or self.facts.enforcement, consent.converted_sentence)

    def release_date(self) -> str:
        day = self.facts.release_date
        return self.t["release_date"].format(date=self.w.write_date(day)) if day else ""

    def decision_of(self, state: str) -> RecordedDecision | None:
        return next((d for d in self.facts.decisions if d.state == state), None)

    def place(self, place: str) -> str:
        return self.w.places.get(place, place)

    def case_ends(self, outcome: str = "refused") -> Section:
        """The case is over and the person stays where he is. A letter that closed the case
        because of a withdrawal or an expiry has said already that it is over."""
        return self.section("next", *_paragraphs(
            self.t["next.closed"] if outcome == "refused" else "",
            self.t["next.stay"].format(sentencing_in=self.sentencing.in_),
            self.t["next.ask_again_withdrawn" if outcome == "withdrawn" else "next.ask_again"]))

    # the letters

    def eligibility_decided(self, occasion: EligibilityDecided) -> list[Section]:
        conditions = self.facts.eligibility
        failed = [GROUND_OF[c.condition] for c in conditions if c.outcome == "failed"]
        checked = self.section("checked", *(_items(*(self.condition(c) for c in conditions)) if conditions
                                            else _paragraphs(self.t["eligibility.none"])))
        if failed:
            return [checked, self.section("decided", *_paragraphs(self.t["eligibility.failed"])),
                    self.grounds(failed), self.case_ends()]
        if any(c.outcome == "needs_review" for c in conditions):
            reviewer = (authority_name(self.w, self.facts.administering_state, "central_authority")
                        or self.administering.name)
            return [checked,
                    self.section("decided", *_paragraphs(self.t["eligibility.review"].format(authority=reviewer))),
                    self.section("next", *_paragraphs(self.t["next.after_review"]))]
        if not conditions:
            return [checked]
        return [checked, self.section("decided", *_paragraphs(self.t["eligibility.met"])),
                self.section("next", *_paragraphs(self.t["next.both_decide"].format(
                    first=self.sentencing.name, second=self.administering.name)))]

    def decision_recorded(self, occasion: DecisionRecorded) -> list[Section]:
        d = occasion.decision
        states = (self.facts.sentencing_state, self.facts.administering_state)
        if d.state not in states:
            raise ValueError(f"decision_recorded: {d.state} is not a state of case {self.facts.reference}")
        state = state_name(self.w, d.state)
        if d.decision == "refuse":
            return [self.section("decided", *_paragraphs(self.t["decision.refuse"].format(state=state.of,
                                                                                         code=d.decision))),
                    self.grounds(d.grounds), self.case_ends()]
        decided = self.section("decided", *_paragraphs(
            self.t["decision.consent"].format(state=state.of, code=d.decision),
            self.enforcement(d.enforcement, d.converted_sentence),
            self.release_date() if d.enforcement else ""))
        other_state = states[1] if d.state == states[0] else states[0]
        other = self.decision_of(other_state)
        if other is None:
            next_ = self.section("next", *_paragraphs(self.t["next.awaiting_other"].format(
                state=state_name(self.w, other_state).of)))
        elif other.decision == "consent":
            next_ = self.section("next", *_paragraphs(self.t["next.both_consented"]))
        else:  # the other state refused first: the case ends on that refusal
            next_ = self.case_ends()
        return [decided, next_]

    def handover_arranged(self, occasion: HandoverArranged) -> list[Section]:
        h = occasion.handover
        return [
            self.section("decided", *_paragraphs(self.t["handover.arranged"]),
                         *_items(self.t["handover.place"].format(place=self.place(h.place)),
                                 self.t["handover.due"].format(date=self.w.write_date(h.due_on))),
                         *_paragraphs(self.case_enforcement(), self.release_date())),
            self.section("next", *_paragraphs(
                self.t["next.handover"].format(administering=self.administering.of,
                                               administering_in=self.administering.in_),
                self.t["next.prepare"])),
        ]

    def case_closed(self, occasion: CaseClosed) -> list[Section]:
        outcome = occasion.outcome
        decided = [self.t[f"closed.{outcome}"].format(code=outcome)]
        if outcome == "transferred":
            h = self.facts.handover
            if h is not None and h.completed_on is not None:
                decided.append(self.t["closed.handed_over"].format(date=self.w.write_date(h.completed_on),
                                                                   place=self.place(h.place)))
            decided.append(self.case_enforcement())
            return [self.section("decided", *_paragraphs(*decided)),
                    self.section("next", *_paragraphs(
                        self.t["next.transferred"].format(administering=self.administering.of,
                                                          administering_in=self.administering.in_),
                        self.release_date()))]
        sections = [self.section("decided", *_paragraphs(*decided))]
        if occasion.grounds:
            sections.append(self.grounds(occasion.grounds))
        return [*sections, self.case_ends(outcome)]


# --- the PDF ---------------------------------------------------------------------------------


class UnrenderableLetter(ValueError):
    """The letter has characters the font does not cover: they would not show in the PDF. The
    message counts them and never shows them (they are likely the person's name)."""


@cache
def font_path(weight: int = 400) -> Path:
    """PT Sans at ``weight`` (400 or 700), as the installed fontpkg-pt-sans package ships it."""
    return fontpkg.path(FONT_FAMILY, weight=weight)


PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 20 * mm  # left and right
TOP = 30 * mm  # the body's top, from the top edge: below the header
BOTTOM = 28 * mm  # the body's bottom, from the bottom edge: above the footer
WIDTH = PAGE_WIDTH - 2 * MARGIN
HEADER_AT = 12 * mm  # the header's top, from the top edge
FOOTER_RULE_AT = 22 * mm  # the footer's rule, from the bottom edge
RULE = (Color(110 / 255, 110 / 255, 110 / 255), 0.3 * mm)  # the rules under the header and over the footer
SIZE = 11  # pt, body text
LINE = 5.3 * mm  # body text's leading


def _style(name: str, size: float = SIZE, leading: float = LINE, *, bold: bool = False, align: int = TA_LEFT,
           before: float = 0, after: float = 0, **more) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=FONTS[700 if bold else 400], fontSize=size, leading=leading,
                          alignment=align, spaceBefore=before, spaceAfter=after, **more)


STYLES = {
    "header": _style("header", 9, 4.5 * mm, bold=True),
    "footer": _style("footer", 8, 4 * mm),
    "page": _style("page", 8, 4 * mm, align=TA_RIGHT),
    "date": _style("date", 10, 5 * mm, align=TA_RIGHT),
    "addressee": _style("addressee", 10, 5 * mm, before=3 * mm),
    "title": _style("title", 12.5, 6 * mm, bold=True, align=TA_CENTER, before=5 * mm, after=4 * mm),
    "salutation": _style("salutation", after=2 * mm),
    "body": _style("body"),
    "heading": _style("heading", bold=True, before=2.5 * mm, after=1 * mm),
    "paragraph": _style("paragraph", after=0.8 * mm),
    "item": _style("item", after=0.8 * mm, leftIndent=7 * mm, bulletIndent=2 * mm, bulletFontName=FONTS[400],
                   bulletFontSize=SIZE),
    "help": _style("help", before=3 * mm),
    "regards": _style("regards", before=5 * mm),
}

# reportlab's TTFont keeps the subset of each document being written in the shared font object and
# is not to serve two documents at the same time (letters rendered in parallel threads without this
# lock failed with a KeyError or came out different): one letter is rendered at a time in a process
_RENDERING = threading.Lock()


@cache
def _fonts() -> dict[int, TTFont]:
    """PT Sans regular and bold, parsed and registered with reportlab once per process (call
    under ``_RENDERING``). Each document gets its own subset of them when it is written."""
    fonts = {weight: TTFont(name, str(font_path(weight)), asciiReadable=False) for weight, name in FONTS.items()}
    for font in fonts.values():
        pdfmetrics.registerFont(font)
    return fonts


def _uncovered(text: str) -> set[str]:
    """The characters of ``text`` (other than line breaks) that a weight of the font lacks: its
    character map (``cmap``) has no glyph for them."""
    return {ch for font in _fonts().values() for ch in set(text) - set("\n\r\t")
            if ord(ch) not in font.face.charToGlyph}


def _paragraph(text: str, style: str) -> Paragraph:
    return Paragraph(escape(text), STYLES[style])  # the text is words, never markup


class _Pages:
    """What every page of one letter carries: the header (the issuer and a rule), the footer (a
    rule and who hands the letter over) and "page N of M"."""

    def __init__(self, letter: Letter) -> None:
        self.page = letter.page
        self.header, self.footer = _paragraph(letter.issuer, "header"), _paragraph(letter.footer, "footer")
        self.header_height = self.header.wrap(WIDTH, PAGE_HEIGHT)[1]
        self.footer_height = self.footer.wrap(WIDTH, PAGE_HEIGHT)[1]

    @staticmethod
    def rule(canvas: Canvas, y: float) -> None:
        canvas.saveState()
        canvas.setStrokeColor(RULE[0])
        canvas.setLineWidth(RULE[1])
        canvas.line(MARGIN, y, PAGE_WIDTH - MARGIN, y)
        canvas.restoreState()

    def begin(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        top = PAGE_HEIGHT - HEADER_AT - self.header_height
        self.header.drawOn(canvas, MARGIN, top)
        self.rule(canvas, top - 1.5 * mm)

    def end(self, canvas: Canvas, doc: BaseDocTemplate) -> None:
        self.rule(canvas, FOOTER_RULE_AT)
        self.footer.drawOn(canvas, MARGIN, FOOTER_RULE_AT - 1.5 * mm - self.footer_height)

    def number(self, canvas: Canvas, pages: int) -> None:
        numbering = _paragraph(self.page.format(page=canvas.getPageNumber(), pages=pages), "page")
        height = numbering.wrap(WIDTH, PAGE_HEIGHT)[1]
        numbering.drawOn(canvas, MARGIN, FOOTER_RULE_AT - 1.5 * mm - self.footer_height - height)


class _NumberedCanvas(Canvas):
    """A canvas that holds its pages back until the last one, so that each can say "page N of M"
    (reportlab's two-pass recipe), and dates the document ``created`` (a PDF date string)."""

    def __init__(self, *args, pages: _Pages, created: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setDateFormatter(lambda *_: created)
        self._furniture, self._held = pages, []

    def showPage(self) -> None:
        self._held.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        for state in self._held:
            self.__dict__.update(state)
            self._furniture.number(self, len(self._held))
            super().showPage()
        super().save()


def drawable(letter: Letter) -> Letter:
    """The letter with each character the font lacks replaced by its look-alike (``LOOKALIKES``)."""
    def draw(text: str) -> str:
        return text.translate(LOOKALIKES)

    return replace(letter, **{f.name: draw(getattr(letter, f.name)) for f in fields(letter)
                              if isinstance(getattr(letter, f.name), str)},
                   sections=tuple(Section(draw(s.heading), tuple(Block(b.kind, draw(b.text)) for b in s.blocks))
                                  for s in letter.sections))


def _story(letter: Letter) -> list[Flowable]:
    """The body of the letter as reportlab's flowables, top to bottom."""
    story: list[Flowable] = [
        _paragraph(letter.date_line, "date"), _paragraph(letter.reference_line, "date"),
        _paragraph(letter.addressee, "addressee"), _paragraph(letter.title, "title"),
        _paragraph(letter.salutation, "salutation"), _paragraph(letter.intro, "body"),
    ]
    for section in letter.sections:
        # no heading alone at the foot of a page: it starts a new page unless three lines fit under it
        story += [CondPageBreak(STYLES["heading"].spaceBefore + 4 * LINE), _paragraph(section.heading, "heading")]
        story += [Paragraph(escape(b.text), STYLES["item"], bulletText="•") if b.kind == "item"
                  else _paragraph(b.text, "paragraph") for b in section.blocks]
    story += [_paragraph(letter.help, "help"),
              KeepTogether([_paragraph(letter.regards, "regards"), _paragraph(letter.authority, "body")])]
    return story


def render_pdf(letter: Letter) -> bytes:
    """The letter as a PDF document: A4, PT Sans embedded. Deterministic: the same letter gives
    the same bytes (the creation date is the letter's date)."""
    letter = drawable(letter)
    with _RENDERING:
        missing = _uncovered(letter.text + letter.page)
        if missing:
            raise UnrenderableLetter(f"the letter for {letter.reference} has {len(missing)} distinct character(s) "
                                     f"that the font {FONT_FAMILY} does not cover: they would not show in the PDF")
        pages = _Pages(letter)
        out = io.BytesIO()
        doc = BaseDocTemplate(
            out, pagesize=A4, invariant=1, pageCompression=1, lang=letter.language, initialFontName=FONTS[400],
            title=f"{letter.title} — {letter.reference}", author="treatyflow", creator="treatyflow", subject="",
            pageTemplates=[PageTemplate("letter", frames=[Frame(
                MARGIN, BOTTOM, WIDTH, PAGE_HEIGHT - TOP - BOTTOM, leftPadding=0, rightPadding=0, topPadding=0,
                bottomPadding=0, id="body")], onPage=pages.begin, onPageEnd=pages.end)])
        doc.build(_story(letter), canvasmaker=partial(_NumberedCanvas, pages=pages,
                                                      created=f"D:{letter.issued_on:%Y%m%d}000000Z"))
    return out.getvalue()


def write_letter(occasion: Occasion, facts: LetterFacts, language: Language = DEFAULT_LANGUAGE, *,
                 issued_on: date) -> bytes:
    """The PDF of the letter for ``occasion``: ``render_pdf(compose_letter(...))``."""
    return render_pdf(compose_letter(occasion, facts, language, issued_on=issued_on))


# --- the activity ----------------------------------------------------------------------------


class PersonNoticeInput(BaseModel):
    """What the workflow gives the activity: the occasion, the case's facts (``LetterFacts.of``
    the view and the request's ``person.full_name``), the person's language and the letter's date
    (the workflow's date, ``workflow.now().date()``, so that a retry writes the same bytes)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    occasion: Occasion
    facts: LetterFacts
    language: Language = DEFAULT_LANGUAGE
    issued_on: date


class PersonNotice(BaseModel):
    """The written notice: a ``person_notice`` document's metadata and its bytes, which the activity
    stores in the case file; only the metadata goes back to the workflow (``Letters``)."""

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    type: Literal["person_notice"] = DOCUMENT_TYPE
    title: str
    filename: str
    language: Language
    content_type: Literal["application/pdf"] = CONTENT_TYPE
    size: int
    sha256: str
    content: bytes


def notice_filename(occasion: Occasion, facts: LetterFacts, language: str) -> str:
    """``<reference>-<occasion>[-<state>|-<outcome>]-<language>.pdf``: one per occasion and case."""
    detail = {"decision_recorded": lambda o: o.decision.state.lower(), "case_closed": lambda o: o.outcome}
    parts = [facts.reference, occasion.kind.replace("_", "-")]
    if occasion.kind in detail:
        parts.append(detail[occasion.kind](occasion))
    return "-".join([*parts, language]) + ".pdf"


def person_notice(notice: PersonNoticeInput) -> PersonNotice:
    letter = compose_letter(notice.occasion, notice.facts, notice.language, issued_on=notice.issued_on)
    content = render_pdf(letter)
    return PersonNotice(title=letter.title, filename=notice_filename(notice.occasion, notice.facts, notice.language),
                        language=notice.language, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                        content=content)


class PersonNoticeOrder(BaseModel):
    """A letter to write and keep in the case file: under ``document_id``, chosen by the workflow
    (so that a retry writes the same document once), dated ``issued_at``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str
    document_id: str
    notice: PersonNoticeInput
    issued_at: datetime


PR_SET_PDEATHSIG = 1  # prctl(2)


def _press_started(worker: int) -> None:
    """The press's process, once started: it ends with the worker's process, however that ends
    (its pool's queues would keep it waiting for ever: the kernel is asked to send SIGTERM when the
    worker goes), and it parses the fonts before the first letter."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != worker:  # gone before the kernel was asked
        os._exit(0)
    with _RENDERING:
        _fonts()


class LetterPress:
    """Letters are rendered in a process of their own, one per worker process, started at the first
    letter (``spawn``: never a fork of a process running the SDK's threads). Rendering is pure-Python
    CPU (some 13 ms a letter, five letters a transferred case): in the worker's own process it held
    the interpreter lock that the worker's event loop needs for every case's workflow tasks, so
    under load letters and cases took turns on one core, and the activity slots filled with letters
    waiting their turn while openings waited for a slot (measured: openings through the API past
    its 10 s timeout at 32 cases at once). In a process of its own a letter takes the other core and
    the worker's loop is never held. Its process ends with the worker's (its pipe closes); if it
    dies, the next letter starts another and the failed one is retried."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> ProcessPoolExecutor:
        """Its process, started now if it is not running (it takes a second or two to start and
        load the fonts: the worker starts it with itself, so that no letter waits for that)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_press_started, initargs=(os.getpid(),))
            self._pool.submit(int)  # the pool starts its process at the first job
        return self._pool

    async def write(self, notice: PersonNoticeInput) -> PersonNotice:
        pool = self.start()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, person_notice, notice)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
            raise ApplicationError("the process that renders the letters ended; the letter is written again",
                                   type="LetterPressEnded") from None


PRESS = LetterPress()  # the worker process's


class Letters:
    """The letters to the sentenced person, written into the case file's document store: the
    activity returns only the document's record (metadata and digest), never its bytes, which
    hold the person's name and stay out of the history."""

    def __init__(self, documents: Documents | None, press: LetterPress = PRESS) -> None:
        self.documents = documents  # None: a worker without encryption keys, which keeps no documents
        self.press = press
        press.start()

    @activity.defn(name="write_person_notice")
    async def write_person_notice(self, order: PersonNoticeOrder) -> DocumentRecord:
        """Writes the letter (``LetterPress``) and stores it once: a retry after the store took it
        finds it there. A letter that cannot be written as asked (a character the font lacks, a
        decision of a third state) fails for good."""
        try:
            written = await self.press.write(order.notice)
        except ValueError as err:  # UnrenderableLetter among them; messages carry no personal data
            raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from None

        if self.documents is None:
            raise ApplicationError("this worker has no document store (no codec keys)", type="NoDocumentStore",
                                   non_retryable=True)

        async def content() -> AsyncIterator[bytes]:
            yield written.content
        try:
            stored = await self.documents.write(content(), kind="transfer", reference=order.reference,
                                                document_id=order.document_id)
        except DocumentExists:
            stored = await self.documents.info("transfer", order.reference, order.document_id)
            if stored is None:
                raise
        activity.logger.info("person notice written", extra={
            "reference": order.reference, "occasion": order.notice.occasion.kind, "language": order.notice.language,
            "document_id": order.document_id, "size": stored.size})
        return DocumentRecord(document_id=order.document_id, type=DOCUMENT_TYPE, title=written.title,
                              language=written.language, filename=written.filename, content_type=stored.content_type,
                              size=stored.size, sha256=stored.sha256, uploaded_by="system",
                              uploaded_at=order.issued_at)


write_person_notice = Letters.write_person_notice  # what the workflow names (the worker registers a bound one)
