"""The browser harness works: the API's own HTML page (Swagger UI at ``/docs``, served offline by
``api/docs.py``) loads in Debian's chromium with no request leaving the app's origin and is kept
as a screenshot; the watch records what goes wrong on a page; and the sign-in helper, the separate
contexts and the accessibility check work against a stub of the sign-in page the web application
has (``form#api-key``, its field ``api_key`` and its button, then ``/inbox``)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from playwright.async_api import Browser, Page, expect

from tests.support import serve
from tests.web.helpers import (SERIOUS, assert_accessible, assert_no_page_errors, axe, new_context, page_errors,
                               screenshot, sign_in)

pytestmark = pytest.mark.asyncio(loop_scope="session")

PNG = b"\x89PNG\r\n\x1a\n"


async def test_the_api_docs_render_in_chromium_with_nothing_from_another_host(page: Page, web_url: str):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = await page.goto("/docs")
    assert response is not None and response.ok
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("treatyflow")
    await expect(page.locator(".opblock").first).to_be_visible()  # the operations, from /openapi.json
    await page.wait_for_load_state("networkidle")

    shot = await screenshot(page, "api-docs")
    assert shot.read_bytes().startswith(PNG)
    origin = urlsplit(web_url)[:2]
    assert f"{web_url}/openapi.json" in requested
    assert [url for url in requested if urlsplit(url)[:2] != origin and not url.startswith("data:")] == []
    assert_no_page_errors(page)
    assert all(v["impact"] in SERIOUS for v in await axe(page))  # axe-core runs, from the package


async def test_the_watch_records_console_errors_uncaught_exceptions_and_requests_to_other_hosts(page: Page):
    await page.goto("/docs")
    assert_no_page_errors(page)
    async with page.expect_event("requestfailed"):
        await page.evaluate("fetch('https://cdn.example.org/lib.js').catch(() => {})")
    async with page.expect_console_message(lambda message: "an error in the console" in message.text):
        await page.evaluate("console.error('an error in the console')")
    async with page.expect_event("pageerror"):
        await page.evaluate("setTimeout(() => { throw new Error('uncaught in the page') })")

    problems = "\n".join(page_errors(page))
    assert "request to another host than the app's: GET https://cdn.example.org/lib.js" in problems
    assert "console error: an error in the console" in problems
    assert "uncaught exception: uncaught in the page" in problems
    with pytest.raises(AssertionError, match="cdn.example.org"):
        assert_no_page_errors(page)


def stub_app() -> FastAPI:
    """The sign-in of the web application as the harness expects it, and a page axe objects to."""
    app = FastAPI()

    def html(title: str, body: str) -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                            f'<title>{title}</title><link rel="icon" href="data:,"></head>'
                            f'<body><main><h1>{title}</h1>{body}</main></body></html>')

    @app.get("/sign-in")
    async def form() -> HTMLResponse:
        return html("Sign in", '<form id="api-key" method="post" action="/sign-in">'
                               '<label for="key">API key</label><input id="key" name="api_key" type="password">'
                               '<button type="submit">Sign in</button></form>')

    @app.post("/sign-in")
    async def signed_in(request: Request) -> RedirectResponse:
        key = parse_qs((await request.body()).decode())["api_key"][0]
        response = RedirectResponse("/inbox", status_code=303)
        response.set_cookie("who", key.removeprefix("demo-"), httponly=True, samesite="lax")
        return response

    @app.get("/inbox")
    async def inbox(request: Request) -> HTMLResponse:
        return html("Inbox", f"<p>Signed in as {request.cookies.get('who', 'nobody')} (Входящие)</p>")

    @app.get("/inaccessible")
    async def inaccessible() -> HTMLResponse:
        return html("Inaccessible", '<img src="data:,">')

    return app


async def test_sign_in_separate_contexts_and_the_accessibility_check_on_a_stub(browser: Browser):
    async with serve(stub_app()) as url:
        kz, uz = await new_context(browser, url), await new_context(browser, url)
        try:
            for context, authority in ((kz, "kz-gpo"), (uz, "uz-gpo")):
                await sign_in(await context.new_page(), authority)
            for context, authority in ((kz, "kz-gpo"), (uz, "uz-gpo")):
                inbox = context.pages[0]
                await expect(inbox.get_by_text(f"Signed in as {authority}")).to_be_visible()
                await screenshot(inbox, f"stub-inbox-{authority}")
                await assert_accessible(inbox)
                assert_no_page_errors(inbox)

            await inbox.goto("/inaccessible")
            with pytest.raises(AssertionError, match=r"image-alt \(critical\)[^\n]*\n\s+img"):
                await assert_accessible(inbox)
        finally:
            await kz.close()
            await uz.close()
