"""The file archive (stores/archive.py): what a write killed half-way leaves behind."""

from __future__ import annotations

import os
from datetime import datetime, timezone

from stores.archive import ArchivedCase, FileArchive
from tests.conftest import CODEC_KEYS
from treatyflow.codec import EncryptionCodec


def case(reference: str) -> ArchivedCase:
    return ArchivedCase(kind="transfer", reference=reference, closed_at=datetime(2026, 12, 7, tzinfo=timezone.utc),
                        view={"reference": reference, "stage": "transferred"}, request_sha256="0" * 64)


async def test_the_retry_of_a_write_killed_before_its_rename_leaves_nothing_behind(tmp_path) -> None:
    """A worker SIGKILLed between writing the sealed record to its temporary file and renaming it
    leaves that file; the activity's retry (on another worker) removes it as it writes the record."""
    archive = FileArchive(tmp_path, EncryptionCodec(CODEC_KEYS))
    killed = tmp_path / "transfer" / "KZ-KILLED.x1y2z3.tmp"
    killed.parent.mkdir(parents=True)
    killed.write_bytes(os.urandom(64))
    other = tmp_path / "transfer" / "KZ-OTHER.a1b2c3.tmp"  # another case's write, perhaps under way
    other.write_bytes(os.urandom(64))
    receipt = await archive.write(case("KZ-KILLED"))
    assert receipt.written and await archive.read("transfer", "KZ-KILLED") == case("KZ-KILLED")
    assert sorted(p.name for p in (tmp_path / "transfer").iterdir()) == ["KZ-KILLED.json", "KZ-OTHER.a1b2c3.tmp"]
