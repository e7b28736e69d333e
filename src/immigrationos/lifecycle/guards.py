"""The guards the lifecycle table names: pure checks of a case file, each saying why it blocks.

A guard looks at a :class:`~immigrationos.lifecycle.facts.CaseFacts` and the step being
tried, and answers with a :class:`Check`: passed (with the evidence it relied on) or blocked
(with a sentence a person can act on). The table decides which guards stand in front of
which step; the engine checks them at request, at approval and at execution.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from immigrationos.lifecycle.facts import CaseFacts
from immigrationos.lifecycle.table import TransitionSpec

PROTECTION_FORMS = ("asylum", "withholding", "cat", "fear-based")
VICTIM_FORMS = ("I-918", "I-914", "I-360")
EXPEDITED_MAX_PRESENCE_DAYS = 730
"""2025 designation: expedited removal anywhere in the country under two years' presence."""


@dataclass(frozen=True)
class Check:
    """One guard's answer for one step."""

    guard: str
    ok: bool
    message: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"guard": self.guard, "ok": self.ok, "message": self.message} | (
            {"evidence": self.evidence} if self.evidence else {}
        )


@dataclass(frozen=True)
class Step:
    """The step a guard is asked about."""

    transition: TransitionSpec
    params: dict[str, Any]
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()


Verdict = str | list[dict[str, Any]] | None
"""A guard returns a blocking message, or the evidence it passed on (a list, maybe empty)."""


@dataclass(frozen=True)
class Guard:
    name: str
    description: str
    fn: Callable[[CaseFacts, Step], Verdict]

    def check(self, facts: CaseFacts, step: Step) -> Check:
        verdict = self.fn(facts, step)
        if isinstance(verdict, str):
            return Check(self.name, False, verdict)
        return Check(self.name, True, self.description, verdict or [])


GUARDS: dict[str, Guard] = {}


def guard(description: str) -> Callable[[Callable[[CaseFacts, Step], Verdict]], Any]:
    def register(fn: Callable[[CaseFacts, Step], Verdict]) -> Callable[..., Verdict]:
        GUARDS[fn.__name__] = Guard(fn.__name__, description, fn)
        return fn

    return register


def _destination(f: CaseFacts, step: Step) -> str | None:
    given = step.params.get("destination") or step.params.get("country")
    if given:
        return str(given)
    seat = f.flights.get(f.seat_flight_id or "")
    return seat.destination if seat else None


# -- status and identity ------------------------------------------------------------------


@guard("The case is open.")
def not_terminal(f: CaseFacts, step: Step) -> Verdict:
    from immigrationos.lifecycle.table import load_table

    if f.state in load_table().terminal:
        return f"the case is closed ({f.state})"
    return []


@guard("No identity hold from entity resolution.")
def no_identity_hold(f: CaseFacts, step: Step) -> Verdict:
    if f.identity_hold:
        return f"identity hold: {f.identity_hold} (review the person's split first)"
    return []


@guard("Neither this case nor another of the person's cases is in citizenship review.")
def not_in_citizenship_review(f: CaseFacts, step: Step) -> Verdict:
    if f.state == "CITIZENSHIP_REVIEW":
        return (
            "the case is in citizenship review: no enforcement step until a supervisor and "
            "counsel decide"
        )
    others = [cid for cid, state in f.person_cases if state == "CITIZENSHIP_REVIEW"]
    if others:
        return f"another case of this person is in citizenship review ({', '.join(others)})"
    return []


@guard("The person is not a U.S. citizen and no citizenship claim or evidence is undecided.")
def not_a_citizen(f: CaseFacts, step: Step) -> Verdict:
    if f.citizenship_status in ("citizen", "claimed"):
        return (
            f"citizenship status is {f.citizenship_status!r}: no civil immigration authority "
            "over a citizen"
        )
    undecided = _undecided_evidence(f)
    if undecided:
        return f"citizenship evidence on record not yet decided: {', '.join(undecided)}"
    return [{"citizenship_status": f.citizenship_status}]


def _undecided_evidence(f: CaseFacts) -> list[str]:
    decided = {
        rid
        for c in f.conditions
        if c.kind == "citizenship_decided"
        for rid in c.params.get("evidence_records", [])
    }
    return [r for r in f.citizenship_evidence if r not in decided]


@guard("Citizenship evidence linked to the person has not been decided on.")
def citizenship_evidence_undecided(f: CaseFacts, step: Step) -> Verdict:
    undecided = _undecided_evidence(f)
    if f.citizenship_status == "citizen" and not any(
        c.kind == "citizenship_decided" for c in f.conditions
    ):
        return [{"citizenship_status": "citizen"}]
    if not undecided:
        return "no undecided citizenship evidence"
    return [{"source_record_id": r, "source": "citizenship_evidence"} for r in undecided]


