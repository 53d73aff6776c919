"""Every error message a person reads says what to do, in plain words: the codes allowed, who may
act (by role, state and authority id), the stage an act needs, the dev-mode key form (in dev mode
only), and a hint when a reference is a case of the other kind that the caller may read.

A table over the messages the API can send — each refusal of api/ over real HTTP, a representative
of each pydantic error type of the request models and the query parameters, each rejection of
the workflows' update validators (on workflow objects set up in the state that refuses) and the
503s of api/errors.py — checks each message against the conventions below; a set of key examples
must read exactly as intended. The literal words of every message call site in api/, workflows/
and domain/ are checked too, for the branches only a race reaches.

The conventions of ``error.message``:
- it begins with a lower-case letter (a field, an authority id, a word), never with a code;
  it has no final full stop, no blank at either end and no double blank;
- a 422 is its problems joined by ``; ``, and each problem begins with its field (as the client
  wrote it: ``person.citizenships.0``, ``page_size``) or with ``the body``;
- a 403 says who may: it contains ``only``;
- no regular expression, no internal name (pydantic's and Temporal's words, Python types, role
  codes such as ``executing_authority`` in prose: roles are written in words), no ``a`` before
  a vowel, no doubled word. Codes the client sends (stages, grounds, fields) keep their spelling."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio import workflow as temporal_workflow
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api import errors
from api.app import create_app
from api.engine import act_refused
from api.keys import key_hash
from api.ops import Metrics
from domain.assistance import (
    AssistanceRequest, AssistanceWithdrawal, Authorisation, InformationAnswer, MeasureResult, MeasureView, Review,
)
from domain.case import RequestSeal
from domain.parties import StateAuthorities
from domain.reference import reference
from domain.transfer import (
    Declaration, Decision, Handover, HandoverConfirmation, LegalReview, RecordedDecision, Term, TransferRequest,
    Withdrawal,
)
from tests.api import helpers
from tests.api.helpers import case_at, closed, today
from tests.support import key, poll, serve
from treatyflow.samples import assistance_body, transfer_body
from workflows import rejection
from workflows.assistance import AssistanceWorkflow
from workflows.measure import EVIDENCE_BUDGET, MeasureOrder, MeasureWorkflow
from workflows.transfer import TransferWorkflow

http = helpers.http  # the fixture: one paced client for the module

ROOT = Path(__file__).resolve().parents[2]
FUTURE = (today() + timedelta(days=3)).isoformat()
DEV_401 = ("a valid API key is required, sent as Authorization: Bearer <key> (in dev mode the key of an "
           "authority is demo-<authority id>, such as demo-kz-gpo)")
DATE = "must be a date in the form YYYY-MM-DD, such as 2026-03-01"
STATE_CODE = "must be a two-letter country code in capitals, such as UZ"


# ---- the conventions ------------------------------------------------------------------------------

REGEX = re.compile(r"[\^$]|\[A-Z|\[a-z|\\d|\\w|\{\d")
INTERNALS = ("String should", "Input should", "List should", "Value error", "Field required", "Extra inputs",
             "ApplicationError", "WorkflowUpdate", "Workflow", "workflow", "Traceback", "pydantic", "temporalio",
             "None", "dict", "list[", "<class", "['", "']", "{'", "_authority", "_service", "Exception")
A_BEFORE_VOWEL = re.compile(r"\ba (?=[aeiAEI][a-z])")
AN_BEFORE_CONSONANT = re.compile(r"\ban (?=[b-df-hj-np-tv-z])")
DOUBLED = re.compile(r"\b(\w+)\s+\1\b", re.I)


def words_problems(text: str) -> list[str]:
    """What is wrong with the words of a message, or of the literal part of a message template."""
    found = []
    if REGEX.search(text):
        found.append("a regular expression")
    found += [f"internal name {word!r}" for word in INTERNALS if word in text]
    if A_BEFORE_VOWEL.search(text) or AN_BEFORE_CONSONANT.search(text):
        found.append("a wrong article (a/an)")
    if (doubled := DOUBLED.search(text)) is not None:
        found.append(f"a doubled word {doubled.group(0)!r}")
    if "  " in text:
        found.append("a double blank")
    return found


def message_problems(message: Any, status: int | None = None, fields: list[str] | None = None) -> list[str]:
    """What is wrong with an ``error.message`` (empty: nothing)."""
    if not isinstance(message, str) or not message:
        return ["no message"]
    found = words_problems(message)
    if message != message.strip():
        found.append("a blank at an end")
    if message.endswith("."):
        found.append("a final full stop")
    if not message[:1].islower():
        found.append("it does not begin with a lower-case letter")
    if status == 422 and fields:
        subjects = {f for f in fields} | {errors.subject(f) for f in fields} | {"the body"}
        for part in message.split("; "):
            if not any(part == s or part.startswith((s + " ", s + ":", s + ",")) for s in subjects):
                found.append(f"the problem {part!r} does not begin with its field ({fields})")
    if status == 403 and not re.search(r"\bonly\b", message):
        found.append("a 403 that does not say who may")
    return found


def test_the_conventions_catch_the_messages_of_the_issue():
    for bad in ("String should match pattern '^[A-Z]{2}$'", "a executing_authority has no part in transfers",
                "Input should be 'consent' or 'refuse'", "Field required", "grounds ['x'] are not open",
                "the the case", "No such case.", "state: None"):
        assert message_problems(bad), bad
    assert message_problems("uz-gpo may not withdraw the case in this case", 403)  # who may?
    assert message_problems("state must be UZ", 422, ["person.citizenships"])  # not its field
    assert not message_problems("state must be a two-letter country code in capitals, such as UZ", 422, ["state"])
    assert not message_problems("only the central authority of UZ (uz-gpo) may decide for UZ", 403)


# ---- the cases the table needs ----------------------------------------------------------------------


def setting(body: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with values at dotted paths (list indices as numbers); ``...`` deletes."""
    import copy

    body = copy.deepcopy(body)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        index: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[index]
        else:
            node[index] = value
    return body


def evidence(n: int = 1, **changes: Any) -> list[dict[str, Any]]:
    return [{"item_id": f"e{i}", "description": f"item {i}", "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
             "collected_on": today().isoformat(), **changes} for i in range(n)]


async def measures_in(http: httpx.AsyncClient, reference: str, stages: dict[str, str]) -> dict[str, Any]:
    """The request's view once its measures are in ``stages`` (they start by their own workflows)."""
    async def read() -> dict[str, Any]:
        return (await http.get(f"/v1/assistance-requests/{reference}", headers=key("fr-moj"))).json()

    def arrived(view: dict[str, Any]) -> bool:
        return all(m["stage"] == stages.get(m["id"], m["stage"]) for m in view["measures"])

    seen = await poll(read, arrived, timeout=10)
    assert arrived(seen), seen
    return seen


async def file_request(http: httpx.AsyncClient, **changes: Any) -> str:
    body = assistance_body(**changes)
    r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
    assert r.status_code == 201, r.text
    return body["reference"]


async def request_at(http: httpx.AsyncClient, stage: str) -> str:
    """A fresh FR→KZ request (m1 identify_bank_accounts for kz-afm, m2 search for kz-court then
    kz-police, m3 interrogation for kz-police) in ``stage``: ``under_review``,
    ``awaiting_information``, ``executing`` (m2 awaiting authorisation, m1 and m3 executing),
    ``not_permitted`` (its search not permitted: the reviewer found no dual criminality; m1 and m3
    executing),
    ``needs_review`` (under review, dual criminality of its search to be settled), ``withdrawn``
    (closed, once executing) or ``cancelled`` (withdrawn while executing)."""
    if stage == "not_permitted":
        # no shipped offence code is simply not criminal in KZ (0209 goes to review there): the
        # reviewer settles an unresolved offence as not criminal, which leaves the search not permitted
        reference = await file_request(http, offences=[{"article": "9999", "description": "unmapped"}])
        r = await http.post(f"/v1/assistance-requests/{reference}/review", headers=key("kz-gpo"),
                            json={"decision": "accept", "dual_criminality": "not_satisfied"})
        assert r.status_code == 200, r.text
        assert {m["id"]: m["stage"] for m in r.json()["measures"]}["m2"] == "not_permitted", r.text
        return reference
    if stage == "needs_review":
        reference = await file_request(http, offences=[{"article": "9999", "description": "unmapped"}])
        view = (await http.get(f"/v1/assistance-requests/{reference}", headers=key("fr-moj"))).json()
        assert {m["id"]: m["dual_criminality"] for m in view["measures"]}["m2"] == "needs_review", view
        return reference
    reference = await file_request(http)
    if stage == "under_review":
        return reference
    path = f"/v1/assistance-requests/{reference}"
    if stage == "awaiting_information":
        r = await http.post(f"{path}/review", headers=key("kz-gpo"),
                            json={"decision": "request_information", "questions": "Which accounts?"})
        assert r.status_code == 200 and r.json()["stage"] == stage, r.text
        return reference
    r = await http.post(f"{path}/review", headers=key("kz-gpo"), json={"decision": "accept"})
    assert r.status_code == 200 and r.json()["stage"] == "executing", r.text
    await measures_in(http, reference, {"m1": "executing", "m2": "awaiting_authorisation", "m3": "executing"})
    if stage == "executing":
        return reference
    assert stage in ("withdrawn", "cancelled"), stage
    r = await http.post(f"{path}/withdrawal", headers=key("fr-moj"), json={"reason": "no longer needed"})
    assert r.status_code == 200 and r.json()["stage"] == "withdrawn", r.text
    return reference


