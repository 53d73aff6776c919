"""structlog set-up: one JSON object per line, for our own logs and the SDK's alike.
What is logged is references, stages, authority ids and codes, never personal data."""

from __future__ import annotations

import logging
import sys

import structlog

SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(level: str = "INFO") -> None:
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*SHARED, structlog.stdlib.ExtraAdder(), _flatten_temporal_context],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _flatten_temporal_context(_, __, event: dict) -> dict:
    """The SDK adds ``temporal_workflow``/``temporal_activity`` dicts; keep their ids only."""
    for key in ("temporal_workflow", "temporal_activity"):
        ctx = event.pop(key, None)
        if isinstance(ctx, dict):
            for field in ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt"):
                if field in ctx:
                    event.setdefault(field if field != "activity_type" else "activity", ctx[field])
    return event
