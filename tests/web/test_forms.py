"""The web application over real HTTP, without a browser: sessions, CSRF, the forms' answers
(a field error at its field with what was typed kept, a 409 said in words), who may see what,
the audit trail naming the person, and the Russian interface. The browser scenarios are in
tests/web/test_browser.py."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid

import httpx
import pytest

from stores.users import new_user, open_users
from tests.web.helpers import session_cookie
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def errors_of(html: str) -> list[str]:
    return re.findall(r'class="error"[^>]*>([^<]+)<', html)


async def signed_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in with an API key; the page's CSRF token afterwards."""
    page = await client.get("/sign-in")
    answer = await client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "api_key": key, "next": "/inbox"})
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox", answer.text[:300]
    return csrf_of((await client.get("/inbox")).text)


def transfer_form(token: str, reference: str, **changes: str) -> dict[str, str]:
    body = transfer_body()
    form = {"csrf_token": token, "reference": reference, "administering_state": "UZ",
            "initiated_by": "sentenced_person", "person.full_name": body["person"]["full_name"],
            "person.date_of_birth": body["person"]["date_of_birth"], "person.citizenships": "UZ",
            "judgment.court": body["judgment"]["court"], "judgment.date": body["judgment"]["date"],
            "judgment.final": "on", "row": "0", "offence.0.article": "188", "offence.0.iccs": "0502",
            "offence.0.description": "Theft", "sentence.start_date": body["sentence"]["start_date"],
            "sentence.years": "5", "sentence.pretrial_credit_days": "120",
            "declaration.signed_on": body["declaration"]["signed_on"], "declaration.voluntary": "on",
            "declaration.informed_of_consequences": "on", "action": "open"}
    return {**form, **changes}


def reference() -> str:
    return f"KZ-WEB-{uuid.uuid4().hex[:8]}"