class Cases:
    """One case per stage for the whole module (an act refused changes nothing)."""

    def __init__(self) -> None:
        self.made: dict[tuple[str, str], str] = {}

    async def transfer(self, http: httpx.AsyncClient, stage: str) -> str:
        if ("transfer", stage) not in self.made:
            self.made[("transfer", stage)] = await case_at(http, stage)
        return self.made[("transfer", stage)]

    async def request(self, http: httpx.AsyncClient, stage: str) -> str:
        if ("assistance", stage) not in self.made:
            self.made[("assistance", stage)] = await request_at(http, stage)
        return self.made[("assistance", stage)]


CASES = Cases()
Send = Callable[[httpx.AsyncClient, dict[str, Any]], Awaitable[httpx.Response]]


@dataclasses.dataclass
class Row:
    id: str
    status: int
    send: Send
    exact: str | None = None  # formatted with what ``send`` noted (``{ref}``, ``{today}``)
    contains: tuple[str, ...] = ()


def open_transfer(changes: dict[str, Any], by: str = "kz-gpo") -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        return await http.post("/v1/transfers", json=setting(transfer_body(), changes), headers=key(by))
    return send


def file_assistance(changes: dict[str, Any], by: str = "fr-moj") -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        return await http.post("/v1/assistance-requests", json=setting(assistance_body(), changes), headers=key(by))
    return send


def get(path: str, by: str | None = "kz-gpo", headers: dict[str, str] | None = None) -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        return await http.get(path, headers=headers if headers is not None else key(by) if by else {})
    return send


def transfer_act(stage: str, act: str, by: str, body: dict[str, Any] | None) -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        noted["ref"] = reference = await CASES.transfer(http, stage)
        return await http.post(f"/v1/transfers/{reference}/{act}", json=body, headers=key(by))
    return send


def request_act(stage: str, act: str, by: str, body: dict[str, Any] | None) -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        noted["ref"] = reference = await CASES.request(http, stage)
        return await http.post(f"/v1/assistance-requests/{reference}/{act}", json=body, headers=key(by))
    return send


def raw(path: str, content: bytes | None, content_type: str | None, by: str = "kz-gpo") -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        headers = {**key(by), **({"Content-Type": content_type} if content_type else {})}
        return await http.post(path, content=content, headers=headers)
    return send


def reused(kind: str) -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        if kind == "transfer":
            body, by, path = transfer_body(), "kz-gpo", "/v1/transfers"
            different = {**body, "received_on": "2026-11-19"}
        else:
            body, by, path = assistance_body(), "fr-moj", "/v1/assistance-requests"
            different = {**body, "purpose": "another purpose"}
        noted["ref"] = body["reference"]
        assert (await http.post(path, json=body, headers=key(by))).status_code == 201
        return await http.post(path, json=different, headers=key(by))
    return send


def on_closed(kind: str) -> Send:
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        if kind == "transfer":
            reference = await CASES.transfer(http, "refused")
            path = f"/v1/transfers/{reference}/withdrawal"
            body, by = {"withdrawn_on": today().isoformat(), "reason": "x"}, "kz-gpo"
        else:
            reference = await CASES.request(http, "withdrawn")
            path = f"/v1/assistance-requests/{reference}/review"
            body, by = {"decision": "accept"}, "kz-gpo"
        await closed_case(kind, reference)
        return await http.post(path, json=body, headers=key(by))
    return send


CLIENT: dict[str, Any] = {}  # the dev client, for rows that wait for a case to close


async def closed_case(kind: str, reference: str) -> None:
    if kind == "transfer":
        await closed(CLIENT["client"], reference)
    else:
        await CLIENT["client"].get_workflow_handle(f"assistance:{reference}").result()


def twice(stage: str, act: str, by: str, body: dict[str, Any]) -> Send:
    """The same act again on a fresh case: the second is a conflict."""
    async def send(http: httpx.AsyncClient, noted: dict[str, Any]) -> httpx.Response:
        reference = await case_at(http, stage)
        first = await http.post(f"/v1/transfers/{reference}/{act}", json=body, headers=key(by))
        assert first.status_code == 200, first.text
        return await http.post(f"/v1/transfers/{reference}/{act}", json=body, headers=key(by))
    return send


ON = today().isoformat()
CONSENT = {"state": "UZ", "decision": "consent"}
DECLARATION = {"signed_on": ON, "voluntary": True, "informed_of_consequences": True}
WITHDRAWAL = {"withdrawn_on": ON, "reason": "the person withdrew consent"}
HANDOVER = {"completed_on": ON, "place": "Zhibek Zholy"}

