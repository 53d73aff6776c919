"""The letters to the sentenced person (activities/letters.py): every occasion in both languages,
rendered to PDF and read back with an independent extractor (pypdf); wording for every code the
domain knows, in both languages, and the same legal labels as the web application; the same input
gives the same bytes; the font is embedded; the activity's input and output travel through the
project's data converter."""

from __future__ import annotations

import hashlib
import inspect
import io
import multiprocessing
import os
import re
import signal
import string
import subprocess
import sys
import typing
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from pypdf import PdfReader
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import workflows.transfer
from activities.letter_wording import WORDINGS, en, ru
from activities.letters import (
    FONTS, LANGUAGES, OCCASIONS, CaseClosed, DecisionRecorded, EligibilityDecided, HandoverArranged,
    LetterPress, Letters, LetterFacts, PersonNotice, PersonNoticeInput, PersonNoticeOrder, UnrenderableLetter, compose_letter,
    letter_text, render_pdf, write_letter,
)
from stores.documents import open_documents
from tests.conftest import CODEC_KEYS
from domain.eligibility import GROUND_OF
from domain.reference import TRANSFER_GROUNDS, TREATY_TRANSFER_GROUNDS, reference
from domain.transfer import (
    TERMINAL_STAGES, TO_BE_AGREED, Condition, ConditionOutcome, EligibilityCondition, Enforcement, Handover,
    RecordedDecision, Term, TransferView,
)
from web.labels import LABELS as WEB_LABELS

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "KZ-UZ-2026-0001"
CYRILLIC = "Алиев Рустам Каримович"
LATIN = "Rustam Karimovich Aliev"
ISSUED_ON = date(2026, 12, 1)
AT = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
POINT = "Zhibek Zholy (KZ) – Gishtkuprik (UZ) border crossing"


# --- a KZ → UZ case at each occasion -----------------------------------------------------------


def conditions(**outcomes: str) -> list[EligibilityCondition]:
    return [EligibilityCondition(condition=c, outcome=outcomes.get(c, "satisfied"), detail="", basis="")
            for c in GROUND_OF]


def decision(state: str, decided: str = "consent", grounds: tuple[str, ...] = (), **enforcement) -> RecordedDecision:
    return RecordedDecision(state=state, decision=decided, grounds=list(grounds), note="", at=AT,
                            authority=f"{state.lower()}-gpo", **enforcement)


def facts(name: str = CYRILLIC, **changes) -> LetterFacts:
    fields = dict(reference=REFERENCE, full_name=name, sentencing_state="KZ", administering_state="UZ",
                  eligibility=conditions(), release_date=date(2028, 5, 1))
    return LetterFacts(**(fields | changes))


CONVERTED = dict(enforcement="converted", converted_sentence=Term(years=4, months=6))
UZ_CONSENT = decision("UZ", **CONVERTED)
KZ_CONSENT = decision("KZ")
ARRANGED = Handover(place=POINT, due_on=date(2027, 1, 15))
DONE = Handover(place=POINT, due_on=date(2027, 1, 15), completed_on=date(2027, 1, 10), arranged_place=POINT)