# -- protections ----------------------------------------------------------------------------


@guard("No temporary protected status in effect.")
def tps_not_valid(f: CaseFacts, step: Step) -> Verdict:
    return _no_valid_benefit(f, step, "I-821", "TPS")


@guard("No deferred action (DACA) in effect.")
def deferred_action_not_in_effect(f: CaseFacts, step: Step) -> Verdict:
    return _no_valid_benefit(f, step, "I-821D", "deferred action (DACA)")


def _no_valid_benefit(f: CaseFacts, step: Step, form: str, what: str) -> Verdict:
    for b in f.benefits:
        if b.form == form and b.status == "approved" and (b.valid_until or date.min) >= step.today:
            return f"{what} valid until {b.valid_until} (receipt {b.receipt_no})"
    return []


@guard("Pending U, T or VAWA petitions have a recorded decision that enforcement may proceed.")
def victim_petitions_decided(f: CaseFacts, step: Step) -> Verdict:
    pending = [b for b in f.benefits if b.form in VICTIM_FORMS and b.status == "pending"]
    if not pending:
        return []
    decisions = f.active("victim_petition_decision")
    receipts = ", ".join(f"{b.form} {b.receipt_no}" for b in pending)
    if not decisions:
        return f"pending victim petition ({receipts}): a supervisor must record a decision first"
    if decisions[-1].params.get("decision") != "proceed-with-documented-reason":
        return f"enforcement deferred until the petition is adjudicated ({receipts})"
    return [{"decision": decisions[-1].id}]


@guard("A U, T or VAWA petition is pending.")
def victim_petition_pending(f: CaseFacts, step: Step) -> Verdict:
    if any(b.form in VICTIM_FORMS and b.status == "pending" for b in f.benefits):
        return []
    return "no pending U, T or VAWA petition"


@guard("No pending asylum, withholding, CAT or fear claim.")
def no_pending_protection_claim(f: CaseFacts, step: Step) -> Verdict:
    pending = [c for c in f.active("relief_application") if c.form in PROTECTION_FORMS]
    if pending:
        return f"pending {pending[0].form} claim in this case"
    if f.active("fear_claim"):
        return "a fear claim is pending"
    if any(b.form == "I-589" and b.status == "pending" for b in f.benefits):
        return "a pending asylum application (I-589) is on record"
    return []


# -- orders and their finality ----------------------------------------------------------------


@guard("The removal order is final, with the evidence of why.")
def final_order_holds(f: CaseFacts, step: Step) -> Verdict:
    final = f.active("final_order")
    if final and f.state not in _ORDER_STATES:
        return [final[-1].params]
    reason = _finality(f, step)
    if isinstance(reason, str):
        return reason
    return [reason]


_ORDER_STATES = (
    "REMOVAL_ORDERED",
    "APPEAL_PENDING",
    "IN_ABSENTIA_ORDER",
    "VD_GRANTED",
    "PROTECTION_GRANTED",
    "EXPEDITED_ORDER",
    "REINSTATED",
)


def _finality(f: CaseFacts, step: Step) -> str | dict[str, Any]:
    """Why the order is final now (evidence), or why not (a message)."""
    if f.active("motion_to_reopen"):
        return "a motion to reopen is pending (it stays the order)"
    if f.state in ("REMOVAL_ORDERED", "PROTECTION_GRANTED"):
        if f.active("appeal_waiver"):
            return {"basis": "appeal waived", "condition": f.active("appeal_waiver")[-1].id}
        expired = f.deadline("appeal_window", "applied")
        if expired and not f.active("appeal"):
            return {
                "basis": "appeal window expired",
                "deadline": expired[-1].id,
                "rule": expired[-1].rule,
            }
        return "the 30-day appeal window is open"
    if f.state == "APPEAL_PENDING":
        dismissed = f.active("appeal_dismissed")
        if dismissed:
            return {"basis": "appeal dismissed", "condition": dismissed[-1].id}
        return "an appeal is pending"
    if f.state == "IN_ABSENTIA_ORDER":
        return {"basis": "in-absentia order", "condition": _order_id(f)}
    if f.state == "VD_GRANTED":
        return _vd_finality(f)
    if f.state in ("EXPEDITED_ORDER", "REINSTATED"):
        if f.active("fear_claim") or f.active("status_claim"):
            return "a fear or status claim is pending"
        if f.active("fear_decided"):
            return {"basis": "negative fear determination", "order": _order_id(f)}
        screening = f.active("fear_screening")
        if screening and screening[-1].status == "no-fear-expressed":
            return {"basis": f"{f.track} order, no fear expressed", "order": _order_id(f)}
        return "fear was expressed: the claim must be heard first"
    return f"no order in state {f.state}"


