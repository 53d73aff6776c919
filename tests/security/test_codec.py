"""The payload codec without a server: AES-256-GCM with the key id in the payload metadata,
rotation, loud key errors that never show key material, the dev key file, and encoded failures."""

from __future__ import annotations

import base64
import json
import os
import stat
import traceback
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from treatyflow.client import PLAIN_CONVERTER, connect, data_converter
from treatyflow.codec import (
    COMPRESS_FROM, COMPRESSION, ENCODING, KEY_ID, CodecKeyError, CodecKeys, EncryptionCodec, configured_keys,
)
from treatyflow.config import Settings

SECRET = "Zhanargul Secretova-Testbek, born 1973-07-19"
KEY_OLD, KEY_NEW = os.urandom(32), os.urandom(32)


def keys(current: str = "k1", **by_id: bytes) -> CodecKeys:
    return CodecKeys(current=current, keys=by_id or {current: os.urandom(32)})


def plain(text: str = SECRET) -> Payload:
    return PLAIN_CONVERTER.payload_converter.to_payloads([{"full_name": text}])[0]


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


class Person(BaseModel):
    full_name: str
    date_of_birth: str


# ---- encryption -------------------------------------------------------------------------------

async def test_a_payload_round_trips():
    codec = EncryptionCodec(keys())
    original = plain()
    [sealed] = await codec.encode([original])
    [opened] = await codec.decode([sealed])
    assert opened == original


async def test_an_encrypted_payload_names_its_key_and_hides_its_content():
    codec = EncryptionCodec(keys("k-2026", **{"k-2026": KEY_NEW}))
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == b"binary/encrypted" == ENCODING
    assert sealed.metadata[KEY_ID] == b"k-2026" and KEY_ID == "encryption-key-id"
    assert set(sealed.metadata) == {"encoding", KEY_ID}  # the inner json/plain encoding is sealed too
    everything = sealed.SerializeToString()
    for fragment in ("Zhanargul", "Secretova", "1973-07-19", "json/plain", "full_name"):
        assert fragment.encode() not in everything
    assert KEY_NEW not in everything


async def test_the_same_payload_encrypts_differently_every_time():
    codec = EncryptionCodec(keys())
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data  # a fresh nonce per payload


async def test_a_pydantic_model_round_trips_through_the_data_converter():
    converter = data_converter(keys())
    person = Person(full_name="Zhanargul Secretova-Testbek", date_of_birth="1973-07-19")
    payloads = await converter.encode([person])
    assert all(p.metadata["encoding"] == ENCODING for p in payloads)
    assert b"Secretova" not in payloads[0].SerializeToString()
    assert await converter.decode(payloads, [Person]) == [person]


# ---- rotation ---------------------------------------------------------------------------------

async def test_rotation_decrypts_what_the_old_key_encrypted_and_encrypts_with_the_new():
    before = EncryptionCodec(keys("old", old=KEY_OLD))
    after = EncryptionCodec(keys("new", new=KEY_NEW, old=KEY_OLD))
    [old_sealed] = await before.encode([plain()])
    assert old_sealed.metadata[KEY_ID] == b"old"
    assert await after.decode([old_sealed]) == [plain()]
    [new_sealed] = await after.encode([plain()])
    assert new_sealed.metadata[KEY_ID] == b"new"
    assert await after.decode([new_sealed]) == [plain()]
    assert after.key_ids_in([old_sealed, new_sealed, plain()]) == {"old", "new"}


async def test_a_codec_without_the_key_says_which_key_is_missing():
    [sealed] = await EncryptionCodec(keys("new", new=KEY_NEW, old=KEY_OLD)).encode([plain()])
    with pytest.raises(CodecKeyError, match=r"'new'.*not configured"):
        await EncryptionCodec(keys("old", old=KEY_OLD)).decode([sealed])


async def test_a_different_key_under_the_same_id_does_not_decrypt():
    [sealed] = await EncryptionCodec(keys("k1", k1=KEY_OLD)).encode([plain()])
    with pytest.raises(InvalidTag):
        await EncryptionCodec(keys("k1", k1=KEY_NEW)).decode([sealed])


# ---- tampering --------------------------------------------------------------------------------

@pytest.mark.parametrize("where", [12, -1, 40])  # first ciphertext byte, the tag, the middle
async def test_tampered_ciphertext_fails(where):
    codec = EncryptionCodec(keys())
    [sealed] = await codec.encode([plain()])
    data = bytearray(sealed.data)
    data[where] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(data))
    with pytest.raises(InvalidTag):
        await codec.decode([tampered])


