"""Payload encryption: every payload leaves the process encrypted with AES-256-GCM, so the
Temporal server, its database and an operator's UI without the codec endpoint hold ciphertext only.

A payload of more than ``COMPRESS_FROM`` bytes is compressed (zlib) before it is sealed when that
makes it smaller: a case's views, its treaty and its archive record are JSON that compresses
three- to fourfold, and what the server stores, moves and replays shrinks with them. The flag
travels in the metadata and is bound into the authenticated data, so it cannot be flipped.

Each payload is encrypted with the *current* key; its key id travels in the payload metadata, and
any configured key decrypts, so keys rotate without downtime (add the new key as current, keep the
old ones until no open case uses them). Payloads that were never encrypted pass through.

Keys come from ``TREATYFLOW_CODEC_KEYS`` (``<id>:<base64 32 bytes>,...``, the first is current)
or the key file ``TREATYFLOW_CODEC_KEYS_FILE`` (JSON ``{"current": id, "keys": {id: base64}}``).
In dev mode a key file is created under the data directory on first start, readable by its owner
only. A missing or malformed key fails at start-up."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NONCE_BYTES = 12
COMPRESSION = "encryption-compression"
ZLIB = b"zlib"
COMPRESS_FROM = 256  # bytes of plaintext: below that, zlib's header outweighs what it saves


class CodecKeyError(ValueError):
    """A codec key configuration that cannot be used (named so as not to shadow KeyError)."""




@dataclass(frozen=True)
class CodecKeys:
    current: str
    keys: dict[str, bytes]

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise CodecKeyError(f"the current key {self.current!r} is not among the configured keys")
        for key_id, key in self.keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise CodecKeyError(f"key id {key_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
            if len(key) != 32:
                raise CodecKeyError(f"key {key_id!r} is {len(key)} bytes; AES-256 needs 32")

    def derived(self, purpose: str, key_id: str | None = None) -> bytes:
        """A key for ``purpose`` (page tokens, web sessions, the name index) derived from a codec
        key, the current one by default: the same in every process of the deployment."""
        return hashlib.sha256(f"treatyflow {purpose}\0".encode() + self.keys[key_id or self.current]).digest()

    def __repr__(self) -> str:  # never print key material
        return f"CodecKeys(current={self.current!r}, ids={sorted(self.keys)})"

    @classmethod
    def parse(cls, text: str) -> CodecKeys:
        pairs = [p.strip() for p in text.split(",") if p.strip()]
        if not pairs:
            raise CodecKeyError("TREATYFLOW_CODEC_KEYS is empty")
        keys: dict[str, bytes] = {}
        for pair in pairs:
            key_id, sep, encoded = pair.partition(":")
            if not sep:
                raise CodecKeyError("TREATYFLOW_CODEC_KEYS entries are <id>:<base64 key>")
            keys[key_id] = _decode_key(key_id, encoded)
        return cls(current=pairs[0].partition(":")[0], keys=keys)

    @classmethod
    def load(cls, path: Path) -> CodecKeys:
        try:
            data = json.loads(path.read_text())
            return cls(current=data["current"], keys={k: _decode_key(k, v) for k, v in data["keys"].items()})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, CodecKeyError):
                raise CodecKeyError(f"{path}: {exc}") from None
            raise CodecKeyError(f"{path}: not a codec key file ({type(exc).__name__}: {exc})") from None

    @classmethod
    def create(cls, path: Path) -> CodecKeys:
        """A new key file with one random key, owner-only permissions."""
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = cls(current="k1", keys={"k1": AESGCM.generate_key(bit_length=256)})
        body = json.dumps({"current": keys.current,
                           "keys": {k: base64.b64encode(v).decode() for k, v in keys.keys.items()}})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(body)
        return keys


def _decode_key(key_id: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CodecKeyError(f"key {key_id!r} is not valid base64") from None


def _associated(key_id: str, compression: bytes | None) -> bytes:
    """The authenticated data: the key id, and the compression (payloads sealed before
    compression existed carry the key id alone, and still open)."""
    return key_id.encode() + (b"/" + compression if compression else b"")


def configured_keys(env: dict[str, str], data_dir: Path, *, dev_mode: bool) -> CodecKeys:
    """The keys of this deployment; in dev mode the local key file is created on first use."""
    if env.get("TREATYFLOW_CODEC_KEYS"):
        return CodecKeys.parse(env["TREATYFLOW_CODEC_KEYS"])
    path = Path(env.get("TREATYFLOW_CODEC_KEYS_FILE") or data_dir / "codec-keys.json")
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise CodecKeyError(f"{path}: the key file must be readable by its owner only (chmod 600)")
        return CodecKeys.load(path)
    if dev_mode and not env.get("TREATYFLOW_CODEC_KEYS_FILE"):
        return CodecKeys.create(path)
    raise CodecKeyError(f"no codec keys: set TREATYFLOW_CODEC_KEYS or TREATYFLOW_CODEC_KEYS_FILE ({path} missing)")


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: CodecKeys) -> None:
        self.keys = keys
        self._ciphers = {k: AESGCM(v) for k, v in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.keys.current
        metadata = {"encoding": ENCODING, KEY_ID: key_id.encode()}
        plaintext = payload.SerializeToString()
        if len(plaintext) > COMPRESS_FROM:
            compressed = zlib.compress(plaintext, 6)
            if len(compressed) < len(plaintext):
                plaintext, metadata[COMPRESSION] = compressed, ZLIB
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plaintext, _associated(key_id, metadata.get(COMPRESSION)))
        return Payload(metadata=metadata, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never encrypted (recorded before encryption, or not ours)
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(f"payload encrypted with key {key_id!r}, which is not configured")
        compression = payload.metadata.get(COMPRESSION)
        if compression not in (None, ZLIB):
            raise ValueError(f"payload compressed with {compression!r}, which this codec does not know")
        data = payload.data
        plaintext = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _associated(key_id, compression))
        return Payload.FromString(zlib.decompress(plaintext) if compression else plaintext)

    def key_ids_in(self, payloads: Iterable[Payload]) -> set[str]:
        return {p.metadata[KEY_ID].decode() for p in payloads if p.metadata.get("encoding") == ENCODING}
