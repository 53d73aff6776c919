"""Nothing a client can cause logs an ERROR or a traceback (the operators' alerts are for the
operators' problems: a failing case, an engine down, a defect of ours). Over real HTTP, against
the session's app and worker (one process: the API, the Temporal client and the worker all log
here), a broad set of client mistakes is driven while every log record is captured: the standard
library's (root logger, WARNING and up: uvicorn, asyncio, the Temporal SDK), structlog's (the
API's own events) and what reaches the process's stdout and stderr (the SDK's core writes there).
Refusals are logged as warnings (``request refused``); nothing is logged as an error.

Not driven here: what only the operators' side causes (a case whose workflow cannot run, a worker
that is gone, a defect), which api/errors.py logs as errors on purpose."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import structlog

from tests.api import helpers
from tests.api.helpers import AUTHORITIES, NOT_FINAL, case_at, closed, today, view
from tests.api.test_messages import CONSENT, DECLARATION, HANDOVER, WITHDRAWAL, evidence, request_at
from tests.support import key
from treatyflow.samples import assistance_body, transfer_body

http = helpers.http  # the fixture: one paced client for the module

FUTURE = (today() + timedelta(days=3)).isoformat()
# of acts sent together, each takes effect or is a conflict; on a loaded machine one may not be
# answered within the API's timeout (503 with Retry-After: the client retries; a warning)
RACE = {200, 409, 503}
ERROR_LEVELS = {"error", "critical", "exception", "fatal"}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Watch:
    """The records of one test: stdlib, structlog and the process's output."""

    def __init__(self, records: Records, events: list[dict[str, Any]], capfd: pytest.CaptureFixture[str]) -> None:
        self.records, self.events, self.capfd = records, events, capfd

    async def assert_clean(self, refusals: bool = True) -> None:
        """No error and no traceback; with ``refusals``, the API's refusals were seen (the capture works)."""
        # a future whose exception nobody retrieved is reported when it is collected
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.1)
        out, err = self.capfd.readouterr()
        errors = [f"{r.name} {r.levelname} {r.getMessage()}" for r in self.records.records
                  if r.levelno >= logging.ERROR]
        errors += [str(e) for e in self.events if str(e.get("log_level", "")).lower() in ERROR_LEVELS]
        tracebacks = [f"{r.name} {r.getMessage()}" for r in self.records.records
                      if r.exc_info or "Traceback" in r.getMessage()]
        tracebacks += [str(e) for e in self.events if e.get("exc_info") or e.get("exception")]
        output = out + err
        if "Traceback" in output:
            tracebacks.append(output[output.index("Traceback"):][:2000])
        errors += [line for line in output.splitlines() if re.search(r"\bERROR\b|\"level\": ?\"error\"", line)]
        seen = [f"{r.name} {r.levelname} {r.getMessage()}" for r in self.records.records]
        assert (errors, tracebacks) == ([], []), f"warnings and up seen: {seen[:50]}"
        # the capture works: the API's refusals are there, as warnings
        refused = [e for e in self.events if e.get("event") == "request refused"]
        assert all(e["log_level"] == "warning" for e in refused), refused[:20]
        assert refused or not refusals, self.events[:20]


@pytest_asyncio.fixture(loop_scope="session")
async def watch(capfd) -> AsyncIterator[Watch]:
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with structlog.testing.capture_logs() as events:
            yield Watch(records, events, capfd)
    finally:
        root.removeHandler(records)


async def post(http: httpx.AsyncClient, path: str, body: Any, by: str, **headers: str) -> httpx.Response:
    r = await http.post(path, json=body, headers={**key(by), **headers})
    assert r.status_code < 500, f"{path} by {by}: {r.status_code} {r.text}"
    return r


async def expect(r: httpx.Response | Any, *statuses: int) -> httpx.Response:
    r = await r if not isinstance(r, httpx.Response) else r
    assert r.status_code in statuses, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r


# ---- the body, the key, the path ----------------------------------------------------------------------


