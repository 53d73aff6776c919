"""A person's name as the lists' search finds it, without the engine ever holding it: a keyed hash
of the name written the same way (a blind index). The key is a deployment secret (derived from
the codec key, ``treatyflow.codec.CodecKeys.derived``); the engine sees only the hash, so it can
tell that two cases concern the same name, never whose name it is (docs/security.md).

The inbox's "mine" finds the items a staff user handles the same way (``assignee_index``): a keyed
hash of ``authority/user``, under a key of its own."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata


def normalised(name: str) -> str:
    """The name as the index keeps it: Unicode NFKC, case folded, runs of white space as one
    space; letters are kept as written (``Aziz`` and ``Азиз`` are different names)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def name_index(key: bytes, name: str) -> str:
    """The blind index of ``name`` under ``key``: 32 hexadecimal digits."""
    return hmac.new(key, normalised(name).encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def assignee_index(key: bytes, authority: str, user: str) -> str:
    """The blind index of the user ``user`` of ``authority`` handling an item, under ``key`` (a key
    derived for this purpose only: ``CodecKeys.derived("assignment index")``): 32 hexadecimal digits.
    User names are written one way only (``domain.case.Assignment``), so nothing is normalised."""
    return hmac.new(key, f"{authority}/{user}".encode("utf-8"), hashlib.sha256).hexdigest()[:32]
