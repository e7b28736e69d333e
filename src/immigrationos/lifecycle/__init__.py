"""Enforcement cases, their events, documents, and the two-person action approvals."""
