"""Signing in through an identity provider (OpenID Connect): a real provider — oidc-provider-mock, a
complete OpenID provider built on Authlib, on its own port (another site than the app's: 127.0.0.1
against localhost, so the redirect back is a cross-site one, as in production) — and the app
configured for it, over real HTTP and in the browser. The provider says who someone is; the
treatyflow account says what they may do."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from joserfc import jwk, jwt
from oidc_provider_mock import run_server_in_thread
from playwright.async_api import expect

from stores.users import new_user, open_users
from tests.support.serving import serve
from tests.web.helpers import assert_accessible, assert_no_page_errors, new_context, screenshot
from web.oidc import FLOW_COOKIE, Provider, SignInRefused

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def provider_url() -> Iterator[str]:
    with run_server_in_thread(require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def oidc_app(dev_env, api_settings, provider_url, tmp_path_factory) -> AsyncIterator[tuple[str, object]]:
    """The product's app configured for the provider, with its own users: its URL and its settings."""
    from web.app import create_app

    settings = dataclasses.replace(api_settings, oidc_issuer=provider_url, oidc_client_id="treatyflow-web",
                                   oidc_client_secret="provider-secret", oidc_name="GPO ID",
                                   data_dir=tmp_path_factory.mktemp("oidc-data"))
    users = open_users(None, settings.data_dir)
    await users.add(new_user("d.seitkali", authority="kz-gpo", display_name="Daniyar Seitkali", password=None))
    await users.add(new_user("o.karimov", authority="uz-gpo", display_name="Otabek Karimov", password=None))
    async with serve(create_app(settings, dev_env.client)) as url:
        yield url, settings


def claims(provider_url: str, sub: str, **values: str) -> None:
    """The provider's user ``sub`` and the claims its ID tokens carry."""
    httpx.put(f"{provider_url}/users/{sub}", json=values).raise_for_status()


def signed_in_as(html: str) -> tuple[str, str]:
    """The person and the authority a page's header names."""
    found = re.search(r'class="who">[^<]*<strong>([^<]+)</strong> \(([^,]+),', html)
    return (found.group(1), found.group(2)) if found else ("", "")


async def through_provider(client: httpx.AsyncClient, sub: str, next_path: str = "/inbox") -> httpx.Response:
    """What a browser does: to the provider, the person signs in there as ``sub``, back to the app."""
    start = await client.get(f"/sign-in/oidc?next={next_path}")
    assert start.status_code == 303, start.text[:300]
    at_provider = await client.post(start.headers["location"], data={"sub": sub})
    assert at_provider.status_code == 302, at_provider.text[:300]
    return await client.get(at_provider.headers["location"])


async def test_a_person_signs_in_through_the_provider_with_their_accounts_authority(oidc_app, provider_url):
    url, _ = oidc_app
    claims(provider_url, "sub-daniyar", preferred_username="D.Seitkali", email="d@example.kz")
    async with httpx.AsyncClient(base_url=url) as client:
        sign_in_page = await client.get("/sign-in")
        assert "Sign in with GPO ID" in sign_in_page.text
        start = await client.get("/sign-in/oidc?next=/transfers")
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert (query["code_challenge_method"], query["client_id"]) == (["S256"], ["treatyflow-web"])
        assert query["nonce"][0] and query["state"][0] and query["redirect_uri"] == [f"{url}/sign-in/oidc/callback"]
        answer = await client.post(start.headers["location"], data={"sub": "sub-daniyar"})
        done = await client.get(answer.headers["location"])
        assert done.status_code == 200 and 'http-equiv="refresh" content="0; url=/transfers"' in done.text
        inbox = await client.get("/inbox")
        print(re.search(r"<header>.*?</header>", inbox.text, re.S).group(0))
        assert inbox.status_code == 200 and signed_in_as(inbox.text) == ("d.seitkali", "kz-gpo")
    users = open_users(None, oidc_app[1].data_dir)
    assert (await users.get("d.seitkali")).oidc_subject == f"{provider_url} sub-daniyar"


async def test_a_code_that_comes_back_to_another_browser_signs_no_one_in(oidc_app, provider_url):
    """Login CSRF: the provider's answer is only taken by the browser that started the sign-in."""
    url, _ = oidc_app
    claims(provider_url, "sub-daniyar", preferred_username="d.seitkali")
    async with httpx.AsyncClient(base_url=url) as attacker, httpx.AsyncClient(base_url=url) as victim:
        start = await attacker.get("/sign-in/oidc")
        answer = await attacker.post(start.headers["location"], data={"sub": "sub-daniyar"})
        taken = await victim.get(answer.headers["location"])
        assert taken.status_code == 400 and "not started here" in taken.text
        assert (await victim.get("/inbox")).status_code == 303  # still signed out
        forged_state = re.sub(r"state=[^&]+", "state=forged", answer.headers["location"])
        assert (await attacker.get(forged_state)).status_code == 400
        assert (await attacker.get("/inbox")).status_code == 303


async def test_only_an_enabled_treatyflow_account_signs_in(oidc_app, provider_url):
    url, settings = oidc_app
    users = open_users(None, settings.data_dir)
    claims(provider_url, "sub-stranger", preferred_username="someone.else")
    claims(provider_url, "sub-otabek", preferred_username="o.karimov")
    await users.update("o.karimov", lambda u: u.model_copy(update={"disabled": True}))
    for sub in ("sub-stranger", "sub-otabek"):
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await through_provider(client, sub)
            assert refused.status_code == 403 and "ask your administrator" in refused.text
            assert (await client.get("/inbox")).status_code == 303
    await users.update("o.karimov", lambda u: u.model_copy(update={"disabled": False}))
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await through_provider(client, "sub-otabek")).status_code == 200
        assert signed_in_as((await client.get("/inbox")).text) == ("o.karimov", "uz-gpo")


