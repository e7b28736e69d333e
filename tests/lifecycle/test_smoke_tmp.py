from datetime import timedelta

from tests.lifecycle.conftest import T0, Desk

from immigrationos.lifecycle import service as lc
from immigrationos.lifecycle.scheduler import tick


def test_smoke(desk: Desk) -> None:
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
    r = desk.run(
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
    print(r.as_dict())
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
    r = desk.run("officer.miami", lc.execute, req)
    print(r.as_dict())
    r = desk.run(
        "officer.miami",
        lc.perform,
        case,
        "issue_nta",
        {
            "charges": ["237(a)(1)(B)"],
            "allegations": ["You are not a citizen", "You overstayed"],
            "hearing_at": "2026-05-04T09:00:00+00:00",
            "hearing_place": "Miami Immigration Court",
        },
    )
    r = desk.run("officer.miami", lc.perform, case, "file_nta", {"court_case_no": "IC123456789"})
    r = desk.run(
        "officer.miami",
        lc.perform,
        case,
        "order_removal",
        {"decision_date": "2026-06-01", "destination": "MEX"},
    )
    print(r.as_dict())
    rep = tick(desk.runtime.sessions, T0 + timedelta(days=60))
    print(rep.as_dict())
    rep = tick(desk.runtime.sessions, T0 + timedelta(days=200))
    print(rep.as_dict())


def test_speed(desk: Desk) -> None:
    import time

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
    t0 = time.perf_counter()
    n = 0
    for i in range(20):
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
        desk.run(
            "officer.miami",
            lc.perform,
            case,
            "issue_nta",
            {
                "charges": ["237(a)(1)(B)"],
                "allegations": ["You are not a citizen", "You overstayed"],
                "hearing_at": "2026-05-04T09:00:00+00:00",
                "hearing_place": "Miami Immigration Court",
            },
        )
        desk.run("officer.miami", lc.perform, case, "file_nta", {"court_case_no": "IC123456789"})
        desk.run("officer.miami", lc.perform, case, "admin_close", {"order_date": "2026-03-01"})
        desk.run("officer.miami", lc.perform, case, "recalendar", {"order_date": "2026-03-01"})
        n += 6
    dt = time.perf_counter() - t0
    print(f"{n} steps in {dt:.2f}s = {n / dt:.1f}/s")
