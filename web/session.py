"""Who is signed in to the web application: a session kept in a signed cookie, and the CSRF token
every form carries.

The cookie holds the authority (and the user, when a person signed in with a password), the
session's CSRF token and the chosen language — no case data. It is signed with a key derived
from the current codec key (the same on every API instance, like the page tokens: rotating the
codec key signs everyone out), HttpOnly, SameSite=Strict, Secure when the request came over TLS
(directly or through a proxy saying ``X-Forwarded-Proto: https``), and expires after
``IDLE_HOURS`` without a request: every answer signs it again with the time of that request.
A session that is missing, forged or expired is an anonymous one, with a fresh CSRF token (the
sign-in form is protected too); signing in issues a new token (no fixation)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "treatyflow_session"
IDLE_HOURS = 8
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    csrf: str
    authority: str | None = None  # the authority id acted for
    user: str | None = None  # the user name, when a person signed in (None: an API key)
    lang: str | None = None  # chosen with the switch; None: from Accept-Language

    @property
    def signed_in(self) -> bool:
        return self.authority is not None

    def signed_in_as(self, authority: str, user: str | None) -> Session:
        return replace(self, authority=authority, user=user, csrf=new_token())

    def signed_out(self) -> Session:
        return Session(csrf=new_token(), lang=self.lang)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.codec.keys.derived("web session"), salt="treatyflow-session")


def read_session(request: Request) -> Session:
    """The request's session (cached on the request); anonymous when there is none that holds."""
    if (cached := getattr(request.state, "web_session", None)) is not None:
        return cached
    session = Session(csrf=new_token())
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = serializer(request).loads(raw, max_age=IDLE_HOURS * 3600)
            session = Session(csrf=str(data["c"]), authority=data.get("a"), user=data.get("u"), lang=data.get("l"))
        except (BadSignature, KeyError, TypeError):
            pass
    request.state.web_session = session
    return session


def keep(request: Request, response: Response, session: Session | None = None) -> Response:
    """Write the session (the request's, or ``session``) into ``response``, signed now."""
    session = session or read_session(request)
    request.state.web_session = session
    value = serializer(request).dumps({"c": session.csrf, "a": session.authority, "u": session.user,
                                       "l": session.lang})
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"
    response.set_cookie(COOKIE, value, max_age=IDLE_HOURS * 3600, httponly=True, samesite="strict", secure=secure,
                        path="/")
    return response


def csrf_valid(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), str(presented).encode())