# name → (occasion, facts' changes, what each language must say besides the name, reference, header and footer)
SCENARIOS = {
    "eligibility_met": (EligibilityDecided(), {}, {
        "en": ["All the conditions for transfer that the treaty sets are met", "both states",
               "will decide on your transfer"],
        "ru": ["Все условия передачи, предусмотренные договором, соблюдены", "примут оба государства",
               "Республика Казахстан и Республика Узбекистан"]}),
    "eligibility_failed": (EligibilityDecided(), {"eligibility": conditions(
        financial_obligations="failed", pending_proceedings="failed")}, {
        "en": ["you cannot be transferred", "You will go on serving your sentence in the Republic of Kazakhstan"],
        "ru": ["передача невозможна", "Вы продолжите отбывать наказание в Республике Казахстан"]}),
    "eligibility_review": (EligibilityDecided(), {"eligibility": conditions(dual_criminality="needs_review")}, {
        "en": ["further legal assessment", "Prosecutor General's Office of the Republic of Uzbekistan"],
        "ru": ["дополнительной правовой оценки", "Генеральная прокуратура Республики Узбекистан"]}),
    "decision_consent_first": (DecisionRecorded(decision=UZ_CONSENT), {"decisions": [UZ_CONSENT]}, {
        "en": ["Decision of the Republic of Uzbekistan: consent to your transfer (consent)",
               "Sentence converted (converted)", "4 years and 6 months", "1 May 2028",
               "The decision of the Republic of Kazakhstan is still awaited"],
        "ru": ["Решение Республики Узбекистан: согласие на Вашу передачу (consent)",
               "Изменение приговора (converted)", "сроком 4 года 6 месяцев", "1 мая 2028 года",
               "Ожидается решение Республики Казахстан"]}),
    "decision_consent_second": (DecisionRecorded(decision=KZ_CONSENT), {"decisions": [UZ_CONSENT, KZ_CONSENT]}, {
        "en": ["Decision of the Republic of Kazakhstan: consent", "Both states have consented",
               "Your handover will now be arranged"],
        "ru": ["Решение Республики Казахстан: согласие", "Оба государства дали согласие",
               "будет организована Ваша передача"]}),
    "decision_refused": (
        DecisionRecorded(decision=decision("UZ", "refuse", ("sovereignty_or_security", "state_declined"))), {}, {
            "en": ["Decision of the Republic of Uzbekistan: refusal of your transfer (refuse)",
                   "Your transfer case is closed"],
            "ru": ["Решение Республики Узбекистан: отказ в Вашей передаче (refuse)",
                   "Производство по делу о Вашей передаче прекращено"]}),
    "handover_arranged": (HandoverArranged(handover=ARRANGED), {"decisions": [UZ_CONSENT, KZ_CONSENT],
                                                               "handover": ARRANGED, "enforcement": "converted"}, {
        "en": ["the Zhibek Zholy (Kazakhstan) – Gishtkuprik (Uzbekistan) border crossing",
               "on 15 January 2027 at the latest", "handed over to the officials of the Republic of Uzbekistan",
               "4 years and 6 months"],
        "ru": ["пункт пропуска «Жибек жолы» (Казахстан) – «Гишткуприк» (Узбекистан)",
               "не позднее 15 января 2027 года", "передадут представителям Республики Узбекистан",
               "сроком 4 года 6 месяцев"]}),
    "handover_to_be_agreed": (HandoverArranged(handover=Handover(place=TO_BE_AGREED, due_on=date(2027, 1, 15))), {}, {
        "en": ["to be agreed between the central authorities of the two states"],
        "ru": ["будет согласовано центральными органами государств"]}),
    "closed_transferred": (CaseClosed(outcome="transferred"), {"decisions": [UZ_CONSENT, KZ_CONSENT],
                                                              "handover": DONE, "enforcement": "converted"}, {
        "en": ["You have been transferred (transferred)", "on 10 January 2027",
               "You are serving your sentence in the Republic of Uzbekistan"],
        "ru": ["Ваша передача для отбывания наказания осуществлена (transferred)", "10 января 2027 года",
               "Вы отбываете наказание в Республике Узбекистан"]}),
    "closed_refused": (CaseClosed(outcome="refused", grounds=["no_dual_criminality", "insufficient_remaining_term"]),
                       {}, {"en": ["Your transfer has been refused (refused)", "ask again to be transferred"],
                            "ru": ["В Вашей передаче отказано (refused)", "вновь обратиться с ходатайством"]}),
    "closed_no_treaty": (CaseClosed(outcome="refused", grounds=["no_treaty"]), {"eligibility": []}, {
        "en": ["Your transfer has been refused"], "ru": ["В Вашей передаче отказано"]}),
    "closed_withdrawn": (CaseClosed(outcome="withdrawn"), {}, {
        "en": ["the consent to the transfer was withdrawn (withdrawn)", "you may make a new request",
               "You will go on serving your sentence in the Republic of Kazakhstan"],
        "ru": ["в связи с отзывом согласия на передачу (withdrawn)", "с новым ходатайством о передаче",
               "Вы продолжите отбывать наказание в Республике Казахстан"]}),
    "closed_expired": (CaseClosed(outcome="expired", grounds=["no_declaration"]), {}, {
        "en": ["because a time limit passed (expired)", "ask again to be transferred"],
        "ru": ["в связи с истечением установленного срока (expired)", "вновь обратиться с ходатайством"]}),
}


