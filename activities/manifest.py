"""The evidence manifest sent back to the requesting state."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from domain.assistance import MeasureView, Results, manifest


class ManifestOrder(BaseModel):
    reference: str
    measures: list[MeasureView]


@activity.defn(name="build_manifest")
async def build_manifest(order: ManifestOrder) -> Results:
    results = manifest(order.measures)
    activity.logger.info("manifest built", extra={"reference": order.reference, "items": len(results.items),
                                                  "manifest_sha256": results.manifest_sha256})
    return results
