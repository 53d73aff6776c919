"""Request body size (413) and a per-authority rate limit (429 with Retry-After)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from fastapi import Request

from api.errors import ApiError


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def take(self) -> float:
        """0 when allowed, else the seconds until a token is there."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.buckets: dict[str, TokenBucket] = {}

    def check(self, authority_id: str) -> None:
        bucket = self.buckets.setdefault(
            authority_id, TokenBucket(self.per_second, self.per_second, tokens=self.per_second))
        wait = bucket.take()
        if wait:
            raise ApiError(429, "rate_limited", "too many requests for this authority",
                           headers={"Retry-After": str(max(1, math.ceil(wait)))})


async def body_size_limit(request: Request) -> None:
    limit = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body may not exceed {limit} bytes")
    if request.method in ("POST", "PUT", "PATCH") and len(await request.body()) > limit:
        raise ApiError(413, "too_large", f"the body may not exceed {limit} bytes")