def one_line(text: str) -> str:
    return " ".join(text.split())


def read_back(pdf: bytes, letter) -> str:
    """The body of the PDF as pypdf reads it, whitespace collapsed; each page's header and footer
    (checked here) taken out, so that a sentence broken across two pages reads whole."""
    pages = [one_line(page.extract_text()) for page in PdfReader(io.BytesIO(pdf)).pages]
    body = []
    for number, page in enumerate(pages, 1):
        header, footer = one_line(letter.issuer), one_line(letter.footer)
        numbering = one_line(letter.page.format(page=number, pages=len(pages)))
        assert page.startswith(header), page[:200]
        assert page.endswith(f"{footer} {numbering}"), page[-300:]
        body.append(page.removeprefix(header).removesuffix(f"{footer} {numbering}"))
    return one_line(" ".join(body))


def grounds_of(occasion, case: LetterFacts) -> list[str]:
    if isinstance(occasion, EligibilityDecided):
        return [GROUND_OF[c.condition] for c in case.eligibility if c.outcome == "failed"]
    if isinstance(occasion, DecisionRecorded):
        return occasion.decision.grounds
    return getattr(occasion, "grounds", [])


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", [CYRILLIC, LATIN], ids=["cyrillic-name", "latin-name"])
def test_each_occasion_reads_back_from_the_pdf(scenario: str, language: str, name: str) -> None:
    occasion, changes, says = SCENARIOS[scenario]
    case = facts(name, **changes)
    letter = compose_letter(occasion, case, language, issued_on=ISSUED_ON)
    pdf = render_pdf(letter)
    assert pdf.startswith(b"%PDF-")
    text = read_back(pdf, letter)
    w = WORDINGS[language]

    assert name in text
    assert REFERENCE in text
    assert one_line(letter.title) in text
    assert w.write_date(ISSUED_ON) in text
    for sentence in says[language]:
        assert sentence in text, sentence
    sentences = [s for s in re.split(r"(?<=[.!])\s", letter.text.replace("\n", " ")) if s]
    assert len(sentences) == len(set(sentences)), "a sentence is said twice"
    grounds = grounds_of(occasion, case)
    if grounds:
        assert w.text["heading.grounds"] in text
    for ground in grounds:  # each ground: its legal label, its code in brackets, its plain words
        assert f"{w.labels[ground]} ({ground}): {one_line(w.grounds[ground])}" in text
    if isinstance(occasion, EligibilityDecided):
        for c in case.eligibility:
            assert f"{w.labels[c.condition]} ({c.condition})" in text
            assert one_line(w.conditions[c.condition]) in text
    if language == "ru":
        assert f"Уважаемый(ая) {name}!" in text
        assert "для дальнейшего отбывания наказания" in text


def test_the_header_names_the_central_authority_where_the_person_is_held() -> None:
    before = compose_letter(CaseClosed(outcome="refused", grounds=["state_declined"]), facts(), "ru",
                            issued_on=ISSUED_ON)
    after = compose_letter(CaseClosed(outcome="transferred"), facts(handover=DONE), "ru", issued_on=ISSUED_ON)
    assert before.issuer == "treatyflow — Генеральная прокуратура Республики Казахстан"
    assert "Вручается осуждённому" in before.footer and "Министерства внутренних дел Республики Казахстан" in \
        before.footer
    assert after.issuer == "treatyflow — Генеральная прокуратура Республики Узбекистан"
    assert "Департамент исполнения наказаний" in after.footer
    english = compose_letter(EligibilityDecided(), facts(LATIN), "en", issued_on=ISSUED_ON)
    assert english.issuer == "treatyflow — Prosecutor General's Office of the Republic of Kazakhstan"
    assert english.footer.startswith("To be handed to the sentenced person by the prison service")
    # a state without a prison service in the directory: the footer names none
    italy = compose_letter(EligibilityDecided(), facts(sentencing_state="IT", administering_state="KZ"), "en",
                           issued_on=ISSUED_ON)
    assert italy.issuer == "treatyflow — Ministry of Justice of the Italian Republic"
    assert italy.footer == "To be handed to the sentenced person by the prison service."


