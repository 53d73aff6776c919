"""A whole request for assistance in a real browser (Debian's chromium through Playwright), each
authority in a browser context of its own: France's central authority files it through the form,
Kazakhstan's central authority reviews and accepts it, the court authorises the search, each
executing authority reports its result with an evidence item, and France's page shows the results
with the manifest's digest. Every page visited is kept as a screenshot and checked by axe-core.

Which authority acts next is the workflow's routing (the measures' child workflows): the test reads
it from the request's view in the API (``pending_actions``), as a person reads it in the inbox."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from api.body import utc_today
from tests.support.polling import until
from tests.web.helpers import seen, shown

pytestmark = pytest.mark.asyncio(loop_scope="session")

REQUESTING, REQUESTED = "fr-moj", "kz-gpo"


async def file_request(page: Page, ref: str) -> None:
    await page.goto("/assistance-requests")
    await seen(page, "assistance-requests-fr-moj")
    await page.get_by_role("link", name="File a request for assistance").click()
    await expect(page.get_by_role("heading", name="File a request for assistance")).to_be_visible()
    await page.get_by_label("Reference").fill(ref)
    await page.get_by_label("Requested state").select_option("KZ")
    await page.get_by_label("Issuing authority").fill("Juge d'instruction, Paris")
    await page.get_by_label("Purpose of the request").fill("Investigation of a fraud against investors")
    await page.get_by_label("Summary of the facts").fill("Funds of investors were moved through accounts in Almaty")
    await page.get_by_label("Article 1").fill("313-1")
    await page.get_by_label("ICCS code 1").fill("0701")
    await page.get_by_label("Description 1").fill("Fraud")
    await page.get_by_role("button", name="Add an offence").click()  # a second row, without JavaScript
    await page.get_by_label("Article 2").fill("324-1")
    await page.get_by_label("ICCS code 2").fill("0704")
    await page.get_by_label("Description 2").fill("Money laundering")
    await page.get_by_label("Measure 1 identifier").fill("m1")
    await page.get_by_label("Measure 1 kind").select_option("search")
    await page.get_by_label("Measure 1 description").fill("Search of the office")
    await page.get_by_label("Measure 1 person or object concerned").fill("an office")
    await page.get_by_role("button", name="Add a measure").click()
    await expect(page.get_by_label("Measure 1 description")).to_have_value("Search of the office")  # kept
    await page.get_by_label("Measure 2 identifier").fill("m2")
    await page.get_by_label("Measure 2 kind").select_option("identify_bank_accounts")
    await page.get_by_label("Measure 2 description").fill("Accounts held")
    await page.get_by_label("Measure 2 person or object concerned").fill("a company")
    await page.get_by_label("Urgent").check()
    await seen(page, "request-new")
    await page.get_by_role("button", name="File the request").click()


async def view_of(api_url: str, ref: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        answer = await client.get(f"/v1/assistance-requests/{ref}",
                                  headers={"Authorization": f"Bearer demo-{REQUESTING}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_whole_request_for_assistance(context_for, api_url):
    ref = f"FR-B-{uuid.uuid4().hex[:8]}"
    fr = (await context_for(REQUESTING)).pages[0]
    kz = (await context_for(REQUESTED)).pages[0]

    await file_request(fr, ref)
    await expect(fr.get_by_role("heading", name=f"Request for assistance {ref}")).to_be_visible()
    await expect(fr.get_by_text("Under review").first).to_be_visible()
    await seen(fr, "request-filed-fr-moj")

    review = kz.get_by_role("heading", name="Review the request")
    await shown(kz, review, f"/assistance-requests/{ref}")
    await kz.get_by_label("Accept").check()
    view = await view_of(api_url, ref)
    assert {m["id"]: m["kind"] for m in view["measures"]} == {"m1": "search", "m2": "identify_bank_accounts"}
    if any(m["dual_criminality"] == "needs_review" for m in view["measures"]):
        await kz.get_by_label("Dual criminality (when a coercive measure needs review)").select_option("satisfied")
    await seen(kz, "request-review-kz-gpo")
    await kz.get_by_role("button", name="Record the review").click()
    await expect(kz.get_by_role("status")).to_have_text("Review recorded.")
    await seen(kz, "request-accepted-kz-gpo")

    contexts: dict[str, BrowserContext] = {}
    acted: list[tuple[str, str, str]] = []
    today = utc_today().isoformat()

    async def next_acts() -> tuple[list[tuple[str, str, str]], dict[str, Any]] | None:
        """What waits that was not done yet, once the view shows it (or the results, once all is done)."""
        view = await view_of(api_url, ref)
        pending = [(p["authority"], p["action"], p["measure_id"]) for p in view["pending_actions"]]
        pending = [p for p in pending if p not in acted]
        return (pending, view) if pending or view["results"] else None

    for _ in range(10):  # the court's authorisation first, then the results, until nothing waits
        pending, view = await until(next_acts, "the request's measures waiting, or its results", seconds=30)
        if not pending:
            break
        for authority, action, measure in pending:
            if authority not in contexts:
                contexts[authority] = await context_for(authority)
            page = contexts[authority].pages[0]
            if action == "authorise_measure":
                form = page.locator("form", has=page.get_by_role("heading", name=f"Authorise measure {measure}"))
                await shown(page, form, f"/assistance-requests/{ref}")
                await form.get_by_label("Granted").check()
                await seen(page, f"request-authorise-{measure}-{authority}")
                await form.get_by_role("button", name="Record the authorisation").click()
                await expect(page.get_by_role("status")).to_have_text("Authorisation recorded.")
            else:
                assert action == "report_result", action
                form = page.locator("form", has=page.get_by_role("heading",
                                                                 name=f"Report the result of measure {measure}"))
                await shown(page, form, f"/assistance-requests/{ref}")
                await form.get_by_label("Executed", exact=True).check()
                await form.get_by_label("Item 1").fill(f"e-{measure}")
                await form.get_by_label("Description 1").fill(f"Evidence of measure {measure}")
                digest = hashlib.sha256(f"{ref}/{measure}".encode()).hexdigest()
                await form.get_by_label("SHA-256 digest 1").fill(digest)
                await form.get_by_label("Collected on 1").fill(today)
                await seen(page, f"request-result-{measure}-{authority}")
                await form.get_by_role("button", name="Report the result").click()
                await expect(page.get_by_role("status")).to_have_text("Result reported.")
            await seen(page, f"request-{action}-{measure}-done-{authority}")
            acted.append((authority, action, measure))
    assert view["stage"] == "completed", view["stage"]
    assert sorted(acted) == [("kz-afm", "report_result", "m2"), ("kz-court", "authorise_measure", "m1"),
                             ("kz-police", "report_result", "m1")]

    results = fr.get_by_role("heading", name="Results")
    await shown(fr, results, f"/assistance-requests/{ref}")
    section = fr.get_by_role("region", name="Results")
    await expect(section.get_by_text(view["results"]["manifest_sha256"], exact=True)).to_be_visible()
    for measure in ("m1", "m2"):
        await expect(section.get_by_role("cell", name=f"Evidence of measure {measure}")).to_be_visible()
    await expect(fr.get_by_text("Completed").first).to_be_visible()
    await seen(fr, "request-results-fr-moj")
