"""The person index: resolved persons, their links to source records, identifiers, statuses."""