def test_letter_text_is_the_whole_letter_in_plain_text() -> None:
    text = letter_text(CaseClosed(outcome="expired", grounds=["no_declaration"]), facts(), issued_on=ISSUED_ON)
    assert text.startswith("treatyflow — Генеральная прокуратура Республики Казахстан\nДата: 1 декабря 2026 года\n"
                           f"Дело № {REFERENCE}\nАдресат: {CYRILLIC}\n")
    assert "• Отсутствует заявление о согласии на передачу (no_declaration): Ваше письменное заявление" in text
    assert text.rstrip().endswith("(Комитет уголовно-исполнительной системы Министерства внутренних дел Республики "
                                  "Казахстан).")


# --- wording for every code, in both languages -------------------------------------------------


def transfer_grounds() -> set[str]:
    """Every ground a transfer case can close on or a state can cite: the domain's, the treaty
    registry's, and those the transfer workflow closes on by name."""
    source = inspect.getsource(workflows.transfer)
    closing = {g for listed in re.findall(r'close\("\w+", \[([^\]]*)\]\)', source)
               for g in re.findall(r'"(\w+)"', listed)}
    registry = {g for t in reference().treaties if t.transfer for g in t.transfer.refusal_grounds.value}
    return {*TRANSFER_GROUNDS, *GROUND_OF.values(), *TREATY_TRANSFER_GROUNDS, *registry,
            *workflows.transfer.ALWAYS_OPEN_GROUNDS, *closing}


def test_the_grounds_found_include_those_the_workflow_closes_on() -> None:
    assert {"no_treaty", "no_declaration", "state_declined", "outstanding_financial_obligations"} <= transfer_grounds()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_code_of_the_domain_has_wording(language: str) -> None:
    w = WORDINGS[language]
    r = reference()
    states = {p for t in r.treaties for p in t.parties} | {a.state for a in r.authorities}
    authorities = {a.id for a in r.authorities if a.role in ("central_authority", "prison_service")}
    places = {p for t in r.treaties if t.transfer for p in t.transfer.handover_points.value} | {TO_BE_AGREED}
    missing = {
        "grounds without a label": sorted(transfer_grounds() - set(w.labels)),
        "grounds without an explanation": sorted(transfer_grounds() - set(w.grounds)),
        "conditions without a label": sorted(set(typing.get_args(Condition)) - set(w.labels)),
        "conditions without an explanation": sorted(set(typing.get_args(Condition)) - set(w.conditions)),
        "outcomes without a label": sorted(set(typing.get_args(ConditionOutcome)) - set(w.labels)),
        "enforcements without a label or a sentence": sorted(
            e for e in typing.get_args(Enforcement) if e not in w.labels or f"enforcement.{e}" not in w.text),
        "closing outcomes without a sentence": sorted(o for o in TERMINAL_STAGES if f"closed.{o}" not in w.text),
        "occasions without a title": sorted(o for o in OCCASIONS if f"title.{o}" not in w.text),
        "states without a name": sorted(states - set(w.states)),
        "authorities without a name": sorted(authorities - set(w.authorities)),
        "handover points without words": sorted(places - set(w.places)),
    }
    gaps = {what: codes for what, codes in missing.items() if codes}
    assert not gaps, f"wording missing in {language}: {gaps}"


def test_the_closing_outcomes_are_the_terminal_stages() -> None:
    outcomes = typing.get_args(CaseClosed.model_fields["outcome"].annotation)
    assert set(outcomes) == set(TERMINAL_STAGES)


def test_both_languages_have_the_same_sentences_with_the_same_placeholders() -> None:
    def placeholders(template: str) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(template) if field}

    assert set(en.TEXT) == set(ru.TEXT)
    assert {k: placeholders(v) for k, v in en.TEXT.items()} == {k: placeholders(v) for k, v in ru.TEXT.items()}
    for table in ("LABELS", "GROUNDS", "CONDITIONS", "STATES", "AUTHORITIES", "PLACES"):
        assert set(getattr(en, table)) == set(getattr(ru, table)), table


