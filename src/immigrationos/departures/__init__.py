"""Departure events (manifests, land exits, self-reports) and the departures they establish."""
