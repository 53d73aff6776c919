"""Who acts for each state in a case, from the authority directory (DOMAIN.md): where a state
has no authority of the role an action needs, its central authority is responsible."""

from __future__ import annotations

from pydantic import BaseModel

from domain.reference import Reference, Role


def responsible_authority(ref: Reference, state: str, role: Role, competence: str | None = None) -> str:
    """The authority of ``state`` with that role (and competence), else its central authority."""
    candidates = [a for a in ref.authorities_of(state) if a.role == role
                  and (competence is None or a.competence == competence)]
    if candidates:
        return candidates[0].id
    central = [a for a in ref.authorities_of(state) if a.role == "central_authority"]
    if not central:
        raise LookupError(f"no central authority for {state} in the directory")
    return central[0].id


class StateAuthorities(BaseModel):
    state: str
    central_authority: str
    prison_service: str  # the central authority where the state has no prison service


def state_authorities(ref: Reference, state: str) -> StateAuthorities:
    return StateAuthorities(
        state=state,
        central_authority=responsible_authority(ref, state, "central_authority"),
        prison_service=responsible_authority(ref, state, "prison_service"),
    )
