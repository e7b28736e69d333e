from datetime import timedelta
from tests.lifecycle.conftest import Desk, T0
from immigrationos.lifecycle import service as lc
from immigrationos.lifecycle.scheduler import tick


def test_scratch(desk: Desk) -> None:
    desk.runtime.sessions.configure(info={"immos.documents_pdf": False})
    pid = desk.person(
        golden={
            "a_number": {
                "value": "A123456789",
                "source_id": "court",
                "record_key": "IC1",
                "observed_on": "2025-01-01",
            }
        }
    )
    case = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="lead test").id
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "record_encounter",
        {
            "encounter_date": "2026-03-02",
            "office": "Miami",
            "narrative": "Met at a traffic stop, interviewed.",
        },
    )
    req = desk.run(
        "officer.miami",
        lambda gw: (
            lc.request_action(
                gw,
                case,
                "arrest",
                {
                    "authority": "warrant",
                    "probable_cause": "Overstayed admission by 2 years per arrivals",
                },
                "Overstay with prior order risk",
            ).id
        ),
    )
    desk.run("supervisor.miami", lc.decide, req, True, "reviewed file")
    desk.run("officer.miami", lc.execute, req)
    try:
        req = desk.run(
            "officer.miami",
            lambda gw: (
                lc.request_action(
                    gw,
                    case,
                    "lodge_detainer",
                    {
                        "probable_cause_basis": "pending-removal-proceedings",
                        "facility": "County jail",
                        "release_at": (T0 + timedelta(days=3)).isoformat(),
                    },
                    "Detainer for the county jail",
                ).id
            ),
        )
        print("detainer requested", req)
    except Exception as e:
        print("DETAINER", type(e).__name__, e)
    case2 = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="vd").id
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case2,
        "record_encounter",
        {
            "encounter_date": "2026-03-02",
            "office": "Miami",
            "narrative": "Met at a traffic stop, interviewed.",
        },
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case2,
        "issue_nta",
        {
            "charges": ["237(a)(1)(B)"],
            "allegations": ["You are not a citizen", "You overstayed"],
            "hearing_at": "2026-05-04T09:00:00+00:00",
            "hearing_place": "Miami Immigration Court",
        },
    )
    desk.run("officer.miami", lc.perform, case2, "file_nta", {"court_case_no": "IC123456789"})
    r = desk.run(
        "officer.miami",
        lc.perform,
        case2,
        "grant_voluntary_departure",
        {
            "decision_date": "2026-03-02",
            "stage": "before-conclusion",
            "departure_deadline": "2026-06-30",
            "alternate_destination": "MEX",
        },
    )
    print(r.as_dict())
    rep = tick(desk.runtime.sessions, T0 + timedelta(days=10))
    print(rep.as_dict())
    # in absentia
    case3 = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="ia").id
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case3,
        "record_encounter",
        {
            "encounter_date": "2026-03-02",
            "office": "Miami",
            "narrative": "Met at a traffic stop, interviewed.",
        },
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case3,
        "issue_nta",
        {
            "charges": ["237(a)(1)(B)"],
            "allegations": ["You are not a citizen", "You overstayed"],
            "hearing_at": "2026-05-04T09:00:00+00:00",
            "hearing_place": "Miami Immigration Court",
        },
    )
    desk.run("officer.miami", lc.perform, case3, "file_nta", {"court_case_no": "IC123456788"})
    r = desk.run(
        "officer.miami",
        lc.perform,
        case3,
        "order_in_absentia",
        {"decision_date": "2026-03-02", "destination": "MEX", "notice_given": True},
    )
    print(r.as_dict())
