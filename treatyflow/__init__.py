"""The shell around the domain: configuration, logging, the Temporal client, the embedded
dev server and the command line. api/ and worker.py connect through it in one way."""
