"""The API's messages in the user's language. The API speaks English (its clients and the other
state's systems read it); a person reads its refusals on a page, in the language of the page. Each
template below is an API message with its variable parts named; a message that matches one is
shown translated with its parts (codes, references, field paths) as they are, anything else as the
API said it. The templates are msgids of the catalogs, so `tests/web/test_catalog.py` holds each
to its translation, and holds every message of the code (api/, workflows/, domain/, web/) to a
template.

Matching: a template matches a whole message; a part named twice is the same value both times
(``%(prefix)s`` in ``reference must begin with KZ- ..., such as KZ-2026-0001``); no part spans
``"; "``, which joins the problems of a 422 (``api.errors.invalid``), so that a message of several
problems is translated problem by problem. The first template that matches wins: where one
template's text could also be read as another's with a wider part (``%(field)s must be true: ...``
would take ``voluntary and informed_of_consequences`` as its field), the narrower one comes
first."""

from __future__ import annotations

import re
from functools import lru_cache

from web.i18n import Language
from web.labels import N_

TEMPLATES = (
    # ---- a field's problem: api.errors.problems_of, the field's path then what is wrong with it ----
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
    N_("%(field)s must be the document_id of a document of the case file, such as doc-7p2kq4x5vd3m6n8r2t4w6y2a3b"),
    N_("%(field)s is not in the expected form"),
    # the rest of api.errors.PATTERNS
    N_("%(field)s must be a three-letter currency code in capitals, such as KZT"),
    N_("%(field)s must be 1 to 64 letters, digits, dots, hyphens or underscores, such as e1"),
    N_("%(field)s must be 1 to 32 letters, digits, hyphens or underscores, such as m1"),
    N_("%(field)s must be an amount written as a string, such as \"1500.00\": up to 15 digits, then up to 4 "
       "decimals after a point"),
    # the bounds of the request models (domain.transfer: AtMost, Day), before the generic "items" below
    N_("%(field)s must be 1900-01-01 or later"),
    N_("%(field)s may have at most %(count)s citizenships"),
    N_("%(field)s may have at most %(count)s offences"),
    N_("%(field)s may have at most %(count)s financial obligations"),
    N_("%(field)s may have at most %(count)s pending proceedings"),
    N_("%(field)s may have at most %(count)s measures"),
    N_("%(field)s may have at most %(count)s evidence items"),
    N_("%(field)s may be at most %(count)s years"),
    N_("%(field)s may be at most %(count)s months"),
    N_("%(field)s may be at most %(count)s days"),
    # the rest of api.errors.PREDICATES and api.errors.predicate
    N_("%(field)s is not a field of this body: remove it"),
    N_("%(field)s must be a string"),
    N_("%(field)s must be a list"),
    N_("%(field)s must be an object"),
    N_("%(field)s must be null"),
    N_("%(field)s must have at least %(count)s items"),
    N_("%(field)s may have at most %(count)s items"),
    N_("%(field)s must be at least %(bound)s"),
    N_("%(field)s must be more than %(bound)s"),
    N_("%(field)s must be at most %(bound)s"),
    N_("%(field)s must be less than %(bound)s"),
    N_("%(field)s is not valid: %(reason)s"),  # pydantic's own words as the reason, as they are
    N_("%(field)s is not valid"),
    N_("the body must be a JSON object"),
    N_("the body is not valid JSON: send one JSON object in UTF-8"),
    # ---- the rules of the request models (domain.transfer, domain.assistance validators) ----
    N_("%(field)s: an indeterminate sentence has no term: send years, months and days as 0"),
    N_("%(field)s: a determinate sentence needs a term: send years, months or days (or set indeterminate to "
       "true)"),
    N_("%(field)s and informed_of_consequences must be true: a declaration counts only when the person made it "
       "voluntarily and informed of its consequences"),
    N_("%(field)s must be true: a declaration counts only when the person made it voluntarily and informed of its "
       "consequences"),
    N_("administering_state must differ from sentencing_state"),
    N_("previous_reference names an earlier case, not this one"),
    N_("judgment.date may not lie after received_on"),
    N_("enforcement is stated only with a consent"),
    N_("converted_sentence is required when enforcement is converted: give the converted term in years, months "
       "and days"),
    N_("converted_sentence is given only when enforcement is converted"),
    N_("converted_sentence: the converted term needs years, months or days"),
    N_("grounds are required to refuse: cite at least one"),
    N_("grounds must be empty to consent"),
    N_("grounds must cite each ground once (%(grounds)s is cited more than once)"),
    N_("grounds must cite each ground once (%(grounds)s are cited more than once)"),
    N_("requested_state must differ from requesting_state"),
    N_("measures must each have an id of their own (%(ids)s is used more than once)"),
    N_("measures must each have an id of their own (%(ids)s are used more than once)"),
    N_("respond_by may not lie before received_on"),
    N_("%(fields)s and %(last)s must be empty when the decision is %(decision)s"),
    N_("%(field)s must be empty when the decision is %(decision)s"),
    N_("questions are required to request information"),
    N_("postpone_until is required to postpone: give the day the review resumes, and a note giving the reason"),
    N_("postpone_until is required to postpone: give the day the review resumes"),
    N_("note is required to postpone: give the reason"),
    N_("evidence must list at least one item when the outcome is executed"),
    N_("evidence items must each have an item_id of their own (%(ids)s is used more than once)"),
    N_("evidence items must each have an item_id of their own (%(ids)s are used more than once)"),
    # ---- what needs the clock or the reference data (domain.intake, api.transfers) ----
    N_("reference must begin with %(prefix)s (the code of the state that opens the case), such as "
       "%(prefix)s2026-0001"),
    N_("person.date_of_birth must lie in the past"),
    N_("sentence.start_date may not lie after %(day)s"),
    N_("%(field)s must be a code of ICCS 1.0, and %(code)s is not one: give a listed code, or leave iccs out"),
    N_("respond_by may not lie in the past"),
    N_("respond_by may not lie more than %(years)s years after received_on"),
    N_("previous_reference names no transfer case that %(authority)s may read: give the reference of an earlier, "
       "closed case"),
    N_("previous_reference names a case between %(first)s and %(second)s: the earlier case must be between "
       "%(sentencing)s and %(administering)s"),
    N_("previous_reference names a case still open (%(stage)s): a new case may follow only a closed one"),
    N_("state must be %(first)s or %(second)s, a state of this case"),
    N_("page_token: not a page token from a previous answer to this query"),
    # ---- the workflows' refusals (workflows/*.py validators, domain rules) ----
    # the checks every case shares (workflows.case: require_ready, require_stage, require_withdrawable)
    N_("the case is still being opened; try again shortly"),
    N_("the request is still being opened; try again shortly"),
    N_("the case is being withdrawn: no more acts are possible on it"),
    N_("the request is being withdrawn: no more acts are possible on it"),
    N_("the case is closed (%(stage)s): no more acts are possible on it"),
    N_("the request is closed (%(stage)s): no more acts are possible on it"),
    N_("the case has closed: no more acts are possible on it"),
    N_("the request has closed: no more acts are possible on it"),
    N_("the request or the measure has closed: no more acts are possible on it"),
    N_("the case closed before the act could take effect"),
    N_("the case is in stage %(stage)s: a declaration can be recorded only in stage awaiting_declaration"),
    N_("the case is in stage %(stage)s: a legal review can be recorded only in stage awaiting_legal_review"),
    N_("the case is in stage %(stage)s: a decision can be recorded only in stage awaiting_consents"),
    N_("the case is in stage %(stage)s: the handover can be confirmed only in stage awaiting_handover"),
    N_("the request is in stage %(stage)s: it can be reviewed only in stage under_review"),
    N_("the request is in stage %(stage)s: information is answered only in stage awaiting_information"),
    N_("the case is closed (%(stage)s): it can no longer be withdrawn"),
    N_("the request is closed (%(stage)s): it can no longer be withdrawn"),
    N_("the case is already being withdrawn"),
    N_("the request is already being withdrawn"),
    N_("the case is closing (a state has refused the transfer): it can no longer be withdrawn"),
    N_("the case is closing (the handover is confirmed): it can no longer be withdrawn"),
    N_("every measure has ended and the results are being sent: the request can no longer be withdrawn"),
    # a transfer (workflows.transfer, domain.transfer's rules of the case)
    N_("a decision for %(state)s is already recorded: each state decides once"),
    N_("the declaration is already recorded"),
    N_("the legal review is already recorded"),
    N_("the handover is already confirmed"),
    N_("the handover is still being arranged; try again shortly"),
    # grounds as workflows.rejection.or_list lists them: several (``a, b or c``) before one
    N_("grounds may cite only %(allowed)s or %(last)s in this case, not %(cited)s or %(other)s"),
    N_("grounds may cite only %(allowed)s or %(last)s in this case, not %(cited)s"),
    N_("completed_on may not lie before %(day)s, the day both states had consented"),
    N_("enforcement is stated by the administering state (%(administering)s) with its consent, not by %(state)s"),
    N_("converted_sentence may not aggravate the imposed sentence of %(years)s years, %(months)s months and "
       "%(days)s days"),
    N_("note is required when the handover took place elsewhere than the arranged point (%(place)s): say why"),
    # a request for assistance (workflows.assistance)
    N_("a review of this request is already recorded"),
    N_("the information asked for is already answered"),
    N_("grounds may cite only %(allowed)s or %(last)s under this treaty, not %(cited)s or %(other)s"),
    N_("grounds may cite only %(allowed)s or %(last)s under this treaty, not %(cited)s"),
    N_("grounds may cite only %(allowed)s under this treaty, not %(cited)s or %(other)s"),
    N_("grounds may cite only %(allowed)s under this treaty, not %(cited)s"),
    N_("postpone_until must lie in the future"),
    N_("dual_criminality (satisfied or not_satisfied) is required to accept: measures %(measures)s and %(last)s "
       "need a review of dual criminality"),
    N_("dual_criminality (satisfied or not_satisfied) is required to accept: measure %(measure)s needs a review "
       "of dual criminality"),
    # a measure (workflows.measure; api.assistance.MEASURE_CLOSED)
    N_("the result of measure %(measure)s is already reported"),
    N_("the authorisation of measure %(measure)s is already recorded"),
    N_("measure %(measure)s (%(kind)s) needs no authorisation: only a search or a seizure does"),
    N_("evidence of measure %(measure)s may take at most %(allowance)s bytes (its share of the request's "
       "%(budget)s): describe the items more briefly"),
    N_("measure %(measure)s is cancelled (the request was withdrawn): no more acts are possible on it"),
    N_("measure %(measure)s is in stage %(stage)s: it can be authorised only in stage awaiting_authorisation"),
    N_("measure %(measure)s is in stage %(stage)s: its result can be reported only in stage executing"),
    N_("measure %(measure)s is not permitted (%(grounds)s): no act is possible on it"),
    N_("measure %(measure)s is pending: no act is possible on it until the request is accepted"),
    # who handles an item (workflows.case: assign)
    N_("an item is assigned by a person signed in to the web application, not with a key"),
    N_("nothing of %(reference)s waits for %(authority)s now"),
    N_("%(reference)s is already assigned to %(user)s"),
    N_("%(reference)s is already unassigned"),
    # opening a case (api.found)
    N_("reference %(reference)s is already used by a different request: a new case needs a new reference, and an "
       "identical request answers the existing case"),
    # ---- who may act (403): workflows.rejection.only, as the API and the validators name them ----
    # a second authority of the same state (``or its prison service``) before the first alone
    N_("only the central authority of %(state)s (%(authority)s) or its prison service (%(prison)s) may record "
       "the declaration"),
    N_("only the central authority of %(state)s (%(authority)s) may record the declaration"),
    N_("only the central authority of %(state)s (%(authority)s) may record the legal review"),
    N_("only the central authority of %(state)s (%(authority)s) or the central authority of %(other)s "
       "(%(other_authority)s) may decide"),
    N_("only the central authority of %(state)s (%(authority)s) may decide for %(state)s"),
    N_("only the central authority of %(state)s (%(authority)s) or its prison service (%(prison)s) may confirm "
       "the handover"),
    N_("only the central authority of %(state)s (%(authority)s) may confirm the handover"),
    N_("only the central authority of %(state)s (%(authority)s) or its prison service (%(prison)s) may withdraw "
       "the case"),
    N_("only the central authority of %(state)s (%(authority)s) may withdraw the case"),
    N_("only the central authority of %(state)s (%(authority)s) may open a transfer case"),
    N_("only the central authority of %(state)s (%(authority)s) may file a request for assistance"),
    N_("only the central authority of %(state)s (%(authority)s) may review this request"),
    N_("only the central authority of %(state)s (%(authority)s) may answer the questions of this request"),
    N_("only the central authority of %(state)s (%(authority)s) may withdraw this request"),
    N_("only the court of %(state)s (%(court)s) may authorise measure %(measure)s"),
    N_("only the central authority of %(state)s (%(authority)s) may authorise measure %(measure)s"),
    N_("only the executing authority of %(state)s (%(executing)s) or its central authority (%(authority)s) may "
       "report the result of measure %(measure)s"),
    N_("only the central authority of %(state)s (%(authority)s) may report the result of measure %(measure)s"),
    # the API's own (api.transfers, api.assistance, api.found)
    N_("%(authority)s opens transfers of %(state)s only: sentencing_state or administering_state must be "
       "%(state)s"),
    N_("%(authority)s files requests of %(state)s only: requesting_state must be %(state)s"),
    N_("only central authorities list requests for assistance: %(authority)s finds the measures awaiting it in "
       "/v1/inbox"),
    N_("%(authority)s is a court: only central authorities and prison services take part in transfer cases"),
    N_("%(authority)s is an executing authority: only central authorities and prison services take part in "
       "transfer cases"),
    N_("%(authority)s is a prison service: only central authorities, courts and executing authorities take part "
       "in requests for assistance"),
    # the operators' credential (api.ops)
    N_("the codec endpoints take the operators' credential, not an authority's key"),
    N_("the metrics take the operators' credential, not an authority's key"),
    N_("the codec endpoints need the operators' credential (Authorization: Bearer <operator token>)"),
    N_("the metrics need the operators' credential (Authorization: Bearer <operator token>)"),
    N_("the codec endpoints need the operators' credential: the token does not hold"),
    N_("the codec endpoints cannot check the operator's token now: the identity provider cannot be reached"),
    # the web application's own (web.pages)
    N_("This form has expired or did not come from this site. Open the page again and send the form from there."),
    # ---- keys (401), what there is not (404), the body (400, 413, 415), the rate (429) ----
    N_("a valid API key is required, sent as Authorization: Bearer <key> (in dev mode the key of an authority is "
       "demo-<authority id>, such as demo-%(authority)s)"),
    N_("a valid API key is required, sent as Authorization: Bearer <key>"),
    N_("no such case: check the reference"),
    N_("no such transfer case: check the reference"),
    N_("no such request for assistance: check the reference"),
    N_("no such treaty: /v1/treaties lists the treaty ids"),
    N_("no such transfer case: %(reference)s is a request for assistance, see /v1/assistance-requests/"
       "%(reference)s"),
    N_("no such request for assistance: %(reference)s is a transfer case, see /v1/transfers/%(reference)s"),
    N_("no such measure: the measures of this request are %(measures)s and %(last)s"),
    N_("no such measure: the measures of this request are %(measure)s"),
    N_("no such case"),
    N_("no such measure"),
    N_("no such treaty"),
    N_("no such act"),
    N_("no such page"),
    N_("no identity provider is configured"),
    N_("no such path: /docs lists the paths of the API"),
    N_("the method %(method)s is not allowed on this path: use %(allowed)s"),
    N_("the method %(method)s is not allowed on this path"),
    N_("the body did not arrive"),
    N_("the body may not exceed %(bytes)s bytes"),
    N_("send the body as JSON, with Content-Type: application/json"),
    N_("too many requests for this authority"),
    # ---- the codec endpoints (api.codec; treatyflow.codec's refusal of a payload) ----
    N_("payloads: expected {\"payloads\": [{\"metadata\": {...}, \"data\": \"...\"}]}"),
    N_("payload encrypted with key %(key)s, which is not configured"),
    N_("a payload could not be decrypted"),
    # ---- the case file (api.documents; workflows.case: add_document) ----
    N_("file is required: send the document as multipart/form-data, with one field file and the fields type and "
       "title"),
    N_("file is required: send the document in the field file"),
    N_("file: send exactly one file"),
    N_("%(field)s: only the field file may hold a file"),
    N_("a field is not a field of a document upload; send file, %(fields)s"),
    N_("%(field)s is not a field of a document upload; send file, %(fields)s"),
    N_("%(field)s is given twice"),
    N_("%(field)s is too long"),
    N_("file may not exceed %(bytes)s bytes"),
    N_("file must be a PDF, PNG, JPEG, TIFF, UTF-8 plain text, OpenDocument text or Office Open XML (docx) "
       "document"),
    N_("type %(type)s is written by the system only; give one of %(types)s"),
    N_("language must be an ISO 639-1 code of two lower-case letters, such as ru"),
    N_("measure_id is for a document of a request for assistance's measure"),
    N_("measure_id names no measure of this request: give one of %(measures)s"),
    N_("%(authority)s adds documents only to the measures routed to it or that it authorises, and this request "
       "has none"),
    N_("%(authority)s adds documents only to the measures routed to it or that it authorises: give the measure_id "
       "of one of them"),
    N_("the case is being withdrawn: no more documents can be added"),
    N_("the request is being withdrawn: no more documents can be added"),
    N_("the case is closed (%(stage)s): no more documents can be added"),
    N_("the request is closed (%(stage)s): no more documents can be added"),
    N_("document %(document)s is already recorded"),
    N_("the case %(reference)s has no document %(document)s"),
    N_("the request %(reference)s has no document %(document)s"),
    N_("the content of document %(document)s is not in the store"),
    N_("%(field)s is required: give the digest of the evidence, or the document_id of an evidence document of this "
       "measure"),
    N_("%(field)s is required: the digest of the evidence document"),
    N_("the document store cannot be reached; try again"),
    N_("the document cannot be read now; try again"),
    # ---- many cases at once (api.batch), and a list of applicants (domain.applicants: FileRefused) ----
    N_("only the central authority of %(state)s (%(authority)s) may open transfer cases"),
    N_("send the batch as application/x-ndjson: one JSON object a line"),
    N_("the batch is empty: send one transfer request a line"),
    N_("a batch may hold at most %(most)s lines; this one holds %(count)s: send it in parts"),
    N_("a batch may not exceed %(megabytes)s MiB: send it in parts"),
    N_("the line is empty: send one JSON object a line"),
    N_("the line is not valid JSON: send one JSON object a line, in UTF-8"),
    N_("the case could not be opened in time; send the batch again: the lines already opened then answer existing"),
    N_("the file is larger than %(megabytes)s MiB: split it into files of at most %(most)s cases"),
    N_("the file holds more than %(most)s cases: split it into files of at most %(most)s"),
    N_("the file is empty: its first row must hold the template's column headings"),
    N_("the file has columns the template does not: %(columns)s — use the template's headings (docs/api.md, "
       "\"Bulk intake\")"),
    N_("the file has the same column twice: %(first)s and %(second)s"),
    N_("the file has no column %(columns)s: every case needs it (the template has them all)"),
    N_("the file is neither XLSX nor CSV in UTF-8 or Windows-1251"),
    N_("the file is neither XLSX nor CSV: save it from the template as .xlsx or .csv"),
    N_("the CSV file cannot be read: a cell is too long or its quotes do not close"),
    N_("the XLSX file cannot be read: its sheet or a cell is damaged; save it again from the spreadsheet"),
    N_("the worksheet has more than %(count)s rows, blank ones included: delete the rows below the last case"),
    N_("the XLSX file unpacks to more than 64 MiB: it cannot be a list of %(most)s cases"),
    # ---- try again (503) ----
    N_("the case could not answer in time; try again"),
    N_("the case could not take the act; try again"),
    N_("the case cannot answer at the moment; the operators have been alerted; try again later"),
    N_("the request could not be completed; try again later"),
    N_("the statistics could not be counted in time; try again"),
)
PART = re.compile(r"%\((\w+)\)s")
VALUE = r"(?:(?!; ).)+?"  # a part's value: anything but the "; " that joins the problems of a 422
JOINT = "; "


