"""The audit log: one structured Cloud Logging entry per decision that matters (§7).

Entries go to the log `jitaccess` of the audit project, written with google-cloud-logging over
HTTP. Labels carry every field as a string so that entries can be filtered in Logs Explorer
(`labels.event="gitops.activateRole"`); the JSON payload carries a readable `message` and the
same fields.

One entry is one `entries.write` request. The library's `Logger.log_struct` prepends a
diagnostic entry (`logging.googleapis.com/diagnostic`, the library's name and version) to the
first write of a process, in the same request and under the same log name, so it would land in
the audit log among the audit entries. A `Batch` (the library's public API for explicit writes)
sends exactly the entries given, so it is used here even for a single entry.

`decisions` reads a PR's activation and refusal entries back with `entries.list`: a merge must
know whether an earlier delivery decided it. The read is quota-limited (reads per minute per
project), which is why only a merge makes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from webhook.adapters.google_clients import (
    CALL_FAILURES,
    GoogleClients,
    bounded_retry,
    google_failure,
)
from webhook.core.audit_record import (
    ACTIVATE_ROLE,
    APPROVE_ROLE,
    BREAK_GLASS_LABEL,
    EVENTS,
    LABEL_KEYS,
    ORPHANED_ACTIVATION,
    REFUSE_ACTIVATION,
    REMOVE_EXPIRED,
    REQUEST_ROLE,
    REVIEW_BREAK_GLASS,
    RULE_LABEL,
    AuditRecord,
    audit_time,
)
from webhook.core.break_glass import RECORD_EVENTS as BREAK_GLASS_EVENTS
from webhook.core.break_glass import BreakGlassEntry
from webhook.core.budget import Budget
from webhook.core.errors import AuditError
from webhook.core.ports import AuditedDecision
from webhook.core.reconcile import AuditedActivation

if TYPE_CHECKING:
    # google-cloud-logging takes about 0.1 s to import: loaded at the first write (or by the
    # warmup's client preload), not when the app is built.
    from google.cloud.logging import Resource

# The records are pure and live in `audit_record`; re-exported for callers.
__all__ = [
    "ACTIVATE_ROLE", "APPROVE_ROLE", "EVENTS", "LABEL_KEYS", "ORPHANED_ACTIVATION",
    "REFUSE_ACTIVATION",
    "REMOVE_EXPIRED", "REQUEST_ROLE", "AuditLog", "AuditRecord",
]

#: The events that decide a merge, read back by `AuditLog.decisions`.
DECISION_EVENTS = (ACTIVATE_ROLE, REFUSE_ACTIVATION)
#: Entries read per page and in all: a PR has one decision (duplicates are removed by Cloud
#: Logging), so a handful is plenty, and a bound keeps a flooded log from costing many reads.
MAX_DECISIONS = 20


#: The events reconciliation reads back with `AuditLog.activation_entries`.
RECONCILE_EVENTS = (ACTIVATE_ROLE, ORPHANED_ACTIVATION)
#: Entries per page of that read (the API's largest page), and in all: past the cap the read
#: fails rather than judge bindings on part of the record.
RECONCILE_PAGE = 1000
MAX_RECONCILE_ENTRIES = 20_000

#: The events the after-the-fact review of one PR reads back (`AuditLog.break_glass_entries`),
#: and how many of them at most: one activation and one review per PR, with room for copies.
REVIEW_EVENTS = (ACTIVATE_ROLE, REVIEW_BREAK_GLASS)
MAX_REVIEW_ENTRIES = 20
#: Entries per page and in all of the cleanup's read of break-glass records: past the cap the
#: read fails rather than call an activation unreviewed on part of the record.
BREAK_GLASS_PAGE = 1000
MAX_BREAK_GLASS_ENTRIES = 5_000

#: What reading the audit log can raise: a call's failures, and an entry of an unexpected shape.
READ_FAILURES: tuple[type[BaseException], ...] = (*CALL_FAILURES, KeyError)

class AuditLog:
    """Writes audit records to Cloud Logging; every failure (after retries) is an `AuditError`."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        log_name: str = "jitaccess",
        resource: Resource | None = None,
        budget: Budget | None = None,
    ) -> None:
        self._clients = clients
        self._log_name = log_name
        self._given_resource = resource
        self._budget = budget if budget is not None else clients.budget

    @cached_property
    def _resource(self) -> Resource:
        # An explicit resource: without one the library probes the metadata server to guess it.
        if self._given_resource is not None:
            return self._given_resource
        from google.cloud.logging import Resource

        return Resource(type="global", labels={"project_id": self._clients.audit_project or ""})

    def write(self, record: AuditRecord) -> None:
        """Write one entry (bounded retries on transient errors)."""
        self.write_all([record])

    def write_all(self, records: Sequence[AuditRecord]) -> None:
        """Write one entry per record, each in its own request, in order."""
        for record in records:
            self._write_one(record)

    def _write_one(self, record: AuditRecord) -> None:
        try:
            logger = self._clients.logging.logger(self._log_name, resource=self._resource)
            payload = record.payload()
            labels = record.labels()
            severity = record.effective_severity
            extra: dict[str, Any] = {}
            if record.timestamp is not None:
                audit_time(record.timestamp)  # refuse a naive time before anything is sent
                # The library formats the wall-clock time and drops the zone: hand it UTC.
                extra["timestamp"] = record.timestamp.astimezone(UTC)
            if record.insert_id:
                extra["insert_id"] = record.insert_id

            def send() -> None:
                # A fresh batch per attempt: a failed commit keeps its entries queued.
                batch = logger.batch()
                batch.log_struct(
                    payload, severity=severity, labels=labels, resource=self._resource, **extra
                )
                batch.commit()

            bounded_retry(self._budget)(send)()
        except CALL_FAILURES as error:
            why = _failed_because(error)
            raise AuditError(
                f"The audit entry ({record.event}) could not be written: {why}"
            ) from None

    def decisions(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[AuditedDecision, ...]:
        """The activation and refusal entries of a PR dated at or after `since`, oldest first,
        each once; one `entries.list` request (bounded retries on transient errors)."""
        query = decisions_filter(self._log_path, pull_request_url, since)
        entries = self._list(query, page_size=MAX_DECISIONS, limit=MAX_DECISIONS)
        found: dict[tuple[str, datetime | None], AuditedDecision] = {}
        for entry in entries:
            decision = _audited(entry, pull_request_url)
            if decision is not None:
                # Cloud Logging already shows an id and time once; kept once here too.
                found.setdefault((decision.insert_id, decision.timestamp), decision)
        return tuple(found.values())

    def activation_entries(self, *, since: datetime) -> tuple[AuditedActivation, ...]:
        """Every `gitops.activateRole` and `gitops.orphanedActivation` entry dated at or after
        `since`, oldest first, each once: one `entries.list` query, however many bindings are
        judged with it (pages of RECONCILE_PAGE entries; AuditError past
        MAX_RECONCILE_ENTRIES)."""
        query = entries_filter(self._log_path, RECONCILE_EVENTS, since)
        entries = self._list(query, page_size=RECONCILE_PAGE, limit=MAX_RECONCILE_ENTRIES + 1)
        if len(entries) > MAX_RECONCILE_ENTRIES:
            raise AuditError(
                f"The audit log holds more than {MAX_RECONCILE_ENTRIES} activation entries "
                f"since {audit_time(since)}: too many to reconcile in one run"
            )
        found: dict[tuple[str, datetime | None], AuditedActivation] = {}
        for entry in entries:
            activation = _activation_entry(entry)
            if activation is not None:
                found.setdefault((activation.insert_id, _entry_time(entry)), activation)
        return tuple(found.values())

    def break_glass_entries(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[BreakGlassEntry, ...]:
        """A PR's break-glass activation and review entries dated at or after `since`, oldest
        first, each once: one `entries.list` request (label `break_glass: "true"`)."""
        query = entries_filter(
            self._log_path, REVIEW_EVENTS, since, pull_request=pull_request_url,
            break_glass=True,
        )
        entries = self._list(query, page_size=MAX_REVIEW_ENTRIES, limit=MAX_REVIEW_ENTRIES)
        return _unique(
            e for e in map(_break_glass_entry, entries)
            if e is not None and e.pull_request.lower() == pull_request_url.lower()
        )

    def break_glass_records(self, *, since: datetime) -> tuple[BreakGlassEntry, ...]:
        """Every break-glass activation, review and unreviewed entry dated at or after
        `since`, oldest first, each once: one `entries.list` query for all PRs (pages of
        BREAK_GLASS_PAGE; AuditError past MAX_BREAK_GLASS_ENTRIES)."""
        # One query with OR rather than one per event: every entry of the record carries the
        # label, and reviews and reports are as rare as break-glass activations themselves.
        query = entries_filter(self._log_path, BREAK_GLASS_EVENTS, since, break_glass=True)
        entries = self._list(
            query, page_size=BREAK_GLASS_PAGE, limit=MAX_BREAK_GLASS_ENTRIES + 1
        )
        if len(entries) > MAX_BREAK_GLASS_ENTRIES:
            raise AuditError(
                f"The audit log holds more than {MAX_BREAK_GLASS_ENTRIES} break-glass entries "
                f"since {audit_time(since)}: too many to check in one run"
            )
        return _unique(e for e in map(_break_glass_entry, entries) if e is not None)

    @property
    def _log_path(self) -> str:
        """The audit log's full name, `projects/P/logs/jitaccess`."""
        return f"projects/{self._clients.audit_project or ''}/logs/{self._log_name}"

    def _list(self, query: str, *, page_size: int, limit: int) -> list[Any]:
        """One `entries.list` query of the audit project, oldest first."""
        project = self._clients.audit_project or ""
        from google.cloud.logging import ASCENDING

        def read() -> list[Any]:
            return list(
                self._clients.logging.list_entries(
                    resource_names=[f"projects/{project}"], filter_=query, order_by=ASCENDING,
                    page_size=page_size, max_results=limit,
                )
            )

        return self._read(read)

    def _read(self, read: Callable[[], list[Any]]) -> list[Any]:
        """Run one `entries.list` read with bounded retries; AuditError when it fails."""
        try:
            return bounded_retry(self._budget)(read)()
        except READ_FAILURES as error:
            why = _failed_because(error)
            raise AuditError(f"The audit log could not be read: {why}") from None


def _failed_because(error: BaseException) -> str:
    """Why a Cloud Logging call failed, for an AuditError's message."""
    failure = google_failure(error)
    if failure.retried:
        return f"Cloud Logging kept failing ({failure.summary})"
    if failure.kind == "answered":
        return f"Cloud Logging answered {failure.status}: {failure.detail}"
    return failure.detail


def _entry_time(entry: Any) -> datetime | None:
    timestamp = getattr(entry, "timestamp", None)
    return timestamp.astimezone(UTC) if isinstance(timestamp, datetime) else None


def _activation_entry(entry: Any) -> AuditedActivation | None:
    """An entry of `entries.list` as reconciliation reads it, or None if it is not one."""
    labels = entry.labels if isinstance(getattr(entry, "labels", None), dict) else {}
    event = labels.get("event")
    if event not in RECONCILE_EVENTS:
        return None  # the query matched case-insensitively; the names the service writes
    roles = tuple(r for r in str(labels.get("role", "")).split(",") if r)
    return AuditedActivation(
        event=str(event),
        user=str(labels.get("user", "")),
        project=str(labels.get("project", "")),
        roles=roles,
        start=_label_time(labels.get("activation_start")),
        end=_label_time(labels.get("activation_end")),
        pull_request=str(labels.get("pull_request", "")),
        insert_id=str(getattr(entry, "insert_id", "") or ""),
    )


def decisions_filter(log_name: str, pull_request_url: str, since: datetime) -> str:
    """The Logging query for a PR's decisions: its log, its `pull_request` label, the two
    deciding events, and an explicit time range."""
    return entries_filter(log_name, DECISION_EVENTS, since, pull_request=pull_request_url)


def entries_filter(
    log_name: str, events: Sequence[str], since: datetime, *, pull_request: str | None = None,
    break_glass: bool = False,
) -> str:
    """A Logging query of the audit log: its log, a PR's `pull_request` label (if given), any
    of `events`, the `break_glass: "true"` label (if asked), and an explicit time range
    (without one the library adds "the last 24 hours")."""
    parts = [f"logName={_quoted(log_name)}"]
    if pull_request is not None:
        parts.append(f"labels.pull_request={_quoted(pull_request)}")
    parts.append("(" + " OR ".join(f"labels.event={_quoted(e)}" for e in events) + ")")
    if break_glass:
        parts.append(f'labels.{BREAK_GLASS_LABEL}="true"')
    parts.append(f"timestamp>={_quoted(audit_time(since))}")
    return " AND ".join(parts)


def _quoted(value: str) -> str:
    """A string literal of the Logging query language."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _audited(entry: Any, pull_request_url: str) -> AuditedDecision | None:
    """An entry of `entries.list` as a decision, or None if it is not one of this PR's."""
    labels = entry.labels if isinstance(getattr(entry, "labels", None), dict) else {}
    event = labels.get("event")
    # The query matched strings case-insensitively; the event names the service writes.
    if event not in DECISION_EVENTS:
        return None
    if str(labels.get("pull_request", "")).lower() != pull_request_url.lower():
        return None
    payload = entry.payload if isinstance(getattr(entry, "payload", None), dict) else {}
    timestamp = entry.timestamp if isinstance(entry.timestamp, datetime) else None
    return AuditedDecision(
        event=event,
        commit=str(labels.get("commit", "")),
        timestamp=timestamp.astimezone(UTC) if timestamp is not None else None,
        insert_id=str(entry.insert_id or ""),
        activation_start=_label_time(labels.get("activation_start")),
        activation_end=_label_time(labels.get("activation_end")),
        message=str(payload.get("message", "")),
    )


def _break_glass_entry(entry: Any) -> BreakGlassEntry | None:
    """An entry of `entries.list` as a break-glass record, or None if it is not one."""
    labels = entry.labels if isinstance(getattr(entry, "labels", None), dict) else {}
    event = labels.get("event")
    if event not in BREAK_GLASS_EVENTS or labels.get(BREAK_GLASS_LABEL) != "true":
        return None  # the query matched case-insensitively; the labels the service writes

    def items(key: str) -> tuple[str, ...]:
        return tuple(r for r in str(labels.get(key, "")).split(",") if r)

    roles = items("role")
    rules = tuple(str(labels.get(RULE_LABEL, "")).split(",")) if labels.get(RULE_LABEL) else ()
    return BreakGlassEntry(
        event=str(event),
        pull_request=str(labels.get("pull_request", "")),
        timestamp=_entry_time(entry),
        insert_id=str(getattr(entry, "insert_id", "") or ""),
        user=str(labels.get("user", "")),
        project=str(labels.get("project", "")),
        roles=roles,
        rules=rules if len(rules) == len(roles) else (),
        justification=str(labels.get("justification", "")),
        start=_label_time(labels.get("activation_start")),
        end=_label_time(labels.get("activation_end")),
        reviewers=items("reviewers"),
        commit=str(labels.get("commit", "")),
        break_glass=True,
    )


def _unique(entries: Iterable[BreakGlassEntry]) -> tuple[BreakGlassEntry, ...]:
    """Each entry once by insert id and time (Cloud Logging shows such copies once too)."""
    found: dict[tuple[str, datetime | None], BreakGlassEntry] = {}
    for entry in entries:
        found.setdefault((entry.insert_id, entry.timestamp), entry)
    return tuple(found.values())


def _label_time(text: object) -> datetime | None:
    """A label holding an RFC 3339 UTC time (`2026-11-29T10:00:00Z`), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None
