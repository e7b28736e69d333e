"""Shared worlds for the synthetic-world tests (each generated once per session)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from immigrationos.synth import NoiseConfig, WorldConfig, generate_world


def _world(tmp: pytest.TempPathFactory, label: str, config: WorldConfig) -> Path:
    out = tmp.mktemp(label)
    generate_world(config, out)
    return out


@pytest.fixture(scope="session")
def default_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 persons with the default noise rates."""
    return _world(tmp_path_factory, "default", WorldConfig(persons=5000, seed=11))


DOC_NOISE = NoiseConfig.none().with_rates(
    dob_day_month_swap=0.2,
    dob_jan1=0.2,
    placeholder=0.2,
    missing_document=0.2,
    duplicate_a_number=0.2,
    missing_a_number=0.2,
    passport_renewed=0.2,
    address_reuse=0.05,
)


@pytest.fixture(scope="session")
def doc_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5000 persons with date/document/identifier noise at 0.2 and exact names."""
    return _world(tmp_path_factory, "doc", WorldConfig(persons=5000, seed=12, noise=DOC_NOISE))


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2000 persons with every noise rate 0."""
    return _world(
        tmp_path_factory, "clean", WorldConfig(persons=2000, seed=13, noise=NoiseConfig.none())
    )


@pytest.fixture(scope="session")
def name_world(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A 3000-person world with only one name-noise kind at 0.2 (cached per kind)."""
    cache: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in cache:
            noise = NoiseConfig.none().with_rates(**{kind: 0.2})
            cache[kind] = _world(
                tmp_path_factory, kind, WorldConfig(persons=3000, seed=14, noise=noise)
            )
        return cache[kind]

    return make
