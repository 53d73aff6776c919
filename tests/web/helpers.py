"""The browser harness's helpers (the fixtures are in ``tests/web/conftest.py``, which says how to
write a browser test): Debian's chromium, installed when missing and launched with the flags that
work on a closed network; contexts whose pages are watched (console errors, uncaught exceptions,
failed requests, and any request to a host other than the app's, which is blocked); signing in
with a demo key; full-page screenshots kept as CI artifacts; axe-core accessibility checks."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.async_playwright import Axe
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.async_api import (
    Browser, BrowserContext, ConsoleMessage, Locator, Page, Request, Route, WebError, expect,
)

from api.keys import DEV_PREFIX
from tests.conftest import CODEC_KEYS

# Debian's chromium, never a browser Playwright downloads (`playwright install` is never run), and
# a font with Cyrillic glyphs so that Russian pages render (fontconfig alone may settle for one
# without them): each package with a file that shows it is installed.
CHROMIUM = Path("/usr/bin/chromium")
PACKAGES = {"chromium": CHROMIUM, "fonts-dejavu-core": Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")}
# Headless comes from launch(headless=True); nothing here reaches the network on its own.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).parent / "artifacts" / "screenshots"  # in .gitignore; kept by CI
SERIOUS = ("serious", "critical")  # the axe impacts a page must not have


def chromium_bin() -> Path:
    """Debian's chromium, with the packages it needs installed first when they are missing (as
    root, with apt-get); a test that needs it fails, never skips, when they cannot be."""
    missing = [name for name, marker in PACKAGES.items() if not marker.exists()]
    why = ""
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, timeout=900, capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            why = f": {e} {(e.stderr or b'').decode(errors='replace')[-2000:]}"
        missing = [name for name, marker in PACKAGES.items() if not marker.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not installed and cannot be installed here{why}: "
                    f"apt-get install {' '.join(missing)}")
    return CHROMIUM


async def launch(playwright: Any) -> Browser:
    """One headless chromium (``playwright`` from ``async_playwright()``); an installation runs in
    a thread, away from the event loop the session's servers and worker run on."""
    executable = await asyncio.to_thread(chromium_bin)
    return await playwright.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)


# What went wrong on each page, as readable lines; what no page owns counts against all the
# context's pages.
_problems: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _record(context: BrowserContext, page: Page | None, problem: str) -> None:
    for each in [page] if page is not None else context.pages:
        _problems.setdefault(each, []).append(problem)


def _page_of(request: Request) -> Page | None:
    try:
        return request.frame.page
    except Exception:  # a service worker's request has no frame (and service workers are blocked)
        return None


async def new_context(browser: Browser, base_url: str, also: tuple[str, ...] = (), **options: Any) -> BrowserContext:
    """A new context (its own cookies: one person) on the app at ``base_url`` (so ``page.goto("/inbox")``
    works), ``options`` passed to ``browser.new_context`` (``locale="ru-RU"``, ``viewport=...``).
    Its pages are watched: console errors, uncaught exceptions and failed requests are recorded
    (``page_errors``), and a request to any other origin than the app's (or those of the URLs in
    ``also``: an identity provider) is recorded and blocked."""
    app, allowed = _origin(base_url), {_origin(base_url), *map(_origin, also)}
    context = await browser.new_context(base_url=base_url, service_workers="block", **options)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            _record(context, message.page, f"console error: {message.text}" + (f" ({where})" if where else ""))

    def on_web_error(error: WebError) -> None:
        _record(context, error.page, f"uncaught exception: {error.error}")

    def on_request_failed(request: Request) -> None:
        if _origin(request.url) in allowed:  # the others are recorded as they are blocked
            _record(context, _page_of(request), f"request failed: {request.method} {request.url}: {request.failure}")

    def elsewhere(url: str) -> bool:
        return urlsplit(url).scheme in ("http", "https", "ws", "wss") and _origin(url) not in allowed

    async def block(route: Route, request: Request) -> None:
        _record(context, _page_of(request), f"request to another host than the app's: {request.method} {request.url}")
        await route.abort("blockedbyclient")

    context.on("console", on_console)
    context.on("weberror", on_web_error)
    context.on("requestfailed", on_request_failed)
    await context.route(elsewhere, block)
    return context


def page_errors(page: Page) -> list[str]:
    """What went wrong on ``page`` so far (console errors, uncaught exceptions, failed requests,
    requests to another host), in order."""
    return list(_problems.get(page, []))


def assert_no_page_errors(page: Page, allow: tuple[str, ...] = ()) -> None:
    """Fails listing what went wrong on ``page``; ``allow``: substrings of lines a test expects
    (``"status of 404"`` on a page that answers 404)."""
    problems = [p for p in page_errors(page) if not any(a in p for a in allow)]
    assert not problems, f"{len(problems)} problem(s) on {page.url}:\n" + "\n".join(f"  - {p}" for p in problems)


async def sign_in(page: Page, authority_id: str) -> None:
    """Signs ``page``'s context in as ``authority_id`` with its demo key (dev mode): the form
    ``form#api-key`` of ``/sign-in``, then the redirect to ``/inbox``."""
    await page.goto("/sign-in")
    await page.locator("form#api-key input[name=api_key]").fill(f"{DEV_PREFIX}{authority_id}")  # any language
    await page.locator("form#api-key button").click()
    await page.wait_for_url(lambda url: urlsplit(url).path.endswith("/inbox"))


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of ``page`` at ``tests/web/artifacts/screenshots/<name>.png`` (``name``
    made safe for a file name; an existing file is replaced), its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-.') or 'page'}.png"
    await page.screenshot(path=path, full_page=True)
    return path


async def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` (the bundled axe-core, injected; no network) whose impact
    is serious or critical, as axe reports them (``id``, ``impact``, ``help``, ``nodes``...)."""
    results = await Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in SERIOUS]


async def assert_accessible(page: Page) -> None:
    """Fails listing ``page``'s serious and critical axe violations: id, impact, help, the nodes."""
    violations = await axe(page)
    lines = [f"  - {v['id']} ({v['impact']}): {v['help']}\n"
             + "\n".join(f"      {', '.join(map(str, node['target']))}" for node in v["nodes"]) for v in violations]
    assert not violations, f"{len(violations)} serious or critical accessibility violation(s) on {page.url}:\n" \
        + "\n".join(lines)


def session_cookie(authority: str, signed_at: float) -> str:
    """A session cookie as the app signs it (the test session's codec key), signed at ``signed_at``."""
    key = CODEC_KEYS.derived("web session")

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(signed_at)

    serializer = URLSafeTimedSerializer(key, salt="treatyflow-session", signer=Then)
    return serializer.dumps({"c": "token", "a": authority, "u": None, "l": None})


async def seen(page: Page, name: str, allow: tuple[str, ...] = ()) -> None:
    """What every visited page must be: kept as a screenshot, accessible, without errors (but the
    status ``allow`` names, of a page that answers one)."""
    await screenshot(page, name)
    await assert_accessible(page)
    assert_no_page_errors(page, allow)


async def shown(page: Page, what: Locator, url: str | None = None, tries: int = 100) -> None:
    """``page`` (at ``url``, if given) reloaded until ``what`` is on it: what a workflow does after
    an act (an activity, a measure's workflow) and the visibility store follow it by a moment."""
    if url:
        await page.goto(url)
    for _ in range(tries):
        if await what.count():
            break
        await page.wait_for_timeout(100)
        await page.reload()
    await expect(what.first).to_be_visible()