async def test_a_tampered_nonce_or_truncated_payload_fails():
    codec = EncryptionCodec(keys())
    [sealed] = await codec.encode([plain()])
    nonce_flipped = bytes([sealed.data[0] ^ 0x80]) + sealed.data[1:]
    for data in (nonce_flipped, sealed.data[:-1], sealed.data[:12], b""):
        with pytest.raises(Exception) as caught:
            await codec.decode([Payload(metadata=dict(sealed.metadata), data=data)])
        assert SECRET not in str(caught.value)


# ---- compression ------------------------------------------------------------------------------

def a_case_view() -> Payload:
    """What a case view looks like to the codec: JSON with repeated keys and values."""
    events = [{"at": f"2026-12-02T03:{i:02d}:00Z", "actor": "kz-gpo", "action": "stage_entered",
               "detail": "awaiting_consents"} for i in range(40)]
    return PLAIN_CONVERTER.payload_converter.to_payloads([{"full_name": SECRET, "events": events}])[0]


async def test_a_large_payload_is_compressed_before_it_is_sealed_and_opens_unchanged():
    codec = EncryptionCodec(keys())
    original = a_case_view()
    [sealed] = await codec.encode([original])
    assert sealed.metadata[COMPRESSION] == b"zlib"
    assert len(sealed.data) * 3 < len(original.SerializeToString())  # what the server stores shrinks
    assert b"Secretova" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]


async def test_a_small_payload_is_sealed_uncompressed():
    codec = EncryptionCodec(keys())
    small = PLAIN_CONVERTER.payload_converter.to_payloads(["kz-gpo"])[0]
    assert len(small.SerializeToString()) <= COMPRESS_FROM
    [sealed] = await codec.encode([small])
    assert COMPRESSION not in sealed.metadata
    assert await codec.decode([sealed]) == [small]


async def test_payloads_sealed_before_compression_existed_still_open():
    """A history recorded by 0.2.0 holds payloads without the flag, sealed with the key id alone."""
    key = os.urandom(32)
    nonce = os.urandom(12)
    original = a_case_view()
    old = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"},
                  data=nonce + AESGCM(key).encrypt(nonce, original.SerializeToString(), b"k1"))
    assert await EncryptionCodec(keys("k1", k1=key)).decode([old]) == [original]


async def test_the_compression_flag_is_bound_to_the_ciphertext():
    """Removing the flag, or adding it to a payload sealed without, does not open: a payload
    is never decompressed, or left compressed, by someone who changed its metadata."""
    codec = EncryptionCodec(keys())
    [large, small] = await codec.encode([a_case_view(), plain()])
    stripped = Payload(metadata={k: v for k, v in large.metadata.items() if k != COMPRESSION}, data=large.data)
    flagged = Payload(metadata={**small.metadata, COMPRESSION: b"zlib"}, data=small.data)
    for tampered in (stripped, flagged):
        with pytest.raises(InvalidTag):
            await codec.decode([tampered])
    with pytest.raises(ValueError, match="does not know"):
        await codec.decode([Payload(metadata={**large.metadata, COMPRESSION: b"brotli"}, data=large.data)])


async def test_the_key_id_is_bound_to_the_ciphertext():
    """Relabelling a payload with another configured key's id does not decrypt (the id is the
    associated data), so metadata cannot be swapped between keys."""
    codec = EncryptionCodec(keys("a", a=KEY_OLD, b=KEY_NEW))
    [sealed] = await codec.encode([plain()])
    relabelled = Payload(metadata={"encoding": ENCODING, KEY_ID: b"b"}, data=sealed.data)
    with pytest.raises(InvalidTag):
        await codec.decode([relabelled])


async def test_unencrypted_payloads_pass_through_decode():
    codec = EncryptionCodec(keys())
    unencrypted = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload(data=b"raw")]
    assert await codec.decode(unencrypted) == unencrypted


# ---- key configuration ------------------------------------------------------------------------

def no_key_material(error: BaseException, *materials: bytes) -> None:
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error))
    for material in materials:
        assert b64(material) not in shown
        assert repr(material) not in shown
        assert material.hex() not in shown


def test_parse_reads_id_key_pairs_with_the_first_current():
    parsed = CodecKeys.parse(f"new:{b64(KEY_NEW)}, old:{b64(KEY_OLD)}")
    assert parsed.current == "new" and parsed.keys == {"new": KEY_NEW, "old": KEY_OLD}


def test_bad_base64_is_named():
    with pytest.raises(CodecKeyError, match=r"key 'k1' is not valid base64") as caught:
        CodecKeys.parse(f"k1:{b64(KEY_NEW)[:-2]}!!")
    no_key_material(caught.value, KEY_NEW)
    assert b64(KEY_NEW)[:-2] not in str(caught.value)


