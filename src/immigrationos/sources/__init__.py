"""Sources, their data-sharing agreements, ingest batches and immutable source records."""