async def test_malformed_requests_log_no_error(http, watch):
    for content, content_type in ((b"{not json", "application/json"), (b"", "application/json"),
                                  (b"[1, 2]", "application/json"), (b"\xff\xfe\x00", "application/json"),
                                  (b"null", "application/json"),
                                  (b"reference=KZ-1", "application/x-www-form-urlencoded"),
                                  (b"hello", "text/plain"), (None, None)):
        headers = {**key("kz-gpo"), **({"Content-Type": content_type} if content_type else {})}
        for path in ("/v1/transfers", "/v1/assistance-requests"):
            await expect(http.post(path, content=content, headers=headers), 415, 422, 403)
    for changes in ({"colour": "red"}, {"person": {"full_name": "x"}}, {"sentencing_state": "kz"},
                    {"reference": "KZ UZ 1"}, {"received_on": "2026-13-01"}, {"person": None},
                    {"sentence": {"indeterminate": True, "start_date": "1899-01-01", "years": 101}},
                    {"judgment": {**NOT_FINAL, "offences": [{"article": "1" * 40, "iccs": "0599"}] * 60}},
                    {"declaration": {"signed_on": FUTURE, "voluntary": False, "informed_of_consequences": 1}},
                    {"financial_obligations": [{"amount": 1.5, "currency": "kzt", "settled": "no"}]}):
        await expect(http.post("/v1/transfers", json=transfer_body(**changes), headers=key("kz-gpo")), 422)
    for changes in ({"measures": []}, {"measures": [{"id": "m 1", "kind": "torture"}]}, {"respond_by": "1800-01-01"},
                    {"requested_state": "FR"}, {"offences": [{"article": "x", "iccs": "0599"}]}, {"urgent": "yes"}):
        await expect(http.post("/v1/assistance-requests", json=assistance_body(**changes), headers=key("fr-moj")), 422)
    # too large: declared, and counted as it arrives
    await expect(http.post("/v1/transfers", content=b" " * (1024 * 1024 + 10),
                           headers={**key("kz-gpo"), "Content-Type": "application/json"}), 413)

    async def chunks():
        for _ in range(12):
            yield b" " * 100_000

    await expect(http.post("/v1/transfers", content=chunks(),
                           headers={**key("kz-gpo"), "Content-Type": "application/json"}), 413)
    await watch.assert_clean(refusals=False)  # 413, 415 and 422 are not logged


async def test_bad_keys_paths_and_parameters_log_no_error(http, watch):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic a2V5"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer demo-xx-nobody"}, {"Authorization": "bearer  demo-kz-gpo x"}):
        for path in ("/v1/transfers", "/v1/inbox", "/v1/treaties", "/v1/stats", "/v1/transfers/KZ-1"):
            await expect(http.get(path, headers=headers), 401)
        await expect(http.post("/v1/transfers", json=transfer_body(), headers=headers), 401)
    for path in ("/v1/nothing", "/v1/treaties/no-such-treaty", "/v1/transfers/a%00b", "/v1/transfers/" + "x" * 1100,
                 "/v1/transfers/...", "/v1/assistance-requests/%C3%A9t%C3%A9", "/v1/transfers/KZ-never-opened"):
        await expect(http.get(path, headers=key("kz-gpo")), 404)
    await expect(http.delete("/v1/transfers", headers=key("kz-gpo")), 405)
    await expect(http.put("/v1/treaties", headers=key("kz-gpo")), 405)
    for query in ("stage=nope", "state=kz", "state=K'Z", "page_size=0", "page_size=100000", "page_size=ten",
                  "page_token=YWJj", "page_token=%%%", "page_token=" + "A" * 400):
        for path in ("/v1/transfers", "/v1/assistance-requests"):
            await expect(http.get(f"{path}?{query}", headers=key("kz-gpo")), 422)
    for token in ("YWJj", "!!!", "A" * 200):
        await expect(http.get(f"/v1/inbox?page_token={token}", headers=key("kz-police")), 422)
    await watch.assert_clean()


# ---- who may ----------------------------------------------------------------------------------------------


