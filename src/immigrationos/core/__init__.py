"""Cross-cutting primitives: settings, errors, ids and the clock."""
