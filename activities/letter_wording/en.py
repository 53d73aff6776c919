"""The letters to the sentenced person in English: every word of them (see the package's
docstring). Plain words: the reader is a detainee, perhaps with no lawyer beside him, perhaps
not reading his own language. Each legal label is the web application's (``web/labels.py``)."""

from __future__ import annotations

from datetime import date

from activities.letter_wording import StateName, Wording

# the legal labels: exactly web/labels.py's
LABELS = {
    # eligibility conditions and their outcomes
    "nationality": "Nationality",
    "final_judgment": "Final judgment",
    "remaining_term": "Remaining term",
    "dual_criminality": "Dual criminality",
    "financial_obligations": "Financial obligations",
    "pending_proceedings": "Pending proceedings",
    "satisfied": "Satisfied",
    "failed": "Failed",
    "needs_review": "Needs review",
    "not_applicable": "Not applicable",
    # the administering state's enforcement, stated with its consent
    "continued": "Enforcement continued",
    "converted": "Sentence converted",
    # grounds
    "no_treaty": "No treaty in force",
    "not_national": "Not a national of the administering state",
    "judgment_not_final": "Judgment not final",
    "insufficient_remaining_term": "Too little of the sentence remains",
    "no_dual_criminality": "No dual criminality",
    "outstanding_financial_obligations": "Financial obligations outstanding",
    "proceedings_pending": "Proceedings pending",
    "sovereignty_or_security": "Sovereignty or security",
    "contrary_to_national_law": "Contrary to national law",
    "state_declined": "The state declines",
    "no_declaration": "No declaration of intent",
}

# each ground, in plain words: follows "<label> (<code>): "
GROUNDS = {
    "no_treaty": "there is no treaty in force between the two states that allows a sentenced person to be "
                 "transferred between them.",
    "not_national": "you are not a citizen of the state where you would serve your sentence, or you are also a "
                    "citizen of the other state while the treaty allows a transfer only of a person who holds "
                    "one citizenship.",
    "judgment_not_final": "the judgment against you is not final yet: a transfer is possible only once it can no "
                          "longer be appealed.",
    "insufficient_remaining_term": "on the day the request was received, less of your sentence remained to be "
                                   "served than the treaty requires.",
    "no_dual_criminality": "what you were convicted of is not a crime under the law of the state where you would "
                           "serve your sentence.",
    "outstanding_financial_obligations": "you have financial obligations that are not settled, for example a fine "
                                         "or compensation that has not been paid.",
    "proceedings_pending": "another investigation or trial concerning you is still under way.",
    "sovereignty_or_security": "the state considers that the transfer could harm its sovereignty or its "
                               "security.",
    "contrary_to_national_law": "the transfer would be contrary to the law of the state.",
    "state_declined": "the state has used its right to decide freely and does not agree to the transfer.",
    "no_declaration": "your written declaration that you wish to serve your sentence in the state of your "
                      "citizenship was not received within the time allowed.",
}

# what each eligibility condition checks: follows "It was checked "
CONDITIONS = {
    "nationality": "whether you are a citizen of the state where you would serve your sentence",
    "final_judgment": "whether the judgment against you is final, that is, whether it can no longer be appealed",
    "remaining_term": "whether, on the day the request was received, enough of your sentence remained to be "
                      "served, as the treaty requires",
    "dual_criminality": "whether what you were convicted of is also a crime under the law of the state where you "
                        "would serve your sentence",
    "financial_obligations": "whether you have financial obligations that are not settled, such as an unpaid fine "
                             "or compensation",
    "pending_proceedings": "whether another investigation or trial concerning you is still under way",
}


def _state(name: str) -> StateName:
    return StateName(name=name, of=name, from_=f"from {name}", to=f"to {name}", in_=f"in {name}")


