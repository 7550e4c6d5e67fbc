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
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
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
    EVENTS,
    LABEL_KEYS,
    REFUSE_ACTIVATION,
    REMOVE_EXPIRED,
    REQUEST_ROLE,
    AuditRecord,
    audit_time,
)
from webhook.core.budget import Budget
from webhook.core.errors import AuditError

if TYPE_CHECKING:
    # google-cloud-logging takes about 0.1 s to import: loaded at the first write (or by the
    # warmup's client preload), not when the app is built.
    from google.cloud.logging import Resource

# The records are pure and live in `audit_record`; re-exported for callers.
__all__ = [
    "ACTIVATE_ROLE", "APPROVE_ROLE", "EVENTS", "LABEL_KEYS", "REFUSE_ACTIVATION",
    "REMOVE_EXPIRED", "REQUEST_ROLE", "AuditLog", "AuditRecord",
]



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
            failure = google_failure(error)
            if failure.retried:
                why = f"Cloud Logging kept failing ({failure.summary})"
            elif failure.kind == "answered":
                why = f"Cloud Logging answered {failure.status}: {failure.detail}"
            else:
                why = failure.detail
            raise AuditError(
                f"The audit entry ({record.event}) could not be written: {why}"
            ) from None


