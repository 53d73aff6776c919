"""Signing in through an identity provider: OpenID Connect's authorization code flow, with PKCE.

Offered beside the password when ``TREATYFLOW_OIDC_ISSUER`` is set (with this client's id and
secret at the provider). The provider says who the person is; treatyflow still says what they may
do: the ID token's ``TREATYFLOW_OIDC_USERNAME_CLAIM`` (``preferred_username`` by default) names a
treatyflow account (``treatyflow users add``, with ``--no-password`` when the provider is the only
way in), which gives the authority, seniority and whether the account is enabled. The provider's
subject is bound to the account at the first sign-in through it and must be the same ever after,
so a user name that changes hands at the provider does not hand over the account
(``treatyflow users unbind`` forgets the binding).

The flow: ``GET /sign-in/oidc`` keeps a random ``state``, ``nonce`` and PKCE verifier in a short,
signed cookie (SameSite=Lax, so that it comes back with the provider's redirect, which the
session's Strict cookie does not) and sends the browser to the provider; the provider sends it
back to ``/sign-in/oidc/callback`` with a code, which is exchanged (with the verifier and the
client's secret) for an ID token, verified with the provider's published keys (signature, issuer,
audience, expiry, nonce). The session is then written and the browser continues with a page of
this site (a Strict cookie is not sent on the rest of a redirect chain begun on another site).

The JOSE work — keys, signatures, claims — is joserfc's; the two HTTP calls are httpx's (Authlib's
own httpx client was deprecated in 1.9, and the flow needs no more than these two calls)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from fastapi import APIRouter, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from api.errors import ApiError
from api.oidc import ALGORITHMS, METADATA_SECONDS, ProviderUnavailable, read_provider
from stores.users import USERNAME
from treatyflow.config import Settings
from web.pages import language_of, local, render, secured
from web.session import Session, read_session

log = structlog.get_logger("treatyflow.web")

router = APIRouter(include_in_schema=False)
FLOW_COOKIE, FLOW_PATH, FLOW_SECONDS = "treatyflow_oidc", "/sign-in/oidc", 600
# the provider's keys and the algorithms a signature may use (never "none" or HMAC) are the API's
# (api/oidc.py), shared with the codec endpoints' check of the operators' tokens


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in (with why, for the log only)."""