async def test_a_form_without_the_sessions_csrf_token_is_refused_and_nothing_is_done(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        await signed_in(client, "demo-kz-gpo")
        ref = reference()
        answer = await client.post("/transfers/new", data=transfer_form("forged", ref))
        assert answer.status_code == 403 and "did not come from this site" in answer.text
        assert (await client.get(f"/transfers/{ref}")).status_code == 404  # nothing was opened


async def test_signing_in_needs_the_pages_token_too(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        answer = await client.post("/sign-in", data={"csrf_token": "forged", "api_key": "demo-kz-gpo"})
        assert answer.status_code == 403
        assert (await client.get("/inbox")).status_code == 303  # still signed out


async def test_a_session_idle_for_more_than_eight_hours_is_sent_to_sign_in(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        client.cookies.set("treatyflow_session", session_cookie("kz-gpo", time.time() - 7 * 3600))
        assert (await client.get("/inbox")).status_code == 200  # seven idle hours: still signed in
    async with httpx.AsyncClient(base_url=api_url) as client:
        client.cookies.set("treatyflow_session", session_cookie("kz-gpo", time.time() - 8 * 3600 - 60))
        answer = await client.get("/inbox")
        assert answer.status_code == 303 and answer.headers["location"] == "/sign-in?next=/inbox"


async def test_the_session_cookie_is_httponly_strict_and_forged_ones_are_anonymous(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        page = await client.get("/sign-in")
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        client.cookies.set("treatyflow_session", session_cookie("kz-gpo", time.time())[:-2] + "xx")
        assert (await client.get("/inbox")).status_code == 303


async def test_a_field_error_is_shown_at_its_field_with_what_was_typed_kept(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        ref = reference()
        answer = await client.post("/transfers/new", data=transfer_form(token, ref, **{"person.date_of_birth": "03/02/1985"}))
        assert answer.status_code == 422
        field = re.search(r'<div class="field invalid">\s*<label for="f-person-date_of_birth">.*?</div>', answer.text, re.S)
        assert field is not None, "the date of birth is not marked"
        assert 'value="03/02/1985"' in field.group(0) and "must be a date" in field.group(0)
        assert f'value="{ref}"' in answer.text  # the rest of what was typed is kept too


async def test_rows_of_offences_are_added_and_removed_without_javascript(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        form = transfer_form(token, reference(), action="add_offence")
        added = await client.post("/transfers/new", data=form)
        assert added.text.count('name="row"') == 2 and 'value="188"' in added.text
        removed = await client.post("/transfers/new", data={**form, "row": ["0", "1"], "action": "remove_offence:0"})
        assert removed.text.count('name="row"') == 1 and 'name="offence.1.article"' in removed.text


async def test_a_third_state_is_told_no_such_case(api_url):
    async with httpx.AsyncClient(base_url=api_url) as kz, httpx.AsyncClient(base_url=api_url) as fr:
        token = await signed_in(kz, "demo-kz-gpo")
        ref = reference()
        assert (await kz.post("/transfers/new", data=transfer_form(token, ref))).status_code == 303
        fr_token = await signed_in(fr, "demo-fr-moj")
        page = await fr.get(f"/transfers/{ref}")
        assert page.status_code == 404 and "Not found" in page.text and ref not in page.text.split("<main")[1]
        act = await fr.post(f"/transfers/{ref}/decisions", data={"csrf_token": fr_token, "decision": "consent"})
        assert act.status_code == 404


async def test_a_second_decision_for_a_state_is_said_in_words(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        ref = reference()
        await client.post("/transfers/new", data=transfer_form(token, ref))
        first = await client.post(f"/transfers/{ref}/decisions", data={"csrf_token": token, "decision": "consent"})
        assert first.status_code == 303 and first.headers["location"] == f"/transfers/{ref}?done=decisions"
        again = await client.post(f"/transfers/{ref}/decisions", data={"csrf_token": token, "decision": "consent"})
        assert again.status_code == 409
        assert errors_of(again.text) == ["a decision for KZ is already recorded: each state decides once"]


async def test_a_person_signs_in_with_a_password_and_the_audit_trail_names_them(api_url, api_settings):
    users = open_users(None, api_settings.data_dir)
    await users.add(new_user("a.nurlanova", authority="kz-gpo", display_name="Aigerim Nurlanova", password=PASSWORD))
    async with httpx.AsyncClient(base_url=api_url) as client:
        page = await client.get("/sign-in")
        wrong = await client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "username": "a.nurlanova",
                                                    "password": "not the password!"})
        assert wrong.status_code == 401 and (await client.get("/inbox")).status_code == 303
        right = await client.post("/sign-in", data={"csrf_token": csrf_of(wrong.text), "username": "a.nurlanova",
                                                    "password": PASSWORD, "next": "/inbox"})
        assert right.status_code == 303
        token = csrf_of((await client.get("/inbox")).text)
        ref = reference()
        await client.post("/transfers/new", data=transfer_form(token, ref))
        await client.post(f"/transfers/{ref}/decisions", data={"csrf_token": token, "decision": "consent"})
        view = (await client.get(f"/v1/transfers/{ref}", headers={"Authorization": "Bearer demo-kz-gpo"})).json()
        decided = [e for e in view["events"] if e["action"] == "decision_consent"]
        assert [(e["actor"], e["user"]) for e in decided] == [("kz-gpo", "a.nurlanova")]
        assert "kz-gpo (a.nurlanova)" in (await client.get(f"/transfers/{ref}")).text
        user = await users.get("a.nurlanova")
        await users.replace(user.model_copy(update={"disabled": True}))  # `treatyflow users disable`
        assert (await client.get("/inbox")).status_code == 303  # signed out at the next request


async def test_the_interface_speaks_russian_from_accept_language_and_remembers_the_switch(api_url):
    async with httpx.AsyncClient(base_url=api_url, headers={"Accept-Language": "ru-RU,ru;q=0.9"}) as client:
        page = await client.get("/sign-in")
        assert '<html lang="ru">' in page.text and "Войти" in page.text and "Ключ API" in page.text
        token = await signed_in(client, "demo-kz-gpo")
        assert "Входящие" in (await client.get("/inbox")).text
        switched = await client.post("/language", data={"csrf_token": token, "lang": "en", "next": "/inbox"})
        assert switched.status_code == 303
        assert "<h1>Inbox</h1>" in (await client.get("/inbox")).text  # the switch wins over the header


async def test_five_wrong_passwords_hold_the_account_back_even_from_the_right_one(api_url, api_settings):
    users = open_users(None, api_settings.data_dir)
    await users.add(new_user("b.saidov", authority="uz-gpo", display_name="Bakhtiyor Saidov", password=PASSWORD))
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = csrf_of((await client.get("/sign-in")).text)
        for attempt in range(5):
            wrong = await client.post("/sign-in", data={"csrf_token": token, "username": "b.saidov",
                                                        "password": f"guess number {attempt}"})
            assert wrong.status_code == 401
        held = await client.post("/sign-in", data={"csrf_token": token, "username": "b.saidov", "password": PASSWORD})
        assert held.status_code == 429 and "Too many attempts" in held.text
        assert (await client.get("/inbox")).status_code == 303
        # another account from the same address is not held back by it
        other = await client.post("/sign-in", data={"csrf_token": token, "api_key": "demo-uz-gpo", "next": "/inbox"})
        assert other.status_code == 303


async def test_a_request_for_assistance_through_its_pages_to_signed_evidence(api_url):
    """France files through the API; Kazakhstan reviews in its pages, the court authorises the
    coercive measures and each executing authority reports its result with an evidence item; the
    request's page then shows the results and the manifest's digest."""
    from treatyflow.samples import assistance_body

    body = assistance_body()
    ref = body["reference"]
    api = {"Authorization": "Bearer demo-fr-moj"}
    async with httpx.AsyncClient(base_url=api_url) as client:
        assert (await client.post("/v1/assistance-requests", json=body, headers=api)).status_code == 201
        token = await signed_in(client, "demo-kz-gpo")
        reviewed = await client.post(f"/assistance-requests/{ref}/review",
                                     data={"csrf_token": token, "decision": "accept", "dual_criminality": "satisfied"})
        assert reviewed.status_code == 303, errors_of(reviewed.text)

    async def pending() -> list[tuple[str, str, str]]:
        async with httpx.AsyncClient(base_url=api_url) as client:
            view = (await client.get(f"/v1/assistance-requests/{ref}", headers=api)).json()
        return [(p["authority"], p["action"], p["measure_id"]) for p in view["pending_actions"]]

    from tests.support.polling import until

    for _ in range(10):  # authorisations first, then results, until nothing waits
        waiting = await until(pending, "the request's measures waiting", seconds=10)
        for authority, action, measure in waiting:
            async with httpx.AsyncClient(base_url=api_url) as client:
                token = await signed_in(client, f"demo-{authority}")
                page = (await client.get(f"/assistance-requests/{ref}")).text
                if action == "authorise_measure":
                    assert f"Authorise measure {measure}" in page
                    answer = await client.post(f"/assistance-requests/{ref}/measures/{measure}/authorisation",
                                               data={"csrf_token": token, "granted": "true"})
                else:
                    assert f"Report the result of measure {measure}" in page
                    answer = await client.post(f"/assistance-requests/{ref}/measures/{measure}/result", data={
                        "csrf_token": token, "outcome": "executed", "row": "0", "action": "report",
                        "evidence.0.item_id": f"e-{measure}", "evidence.0.description": "Bank statement",
                        "evidence.0.sha256": hashlib.sha256(measure.encode()).hexdigest(),
                        "evidence.0.collected_on": "2026-11-30"})
                assert answer.status_code == 303, errors_of(answer.text)
        async with httpx.AsyncClient(base_url=api_url) as client:
            view = (await client.get(f"/v1/assistance-requests/{ref}", headers=api)).json()
        if view["results"]:
            break
    assert view["stage"] == "completed"
    async with httpx.AsyncClient(base_url=api_url) as client:
        await signed_in(client, "demo-fr-moj")
        page = (await client.get(f"/assistance-requests/{ref}")).text
    assert view["results"]["manifest_sha256"] in page and "Bank statement" in page


async def person(api_url: str, users, username: str, authority: str, senior: bool = False) -> httpx.AsyncClient:
    """A client signed in as a new user of ``authority``."""
    await users.add(new_user(username, authority=authority, display_name=username.title(), password=PASSWORD,
                             senior=senior))
    client = httpx.AsyncClient(base_url=api_url)
    page = await client.get("/sign-in")
    signed = await client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "username": username,
                                                 "password": PASSWORD, "next": "/inbox"})
    assert signed.status_code == 303
    return client


async def test_a_person_takes_an_inbox_item_and_a_senior_gives_one_to_a_colleague(api_url, api_settings):
    users = open_users(None, api_settings.data_dir)
    tag = uuid.uuid4().hex[:6]
    clerk = await person(api_url, users, f"clerk.{tag}", "uz-gpo")
    chief = await person(api_url, users, f"chief.{tag}", "uz-gpo", senior=True)
    mine, theirs = reference(), reference()
    async with httpx.AsyncClient(base_url=api_url) as kz:
        token = await signed_in(kz, "demo-kz-gpo")
        for ref in (mine, theirs):
            assert (await kz.post("/transfers/new", data=transfer_form(token, ref))).status_code == 303

    async def inbox(client: httpx.AsyncClient, show: str) -> str:
        return (await client.get("/inbox", params={"show": show})).text

    async def listed(client: httpx.AsyncClient, ref: str, show: str = "all") -> bool:
        return ref in await inbox(client, show)

    from tests.support.polling import until

    await until(lambda: listed(clerk, mine), "the case in uz-gpo's inbox")
    await until(lambda: listed(clerk, theirs), "the other case in uz-gpo's inbox")
    token = csrf_of(await inbox(clerk, "all"))
    took = await clerk.post("/inbox/assign", data={"csrf_token": token, "action": "take", "kind": "transfer",
                                                   "reference": mine, "show": "mine"})
    assert took.status_code == 303
    await until(lambda: listed(clerk, mine, "mine"), "the taken item under mine")
    assert not await listed(clerk, mine, "unassigned") and await listed(clerk, theirs, "unassigned")

    # a clerk may not give an item to someone else; the senior may, to a colleague of the authority
    refused = await clerk.post("/inbox/assign", data={"csrf_token": token, "action": "assign", "kind": "transfer",
                                                      "reference": theirs, "user": f"chief.{tag}"})
    assert refused.status_code == 403
    chief_token = csrf_of(await inbox(chief, "all"))
    assert f'<option value="clerk.{tag}">' in await inbox(chief, "all")
    given = await chief.post("/inbox/assign", data={"csrf_token": chief_token, "action": "assign",
                                                    "kind": "transfer", "reference": theirs, "user": f"clerk.{tag}"})
    assert given.status_code == 303
    await until(lambda: listed(clerk, theirs, "mine"), "the given item under the clerk's")

    async with httpx.AsyncClient(base_url=api_url) as uz:
        view = (await uz.get(f"/v1/transfers/{theirs}", headers={"Authorization": "Bearer demo-uz-gpo"})).json()
    assigned = [(e["actor"], e["user"], e["detail"]) for e in view["events"] if e["action"] == "assigned"]
    assert assigned == [("uz-gpo", f"chief.{tag}", f"to clerk.{tag}")]
    # signed in with a key, nobody is named: nothing can be taken
    async with httpx.AsyncClient(base_url=api_url) as keyed:
        key_token = await signed_in(keyed, "demo-uz-gpo")
        keyless = await keyed.post("/inbox/assign", data={"csrf_token": key_token, "action": "take",
                                                          "kind": "transfer", "reference": theirs})
        assert keyless.status_code == 403
    await clerk.aclose()
    await chief.aclose()


def rows(html: str) -> dict[str, str]:
    """The inbox page's rows, by the reference each is for."""
    found = {}
    for row in html.split("<tr")[1:]:
        link = re.search(r'<a href="/(?:transfers|assistance-requests)/([^"]+)">', row)
        if link:
            found[link.group(1)] = row
    return found


async def inbox_rows(client: httpx.AsyncClient, show: str) -> dict[str, str]:
    """The first page of the inbox under ``show``."""
    return rows((await client.get("/inbox", params={"show": show})).text)


async def every_inbox_page(client: httpx.AsyncClient, show: str) -> list[dict[str, str]]:
    """Every page of the inbox under ``show``, following its "Next page" links."""
    pages: list[dict[str, str]] = []
    url: str | None = f"/inbox?show={show}"
    while url:
        html = (await client.get(url)).text
        pages.append(rows(html))
        following = re.search(r'<a href="(/inbox\?[^"]*page_token=[^"]+)">', html)
        url = following.group(1).replace("&amp;", "&") if following else None
        assert len(pages) < 100, "the inbox's pages never end"
    return pages


async def take(client: httpx.AsyncClient, kind: str, ref: str) -> None:
    token = csrf_of((await client.get("/inbox")).text)
    took = await client.post("/inbox/assign", data={"csrf_token": token, "action": "take", "kind": kind,
                                                    "reference": ref, "show": "all"})
    assert took.status_code == 303, took.text[:300]


async def test_mine_and_unassigned_are_the_whole_inbox_not_one_page_of_it(api_url, api_settings, dev_client):
    """More items than one page: the item the clerk took and one nobody took are older than fifty
    items a colleague took, so neither is on the first page of everyone's; "mine" shows the clerk's
    on its first page, "unassigned" the untaken one on its first page, and no taken item on any."""
    from tests.support.polling import until
    from treatyflow.cases import open_transfer
    from treatyflow.samples import transfer_request

    users = open_users(None, api_settings.data_dir)
    tag = uuid.uuid4().hex[:6]
    clerk = await person(api_url, users, f"clerk.{tag}", "uz-gpo")
    other = await person(api_url, users, f"other.{tag}", "uz-gpo")
    untaken, taken, *newer = [reference() for _ in range(52)]

    async def opened(refs: list[str]) -> None:
        await asyncio.gather(*(open_transfer(dev_client, transfer_request(reference=ref), "kz-gpo",
                                             api_settings.task_queue) for ref in refs))

    await opened([untaken])  # the oldest two, one after the other
    await opened([taken])
    for start in range(0, len(newer), 10):
        await opened(newer[start:start + 10])

    async def on_first_page(client: httpx.AsyncClient, show: str, refs: list[str]) -> bool:
        return set(refs) <= set(await inbox_rows(client, show))

    await until(lambda: on_first_page(clerk, "all", newer), "the fifty newest on the first page of uz-gpo's inbox")
    await take(clerk, "transfer", taken)
    for ref in newer:
        await take(other, "transfer", ref)
    first = await inbox_rows(clerk, "all")
    assert taken not in first and untaken not in first  # both beyond the first page of everyone's

    await until(lambda: on_first_page(clerk, "mine", [taken]), "the clerk's item on the first page of mine")
    mine = await inbox_rows(clerk, "mine")
    assert set(mine) == {taken} and f"clerk.{tag}" in mine[taken]
    await until(lambda: on_first_page(other, "mine", newer), "the colleague's fifty under theirs")
    await until(lambda: on_first_page(clerk, "unassigned", [untaken]),
                "the untaken item on the first page of unassigned")
    unassigned = {ref for page in await every_inbox_page(clerk, "unassigned") for ref in page}
    assert untaken in unassigned and not {taken, *newer} & unassigned
    everyone = {ref for page in await every_inbox_page(clerk, "all") for ref in page}
    assert {untaken, taken, *newer} <= everyone
    await clerk.aclose()
    await other.aclose()


async def test_an_item_is_nobodys_again_once_its_authority_has_acted(api_url, api_settings, dev_client):
    """Kazakhstan's clerk takes a request for review (the engine gets a keyed hash, never the user
    name) and asks France for information; when the answer brings the request back to Kazakhstan's
    review, nobody of it has taken it yet: it is under "unassigned", not the clerk's "mine", and its
    row names nobody."""
    from api.listing import ASSIGNMENT_INDEX
    from domain.names import assignee_index
    from tests.conftest import CODEC_KEYS
    from tests.support.polling import until
    from treatyflow.samples import assistance_body
    from workflows import search_attributes as sa

    users = open_users(None, api_settings.data_dir)
    tag = uuid.uuid4().hex[:6]
    clerk = await person(api_url, users, f"clerk.{tag}", "kz-gpo")
    body = assistance_body()
    ref = body["reference"]
    async with httpx.AsyncClient(base_url=api_url) as api:
        fr, kz = {"Authorization": "Bearer demo-fr-moj"}, {"Authorization": "Bearer demo-kz-gpo"}
        assert (await api.post("/v1/assistance-requests", json=body, headers=fr)).status_code == 201
        await until(lambda: on_first_page_of(clerk, "all", ref), "the request in kz-gpo's inbox")
        await take(clerk, "assistance", ref)
        await until(lambda: on_first_page_of(clerk, "mine", ref), "the request under the clerk's")
        assert ref not in await inbox_rows(clerk, "unassigned")
        described = await dev_client.get_workflow_handle(f"assistance:{ref}").describe()
        assert described.typed_search_attributes.get(sa.INBOX_ASSIGNMENTS) == [
            assignee_index(CODEC_KEYS.derived(ASSIGNMENT_INDEX), "kz-gpo", f"clerk.{tag}")]
        assert f"clerk.{tag}" not in str(described.raw_description.workflow_execution_info.search_attributes)

        asked = await api.post(f"/v1/assistance-requests/{ref}/review", headers=kz,
                               json={"decision": "request_information", "questions": "Which accounts?"})
        assert asked.status_code == 200, asked.text
        answered = await api.post(f"/v1/assistance-requests/{ref}/information", headers=fr,
                                  json={"answers": "All of them"})
        assert answered.status_code == 200, answered.text
        assert [p["authority"] for p in answered.json()["pending_actions"]] == ["kz-gpo"]  # awaited again

    await until(lambda: on_first_page_of(clerk, "unassigned", ref), "the request under unassigned again")
    assert ref not in await inbox_rows(clerk, "mine")
    row = (await inbox_rows(clerk, "all"))[ref]
    assert "nobody yet" in row and f"clerk.{tag}" not in row
    await take(clerk, "assistance", ref)  # and it can be taken again
    await until(lambda: on_first_page_of(clerk, "mine", ref), "the request under the clerk's again")
    await clerk.aclose()


async def on_first_page_of(client: httpx.AsyncClient, show: str, ref: str) -> bool:
    return ref in await inbox_rows(client, show)


async def test_the_statistics_page_draws_the_caseload_with_its_numbers(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        assert (await client.post("/transfers/new", data=transfer_form(token, reference()))).status_code == 303
        async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": "Bearer demo-kz-gpo"}) as api:
            stats = (await api.get("/v1/stats")).json()
        page = await client.get("/statistics")
        assert page.status_code == 200
        assert page.text.count("<svg") >= 2 and "<script" not in page.text  # by stage, by partner (and outcome)
        total = stats["kinds"]["transfer"]["total"]
        assert f"{total} cases" in page.text  # the numbers beside the charts are the API's
        for stage, n in stats["kinds"]["transfer"]["by_stage"].items():
            assert f"<code>{stage}</code></td><td>{n}</td>" in page.text


async def test_the_apis_refusals_are_shown_in_russian_on_a_russian_page(api_url):
    async with httpx.AsyncClient(base_url=api_url, headers={"Accept-Language": "ru"}) as client:
        token = await signed_in(client, "demo-kz-gpo")
        ref = reference()
        bad = await client.post("/transfers/new", data=transfer_form(token, ref, **{"person.date_of_birth": "1985"}))
        assert bad.status_code == 422
        assert "person.date_of_birth: значение должно быть датой вида ГГГГ-ММ-ДД, например 2026-03-01" in errors_of(bad.text)
        assert 'value="1985"' in bad.text
        assert (await client.post("/transfers/new", data=transfer_form(token, ref))).status_code == 303
        refused = await client.post(f"/transfers/{ref}/decisions", data={"csrf_token": token, "decision": "refuse"})
        assert "для отказа необходимо указать основания: хотя бы одно" in errors_of(refused.text)