def test_legal_labels_are_the_web_applications() -> None:
    with (ROOT / "web/locale/ru/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f, locale="ru")
    for code, label in en.LABELS.items():
        assert label == WEB_LABELS[code], code
        assert ru.LABELS[code] == catalog[WEB_LABELS[code]].string, code


def test_russian_terms_and_dates_decline() -> None:
    assert ru.format_term(1, 0, 0) == "1 год"
    assert ru.format_term(2, 0, 0) == "2 года"
    assert ru.format_term(5, 0, 0) == "5 лет"
    assert ru.format_term(11, 11, 11) == "11 лет 11 месяцев 11 дней"
    assert ru.format_term(21, 1, 22) == "21 год 1 месяц 22 дня"
    assert ru.format_term(0, 14, 3) == "14 месяцев 3 дня"
    assert en.format_term(1, 0, 0) == "1 year"
    assert en.format_term(4, 6, 0) == "4 years and 6 months"
    assert en.format_term(1, 2, 3) == "1 year, 2 months and 3 days"
    assert ru.format_date(date(2027, 3, 8)) == "8 марта 2027 года"
    assert en.format_date(date(2027, 3, 8)) == "8 March 2027"
    assert ru.STATES["FR"].in_ == "во Французской Республике"
    assert ru.STATES["KZ"].from_ == "из Республики Казахстан"


def test_an_unknown_ground_or_state_still_gives_a_letter() -> None:
    letter = compose_letter(CaseClosed(outcome="refused", grounds=["some_new_ground"]),
                            facts(administering_state="XX"), "ru", issued_on=ISSUED_ON)
    assert "(some_new_ground): разъяснение этого основания Вам даст администрация учреждения." in letter.text
    assert "в государство XX" in letter.text


# --- the PDF -----------------------------------------------------------------------------------


def test_the_same_letter_gives_the_same_bytes() -> None:
    occasion, changes, _ = SCENARIOS["handover_arranged"]
    first = write_letter(occasion, facts(**changes), "ru", issued_on=ISSUED_ON)
    assert write_letter(occasion, facts(**changes), "ru", issued_on=ISSUED_ON) == first
    # in another interpreter too (another hash seed, the input as JSON)
    sent = PersonNoticeInput(occasion=occasion, facts=facts(**changes), language="ru", issued_on=ISSUED_ON)
    script = ("import sys; from activities.letters import PersonNoticeInput, person_notice; "
              "sys.stdout.write(person_notice(PersonNoticeInput.model_validate_json(sys.stdin.read())).sha256)")
    other = subprocess.run([sys.executable, "-c", script], cwd=ROOT, input=sent.model_dump_json(),
                           capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "12345"})
    assert other.stdout == hashlib.sha256(first).hexdigest()
    # the date is the letter's, not the clock's
    later = write_letter(occasion, facts(**changes), "ru", issued_on=date(2026, 12, 2))
    assert later != first
    assert PdfReader(io.BytesIO(first)).metadata["/CreationDate"] == "D:20261201000000Z"


def test_letters_written_at_once_in_threads_are_those_written_one_by_one() -> None:
    """The activity renders in threads, over fonts the process parses once: without the lock in
    render_pdf, reportlab's shared font objects mix two documents' subsets (a KeyError, or a
    different PDF)."""
    jobs = [(occasion, facts(**changes), language) for occasion, changes, _ in SCENARIOS.values()
            for language in LANGUAGES]
    alone = [write_letter(occasion, case, language, issued_on=ISSUED_ON) for occasion, case, language in jobs]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda job: write_letter(*job, issued_on=ISSUED_ON), jobs * 6))
    finally:
        sys.setswitchinterval(interval)
    assert together == alone * 6


