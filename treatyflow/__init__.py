"""The shell around the domain, in two layers (docs/architecture.md): configuration, codec,
logging, the Temporal client, the namespace's set-up and opening cases, which api/ and worker.py
use (they connect through it in one way); and above them the command line, the demo and the
embedded dev server."""