ROWS: list[Row] = [
    # -- who is calling
    Row("no key", 401, get("/v1/treaties", by=None), DEV_401),
    Row("unknown key", 401, get("/v1/treaties", headers={"Authorization": "Bearer demo-nobody"}), DEV_401),
    Row("not a bearer key", 401, get("/v1/treaties", headers={"Authorization": "Basic a2V5"}), DEV_401),
    # -- paths
    Row("no such path", 404, get("/v1/nothing-here"), "no such path: /docs lists the paths of the API"),
    Row("a method the path does not take", 405, lambda http, _: http.delete("/v1/treaties", headers=key("kz-gpo")),
        "the method DELETE is not allowed on this path: use GET"),
    Row("no such treaty", 404, get("/v1/treaties/no-such-treaty"),
        "no such treaty: /v1/treaties lists the treaty ids"),
    Row("no such transfer", 404, get("/v1/transfers/KZ-never-opened"), "no such transfer case: check the reference"),
    Row("no such request", 404, get("/v1/assistance-requests/FR-never-opened", by="fr-moj"),
        "no such request for assistance: check the reference"),
    Row("a reference no case can have", 404, get("/v1/transfers/a'b"), "no such transfer case: check the reference"),
    # -- the body
    Row("not declared as JSON", 415, raw("/v1/transfers", b"reference=KZ-1", "application/x-www-form-urlencoded"),
        "send the body as JSON, with Content-Type: application/json"),
    Row("no content type", 415, raw("/v1/transfers", None, None),
        "send the body as JSON, with Content-Type: application/json"),
    Row("broken JSON", 422, raw("/v1/transfers", b"{not json", "application/json"),
        "the body is not valid JSON: send one JSON object in UTF-8"),
    Row("not UTF-8", 422, raw("/v1/transfers", b"\xff\xfe{}", "application/json"),
        "the body is not valid JSON: send one JSON object in UTF-8"),
    Row("a JSON array", 422, raw("/v1/transfers", b"[1, 2]", "application/json"), "the body must be a JSON object"),
    Row("JSON null", 422, raw("/v1/transfers", b"null", "application/json"), "the body must be a JSON object"),
    Row("too large", 413, raw("/v1/transfers", b" " * (1024 * 1024 + 1), "application/json"),
        "the body may not exceed 1048576 bytes"),
    # -- pydantic's errors on the transfer request, one of each type
    Row("lower-case state code", 422, open_transfer({"sentencing_state": "kz"}), f"sentencing_state {STATE_CODE}"),
    Row("a number for a code", 422, open_transfer({"administering_state": 5}), "administering_state must be a string"),
    Row("bad reference", 422, open_transfer({"reference": "KZ 1"}),
        "reference must be 3 to 64 letters, digits, dots, hyphens or underscores, such as KZ-2026-0001"),
    Row("bad date", 422, open_transfer({"received_on": "2026-13-01"}), f"received_on {DATE}"),
    Row("a number for a date", 422, open_transfer({"person.date_of_birth": 19850302}), f"person.date_of_birth {DATE}"),
    Row("a date and time for a date", 422, open_transfer({"judgment.date": "2024-05-10T10:00:00"}),
        f"judgment.date {DATE}"),
    Row("not a list", 422, open_transfer({"person.citizenships": "UZ"}), "person.citizenships must be a list"),
    Row("an empty list", 422, open_transfer({"person.citizenships": []}), "person.citizenships may not be empty"),
    Row("a code in a list", 422, open_transfer({"person.citizenships": ["uz"]}), f"person.citizenships.0 {STATE_CODE}"),
    Row("too many in a list", 422, open_transfer({"person.citizenships": ["UZ"] * 21}),
        "person.citizenships may have at most 20 citizenships"),
    Row("empty name", 422, open_transfer({"person.full_name": " "}), "person.full_name may not be empty"),
    Row("long name", 422, open_transfer({"person.full_name": "x" * 301}),
        "person.full_name may have at most 300 characters"),
    Row("missing field", 422, open_transfer({"judgment.court": ...}), "judgment.court is required"),
    Row("missing object", 422, open_transfer({"person": ...}), "person is required"),
    Row("not a boolean", 422, open_transfer({"judgment.final": "maybe"}), "judgment.final must be true or false"),
    Row("long article", 422, open_transfer({"judgment.offences.0.article": "1" * 33}),
        "judgment.offences.0.article may have at most 32 characters"),
    Row("malformed ICCS code", 422, open_transfer({"judgment.offences.0.iccs": "05A2"}),
        "judgment.offences.0.iccs must be an ICCS code of 2, 4, 5 or 6 digits, such as 0501"),
    Row("unknown ICCS code", 422, open_transfer({"judgment.offences.0.iccs": "0599"}),
        "judgment.offences.0.iccs must be a code of ICCS 1.0, and 0599 is not one: give a listed code, or leave "
        "iccs out"),
    Row("not a whole number", 422, open_transfer({"sentence.years": "five"}), "sentence.years must be a whole number"),
    Row("a fraction", 422, open_transfer({"sentence.days": 1.5}), "sentence.days must be a whole number"),
    Row("negative", 422, open_transfer({"sentence.months": -1}), "sentence.months may not be negative"),
    Row("too many years", 422, open_transfer({"sentence.years": 101}), "sentence.years may be at most 100 years"),
    Row("indeterminate with a term", 422, open_transfer({"sentence.indeterminate": True}),
        "sentence.years: an indeterminate sentence has no term: send years, months and days as 0"),
    Row("determinate without a term", 422, open_transfer({"sentence.years": 0}),
        "sentence.years: a determinate sentence needs a term: send years, months or days (or set indeterminate "
        "to true)"),
    Row("before 1900", 422, open_transfer({"sentence.start_date": "1899-12-31"}),
        "sentence.start_date must be 1900-01-01 or later"),
    Row("far ahead", 422, open_transfer({"sentence.start_date": "2999-01-01"}),
        f"sentence.start_date may not lie after {date(today().year + 100, 1, 1)}"),
    Row("bad amount and currency", 422, open_transfer({"financial_obligations": [
        {"amount": "lots", "currency": "kzt", "settled": False}]}),
        'financial_obligations.0.amount must be an amount written as a string, such as "1500.00": up to 15 '
        "digits, then up to 4 decimals after a point; financial_obligations.0.currency must be a three-letter "
        "currency code in capitals, such as KZT"),
    Row("not one of the codes", 422, open_transfer({"pending_proceedings": [{"kind": "appeal"}]}),
        "pending_proceedings.0.kind must be one of investigation, trial"),
    Row("not an object", 422, open_transfer({"declaration": "yes"}), "declaration must be an object"),
    Row("not voluntary", 422, open_transfer({"declaration.voluntary": False}),
        "declaration.voluntary must be true: a declaration counts only when the person made it voluntarily and "
        "informed of its consequences"),
    Row("unknown field", 422, open_transfer({"colour": "red"}), "colour is not a field of this body: remove it"),
    Row("unknown previous case", 422, open_transfer({"previous_reference": "KZ-NO-SUCH-CASE"}),
        "previous_reference names no transfer case that kz-gpo may read: give the reference of an earlier, closed "
        "case"),
    Row("who asked, misspelt", 422, open_transfer({"initiated_by": "person"}),
        "initiated_by must be one of sentenced_person, sentencing_state, administering_state"),
    Row("unknown nested field", 422, open_transfer({"person.nickname": "Azi"}),
        "person.nickname is not a field of this body: remove it"),
    Row("equal states", 422, open_transfer({"administering_state": "KZ"}),
        "administering_state must differ from sentencing_state"),
    Row("judgment after receipt", 422, open_transfer({"received_on": "2024-05-01"}),
        "judgment.date may not lie after received_on"),
    Row("received in the future", 422, open_transfer({"received_on": FUTURE}), "received_on may not lie in the future"),
    Row("born today", 422, open_transfer({"person.date_of_birth": ON}), "person.date_of_birth must lie in the past"),
    Row("signed in the future", 422, open_transfer({"declaration.signed_on": FUTURE}),
        "declaration.signed_on may not lie in the future"),
    Row("another state's reference", 422, open_transfer({"reference": "UZ-2026-0001"}),
        "reference must begin with KZ- (the code of the state that opens the case), such as KZ-2026-0001"),
    Row("many problems at once", 422, open_transfer({"colour": "red", "person.citizenships": []}),
        contains=("colour is not a field of this body: remove it", "person.citizenships may not be empty")),
    # -- the request for assistance
    Row("bad measure id", 422, file_assistance({"measures.0.id": "m 1"}),
        "measures.0.id must be 1 to 32 letters, digits, hyphens or underscores, such as m1"),
    Row("unknown measure kind", 422, file_assistance({"measures.0.kind": "torture"}),
        "measures.0.kind must be one of search, seizure, inspection, identify_bank_accounts, interrogation, "
        "information_exchange"),
    Row("no measure", 422, file_assistance({"measures": []}), "measures may not be empty"),
    Row("a measure id twice", 422, file_assistance({"measures.1.id": "m1"}),
        "measures must each have an id of their own (m1 is used more than once)"),
    Row("the same state twice", 422, file_assistance({"requested_state": "FR"}),
        "requested_state must differ from requesting_state"),
    Row("respond_by before receipt", 422, file_assistance({"respond_by": "2026-10-01"}),
        "respond_by may not lie before received_on"),
    Row("respond_by in the past", 422, file_assistance({"received_on": (today() - timedelta(days=60)).isoformat(),
                                                        "respond_by": (today() - timedelta(days=1)).isoformat()}),
        "respond_by may not lie in the past"),
    Row("respond_by too late", 422, file_assistance({"respond_by": "2040-01-01"}),
        "respond_by may not lie more than 10 years after received_on"),
    Row("urgent not a boolean", 422, file_assistance({"urgent": 1}), "urgent must be true or false"),
    Row("unknown ICCS code of a request", 422, file_assistance({"offences.0.iccs": "0599"}),
        "offences.0.iccs must be a code of ICCS 1.0, and 0599 is not one: give a listed code, or leave iccs out"),
    Row("empty purpose", 422, file_assistance({"purpose": ""}), "purpose may not be empty"),
    # -- query parameters
    Row("page_size 0", 422, get("/v1/transfers?page_size=0"), "page_size must be at least 1"),
    Row("page_size too large", 422, get("/v1/transfers?page_size=1000"), "page_size must be at most 200"),
    Row("page_size not a number", 422, get("/v1/inbox?page_size=ten"), "page_size must be a whole number"),
    Row("unknown stage", 422, get("/v1/transfers?stage=nope"),
        "stage must be one of awaiting_declaration, checking_eligibility, awaiting_legal_review, awaiting_consents, "
        "awaiting_handover, transferred, refused, withdrawn, expired"),
    Row("lower-case state parameter", 422, get("/v1/assistance-requests?state=fr"), f"state {STATE_CODE}"),
    Row("forged page token", 422, get("/v1/transfers?page_token=YWJj"),
        "page_token: not a page token from a previous answer to this query"),
    # -- roles and states
    Row("a prison service opens", 403, open_transfer({}, by="kz-penal"),
        "only the central authority of KZ (kz-gpo) may open a transfer case"),
    Row("a third state opens", 403, open_transfer({}, by="fr-moj"),
        "fr-moj opens transfers of FR only: sentencing_state or administering_state must be FR"),
    Row("a court files", 403, file_assistance({}, by="kz-court"),
        "only the central authority of KZ (kz-gpo) may file a request for assistance"),
    Row("another state files", 403, file_assistance({}, by="kz-gpo"),
        "kz-gpo files requests of KZ only: requesting_state must be KZ"),
    Row("a court lists requests", 403, get("/v1/assistance-requests", by="kz-court"),
        "only central authorities list requests for assistance: kz-court finds the measures awaiting it in /v1/inbox"),
    Row("an executing authority lists transfers", 403, get("/v1/transfers", by="kz-afm"),
        "kz-afm is an executing authority: only central authorities and prison services take part in transfer cases"),
    Row("a court reads a transfer", 403, get("/v1/transfers/KZ-anything", by="kz-court"),
        "kz-court is a court: only central authorities and prison services take part in transfer cases"),
    Row("a prison service reads a request", 403, get("/v1/assistance-requests/FR-anything", by="kz-penal"),
        "kz-penal is a prison service: only central authorities, courts and executing authorities take part in "
        "requests for assistance"),
    # -- acts on a transfer
    Row("declaration by the other state", 403, transfer_act("awaiting_declaration", "declaration", "uz-gpo",
                                                            DECLARATION),
        "only the central authority of KZ (kz-gpo) or its prison service (kz-penal) may record the declaration"),
    Row("legal review by the other state", 403, transfer_act("awaiting_legal_review", "legal-review", "kz-gpo",
                                                             {"dual_criminality": "satisfied"}),
        "only the central authority of UZ (uz-gpo) may record the legal review"),
    Row("decision by a prison service", 403, transfer_act("awaiting_consents", "decisions", "kz-penal", CONSENT),
        "only the central authority of KZ (kz-gpo) or the central authority of UZ (uz-gpo) may decide"),
    Row("decision for the other state", 403, transfer_act("awaiting_consents", "decisions", "kz-gpo", CONSENT),
        "only the central authority of UZ (uz-gpo) may decide for UZ"),
    Row("handover by the other state", 403, transfer_act("awaiting_handover", "handover", "kz-gpo", HANDOVER),
        "only the central authority of UZ (uz-gpo) or its prison service (uz-penal) may confirm the handover"),
    Row("withdrawal by the other state", 403, transfer_act("awaiting_consents", "withdrawal", "uz-penal", WITHDRAWAL),
        "only the central authority of KZ (kz-gpo) or its prison service (kz-penal) may withdraw the case"),
    Row("decision for a third state", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                                        {"state": "FR", "decision": "consent"}),
        "state must be KZ or UZ, a state of this case"),
    Row("converted without a term", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                                      {"state": "UZ", "decision": "consent", "enforcement": "converted"}),
        "converted_sentence is required when enforcement is converted: give the converted term in years, months "
        "and days"),
    Row("enforcement by the sentencing state", 422, transfer_act(
        "awaiting_consents", "decisions", "kz-gpo", {"state": "KZ", "decision": "consent", "enforcement": "continued"}),
        "enforcement is stated by the administering state (UZ) with its consent, not by KZ"),
    Row("aggravating conversion", 422, transfer_act(
        "awaiting_consents", "decisions", "uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "converted",
                                                     "converted_sentence": {"years": 6}}),
        "converted_sentence may not aggravate the imposed sentence of 5 years, 0 months and 0 days"),
    Row("handover elsewhere without a note", 422, transfer_act(
        "awaiting_handover", "handover", "uz-penal", {"completed_on": today().isoformat(), "place": "Tashkent airport"}),
        "note is required when the handover took place elsewhere than the arranged point (Zhibek Zholy (KZ) \u2013 "
        "Gishtkuprik (UZ) border crossing): say why"),
    Row("lower-case decision state", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                                       {"state": "uz", "decision": "consent"}), f"state {STATE_CODE}"),
    Row("unknown decision", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                              {"state": "UZ", "decision": "maybe"}),
        "decision must be one of consent, refuse"),
    Row("refusal without grounds", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                                     {"state": "UZ", "decision": "refuse"}),
        "grounds are required to refuse: cite at least one"),
    Row("consent with grounds", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo",
                                                  {**CONSENT, "grounds": ["state_declined"]}),
        "grounds must be empty to consent"),
    Row("a ground twice", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo", {
        "state": "UZ", "decision": "refuse", "grounds": ["state_declined", "state_declined"]}),
        "grounds must cite each ground once (state_declined is cited more than once)"),
    Row("a ground the treaty does not list", 422, transfer_act("awaiting_consents", "decisions", "uz-gpo", {
        "state": "UZ", "decision": "refuse", "grounds": ["judgment_not_final"]}),
        "grounds may cite only not_national, state_declined, sovereignty_or_security, contrary_to_national_law, "
        "outstanding_financial_obligations or proceedings_pending in this case, not judgment_not_final"),
    Row("declaration not awaited", 409, transfer_act("awaiting_consents", "declaration", "kz-penal", DECLARATION),
        "the case is in stage awaiting_consents: a declaration can be recorded only in stage awaiting_declaration"),
    Row("legal review not awaited", 409, transfer_act("awaiting_consents", "legal-review", "uz-gpo",
                                                      {"dual_criminality": "satisfied"}),
        "the case is in stage awaiting_consents: a legal review can be recorded only in stage awaiting_legal_review"),
    Row("handover not awaited", 409, transfer_act("awaiting_consents", "handover", "uz-penal", HANDOVER),
        "the case is in stage awaiting_consents: the handover can be confirmed only in stage awaiting_handover"),
    Row("decision not awaited", 409, transfer_act("awaiting_handover", "decisions", "uz-gpo", CONSENT),
        "the case is in stage awaiting_handover: a decision can be recorded only in stage awaiting_consents"),
    Row("a second decision", 409, twice("awaiting_consents", "decisions", "uz-gpo", CONSENT),
        "a decision for UZ is already recorded: each state decides once"),
    Row("handover before the consents", 422, transfer_act("awaiting_handover", "handover", "uz-penal", {
        **HANDOVER, "completed_on": (today() - timedelta(days=30)).isoformat()}),
        "completed_on may not lie before {today}, the day both states had consented"),
    Row("withdrawn in the future", 422, transfer_act("awaiting_consents", "withdrawal", "kz-gpo",
                                                     {**WITHDRAWAL, "withdrawn_on": FUTURE}),
        "withdrawn_on may not lie in the future"),
    Row("signed in the future (act)", 422, transfer_act("awaiting_declaration", "declaration", "kz-penal",
                                                        {**DECLARATION, "signed_on": FUTURE}),
        "signed_on may not lie in the future"),
    Row("declaration not informed", 422, transfer_act("awaiting_declaration", "declaration", "kz-penal",
                                                      {**DECLARATION, "informed_of_consequences": False}),
        "informed_of_consequences must be true: a declaration counts only when the person made it voluntarily and "
        "informed of its consequences"),
    Row("withdrawal without a reason", 422, transfer_act("awaiting_consents", "withdrawal", "kz-gpo",
                                                         {"withdrawn_on": ON}), "reason is required"),
    Row("act on a closed transfer", 409, on_closed("transfer"),
        "the case is closed (refused): no more acts are possible on it"),
    Row("transfer reference reused", 409, reused("transfer"),
        "reference {ref} is already used by a different request: a new case needs a new reference, and an "
        "identical request answers the existing case"),
    # -- acts on a request for assistance
    Row("review by the requesting state", 403, request_act("under_review", "review", "fr-moj", {"decision": "accept"}),
        "only the central authority of KZ (kz-gpo) may review this request"),
    Row("answer by the requested state", 403, request_act("awaiting_information", "information", "kz-gpo",
                                                          {"answers": "these"}),
        "only the central authority of FR (fr-moj) may answer the questions of this request"),
    Row("withdrawal by the requested state", 403, request_act("under_review", "withdrawal", "kz-gpo",
                                                              {"reason": "x"}),
        "only the central authority of FR (fr-moj) may withdraw this request"),
    Row("accept with grounds", 422, request_act("under_review", "review", "kz-gpo", {
        "decision": "accept", "grounds": ["discrimination"], "questions": "q"}),
        "grounds and questions must be empty when the decision is accept"),
    Row("postpone without a date", 422, request_act("under_review", "review", "kz-gpo", {"decision": "postpone"}),
        "postpone_until is required to postpone: give the day the review resumes, and a note giving the reason"),
    Row("postpone without a reason", 422, request_act("under_review", "review", "kz-gpo", {
        "decision": "postpone", "postpone_until": FUTURE}), "note is required to postpone: give the reason"),
    Row("postpone to the past", 422, request_act("under_review", "review", "kz-gpo", {
        "decision": "postpone", "postpone_until": "2026-01-01", "note": "a trial"}),
        "postpone_until must lie in the future"),
    Row("questions missing", 422, request_act("under_review", "review", "kz-gpo", {"decision": "request_information"}),
        "questions are required to request information"),
    Row("refuse citing an unlisted ground", 422, request_act("under_review", "review", "kz-gpo", {
        "decision": "refuse", "grounds": ["political_offence"]}),
        "grounds may cite only sovereignty_security_public_order, discrimination, limitation_expired or "
        "contrary_to_national_law under this treaty, not political_offence"),
    Row("accept without settling dual criminality", 422, request_act("needs_review", "review", "kz-gpo",
                                                                     {"decision": "accept"}),
        "dual_criminality (satisfied or not_satisfied) is required to accept: measure m2 needs a review of dual "
        "criminality"),
    Row("review not awaited", 409, request_act("executing", "review", "kz-gpo", {"decision": "accept"}),
        "the request is in stage executing: it can be reviewed only in stage under_review"),
    Row("information not awaited", 409, request_act("under_review", "information", "fr-moj", {"answers": "these"}),
        "the request is in stage under_review: information is answered only in stage awaiting_information"),
    Row("no such measure", 404, request_act("executing", "measures/m9/result", "kz-afm", {"outcome": "not_executed"}),
        "no such measure: the measures of this request are m1, m2 and m3"),
    Row("authorisation by the police", 403, request_act("executing", "measures/m2/authorisation", "kz-police",
                                                        {"granted": True}),
        "only the court of KZ (kz-court) may authorise measure m2"),
    Row("result by a court", 403, request_act("executing", "measures/m1/result", "kz-court",
                                              {"outcome": "executed", "evidence": evidence()}),
        "only the executing authority of KZ (kz-afm) or its central authority (kz-gpo) may report the result of "
        "measure m1"),
    Row("authorisation of a measure that needs none", 409, request_act("executing", "measures/m1/authorisation",
                                                                       "kz-court", {"granted": True}),
        "measure m1 (identify_bank_accounts) needs no authorisation: only a search or a seizure does"),
    Row("result before the authorisation", 409, request_act("executing", "measures/m2/result", "kz-police",
                                                            {"outcome": "executed", "evidence": evidence()}),
        "measure m2 is in stage awaiting_authorisation: its result can be reported only in stage executing"),
    Row("act on a pending measure", 409, request_act("under_review", "measures/m2/authorisation", "kz-court",
                                                     {"granted": True}),
        "measure m2 is pending: no act is possible on it until the request is accepted"),
    Row("act on a measure not permitted", 409, request_act("not_permitted", "measures/m2/authorisation",
                                                           "kz-court", {"granted": True}),
        "measure m2 is not permitted (no_dual_criminality): no act is possible on it"),
    Row("act on a cancelled measure", 409, request_act("cancelled", "measures/m1/result", "kz-afm",
                                                       {"outcome": "not_executed"}),
        "measure m1 is cancelled (the request was withdrawn): no more acts are possible on it"),
    Row("executed without evidence", 422, request_act("executing", "measures/m1/result", "kz-afm",
                                                      {"outcome": "executed"}),
        "evidence must list at least one item when the outcome is executed"),
    Row("evidence collected in the future", 422, request_act("executing", "measures/m1/result", "kz-afm", {
        "outcome": "executed", "evidence": evidence(collected_on=FUTURE)}),
        "evidence.0.collected_on may not lie in the future"),
    Row("bad digest and item id", 422, request_act("executing", "measures/m1/result", "kz-afm", {
        "outcome": "executed", "evidence": evidence(sha256="xyz", item_id="")}),
        "evidence.0.item_id must be 1 to 64 letters, digits, dots, hyphens or underscores, such as e1; "
        "evidence.0.sha256 must be a SHA-256 digest: 64 hexadecimal digits"),
    Row("an evidence item twice", 422, request_act("executing", "measures/m1/result", "kz-afm", {
        "outcome": "executed", "evidence": evidence() * 2}),
        "evidence items must each have an item_id of their own (e0 is used more than once)"),
    Row("act on a closed request", 409, on_closed("assistance"),
        "the request is closed (withdrawn): no more acts are possible on it"),
    Row("request reference reused", 409, reused("assistance"),
        "reference {ref} is already used by a different request: a new case needs a new reference, and an "
        "identical request answers the existing case"),
]
assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.fixture(scope="module", autouse=True)
def _dev_client(dev_client):
    CLIENT["client"] = dev_client