def test_the_pdf_is_a4_and_embeds_the_font() -> None:
    pdf = PdfReader(io.BytesIO(write_letter(EligibilityDecided(), facts(), "ru", issued_on=ISSUED_ON)))
    for page in pdf.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # A4 in points
        fonts = [f.get_object() for f in page["/Resources"]["/Font"].values()]
        # PT Sans regular and bold, each as subsets (a tag of six capitals, "+", the font's name)
        assert {str(f["/BaseFont"]).split("+")[1] for f in fonts} == {"PTSans-Regular", "PTSans-Bold"} \
            == set(FONTS.values())
        for font in fonts:
            assert re.fullmatch(r"/[A-Z]{6}\+PTSans-(Regular|Bold)", str(font["/BaseFont"]))
            assert font["/Subtype"] == "/TrueType"
            descriptor = font["/FontDescriptor"].get_object()
            assert len(descriptor["/FontFile2"].get_object().get_data()) > 1_000  # the TrueType subset itself
            assert "/ToUnicode" in font  # the text is Unicode to an extractor
    assert pdf.metadata["/Title"].endswith(REFERENCE)
    assert CYRILLIC not in str(pdf.metadata)  # no personal data in the metadata


def test_kazakh_and_uzbek_letters_render() -> None:
    names = ["Әбілқасымов Ұлан Ғаниұлы", "Тошматов Ўткир Ҳамидович", "Gʻulomov Oʻtkir Shavkatovich"]
    for name in names:
        letter = compose_letter(EligibilityDecided(), facts(name), "ru", issued_on=ISSUED_ON)
        text = read_back(render_pdf(letter), letter)
        assert name.replace("ʻ", "‘") in text  # the Uzbek Latin ʻ is drawn as ‘


def test_a_name_the_font_cannot_draw_is_refused_without_showing_it() -> None:
    with pytest.raises(UnrenderableLetter) as refused:
        write_letter(EligibilityDecided(), facts("王小明"), "en", issued_on=ISSUED_ON)
    assert "王" not in str(refused.value) and REFERENCE in str(refused.value)


# --- the activity ------------------------------------------------------------------------------


def notice_input(**changes) -> PersonNoticeInput:
    occasion, facts_changes, _ = SCENARIOS["decision_consent_first"]
    return PersonNoticeInput(**({"occasion": occasion, "facts": facts(**facts_changes), "language": "ru",
                                 "issued_on": ISSUED_ON} | changes))


def order_of(notice: PersonNoticeInput, document_id: str = "doc-" + "a" * 26) -> PersonNoticeOrder:
    return PersonNoticeOrder(reference=REFERENCE, document_id=document_id, notice=notice,
                             issued_at=datetime.combine(ISSUED_ON, time(9), tzinfo=timezone.utc))


async def test_the_activity_writes_the_notice_into_the_case_file_once(tmp_path) -> None:
    store = open_documents(url=None, directory=tmp_path, keys=CODEC_KEYS)
    letters = Letters(store)
    record = await ActivityEnvironment().run(letters.write_person_notice, order_of(notice_input()))
    assert (record.type, record.content_type, record.uploaded_by) == ("person_notice", "application/pdf", "system")
    assert record.filename == f"{REFERENCE}-decision-recorded-uz-ru.pdf"
    assert record.title == "Уведомление о решении государства по вопросу Вашей передачи"
    content = b"".join([c async for c in store.read("transfer", REFERENCE, record.document_id)])
    assert content == write_letter(notice_input().occasion, notice_input().facts, "ru", issued_on=ISSUED_ON)
    assert record.size == len(content) and record.sha256 == hashlib.sha256(content).hexdigest()
    again = await ActivityEnvironment().run(letters.write_person_notice, order_of(notice_input()))  # a retry
    assert again == record and len([p for p in tmp_path.rglob("doc-*") if p.is_file()]) == 1


async def test_the_activity_fails_for_good_on_a_letter_it_cannot_write(tmp_path) -> None:
    letters = Letters(open_documents(url=None, directory=tmp_path, keys=CODEC_KEYS))
    third = notice_input(occasion=DecisionRecorded(decision=decision("FR")))
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(letters.write_person_notice, order_of(third))
    assert failed.value.non_retryable and failed.value.type == "ValueError"
    unrenderable = notice_input(facts=facts("王小明"))
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(letters.write_person_notice, order_of(unrenderable))
    assert failed.value.non_retryable and failed.value.type == "UnrenderableLetter"
    assert not [p for p in tmp_path.rglob("doc-*") if p.is_file()]


