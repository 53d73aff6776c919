"""The states' signing keys (Ed25519) and the detached JWS signatures made with them.

Each state of the directory has one *current* key, which signs, and may have *retired* ones, which
sign nothing any more but stay published (``GET /v1/keys``) so that what they signed still
verifies. The ring is a JSON document, the same shape wherever it comes from:

    {"keys": [{"state": "KZ", "kid": "kz-3f9a1c2e", "status": "current",
               "kty": "OKP", "crv": "Ed25519", "x": "<base64url public key>", "d": "<base64url private key>"},
              {"state": "KZ", "kid": "kz-0b7d4e61", "status": "retired", ...}, ...]}

— each entry a private JWK (RFC 8037) with the members ``state`` and ``status``; ``x`` may be left
out (it is computed from ``d``, and checked against it when given). It comes from
``TREATYFLOW_SIGNING_KEYS`` (the JSON itself) or the file ``TREATYFLOW_SIGNING_KEYS_FILE``, as the
codec keys do (treatyflow/codec.py). In dev mode the file ``<data dir>/signing-keys.json`` is
created on first use with a current key for every state of the directory, readable by its owner
only, written atomically under a lock, so that the worker and the API of one machine, starting
together, read the same keys. A group- or world-readable file is refused; in production a ring
without a current key for a state of the directory stops the process at start-up.

Signatures are JWS (RFC 7515) in compact serialisation with a detached payload (Appendix F:
``header..signature``), ``alg`` ``EdDSA``, ``kid`` the signing key's: any JOSE library verifies
them against the published keys with the payload put back in the middle."""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.reference import reference

ALG = "EdDSA"
FILE_NAME = "signing-keys.json"
KID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
STATE_PATTERN = re.compile(r"^[A-Z]{2}$")
STATUSES = ("current", "retired")


class SigningKeyError(ValueError):
    """A signing key configuration that cannot be used, or a state without a current key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, eq=False)
class SigningKey:
    state: str
    kid: str
    status: Literal["current", "retired"]
    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, state: str, kid: str | None = None) -> SigningKey:
        """A new current key of ``state``; its kid, unless given, is the state's code and random hex."""
        return cls(state=state, kid=kid or f"{state.lower()}-{secrets.token_hex(4)}", status="current",
                   private=Ed25519PrivateKey.generate())

    @property
    def x(self) -> str:
        return b64url(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def public_jwk(self) -> dict[str, str]:
        """The public key as ``GET /v1/keys`` publishes it (RFC 7517, RFC 8037), with its state."""
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": ALG, "use": "sig",
                "state": self.state}

    def entry(self) -> dict[str, str]:
        """The key as the ring's JSON holds it: the private JWK with its state and status."""
        d = self.private.private_bytes_raw()
        return {"state": self.state, "kid": self.kid, "status": self.status, "kty": "OKP", "crv": "Ed25519",
                "x": self.x, "d": b64url(d)}

    @classmethod
    def from_entry(cls, entry: Any, index: int) -> SigningKey:
        """One entry of the ring; the message names the entry, never its key material."""
        where = f"key {index}"
        if not isinstance(entry, Mapping):
            raise SigningKeyError(f"{where}: not a JSON object")
        kid = entry.get("kid")
        if not isinstance(kid, str) or not KID_PATTERN.match(kid):
            raise SigningKeyError(f"{where}: kid must be 1-64 characters of A-Z a-z 0-9 . _ -")
        where = f"key {kid!r}"
        state = entry.get("state")
        if not isinstance(state, str) or not STATE_PATTERN.match(state):
            raise SigningKeyError(f"{where}: state must be a state code in upper case (KZ, UZ, ...)")
        if entry.get("status") not in STATUSES:
            raise SigningKeyError(f"{where}: status must be current or retired")
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            raise SigningKeyError(f"{where}: only Ed25519 keys are used (kty OKP, crv Ed25519)")
        try:
            d = from_b64url(entry.get("d"))
            if len(d) != 32:
                raise ValueError
            private = Ed25519PrivateKey.from_private_bytes(d)
        except (ValueError, TypeError):
            raise SigningKeyError(f"{where}: d must be the 32-byte private key in base64url") from None
        key = cls(state=state, kid=kid, status=entry["status"], private=private)
        if "x" in entry and entry["x"] != key.x:
            raise SigningKeyError(f"{where}: x is not the public key of d")
        return key


