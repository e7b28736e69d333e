"""Access anomalies on a loaded demo world: planted misuse among simulated staff is flagged
(with the worklists and cases the demo built), and only auditors see and review the alerts,
through the API and the pages (CSRF on every form).

The world is the session's demo world (tests/shared_demo.py, 400 synthetic persons), copied
for this module; the demo itself runs :func:`~immigrationos.oversight.activity.plant_and_scan`
(two weeks of activity with the four plants, scanned), and the tests read what it returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.shared_demo import DemoBuild

from immigrationos.accounts.service import DEMO_ACCOUNTS
from immigrationos.api.app import create_app
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import frozen_at
from immigrationos.core.settings import Settings
from immigrationos.oversight import activity, anomalies
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store.engine import transaction

PASSWORDS = {a.username: a.password for a in DEMO_ACCOUNTS}
FPR_BOUND = 0.10


@dataclass
class AnomalyDemo:
    runtime: Runtime
    app: Any
    truth: activity.GroundTruth
    report: anomalies.ScanReport
    evaluation: activity.Evaluation


@pytest.fixture(scope="module")
def anomaly_demo(
    demo_build: DemoBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnomalyDemo]:
    """A copy of the session's demo world (the tests review alerts), with what the demo's
    ``plant_and_scan`` returned."""
    data = demo_build.copy(tmp_path_factory.mktemp("anomaly-demo") / "data")
    o = demo_build.oversight
    runtime = open_runtime(Settings(mode="demo", data_dir=data, lifecycle_tick_seconds=0))
    yield AnomalyDemo(runtime, create_app(runtime), o.truth, o.scan, o.evaluation)
    runtime.close()


def test_planted_misuse_in_the_demo_world_is_flagged(anomaly_demo: AnomalyDemo) -> None:
    result = anomaly_demo.evaluation
    print("evaluation:", json.dumps(result.as_dict(), default=str))  # the FPR, reported
    assert result.missed == []
    assert all(r.recall == 1.0 for r in result.rules)
    assert result.false_positive_rate <= FPR_BOUND, result.clean_flagged
    saved = activity.GroundTruth.load(activity.truth_path(anomaly_demo.runtime))
    assert saved == anomaly_demo.truth
    with transaction(anomaly_demo.runtime.sessions) as session:
        simulated = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "anomaly.activity_simulated")
        ).one()
    assert simulated.details["first_seq"] == anomaly_demo.truth.first_seq
    assert simulated.details["planted"] == 4


def _basic(username: str, purpose: str = "oversight-audit") -> dict[str, Any]:
    return {"auth": (username, PASSWORDS[username]), "headers": {"X-Immos-Purpose": purpose}}


def test_the_api_serves_alerts_to_auditors_only(anomaly_demo: AnomalyDemo) -> None:
    client = TestClient(anomaly_demo.app)
    listed = client.get("/api/anomalies/alerts", params={"status": "open"}, **_basic("auditor"))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == len(anomaly_demo.report.raised) >= 4
    first = page["alerts"][0]
    detail = client.get(f"/api/anomalies/alerts/{first['id']}", **_basic("auditor")).json()
    assert detail["entries"] and all("object_ids" not in e for e in detail["entries"])
    assert "per-" not in json.dumps(detail)
    assert client.get("/api/anomalies/alerts/alr-nothing", **_basic("auditor")).status_code == 404
    # the demo's own window again: nothing new (the default window would also read the
    # demo build's own activity, at whatever hour the world was built)
    window = {
        "since": anomaly_demo.report.since.isoformat(),
        "until": anomaly_demo.report.until.isoformat(),
    }
    rescan = client.post("/api/anomalies/scans", json=window, **_basic("auditor"))
    assert rescan.status_code == 201, rescan.text
    assert rescan.json()["raised"] == [] and rescan.json()["existing"]
    for who, purpose in (("officer.miami", "case-processing"), ("admin", "system-administration")):
        refused = client.get("/api/anomalies/alerts", **_basic(who, purpose))
        assert refused.status_code == 403, refused.text
    wrong_purpose = client.get("/api/anomalies/alerts", **_basic("auditor", "statistics"))
    assert wrong_purpose.status_code == 403


def test_an_auditor_reviews_through_the_api_and_it_is_audited(anomaly_demo: AnomalyDemo) -> None:
    client = TestClient(anomaly_demo.app)
    alert_id = anomaly_demo.report.raised[-1]
    bad = client.post(
        f"/api/anomalies/alerts/{alert_id}/review",
        json={"decision": "confirmed", "note": ""},
        **_basic("auditor"),
    )
    assert bad.status_code == 422
    done = client.post(
        f"/api/anomalies/alerts/{alert_id}/review",
        json={"decision": "dismissed", "note": "overtime agreed with the supervisor"},
        **_basic("auditor"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "dismissed"
    with transaction(anomaly_demo.runtime.sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "anomaly.alert_reviewed",
                AuditEntry.object_ids[0].as_string() == alert_id,
            )
        ).one()
    assert entry.actor_name == "auditor" and entry.purpose == "oversight-audit"


@dataclass
class _Signed:
    http: TestClient
    csrf: str


def _sign_in(app: Any, username: str, purpose: str) -> _Signed:
    http = TestClient(app, raise_server_exceptions=False)
    done = http.post("/login", data={"username": username, "password": PASSWORDS[username]})
    assert done.status_code == 200, done.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', done.text)
    assert found
    csrf = found.group(1)
    chosen = http.post("/purpose", data={"purpose": purpose, "justification": "test",
                                         "csrf_token": csrf})  # fmt: skip
    assert chosen.status_code == 200, chosen.text
    return _Signed(http, csrf)


def test_the_pages_list_show_and_review_alerts(anomaly_demo: AnomalyDemo) -> None:
    auditor = _sign_in(anomaly_demo.app, "auditor", "oversight-audit")
    listing = auditor.http.get("/oversight/alerts", params={"rule": "outside_caseload"})
    assert listing.status_code == 200, listing.text
    browser = next(p for p in anomaly_demo.truth.planted if p.rule == "outside_caseload")
    assert browser.username in listing.text and 'data-testid="alerts"' in listing.text
    alert_id = re.search(r'href="/oversight/alerts/(alr-[0-9a-f]+)"', listing.text)
    assert alert_id
    detail = auditor.http.get(f"/oversight/alerts/{alert_id.group(1)}")
    assert detail.status_code == 200
    assert 'data-testid="alert-evidence"' in detail.text and 'name="csrf_token"' in detail.text
    url = f"/oversight/alerts/{alert_id.group(1)}/review"
    form = {"decision": "confirmed", "note": "browsing confirmed with the office"}
    forged = auditor.http.post(url, data=form, follow_redirects=False)
    assert forged.status_code == 403  # no CSRF token
    done = auditor.http.post(url, data={**form, "csrf_token": auditor.csrf})
    assert done.status_code == 200 and "Alert confirmed." in done.text
    assert "browsing confirmed with the office" in done.text
    # Rescanning the simulated fortnight raises nothing new. The page scans the days before
    # "now", so the clock stands at the end of the simulated days: at the real time, a local
    # day that ended since the demo was built (the build's own reads, after hours near a
    # midnight) may rightly raise an alert.
    with frozen_at(anomaly_demo.report.until):
        scanned = auditor.http.post(
            "/oversight/alerts/scan", data={"days": "14", "csrf_token": auditor.csrf}
        )
    assert scanned.status_code == 200 and "0 new alert(s)" in scanned.text


def test_an_officer_may_not_see_the_alert_pages(anomaly_demo: AnomalyDemo) -> None:
    officer = _sign_in(anomaly_demo.app, "officer.miami", "case-processing")
    for path in ("/oversight/alerts", f"/oversight/alerts/{anomaly_demo.report.raised[0]}"):
        answer = officer.http.get(path)
        assert answer.status_code == 403, path
        assert "may not use this route" in answer.text and 'data-testid="alert' not in answer.text
