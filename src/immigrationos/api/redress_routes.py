"""API routes of redress: filing, status, triage and decision."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")
