"""Entity resolution: source records about the same person, resolved into one person."""
