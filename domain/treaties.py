"""Which treaty governs a case."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Literal

from domain.reference import Treaty


def resolve_treaty(
    treaties: Iterable[Treaty], kind: Literal["transfer", "assistance"], state_a: str, state_b: str,
    received_on: date,
) -> Treaty | None:
    """A bilateral treaty of that kind in force between the two states; failing one, a
    multilateral convention both are parties to; else None (the case is refused `no_treaty`).

    A treaty that records its entry into force governs only requests received on or after it.
    Among several candidates of the same tier the one in force latest wins (then by id)."""
    pair = {state_a, state_b}
    in_force = [
        t for t in treaties
        if t.kind == kind and pair <= set(t.parties) and (t.in_force_on is None or t.in_force_on <= received_on)
    ]
    for multilateral in (False, True):
        tier = [t for t in in_force if t.multilateral == multilateral]
        if tier:
            return max(tier, key=lambda t: (t.in_force_on or date.min, t.id))
    return None
