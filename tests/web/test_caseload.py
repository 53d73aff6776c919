"""The caseload at a glance in a real browser: the statistics page shows the caller state's cases by
stage and partner state, what is overdue and how long each stage took, as charts with the numbers
beside them, and its CSV export downloads the same figures (UTF-8 with a byte order mark, so that a
spreadsheet reads the Russian labels). The cases are transfers from the United Kingdom to Italy,
which no other test opens: the United Kingdom's figures are this test's cases alone."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from tests.support import key, poll
from tests.web.helpers import seen
from treatyflow.samples import BASE, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def gb_to_it(api: httpx.AsyncClient) -> str:
    body = transfer_body(opening_state="GB", sentencing_state="GB", administering_state="IT",
                         person={**BASE["person"], "citizenships": ["IT"]})
    r = await api.post("/v1/transfers", json=body, headers=key("gb-ukca"))
    assert r.status_code == 201 and r.json()["stage"] == "awaiting_consents", r.text
    return body["reference"]


async def stats_of_gb(api: httpx.AsyncClient) -> dict[str, Any]:
    r = await api.get("/v1/stats", headers=key("gb-ukca"))
    assert r.status_code == 200, r.text
    return r.json()["kinds"]["transfer"]


async def test_the_caseload_in_charts_with_numbers_and_as_a_csv_download(context_for, api_url):
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as api:
        consented, waiting = await gb_to_it(api), await gb_to_it(api)
        await asyncio.sleep(1.0)
        for by, state in (("gb-ukca", "GB"), ("it-moj", "IT")):
            r = await api.post(f"/v1/transfers/{consented}/decisions", headers=key(by),
                               json={"state": state, "decision": "consent"})
            assert r.status_code == 200, r.text
        figures = await poll(lambda: stats_of_gb(api),
                             lambda f: "awaiting_consents" in f["stage_seconds"] and f["by_stage"] == {
                                 "awaiting_consents": 1, "awaiting_handover": 1}, timeout=12.0, every=0.5)
    assert figures["by_stage_and_partner"] == {"awaiting_consents": {"IT": 1}, "awaiting_handover": {"IT": 1}}

    gb = (await context_for("gb-ukca")).pages[0]
    await gb.goto("/statistics")
    transfers = gb.get_by_role("region", name="Transfers")
    table = transfers.get_by_role("table", name="Cases by stage and partner state")
    await expect(table.get_by_role("columnheader")).to_have_text(["Stage", "IT", "Total"])
    await expect(table.get_by_role("row", name="Awaiting the consents awaiting_consents")).to_have_text(
        "Awaiting the consents awaiting_consents11")  # the stage; ES: 1; in all: 1
    await expect(table.get_by_role("row", name="Awaiting the handover awaiting_handover")).to_have_text(
        "Awaiting the handover awaiting_handover11")
    # how long the consents took, as a bar with its median and p90 beside it (a second: 0.0 days)
    took = transfers.get_by_role("figure").filter(has_text="Days spent in each stage")
    await expect(took.get_by_role("img")).to_contain_text("Awaiting the consents")
    await expect(took.get_by_role("img")).to_contain_text("median 0.0, p90 0.0")
    await expect(took.get_by_role("row", name="Awaiting the consents awaiting_consents")).to_have_text(
        "Awaiting the consents awaiting_consents10.00.0")  # one case
    so_far = transfers.get_by_role("figure").filter(has_text="Days in the current stage so far")
    await expect(so_far.get_by_role("row", name="Awaiting the handover awaiting_handover")).to_contain_text("1")
    await expect(transfers.get_by_role("figure").filter(has_text="Overdue actions by action")).to_contain_text("None.")
    await seen(gb, "statistics-caseload")

    async with gb.expect_download() as downloading:
        await gb.get_by_role("link", name="Download the caseload as CSV").click()
    download = await downloading.value
    data = (await download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and download.suggested_filename.startswith("caseload-GB-")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    transfer = [r for r in rows if r["kind"] == "transfer"]
    assert {(r["stage"], r["partner"], r["label"], r["cases"]) for r in transfer
            if r["figure"] == "by_stage_and_partner"} == {("awaiting_consents", "IT", "Awaiting the consents", "1"),
                                                          ("awaiting_handover", "IT", "Awaiting the handover", "1")}
    [consents] = [r for r in transfer if r["figure"] == "time_in_stage" and r["stage"] == "awaiting_consents"]
    assert (consents["cases"], consents["median_days"], consents["p90_days"]) == ("1", "0.0", "0.0")
    assert {r["stage"]: r["cases"] for r in transfer if r["figure"] == "time_in_current_stage"} == {
        "awaiting_consents": "1", "awaiting_handover": "1"}
    assert not [r for r in transfer if r["figure"].startswith("overdue")]

    # in Russian: the page, and the CSV's labels in Cyrillic
    await gb.get_by_role("button", name="Русский").click()
    await expect(gb.get_by_role("heading", name="Дела по стадиям и государствам-партнёрам").first).to_be_visible()
    await seen(gb, "statistics-caseload-ru")
    async with gb.expect_download() as downloading:
        await gb.get_by_role("link", name="Скачать сведения о делах (CSV)").click()
    russian = (await (await downloading.value).path()).read_bytes().decode("utf-8-sig")
    assert "transfer,by_stage_and_partner,awaiting_consents,IT,,Ожидаются согласия государств,1,," in russian
