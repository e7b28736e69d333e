"""Name keys: folding, particles, FNU, and what name symbols and phonetics say."""

from __future__ import annotations

import gc

from immigrationos.resolution.names import fold, keys, symbols, tokens


def test_fold_drops_accents_case_and_punctuation() -> None:
    assert fold("José-María  NÚÑEZ") == "jose maria nunez"


def test_particles_leave_surname_keys_but_not_display() -> None:
    k = keys("José Luis", "de la Cruz")
    assert k.family == "cruz"
    assert k.given == "jose luis" and k.given_first == "jose" and k.given_joined == "joseluis"
    assert keys("Mohammed", "Al-Hassan").family == keys("Muhammad", "el Hassan").family == "hassan"


def test_particle_only_surname_is_kept() -> None:
    assert keys("Anna", "De La").family == "de la"


def test_fnu_and_unknown_are_no_name() -> None:
    assert keys("FNU", "Singh").given is None
    assert tokens("UNKNOWN") == ()


def test_double_surname_tokens() -> None:
    assert keys("Ana", "García López").family_tokens == ("garcia", "lopez")


def test_transliteration_variants_share_a_symbol() -> None:
    mohammed = set(symbols(("mohammed",), "given"))
    assert mohammed & set(symbols(("muhammad",), "given"))
    assert mohammed & set(symbols(("mohamed",), "given"))
    assert set(symbols(("william",), "given")) & set(symbols(("bill",), "given"))


def test_hassan_and_hussein_sound_alike_but_are_different_names() -> None:
    hassan, hussein = keys("Hassan", "Ali"), keys("Hussein", "Ali")
    assert hassan.given_phonetic == hussein.given_phonetic
    assert not set(hassan.given_symbols) & set(hussein.given_symbols)


def test_the_name_caches_stay_out_of_the_collectors_scans() -> None:
    """The caches of name keys are keyed by strings: a garbage collection untracks them and
    a new name does not track them again (a cache keyed by tuples was walked whole, a million
    names after an index build, by each collection)."""
    from immigrationos.resolution import names, records

    def cache_of(function: object) -> dict[object, object]:
        return next(
            o
            for o in gc.get_referents(function)
            if isinstance(o, dict) and all(type(v).__name__ == "_lru_list_elem" for v in o.values())
        )

    for i in range(50):
        records.feature_row({"unique_id": f"r{i}", "given_name": f"Ana{i}", "family_name": "Ruiz"})
    gc.collect()
    records.feature_row({"unique_id": "new", "given_name": "Zoë", "family_name": "de la Cruz",
                         "middle_name": "María"})  # fmt: skip
    for function in (records._given_part_of, records._family_part_of, names._symbols_of):
        assert len(cache_of(function)) > 1 and not gc.is_tracked(cache_of(function))
    part = records._name_part("Zoë", "de la Cruz", "María")
    assert part == {
        **records._given_part_of("Zoë\x1fMaría"),
        **records._family_part_of("de la Cruz"),
    }
    assert records._name_part(None, "Ruiz", None)["given"] is None


def test_the_name_keys_are_the_whole_names_keys_looked_up_by_halves() -> None:
    """Given names and surname are cached apart; together they are what ``names.keys`` says
    of the whole name, absent fields and particles included."""
    from immigrationos.resolution import names, records

    for given, family, middle in [
        ("Zoë", "de la Cruz", "María"),
        ("José Luis", "García Márquez", None),
        (None, "Nguyễn", None),
        ("Mohammed", None, "Al"),
        ("NA", "NA", None),
        (None, None, None),
    ]:
        k = names.keys(given, family, middle)
        assert records._name_part(given, family, middle) == {
            "given": k.given,
            "given_first": k.given_first,
            "given_joined": k.given_joined,
            "given_tokens": list(k.given_tokens),
            "given_symbols": list(k.given_symbols),
            "given_phonetic": k.given_phonetic,
            "family": k.family,
            "family_first": k.family_tokens[0] if k.family_tokens else None,
            "family_tokens": list(k.family_tokens),
            "family_symbols": list(k.family_symbols),
            "family_phonetic": list(k.family_phonetic),
            "family_first_phonetic": names.phonetic(k.family_tokens[0])
            if k.family_tokens
            else None,
        }
