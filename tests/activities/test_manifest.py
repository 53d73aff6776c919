"""The ``build_manifest`` activity signs the manifest with the requested state's current key, over
the very bytes its digest is computed from; without the state's key it fails, to be retried."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.manifest import ManifestOrder, Signatory, build_manifest
from domain.assistance import EvidenceItem, MeasureView, manifest_bytes
from stores.signing import SigningKeys, from_b64url, verify_detached

ITEM = EvidenceItem(item_id="e1", description="Выписка по счёту", sha256="ab" * 32, collected_on=date(2026, 11, 30))
MEASURES = [MeasureView(id="m1", kind="identify_bank_accounts", stage="executed", evidence=[ITEM],
                        assigned_to="kz-afm"),
            MeasureView(id="m2", kind="search", stage="not_permitted", grounds=["not_covered_by_treaty"])]


async def test_the_manifest_is_signed_by_the_requested_state_over_its_digests_bytes():
    ring = SigningKeys.generate(["KZ", "FR"])
    results = await ActivityEnvironment().run(Signatory(ring).build_manifest,
                                              ManifestOrder(reference="FR-KZ-1", measures=MEASURES))
    payload = json.dumps([i.model_dump(mode="json") for i in results.items], sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False).encode()
    assert manifest_bytes(results.items) == payload
    assert results.manifest_sha256 == hashlib.sha256(payload).hexdigest()
    assert results.signature is not None
    header = json.loads(from_b64url(results.signature.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": ring.current("KZ").kid}  # the requested state's, from the routing
    assert verify_detached(ring.jwks(), results.signature, payload, state="KZ")


async def test_a_given_requested_state_signs():
    ring = SigningKeys.generate(["KZ", "FR"])
    results = await ActivityEnvironment().run(Signatory(ring).build_manifest, ManifestOrder(
        reference="FR-KZ-2", measures=MEASURES, requested_state="FR"))
    assert verify_detached(ring.jwks(), results.signature, manifest_bytes(results.items), state="FR")


async def test_without_the_states_key_the_activity_fails_to_be_retried():
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(Signatory(SigningKeys.generate(["FR"])).build_manifest,
                                        ManifestOrder(reference="FR-KZ-3", measures=MEASURES))
    assert raised.value.type == "signing_key_missing" and not raised.value.non_retryable


def test_workflows_name_the_activity_the_worker_registers():
    """The workflow calls ``manifest.build_manifest`` by reference: the name and result type of the
    Signatory's method, which the worker registers."""
    bound = Signatory(SigningKeys.generate(["KZ"])).build_manifest
    definition = build_manifest.__temporal_activity_definition  # type: ignore[attr-defined]
    assert definition.name == bound.__temporal_activity_definition.name == "build_manifest"  # type: ignore[attr-defined]
    assert definition.ret_type.__name__ == "Results"
