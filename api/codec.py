"""The codec endpoints of the Temporal UI (remote codec protocol): the UI sends payloads as the
server stores them, encrypted, and gets them back decoded for the operator — or the reverse.

Who may call: the Temporal UI's operators, with the operators' credential
(``Authorization: Bearer <operator token>``, TREATYFLOW_OPERATOR_TOKEN_HASH), or with the access
token the identity provider gave an operator, which the production UI forwards (a JWT of
TREATYFLOW_OPERATOR_OIDC_ISSUER for TREATYFLOW_OPERATOR_OIDC_AUDIENCE whose role claim holds the
operators' role: api/oidc.py), or — in dev mode only — a request from loopback whose Origin is the
configured Temporal UI (the dev server's UI sends no credential). Never an authority's key, of any
role: the codec decrypts any case (it holds the deployment's keys and cannot tell whose case a
payload belongs to), so a state's key decodes nothing, not even its own cases' payloads — it is
answered 403 (a valid key, but not for this). CORS admits the UI origins alone (``ui_origins``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.errors import ApiError, invalid
from api.oidc import OperatorTokens, looks_like_jwt
from treatyflow.codec import CodecKeyError, EncryptionCodec

router = APIRouter(prefix="/codec", tags=["codec"])
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


def ui_origins(settings) -> tuple[str, ...]:
    """The Temporal UI origins the codec admits (CORS, and credential-free in dev mode):
    TREATYFLOW_UI_ORIGIN, comma separated; an origin on a loopback name (``http://localhost:8233``)
    comes with the other loopback name for the same scheme and port (``http://127.0.0.1:8233``),
    since the local UI is opened under either."""
    origins: list[str] = []
    for origin in filter(None, (o.strip() for o in settings.ui_origin.split(","))):
        scheme, sep, rest = origin.partition("://")
        host, colon, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        same = [origin]
        if sep and host in LOOPBACK_NAMES and (not colon or port.isdigit()):
            same = [f"{scheme}://{name}{colon}{port}" for name in LOOPBACK_NAMES]
        origins.extend(o for o in same if o not in origins)
    return tuple(origins)


async def admitted(request: Request) -> None:
    app = request.app.state
    settings = app.settings
    origin = request.headers.get("origin")
    host = request.client.host if request.client else ""
    if settings.dev_mode and origin in ui_origins(settings) and host in LOOPBACK \
            and "authorization" not in request.headers:
        return
    what = "the codec endpoints"
    token, operators_token = app.operator.presented(request, what)  # an authority's key: 403 here
    if operators_token:
        return
    tokens: OperatorTokens | None = app.operator_tokens
    if tokens is not None and looks_like_jwt(token):  # an operator signed in at the identity provider
        await tokens.admit(token, what)
        return
    raise app.operator.unauthenticated(request, what)


async def convert(request: Request, decode: bool) -> Response:
    await admitted(request)
    codec: EncryptionCodec = request.app.state.codec
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, UnicodeDecodeError):
        raise invalid([("payloads", "expected {\"payloads\": [{\"metadata\": {...}, \"data\": \"...\"}]}")]) from None
    try:
        result = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
    except CodecKeyError as exc:
        raise ApiError(422, "unknown_key", str(exc), fields=["payloads"]) from None
    except Exception:  # noqa: BLE001 - a tampered or foreign payload: never a stack trace
        raise ApiError(422, "undecodable", "a payload could not be decrypted", fields=["payloads"]) from None
    return Response(json_format.MessageToJson(Payloads(payloads=result)), media_type="application/json")


@router.post("/decode")
async def decode(request: Request) -> Response:
    return await convert(request, decode=True)


@router.post("/encode")
async def encode(request: Request) -> Response:
    return await convert(request, decode=False)