def test_the_input_and_the_notice_travel_through_the_data_converter() -> None:
    converter = pydantic_data_converter.payload_converter
    for scenario in SCENARIOS.values():
        sent = notice_input(occasion=scenario[0], facts=facts(**scenario[1]), language="en")
        [payload] = converter.to_payloads([sent])
        assert converter.from_payloads([payload], [PersonNoticeInput]) == [sent]
    notice = PersonNotice(title="t", filename="f.pdf", language="ru", size=4, sha256="0" * 64,
                          content=b"%PDF\x00\xff")
    [payload] = converter.to_payloads([notice])
    assert converter.from_payloads([payload], [PersonNotice]) == [notice]


def test_the_facts_come_from_the_view() -> None:
    view = TransferView(reference=REFERENCE, stage="awaiting_handover", sentencing_state="KZ",
                        administering_state="UZ", received_on=date(2026, 11, 20), opened_at=AT,
                        eligibility=conditions(), release_date=date(2028, 5, 1), decisions=[UZ_CONSENT, KZ_CONSENT],
                        handover=ARRANGED, enforcement="converted")
    assert LetterFacts.of(view, CYRILLIC) == facts(decisions=[UZ_CONSENT, KZ_CONSENT], handover=ARRANGED,
                                                   enforcement="converted")


def test_only_what_a_letter_says_travels_to_it() -> None:
    """A letter's input is kept in the case's history five times a case: a state's note (up to
    10,000 characters, for the other state) and each condition's detail and basis (the case view's)
    are not carried to the letter, which does not say them."""
    note = "Внутренняя переписка между центральными органами. " * 150
    noted = decision("UZ", **CONVERTED).model_copy(update={"note": note})
    view = TransferView(reference=REFERENCE, stage="awaiting_handover", sentencing_state="KZ",
                        administering_state="UZ", received_on=date(2026, 11, 20), opened_at=AT,
                        eligibility=[c.model_copy(update={"detail": "Подробности проверки. " * 20,
                                                          "basis": "ETS 112 Art. 3(1)(a) " * 10}) for c in conditions()],
                        release_date=date(2028, 5, 1), decisions=[noted, KZ_CONSENT], handover=ARRANGED,
                        enforcement="converted")
    sent = PersonNoticeInput(occasion=DecisionRecorded(decision=noted), facts=LetterFacts.of(view, CYRILLIC),
                             language="ru", issued_on=ISSUED_ON)
    carried = sent.model_dump_json()
    assert "Внутренняя переписка" not in carried and "Подробности" not in carried and "Art. 3(1)(a)" not in carried
    assert len(carried) < 2_000
    # the letter says the same as with everything carried
    assert (letter_text(sent.occasion, sent.facts, "ru", issued_on=ISSUED_ON)
            == letter_text(DecisionRecorded(decision=UZ_CONSENT), facts(decisions=[UZ_CONSENT, KZ_CONSENT],
                                                                        handover=ARRANGED, enforcement="converted"),
                           "ru", issued_on=ISSUED_ON))


async def test_letters_are_rendered_apart_and_a_press_that_died_is_started_again() -> None:
    """The worker's event loop never renders: a letter takes a process of its own (one per worker
    process). If that process dies (the OOM killer), the letter in hand fails retryably, and the
    next one starts another process and gives the same bytes."""
    press = LetterPress()
    before = set(multiprocessing.active_children())
    first = await press.write(notice_input())
    [rendering] = set(multiprocessing.active_children()) - before
    assert rendering.pid != os.getpid()
    os.kill(rendering.pid, signal.SIGKILL)
    rendering.join(10)
    with pytest.raises(ApplicationError) as ended:
        await press.write(notice_input())
    assert not ended.value.non_retryable  # Temporal retries the activity
    again = await press.write(notice_input())
    assert again.sha256 == first.sha256 and again.content == first.content
    [restarted] = set(multiprocessing.active_children()) - before
    assert restarted.pid != rendering.pid