async def test_wrong_roles_and_third_states_log_no_error(http, watch):
    transfer = await case_at(http, "awaiting_consents")
    request = await request_at(http, "executing")
    for authority in AUTHORITIES:
        await expect(http.get(f"/v1/transfers/{transfer}", headers=key(authority)), 200, 403, 404)
        await expect(http.get(f"/v1/assistance-requests/{request}", headers=key(authority)), 200, 403, 404)
        await expect(http.get("/v1/assistance-requests", headers=key(authority)), 200, 403)
        await expect(http.get("/v1/transfers", headers=key(authority)), 200, 403)
        await expect(http.post("/v1/transfers", json=transfer_body(), headers=key(authority)), 201, 403, 422)
        await expect(http.post("/v1/assistance-requests", json=assistance_body(), headers=key(authority)),
                     201, 403, 422)
    for authority in ("kz-penal", "uz-penal", "fr-moj", "kz-court", "kz-afm"):
        for act, body in (("decisions", CONSENT), ("handover", HANDOVER), ("declaration", DECLARATION),
                          ("legal-review", {"dual_criminality": "satisfied"})):
            await expect(http.post(f"/v1/transfers/{transfer}/{act}", json=body, headers=key(authority)),
                         403, 404, 409)
    await expect(http.post(f"/v1/transfers/{transfer}/decisions", json={**CONSENT, "state": "KZ"},
                           headers=key("uz-gpo")), 403)
    path = f"/v1/assistance-requests/{request}"
    for authority, act, body in (("fr-moj", "review", {"decision": "accept"}),
                                 ("kz-gpo", "withdrawal", {"reason": "x"}),
                                 ("kz-police", "measures/m2/authorisation", {"granted": True}),
                                 ("kz-court", "measures/m1/result", {"outcome": "not_executed"}),
                                 ("uz-gpo", "measures/m1/result", {"outcome": "not_executed"}),
                                 ("kz-afm", "measures/m9/result", {"outcome": "not_executed"})):
        await expect(http.post(f"{path}/{act}", json=body, headers=key(authority)), 403, 404)
    await watch.assert_clean()


async def test_references_of_the_other_kind_log_no_error(http, watch):
    transfer = await case_at(http, "awaiting_consents")
    request = await request_at(http, "under_review")
    for authority in ("kz-gpo", "uz-gpo", "fr-moj", "it-moj", "kz-court", "kz-afm", "kz-penal"):
        await expect(http.get(f"/v1/assistance-requests/{transfer}", headers=key(authority)), 403, 404)
        await expect(http.get(f"/v1/transfers/{request}", headers=key(authority)), 403, 404)
        await expect(http.post(f"/v1/transfers/{request}/withdrawal", json=WITHDRAWAL, headers=key(authority)),
                     403, 404)
        await expect(http.post(f"/v1/assistance-requests/{transfer}/review", json={"decision": "accept"},
                               headers=key(authority)), 403, 404)
    await watch.assert_clean()


# ---- references reused, repeats, acts out of turn, races ------------------------------------------------------


async def test_reused_references_and_repeats_log_no_error(http, dev_client, watch):
    live = transfer_body()
    await expect(http.post("/v1/transfers", json=live, headers=key("kz-gpo")), 201)
    refused = transfer_body(judgment=NOT_FINAL)
    await expect(http.post("/v1/transfers", json=refused, headers=key("kz-gpo")), 201)
    await closed(dev_client, refused["reference"])  # closed: from the archive
    for body in (live, refused):
        for _ in range(2):
            await expect(http.post("/v1/transfers", json=body, headers=key("kz-gpo")), 200)
        await expect(http.post("/v1/transfers", json={**body, "received_on": "2026-11-19"}, headers=key("kz-gpo")), 409)
        await expect(http.post("/v1/transfers", json={**body, "person": {**body["person"], "full_name": "Other"}},
                               headers=key("kz-gpo")), 409)
        await expect(http.post("/v1/transfers", json=body, headers=key("uz-gpo")), 422)  # not a UZ- reference
        await expect(http.post("/v1/transfers", json=body, headers=key("fr-moj")), 403)
    request = assistance_body()
    await expect(http.post("/v1/assistance-requests", json=request, headers=key("fr-moj")), 201)
    await expect(http.post("/v1/assistance-requests", json=request, headers=key("fr-moj")), 200)
    await expect(http.post("/v1/assistance-requests", json={**request, "purpose": "other"}, headers=key("fr-moj")), 409)
    # the same new reference opened with two different bodies at once: one opens, the other is a conflict
    racing = transfer_body()
    answers = await asyncio.gather(*(http.post("/v1/transfers", json={**racing, "received_on": day},
                                               headers=key("kz-gpo")) for day in ("2026-11-19", "2026-11-20")))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    # and the same body twice at once: both answer the one case
    same = transfer_body()
    answers = await asyncio.gather(*(http.post("/v1/transfers", json=same, headers=key("kz-gpo")) for _ in range(3)))
    assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
    assert len({a.json()["opened_at"] for a in answers}) == 1, [a.text for a in answers]
    # a reference of a case closed long ago, reused for a different request
    withdrawn = await case_at(http, "withdrawn")
    await closed(dev_client, withdrawn)
    again = {**transfer_body(received_on="2026-11-19"), "reference": withdrawn}
    await expect(http.post("/v1/transfers", json=again, headers=key("kz-gpo")), 409)
    await watch.assert_clean()


