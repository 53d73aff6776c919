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
    Among several candidates of the same tier, one that another candidate ``supersedes`` is set
    aside (both bind the two states, so they are common parties: the Chisinau Convention wins
    over the Minsk Convention); of the rest, the one in force latest wins (then by id)."""
    pair = {state_a, state_b}
    in_force = [
        t for t in treaties
        if t.kind == kind and pair <= set(t.parties) and (t.in_force_on is None or t.in_force_on <= received_on)
    ]
    for multilateral in (False, True):
        tier = [t for t in in_force if t.multilateral == multilateral]
        if tier:
            superseded = {s for t in tier for s in t.supersedes}
            # a cycle of supersession would leave none: then the rule of the later in force decides alone
            current = [t for t in tier if t.id not in superseded] or tier
            return max(current, key=lambda t: (t.in_force_on or date.min, t.id))
    return None
