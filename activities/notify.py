"""Notices to authorities. In this version a notice is recorded (logged without personal data,
and as an event of the case by the workflow); delivery outward joins with the HTTP API."""

from __future__ import annotations

from temporalio import activity

from domain.case import Notice


@activity.defn(name="notify")
async def notify(notice: Notice) -> None:
    activity.logger.info(
        "notice recorded",
        extra={"reference": notice.reference, "notice_event": notice.event, "recipient": notice.recipient,
               "stage": notice.stage, "action": notice.action, "notice_id": notice.notice_id},
    )
