"""Deterministic orchestration of each case kind. No I/O here: activities do it."""
