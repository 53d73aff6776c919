"""The evidence manifest sent back to the requesting state, signed by the requested state
(stores/signing.py: a detached JWS over the very bytes its digest is computed from). The worker
holds one ``Signatory`` over the states' signing keys."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.assistance import MeasureView, Results, manifest, manifest_bytes
from stores.signing import SigningKeyError, SigningKeys, sign_detached


class ManifestOrder(BaseModel):
    reference: str
    measures: list[MeasureView]
    # the state whose key signs; absent (orders of workflows that do not give it): the state of the
    # authorities the measures are routed to, which are all the requested state's
    requested_state: str | None = None


def requested_state_of(order: ManifestOrder) -> str:
    """The requested state: given, or read from the measures' routing (an authority id begins with
    its state's code, domain/reference.py)."""
    if order.requested_state:
        return order.requested_state
    states = {authority.split("-", 1)[0].upper() for m in order.measures for authority in (m.assigned_to, m.court)
              if authority}
    if len(states) != 1:  # retried: a worker that can tell picks it up, the case is not lost
        raise ApplicationError(f"the requested state of {order.reference} cannot be told from its measures "
                               f"({', '.join(sorted(states)) or 'none routed'})", type="requested_state_unknown")
    return states.pop()


class Signatory:
    """The activity over the states' signing keys."""

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys

    @activity.defn(name="build_manifest")
    async def build_manifest(self, order: ManifestOrder) -> Results:
        results = manifest(order.measures)
        state = requested_state_of(order)
        try:
            signature = sign_detached(self.keys, state, manifest_bytes(results.items))
        except SigningKeyError as exc:  # retried: a worker given the state's key picks it up
            raise ApplicationError(str(exc), type="signing_key_missing") from None
        activity.logger.info("manifest built", extra={"reference": order.reference, "items": len(results.items),
                                                      "manifest_sha256": results.manifest_sha256,
                                                      "signed_by": self.keys.current(state).kid})
        return results.model_copy(update={"signature": signature})


# What workflows name when they call the activity (its name and result type); the worker registers
# a Signatory's, which holds the keys.
build_manifest = Signatory.build_manifest
