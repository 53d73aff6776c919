"""What every case shows, whatever its kind: the audit trail and the pending actions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, Field

Action = Literal[
    "record_declaration", "legal_review", "decide", "confirm_handover",
    "review_request", "answer_information", "authorise_measure", "report_result",
]


def end_of_day(day: date) -> datetime:
    """A deadline given as a date ends at the end of that day (UTC): nothing is overdue on its due
    date itself (DOMAIN.md, Deadlines)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def due_day(deadline: datetime) -> date:
    """The last day an action is due on: a deadline at midnight ends the day before it."""
    return (deadline - timedelta(microseconds=1)).date()


class Actor(BaseModel):
    """Who takes an act: the authority, and the person acting for it through the web application
    (an act through the API names only the authority, and is sent as its id alone)."""

    authority: str
    user: str | None = None


def acting(by: str | Actor) -> tuple[str, str | None]:
    """The authority id and the user of an act's first argument (an id, or an ``Actor``)."""
    return (by, None) if isinstance(by, str) else (by.authority, by.user)


class CaseEvent(BaseModel):
    """One step of the audit trail. ``actor`` is an authority id or ``system``; ``user`` the user
    name of the person who acted for it through the web application (None through the API);
    ``detail`` holds references, stages, codes, dates and staff user names, never personal data of
    the persons concerned."""

    at: datetime
    actor: str
    action: str
    detail: str = ""
    user: str | None = None


class PendingAction(BaseModel):
    authority: str
    action: Action
    measure_id: str | None = None
    due_on: date
    overdue: bool = False


class Notice(BaseModel):
    """A notice to one authority. References, stages, actions and dates only: no personal data."""

    kind: Literal["transfer", "assistance"]
    reference: str
    event: Literal[
        "action_requested", "reminder", "escalation", "decision_recorded", "handover_arranged",
        "case_closed",
    ]
    recipient: str
    stage: str
    action: Action | None = None
    measure_id: str | None = None
    due_on: date | None = None
    # a stable id, the same on every retry of the same notice: receivers drop repeats by it
    notice_id: str
    at: datetime | None = None  # when the case issued it (workflow time)


class Assignment(BaseModel):
    """Who of an authority handles what a case awaits from it: a user name of that authority, or
    None to give the item back (unassigned). ``index``: the blind index of ``authority/user``
    (``domain.names.assignee_index``), computed by the web application, which holds the key — the
    workflow never sees a key; it publishes the index for the inbox's "mine"."""

    user: str | None = Field(None, pattern=r"^[a-z][a-z0-9._-]{2,31}$")
    index: str | None = Field(None, pattern=r"^[0-9a-f]{32}$")


class RequestSeal(BaseModel):
    """What opening a case sends the running case: the digest of the request, never the request
    again (the workflow got that as its input), so that a repeat adds nothing to its history."""

    request_sha256: str


class ArchivedCase(BaseModel):
    kind: Literal["transfer", "assistance"]
    reference: str
    closed_at: datetime
    view: dict
    # SHA-256 of the request as opened (canonical JSON): a repeated open is compared by it
    request_sha256: str
