"""Example requests, for `treatyflow demo`, the tests and the benchmarks: a complete KZ→UZ
transfer that passes every condition and a FR→KZ request for assistance, to be varied, and the
demo key of an authority (dev mode). References begin with the opening state's code (API.md):
``KZ-`` for a transfer (kz-gpo opens it unless ``opening_state`` says otherwise), the requesting
state's code for assistance. Persons and facts are fictional."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from api.keys import DEV_PREFIX
from domain.transfer import TransferRequest

BASE: dict[str, Any] = {
    "sentencing_state": "KZ",
    "administering_state": "UZ",
    "received_on": "2026-11-20",
    "person": {"full_name": "Aziz Testov", "date_of_birth": "1985-03-02", "citizenships": ["UZ"]},
    "judgment": {"court": "Almaty City Court", "date": "2024-05-10", "final": True,
                 "offences": [{"article": "188", "iccs": "0502", "description": "Theft"}]},
    "sentence": {"indeterminate": False, "start_date": "2024-01-15", "years": 5, "months": 0, "days": 0,
                 "pretrial_credit_days": 120, "remission_days": 0},
    "financial_obligations": [],
    "pending_proceedings": [],
    "declaration": {"signed_on": "2026-11-18", "voluntary": True, "informed_of_consequences": True},
}


def key(authority: str) -> dict[str, str]:
    """The Authorization header of ``authority``'s demo key (accepted only in dev mode)."""
    return {"Authorization": f"Bearer {DEV_PREFIX}{authority}"}


def new_reference(state: str = "KZ") -> str:
    """A fresh reference of a case that ``state`` opens."""
    return f"{state}-{uuid.uuid4().hex[:12]}"


def varied(base: dict[str, Any], reference: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``reference`` and the top-level fields of ``changes`` (a reference
    among them wins); ``None`` removes a field."""
    body = copy.deepcopy(base)
    body["reference"] = reference
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def transfer_body(*, opening_state: str = "KZ", **changes: Any) -> dict[str, Any]:
    """The base body with top-level fields replaced; ``None`` removes a field. The reference is
    one of ``opening_state`` (either party's central authority may open a transfer)."""
    return varied(BASE, new_reference(opening_state), changes)


def transfer_request(*, opening_state: str = "KZ", **changes: Any) -> TransferRequest:
    return TransferRequest.model_validate(transfer_body(opening_state=opening_state, **changes))


ASSISTANCE: dict[str, Any] = {
    "requesting_state": "FR",
    "requested_state": "KZ",
    "received_on": "2026-11-01",
    "issuing_authority": "Juge d'instruction, Paris",
    "purpose": "Investigation of a fraud against investors",
    "facts": "Funds of investors were moved through accounts in Almaty",
    "offences": [{"article": "313-1", "iccs": "0701", "description": "Fraud"}],
    "measures": [
        {"id": "m1", "kind": "identify_bank_accounts", "description": "Accounts held", "subject": "a company"},
        {"id": "m2", "kind": "search", "description": "Search of the office", "subject": "an office"},
        {"id": "m3", "kind": "interrogation", "description": "Hear the director", "subject": "a director"},
    ],
    "urgent": False,
    "confidential": False,
}


def assistance_body(**changes: Any) -> dict[str, Any]:
    """The base request with top-level fields replaced; ``None`` removes a field. Its reference is
    one of the requesting state, whose central authority files it."""
    return varied(ASSISTANCE, new_reference(changes.get("requesting_state") or ASSISTANCE["requesting_state"]),
                  changes)


def assistance_request(**changes: Any):
    from domain.assistance import AssistanceRequest

    return AssistanceRequest.model_validate(assistance_body(**changes))
