"""A frozen dataclass given the quick ``__init__`` behaves as the dataclass made it: the same
signature (positional, keyword, defaults), equality (fields left out of it still left out),
hash, repr and refusal to change a field; classes it cannot serve are refused."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from immigrationos.core.frozen import quick_init


@dataclass(frozen=True)
class Plain:
    band: str
    weight: float | None
    notes: tuple[str, ...] = ()
    row: Any = field(default=None, compare=False, repr=False)


@quick_init
@dataclass(frozen=True)
class Quick(Plain):
    """Plain's fields, made by the quick ``__init__``."""


def test_the_quick_init_makes_what_the_generated_one_makes() -> None:
    assert Quick.__init__ is not Plain.__init__  # the quick one, not the inherited
    quick = Quick("verified", 8.5, notes=("a",), row={"x": 1})
    plain = Plain("verified", 8.5, notes=("a",), row={"x": 1})
    assert dataclasses.asdict(quick) == dataclasses.asdict(plain)
    assert repr(quick) == repr(plain).replace("Plain", "Quick")
    assert Quick("review", None) == Quick(weight=None, band="review", notes=())
    assert Quick("review", None, row=1) == Quick("review", None, row=2)  # row not compared
    assert Quick("review", None) != Quick("review", 1.0)
    assert hash(Quick("a", 1.0)) == hash(Quick("a", 1.0, row="other"))
    assert Quick("a", 1.0).notes == () and Quick("a", 1.0).row is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.band = "review"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick("only the band")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", 1.0, (), None, "one too many")  # type: ignore[call-arg]


def test_classes_it_cannot_serve_are_refused() -> None:
    @dataclass(frozen=True)
    class Factory:
        items: list[int] = field(default_factory=list)

    @dataclass(frozen=True)
    class After:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass
    class Mutable:
        a: int

    for cls in (Factory, After, Mutable, int):
        with pytest.raises(TypeError):
            quick_init(cls)
