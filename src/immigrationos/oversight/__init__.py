"""Oversight: redress requests, transparency and integrity reporting."""