# every state of the treaty registry and of the authority directory (domain/data)
STATES = {code: _state(name) for code, name in {
    "AE": "the United Arab Emirates",
    "AM": "the Republic of Armenia",
    "AZ": "the Republic of Azerbaijan",
    "BY": "the Republic of Belarus",
    "CN": "the People's Republic of China",
    "ES": "the Kingdom of Spain",
    "FR": "the French Republic",
    "GB": "the United Kingdom of Great Britain and Northern Ireland",
    "GE": "Georgia",
    "HU": "Hungary",
    "IN": "the Republic of India",
    "IR": "the Islamic Republic of Iran",
    "IT": "the Italian Republic",
    "KG": "the Kyrgyz Republic",
    "KR": "the Republic of Korea",
    "KZ": "the Republic of Kazakhstan",
    "LT": "the Republic of Lithuania",
    "MC": "the Principality of Monaco",
    "MD": "the Republic of Moldova",
    "MN": "Mongolia",
    "RO": "Romania",
    "RU": "the Russian Federation",
    "TJ": "the Republic of Tajikistan",
    "TM": "Turkmenistan",
    "TR": "the Republic of Türkiye",
    "UA": "Ukraine",
    "UZ": "the Republic of Uzbekistan",
}.items()}

# the central authorities and prison services of the directory, by id, named in full
AUTHORITIES = {
    "kz-gpo": "Prosecutor General's Office of the Republic of Kazakhstan",
    "kz-penal": "Penal Correction Committee of the Ministry of Internal Affairs of the Republic of Kazakhstan",
    "uz-gpo": "Prosecutor General's Office of the Republic of Uzbekistan",
    "uz-penal": "Department for the Execution of Punishments of the Ministry of Internal Affairs of the Republic "
                "of Uzbekistan",
    "fr-moj": "Ministry of Justice of the French Republic, international criminal assistance office",
    "fr-penal": "Prison administration of the French Republic",
    "it-moj": "Ministry of Justice of the Italian Republic",
    "es-moj": "Ministry of Justice of the Kingdom of Spain",
    "gb-ukca": "UK Central Authority",
    "hu-moj": "Ministry of Justice of Hungary",
    "mc-dsj": "Directorate of Judicial Services of the Principality of Monaco",
    "ru-gp": "Prosecutor General's Office of the Russian Federation",
    "by-gp": "Prosecutor General's Office of the Republic of Belarus",
    "kg-gp": "Prosecutor General's Office of the Kyrgyz Republic",
    "tj-gp": "Prosecutor General's Office of the Republic of Tajikistan",
    "am-gp": "Prosecutor General's Office of the Republic of Armenia",
    "az-gp": "Prosecutor General's Office of the Republic of Azerbaijan",
    "ge-gp": "Prosecutor's Office of Georgia",
    "md-gp": "Prosecutor General's Office of the Republic of Moldova",
    "tm-gp": "Prosecutor General's Office of Turkmenistan",
    "cn-moj": "Ministry of Justice of the People's Republic of China",
    "in-mha": "Ministry of Home Affairs of the Republic of India",
    "tr-moj": "Ministry of Justice of the Republic of Türkiye",
    "ae-moj": "Ministry of Justice of the United Arab Emirates",
    "mn-moj": "Ministry of Justice and Home Affairs of Mongolia",
    "ir-moj": "Ministry of Justice of the Islamic Republic of Iran",
    "kr-moj": "Ministry of Justice of the Republic of Korea",
    "lt-moj": "Ministry of Justice of the Republic of Lithuania",
    "ua-gp": "Office of the Prosecutor General of Ukraine",
    "ro-moj": "Ministry of Justice of Romania",
}

# the handover points of the treaty registry (domain/data/treaties.json) and the placeholder
# domain.transfer.TO_BE_AGREED
PLACES = {
    "Zhibek Zholy (KZ) – Gishtkuprik (UZ) border crossing":
        "the Zhibek Zholy (Kazakhstan) – Gishtkuprik (Uzbekistan) border crossing",
    "to be agreed between the central authorities":
        "to be agreed between the central authorities of the two states; you will be told of it separately",
}