@lru_cache(maxsize=None)
def patterns() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in TEMPLATES:
        pieces = PART.split(template)  # text, name, text, name, ...
        named: set[str] = set()
        regex = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                regex.append(re.escape(piece))
            elif piece in named:  # the same part again: the same value
                regex.append(f"(?P={piece})")
            else:
                named.add(piece)
                regex.append(f"(?P<{piece}>{VALUE})")
        out.append((re.compile(f"^{''.join(regex)}$", re.S), template))
    return out


def template_of(message: str) -> tuple[str, dict[str, str]] | None:
    """The first template ``message`` matches, with the values of its parts; None when none does."""
    for regex, template in patterns():
        if match := regex.match(message):
            return template, match.groupdict()
    return None


def translated(message: str, lang: Language) -> str | None:
    found = template_of(message)
    return lang.gettext(found[0], **found[1]) if found else None


def in_language(message: str, lang: Language) -> str:
    """``message`` of the API in ``lang`` when a template knows it; else as the API said it. A 422's
    problems joined by ``"; "`` (and a page's problems of one field, joined the same way) are
    translated one by one; a message that has ``"; "`` of its own (``...; try again``) is found as
    the longest run of parts that a template knows."""
    whole = translated(message, lang)
    if whole is not None:
        return whole
    parts = message.split(JOINT)
    if len(parts) == 1:
        return message
    out, i = [], 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            if (text := translated(JOINT.join(parts[i:j]), lang)) is not None:
                out.append(text)
                i = j
                break
        else:
            out.append(parts[i])
            i += 1
    return JOINT.join(out)