def _vd_finality(f: CaseFacts) -> str | dict[str, Any]:
    missed = f.deadline("vd_departure", "applied")
    if missed:
        return {
            "basis": "voluntary departure deadline missed; alternate order",
            "deadline": missed[-1].id,
        }
    bond = f.deadline("vd_bond", "applied")
    bond_required = any(c.params.get("bond_amount") for c in f.active("order"))
    if bond and bond_required and not f.active("vd_bond"):
        return {
            "basis": "voluntary departure bond not posted; alternate order",
            "deadline": bond[-1].id,
        }
    return "voluntary departure is running"


def _order_id(f: CaseFacts) -> str | None:
    orders = f.active("order")
    return orders[-1].id if orders else None


@guard("No stay of removal in effect.")
def no_stay(f: CaseFacts, step: Step) -> Verdict:
    stays = f.active("stay")
    return f"a stay of removal is in effect ({stays[-1].id})" if stays else []


@guard("The appeal window is closed.")
def appeal_window_closed(f: CaseFacts, step: Step) -> Verdict:
    open_ = f.deadline("appeal_window")
    if open_:
        return f"the appeal window is open until {open_[-1].due_at:%Y-%m-%d %H:%M} UTC"
    return []


@guard("No appeal pending.")
def no_pending_appeal(f: CaseFacts, step: Step) -> Verdict:
    return "an appeal is pending" if f.active("appeal") else []


@guard("No motion to reopen pending.")
def no_pending_motion_to_reopen(f: CaseFacts, step: Step) -> Verdict:
    return "a motion to reopen is pending" if f.active("motion_to_reopen") else []


@guard("A motion to reopen is pending.")
def motion_to_reopen_pending(f: CaseFacts, step: Step) -> Verdict:
    return [] if f.active("motion_to_reopen") else "no motion to reopen is pending"


@guard("An in-absentia order, and the motion within 180 days (any time if no notice was given).")
def in_absentia_motion_timely(f: CaseFacts, step: Step) -> Verdict:
    orders = [c for c in f.active("order") if c.status == "in-absentia"]
    if not orders:
        return "the order was not entered in absentia"
    if orders[-1].params.get("notice_given") is False:
        return [{"order": orders[-1].id, "basis": "no notice of the hearing: any time"}]
    window = f.deadline("motion_to_reopen_window")
    if not window:
        return "more than 180 days since the in-absentia order: no automatic stay"
    return [{"order": orders[-1].id, "deadline": window[-1].id}]


@guard("The appeal is received within the window (no mailbox rule).")
def appeal_timely(f: CaseFacts, step: Step) -> Verdict:
    window = f.deadline("appeal_window")
    if not window:
        return "no open appeal window: the order cannot be appealed to the board now"
    received = date.fromisoformat(str(step.params.get("received_on")))
    if received >= window[-1].due_at.date():
        return f"received {received}, after the window closed ({window[-1].rule})"
    return [{"deadline": window[-1].id}]


@guard("The removal destination is permitted: not a protected country; a new one was noticed.")
def destination_permitted(f: CaseFacts, step: Step) -> Verdict:
    country = _destination(f, step)
    if country is None:
        return []
    barred = [c for c in f.active("protection") if c.country == country]
    if barred:
        return f"removal to {country} is barred by a {barred[-1].form or 'protection'} grant"
    ordered = {c.country for c in f.active("order") if c.country}
    if country in ordered:
        return [{"destination": country, "basis": "named in the order"}]
    notices = [c for c in f.active("destination_notice") if c.country == country]
    if not notices:
        return f"{country} is not named in the order: give written notice first"
    waiting = [d for d in f.deadline("fear_claim_wait") if d.due_at > step.now]
    if waiting:
        return f"waiting period for a fear claim runs until {waiting[-1].due_at:%Y-%m-%d %H:%M} UTC"
    if f.active("fear_claim"):
        return "a fear claim about the new destination is pending"
    return [{"destination": country, "notice": notices[-1].id}]


# -- enforcement steps --------------------------------------------------------------------------


