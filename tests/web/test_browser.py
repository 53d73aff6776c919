"""The web application in a real browser (Debian's chromium through Playwright): whole cases
worked by their authorities, each in a browser context of its own, as separate people; every page
they visit is kept as a screenshot and checked by axe-core for serious or critical violations."""

from __future__ import annotations

import time
import uuid

import pytest
from playwright.async_api import Page, expect

from stores.users import new_user, open_users
from tests.web.helpers import seen, session_cookie, shown
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def open_transfer(page: Page, reference: str) -> None:
    body = transfer_body()
    await page.goto("/transfers/new")
    await page.get_by_label("Reference").fill(reference)
    await page.get_by_label("Administering state").select_option("UZ")
    await page.get_by_label("Full name").fill(body["person"]["full_name"])
    await page.get_by_label("Date of birth").fill(body["person"]["date_of_birth"])
    await page.get_by_label("Citizenships").fill("UZ")
    await page.get_by_label("Court").fill(body["judgment"]["court"])
    await page.get_by_label("Date of the judgment").fill(body["judgment"]["date"])
    await page.get_by_label("Article 1").fill("188")
    await page.get_by_label("ICCS code 1").fill("0502")
    await page.get_by_label("Description 1").fill("Theft")
    await page.get_by_role("button", name="Add an offence").click()  # a second row, without JavaScript
    await page.get_by_label("Article 2").fill("190")
    await page.get_by_label("Description 2").fill("Fraud")
    await page.get_by_label("Start of the sentence").fill(body["sentence"]["start_date"])
    await page.get_by_label("Years", exact=True).fill("5")
    await page.get_by_label("Days of pre-trial detention credited").fill("120")
    await page.get_by_label("Signed on").fill(body["declaration"]["signed_on"])
    await seen(page, "transfer-new")
    await page.get_by_role("button", name="Open the case").click()
    await expect(page.get_by_role("heading", name=f"Transfer {reference}")).to_be_visible()


async def decide(page: Page, reference: str, consent_label: str, button: str, name: str) -> None:
    await page.goto(f"/transfers/{reference}")
    await page.get_by_label(consent_label).check()
    await seen(page, name)
    await page.get_by_role("button", name=button).click()


async def test_a_whole_transfer_by_four_authorities(context_for):
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    kz = (await context_for("kz-gpo")).pages[0]
    uz = (await context_for("uz-gpo")).pages[0]
    penal = (await context_for("uz-penal")).pages[0]
    await seen(kz, "inbox-kz-gpo")

    await open_transfer(kz, ref)
    await expect(kz.get_by_text("Awaiting the consents").first).to_be_visible()
    await expect(kz.get_by_text("188").first).to_be_visible()
    await seen(kz, "transfer-awaiting-consents")

    await uz.goto("/inbox")
    await uz.get_by_role("button", name="Русский").click()  # Uzbekistan's officer works in Russian
    await expect(uz.get_by_role("heading", name="Входящие")).to_be_visible()
    await expect(uz.get_by_role("link", name=ref)).to_be_visible()
    await seen(uz, "inbox-uz-gpo-ru")
    await uz.get_by_role("link", name=ref).click()
    await expect(uz.get_by_role("heading", name="Решение от имени UZ")).to_be_visible()
    await uz.get_by_label("Согласие").check()
    await seen(uz, "transfer-decide-ru")
    await uz.get_by_role("button", name="Внести решение").click()
    await expect(uz.get_by_role("status")).to_have_text("Решение зарегистрировано.")

    await decide(kz, ref, "Consent", "Record the decision", "transfer-decide-kz")
    await expect(kz.get_by_role("status")).to_have_text("Decision recorded.")

    await penal.goto(f"/transfers/{ref}")
    confirm = penal.get_by_role("heading", name="Confirm the handover")
    await shown(penal, confirm)  # what follows an act comes a moment later
    await seen(penal, "transfer-handover")
    await penal.get_by_role("button", name="Confirm the handover").click()
    await expect(penal.get_by_role("status")).to_have_text("Handover confirmed.")
    await expect(penal.get_by_text("Transferred").first).to_be_visible()
    await seen(penal, "transfer-transferred")

    await kz.goto(f"/transfers/{ref}")
    trail = kz.locator("table.trail")
    for actor, action in (("uz-gpo", "decision_consent"), ("kz-gpo", "decision_consent"),
                          ("uz-penal", "handover_confirmed")):
        await expect(trail.locator("tr", has_text=action).filter(has_text=actor)).to_have_count(1)


async def test_a_third_state_is_shown_no_such_case(context_for):
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    kz = (await context_for("kz-gpo")).pages[0]
    await open_transfer(kz, ref)
    fr = (await context_for("fr-moj")).pages[0]
    response = await fr.goto(f"/transfers/{ref}")
    assert response is not None and response.status == 404
    await expect(fr.get_by_role("heading", name="Not found")).to_be_visible()
    await seen(fr, "not-found-fr-moj", allow=("status of 404",))


