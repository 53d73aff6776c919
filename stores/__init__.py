"""Stores: where treatyflow keeps data outside Temporal (the archive of closed cases, the user
accounts of the web application). A store is given what it needs (a codec, a directory, a URL);
it never reads the configuration or the shell, so the activities that write it and the API that
reads it share one implementation."""