@pytest.mark.parametrize("row", [pytest.param(r, id=r.id) for r in ROWS])
async def test_each_message_of_the_api_reads_well(http, row):
    noted: dict[str, Any] = {"today": today()}
    r = await row.send(http, noted)
    assert r.status_code == row.status, r.text
    error = r.json()["error"]
    assert message_problems(error["message"], error["status"], error["fields"]) == [], error
    if row.exact is not None:
        assert error["message"] == row.exact.format(**noted)
    for part in row.contains:
        assert part in error["message"].split("; "), error


async def test_a_429_reads_well(dev_env, dev_settings):
    settings = dataclasses.replace(dev_settings, dev_mode=True, rate_limit=1)
    async with serve(create_app(settings, dev_env.client)) as url, httpx.AsyncClient(base_url=url) as client:
        answers = [await client.get("/v1/treaties", headers=key("kz-gpo")) for _ in range(3)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert message_problems(limited[0].json()["error"]["message"]) == []


async def test_in_production_an_unknown_key_gets_no_hint_at_the_demo_keys(dev_env, dev_settings):
    settings = dataclasses.replace(dev_settings, dev_mode=False, api_keys=f"kz-gpo:{key_hash('a-real-key')}")
    async with serve(create_app(settings, dev_env.client)) as url, httpx.AsyncClient(base_url=url) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, key("kz-gpo")):
            r = await client.get("/v1/treaties", headers=headers)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["message"] == "a valid API key is required, sent as Authorization: Bearer <key>"
            assert "demo" not in r.text
        assert (await client.get("/v1/treaties", headers={"Authorization": "Bearer a-real-key"})).status_code == 200


