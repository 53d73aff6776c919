"""Fault tests: a real Temporal dev server, real worker and API processes killed, stopped and
restarted, receivers and the archive failing; loopback only, every process ended by the fixtures."""
