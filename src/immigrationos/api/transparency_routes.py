"""API routes of the public transparency report."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
