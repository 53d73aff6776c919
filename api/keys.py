"""API keys: each key belongs to exactly one authority of the directory.

Keys are kept only as SHA-256 hashes and compared in constant time. In dev mode (``make run``)
the key of authority ``<id>`` is ``demo-<id>``; in production the hashes come from
TREATYFLOW_API_KEYS (``<authority>:<sha256 hex>`` pairs, comma separated) or
TREATYFLOW_API_KEYS_FILE (JSON ``{"<sha256 hex>": "<authority>"}``), and dev keys are refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path

from domain.reference import Authority, Reference

DEV_PREFIX = "demo-"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyConfigError(ValueError):
    pass


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, hashes: dict[str, str], ref: Reference, *, dev_mode: bool) -> None:
        for digest, authority_id in hashes.items():
            if not HEX64.match(digest):
                raise KeyConfigError(f"API key hash for {authority_id} is not 64 lowercase hex digits")
            if ref.authority(authority_id) is None:
                raise KeyConfigError(f"API key given for {authority_id}, which is not in the authority directory")
            if not dev_mode and any(digest == key_hash(DEV_PREFIX + a.id) for a in ref.authorities):
                raise KeyConfigError(f"a demo key is configured for {authority_id}; demo keys are for dev mode only")
        self._hashes = [(bytes.fromhex(d), a) for d, a in hashes.items()]
        self._ref = ref
        self.dev_mode = dev_mode

    @classmethod
    def configured(cls, ref: Reference, *, dev_mode: bool, pairs: str = "", file: Path | None = None) -> KeyRing:
        hashes: dict[str, str] = {}
        if dev_mode:
            hashes.update({key_hash(DEV_PREFIX + a.id): a.id for a in ref.authorities})
        for item in filter(None, (p.strip() for p in pairs.split(","))):
            authority_id, sep, digest = item.partition(":")
            if not sep:
                raise KeyConfigError("TREATYFLOW_API_KEYS entries are <authority>:<sha256 hex>")
            hashes[digest.strip().lower()] = authority_id.strip()
        if file is not None:
            try:
                loaded = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise KeyConfigError(f"{file}: cannot read API key hashes ({exc})") from None
            if not isinstance(loaded, dict):
                raise KeyConfigError(f"{file}: expected an object of <sha256 hex>: <authority>")
            hashes.update({str(k).lower(): str(v) for k, v in loaded.items()})
        if not hashes:
            raise KeyConfigError("no API keys configured (TREATYFLOW_API_KEYS or TREATYFLOW_API_KEYS_FILE)")
        return cls(hashes, ref, dev_mode=dev_mode)

    def authority_for(self, key: str) -> Authority | None:
        """Compare against every configured hash, in constant time, without an early exit."""
        if not self.dev_mode and key.startswith(DEV_PREFIX):
            return None
        presented = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for digest, authority_id in self._hashes:
            if hmac.compare_digest(presented, digest):
                found = authority_id
        return self._ref.authority(found) if found else None
