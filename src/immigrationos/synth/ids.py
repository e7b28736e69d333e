"""Identifier schemes: unique, random-looking, and independent of chunking.

Every identifier is a pure function of a *key* (the person's global index, times a slot for
records a person may have several of) pushed through an affine bijection modulo the scheme's
number space: ``(key * mult + offset) % modulus`` with ``gcd(mult, modulus) == 1``. So numbers
look scattered, never collide within a scheme, and do not depend on which worker process or
chunk produced them. Hand-written because no library offers vectorised format-preserving ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Records of one source per person are keyed ``gid * SLOTS + rank``.
SLOTS = 64


@dataclass(frozen=True)
class Scheme:
    """A number space ``[low, low + modulus)`` and the bijection that fills it."""

    modulus: int
    mult: int
    offset: int
    low: int = 0

    def __post_init__(self) -> None:
        assert math.gcd(self.mult, self.modulus) == 1, "multiplier must be coprime"
        assert self.mult * self.modulus < 2**64, "products must fit in uint64"

    def numbers(self, keys: np.ndarray) -> np.ndarray:
        """Map keys (non-negative, below ``modulus``) to unique numbers of the scheme.

        Decimal spaces get affine -> digit reversal -> affine, so that consecutive keys do not
        give visibly consecutive numbers; each step is a bijection, hence so is the whole.
        """
        x = self._affine(keys.astype(np.uint64))
        width = len(str(self.modulus)) - 1
        if self.modulus == 10**width:
            x = self._affine(_reverse_digits(x, width))
        return x.astype(np.int64) + self.low

    def _affine(self, x: np.ndarray) -> np.ndarray:
        return (x * np.uint64(self.mult) + np.uint64(self.offset)) % np.uint64(self.modulus)


def _reverse_digits(x: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros_like(x)
    for _ in range(width):
        out = out * np.uint64(10) + x % np.uint64(10)
        x = x // np.uint64(10)
    return out


ADMISSION = Scheme(10**11, 179_424_673, 31_337_000_001)
FOIL = Scheme(10**9, 2_654_435_761, 123_456_789)
RECEIPT = Scheme(10**10, 1_779_033_703, 4_242_424_242)
CASE = Scheme(10**9, 1_597_334_677, 98_765_432)
ENCOUNTER = Scheme(10**10, 1_246_822_519, 1_111_111_111)
DISPOSITION = Scheme(10**10, 1_566_489_917, 2_718_281_828)
CERTIFICATE = Scheme(10**10, 668_265_263, 1_414_213_562)
EVENT = Scheme(10**12, 17_180_417, 161_803_398_874)
A_OLD = Scheme(90_000_000, 48_271_003, 7_654_321, low=10_000_000)
A_NEW = Scheme(200_000_000, 69_621_007, 12_345_678, low=200_000_000)
FIN = Scheme(10**10, 1_103_515_249, 5_555_555_555)
ITIN = Scheme(19_000_000, 12_345_671, 4_321_000)
PASSPORT = Scheme(23 * 10**8, 1_640_531_527, 31_415_926)
STATE_ID = Scheme(10**8, 950_706_377, 27_182_818)


def digits(numbers: np.ndarray, width: int, prefix: str = "") -> np.ndarray:
    """Zero-padded decimal strings with a prefix, as an object array."""
    text = np.char.zfill(numbers.astype(np.int64).astype(str), width)
    if prefix:
        text = np.char.add(prefix, text)
    return text.astype(object)


def record_keys(gid: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Key of a person's ``rank``-th record of one source."""
    return gid.astype(np.int64) * SLOTS + rank.astype(np.int64)


def itin(gid: np.ndarray) -> np.ndarray:
    """ITINs in the 9XX-7X-XXXX pattern (middle group 70-88)."""
    n = ITIN.numbers(gid)
    area = 900 + n // 190_000
    group = 70 + (n // 10_000) % 19
    serial = n % 10_000
    return np.char.add(
        np.char.add(np.char.add(area.astype(str), "-"), np.char.add(group.astype(str), "-")),
        np.char.zfill(serial.astype(str), 4),
    ).astype(object)


def passport(gid: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Passport ``k`` of a person (``k`` 0-7 foreign, 8-15 U.S.): a letter and eight digits."""
    n = PASSPORT.numbers(gid.astype(np.int64) * 16 + k.astype(np.int64))
    letters = np.frombuffer(b"ABCDEFGHJKLMNPRSTUVWXYZ", dtype="S1").astype(str)
    return np.char.add(letters[n // 10**8], np.char.zfill((n % 10**8).astype(str), 8)).astype(
        object
    )


def a_number(gid: np.ndarray, second: bool, old: np.ndarray) -> np.ndarray:
    """A-numbers: eight digits for those first registered long ago, nine digits otherwise."""
    keys = gid.astype(np.int64) * 2 + int(second)
    value = np.where(old, A_OLD.numbers(keys), A_NEW.numbers(keys))
    return np.char.add("A", value.astype(str)).astype(object)