@dataclass
class Provider:
    """One identity provider, its metadata and keys read on first use and kept for an hour (read
    again at once when a token names a key not among them: the provider rotated its keys)."""

    issuer: str
    client_id: str
    client_secret: str
    username_claim: str
    name: str
    metadata: dict[str, Any] | None = None
    keys: KeySet | None = None
    read_at: float = 0.0

    @classmethod
    def of(cls, settings: Settings) -> Provider | None:
        if not settings.oidc_issuer:
            return None
        return cls(issuer=settings.oidc_issuer.rstrip("/"), client_id=settings.oidc_client_id,
                   client_secret=settings.oidc_client_secret, username_claim=settings.oidc_username_claim,
                   name=settings.oidc_name)

    async def read(self, *, again: bool = False) -> dict[str, Any]:
        if self.metadata is None or again or time.monotonic() - self.read_at > METADATA_SECONDS:
            metadata, keys = await read_provider(self.issuer, ("authorization_endpoint", "token_endpoint"))
            self.metadata, self.keys, self.read_at = metadata, keys, time.monotonic()
        return self.metadata

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        metadata = await self.read()
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                 "scope": "openid profile email", "state": state, "nonce": nonce,
                 "code_challenge": challenge(verifier), "code_challenge_method": "S256"}
        endpoint = metadata["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)

    async def identity(self, code: str, redirect_uri: str, verifier: str, nonce: str) -> dict[str, Any]:
        """The verified claims of the ID token the code is exchanged for."""
        metadata = await self.read()
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                answer = await http.post(metadata["token_endpoint"], auth=(self.client_id, self.client_secret), data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                    "code_verifier": verifier})
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{type(exc).__name__} at the token endpoint") from None
        if answer.status_code >= 500:
            raise ProviderUnavailable(f"the token endpoint answered {answer.status_code}")
        if answer.status_code != 200:
            raise SignInRefused(f"the token endpoint refused the code ({answer.status_code})")
        try:
            id_token = answer.json()["id_token"]
            if not isinstance(id_token, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise SignInRefused("no ID token in the token endpoint's answer") from None
        return await self.verified(id_token, nonce)

    async def verified(self, id_token: str, nonce: str) -> dict[str, Any]:
        assert self.keys is not None
        try:
            try:
                token = jwt.decode(id_token, self.keys, algorithms=ALGORITHMS)
            except JoseError:  # perhaps signed with a key published since: read the keys once more
                await self.read(again=True)
                token = jwt.decode(id_token, self.keys, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=60, iss={"essential": True, "value": self.issuer}, sub={"essential": True},
                aud={"essential": True, "value": self.client_id}, exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise SignInRefused(f"the ID token does not hold: {type(exc).__name__}") from None
        audiences = token.claims["aud"] if isinstance(token.claims["aud"], list) else [token.claims["aud"]]
        if len(audiences) > 1 and token.claims.get("azp") != self.client_id:
            raise SignInRefused("the ID token was issued to another party (azp)")
        return token.claims


def challenge(verifier: str) -> str:
    """PKCE's S256 code challenge (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def flow_serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.codec.keys.derived("web oidc flow"), salt="treatyflow-oidc")


def provider_of(request: Request) -> Provider:
    provider = request.app.state.oidc
    if provider is None:
        raise ApiError(404, "not_found", "no identity provider is configured")
    return provider


def redirect_uri(request: Request) -> str:
    configured = request.app.state.settings.oidc_redirect_url
    return configured or str(request.url_for("oidc_callback"))


@router.get("/sign-in/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    """To the provider, remembering (signed, for ten minutes) what must come back with the code."""
    provider = provider_of(request)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    try:
        url = await provider.authorization_url(redirect_uri(request), state, nonce, verifier)
    except ProviderUnavailable as exc:
        log.warning("identity provider unavailable", problem=str(exc))
        return unavailable(request, local(next))
    flow = flow_serializer(request).dumps({"s": state, "n": nonce, "v": verifier, "next": local(next),
                                           "l": read_session(request).lang})
    response = secured(request, Response(status_code=303, headers={"location": url}))
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"
    response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_SECONDS, httponly=True, samesite="lax", secure=secure,
                        path=FLOW_PATH)
    return response


@router.get("/sign-in/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    provider = provider_of(request)
    try:
        flow = flow_serializer(request).loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_SECONDS)
    except BadSignature:
        flow = None
    session = read_session(request)
    if flow is not None and flow.get("l"):
        session = Session(csrf=session.csrf, lang=flow["l"])
        request.state.web_session = session
    lang = language_of(request, session)
    address = request.client.host if request.client else ""
    limits = request.app.state.sign_in_limits

    def refused(message: str, status: int = 401, account: str = "") -> Response:
        limits.failed(account, address)
        response = render(request, "sign_in.html", status=status, next=flow["next"] if flow else "/inbox",
                          demo=[], failed=message)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response

    if limits.blocked("", address):
        return refused(lang.gettext("Too many attempts: wait a few minutes, then try again."), 429)
    if flow is None or not state or not hmac.compare_digest(str(flow.get("s", "")), state):
        log.info("sign-in refused", by="oidc", problem="no sign-in of this browser is under way")
        return refused(lang.gettext("This sign-in was not started here, or took too long. Start it again."), 400)
    if error or not code:
        log.info("sign-in refused", by="oidc", problem="the provider did not sign the person in")
        return refused(lang.gettext("The identity provider did not sign you in."))
    try:
        claims = await provider.identity(code, redirect_uri(request), flow["v"], flow["n"])
    except ProviderUnavailable as exc:
        log.warning("identity provider unavailable", problem=str(exc))
        return unavailable(request, flow["next"])
    except SignInRefused as exc:
        log.warning("sign-in refused", by="oidc", problem=str(exc))
        return refused(lang.gettext("The identity provider did not sign you in."))
    username = str(claims.get(provider.username_claim) or "").strip().lower()
    subject = f"{provider.issuer} {claims['sub']}"
    user = await request.app.state.users.get(username) if USERNAME.match(username) else None
    if user is None or user.disabled or user.oidc_subject not in (None, subject):
        log.info("sign-in refused", by="oidc", problem="no enabled account for this identity")
        return refused(lang.gettext("There is no enabled treatyflow account for you: ask your administrator to "
                                    "add one with your user name."), 403, username)
    if user.oidc_subject is None:
        user = await request.app.state.users.update(username, lambda u: u.model_copy(update={
            "oidc_subject": u.oidc_subject or subject}))
        if user.oidc_subject != subject:
            return refused(lang.gettext("There is no enabled treatyflow account for you: ask your administrator to "
                                        "add one with your user name."), 403, username)
    log.info("signed in", authority=user.authority, by="oidc")
    request.state.web_session = session.signed_in_as(user.authority, user.username)  # written by render
    response = render(request, "continue.html", next=flow["next"])
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


def unavailable(request: Request, next_path: str = "/inbox") -> Response:
    """The sign-in page again, saying so (503): the password still works meanwhile."""
    lang = language_of(request, read_session(request))
    return render(request, "sign_in.html", status=503, next=next_path, demo=[], failed=lang.gettext(
        "The identity provider cannot be reached; try again in a moment, or sign in with your password."))
