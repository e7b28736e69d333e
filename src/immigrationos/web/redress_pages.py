"""Pages of redress: public filing and status, the privacy officer queue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