@dataclass(frozen=True, eq=False)
class SigningKeys:
    """The ring: every state's keys, one current key per state, each kid once."""

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        for dup in sorted({k for k in kids if kids.count(k) > 1}):
            raise SigningKeyError(f"key {dup!r} is listed twice (a kid names one key of the ring)")
        for state in sorted({k.state for k in self.keys}):
            current = [k.kid for k in self.keys if k.state == state and k.status == "current"]
            if len(current) != 1:
                raise SigningKeyError(f"{state} has {len(current)} current signing keys "
                                      f"({', '.join(current) or 'none'}): one signs, the others are retired")

    def __repr__(self) -> str:  # never print key material
        return f"SigningKeys({', '.join(f'{k.state}:{k.kid}:{k.status}' for k in self.keys)})"

    @classmethod
    def generate(cls, states: Iterable[str]) -> SigningKeys:
        return cls(tuple(SigningKey.generate(s) for s in sorted(set(states))))

    def current(self, state: str) -> SigningKey:
        found = next((k for k in self.keys if k.state == state and k.status == "current"), None)
        if found is None:
            raise SigningKeyError(f"no current signing key for {state}")
        return found

    def missing(self, states: Iterable[str]) -> list[str]:
        """The states of ``states`` without a current key."""
        have = {k.state for k in self.keys if k.status == "current"}
        return sorted(set(states) - have)

    def with_keys_for(self, states: Iterable[str]) -> SigningKeys:
        """The ring with a new current key for each of ``states`` that has none."""
        return SigningKeys(self.keys + SigningKeys.generate(self.missing(states)).keys)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Every public key, retired ones included (what they signed still verifies): the JWK set
        of ``GET /v1/keys``, by state, each state's current key first."""
        ordered = sorted(self.keys, key=lambda k: (k.state, k.status != "current"))
        return {"keys": [k.public_jwk() for k in ordered]}

    def to_json(self, *, compact: bool = False) -> str:
        """The ring's JSON: one line when ``compact`` (for TREATYFLOW_SIGNING_KEYS), else indented."""
        return json.dumps({"keys": [k.entry() for k in self.keys]}, indent=None if compact else 1,
                          separators=(",", ":") if compact else None)

    @classmethod
    def parse(cls, text: str, where: str) -> SigningKeys:
        try:
            data = json.loads(text)
        except ValueError:
            raise SigningKeyError(f"{where}: not JSON") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
            raise SigningKeyError(f'{where}: a signing key ring is {{"keys": [...]}}')
        try:
            return cls(tuple(SigningKey.from_entry(e, i) for i, e in enumerate(data["keys"])))
        except SigningKeyError as exc:
            raise SigningKeyError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: Path) -> SigningKeys:
        if path.stat().st_mode & 0o077:
            raise SigningKeyError(f"{path}: the signing key file must be readable by its owner only (chmod 600)")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SigningKeyError(f"{path}: cannot be read ({type(exc).__name__})") from None
        return cls.parse(text, str(path))

    def write(self, path: Path) -> None:
        """Atomically, owner-only: a reader sees the old ring or the new one, never a part."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:  # mode 0600
            tmp.write(self.to_json())
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)


def directory_states() -> list[str]:
    """The states of the authority directory: each signs what its authorities send."""
    return sorted({a.state for a in reference().authorities})


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An flock on ``<file>.lock``: the worker and the API starting together create one ring."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _dev_ring(path: Path, states: list[str]) -> SigningKeys:
    """The local ring, created on first use, and given a key for a state the directory gained."""
    with _locked(path):
        ring = SigningKeys.load(path) if path.exists() else SigningKeys(())
        if ring.missing(states):
            ring = ring.with_keys_for(states)
            ring.write(path)
        return ring


def configured_signing_keys(env: Mapping[str, str], data_dir: Path, *, dev_mode: bool,
                            states: Iterable[str] | None = None) -> SigningKeys:
    """The signing keys of this deployment, with a current key for every state of ``states``
    (the directory's by default); in dev mode the local key file is created on first use."""
    states = sorted(set(directory_states() if states is None else states))
    if env.get("TREATYFLOW_SIGNING_KEYS"):
        ring = SigningKeys.parse(env["TREATYFLOW_SIGNING_KEYS"], "TREATYFLOW_SIGNING_KEYS")
    else:
        path = Path(env.get("TREATYFLOW_SIGNING_KEYS_FILE") or data_dir / FILE_NAME)
        if dev_mode and not env.get("TREATYFLOW_SIGNING_KEYS_FILE"):
            return _dev_ring(path, states)
        if not path.exists():
            raise SigningKeyError(f"no signing keys: set TREATYFLOW_SIGNING_KEYS or TREATYFLOW_SIGNING_KEYS_FILE "
                                  f"({path} missing)")
        ring = SigningKeys.load(path)
    missing = ring.missing(states)
    if missing:
        raise SigningKeyError(f"no current signing key for {', '.join(missing)}: every state of the directory "
                              "signs its results (docs/security.md, signing keys)")
    return ring


# ---- detached JWS (RFC 7515, Appendix F) ----------------------------------------------------------

def sign_detached(ring: SigningKeys, state: str, payload: bytes) -> str:
    """``payload`` signed with ``state``'s current key: ``<header>..<signature>``, the payload left
    out (the reader has it). Ed25519 is deterministic: the same payload and key, the same token."""
    key = ring.current(state)
    header = b64url(json.dumps({"alg": ALG, "kid": key.kid}, separators=(",", ":")).encode())
    signature = key.private.sign(f"{header}.{b64url(payload)}".encode("ascii"))
    return f"{header}..{b64url(signature)}"


def verify_detached(jwks: Mapping[str, Any], token: str, payload: bytes, *, state: str | None = None) -> bool:
    """Whether ``token`` is a detached EdDSA JWS over ``payload`` by a key of the JWK set ``jwks``
    (and, given ``state``, a key of that state). Anything malformed is simply not verified."""
    try:
        encoded_header, attached, encoded_signature = token.split(".")
        header = json.loads(from_b64url(encoded_header))
        if attached or not isinstance(header, dict) or header.get("alg") != ALG or "crit" in header:
            return False
        jwk = next((k for k in jwks["keys"] if isinstance(k, Mapping) and k.get("kid") == header.get("kid")), None)
        if jwk is None or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or jwk.get("alg", ALG) != ALG \
                or jwk.get("use", "sig") != "sig" or (state is not None and jwk.get("state") != state):
            return False
        public = Ed25519PublicKey.from_public_bytes(from_b64url(jwk["x"]))
        public.verify(from_b64url(encoded_signature), f"{encoded_header}.{b64url(payload)}".encode("ascii"))
        return True
    except (InvalidSignature, ValueError, TypeError, KeyError, AttributeError, binascii.Error):
        return False
