"""Identity rendering with noise: how a source system wrote a person's name, birth date,
documents and identifiers, and which kinds of noise that record carries.

Each kind is drawn independently per record, only where it can apply (see ``NoiseConfig``);
the kinds actually applied are returned as labels for ``truth/records.parquet``. Work is
vectorised with masks; the only Python loop is the one-edit typo on the few records that get
one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from immigrationos.synth import dates, ids
from immigrationos.synth.config import NoiseConfig
from immigrationos.synth.names import PLACEHOLDER_GIVEN, deaccent
from immigrationos.synth.population import (
    Persons,
    nationality_at,
    passport_index,
    passport_number,
)

PLACEHOLDER_DAY = dates.day(date(1900, 1, 1))
PLACEHOLDER_NAMES = (("NA", "NA"), ("UNKNOWN", "UNKNOWN"))
PLACEHOLDER_DOCUMENT = "XXX"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"

_non_ascii = np.frompyfunc(lambda s: not s.isascii(), 1, 1)
_plain = np.frompyfunc(deaccent, 1, 1)


@dataclass(frozen=True)
class Identity:
    """Which identity fields a source holds, and under which column names."""

    dob: bool = True
    sex: bool = False
    nationality: str | None = None
    document: tuple[str, str | None, str | None] | None = None  # number, expiry, country
    a_number: bool = False
    missing_a: bool = False
    fin: bool = False
    itin: bool = False


class Labels:
    """Comma-separated noise kinds per record."""

    def __init__(self, n: int) -> None:
        self.text = np.full(n, "", dtype=object)

    def mark(self, mask: np.ndarray, kind: str) -> None:
        self.text[mask] = self.text[mask] + ("," + kind)

    def merge(self, extra: np.ndarray) -> None:
        has = extra != None  # noqa: E711 - elementwise on an object array
        self.text[has] = self.text[has] + ("," + extra[has])

    def result(self) -> np.ndarray:
        return np.array([t[1:] for t in self.text], dtype=object)


def typo(text: str, u: np.ndarray) -> str:
    """One edit: substitute, delete, insert or transpose a letter (always changes the text)."""
    if len(text) < 2:
        return text + _LETTERS[int(u[2] * 26)]
    i = int(u[1] * (len(text) - 1))
    op = int(u[0] * 4)
    letter = _LETTERS[int(u[2] * 26)]
    if op == 1:
        return text[:i] + text[i + 1 :]
    if op == 2:
        return text[: i + 1] + letter + text[i + 1 :]
    if op == 3 and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    new = letter if letter != text[i].lower() else _LETTERS[(int(u[2] * 26) + 1) % 26]
    return text[:i] + (new.upper() if text[i].isupper() else new) + text[i + 1 :]


class Noiser:
    """Renders identity columns for records of one chunk."""

    def __init__(self, rng: np.random.Generator, persons: Persons, noise: NoiseConfig) -> None:
        self.rng = rng
        self.persons = persons
        self.noise = noise

    def mask(self, rate: float, where: np.ndarray) -> np.ndarray:
        if rate <= 0:
            return np.zeros(len(where), dtype=bool)
        return where & (self.rng.random(len(where)) < rate)

    def render(self, rows: dict[str, np.ndarray], ident: Identity) -> tuple[dict, np.ndarray]:
        p, on = rows["person"], rows["on"]
        labels = Labels(len(p))
        out: dict[str, np.ndarray] = {}
        out["given_name"], out["family_name"] = self._names(p, labels)
        if ident.dob:
            out["birth_date"] = self._dob(p, labels)
        if ident.sex:
            out["sex"] = self.persons.sex[p]
        if ident.nationality:
            out[ident.nationality] = nationality_at(self.persons, p, on)
        if ident.document:
            out.update(self._document(p, on, ident.document, labels))
        if ident.a_number:
            out["a_number"] = self._a_number(p, ident.missing_a, labels)
        if ident.fin:
            out["fin"] = self.persons.fin[p]
        if ident.itin:
            out["itin"] = self.persons.itin[p]
        self._placeholder(out, ident, labels)
        self._malformed(out, labels)
        if "_noise" in rows:
            labels.merge(rows["_noise"])
        return out, labels.result()

    def _names(self, p: np.ndarray, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
        names, noise = self.persons.names, self.noise
        given, family = names["given"][p].copy(), names["family"][p].copy()
        given[given == ""] = PLACEHOLDER_GIVEN
        galt, falt = names["given_alt"][p], names["family_alt"][p]
        can_g, can_f = galt != None, falt != None  # noqa: E711
        m = self.mask(noise.transliteration, can_g | can_f)
        use_g = m & can_g & (~can_f | (self.rng.random(len(p)) < 0.5))
        use_f = m & ~use_g
        given[use_g], family[use_f] = galt[use_g], falt[use_f]
        labels.mark(m, "transliteration")
        self._alternate(given, names["nickname"][p], noise.nickname, ~use_g, "nickname", labels)
        mid = names["middle"][p]
        m = self.mask(noise.middle_in_given, (mid != None) & (mid != ""))  # noqa: E711
        given[m] = given[m] + " " + mid[m]
        labels.mark(m, "middle_in_given")
        self._alternate(
            family, names["one_surname"][p], noise.one_surname, ~use_f, "one_surname", labels
        )
        self._accents(given, family, labels)
        self._typos(given, family, labels)
        m = self.mask(noise.name_order_swap, given != family)
        given[m], family[m] = family[m], given[m]
        labels.mark(m, "name_order_swap")
        return given, family

    def _alternate(
        self,
        target: np.ndarray,
        alt: np.ndarray,
        rate: float,
        ok: np.ndarray,
        kind: str,
        labels: Labels,
    ) -> None:
        m = self.mask(rate, ok & (alt != None))  # noqa: E711
        target[m] = alt[m]
        labels.mark(m, kind)

    def _accents(self, given: np.ndarray, family: np.ndarray, labels: Labels) -> None:
        accented = (_non_ascii(given) | _non_ascii(family)).astype(bool)
        m = self.mask(self.noise.accent_drop, accented)
        if not m.any():
            return
        new_g, new_f = _plain(given[m]), _plain(family[m])
        changed = np.zeros(len(given), dtype=bool)
        changed[m] = (new_g != given[m]) | (new_f != family[m])
        given[m], family[m] = new_g, new_f
        labels.mark(changed, "accent_drop")

    def _typos(self, given: np.ndarray, family: np.ndarray, labels: Labels) -> None:
        m = self.mask(self.noise.typo, np.ones(len(given), dtype=bool))
        idx = np.flatnonzero(m)
        u = self.rng.random((len(idx), 4))
        for j, i in enumerate(idx):
            if u[j, 3] < 0.5 and given[i] != PLACEHOLDER_GIVEN:
                given[i] = typo(given[i], u[j])
            else:
                family[i] = typo(family[i], u[j])
        labels.mark(m, "typo")

    def _dob(self, p: np.ndarray, labels: Labels) -> np.ndarray:
        birth = self.persons.birth[p]
        y, m, d = dates.parts(birth)
        swap = self.mask(self.noise.dob_day_month_swap, (d <= 12) & (d != m))
        jan1 = self.mask(self.noise.dob_jan1, ~swap & ~((m == 1) & (d == 1)))
        out = birth.copy()
        out[swap] = dates.ymd(y[swap], d[swap], m[swap])
        out[jan1] = dates.ymd(y[jan1], np.ones(int(jan1.sum())), np.ones(int(jan1.sum())))
        labels.mark(swap, "dob_day_month_swap")
        labels.mark(jan1, "dob_jan1")
        return out

    def _document(
        self,
        p: np.ndarray,
        on: np.ndarray,
        cols: tuple[str, str | None, str | None],
        labels: Labels,
    ) -> dict[str, np.ndarray]:
        us, start, span, k, count = passport_index(self.persons, p, on)
        m = self.mask(self.noise.passport_renewed, count >= 2)
        other = np.where(
            k == 0, 1, np.where((k == count - 1) | (self.rng.random(len(p)) < 0.5), k - 1, k + 1)
        )
        k = np.where(m, other, k)
        labels.mark(m, "passport_renewed")
        number = passport_number(self.persons, p, us, k)
        gone = self.mask(self.noise.missing_document, np.ones(len(p), dtype=bool))
        number[gone] = None
        labels.mark(gone, "missing_document")
        out = {cols[0]: number}
        if cols[1]:
            out[cols[1]] = (start + (k + 1) * span).astype(np.int32)
        if cols[2]:
            out[cols[2]] = np.where(us, "USA", self.persons.birth_country[p]).astype(object)
        return out

    def _a_number(self, p: np.ndarray, missing: bool, labels: Labels) -> np.ndarray:
        a, second = self.persons.a1[p].copy(), self.persons.a2[p]
        use2 = (second != None) & (self.rng.random(len(p)) < 0.5)  # noqa: E711
        a[use2] = second[use2]
        labels.mark(use2, "duplicate_a_number")
        if missing:
            m = self.mask(self.noise.missing_a_number, a != None)  # noqa: E711
            a[m] = None
            labels.mark(m, "missing_a_number")
        return a

    def _placeholder(self, out: dict[str, np.ndarray], ident: Identity, labels: Labels) -> None:
        n = len(out["given_name"])
        m = self.mask(self.noise.placeholder, np.ones(n, dtype=bool))
        fields = ["names"] + (["dob"] * ident.dob) + (["document"] if ident.document else [])
        which = np.array(fields, dtype=object)[(self.rng.random(n) * len(fields)).astype(int)]
        form = self.rng.random(n) < 0.6
        names = m & (which == "names")
        out["given_name"][names & form], out["family_name"][names & form] = PLACEHOLDER_NAMES[0]
        out["given_name"][names & ~form], out["family_name"][names & ~form] = PLACEHOLDER_NAMES[1]
        if ident.dob:
            out["birth_date"][m & (which == "dob")] = PLACEHOLDER_DAY
        if ident.document:
            out[ident.document[0]][m & (which == "document")] = PLACEHOLDER_DOCUMENT
        labels.mark(m, "placeholder")

    def _malformed(self, out: dict[str, np.ndarray], labels: Labels) -> None:
        """Values a source system should never send and ingest must quarantine, not load."""
        n = len(out["given_name"])
        m = self.mask(self.noise.malformed, np.ones(n, dtype=bool))
        if not m.any():
            return
        as_code = m & (self.rng.random(n) < 0.5) if "sex" in out else np.zeros(n, dtype=bool)
        as_formula = m & ~as_code
        out["family_name"][as_formula] = np.char.add(
            "=", out["family_name"][as_formula].astype(str)
        ).astype(object)
        if "sex" in out:
            sex = out["sex"].astype(object)
            sex[as_code] = "U"
            out["sex"] = sex
        labels.mark(m, "malformed")


def state_ids(persons: Persons, p: np.ndarray, state: np.ndarray) -> np.ndarray:
    """State identification numbers: the state code and eight digits."""
    return np.char.add(
        state.astype(str), ids.digits(ids.STATE_ID.numbers(persons.gid[p]), 8).astype(str)
    ).astype(object)
