"""The states' signing keys (stores/signing.py): the dev ring created once, owner-only, and read
again on restart; a readable file refused; production's ring from the environment or a file, with
a current key for every state of the directory; rotation (a new current key, the old one retired
and still published); and the detached JWS made and checked with them."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from stores.signing import (
    FILE_NAME, SigningKey, SigningKeyError, SigningKeys, b64url, configured_signing_keys, directory_states,
    from_b64url, sign_detached, verify_detached,
)

PAYLOAD = '[{"collected_on":"2026-11-30","description":"Выписка","item_id":"e1"}]'.encode()


def header_of(token: str) -> dict:
    return json.loads(from_b64url(token.split(".")[0]))


def write_ring(path: Path, ring: SigningKeys, mode: int = 0o600) -> Path:
    path.write_text(ring.to_json())
    path.chmod(mode)
    return path


# ---- dev mode: the local ring -----------------------------------------------------------------------

def test_dev_mode_creates_an_owner_only_ring_with_a_current_key_for_every_state(tmp_path):
    ring = configured_signing_keys({}, tmp_path, dev_mode=True)
    path = tmp_path / FILE_NAME
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    states = directory_states()
    assert "KZ" in states and "FR" in states
    assert ring.missing(states) == []
    assert sorted(k.state for k in ring.keys) == states  # one key each, all current
    assert {k.status for k in ring.keys} == {"current"}
    on_disk = json.loads(path.read_text())["keys"]
    assert {e["kid"] for e in on_disk} == {k.kid for k in ring.keys}
    assert all(set(e) == {"state", "kid", "status", "kty", "crv", "x", "d"} for e in on_disk)
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary file, renamed into place


def test_the_dev_ring_is_reused_on_restart(tmp_path):
    first = configured_signing_keys({}, tmp_path, dev_mode=True)
    written = (tmp_path / FILE_NAME).read_bytes()
    second = configured_signing_keys({}, tmp_path, dev_mode=True)
    assert (tmp_path / FILE_NAME).read_bytes() == written  # not written again
    assert second.jwks() == first.jwks()
    token = sign_detached(first, "KZ", PAYLOAD)
    assert sign_detached(second, "KZ", PAYLOAD) == token  # the same private key: Ed25519 is deterministic
    assert verify_detached(second.jwks(), token, PAYLOAD)


def test_processes_starting_together_create_one_ring(tmp_path):
    """The worker and the API of `make run` start at once: each reads the ring the first wrote."""
    rings: list[SigningKeys] = []
    threads = [threading.Thread(target=lambda: rings.append(configured_signing_keys({}, tmp_path, dev_mode=True)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rings) == 8
    assert all(r.jwks() == rings[0].jwks() for r in rings)
    assert SigningKeys.load(tmp_path / FILE_NAME).jwks() == rings[0].jwks()


def test_the_dev_ring_gains_a_key_for_a_state_the_directory_gained_and_keeps_the_others(tmp_path):
    before = configured_signing_keys({}, tmp_path, dev_mode=True, states=["KZ", "FR"])
    after = configured_signing_keys({}, tmp_path, dev_mode=True, states=["KZ", "FR", "UZ"])
    assert [k.kid for k in after.keys][:2] == [k.kid for k in before.keys]
    assert after.current("UZ").kid.startswith("uz-")
    assert stat.S_IMODE((tmp_path / FILE_NAME).stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_group_or_world_readable_ring_is_refused(tmp_path, mode):
    configured_signing_keys({}, tmp_path, dev_mode=True)
    (tmp_path / FILE_NAME).chmod(mode)
    with pytest.raises(SigningKeyError, match=r"readable by its owner only \(chmod 600\)"):
        configured_signing_keys({}, tmp_path, dev_mode=True)
    path = write_ring(tmp_path / "ring.json", SigningKeys.generate(directory_states()), mode)
    with pytest.raises(SigningKeyError, match="owner only"):
        configured_signing_keys({"TREATYFLOW_SIGNING_KEYS_FILE": str(path)}, tmp_path, dev_mode=False)


# ---- production: from the environment or a file --------------------------------------------------

def test_production_reads_the_ring_from_the_environment_and_writes_nothing(tmp_path):
    ring = SigningKeys.generate(directory_states())
    found = configured_signing_keys({"TREATYFLOW_SIGNING_KEYS": ring.to_json()}, tmp_path, dev_mode=False)
    assert found.jwks() == ring.jwks()
    assert sign_detached(found, "UZ", PAYLOAD) == sign_detached(ring, "UZ", PAYLOAD)
    assert list(tmp_path.iterdir()) == []
    # the environment wins in dev mode too, as the codec keys' does: no local file then
    again = configured_signing_keys({"TREATYFLOW_SIGNING_KEYS": ring.to_json()}, tmp_path, dev_mode=True)
    assert again.jwks() == ring.jwks() and list(tmp_path.iterdir()) == []


def test_production_reads_the_ring_from_a_file(tmp_path):
    ring = SigningKeys.generate(directory_states())
    (tmp_path / "secrets").mkdir()
    path = write_ring(tmp_path / "secrets" / "signing.json", ring)
    found = configured_signing_keys({"TREATYFLOW_SIGNING_KEYS_FILE": str(path)}, tmp_path / "data", dev_mode=False)
    assert found.jwks() == ring.jwks()
    assert not (tmp_path / "data").exists()


def test_production_without_keys_stops_and_creates_none(tmp_path):
    with pytest.raises(SigningKeyError, match="no signing keys: set TREATYFLOW_SIGNING_KEYS"):
        configured_signing_keys({}, tmp_path, dev_mode=False)
    assert not (tmp_path / FILE_NAME).exists()
    # a named file that is missing is never created, in dev mode either
    missing = tmp_path / "mounted" / "signing.json"
    with pytest.raises(SigningKeyError, match="missing"):
        configured_signing_keys({"TREATYFLOW_SIGNING_KEYS_FILE": str(missing)}, tmp_path, dev_mode=True)
    assert not missing.exists()


def test_production_needs_a_current_key_for_every_state_of_the_directory(tmp_path):
    partial = SigningKeys.generate([s for s in directory_states() if s not in ("KZ", "UZ")])
    with pytest.raises(SigningKeyError, match="no current signing key for KZ, UZ"):
        configured_signing_keys({"TREATYFLOW_SIGNING_KEYS": partial.to_json()}, tmp_path, dev_mode=False)


@pytest.mark.parametrize(("change", "message"), [
    (lambda keys: keys.append({**keys[0], "kid": "kz-second"}), "KZ has 2 current signing keys"),
    (lambda keys: keys.append({**keys[0], "status": "retired"}), "listed twice"),
    (lambda keys: keys[0].update(status="revoked"), "status must be current or retired"),
    (lambda keys: keys[0].update(state="kz"), "state must be a state code"),
    (lambda keys: keys[0].update(kid="kz 1"), "kid must be"),
    (lambda keys: keys[0].update(crv="P-256"), "only Ed25519"),
    (lambda keys: keys[0].update(d=keys[0]["d"][:-4]), "d must be the 32-byte private key"),
    (lambda keys: keys[0].update(x=keys[1]["x"]), "x is not the public key of d"),
])
def test_a_malformed_ring_is_refused_without_showing_key_material(tmp_path, change, message):
    ring = SigningKeys.generate(["KZ", "UZ"])
    data = json.loads(ring.to_json())
    secrets = [e["d"] for e in data["keys"]]
    change(data["keys"])
    with pytest.raises(SigningKeyError, match=message) as raised:
        configured_signing_keys({"TREATYFLOW_SIGNING_KEYS": json.dumps(data)}, tmp_path, dev_mode=False,
                                states=["KZ", "UZ"])
    assert not any(s in str(raised.value) or s[:-4] in str(raised.value) for s in secrets)
    assert "TREATYFLOW_SIGNING_KEYS" in str(raised.value)


def test_no_key_material_in_a_repr():
    ring = SigningKeys.generate(["KZ"])
    entry = ring.keys[0].entry()
    assert entry["d"] not in repr(ring) and entry["d"] not in repr(ring.keys[0])
    assert "kz-" in repr(ring)


# ---- rotation -------------------------------------------------------------------------------------

def test_rotation_signs_with_the_new_key_and_keeps_the_retired_one_published(tmp_path):
    """As docs/security.md says: in the ring's file, mark the state's current key retired, add a new
    current key, restart. The new key signs; the old one signs nothing but stays in the JWKS, so
    what it signed before still verifies."""
    ring = configured_signing_keys({}, tmp_path, dev_mode=True)
    old = ring.current("KZ")
    signed_before = sign_detached(ring, "KZ", PAYLOAD)
    assert header_of(signed_before) == {"alg": "EdDSA", "kid": old.kid}

    path = tmp_path / FILE_NAME
    data = json.loads(path.read_text())
    for entry in data["keys"]:
        if entry["kid"] == old.kid:
            entry["status"] = "retired"
    data["keys"].append(SigningKey.generate("KZ", kid="kz-2027").entry())
    path.write_text(json.dumps(data))  # the file keeps its mode, 0600
    rotated = configured_signing_keys({}, tmp_path, dev_mode=True)  # the restart

    assert rotated.current("KZ").kid == "kz-2027"
    signed_after = sign_detached(rotated, "KZ", PAYLOAD)
    assert header_of(signed_after)["kid"] == "kz-2027"
    jwks = rotated.jwks()
    kz = [k for k in jwks["keys"] if k["state"] == "KZ"]
    assert [k["kid"] for k in kz] == ["kz-2027", old.kid]  # current first, the retired one kept
    assert kz[1]["x"] == old.x
    assert verify_detached(jwks, signed_before, PAYLOAD, state="KZ")
    assert verify_detached(jwks, signed_after, PAYLOAD, state="KZ")
    # a retired key signs nothing any more
    assert all(header_of(sign_detached(rotated, "KZ", p))["kid"] == "kz-2027" for p in (b"[]", PAYLOAD))
    # the other states are untouched
    assert rotated.current("UZ").kid == ring.current("UZ").kid


# ---- the detached JWS -------------------------------------------------------------------------------

def test_a_detached_jws_is_header_dot_dot_signature_and_verifies_only_its_payload():
    ring = SigningKeys.generate(["KZ", "UZ"])
    token = sign_detached(ring, "KZ", PAYLOAD)
    encoded_header, middle, signature = token.split(".")
    assert middle == ""  # detached (RFC 7515 Appendix F)
    assert header_of(token) == {"alg": "EdDSA", "kid": ring.current("KZ").kid}
    assert len(from_b64url(signature)) == 64
    jwks = ring.jwks()
    assert verify_detached(jwks, token, PAYLOAD)
    assert verify_detached(jwks, token, PAYLOAD, state="KZ")
    assert not verify_detached(jwks, token, PAYLOAD, state="UZ")  # a key, but not the requested state's
    changed = bytearray(PAYLOAD)
    changed[3] ^= 0x01
    assert not verify_detached(jwks, token, bytes(changed))
    assert not verify_detached(jwks, token, PAYLOAD + b" ")
    # the payload put back in the middle is a plain compact JWS, but not a detached one
    assert not verify_detached(jwks, f"{encoded_header}.{b64url(PAYLOAD)}.{signature}", PAYLOAD)
    # another ring's keys, an unknown kid, a forged header, garbage
    assert not verify_detached(SigningKeys.generate(["KZ"]).jwks(), token, PAYLOAD)
    other_kid = b64url(json.dumps({"alg": "EdDSA", "kid": ring.current("UZ").kid}).encode())
    assert not verify_detached(jwks, f"{other_kid}..{signature}", PAYLOAD)
    for alg in ("none", "HS256"):
        forged = b64url(json.dumps({"alg": alg, "kid": ring.current("KZ").kid}).encode())
        assert not verify_detached(jwks, f"{forged}..{signature}", PAYLOAD)
        assert not verify_detached(jwks, f"{forged}..", PAYLOAD)
    for garbage in ("", "..", "a.b", "a..b", token + ".x", token.replace(".", "", 1)):
        assert not verify_detached(jwks, garbage, PAYLOAD)
    assert not verify_detached({"keys": "nope"}, token, PAYLOAD)
    assert not verify_detached({}, token, PAYLOAD)


def test_the_published_keys_are_public_only():
    ring = SigningKeys.generate(directory_states())
    for jwk in ring.jwks()["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use", "state"}
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        assert len(from_b64url(jwk["x"])) == 32
    private = {k.entry()["d"] for k in ring.keys}
    assert not any(d in json.dumps(ring.jwks()) for d in private)
    assert {k["state"] for k in ring.jwks()["keys"]} == set(directory_states())


def test_an_unknown_state_has_no_key():
    with pytest.raises(SigningKeyError, match="no current signing key for ZZ"):
        sign_detached(SigningKeys.generate(["KZ"]), "ZZ", PAYLOAD)


def test_the_written_ring_is_never_in_the_repository():
    """`.data/` (the default data directory) is ignored by git: the dev ring is never committed."""
    ignore = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().splitlines()
    assert any(line.strip().rstrip("/") in (".data", "/.data") for line in ignore)
