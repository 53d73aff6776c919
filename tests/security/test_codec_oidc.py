"""The codec endpoints take an operator's access token from the identity provider (what the
production Temporal UI forwards), over real HTTP: a provider of our own on a loopback port (its
discovery document and its keys, as an OpenID provider publishes them) and tokens signed here with
its key pair. Only a token of that issuer, for that audience, unexpired, signed with the
provider's key by an asymmetric algorithm, whose role claim holds the operators' role, decodes;
every other is a 401; a provider that cannot be reached is a 503; the operators' static token
still works, and an authority's key is still a 403."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from joserfc import jwk, jwt
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.oidc import OperatorTokens, TokenRefused
from tests.security.test_codec_endpoint import (NAME, OPERATOR, OPERATOR_TOKEN, PERSON, as_json, encrypted_person,
                                                person_of)
from tests.support import free_port, key, serve
from treatyflow.config import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

AUDIENCE = "temporal-ui"
ROLE = "treatyflow-operator"
SIGNING = jwk.ECKey.generate_key("P-256", parameters={"kid": "op-1"})  # the provider's key pair
AUTHORITY_KEY = "prod-" + hashlib.sha256(b"kz-gpo codec oidc test").hexdigest()[:24]
KEY_HASH = hashlib.sha256(AUTHORITY_KEY.encode()).hexdigest()
OTHER = jwk.ECKey.generate_key("P-256", parameters={"kid": "op-1"})  # the same kid, another key


class Provider:
    """An identity provider's published side: discovery document and keys (JWKS)."""

    def __init__(self) -> None:
        self.keys = [SIGNING]
        self.reads = 0
        self.url = ""

    def app(self) -> Starlette:
        async def discovery(request):
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                                 "authorization_endpoint": f"{self.url}/authorize",
                                 "token_endpoint": f"{self.url}/token"})

        async def jwks(request):
            self.reads += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

        return Starlette(routes=[Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks)])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def provider() -> AsyncIterator[Provider]:
    found = Provider()
    async with serve(found.app()) as url:
        found.url = url
        yield found


def settings_for(dev_settings: Settings, issuer: str) -> Settings:
    return dataclasses.replace(dev_settings, dev_mode=False, operator_oidc_issuer=issuer, api_keys=f"kz-gpo:{KEY_HASH}",
                               operator_oidc_audience=AUDIENCE,
                               operator_token_hash=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def codec_url(dev_env, dev_settings, provider) -> AsyncIterator[str]:
    """The app in production mode with the provider configured for the operators' tokens."""
    from api.app import create_app

    async with serve(create_app(settings_for(dev_settings, provider.url), dev_env.client)) as url:
        yield url


def token(issuer: str, signer: jwk.ECKey = SIGNING, header: dict | None = None, **changes: object) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "operator-7", "aud": AUDIENCE, "exp": now + 300, "iat": now,
              "roles": ["viewer", ROLE], **changes}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(header or {"alg": "ES256", "kid": signer.kid}, claims, signer)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def decode(url: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        return await http.post("/codec/decode", json=as_json(await encrypted_person()), headers=headers)


async def test_an_operators_access_token_decodes(codec_url, provider):
    assert person_of(await decode(codec_url, bearer(token(provider.url)))) == PERSON
    # a single audience as a string, several as a list, the role in a string of roles: all hold
    for changes in ({"aud": [AUDIENCE, "account"]}, {"roles": f"viewer {ROLE}"}):
        assert person_of(await decode(codec_url, bearer(token(provider.url, **changes)))) == PERSON


async def test_the_operators_static_token_still_decodes_and_a_key_is_still_403(codec_url):
    assert person_of(await decode(codec_url, OPERATOR)) == PERSON
    refused = await decode(codec_url, bearer(AUTHORITY_KEY))  # a central authority's real key
    assert refused.status_code == 403, refused.text
    assert (await decode(codec_url, key("kz-gpo"))).status_code == 401  # production: a demo key is no key


@pytest.mark.parametrize("changes, why", [
    ({"iss": "https://elsewhere.example"}, "another issuer"),
    ({"aud": "another-client"}, "another audience"),
    ({"aud": None}, "no audience"),
    ({"exp": int(time.time()) - 3600}, "expired an hour ago"),
    ({"exp": None}, "no expiry"),
    ({"roles": None}, "no role claim"),
    ({"roles": ["viewer"]}, "not the operators' role"),
    ({"roles": f"{ROLE}-trainee"}, "a role that only begins like it"),
])
async def test_a_token_that_does_not_hold_is_401(codec_url, provider, changes, why):
    r = await decode(codec_url, bearer(token(provider.url, **changes)))
    assert r.status_code == 401, (why, r.text)
    assert r.json()["error"]["code"] == "unauthenticated" and NAME not in r.text


async def test_a_token_signed_with_another_key_or_no_key_is_401(codec_url, provider):
    forged = token(provider.url, signer=OTHER)  # the provider's kid, another key
    header, payload, _ = token(provider.url).split(".")
    unsigned = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "op-1"}).encode()).rstrip(b"=").decode()
    public = json.dumps(SIGNING.as_dict(private=False), sort_keys=True).encode()
    # HS256 keyed with the provider's public key (the algorithm confusion attack) and with a guess
    hmac_public = jwt.encode({"alg": "HS256", "kid": "op-1"}, jwt.decode(token(provider.url), SIGNING).claims,
                             jwk.OctKey.import_key(public), algorithms=["HS256"])
    hmac_guess = jwt.encode({"alg": "HS256"}, jwt.decode(token(provider.url), SIGNING).claims,
                            jwk.OctKey.import_key(b"secret" * 6), algorithms=["HS256"])
    for presented in (forged, f"{unsigned}.{payload}.", f"{unsigned}.{payload}.{_}", hmac_public, hmac_guess,
                      f"{header}.{payload}.AAAA", "a.b.c"):
        r = await decode(codec_url, bearer(presented))
        assert r.status_code == 401, (presented, r.text)
        assert NAME not in r.text