async def test_a_field_error_is_shown_beside_its_field(context_for):
    kz = (await context_for("kz-gpo")).pages[0]
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    await open_transfer(kz, ref)
    await kz.get_by_label("Refuse").check()
    await kz.get_by_role("button", name="Record the decision").click()  # refusing without grounds
    error = kz.locator("fieldset.invalid .error")
    await expect(error).to_have_text("grounds are required to refuse: cite at least one")
    await seen(kz, "transfer-decide-field-error", allow=("status of 422",))


async def test_the_sign_in_page_in_both_languages(page: Page):
    await page.goto("/sign-in")
    await expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    await seen(page, "sign-in")
    await page.get_by_role("button", name="Русский").click()
    await expect(page.get_by_role("heading", name="Войти", exact=True)).to_be_visible()
    await seen(page, "sign-in-ru")


async def test_a_search_by_the_persons_name_finds_the_case(context_for):
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    kz = (await context_for("kz-gpo")).pages[0]
    await open_transfer(kz, ref)
    await kz.goto("/transfers")
    await kz.get_by_label("Sentenced person's name").fill(transfer_body()["person"]["full_name"].lower())
    await kz.get_by_role("button", name="Filter").click()
    row = kz.get_by_role("row").filter(has=kz.get_by_role("link", name=ref))
    await shown(kz, row)  # what follows an act comes a moment later
    await expect(row).to_contain_text(transfer_body()["person"]["full_name"])
    await seen(kz, "transfers-found-by-name")


async def test_a_person_takes_an_inbox_item_and_the_audit_trail_names_them(context_for, page: Page, api_settings):
    username = f"nodira.{uuid.uuid4().hex[:6]}"
    await open_users(None, api_settings.data_dir).add(
        new_user(username, authority="uz-gpo", display_name="Nodira Karimova", password="a long enough password"))
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    kz = (await context_for("kz-gpo")).pages[0]
    await open_transfer(kz, ref)

    await page.goto("/sign-in")
    await page.get_by_label("User name").fill(username)
    await page.get_by_label("Password").fill("a long enough password")
    await page.locator("form#password").get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=ref))
    await shown(page, row)  # what follows an act comes a moment later
    await row.get_by_role("button", name="I'll handle this").click()
    await page.get_by_label("mine").check()
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_role("row").filter(has=page.get_by_role("link", name=ref))).to_contain_text(username)
    await seen(page, "inbox-mine")
    await page.get_by_role("link", name=ref).click()
    trail = page.locator("table.trail")
    await expect(trail.locator("tr", has_text="assigned")).to_contain_text(f"uz-gpo ({username})")
    await seen(page, "transfer-assigned")


async def test_a_forged_csrf_token_is_refused(context_for):
    ref = f"KZ-B-{uuid.uuid4().hex[:8]}"
    kz = (await context_for("kz-gpo")).pages[0]
    await open_transfer(kz, ref)
    decide_form = kz.locator("form", has=kz.get_by_role("button", name="Record the decision"))
    await decide_form.locator("input[name=csrf_token]").evaluate("field => field.value = 'forged'")
    await kz.get_by_label("Consent").check()
    await kz.get_by_role("button", name="Record the decision").click()
    await expect(kz.get_by_role("heading", name="Not allowed")).to_be_visible()
    await seen(kz, "csrf-refused", allow=("status of 403",))
    await kz.goto(f"/transfers/{ref}")
    await expect(kz.get_by_text("No decision yet.")).to_be_visible()  # nothing was done


async def test_an_expired_session_is_sent_to_sign_in(context_for, web_url):
    context = await context_for("kz-gpo")
    kz = context.pages[0]
    await context.add_cookies([{"name": "treatyflow_session", "value": session_cookie("kz-gpo", time.time() - 9 * 3600),
                                "url": web_url}])
    await kz.goto("/inbox")
    await expect(kz).to_have_url(f"{web_url}/sign-in?next=/inbox")
    await expect(kz.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


async def test_the_lists_the_registry_and_the_statistics_are_accessible(context_for):
    kz = (await context_for("kz-gpo")).pages[0]
    for path, heading, name in (("/transfers", "Transfers", "transfers"),
                                ("/assistance-requests", "Requests for assistance", "requests"),
                                ("/treaties", "Treaties", "treaties"),
                                ("/treaties/kz-uz-transfer-2021", None, "treaty"),
                                ("/statistics", "Statistics of KZ", "statistics")):
        await kz.goto(path)
        if heading:
            await expect(kz.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        await seen(kz, name)
    await kz.get_by_role("button", name="Русский").click()
    await expect(kz.get_by_role("heading", name="Статистика KZ", exact=False)).to_be_visible()
    await seen(kz, "statistics-ru")
