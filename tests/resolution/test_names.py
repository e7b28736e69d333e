"""Name keys: folding, particles, FNU, and what name symbols and phonetics say."""

from __future__ import annotations

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
