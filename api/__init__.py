"""The HTTP API of API.md: authentication, per-route authorisation, validation, and the mapping
of HTTP to Temporal (start, update, query, list). Never imported by workflow code."""