async def test_a_key_the_provider_publishes_later_is_read_again(provider):
    """Key rotation at the provider: a token naming a key not yet known reads the keys again, at
    most once a minute (``again_seconds``), so a flood of unknown keys cannot make the API hammer
    the provider."""
    rotated = jwk.ECKey.generate_key("P-256", parameters={"kid": "op-2"})
    patient = OperatorTokens(issuer=provider.url, audience=AUDIENCE)
    eager = OperatorTokens(issuer=provider.url, audience=AUDIENCE, again_seconds=0)
    for checker in (patient, eager):
        assert (await checker.claims(token(provider.url)))["sub"] == "operator-7"  # the keys are read
    provider.keys = [SIGNING, rotated]
    try:
        reads = provider.reads
        with pytest.raises(TokenRefused):
            await patient.claims(token(provider.url, signer=rotated))  # read less than a minute ago
        assert provider.reads == reads
        assert (await eager.claims(token(provider.url, signer=rotated)))["sub"] == "operator-7"
        assert provider.reads == reads + 1
    finally:
        provider.keys = [SIGNING]


async def test_a_provider_that_cannot_be_reached_is_503_and_the_static_token_still_works(dev_env, dev_settings,
                                                                                         provider):
    from api.app import create_app

    nowhere = f"http://127.0.0.1:{free_port()}"
    async with serve(create_app(settings_for(dev_settings, nowhere), dev_env.client)) as url:
        r = await decode(url, bearer(token(nowhere)))
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] and NAME not in r.text
        assert r.json()["error"]["code"] == "unavailable"
        assert person_of(await decode(url, OPERATOR)) == PERSON
        assert (await decode(url, bearer("not-a-jwt"))).status_code == 401  # no provider asked


async def test_the_configuration():
    settings = Settings.from_env({"TREATYFLOW_OPERATOR_OIDC_ISSUER": "https://id.example/realms/ops/",
                                  "TREATYFLOW_OPERATOR_OIDC_AUDIENCE": "temporal-ui"})
    tokens = OperatorTokens.of(settings)
    assert (tokens.issuer, tokens.audience, tokens.role_claim, tokens.role) == (
        "https://id.example/realms/ops", "temporal-ui", "roles", "treatyflow-operator")
    settings = Settings.from_env({"TREATYFLOW_OPERATOR_OIDC_ISSUER": "https://id.example",
                                  "TREATYFLOW_OPERATOR_OIDC_AUDIENCE": "a",
                                  "TREATYFLOW_OPERATOR_OIDC_ROLE_CLAIM": "realm_access.roles",
                                  "TREATYFLOW_OPERATOR_OIDC_ROLE": "ops"})
    assert (settings.operator_oidc_role_claim, settings.operator_oidc_role) == ("realm_access.roles", "ops")
    assert OperatorTokens.of(Settings.from_env({})) is None
    with pytest.raises(ValueError, match="AUDIENCE"):
        OperatorTokens.of(Settings.from_env({"TREATYFLOW_OPERATOR_OIDC_ISSUER": "https://id.example"}))
    with pytest.raises(ValueError, match="https"):
        OperatorTokens.of(Settings.from_env({"TREATYFLOW_OPERATOR_OIDC_ISSUER": "http://id.example",
                                             "TREATYFLOW_OPERATOR_OIDC_AUDIENCE": "a"}))


async def test_a_nested_role_claim(provider):
    """Keycloak keeps realm roles in ``realm_access.roles``."""
    checker = OperatorTokens(issuer=provider.url, audience=AUDIENCE, role_claim="realm_access.roles")
    assert await checker.claims(token(provider.url, realm_access={"roles": [ROLE]}))
    with pytest.raises(TokenRefused, match="role"):
        await checker.claims(token(provider.url))
