"""Break-glass records through google-cloud-logging and the fake Cloud Logging over HTTP: the
ALERT activation entry, its labels, and the reads of the after-the-fact review and the cleanup
(`AuditLog.break_glass_entries`, `AuditLog.break_glass_records`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from webhook.adapters.cloud_logging import AuditLog, AuditRecord
from webhook.core import audit_record as events
from webhook.core.errors import AuditError

from .google_fixtures import AUDIT_PROJECT, FakeGoogleHarness

START = datetime(2040, 1, 1, 10, 0, 0, tzinfo=UTC)
PR = "https://github.com/acme/access/pull/42"
OTHER_PR = "https://github.com/acme/access/pull/43"
LOG = f"projects/{AUDIT_PROJECT}/logs/jitaccess"
LIST = r"^/v2/entries:list$"


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    yield fake_google
    assert fake_google.recorder.unexpected == []


def activation(pr: str = PR, *, glass: bool = True, at: datetime = START) -> AuditRecord:
    return AuditRecord(
        event=events.ACTIVATE_ROLE, user="alice@example.com", project="payments-prod",
        roles=("roles/cloudsql.admin", "roles/logging.viewer"), justification="INC-1: down",
        activation_start=at, activation_end=at + timedelta(hours=1), pull_request=pr,
        commit="c" * 40, timestamp=at, insert_id=f"activate:{pr}",
        severity=events.BREAK_GLASS_SEVERITY if glass else None, break_glass=glass,
        rules=("databases", "default"),
    )


def review(pr: str = PR, at: datetime = START + timedelta(hours=2)) -> AuditRecord:
    return AuditRecord(
        event=events.REVIEW_BREAK_GLASS, user="alice@example.com", project="payments-prod",
        roles=("roles/cloudsql.admin",), reviewers=("bob@example.com",), pull_request=pr,
        timestamp=at, insert_id=f"review-break-glass:{pr}", break_glass=True,
    )


def written(google: FakeGoogleHarness) -> list[dict[str, Any]]:
    return [e for e in google.world.logs("jitaccess")]


def test_a_break_glass_activation_is_written_as_an_alert_with_its_labels(
    google: FakeGoogleHarness,
) -> None:
    AuditLog(google.clients).write(activation())

    (entry,) = written(google)
    assert entry["severity"] == "ALERT"
    assert entry["labels"]["break_glass"] == "true"
    assert entry["labels"]["rule"] == "databases,default"
    assert entry["jsonPayload"]["break_glass"] == "true"


def test_the_fake_filters_by_severity_rank(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation())
    log.write(activation(OTHER_PR, glass=False))

    def listed(query: str) -> list[str]:
        resp = requests.post(f"{google.url}/v2/entries:list", json={
            "resourceNames": [f"projects/{AUDIT_PROJECT}"], "filter": query}, timeout=10)
        assert resp.status_code == 200, resp.text
        return [e["labels"]["pull_request"] for e in resp.json().get("entries", [])]

    assert listed(f'logName="{LOG}" AND severity>=ALERT') == [PR]
    assert listed(f'logName="{LOG}" AND severity>="NOTICE"') == [PR, OTHER_PR]
    assert listed(f'logName="{LOG}" AND severity<WARNING') == [OTHER_PR]
    bad = requests.post(f"{google.url}/v2/entries:list", json={
        "resourceNames": [f"projects/{AUDIT_PROJECT}"], "filter": "severity>=LOUD"}, timeout=10)
    assert bad.status_code == 400


def test_a_prs_break_glass_record_is_one_read(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation())
    log.write(activation(OTHER_PR))
    log.write(review())
    log.write(review())  # a redelivery: the same id and time
    log.write(AuditRecord(event=events.REFUSE_ACTIVATION, pull_request=PR, timestamp=START))

    found = log.break_glass_entries(PR, since=START - timedelta(days=1))

    assert google.recorder.count("POST", LIST) == 1
    assert [(e.event, e.pull_request) for e in found] == [
        (events.ACTIVATE_ROLE, PR), (events.REVIEW_BREAK_GLASS, PR),
    ]
    first = found[0]
    assert first.roles == ("roles/cloudsql.admin", "roles/logging.viewer")
    assert first.rules == ("databases", "default")
    assert first.start == START and first.end == START + timedelta(hours=1)
    assert first.user == "alice@example.com" and first.justification == "INC-1: down"
    assert found[1].reviewers == ("bob@example.com",)
    query = json.loads(google.recorder.calls[-1].body)["filter"]
    assert 'labels.pull_request="https://github.com/acme/access/pull/42"' in query
    assert 'labels.break_glass="true"' in query and "timestamp>=" in query


def test_an_ordinary_activation_is_no_break_glass_record(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation(glass=False))

    assert log.break_glass_entries(PR, since=START - timedelta(days=1)) == ()


def test_the_cleanups_read_is_one_query_for_every_pr(google: FakeGoogleHarness) -> None:
    log = AuditLog(google.clients)
    log.write(activation())
    log.write(activation(OTHER_PR, at=START + timedelta(minutes=5)))
    log.write(review())
    log.write(AuditRecord(event=events.BREAK_GLASS_UNREVIEWED, pull_request=OTHER_PR,
                          timestamp=START + timedelta(days=1), break_glass=True,
                          severity="WARNING"))
    log.write(activation("https://github.com/acme/access/pull/44", glass=False))

    found = log.break_glass_records(since=START - timedelta(days=30))

    assert google.recorder.count("POST", LIST) == 1
    assert sorted((e.event, e.pull_request) for e in found) == sorted([
        (events.ACTIVATE_ROLE, PR), (events.ACTIVATE_ROLE, OTHER_PR),
        (events.REVIEW_BREAK_GLASS, PR), (events.BREAK_GLASS_UNREVIEWED, OTHER_PR),
    ])


def test_a_failed_read_is_an_audit_error(google: FakeGoogleHarness) -> None:
    google.recorder.fail("POST", LIST, 403, times=5, body={
        "error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}})

    with pytest.raises(AuditError, match="The audit log could not be read"):
        AuditLog(google.clients).break_glass_records(since=START)
