"""Audit entries against the fake Cloud Logging, through google-cloud-logging over HTTP (§7)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.cloud.logging import Resource

from webhook.adapters.cloud_logging import (
    ACTIVATE_ROLE,
    APPROVE_ROLE,
    REFUSE_ACTIVATION,
    REMOVE_EXPIRED,
    REQUEST_ROLE,
    AuditLog,
    AuditRecord,
)
from webhook.core.errors import AuditError

from .google_fixtures import AUDIT_PROJECT, FakeGoogleHarness

WRITE = r"^/v2/entries:write$"
JAN1_2040 = datetime(2040, 1, 1, 10, 0, 0, tzinfo=UTC)

ACTIVATION = AuditRecord(
    event=ACTIVATE_ROLE,
    user="user:alice@example.com",
    project="payments-prod",
    roles=("roles/cloudsql.admin", "roles/storage.admin"),
    justification="INC-1234: restore the failed replica",
    activation_start=JAN1_2040,
    activation_end=JAN1_2040 + timedelta(hours=2),
    reviewers=("bob@example.com", "user:carol@example.com"),
    pull_request="https://github.com/acme/access/pull/42",
    commit="0123456789abcdef0123456789abcdef01234567",
    delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
    message="alice@example.com activated roles/cloudsql.admin, roles/storage.admin on "
    "payments-prod until 2040-01-01T12:00:00Z",
)

ACTIVATION_LABELS = {
    "event": "gitops.activateRole",
    "user": "alice@example.com",
    "project": "payments-prod",
    "role": "roles/cloudsql.admin,roles/storage.admin",
    "justification": "INC-1234: restore the failed replica",
    "activation_start": "2040-01-01T10:00:00Z",
    "activation_end": "2040-01-01T12:00:00Z",
    "reviewers": "bob@example.com,carol@example.com",
    "pull_request": "https://github.com/acme/access/pull/42",
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "delivery_id": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
}

UNAVAILABLE = {"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}}


@pytest.fixture
def google(fake_google: FakeGoogleHarness) -> Iterator[FakeGoogleHarness]:
    yield fake_google
    assert fake_google.recorder.unexpected == []


def test_labels_follow_the_spec_exactly():
    assert ACTIVATION.labels() == ACTIVATION_LABELS
    assert ACTIVATION.payload() == {"message": ACTIVATION.message, **ACTIVATION_LABELS}
    assert ACTIVATION.effective_severity == "NOTICE"


def test_labels_not_applicable_are_empty_strings():
    record = AuditRecord(event=REQUEST_ROLE, user="dave@example.com", project="p-12345")

    assert record.labels() == {
        "event": "gitops.requestRole",
        "user": "dave@example.com",
        "project": "p-12345",
        "role": "",
        "justification": "",
        "activation_start": "",
        "activation_end": "",
        "reviewers": "",
        "pull_request": "",
        "commit": "",
        "delivery_id": "",
    }
    assert record.payload()["message"] == "dave@example.com requested no role on project p-12345"


def test_times_are_converted_to_utc():
    cet = timezone(timedelta(hours=1))
    record = AuditRecord(
        event=ACTIVATE_ROLE,
        activation_start=datetime(2040, 1, 1, 11, 0, 0, 999_999, tzinfo=cet),
        activation_end=datetime(2040, 1, 1, 13, 0, 0, tzinfo=cet),
    )

    labels = record.labels()
    assert (labels["activation_start"], labels["activation_end"]) == (
        "2040-01-01T10:00:00Z",
        "2040-01-01T12:00:00Z",
    )


@pytest.mark.parametrize(
    ("event", "severity"),
    [
        (REQUEST_ROLE, "INFO"),
        (APPROVE_ROLE, "INFO"),
        (ACTIVATE_ROLE, "NOTICE"),
        (REMOVE_EXPIRED, "NOTICE"),
        (REFUSE_ACTIVATION, "WARNING"),
    ],
)
def test_severity_by_event(event: str, severity: str):
    assert AuditRecord(event=event).effective_severity == severity
    assert AuditRecord(event=event, severity="ERROR").effective_severity == "ERROR"


def test_one_entry_in_one_request_without_a_diagnostic_entry(google: FakeGoogleHarness):
    AuditLog(google.clients).write(ACTIVATION)

    assert google.recorder.count("POST", WRITE) == 1
    assert google.world.log_entries == [
        {
            "logName": f"projects/{AUDIT_PROJECT}/logs/jitaccess",
            "resource": {"type": "global", "labels": {"project_id": AUDIT_PROJECT}},
            "labels": ACTIVATION_LABELS,
            "severity": "NOTICE",
            "jsonPayload": {"message": ACTIVATION.message, **ACTIVATION_LABELS},
        }
    ]
    (call,) = google.recorder.calls
    sent = json.loads(call.body)
    assert len(sent["entries"]) == 1  # no `logging.googleapis.com/diagnostic` entry


def test_each_record_is_its_own_entry(google: FakeGoogleHarness):
    log = AuditLog(google.clients)
    refusal = AuditRecord(event=REFUSE_ACTIVATION, user="alice@example.com", message="too late")

    log.write_all([ACTIVATION, refusal])

    assert google.recorder.count("POST", WRITE) == 2
    assert [e["severity"] for e in google.world.logs()] == ["NOTICE", "WARNING"]
    assert google.world.logs()[1]["jsonPayload"]["message"] == "too late"


def test_log_name_and_resource_can_be_chosen(google: FakeGoogleHarness):
    resource = Resource(type="gae_app", labels={"project_id": "svc", "module_id": "default"})

    AuditLog(google.clients, log_name="jit-audit", resource=resource).write(ACTIVATION)

    (entry,) = google.world.log_entries
    assert entry["logName"] == f"projects/{AUDIT_PROJECT}/logs/jit-audit"
    assert entry["resource"] == {
        "type": "gae_app",
        "labels": {"project_id": "svc", "module_id": "default"},
    }


def test_a_transient_error_is_retried(google: FakeGoogleHarness):
    google.recorder.fail("POST", WRITE, 503, body=UNAVAILABLE)

    AuditLog(google.clients).write(ACTIVATION)

    assert google.recorder.count("POST", WRITE) == 2
    assert len(google.world.logs()) == 1


def test_persistent_500s_are_an_audit_error_within_the_deadline(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST",
        WRITE,
        500,
        body={"error": {"code": 500, "message": "backend error", "status": "INTERNAL"}},
        times=-1,
    )
    started = time.monotonic()

    with pytest.raises(AuditError, match=r"^The audit entry \(gitops.activateRole\) could not be"):
        AuditLog(google.clients).write(ACTIVATION)

    budget = google.budget
    assert time.monotonic() - started < budget.retry_deadline + budget.call_timeout
    assert google.recorder.count("POST", WRITE) >= 2
    assert google.world.log_entries == []


def test_a_permission_error_is_not_retried(google: FakeGoogleHarness):
    google.recorder.fail(
        "POST",
        WRITE,
        403,
        body={"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
    )

    with pytest.raises(AuditError, match="Cloud Logging answered 403"):
        AuditLog(google.clients).write(ACTIVATION)

    assert google.recorder.count("POST", WRITE) == 1


def test_a_naive_time_is_an_audit_error_not_a_crash(google: FakeGoogleHarness):
    record = AuditRecord(event=ACTIVATE_ROLE, activation_end=datetime(2040, 1, 1))

    with pytest.raises(AuditError, match="timezone-aware"):
        AuditLog(google.clients).write(record)

    assert google.recorder.calls == []


def test_timestamp_and_insert_id_are_sent(google: FakeGoogleHarness):
    cet = timezone(timedelta(hours=1))
    record = AuditRecord(
        event=ACTIVATE_ROLE,
        timestamp=datetime(2040, 1, 1, 11, 0, 0, tzinfo=cet),
        insert_id="activate:acme/access#42@0123abc",
    )

    AuditLog(google.clients).write(record)

    (entry,) = google.world.log_entries
    assert entry["timestamp"] == "2040-01-01T10:00:00.000000Z"
    assert entry["insertId"] == "activate:acme/access#42@0123abc"


def test_the_fake_keeps_one_entry_per_insert_id_and_timestamp(google: FakeGoogleHarness):
    log = AuditLog(google.clients)
    record = AuditRecord(event=ACTIVATE_ROLE, timestamp=JAN1_2040, insert_id="activate:x#1@abc")

    log.write(record)
    log.write(record)
    log.write(AuditRecord(event=ACTIVATE_ROLE, timestamp=JAN1_2040, insert_id="activate:x#2@abc"))
    log.write(AuditRecord(event=ACTIVATE_ROLE))
    log.write(AuditRecord(event=ACTIVATE_ROLE))

    assert google.recorder.count("POST", WRITE) == 5
    assert [e.get("insertId") for e in google.world.logs()] == [
        "activate:x#1@abc",
        "activate:x#2@abc",
        None,
        None,
    ]