# ---- the hint at the other kind ------------------------------------------------------------------------


def hint(reference: str, kind: str) -> str:
    if kind == "assistance":
        return (f"no such transfer case: {reference} is a request for assistance, see "
                f"/v1/assistance-requests/{reference}")
    return f"no such request for assistance: {reference} is a transfer case, see /v1/transfers/{reference}"


async def test_a_request_for_assistance_under_transfers_hints_at_its_path_to_those_who_may_read_it(http):
    reference = await CASES.request(http, "under_review")  # FR→KZ
    for reader in ("fr-moj", "kz-gpo"):
        for r in (await http.get(f"/v1/transfers/{reference}", headers=key(reader)),
                  await http.post(f"/v1/transfers/{reference}/withdrawal", json=WITHDRAWAL, headers=key(reader))):
            assert r.status_code == 404, r.text
            assert r.json()["error"]["message"] == hint(reference, "assistance")
            assert message_problems(r.json()["error"]["message"]) == []
    # anyone who may not read it gets the 404 of a reference never used: its existence is not revealed
    never_used = f"FR-{uuid.uuid4().hex[:12]}"
    for outsider in ("uz-gpo", "it-moj", "kz-penal"):
        r = await http.get(f"/v1/transfers/{reference}", headers=key(outsider))
        missing = await http.get(f"/v1/transfers/{never_used}", headers=key(outsider))
        assert r.status_code == missing.status_code == 404 and r.json() == missing.json(), r.text
        assert reference not in r.text


