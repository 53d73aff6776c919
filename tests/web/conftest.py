"""The browser harness: the web application (``web/``, mounted at ``/`` of the API app) in Debian's
chromium (``/usr/bin/chromium``, installed by the set-up when missing; never a downloaded browser),
driven by Playwright's async API on the session's event loop.

Fixtures:

- ``browser`` (session): one headless chromium.
- ``web_url`` (session): the app in dev mode (demo keys) over real HTTP on a loopback port, with a
  real worker on the session's Temporal dev server: the ``api_url`` of ``tests/conftest.py``.
- ``context_for(authority_id, **options)`` (a factory): a new browser context, its own cookies (one
  person), already signed in as that authority with its demo key; its first page,
  ``context.pages[0]``, is at ``/inbox``. ``options`` go to ``browser.new_context`` (``locale="ru-RU"``).
  The contexts are closed when the test ends.
- ``page``: a page of a new signed-out context.

Every context of the harness is watched (``tests/web/helpers.py``): console errors, uncaught
exceptions and failed requests are recorded per page, and a request to any host other than the
app's (a CDN) is blocked and recorded. Helpers, imported from ``tests.web.helpers``:
``assert_no_page_errors(page)`` (``page_errors(page)`` to read them), ``screenshot(page, name)``
(a full-page PNG under ``tests/web/artifacts/screenshots/``, kept by CI: take one of every page a
test visits), ``axe(page)`` (the serious and critical axe-core violations) and
``assert_accessible(page)``. Relative URLs work: ``page.goto("/inbox")``.

A browser test::

    import pytest
    from playwright.async_api import expect

    from tests.web.helpers import assert_accessible, assert_no_page_errors, screenshot

    pytestmark = pytest.mark.asyncio(loop_scope="session")

    async def test_each_authority_sees_its_own_inbox(context_for):
        kz = (await context_for("kz-gpo")).pages[0]
        uz = (await context_for("uz-gpo")).pages[0]
        await expect(kz.get_by_role("heading", name="Inbox")).to_be_visible()
        await screenshot(kz, "inbox-kz-gpo")
        await assert_accessible(kz)
        assert_no_page_errors(kz)

Prefer what a person sees (``get_by_role``, ``get_by_label``, ``get_by_text``) to CSS selectors, and
Playwright's ``expect``, which waits, to reading the page once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.web.helpers import launch, new_context, sign_in


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def web_url(api_url: str) -> str:
    """``api_url`` is already the app as the web application needs it: ``create_app`` in dev mode
    on a free loopback port, against the session's dev server with a worker running."""
    return api_url


@pytest_asyncio.fixture(loop_scope="session")
async def context_for(browser: Browser, web_url: str) -> AsyncIterator[Callable[..., Awaitable[BrowserContext]]]:
    contexts: list[BrowserContext] = []

    async def signed_in(authority_id: str, **options: Any) -> BrowserContext:
        context = await new_context(browser, web_url, **options)
        contexts.append(context)
        await sign_in(await context.new_page(), authority_id)
        return context

    try:
        yield signed_in
    finally:
        for context in contexts:
            await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, web_url: str) -> AsyncIterator[Page]:
    context = await new_context(browser, web_url)
    try:
        yield await context.new_page()
    finally:
        await context.close()
