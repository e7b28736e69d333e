"""The access-anomaly rules file (``anomaly_rules.yaml``): its typed shape, and the loader
that validates it at start-up and refuses a bad file with every problem named.

The rules are data so an oversight body can tune a threshold without touching the engine;
:class:`Rules` keeps the SHA-256 of the file's text, which every alert stores, so a finding can
be traced to the rules in force when it was raised.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from immigrationos.accounts.roles import Role
from immigrationos.core.errors import ConfigurationError
from immigrationos.core.ids import sha256_hex

RULES_PATH = Path(__file__).with_name("anomaly_rules.yaml")
RULE_NAMES = ("outside_caseload", "unusual_volume", "after_hours", "purpose_refusals")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonReads(_Strict):
    """Which audit entries count as reading a person."""

    actions: list[str] = Field(min_length=1)
    object_types: list[str] = Field(min_length=1)


class WorkingHours(_Strict):
    """Local working hours, one zone for the agency and one per office that differs."""

    timezone: str
    offices: dict[str, str] = Field(default_factory=dict)
    start: time
    end: time
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)
        return value

    @field_validator("offices")
    @classmethod
    def _zones(cls, value: dict[str, str]) -> dict[str, str]:
        for zone in value.values():
            zone_of(zone)
        return value

    def zone(self, office: str | None) -> str:
        """The zone name of ``office`` (the agency's when it has none of its own)."""
        return self.offices.get(office or "", self.timezone)

    def working(self, local: datetime) -> bool:
        """Whether a local time falls in working hours."""
        day = WEEKDAYS[local.weekday()]
        return day in self.weekdays and self.start <= local.time() < self.end


class _Rule(_Strict):
    enabled: bool = True
    roles: list[Role] = Field(min_length=1)


class CaseloadRule(_Rule):
    min_persons: int = Field(ge=1)
    min_share: float = Field(ge=0, le=1)


class VolumeRule(_Rule):
    k: float = Field(gt=0)
    min_scale_share: float = Field(ge=0)
    min_scale: float = Field(ge=0)
    baseline_days: int = Field(ge=1, le=366)
    min_history_days: int = Field(ge=1)
    min_peers: int = Field(ge=1)
    min_reads: int = Field(ge=1)


class HoursRule(_Rule):
    min_reads: int = Field(ge=1)


class RefusalRule(_Rule):
    actions: list[str] = Field(min_length=1)
    min_refusals: int = Field(ge=1)


class RuleSet(_Strict):
    outside_caseload: CaseloadRule
    unusual_volume: VolumeRule
    after_hours: HoursRule
    purpose_refusals: RefusalRule


class Rules(_Strict):
    """The validated rules file, with the SHA-256 of its text (kept on every alert)."""

    version: int
    person_reads: PersonReads
    working_hours: WorkingHours
    rules: RuleSet
    evidence_seqs: int = Field(ge=1, le=10_000)
    default_scan_days: int = Field(ge=1, le=366)
    sha256: str = ""

    def roles_of(self, rule: str) -> frozenset[str]:
        """The roles a rule applies to (none when the rule is disabled)."""
        spec: _Rule = getattr(self.rules, rule)
        return frozenset(r.value for r in spec.roles) if spec.enabled else frozenset()


@cache
def zone_of(name: str) -> ZoneInfo:
    """The zone called ``name``; a ``ValueError`` (which the rules' validation reports) if none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def load_rules(path: Path = RULES_PATH) -> Rules:
    """Read and validate the rules file; a bad file is refused with every problem named."""
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{path}: not a mapping of settings")
        return Rules.model_validate({**raw, "sha256": sha256_hex(text)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"{path}: {problems}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not YAML ({exc})") from None