async def test_a_transfer_under_assistance_requests_hints_at_its_path_to_those_who_may_read_it(http):
    reference = await CASES.transfer(http, "awaiting_consents")  # KZ→UZ
    for reader in ("kz-gpo", "uz-gpo"):
        r = await http.get(f"/v1/assistance-requests/{reference}", headers=key(reader))
        assert r.status_code == 404 and r.json()["error"]["message"] == hint(reference, "transfer"), r.text
    never_used = f"KZ-{uuid.uuid4().hex[:12]}"
    for outsider in ("fr-moj", "kz-court", "kz-afm"):  # a third state; roles with no part in transfers
        r = await http.get(f"/v1/assistance-requests/{reference}", headers=key(outsider))
        missing = await http.get(f"/v1/assistance-requests/{never_used}", headers=key(outsider))
        assert r.status_code == missing.status_code == 404 and r.json() == missing.json(), r.text
        assert reference not in r.text


async def test_the_hint_stays_once_the_case_is_closed_and_archived(http, dev_client):
    reference = await CASES.transfer(http, "refused")
    await closed(dev_client, reference)
    r = await http.get(f"/v1/assistance-requests/{reference}", headers=key("kz-gpo"))
    assert r.status_code == 404 and r.json()["error"]["message"] == hint(reference, "transfer"), r.text


async def test_a_third_states_404_is_the_one_of_a_missing_case_even_when_the_reference_has_both_kinds(http):
    """A reference may be both a transfer (KZ→UZ) and a request for assistance (KZ→FR). fr-moj,
    no party to the transfer, reading it there gets exactly the 404 it gets under the reference of
    a request it may read that is no transfer: the hint depends on the request alone."""
    transfer = transfer_body()
    reference = transfer["reference"]
    assert (await http.post("/v1/transfers", json=transfer, headers=key("kz-gpo"))).status_code == 201
    request = {**assistance_body(requesting_state="KZ", requested_state="FR"), "reference": reference}
    r = await http.post("/v1/assistance-requests", json=request, headers=key("kz-gpo"))
    assert r.status_code == 201, r.text
    hidden = await http.get(f"/v1/transfers/{reference}", headers=key("fr-moj"))  # fr-moj: not a party
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == hint(reference, "assistance")
    only_request = {**assistance_body(requesting_state="KZ", requested_state="FR"),
                    "reference": f"KZ-{uuid.uuid4().hex[:12]}"}
    assert (await http.post("/v1/assistance-requests", json=only_request, headers=key("kz-gpo"))).status_code == 201
    missing = await http.get(f"/v1/transfers/{only_request['reference']}", headers=key("fr-moj"))
    assert missing.json()["error"]["message"] == hint(only_request["reference"], "assistance")


# ---- the workflows' update validators --------------------------------------------------------------------

REF = reference()
NOW = datetime.now(timezone.utc)
AUTHORITIES = {s: StateAuthorities(state=s, central_authority=f"{s.lower()}-{c}", prison_service=f"{s.lower()}-{p}")
               for s, c, p in (("KZ", "gpo", "penal"), ("UZ", "gpo", "penal"), ("FR", "moj", "penal"))}


def bare(cls: type, **state: Any) -> Any:
    """A workflow object in a given state, without a workflow run: its validators are plain code."""
    obj = cls.__new__(cls)
    for name, value in state.items():
        setattr(obj, name, value)
    return obj


def transfer(**state: Any) -> TransferWorkflow:
    request = TransferRequest.model_validate({**transfer_body(), "reference": "KZ-2026-0001"})
    return bare(TransferWorkflow, **{
        "request": request, "reference": request.reference, "request_sha256": "0" * 64, "intake_done": True,
        "authorities": {s: AUTHORITIES[s] for s in ("KZ", "UZ")}, "treaty": REF.treaty("kz-uz-transfer-2021"),
        "stage": "awaiting_consents", "withdrawal": None, "decisions": {}, "handover": None,
        "stage_entered_on": NOW.date(), "continuing": False, **state})


def assistance(**state: Any) -> AssistanceWorkflow:
    request = AssistanceRequest.model_validate({**assistance_body(), "reference": "FR-2026-0042"})
    return bare(AssistanceWorkflow, **{
        "request": request, "reference": request.reference, "request_sha256": "0" * 64, "intake_done": True,
        "authorities": {s: AUTHORITIES[s] for s in ("FR", "KZ")}, "treaty": REF.treaty("kz-fr-mla-2021"),
        "stage": "under_review", "review": None, "answer": None, "withdrawal": None, "assembling": False,
        "continuing": False,
        "measures": {"m2": MeasureView(id="m2", kind="search", stage="pending", dual_criminality="needs_review")},
        **state})


def measure(**state: Any) -> MeasureWorkflow:
    view = MeasureView(id="m2", kind="search", stage="awaiting_authorisation", court="kz-court",
                       assigned_to="kz-police")
    order = MeasureOrder(reference="FR-2026-0042", measure=view, states=("FR", "KZ"),
                         requested_central_authority="kz-gpo", authorisation_days=30, execution_days=90,
                         reminder_days=7, confidential=False, request_workflow_id="assistance:FR-2026-0042",
                         evidence_allowance=1000)
    return bare(MeasureWorkflow, **{"order": order, "measure": view, "stage": view.stage, "authorisation": None,
                                    "result": None, "cancelled": False, **state})


SEAL = RequestSeal(request_sha256="f" * 64)


DECLARED = Declaration(signed_on=NOW.date(), voluntary=True, informed_of_consequences=True)
FUTURE_DAY = NOW.date() + timedelta(days=1)
GOT = Authorisation(granted=True)
RESULT = MeasureResult.model_validate({"outcome": "executed", "evidence": evidence()})
CONSENTED = RecordedDecision(state="UZ", decision="consent", grounds=[], note="", authority="uz-gpo", at=NOW)
REFUSED = RecordedDecision(state="UZ", decision="refuse", grounds=["state_declined"], note="", authority="uz-gpo",
                           at=NOW)
ARRANGED = Handover(place="Zhibek Zholy", due_on=NOW.date())
DONE = Handover(place="Zhibek Zholy", due_on=NOW.date(), completed_on=NOW.date())
WITHDRAWN = Withdrawal(withdrawn_on=NOW.date(), reason="x")
PLACE = {"place": "Zhibek Zholy"}
T, A, M = TransferWorkflow, AssistanceWorkflow, MeasureWorkflow