async def test_acts_in_the_wrong_stage_log_no_error(http, dev_client, watch):
    consents = await case_at(http, "awaiting_consents")
    handover = await case_at(http, "awaiting_handover")
    refused = await case_at(http, "refused")
    for reference in (consents, handover, refused):
        for by, act, body in (("kz-penal", "declaration", DECLARATION),
                              ("uz-gpo", "legal-review", {"dual_criminality": "satisfied"}),
                              ("uz-penal", "handover", HANDOVER), ("uz-gpo", "decisions", CONSENT),
                              ("uz-gpo", "decisions", {"state": "UZ", "decision": "refuse", "grounds": ["no_treaty"]}),
                              ("uz-penal", "handover", {**HANDOVER, "completed_on": "2020-01-01"}),
                              ("kz-gpo", "withdrawal", {**WITHDRAWAL, "withdrawn_on": FUTURE})):
            await expect(http.post(f"/v1/transfers/{reference}/{act}", json=body, headers=key(by)), 200, 409, 422)
    await closed(dev_client, refused)
    await expect(http.post(f"/v1/transfers/{refused}/withdrawal", json=WITHDRAWAL, headers=key("kz-gpo")), 409)
    executing = await request_at(http, "executing")
    path = f"/v1/assistance-requests/{executing}"
    for by, act, body in (("kz-gpo", "review", {"decision": "accept"}), ("fr-moj", "information", {"answers": "a"}),
                          ("kz-court", "measures/m1/authorisation", {"granted": True}),
                          ("kz-police", "measures/m2/result", {"outcome": "executed", "evidence": evidence()}),
                          ("kz-afm", "measures/m1/result", {"outcome": "executed",
                                                            "evidence": evidence(collected_on=FUTURE)}),
                          ("kz-afm", "measures/m1/result", {"outcome": "executed",
                                                            "evidence": evidence(200, description="d" * 4_500)})):
        await expect(http.post(f"{path}/{act}", json=body, headers=key(by)), 409, 422)
    review = f"/v1/assistance-requests/{await request_at(http, 'under_review')}"
    for by, act, body in (("kz-gpo", "review", {"decision": "refuse", "grounds": ["political_offence"]}),
                          ("kz-gpo", "review", {"decision": "postpone", "postpone_until": "2026-01-01", "note": "n"}),
                          ("kz-court", "measures/m2/authorisation", {"granted": True})):
        await expect(http.post(f"{review}/{act}", json=body, headers=key(by)), 409, 422)
    needs = await request_at(http, "needs_review")
    await expect(http.post(f"/v1/assistance-requests/{needs}/review", json={"decision": "accept"},
                           headers=key("kz-gpo")), 422)
    cancelled = await request_at(http, "cancelled")
    for by, act, body in (("kz-afm", "measures/m1/result", {"outcome": "not_executed"}),
                          ("fr-moj", "withdrawal", {"reason": "again"}), ("kz-gpo", "review", {"decision": "accept"})):
        await expect(http.post(f"/v1/assistance-requests/{cancelled}/{act}", json=body, headers=key(by)), 409)
    await watch.assert_clean(refusals=False)


