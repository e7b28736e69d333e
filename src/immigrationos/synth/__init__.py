"""Synthetic world generator: synthetic persons, the dirty records that source systems hold
about them, and the ground truth that links the two.

Only synthetic people: names are random combinations from common-name pools, identifiers come
from private number spaces, and nothing is derived from a real person.
"""

from immigrationos.synth.config import NoiseConfig, PopulationMix, WorldConfig
from immigrationos.synth.sources import SOURCES
from immigrationos.synth.world import generate_world
from immigrationos.synth.writer import FileSummary, WorldSummary

__all__ = [
    "SOURCES",
    "FileSummary",
    "NoiseConfig",
    "PopulationMix",
    "WorldConfig",
    "WorldSummary",
    "generate_world",
]
