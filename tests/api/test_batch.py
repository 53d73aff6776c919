"""``POST /v1/transfers/batch`` over real HTTP against the session's app, server and worker: a batch
of good and bad lines opens the good ones and names the bad ones' fields; the same batch again
opens nothing; limits refuse the whole batch; each line answers what its single POST answers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import http, today  # noqa: F401 - http is a fixture
from domain.applicants import write_applicants
from tests.support import key
from treatyflow.samples import assistance_body, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(*lines: Any) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


async def batch(http: httpx.AsyncClient, body: bytes, authority: str = "kz-gpo") -> list[dict[str, Any]]:
    r = await http.post("/v1/transfers/batch", content=body, headers={**key(authority), **NDJSON}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines()]


def fresh(tag: str) -> str:
    return f"KZ-B{tag}-{uuid.uuid4().hex[:10]}"


async def test_a_batch_opens_the_good_lines_and_names_the_bad_ones_fields(http):
    good = [transfer_body(reference=fresh("g")) for _ in range(3)]
    no_name = transfer_body(reference=fresh("n"))
    del no_name["person"]["full_name"]
    third_state = transfer_body(reference=fresh("t"), sentencing_state="FR")
    taken = transfer_body(reference=good[0]["reference"], received_on="2026-11-01")  # the same reference, other request
    body = ndjson(good[0], no_name, b"{not json", good[1], third_state, taken, good[2])

    results = await batch(http, body)

    assert [r["row"] for r in results] == list(range(1, 8))
    assert [r["result"] for r in results] == ["created", "invalid", "invalid", "created", "refused", "refused",
                                              "created"]
    assert [r["status"] for r in results] == [201, 422, 422, 201, 403, 409, 201]
    assert results[1]["problems"][0]["field"] == "person.full_name"
    assert results[1]["reference"] == no_name["reference"]
    assert results[2]["reference"] is None and results[2]["problems"][0]["field"] == "(body)"
    assert results[5]["problems"][0]["field"] == "reference"
    for line in good:  # opened, readable as any case
        r = await http.get(f"/v1/transfers/{line['reference']}", headers=key("kz-gpo"))
        assert r.status_code == 200 and r.json()["reference"] == line["reference"]
    for line in (no_name, third_state):  # nothing half-opened
        r = await http.get(f"/v1/transfers/{line['reference']}", headers=key("kz-gpo"))
        assert r.status_code == 404

    again = await batch(http, body)  # the same file again: nothing new
    assert [r["result"] for r in again] == ["existing", "invalid", "invalid", "existing", "refused", "refused",
                                            "existing"]
    assert [r["status"] for r in again] == [200, 422, 422, 200, 403, 409, 200]


async def test_each_line_answers_what_its_single_post_answers(http):
    line = transfer_body(reference=fresh("s"))
    single = await http.post("/v1/transfers", json=line, headers=key("kz-gpo"))
    bad = {**transfer_body(reference=fresh("x")), "sentencing_state": "kz"}
    single_bad = await http.post("/v1/transfers", json=bad, headers=key("kz-gpo"))
    results = await batch(http, ndjson(line, bad))
    assert single.status_code == 201 and (results[0]["result"], results[0]["status"]) == ("existing", 200)
    assert single_bad.status_code == results[1]["status"] == 422
    assert [p["field"] for p in results[1]["problems"]] == single_bad.json()["error"]["fields"]
    assert [p["message"] for p in results[1]["problems"]] == single_bad.json()["error"]["message"].split("; ")


async def test_a_reference_twice_in_one_batch_is_opened_once_by_its_first_line(http):
    first = transfer_body(reference=fresh("d"))
    other = {**first, "received_on": "2026-11-02"}
    results = await batch(http, ndjson(first, first, other))
    assert [(r["result"], r["status"]) for r in results] == [("created", 201), ("existing", 200), ("refused", 409)]


async def test_limits_refuse_the_whole_batch(http):
    line = json.dumps(transfer_body(reference=fresh("l"))).encode()
    too_many = b"\n".join([line] * 2_001)
    r = await http.post("/v1/transfers/batch", content=too_many, headers={**key("kz-gpo"), **NDJSON})
    assert r.status_code == 422 and "2,000 lines" in r.json()["error"]["message"]
    r = await http.post("/v1/transfers/batch", content=b" " * (16 * 1_048_576 + 1), headers={**key("kz-gpo"), **NDJSON})
    assert r.status_code == 413
    r = await http.post("/v1/transfers/batch", content=line, headers={**key("kz-gpo"), "content-type": "application/json"})
    assert r.status_code == 415
    r = await http.post("/v1/transfers/batch", content=b"", headers={**key("kz-gpo"), **NDJSON})
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["(body)"]
    r = await http.post("/v1/transfers/batch", content=line, headers={**key("kz-penal"), **NDJSON})
    assert r.status_code == 403  # only central authorities open cases
    ref = json.loads(line)["reference"]
    assert (await http.get(f"/v1/transfers/{ref}", headers=key("kz-gpo"))).status_code == 404


async def test_the_cli_imports_a_list_through_the_running_api(api_url, tmp_path):
    """`treatyflow import FILE` as a person runs it: the summary, each bad row by its file row and
    column, exit 1; again: every good row already open, nothing opened; a file refused whole: exit 2."""
    good = [transfer_body(reference=fresh("c")) for _ in range(2)]
    bad = transfer_body(reference=fresh("c"))
    bad["sentence"]["years"] = "five"
    path = tmp_path / "applicants.xlsx"
    path.write_bytes(write_applicants([good[0], bad, good[1]], "ru", "xlsx"))
    env = {**os.environ, "TREATYFLOW_API_KEY": "demo-kz-gpo"}
    command = [str(Path(sys.executable).parent / "treatyflow"), "import", str(path), "--api", api_url]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    first = await asyncio.to_thread(run)
    assert first.returncode == 1, first.stderr
    assert "3 rows — 2 opened, 0 already open, 1 invalid, 0 refused" in first.stdout
    assert f"row 3 ({bad['reference']}), Лет: sentence.years must be a whole number" in first.stdout
    async with httpx.AsyncClient(base_url=api_url) as http:
        for line in good:
            assert (await http.get(f"/v1/transfers/{line['reference']}", headers=key("kz-gpo"))).status_code == 200
    again = await asyncio.to_thread(run)
    assert "3 rows — 0 opened, 2 already open, 1 invalid, 0 refused" in again.stdout

    path.write_bytes(b"reference,favourite colour\r\nKZ-1,blue\r\n")
    refused = await asyncio.to_thread(run)
    assert refused.returncode == 2 and "refused whole, nothing was opened" in refused.stderr
    assert "favourite colour" in refused.stderr


async def test_a_repeat_without_received_on_finds_the_case_opened_on_an_earlier_day(http):
    """A request sent without received_on is given the day it arrives: the same request repeated
    the next day (a retry across midnight, a list imported again) is the same case, not a
    reference taken — single, in a batch, and in the case of an assistance request alike."""
    yesterday = (today() - timedelta(days=1)).isoformat()
    body = transfer_body(reference=fresh("m"))
    body.pop("received_on")
    opened = await http.post("/v1/transfers", json={**body, "received_on": yesterday}, headers=key("kz-gpo"))
    assert opened.status_code == 201
    again = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert again.status_code == 200, again.text
    assert again.json()["received_on"] == yesterday
    assert [(r["result"], r["status"]) for r in await batch(http, ndjson(body))] == [("existing", 200)]
    other = {**body, "person": {**body["person"], "full_name": "Someone Else"}}
    assert (await http.post("/v1/transfers", json=other, headers=key("kz-gpo"))).status_code == 409

    request = assistance_body(received_on=None)  # France's request to Kazakhstan
    first = await http.post("/v1/assistance-requests", json={**request, "received_on": yesterday}, headers=key("fr-moj"))
    assert first.status_code == 201, first.text
    assert (await http.post("/v1/assistance-requests", json=request, headers=key("fr-moj"))).status_code == 200


async def test_odd_lines_are_answered_each_and_never_hold_the_batch(http):
    """A line nested deeper than the JSON parser goes, a line longer than a single POST's body may
    be, blank lines at the end: each line has its answer, as its single POST would, and the
    batch ends."""
    good = transfer_body(reference=fresh("o"))
    long = {**transfer_body(reference=fresh("o")), "note": "x" * 1_100_000}
    body = ndjson(b"[" * 100_000, good, long) + b"\n\n\r\n"
    r = await http.post("/v1/transfers/batch", content=body, headers={**key("kz-gpo"), **NDJSON}, timeout=60)
    results = [json.loads(line) for line in r.text.splitlines()]
    assert [(x["row"], x["result"], x["status"]) for x in results] == [
        (1, "invalid", 422), (2, "created", 201), (3, "refused", 413)]
    single = await http.post("/v1/transfers", content=json.dumps(long), headers={**key("kz-gpo"),
                                                                               "content-type": "application/json"})
    assert single.status_code == 413
    exactly = ndjson(*[b"{}"] * 2_000) + b"\n\n"  # 2,000 lines and blank ones after them: not 2,002 lines
    r = await http.post("/v1/transfers/batch", content=exactly, headers={**key("kz-gpo"), **NDJSON}, timeout=120)
    assert r.status_code == 200 and len(r.text.splitlines()) == 2_000
