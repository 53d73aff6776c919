"""Reading a request body strictly: JSON only, unknown fields rejected, the fields at fault named."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, invalid, problems_of

M = TypeVar("M", bound=BaseModel)


async def parse(request: Request, model: type[M]) -> M:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as JSON, with Content-Type: application/json")
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"", strict=True)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise invalid([("(body)", "the body is not valid JSON: send one JSON object in UTF-8")]) from None
        raise invalid(problems_of(exc)) from None


def utc_today() -> date:
    """'Today' for the API is the UTC date (API.md)."""
    return datetime.now(timezone.utc).date()


async def read_at_most(request: Request, limit: int) -> bytes | None:
    """A body read by its route (one the body limit lets through), counted as it arrives; None when
    its declared length or its count passes ``limit`` (nothing more is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