def test_a_16_byte_key_is_refused_for_aes_256():
    short = os.urandom(16)
    with pytest.raises(CodecKeyError, match=r"key 'k1' is 16 bytes; AES-256 needs 32") as caught:
        CodecKeys.parse(f"k1:{b64(short)}")
    no_key_material(caught.value, short)


def test_a_current_key_that_is_not_configured_is_refused(tmp_path):
    with pytest.raises(CodecKeyError, match=r"current key 'k9' is not among the configured keys") as caught:
        CodecKeys(current="k9", keys={"k1": KEY_OLD})
    no_key_material(caught.value, KEY_OLD)
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"current": "k9", "keys": {"k1": b64(KEY_OLD)}}))
    path.chmod(0o600)
    with pytest.raises(CodecKeyError, match=r"keys.json: the current key 'k9' is not among") as caught:
        CodecKeys.load(path)
    no_key_material(caught.value, KEY_OLD)


@pytest.mark.parametrize("bad_id", ["bad id", "k/1", "", "x" * 65, "clé"])
def test_a_bad_key_id_is_refused(bad_id):
    with pytest.raises(CodecKeyError, match=r"must be 1-64 characters") as caught:
        CodecKeys(current=bad_id, keys={bad_id: KEY_OLD})
    no_key_material(caught.value, KEY_OLD)


def test_entries_without_an_id_and_empty_lists_are_refused():
    with pytest.raises(CodecKeyError, match=r"<id>:<base64 key>") as caught:
        CodecKeys.parse(b64(KEY_OLD))
    no_key_material(caught.value, KEY_OLD)
    with pytest.raises(CodecKeyError, match="empty"):
        CodecKeys.parse(" , ")


@pytest.mark.parametrize("content", [
    "not json",
    json.dumps({"keys": {"k1": b64(KEY_OLD)}}),                                   # no current
    json.dumps({"current": "k1", "keys": [b64(KEY_OLD)]}),                          # keys not an object
    json.dumps({"current": "k1", "keys": {"k1": 12345}}),                           # key not a string
    json.dumps({"current": "k1", "keys": {"k1": b64(KEY_OLD)[:-3] + "%%%"}}),       # bad base64
    json.dumps({"current": "k1", "keys": {"k1": b64(KEY_OLD[:16])}}),               # 16 bytes
    '{"current": "k1", "keys": {"k1": "' + b64(KEY_OLD),                            # truncated file
])
def test_an_unusable_key_file_names_the_file_and_never_the_key(tmp_path, content):
    path = tmp_path / "codec-keys.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(CodecKeyError, match=r"codec-keys.json: ") as caught:
        CodecKeys.load(path)
    no_key_material(caught.value, KEY_OLD, KEY_OLD[:16])
    assert b64(KEY_OLD)[:-3] not in str(caught.value)


def test_keys_never_show_their_material():
    configured = keys("new", new=KEY_NEW, old=KEY_OLD)
    for shown in (repr(configured), str(configured), f"{configured}", repr([configured])):
        assert shown == "CodecKeys(current='new', ids=['new', 'old'])" or "CodecKeys(current='new'" in shown
        for material in (KEY_NEW, KEY_OLD):
            assert b64(material) not in shown and repr(material) not in shown and material.hex() not in shown


# ---- configured_keys --------------------------------------------------------------------------

def test_dev_mode_creates_an_owner_only_key_file_once(tmp_path):
    data_dir = tmp_path / "data"
    first = configured_keys({}, data_dir, dev_mode=True)
    path = data_dir / "codec-keys.json"
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.keys[first.current]) == 32
    second = configured_keys({}, data_dir, dev_mode=True)
    assert second == first
    assert b64(first.keys[first.current]) in path.read_text()  # the file itself holds the key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_group_or_world_readable_key_file_is_refused(tmp_path, mode):
    path = tmp_path / "codec-keys.json"
    path.write_text(json.dumps({"current": "k1", "keys": {"k1": b64(KEY_OLD)}}))
    path.chmod(mode)
    with pytest.raises(CodecKeyError, match=r"owner only \(chmod 600\)") as caught:
        configured_keys({}, tmp_path, dev_mode=True)
    no_key_material(caught.value, KEY_OLD)
    with pytest.raises(CodecKeyError, match="chmod 600"):
        configured_keys({"TREATYFLOW_CODEC_KEYS_FILE": str(path)}, tmp_path / "elsewhere", dev_mode=False)


def test_production_without_keys_fails(tmp_path):
    with pytest.raises(CodecKeyError, match=r"no codec keys: set TREATYFLOW_CODEC_KEYS"):
        configured_keys({}, tmp_path, dev_mode=False)
    assert not (tmp_path / "codec-keys.json").exists()  # production never invents a key


