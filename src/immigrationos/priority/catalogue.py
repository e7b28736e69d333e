"""The feature catalogue: every fact a priority policy may name, what feeds it, and what it means.

A policy's rules are conditions over these features and nothing else. Each feature says which
sources feed it, so a policy that names one fed by a source whose agreement does not permit
``enforcement-prioritization`` is refused at validation, naming the feature and the agreement.
A feature no source carries (serious illness, U.S. family, military service) stays in the
catalogue because published frameworks name it: it is always unknown here, never fires a rule,
and every explanation lists it as something an officer must weigh in person.

Attributes the project never holds (DEVELOPERS.md, "lines we never cross") are listed in
:data:`PROHIBITED` so that a policy naming one is refused with that reason rather than as a
mere typo. Nationality is an immigration fact (the country of removal) and is reported in
what-if comparisons, but it is never a policy input.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """The type of a feature's value, which decides the operators a condition may use."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"


@dataclass(frozen=True)
class Feature:
    """One named feature of a person, as of the run's date."""

    name: str
    kind: Kind
    description: str
    sources: tuple[str, ...]
    """Source systems whose records feed the value (empty: the system itself, or no source)."""
    group: str
    unit: str = ""
    collected: bool = True
    """False for a fact a framework names but no source in this system carries."""
    protective: bool = False
    """Fed by a record the law lets serve protection only (8 U.S.C. 1367 petitions): a policy
    may use it to mitigate, never to aggravate or to place a person in a tier."""


B, INT, N, D = Kind.BOOLEAN, Kind.INTEGER, Kind.NUMBER, Kind.DATE
CRIM, COURT, ENTRY, RELIEF, PERSON = (
    "criminal history",
    "orders",
    "entry and presence",
    ("relief and protection"),
    "person",
)
CONV, CT, ARR, ENC, BEN, DEP = (
    ("convictions",),
    ("court",),
    ("arrivals",),
    ("encounters",),
    ("benefits",),
    ("departures",),
)

FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        # -- criminal history (convictions) --------------------------------------------------
        Feature("aggravated_felony", B, "A conviction recorded at aggravated-felony level.",
                CONV, CRIM),
        Feature("felony", B, "A conviction at felony level or above.", CONV, CRIM),
        Feature("significant_misdemeanor", B,
                "A misdemeanor for DUI, assault, weapons, burglary, drug distribution or a "
                "sexual offense, or any misdemeanor sentenced to 90 days or more (the 2014 "
                "memo's definition).", CONV, CRIM),
        Feature("misdemeanor_count", INT, "Misdemeanor convictions (traffic infractions not "
                "counted).", CONV, CRIM, "convictions"),
        Feature("conviction_count", INT, "All convictions, infractions included.", CONV, CRIM,
                "convictions"),
        Feature("violent_offense", B, "A conviction for homicide, robbery, a sexual offense, "
                "or assault at felony level.", CONV, CRIM),
        Feature("firearms_offense", B, "A weapons conviction.", CONV, CRIM),
        Feature("drug_trafficking", B, "A drug-trafficking conviction.", CONV, CRIM),
        Feature("max_sentence_days", INT, "The longest sentence imposed.", CONV, CRIM, "days"),
        Feature("years_since_last_conviction", N, "Years since the most recent conviction "
                "(unknown when there is none).", CONV, CRIM, "years"),
        Feature("years_since_last_felony", N, "Years since the most recent felony-level "
                "conviction (unknown when there is none).", CONV, CRIM, "years"),
        # -- orders (court records and this system's cases) -----------------------------------
        Feature("final_order", B, "A removal order that is final: the appeal was waived, the "
                "30-day window passed with no appeal, or the appeal was dismissed; or a case of "
                "this system reached FINAL_ORDER or later.", CT, COURT),
        Feature("final_order_date", D, "When the newest final removal order became final.",
                CT, COURT),
        Feature("years_since_final_order", N, "Years since the newest final order became "
                "final.", CT, COURT, "years"),
        Feature("in_proceedings", B, "A removal proceeding is open with no decision yet.",
                CT, COURT),
        Feature("prior_removals", INT, "Removals carried out before (court category or a case "
                "of this system that ended REMOVED).", CT, COURT, "removals"),
        # -- entry and presence (arrivals, encounters, departures) ----------------------------
        Feature("last_entry_date", D, "The newest admission or border encounter.", ARR + ENC,
                ENTRY),
        Feature("years_in_country", N, "Years since the earliest admission, encounter or "
                "court filing on record, as of the run.", ARR + ENC + CT, ENTRY, "years"),
        Feature("border_apprehension", B, "Apprehended at or near the border (an encounter at "
                "a port or sector with disposition 'expedited removal' or 'NTA issued' within "
                "30 days of an entry).", ENC, ENTRY),
        Feature("no_admission_record", B, "Encountered with no admission on record (entry "
                "without inspection is likely, not proven).", ARR + ENC, ENTRY),
        Feature("overstay_days", INT, "Days past the authorized stay of the newest admission, "
                "with no departure since and no extension, change or adjustment filed "
                "(0 when not an overstay; unknown with no admission).", ARR + DEP + BEN, ENTRY,
                "days"),
        # -- relief and protection (benefits) -------------------------------------------------
        Feature("pending_relief", B, "An application for relief or a benefit is pending "
                "(asylum, adjustment, TPS, DACA, U, T, VAWA, cancellation).", BEN, RELIEF),
        Feature("protected_status", B, "TPS or deferred action approved and valid on the run "
                "date.", BEN, RELIEF),
        Feature("victim_or_witness", B, "A U, T or VAWA petition was filed (8 U.S.C. 1367: "
                "protective use only).", BEN, RELIEF, protective=True),
        Feature("lawful_permanent_resident", B, "Admitted on an immigrant class, or adjustment "
                "approved.", ARR + BEN, RELIEF),
        # -- person ---------------------------------------------------------------------------
        Feature("age_years", N, "Age in whole years on the run date.", (), PERSON, "years"),
        # -- named by the frameworks, carried by no source here --------------------------------
        Feature("serious_health_condition", B, "A serious physical or mental illness.", (),
                PERSON, collected=False),
        Feature("pregnant_or_nursing", B, "Pregnant or nursing.", (), PERSON, collected=False),
        Feature("primary_caretaker", B, "Primary caretaker of a child or an infirm person.",
                (), PERSON, collected=False),
        Feature("us_family", B, "A U.S. citizen or permanent resident spouse, child or parent.",
                (), PERSON, collected=False),
        Feature("military_service", B, "Service in the U.S. armed forces.", (), PERSON,
                collected=False),
        Feature("national_security_threat", B, "Engaged in or suspected of terrorism or "
                "espionage (a determination, not a data match).", (), PERSON, collected=False),
        # -- fed by sources whose agreements do not permit prioritization ---------------------
        Feature("visa_class", B, "Held a nonimmigrant visa (visa records: INA 222(f) "
                "confidentiality).", ("visas",), ENTRY),
        Feature("tax_address_on_file", B, "A taxpayer address is on file (26 U.S.C. 6103: "
                "criminal investigations only, per request).", ("tax_addresses",), PERSON),
    )
}  # fmt: skip

#: Attributes no policy may name, with the reason the refusal gives.
PROHIBITED: dict[str, str] = {
    **dict.fromkeys(
        ("race", "ethnicity", "ethnic_origin", "skin_colour", "skin_color"),
        "race and ethnicity are never a feature or policy input",
    ),
    **dict.fromkeys(("religion", "religious_affiliation", "faith"), "religion is never an input"),
    **dict.fromkeys(
        ("sexual_orientation", "gender_identity"), "sexual orientation is never an input"
    ),
    **dict.fromkeys(
        ("political_opinion", "political_affiliation", "party_membership"),
        "political opinion is never an input",
    ),
    **dict.fromkeys(
        ("speech", "social_media", "social_media_content", "online_posts", "protest_activity"),
        "speech and social-media content are never an input",
    ),
    **dict.fromkeys(
        (
            "associations",
            "association",
            "gang_membership",
            "gang_participation",
            "known_associates",
        ),
        "associations (gang membership included) are never an input: conduct is judged by "
        "convictions, not by whom a person is said to know",
    ),
    **dict.fromkeys(
        ("nationality", "citizenship_country", "country_of_birth", "language", "native_language"),
        "nationality is an immigration fact (the country of removal), reported in comparisons "
        "but never a priority input",
    ),
}


def prohibited_reason(name: str) -> str | None:
    """Why ``name`` may never be a policy input (DEVELOPERS.md), or None."""
    reason = PROHIBITED.get(name.strip().lower().replace("-", "_").replace(" ", "_"))
    return f"{reason} (DEVELOPERS.md, lines we never cross)" if reason else None
