"""An OpenID provider's keys, and the tokens it signs verified with them: what the web
application's sign-in (web/oidc.py, ID tokens) and the codec endpoints (api/codec.py, the
operators' access tokens) share.

The provider's metadata is read from its discovery document (``<issuer>/.well-known/openid-
configuration``), which must name the same issuer, and its keys from the ``jwks_uri`` it gives;
both are kept an hour and read again at once when a token names a key not among them (the
provider rotated its keys), at most once a minute for tokens anyone can send. A signature counts
only with an asymmetric algorithm (RS/PS/ES/EdDSA): ``none`` and HMAC are refused, so a public key
can never be used as an HMAC secret. The JOSE work is joserfc's, the HTTP calls httpx's."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from api.errors import ApiError, unauthenticated, unavailable

log = structlog.get_logger("treatyflow.api.oidc")

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
METADATA_SECONDS = 3600.0  # how long the provider's metadata and keys are kept before they are read again
AGAIN_SECONDS = 60.0  # an unknown key reads the keys again at most this often (a token anyone sends)
LEEWAY_SECONDS = 60  # clocks apart: a token this far past its expiry (or before its nbf/iat) still holds
JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")  # compact JWS: header.payload.signature


class ProviderUnavailable(Exception):
    """The identity provider could not be reached, or answered what is not OpenID Connect."""


class TokenRefused(Exception):
    """A token that does not hold (with why, for the log only: never its claims)."""


def looks_like_jwt(token: str) -> bool:
    return bool(JWS.match(token))


async def read_json(url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.get(url, **kwargs)
        answer.raise_for_status()
        found = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"{type(exc).__name__} reading the provider") from None
    if not isinstance(found, dict):
        raise ProviderUnavailable("the provider answered what is not a JSON object")
    return found


async def read_provider(issuer: str, required: tuple[str, ...] = ("jwks_uri",)) -> tuple[dict[str, Any], KeySet]:
    """The provider's discovery document (for ``issuer``, naming the ``required`` endpoints) and
    its keys; ProviderUnavailable otherwise."""
    metadata = await read_json(f"{issuer}/.well-known/openid-configuration")
    if str(metadata.get("issuer", "")).rstrip("/") != issuer or not all(
            isinstance(metadata.get(k), str) for k in ("jwks_uri", *required)):
        raise ProviderUnavailable("the provider's metadata is not for this issuer")
    try:
        keys = KeySet.import_key_set(await read_json(metadata["jwks_uri"]))
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProviderUnavailable("the provider's keys cannot be read") from None
    return metadata, keys


def on_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


@dataclass
class OperatorTokens:
    """The operators' access tokens from the identity provider the Temporal UI signs them in with
    (``TREATYFLOW_OPERATOR_OIDC_ISSUER``): a JWT signed with one of the provider's keys, issued by
    it, for ``audience``, not expired, whose ``role_claim`` holds ``role``. Only the codec
    endpoints take them (the UI forwards the signed-in operator's token), beside the operators'
    static token."""

    issuer: str
    audience: str
    role_claim: str = "roles"
    role: str = "treatyflow-operator"
    keys: KeySet | None = None
    read_at: float = 0.0
    again_at: float = 0.0
    again_seconds: float = AGAIN_SECONDS
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def of(cls, settings: Any) -> OperatorTokens | None:
        """From the settings; None when no issuer is configured. An issuer without an audience, or
        one served over plain HTTP off loopback (its keys could be spoofed), stops the API at
        start-up."""
        if not settings.operator_oidc_issuer:
            return None
        issuer = settings.operator_oidc_issuer.rstrip("/")
        if not settings.operator_oidc_audience:
            raise ValueError("TREATYFLOW_OPERATOR_OIDC_ISSUER needs TREATYFLOW_OPERATOR_OIDC_AUDIENCE (the audience "
                             "of the operators' access tokens)")
        if urlsplit(issuer).scheme != "https" and not on_loopback(issuer):
            raise ValueError("TREATYFLOW_OPERATOR_OIDC_ISSUER must be an https URL (http only on loopback)")
        return cls(issuer=issuer, audience=settings.operator_oidc_audience, role_claim=settings.operator_oidc_role_claim,
                   role=settings.operator_oidc_role)

    async def read(self, *, again: bool = False) -> KeySet:
        async with self._reading:  # one reading at a time; those waiting use what it read
            now = time.monotonic()
            if self.keys is None or now - self.read_at > METADATA_SECONDS or (again and now >= self.again_at):
                _, self.keys = await read_provider(self.issuer)
                self.read_at, self.again_at = now, now + self.again_seconds
            return self.keys

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; TokenRefused, or ProviderUnavailable when the provider's
        keys cannot be read."""
        keys = await self.read()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALGORITHMS)
            except JoseError as exc:  # perhaps signed with a key published since: read the keys once more
                fresh = await self.read(again=True)
                if fresh is keys:
                    raise exc
                decoded = jwt.decode(token, fresh, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS, iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience}, exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            raise TokenRefused(f"the token does not hold: {type(exc).__name__}") from None
        if self.role not in roles_in(decoded.claims, self.role_claim):
            raise TokenRefused(f"the token's {self.role_claim} claim does not hold the operators' role")
        return decoded.claims

    async def admit(self, token: str, what: str) -> None:
        """Pass with an operator's valid token; 401 for one that does not hold, 503 (with
        Retry-After) when the provider's keys cannot be read. Never logs the token or its claims."""
        try:
            await self.claims(token)
        except ProviderUnavailable as exc:
            log.warning("identity provider unavailable", problem=str(exc))
            raise unavailable(f"{what} cannot check the operator's token now: the identity provider cannot be "
                              "reached", cause="identity_provider") from None
        except TokenRefused as exc:
            log.warning("operator token refused", status=401, problem=str(exc))
            raise ApiError(401, "unauthenticated", f"{what} need the operators' credential: the token does not "
                                                   "hold", headers=unauthenticated().headers) from None


def roles_in(claims: dict[str, Any], claim: str) -> list[str]:
    """The roles a claim holds: a list of strings or one string of space-separated roles; a dotted
    name reaches into objects (Keycloak's ``realm_access.roles``)."""
    value: Any = claims
    for part in claim.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
