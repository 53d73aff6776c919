"""Everything with side effects: reading the reference data, notices, the archive. Each
activity is idempotent; permanent failures raise non-retryable ApplicationError with a type."""
