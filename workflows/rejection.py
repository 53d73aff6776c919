"""Why an act on a case is rejected by an update validator. The ``type`` tells the API which
status to answer: ``not_permitted`` → 403, ``invalid`` → 422, ``conflict`` → 409.

Messages are read by people: they say who may act (``only the central authority of UZ (uz-gpo)
may decide for UZ``), what stage allows an act, and name codes as the API spells them; role
names are written in words (``an executing authority``), never as codes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temporalio.exceptions import ApplicationError

NOT_PERMITTED = "not_permitted"
INVALID = "invalid"
CONFLICT = "conflict"

ROLE_NAMES = {"central_authority": "central authority", "prison_service": "prison service", "court": "court",
              "executing_authority": "executing authority"}


def not_permitted(message: str) -> ApplicationError:
    return ApplicationError(message, type=NOT_PERMITTED, non_retryable=True)


def invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"field": field}, type=INVALID, non_retryable=True)


MOVING = "moving"  # the case is moving to a new run (continue-as-new): 503, try again at once


def moving() -> ApplicationError:
    return ApplicationError("the case is being moved on; try again in a moment", type=MOVING, non_retryable=True)


OPENED = "already_opened"  # an opening of a case that is open already: the client reads it by query


def already_opened(reference: str) -> ApplicationError:
    return ApplicationError(f"{reference} is already open", type=OPENED, non_retryable=True)


def conflict(message: str) -> ApplicationError:
    return ApplicationError(message, type=CONFLICT, non_retryable=True)


# ---- the words of the messages ---------------------------------------------------------------


def role_name(role: str) -> str:
    """``executing_authority`` → ``executing authority``."""
    return ROLE_NAMES.get(role, role.replace("_", " "))


def a_role(role: str) -> str:
    """``an executing authority``, ``a court``."""
    name = role_name(role)
    return ("an " if name[:1] in "aeiou" else "a ") + name


def or_list(items: Iterable[str], word: str = "or") -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def and_list(items: Iterable[str]) -> str:
    return or_list(items, "and")


def authorities_of(state: str, acting: Sequence[tuple[str, str]]) -> str:
    """The authorities of one state that may act, by role and id: ``the central authority of KZ
    (kz-gpo) or its prison service (kz-penal)``. ``acting`` is (role, authority id) pairs; an
    authority named twice (a state whose central authority stands in for a missing role) once."""
    seen: list[tuple[str, str]] = []
    for role, authority in acting:
        if authority and all(authority != a for _, a in seen):
            seen.append((role, authority))
    parts = [f"the {role_name(role)} of {state} ({authority})" if i == 0 else f"its {role_name(role)} ({authority})"
             for i, (role, authority) in enumerate(seen)]
    return or_list(parts) or f"no authority of {state}"


def only(what: str, *groups: tuple[str, Sequence[tuple[str, str]]]) -> str:
    """``only the central authority of UZ (uz-gpo) may decide for UZ``; ``groups`` are
    (state, [(role, authority id), ...]), one per state whose authorities may act."""
    return f"only {or_list(authorities_of(state, acting) for state, acting in groups)} may {what}"


def reference_taken(reference: str) -> str:
    return (f"reference {reference} is already used by a different request: a new case needs a new reference, "
            "and an identical request answers the existing case")
