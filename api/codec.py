"""The codec endpoints of the Temporal UI (remote codec protocol): the UI sends payloads as the
server stores them, encrypted, and gets them back decoded for the operator — or the reverse.

Who may call: a central authority's API key (Authorization: Bearer), or — in dev mode only — a
request from loopback whose Origin is the configured Temporal UI (the dev server's UI sends no
credential). CORS admits that origin alone."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from api.auth import caller, deny
from api.errors import ApiError, invalid
from treatyflow.codec import CodecKeyError, EncryptionCodec

router = APIRouter(prefix="/codec", tags=["codec"])
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


async def admitted(request: Request) -> None:
    settings = request.app.state.settings
    origin = request.headers.get("origin")
    host = request.client.host if request.client else ""
    if settings.dev_mode and origin == settings.ui_origin and host in LOOPBACK \
            and "authorization" not in request.headers:
        return
    who = await caller(request)
    if who.role != "central_authority":
        raise deny(request, who, "the codec is for central authorities' operators")


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