def test_a_named_key_file_that_is_missing_is_never_created(tmp_path):
    missing = tmp_path / "nowhere" / "keys.json"
    with pytest.raises(CodecKeyError, match="no codec keys"):
        configured_keys({"TREATYFLOW_CODEC_KEYS_FILE": str(missing)}, tmp_path, dev_mode=True)
    assert not missing.exists()


def test_keys_from_the_environment_win(tmp_path):
    found = configured_keys({"TREATYFLOW_CODEC_KEYS": f"env:{b64(KEY_NEW)}"}, tmp_path, dev_mode=True)
    assert found.current == "env" and found.keys == {"env": KEY_NEW}
    assert not (tmp_path / "codec-keys.json").exists()


def test_a_configured_key_file_is_read(tmp_path):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"current": "b", "keys": {"a": b64(KEY_OLD), "b": b64(KEY_NEW)}}))
    path.chmod(0o600)
    found = configured_keys({"TREATYFLOW_CODEC_KEYS_FILE": str(path)}, tmp_path, dev_mode=False)
    assert found.current == "b" and found.keys == {"a": KEY_OLD, "b": KEY_NEW}


# ---- start-up fails loudly ----------------------------------------------------------------------

PRODUCTION_API_KEYS = "kz-gpo:" + "ab" * 32


def production(tmp_path: Path, **changes) -> Settings:
    return Settings(dev_mode=False, data_dir=tmp_path, archive_dir=tmp_path / "archive",
                    api_keys=PRODUCTION_API_KEYS, **changes)


@pytest.fixture
def no_key_env(monkeypatch):
    monkeypatch.delenv("TREATYFLOW_CODEC_KEYS", raising=False)
    monkeypatch.delenv("TREATYFLOW_CODEC_KEYS_FILE", raising=False)


def test_the_api_refuses_to_start_without_keys(tmp_path, no_key_env):
    from api.app import create_app

    with pytest.raises(CodecKeyError, match="no codec keys"):
        create_app(production(tmp_path))


def test_the_api_refuses_to_start_with_a_malformed_key(tmp_path, monkeypatch, no_key_env):
    from api.app import create_app

    monkeypatch.setenv("TREATYFLOW_CODEC_KEYS", f"k1:{b64(KEY_OLD[:16])}")
    with pytest.raises(CodecKeyError, match="16 bytes") as caught:
        create_app(production(tmp_path))
    no_key_material(caught.value, KEY_OLD[:16])


async def test_a_client_refuses_to_connect_without_keys(tmp_path, no_key_env):
    """The worker and the CLI connect through ``connect``: the keys are checked before any network."""
    with pytest.raises(CodecKeyError, match="no codec keys"):
        await connect(production(tmp_path, temporal_address="127.0.0.1:1"))


# ---- failures are encoded -----------------------------------------------------------------------

def raised(message: str) -> ApplicationError:
    try:
        raise ApplicationError(message, {"person": "Zhanargul Secretova-Testbek"}, type="secret_failure")
    except ApplicationError as error:
        return error


async def test_failure_messages_stack_traces_and_details_are_encoded():
    converter = data_converter(keys())
    error = raised(SECRET)
    failure = Failure()
    await converter.encode_failure(error, failure)

    assert failure.message == "Encoded failure"
    assert failure.stack_trace == ""
    assert failure.HasField("encoded_attributes")
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    assert all(p.metadata["encoding"] == ENCODING
               for p in failure.application_failure_info.details.payloads)
    raw = failure.SerializeToString()
    for fragment in ("Zhanargul", "Secretova", "1973-07-19", "raised("):
        assert fragment.encode() not in raw

    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == SECRET
    assert decoded.type == "secret_failure"
    assert decoded.details == ({"person": "Zhanargul Secretova-Testbek"},)
    assert decoded.failure is not None
    assert decoded.failure.message == SECRET
    assert "in raised" in decoded.failure.stack_trace  # the stack trace came back with the message


async def test_a_failure_cause_chain_is_encoded_too():
    converter = data_converter(keys())
    try:
        try:
            raise ValueError("cause: Kestrel Holdings ledger")
        except ValueError as cause:
            raise ApplicationError("outer: Secretova") from cause
    except ApplicationError as error:
        outer = error
    failure = Failure()
    await converter.encode_failure(outer, failure)
    raw = failure.SerializeToString()
    assert b"Kestrel" not in raw and b"Secretova" not in raw
    assert failure.cause.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert decoded.message == "outer: Secretova"
    assert "Kestrel Holdings ledger" in str(decoded.cause)