# (id, workflow object, validator, args, status, the message exactly or None)
VALIDATIONS: list[tuple[str, Any, Callable[..., None], tuple[Any, ...], int, str | None]] = [
    ("transfer still opening", transfer(intake_done=False), T.validate_declaration, ("kz-penal", DECLARED), 409,
     "the case is still being opened; try again shortly"),
    ("declaration by the other state", transfer(), T.validate_declaration, ("uz-penal", DECLARED), 403,
     "only the central authority of KZ (kz-gpo) or its prison service (kz-penal) may record the declaration"),
    ("declaration signed tomorrow", transfer(stage="awaiting_declaration"), T.validate_declaration,
     ("kz-penal", DECLARED.model_copy(update={"signed_on": FUTURE_DAY})), 422, "signed_on may not lie in the future"),
    ("declaration while withdrawing", transfer(stage="awaiting_declaration", withdrawal=WITHDRAWN),
     T.validate_declaration, ("kz-penal", DECLARED), 409,
     "the case is being withdrawn: no more acts are possible on it"),
    ("declaration on a closing case", transfer(stage="refused"), T.validate_declaration, ("kz-penal", DECLARED), 409,
     "the case is closed (refused): no more acts are possible on it"),
    ("declaration in another stage", transfer(), T.validate_declaration, ("kz-penal", DECLARED), 409,
     "the case is in stage awaiting_consents: a declaration can be recorded only in stage awaiting_declaration"),
    ("legal review by the other state", transfer(), T.validate_legal_review,
     ("kz-gpo", LegalReview(dual_criminality="satisfied")), 403,
     "only the central authority of UZ (uz-gpo) may record the legal review"),
    ("legal review in another stage", transfer(), T.validate_legal_review,
     ("uz-gpo", LegalReview(dual_criminality="satisfied")), 409,
     "the case is in stage awaiting_consents: a legal review can be recorded only in stage awaiting_legal_review"),
    ("decision for a third state", transfer(), T.validate_decision,
     ("fr-moj", Decision(state="FR", decision="consent")), 422, "state must be KZ or UZ, a state of this case"),
    ("decision for the other state", transfer(), T.validate_decision,
     ("kz-gpo", Decision(state="UZ", decision="consent")), 403,
     "only the central authority of UZ (uz-gpo) may decide for UZ"),
    ("decision citing an unlisted ground", transfer(), T.validate_decision,
     ("uz-gpo", Decision(state="UZ", decision="refuse", grounds=["no_treaty"])), 422,
     "grounds may cite only not_national, state_declined, sovereignty_or_security, contrary_to_national_law, "
     "outstanding_financial_obligations or proceedings_pending in this case, not no_treaty"),
    ("decision in another stage", transfer(stage="awaiting_handover"), T.validate_decision,
     ("uz-gpo", Decision(state="UZ", decision="consent")), 409,
     "the case is in stage awaiting_handover: a decision can be recorded only in stage awaiting_consents"),
    ("converted by the sentencing state", transfer(), T.validate_decision,
     ("kz-gpo", Decision(state="KZ", decision="consent", enforcement="continued")), 422,
     "enforcement is stated by the administering state (UZ) with its consent, not by KZ"),
    ("converted into a longer term", transfer(), T.validate_decision,
     ("uz-gpo", Decision(state="UZ", decision="consent", enforcement="converted",
                         converted_sentence=Term(years=5, days=1))), 422,
     "converted_sentence may not aggravate the imposed sentence of 5 years, 0 months and 0 days"),
    ("decision twice", transfer(decisions={"UZ": CONSENTED}), T.validate_decision,
     ("uz-gpo", Decision(state="UZ", decision="consent")), 409,
     "a decision for UZ is already recorded: each state decides once"),
    ("handover by the other state", transfer(stage="awaiting_handover", handover=ARRANGED), T.validate_handover,
     ("kz-penal", HandoverConfirmation(completed_on=NOW.date(), **PLACE)), 403,
     "only the central authority of UZ (uz-gpo) or its prison service (uz-penal) may confirm the handover"),
    ("handover completed tomorrow", transfer(stage="awaiting_handover", handover=ARRANGED), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=FUTURE_DAY, **PLACE)), 422,
     "completed_on may not lie in the future"),
    ("handover in another stage", transfer(), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=NOW.date(), **PLACE)), 409,
     "the case is in stage awaiting_consents: the handover can be confirmed only in stage awaiting_handover"),
    ("handover being arranged", transfer(stage="awaiting_handover"), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=NOW.date(), **PLACE)), 409,
     "the handover is still being arranged; try again shortly"),
    ("handover elsewhere without a note", transfer(stage="awaiting_handover", handover=ARRANGED), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=NOW.date(), place="Tashkent airport")), 422,
     "note is required when the handover took place elsewhere than the arranged point (Zhibek Zholy): say why"),
    ("handover twice", transfer(stage="awaiting_handover", handover=DONE), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=NOW.date(), **PLACE)), 409, "the handover is already confirmed"),
    ("handover before the consents", transfer(stage="awaiting_handover", handover=ARRANGED), T.validate_handover,
     ("uz-penal", HandoverConfirmation(completed_on=NOW.date() - timedelta(days=3), **PLACE)), 422,
     f"completed_on may not lie before {NOW.date()}, the day both states had consented"),
    ("withdrawal by the other state", transfer(), T.validate_withdrawal, ("uz-gpo", WITHDRAWN), 403,
     "only the central authority of KZ (kz-gpo) or its prison service (kz-penal) may withdraw the case"),
    ("withdrawal dated tomorrow", transfer(), T.validate_withdrawal,
     ("kz-gpo", WITHDRAWN.model_copy(update={"withdrawn_on": FUTURE_DAY})), 422,
     "withdrawn_on may not lie in the future"),
    ("withdrawal of a closed case", transfer(stage="transferred"), T.validate_withdrawal, ("kz-gpo", WITHDRAWN), 409,
     "the case is closed (transferred): it can no longer be withdrawn"),
    ("withdrawal twice", transfer(withdrawal=WITHDRAWN), T.validate_withdrawal, ("kz-gpo", WITHDRAWN), 409,
     "the case is already being withdrawn"),
    ("withdrawal after the handover", transfer(stage="awaiting_handover", handover=DONE), T.validate_withdrawal,
     ("kz-gpo", WITHDRAWN), 409, "the case is closing (the handover is confirmed): it can no longer be withdrawn"),
    ("withdrawal after a refusal", transfer(decisions={"UZ": REFUSED}), T.validate_withdrawal, ("kz-gpo", WITHDRAWN),
     409, "the case is closing (a state has refused the transfer): it can no longer be withdrawn"),
    # a state without a prison service: its central authority stands in, named once
    ("declaration where the central authority stands in", transfer(authorities={
        "KZ": StateAuthorities(state="KZ", central_authority="kz-gpo", prison_service="kz-gpo"),
        "UZ": AUTHORITIES["UZ"]}), T.validate_declaration, ("uz-gpo", DECLARED), 403,
     "only the central authority of KZ (kz-gpo) may record the declaration"),
    # requests for assistance
    ("request still opening", assistance(intake_done=False), A.validate_review, ("kz-gpo", Review(decision="accept")),
     409, "the request is still being opened; try again shortly"),
    ("review by the requesting state", assistance(), A.validate_review, ("fr-moj", Review(decision="accept")), 403,
     "only the central authority of KZ (kz-gpo) may review this request"),
    ("review citing an unlisted ground", assistance(), A.validate_review,
     ("kz-gpo", Review(decision="refuse", grounds=["ne_bis_in_idem", "military_offence"])), 422,
     "grounds may cite only sovereignty_security_public_order, discrimination, limitation_expired or "
     "contrary_to_national_law under this treaty, not ne_bis_in_idem or military_offence"),
    ("postponed to today", assistance(), A.validate_review,
     ("kz-gpo", Review(decision="postpone", postpone_until=NOW.date(), note="a trial")), 422,
     "postpone_until must lie in the future"),
    ("accept with two measures to settle", assistance(measures={
        m: MeasureView(id=m, kind="search", stage="pending", dual_criminality="needs_review") for m in ("m1", "m2")}),
     A.validate_review, ("kz-gpo", Review(decision="accept")), 422,
     "dual_criminality (satisfied or not_satisfied) is required to accept: measures m1 and m2 need a review of dual "
     "criminality"),
    ("review while withdrawing", assistance(withdrawal=AssistanceWithdrawal(reason="x")), A.validate_review,
     ("kz-gpo", Review(decision="accept", dual_criminality="satisfied")), 409,
     "the request is being withdrawn: no more acts are possible on it"),
    ("review in another stage", assistance(stage="postponed"), A.validate_review,
     ("kz-gpo", Review(decision="accept", dual_criminality="satisfied")), 409,
     "the request is in stage postponed: it can be reviewed only in stage under_review"),
    ("review twice", assistance(review=Review(decision="accept")), A.validate_review,
     ("kz-gpo", Review(decision="accept", dual_criminality="satisfied")), 409,
     "a review of this request is already recorded"),
    ("answer by the requested state", assistance(stage="awaiting_information"), A.validate_information,
     ("kz-gpo", InformationAnswer(answers="a")), 403,
     "only the central authority of FR (fr-moj) may answer the questions of this request"),
    ("answer while withdrawing", assistance(stage="awaiting_information", withdrawal=AssistanceWithdrawal(reason="x")),
     A.validate_information, ("fr-moj", InformationAnswer(answers="a")), 409,
     "the request is being withdrawn: no more acts are possible on it"),
    ("answer in another stage", assistance(), A.validate_information, ("fr-moj", InformationAnswer(answers="a")), 409,
     "the request is in stage under_review: information is answered only in stage awaiting_information"),
    ("answer twice", assistance(stage="awaiting_information", answer=InformationAnswer(answers="a")),
     A.validate_information, ("fr-moj", InformationAnswer(answers="a")), 409,
     "the information asked for is already answered"),
    ("request withdrawn by the requested state", assistance(), A.validate_withdrawal,
     ("kz-gpo", AssistanceWithdrawal(reason="x")), 403,
     "only the central authority of FR (fr-moj) may withdraw this request"),
    ("closed request withdrawn", assistance(stage="completed"), A.validate_withdrawal,
     ("fr-moj", AssistanceWithdrawal(reason="x")), 409,
     "the request is closed (completed): it can no longer be withdrawn"),
    ("request withdrawn twice", assistance(withdrawal=AssistanceWithdrawal(reason="x")), A.validate_withdrawal,
     ("fr-moj", AssistanceWithdrawal(reason="x")), 409, "the request is already being withdrawn"),
    ("request withdrawn while its results are sent", assistance(stage="executing", assembling=True),
     A.validate_withdrawal, ("fr-moj", AssistanceWithdrawal(reason="x")), 409,
     "every measure has ended and the results are being sent: the request can no longer be withdrawn"),
    # measures
    ("authorisation of a measure that needs none", measure(measure=MeasureView(
        id="m1", kind="identify_bank_accounts", stage="executing", assigned_to="kz-afm")), M.validate_authorisation,
     ("kz-court", GOT), 409,
     "measure m1 (identify_bank_accounts) needs no authorisation: only a search or a seizure does"),
    ("authorisation by the police", measure(), M.validate_authorisation, ("kz-police", GOT), 403,
     "only the court of KZ (kz-court) may authorise measure m2"),
    ("authorisation where the central authority stands in for the court", measure(measure=MeasureView(
        id="m2", kind="search", stage="awaiting_authorisation", court="kz-gpo", assigned_to="kz-police")),
     M.validate_authorisation, ("kz-police", GOT), 403,
     "only the central authority of KZ (kz-gpo) may authorise measure m2"),
    ("authorisation of a cancelled measure", measure(cancelled=True), M.validate_authorisation, ("kz-court", GOT), 409,
     "measure m2 is cancelled (the request was withdrawn): no more acts are possible on it"),
    ("authorisation in another stage", measure(stage="executing"), M.validate_authorisation, ("kz-court", GOT), 409,
     "measure m2 is in stage executing: it can be authorised only in stage awaiting_authorisation"),
    ("authorisation twice", measure(authorisation=GOT), M.validate_authorisation, ("kz-court", GOT), 409,
     "the authorisation of measure m2 is already recorded"),
    ("result by the court", measure(stage="executing"), M.validate_result, ("kz-court", RESULT), 403,
     "only the executing authority of KZ (kz-police) or its central authority (kz-gpo) may report the result of "
     "measure m2"),
    ("result collected tomorrow", measure(stage="executing"), M.validate_result,
     ("kz-police", MeasureResult.model_validate({"outcome": "executed", "evidence": evidence(
         2, collected_on=FUTURE_DAY.isoformat())})), 422, "evidence.0.collected_on may not lie in the future"),
    ("result past its evidence allowance", measure(stage="executing"), M.validate_result,
     ("kz-police", MeasureResult.model_validate({"outcome": "executed", "evidence": evidence(20)})), 422,
     f"evidence of measure m2 may take at most 1,000 bytes (its share of the request's {EVIDENCE_BUDGET:,}): "
     "describe the items more briefly"),
    ("result of a cancelled measure", measure(stage="executing", cancelled=True), M.validate_result,
     ("kz-police", RESULT), 409,
     "measure m2 is cancelled (the request was withdrawn): no more acts are possible on it"),
    ("result in another stage", measure(), M.validate_result, ("kz-police", RESULT), 409,
     "measure m2 is in stage awaiting_authorisation: its result can be reported only in stage executing"),
    ("result twice", measure(stage="executing", result=RESULT), M.validate_result, ("kz-police", RESULT), 409,
     "the result of measure m2 is already reported"),
]


