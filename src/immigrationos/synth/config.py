"""Typed, validated settings of a synthetic world.

Every knob the generator has lives here, as a frozen dataclass with a documented default, so a
world is fully described by its config (which is written into ``manifest.json``) and two runs
with equal configs produce byte-identical output.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any

#: Persons generated per chunk. The output depends on it (each chunk has its own random
#: stream), so it is part of the config rather than chosen from the machine.
DEFAULT_CHUNK_SIZE = 25_000

#: Upper bound that keeps every identifier scheme collision-free (see ``ids.py``).
MAX_PERSONS = 10_000_000


def _check_rate(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True)
class NoiseConfig:
    """Probabilities of each kind of record noise.

    A rate is the chance that the noise is applied to a record *where it can apply* (an accent
    can only be dropped from a name that has one; a day-month swap only when the day is at most
    12 and differs from the month). Every applied kind is written to ``truth/records.parquet``.
    """

    typo: float = 0.03  #: one edit (insert, delete, substitute, transpose) in a name
    accent_drop: float = 0.3  #: diacritics removed from names that carry them
    name_order_swap: float = 0.02  #: given and family name exchanged
    one_surname: float = 0.25  #: only one of two surnames kept (double-surname cultures)
    nickname: float = 0.05  #: given name replaced by a usual nickname (where one exists)
    transliteration: float = 0.15  #: another spelling of the name (where one exists)
    middle_in_given: float = 0.1  #: middle name written into the given-name field
    dob_day_month_swap: float = 0.02  #: birth date with day and month exchanged (when valid)
    dob_jan1: float = 0.01  #: birth date defaulted to 1 January of the true year
    placeholder: float = 0.005  #: "NA NA"/"UNKNOWN" name, 1900-01-01 date or "XXX" document
    missing_document: float = 0.03  #: document/passport number left blank
    passport_renewed: float = 0.05  #: record carries an older or newer passport of the person
    duplicate_a_number: float = 0.02  #: share of A-number holders issued a second A-number
    missing_a_number: float = 0.3  #: encounter recorded without the A-number
    address_reuse: float = 0.02  #: tax-address rows filed at a shared mail-drop address
    malformed: float = 0.002  #: a value no validator may accept (formula-prefixed name, bad code)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_rate(f"NoiseConfig.{f.name}", getattr(self, f.name))

    @classmethod
    def none(cls) -> NoiseConfig:
        """A config with every rate zero: sources then equal the truth exactly."""
        return cls(**{f.name: 0.0 for f in fields(cls)})

    @classmethod
    def names(cls) -> list[str]:
        """The parameter names, in declaration order."""
        return [f.name for f in fields(cls)]

    def with_rates(self, **rates: float) -> NoiseConfig:
        """A copy with some rates changed (unknown names raise ``ValueError``)."""
        unknown = sorted(set(rates) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown noise parameter(s): {', '.join(unknown)}")
        return replace(self, **rates)


@dataclass(frozen=True)
class PopulationMix:
    """Shares of each population category; they must sum to 1.

    Defaults are illustrative, chosen so that every lifecycle branch is represented in a world
    of a few thousand persons, not official statistics.
    """

    citizen_birth: float = 0.30  #: U.S. citizens by birth
    citizen_naturalized: float = 0.08  #: naturalized, with old immigration records
    citizen_derived: float = 0.02  #: derived citizenship through a naturalized parent
    lpr: float = 0.12  #: lawful permanent residents
    visitor_on_time: float = 0.18  #: B1/B2/WT/WB visitors who leave on time
    visitor_late: float = 0.03  #: visitors who leave after their admit-until date
    visitor_overstay: float = 0.04  #: visitors with no departure (some later self-deport)
    student: float = 0.05  #: F1/J1 students admitted for duration of status
    temporary_worker: float = 0.03  #: H1B/L1/O1 workers
    asylum_seeker: float = 0.04  #: I-589 applicants, some in court
    tps: float = 0.03  #: Temporary Protected Status holders
    daca: float = 0.02  #: DACA recipients
    in_proceedings: float = 0.02  #: removal proceedings open, no decision yet
    final_order: float = 0.015  #: removal ordered (including in absentia)
    voluntary_departure: float = 0.01  #: granted voluntary departure
    protection_grant: float = 0.005  #: withholding of removal or CAT protection granted
    removed: float = 0.01  #: removed (some re-entered and were reinstated)
    conviction_rate: float = field(default=0.05, metadata={"share": False})
    self_report_confirmed: float = field(default=0.85, metadata={"share": False})

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_rate(f"PopulationMix.{f.name}", getattr(self, f.name))
        total = sum(self.shares().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"PopulationMix category shares must sum to 1, got {total:.6f}")

    def shares(self) -> dict[str, float]:
        """Category name -> share, in declaration order."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("share", True)
        }

    @classmethod
    def categories(cls) -> list[str]:
        """Category names in declaration order (their index is the category code)."""
        return [f.name for f in fields(cls) if f.metadata.get("share", True)]


@dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a world: size, seed, noise, population and time span."""

    persons: int
    seed: int = 0
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    start_date: date = date(2000, 1, 1)
    as_of_date: date = date(2026, 10, 1)
    population: PopulationMix = field(default_factory=PopulationMix)
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.persons, bool) or not isinstance(self.persons, int):
            raise ValueError(f"WorldConfig.persons must be an integer, got {self.persons!r}")
        if not 1 <= self.persons <= MAX_PERSONS:
            raise ValueError(f"WorldConfig.persons must be in [1, {MAX_PERSONS}]")
        if self.seed < 0:
            raise ValueError("WorldConfig.seed must be non-negative")
        if self.start_date.year < 1990 or self.as_of_date <= self.start_date.replace(
            year=self.start_date.year + 10
        ):
            raise ValueError("WorldConfig needs start_date >= 1990 and 10+ years to as_of_date")
        if self.chunk_size < 100:
            raise ValueError("WorldConfig.chunk_size must be at least 100")

    @property
    def chunks(self) -> int:
        """Number of chunks the persons are generated in."""
        return -(-self.persons // self.chunk_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (dates as ISO strings) for the manifest."""
        data = asdict(self)
        data["start_date"] = self.start_date.isoformat()
        data["as_of_date"] = self.as_of_date.isoformat()
        return data