@guard("An arrest has an authority: an approved warrant, or a recorded warrantless basis.")
def arrest_authority(f: CaseFacts, step: Step) -> Verdict:
    if step.params.get("authority") == "warrantless" and not step.params.get("warrantless_basis"):
        return "a warrantless arrest needs its basis recorded (warrantless_basis)"
    return [{"authority": step.params.get("authority")}]


@guard("A detainer rests on a signed warrant (I-200 or I-205).")
def signed_warrant(f: CaseFacts, step: Step) -> Verdict:
    signed = [
        d
        for d in f.documents
        if d[0] in ("arrest_warrant", "warrant_of_removal") and d[1] == "final"
    ]
    if not signed:
        return "no signed arrest warrant (I-200) or warrant of removal (I-205) in the case"
    return [{"document": signed[-1][2], "kind": signed[-1][0]}]


@guard("The detainer has lapsed (48 hours after the scheduled release).")
def detainer_expired(f: CaseFacts, step: Step) -> Verdict:
    lapsed = f.deadline("detainer_expiry", "applied")
    return (
        [{"deadline": lapsed[-1].id, "rule": lapsed[-1].rule}]
        if lapsed
        else "the detainer is in force"
    )


@guard("Expedited removal applies (under two years' continuous presence).")
def expedited_eligible(f: CaseFacts, step: Step) -> Verdict:
    days = int(step.params.get("continuous_presence_days", 0))
    if days >= EXPEDITED_MAX_PRESENCE_DAYS:
        return (
            f"{days} days of presence: expedited removal needs under {EXPEDITED_MAX_PRESENCE_DAYS}"
        )
    if f.lpr:
        return "a permanent resident is not subject to expedited removal"
    return [{"continuous_presence_days": days}]


@guard("A prior removal of this person is on record.")
def prior_removal_on_record(f: CaseFacts, step: Step) -> Verdict:
    removed = [cid for cid, state in f.person_cases if state == "REMOVED"]
    return [{"case": cid} for cid in removed] or "no prior removal of this person is on record"


@guard("Voluntary departure terms are within the law (120 or 60 days; bond at conclusion).")
def vd_terms_lawful(f: CaseFacts, step: Step) -> Verdict:
    decided = date.fromisoformat(str(step.params["decision_date"]))
    deadline = date.fromisoformat(str(step.params["departure_deadline"]))
    limit = 120 if step.params.get("stage") == "before-conclusion" else 60
    if not 0 < (deadline - decided).days <= limit:
        return f"the departure deadline must fall within {limit} days of the decision"
    if limit == 60 and not step.params.get("bond_amount"):
        return "voluntary departure at conclusion needs a bond (at least $500)"
    return []


@guard("A warrant of removal (I-205) for the destination is signed.")
def warrant_of_removal_signed(f: CaseFacts, step: Step) -> Verdict:
    country = _destination(f, step)
    if country is None:
        raise KeyError("destination")  # undecidable until the destination is given
    signed = [c for c in f.active("warrant_of_removal") if c.country == country]
    return (
        [{"condition": signed[-1].id}] if signed else f"no signed warrant of removal to {country}"
    )


@guard("The destination's consulate issued a travel document, valid on the flight date.")
def travel_document_issued(f: CaseFacts, step: Step) -> Verdict:
    country = _destination(f, step)
    if country is None:
        raise KeyError("destination")
    flight = f.flights.get(str(step.params.get("flight_id") or f.seat_flight_id or ""))
    on = flight.departs_at.date() if flight else step.today
    for t in f.travel_documents:
        valid = t["valid_until"] is None or t["valid_until"] >= on
        if t["country"] == country and t["status"] == "issued" and valid:
            return [{"travel_document": t["id"]}]
    return f"no valid travel document issued for {country}"


@guard("The flight is planned, goes to the destination and has a free seat.")
def seat_available(f: CaseFacts, step: Step) -> Verdict:
    if step.params.get("flight_id") is None:
        raise KeyError("flight_id")
    flight = f.flights.get(str(step.params.get("flight_id")))
    if flight is None:
        return f"no removal flight {step.params.get('flight_id')!r}"
    if flight.status != "planned" or flight.departs_at <= step.now:
        return f"flight {flight.id} is {flight.status} (departs {flight.departs_at:%Y-%m-%d %H:%M})"
    if flight.destination != _destination(f, step):
        return f"flight {flight.id} goes to {flight.destination}, not {_destination(f, step)}"
    if flight.taken >= flight.capacity:
        return f"flight {flight.id} is full ({flight.capacity} seats)"
    return [{"flight": flight.id, "seats_taken": flight.taken}]