@pytest.mark.parametrize(("obj", "validator", "args", "status", "exact"),
                         [pytest.param(*row[1:], id=row[0]) for row in VALIDATIONS])
def test_each_rejection_of_a_workflow_reads_well(monkeypatch, obj, validator, args, status, exact):
    monkeypatch.setattr(temporal_workflow, "now", lambda: NOW)
    with pytest.raises(ApplicationError) as rejected:
        validator(obj, *args)
    error = act_refused(WorkflowUpdateFailedError(rejected.value))  # as the API answers it
    assert error.status == status, error.message
    assert message_problems(error.message, error.status, error.fields) == []
    if exact is not None:
        assert error.message == exact


@pytest.mark.parametrize("obj", [transfer(open_requests=1, request_sha256=SEAL.request_sha256),
                                 transfer(open_requests=0), assistance(open_requests=0)],
                         ids=["transfer opened again", "transfer opened differently", "request opened differently"])
def test_an_opening_of_an_open_case_is_refused_for_the_client_to_read_it(obj):
    """Not an answer of the API: the client reads the case by query, and the API answers 200 for
    the same request and 409 for another (the openings above)."""
    with pytest.raises(ApplicationError) as rejected:
        type(obj).validate_opened(obj, SEAL)
    assert rejected.value.type == rejection.OPENED


def test_an_act_the_case_could_not_take_reads_well():
    for cause in (ApplicationError("gone", type="AcceptedUpdateCompletedWorkflow"), ApplicationError("?"),
                  RuntimeError("?")):
        error = act_refused(WorkflowUpdateFailedError(cause))
        assert error.status in (409, 503) and message_problems(error.message) == [], error.message


# ---- the engine's failures: 503 ---------------------------------------------------------------------------


async def test_each_503_reads_well():
    """The answers of api/errors.py when the engine or the case cannot answer (not the client's doing)."""
    app = FastAPI()
    app.state.metrics = Metrics()
    errors.install(app)
    failures: dict[str, Callable[[], BaseException]] = {
        "timeout": lambda: errors.unavailable(),
        "case failing": lambda: WorkflowQueryFailedError("the task fails"),
        "engine": lambda: RPCError("down", RPCStatusCode.INTERNAL, b""),
        "unexpected": lambda: RuntimeError("a defect"),
    }
    def route(failure: Callable[[], BaseException]) -> Callable[[], Awaitable[None]]:
        async def fail() -> None:
            raise failure()
        return fail

    for name, failure in failures.items():
        app.add_api_route(f"/{name.replace(' ', '-')}", route(failure))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for name in failures:
            r = await client.get(f"/{name.replace(' ', '-')}")
            assert r.status_code == 503, (name, r.text)
            assert message_problems(r.json()["error"]["message"]) == [], (name, r.text)
            assert "try again" in r.json()["error"]["message"]


# ---- the words of every message in the code ----------------------------------------------------------------

SOURCES = [ROOT / path for path in (
    "api/errors.py", "api/auth.py", "api/found.py", "api/transfers.py", "api/assistance.py", "api/body.py",
    "api/engine.py", "api/listing.py", "api/limits.py", "api/common.py", "workflows/transfer.py",
    "workflows/assistance.py", "workflows/measure.py", "workflows/rejection.py", "domain/transfer.py",
    "domain/assistance.py")]
# the calls that make messages a client reads
MAKERS = {"ApiError", "conflict", "forbidden", "deny", "invalid", "not_found", "unavailable", "not_permitted", "only",
          "ValueError", "PydanticCustomError", "unauthenticated"}


def literal_words(node: ast.AST) -> list[str]:
    """The literal text of the string arguments of a call: constants, and the constant parts of
    f-strings (what is filled in is checked by the table above)."""
    texts: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            texts.append(sub.value)
    return texts


def message_sites() -> list[tuple[str, str]]:
    sites = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in MAKERS:
                    for arg in [*node.args, *(k.value for k in node.keywords)]:
                        sites += [(f"{path.relative_to(ROOT)}:{node.lineno}", t) for t in literal_words(arg)]
    for table in (errors.PATTERNS, errors.PREDICATES, errors.NOT_FOUND):
        sites += [("api/errors.py", t) for t in table.values()]
    return sites


def test_the_words_of_every_message_in_the_code_read_well():
    sites = message_sites()
    assert len(sites) > 100, len(sites)
    # a role's code passed as data (``("central_authority", id)``) is written in words by rejection.only
    bad = {f"{where}: {text!r}": found for where, text in sites
           if text not in rejection.ROLE_NAMES and (found := words_problems(text))}
    assert bad == {}


def test_every_pattern_of_the_request_models_is_put_in_words():
    from api.openapi import BODIES

    patterns: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for model in BODIES.values():
        walk(model.model_json_schema())
    assert patterns and patterns <= set(errors.PATTERNS), sorted(patterns - set(errors.PATTERNS))


def test_the_messages_name_roles_in_words():
    assert rejection.only("decide for UZ", ("UZ", [("central_authority", "uz-gpo")])) == \
        "only the central authority of UZ (uz-gpo) may decide for UZ"
    assert rejection.a_role("executing_authority") == "an executing authority"
    assert rejection.a_role("court") == "a court"
    assert rejection.only("act", ("KZ", [("central_authority", "kz-gpo"), ("prison_service", "kz-gpo")])) == \
        "only the central authority of KZ (kz-gpo) may act"
