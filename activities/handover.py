"""Arranging the handover of a sentenced person at the place the treaty names."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel
from temporalio import activity

from domain.reference import reference
from domain.transfer import TO_BE_AGREED, Handover


class HandoverPlan(BaseModel):
    reference: str
    treaty_id: str
    due_on: date


@activity.defn(name="arrange_handover")
async def arrange_handover(plan: HandoverPlan) -> Handover:
    treaty = reference().treaty(plan.treaty_id)
    points = treaty.transfer.handover_points.value if treaty and treaty.transfer else []
    activity.logger.info("handover arranged", extra={"reference": plan.reference, "due_on": str(plan.due_on)})
    return Handover(place=points[0] if points else TO_BE_AGREED, due_on=plan.due_on)
