"""``GET /v1/keys``: every state's public signing keys as a JWK set (RFC 7517), retired ones
included, without authentication — what a requesting state verifies a request's signed results
with, using any JOSE library (stores/signing.py signs; the ring is read once, at start-up, in
api/app.py: the same keys the worker signs with)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

router = APIRouter(prefix="/v1", tags=["signing"])
# verifiers may keep the keys this long; a new key is published before it signs (docs/security.md)
MAX_AGE = 300  # seconds


class PublicKey(BaseModel):
    """One state's Ed25519 public key (RFC 8037), with the state it signs for."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]
    state: str


class KeySet(BaseModel):
    keys: list[PublicKey]


@router.get("/keys", response_model=KeySet, openapi_extra={"x-public": True})
async def signing_keys(request: Request, response: Response) -> KeySet:
    """Every state's public signing keys, current and retired (what a retired key signed still
    verifies). A request's ``results.signature`` names its key by ``kid``; the key's ``state`` is
    the requested state's. No authentication."""
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return request.app.state.signing_jwks
