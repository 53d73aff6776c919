"""Pure domain: models, reference data and the rules treatyflow applies. No Temporal, no network."""