async def test_a_user_name_that_changes_hands_at_the_provider_does_not_hand_over_the_account(oidc_app, provider_url):
    url, settings = oidc_app
    claims(provider_url, "sub-daniyar", preferred_username="d.seitkali")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await through_provider(client, "sub-daniyar")).status_code == 200  # binds the subject
    claims(provider_url, "sub-impostor", preferred_username="d.seitkali")  # renamed at the provider
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await through_provider(client, "sub-impostor")).status_code == 403
        assert (await client.get("/inbox")).status_code == 303
    async with httpx.AsyncClient(base_url=url) as client:  # the bound person still signs in
        assert (await through_provider(client, "sub-daniyar")).status_code == 200


async def test_an_account_without_a_password_cannot_sign_in_with_one(oidc_app):
    url, _ = oidc_app
    async with httpx.AsyncClient(base_url=url) as client:
        page = await client.get("/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        for password in ("", "treatyflow: no such user", "correct horse battery staple"):
            answer = await client.post("/sign-in", data={"csrf_token": token, "username": "d.seitkali",
                                                         "password": password})
            assert answer.status_code == 401
            token = re.search(r'name="csrf_token" value="([^"]+)"', answer.text).group(1)


async def test_a_provider_that_cannot_be_reached_is_said_and_passwords_still_work(dev_env, api_settings, tmp_path):
    from tests.support.serving import free_port
    from web.app import create_app

    settings = dataclasses.replace(api_settings, oidc_issuer=f"http://127.0.0.1:{free_port()}",
                                   oidc_client_id="x", data_dir=tmp_path)
    async with serve(create_app(settings, dev_env.client)) as url, httpx.AsyncClient(base_url=url) as client:
        answer = await client.get("/sign-in/oidc")
        assert answer.status_code == 503 and "cannot be reached" in answer.text and 'id="password"' in answer.text
        assert FLOW_COOKIE not in answer.cookies


def id_token(key: jwk.RSAKey, **changes: object) -> str:
    now = int(time.time())
    payload = {"iss": "https://id.example", "sub": "s-1", "aud": "treatyflow-web", "exp": now + 300, "iat": now,
               "nonce": "n-1", "preferred_username": "d.seitkali", **changes}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, payload, key)


@pytest.mark.parametrize("changes, why", [
    ({"iss": "https://elsewhere.example"}, "another issuer"),
    ({"aud": "another-client"}, "another client"),
    ({"aud": ["treatyflow-web", "another-client"]}, "several audiences, no azp"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"nonce": "n-2"}, "another sign-in's nonce"),
    ({"nonce": None}, "no nonce"),
    ({"sub": None}, "no subject"),
])
async def test_an_id_token_that_does_not_hold_signs_no_one_in(changes, why):
    key = jwk.RSAKey.generate_key(2048, parameters={"kid": "k1"})
    provider = Provider(issuer="https://id.example", client_id="treatyflow-web", client_secret="s",
                        username_claim="preferred_username", name="", metadata={}, keys=jwk.KeySet([key]),
                        read_at=time.monotonic())
    assert (await provider.verified(id_token(key), "n-1"))["sub"] == "s-1"  # the same token, holding
    with pytest.raises(SignInRefused):
        await provider.verified(id_token(key, **changes), "n-1")


async def test_an_id_token_signed_with_another_key_or_none_signs_no_one_in():
    key, other = (jwk.RSAKey.generate_key(2048, parameters={"kid": kid}) for kid in ("k1", "k1"))
    provider = Provider(issuer="https://id.example", client_id="treatyflow-web", client_secret="s",
                        username_claim="preferred_username", name="", metadata={}, keys=jwk.KeySet([key]),
                        read_at=time.monotonic())

    async def read(again: bool = False) -> dict:  # the provider publishes only ``key``
        return {}
    provider.read = read  # type: ignore[method-assign]
    with pytest.raises(SignInRefused):
        await provider.verified(id_token(other), "n-1")
    _, payload, _ = id_token(key).split(".")
    unsigned = f"eyJhbGciOiJub25lIn0.{payload}."  # {"alg":"none"}, the same claims, no signature
    with pytest.raises(SignInRefused):
        await provider.verified(unsigned, "n-1")


async def test_signing_in_through_the_provider_in_the_browser(browser, oidc_app, provider_url):
    url, _ = oidc_app
    claims(provider_url, "sub-daniyar", preferred_username="d.seitkali", name="Daniyar Seitkali")
    context = await new_context(browser, url, also=(provider_url,))
    try:
        page = await context.new_page()
        await page.goto("/transfers")  # signed out: to sign in, and back here afterwards
        await expect(page.get_by_role("link", name="Sign in with GPO ID")).to_be_visible()
        await screenshot(page, "sign-in-with-provider")
        await assert_accessible(page)
        await page.get_by_role("link", name="Sign in with GPO ID").click()
        await page.get_by_placeholder("sub").fill("sub-daniyar")
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_url(f"{url}/transfers")  # the session's Strict cookie is sent: signed in
        await expect(page.get_by_text("d.seitkali")).to_be_visible()
        await expect(page.get_by_role("heading", name="Transfers")).to_be_visible()
        assert_no_page_errors(page, allow=("cdn.jsdelivr.net",))  # the mock provider's page's stylesheet, not ours
    finally:
        await context.close()