TEXT = {
    "issuer": "treatyflow — {authority}",
    "date_line": "Date: {date}",
    "reference_line": "Case: {reference}",
    "addressee": "To: {name}",
    "salutation": "Dear {name},",
    "intro": "This letter tells you how your case is going: your transfer {sentencing_from} {administering_to} to "
             "serve the rest of your sentence there (case {reference}).",
    "title.eligibility_decided": "Notice of the check of the conditions for transfer",
    "title.decision_recorded": "Notice of a state's decision on your transfer",
    "title.handover_arranged": "Notice of the arrangements for your handover",
    "title.case_closed": "Notice of the closing of your transfer case",
    "heading.checked": "What was checked",
    "heading.decided": "What has been decided",
    "heading.grounds": "The grounds",
    "heading.next": "What happens next",
    "condition": "{label} ({code}): condition {outcome}. It was checked {question}.",
    "condition.not_applicable": "{label} ({code}): condition {outcome}: the treaty does not set it.",
    "ground": "{label} ({code}): {explanation}",
    "ground.unknown": "({code}): the administration of your institution will explain this ground to you.",
    "eligibility.none": "The conditions for transfer were not checked.",
    "eligibility.met": "All the conditions for transfer that the treaty sets are met.",
    "eligibility.review": "Some of the conditions need a further legal assessment. It will be made by the "
                          "{authority}.",
    "eligibility.failed": "Not all the conditions for transfer are met, so you cannot be transferred.",
    "next.both_decide": "Now both states, {first} and {second}, will decide on your transfer. Each of them may "
                        "agree to it or refuse it. You will be told in writing of each state's decision.",
    "next.after_review": "You will be told the result of the assessment in writing. If all the conditions are met, "
                         "both states will then decide on your transfer.",
    "next.closed": "Your transfer case is closed.",
    "next.stay": "You will go on serving your sentence {sentencing_in}, as the court's judgment orders.",
    "next.ask_again": "If the reasons for the refusal cease to exist, you may ask again to be transferred.",
    "next.ask_again_withdrawn": "Should you wish to be transferred after all, you may make a new request.",
    "decision.consent": "Decision of {state}: consent to your transfer ({code}).",
    "decision.refuse": "Decision of {state}: refusal of your transfer ({code}).",
    "enforcement.continued": "{label} ({code}): your sentence will be enforced {administering_in} as the court "
                             "imposed it.",
    "enforcement.converted": "{label} ({code}): under the law of {administering}, your sentence is replaced by a "
                             "sentence of {term}. The new sentence may not make your position worse.",
    "release_date": "By the calculation, your sentence ends on {date} (not counting any early release).",
    "next.both_consented": "Both states have consented to your transfer. Your handover will now be arranged; you "
                           "will be told its place and date in a separate letter.",
    "next.awaiting_other": "The decision of {state} is still awaited. You will be told of it in writing.",
    "handover.arranged": "Both states have consented to your transfer, and your handover has been arranged.",
    "handover.place": "Place of the handover: {place}.",
    "handover.due": "Date: on {date} at the latest.",
    "next.handover": "At the place of the handover you will be handed over to the officials of {administering}. "
                     "You will then serve the rest of your sentence {administering_in}.",
    "next.prepare": "The administration of your institution will tell you how to prepare for the handover.",
    "closed.transferred": "You have been transferred ({code}).",
    "closed.handed_over": "The handover took place on {date} at {place}.",
    "closed.refused": "Your transfer has been refused ({code}).",
    "closed.withdrawn": "Your transfer case has been closed because the consent to the transfer was withdrawn "
                        "({code}).",
    "closed.expired": "Your transfer case has been closed because a time limit passed ({code}).",
    "next.transferred": "Your transfer case is closed. You are serving your sentence {administering_in}, under the "
                        "law of {administering}. For any question about your sentence, please ask the "
                        "administration of your institution.",
    "help": "If anything in this letter is unclear to you, you may ask the administration of your institution or "
            "your lawyer to explain it.",
    "regards": "Yours sincerely,",
    "footer": "To be handed to the sentenced person by the prison service{prison_service}.",
    "footer.prison_service": " ({name})",
    "page": "Page {page} of {pages}",
}

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def format_date(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def format_term(years: int, months: int, days: int) -> str:
    parts = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in ((years, "year"), (months, "month"), (days, "day"))
             if n]
    return " and ".join(parts) if len(parts) < 3 else f"{parts[0]}, {parts[1]} and {parts[2]}"


WORDING = Wording(
    language="en", labels=LABELS, grounds=GROUNDS, conditions=CONDITIONS, states=STATES, authorities=AUTHORITIES,
    places=PLACES, text=TEXT, write_date=format_date, write_term=format_term,
    unknown_state=lambda code: _state(f"the state {code}"),
)
