"""Pages of access-anomaly alerts (auditors)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