async def test_races_of_two_acts_log_no_error(http, watch):
    for _ in range(2):
        # the same decision twice at once, and two decisions of one state
        reference = await case_at(http, "awaiting_consents")
        answers = await asyncio.gather(
            *(http.post(f"/v1/transfers/{reference}/decisions", json=CONSENT, headers=key("uz-gpo")) for _ in range(2)),
            http.post(f"/v1/transfers/{reference}/decisions", headers=key("uz-gpo"),
                      json={"state": "UZ", "decision": "refuse", "grounds": ["state_declined"]}))
        assert {a.status_code for a in answers} <= RACE, [a.text for a in answers]
        # a withdrawal and the last consent at once
        reference = await case_at(http, "awaiting_consents")
        await expect(http.post(f"/v1/transfers/{reference}/decisions", json={**CONSENT, "state": "KZ"},
                               headers=key("kz-gpo")), 200)
        answers = await asyncio.gather(
            http.post(f"/v1/transfers/{reference}/withdrawal", json=WITHDRAWAL, headers=key("kz-penal")),
            http.post(f"/v1/transfers/{reference}/decisions", json=CONSENT, headers=key("uz-gpo")))
        assert {a.status_code for a in answers} <= RACE, [a.text for a in answers]
        # the handover and a withdrawal at once
        reference = await case_at(http, "awaiting_handover")
        place = (await view(http, reference))["handover"]["place"]
        answers = await asyncio.gather(
            http.post(f"/v1/transfers/{reference}/handover", json={**HANDOVER, "place": place},
                      headers=key("uz-penal")),
            http.post(f"/v1/transfers/{reference}/withdrawal", json=WITHDRAWAL, headers=key("kz-gpo")),
            http.post(f"/v1/transfers/{reference}/withdrawal", json=WITHDRAWAL, headers=key("kz-penal")))
        assert {a.status_code for a in answers} <= RACE, [a.text for a in answers]
        # two results of one measure and a withdrawal of the request at once
        request = await request_at(http, "executing")
        path = f"/v1/assistance-requests/{request}"
        answers = await asyncio.gather(
            http.post(f"{path}/measures/m1/result", json={"outcome": "executed", "evidence": evidence()},
                      headers=key("kz-afm")),
            http.post(f"{path}/measures/m1/result", json={"outcome": "not_executed"}, headers=key("kz-gpo")),
            http.post(f"{path}/measures/m2/authorisation", json={"granted": True}, headers=key("kz-court")),
            http.post(f"{path}/withdrawal", json={"reason": "no longer needed"}, headers=key("fr-moj")),
            http.post(f"{path}/withdrawal", json={"reason": "no longer needed"}, headers=key("fr-moj")))
        assert {a.status_code for a in answers} <= RACE, [a.text for a in answers]
        # a review and a withdrawal at once
        request = await request_at(http, "under_review")
        path = f"/v1/assistance-requests/{request}"
        answers = await asyncio.gather(
            http.post(f"{path}/review", json={"decision": "accept"}, headers=key("kz-gpo")),
            http.post(f"{path}/review", json={"decision": "refuse", "grounds": ["discrimination"]},
                      headers=key("kz-gpo")),
            http.post(f"{path}/withdrawal", json={"reason": "no longer needed"}, headers=key("fr-moj")))
        assert {a.status_code for a in answers} <= RACE, [a.text for a in answers]
    await watch.assert_clean(refusals=False)


async def test_a_new_case_read_and_acted_on_while_it_opens_logs_no_error(http, watch):
    """Acts and reads on a case at once with its opening: 404 until it exists, then its answers."""
    body = transfer_body(declaration=None)
    reference = body["reference"]
    answers = await asyncio.gather(
        http.post("/v1/transfers", json=body, headers=key("kz-gpo")),
        http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo")),
        http.post(f"/v1/transfers/{reference}/declaration", json=DECLARATION, headers=key("kz-penal")),
        http.post(f"/v1/transfers/{reference}/withdrawal", json=WITHDRAWAL, headers=key("kz-gpo")))
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    await watch.assert_clean(refusals=False)


def test_the_watch_sees_an_error_and_a_traceback():
    """The capture this module relies on: an error of the stdlib and of structlog are both seen."""
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with structlog.testing.capture_logs() as events:
            logging.getLogger("asyncio").error("Future exception was never retrieved", exc_info=(
                RuntimeError, RuntimeError("x"), None))
            structlog.get_logger("treatyflow.api").error("unexpected error")
    finally:
        root.removeHandler(records)
    assert [r.levelno for r in records.records] == [logging.ERROR] and records.records[0].exc_info
    assert [e["log_level"] for e in events] == ["error"]
