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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as gauth_exceptions

from webhook.errors import AuditError
from webhook.google_clients import RETRY_DEADLINE, GoogleClients, bounded_retry, quote_error

if TYPE_CHECKING:
    # google-cloud-logging takes about 0.1 s to import: loaded at the first write (or by the
    # warmup's client preload), not when the app is built.
    from google.cloud.logging import Resource

REQUEST_ROLE = "gitops.requestRole"
APPROVE_ROLE = "gitops.approveRole"
ACTIVATE_ROLE = "gitops.activateRole"
REFUSE_ACTIVATION = "gitops.refuseActivation"
REMOVE_EXPIRED = "gitops.removeExpired"

EVENTS = (REQUEST_ROLE, APPROVE_ROLE, ACTIVATE_ROLE, REFUSE_ACTIVATION, REMOVE_EXPIRED)

_SEVERITY = {
    ACTIVATE_ROLE: "NOTICE",
    REMOVE_EXPIRED: "NOTICE",
    REFUSE_ACTIVATION: "WARNING",
}

#: The label keys of every entry, in the order of SPEC §7.
LABEL_KEYS = (
    "event",
    "user",
    "project",
    "role",
    "justification",
    "activation_start",
    "activation_end",
    "reviewers",
    "pull_request",
    "commit",
    "delivery_id",
)


def _bare(identity: str) -> str:
    """`user:alice@example.com` → `alice@example.com` (identities are logged as bare emails)."""
    prefix, sep, rest = identity.partition(":")
    if sep and prefix in ("user", "group", "serviceAccount", "principal"):
        return rest
    return identity


def _rfc3339(moment: datetime | None) -> str:
    """UTC in whole seconds with a `Z`, or "" when not applicable."""
    if moment is None:
        return ""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry, in the project's terms."""

    event: str
    user: str = ""
    project: str = ""
    roles: tuple[str, ...] = ()
    justification: str = ""
    activation_start: datetime | None = None
    activation_end: datetime | None = None
    reviewers: tuple[str, ...] = ()
    pull_request: str = ""  # URL
    commit: str = ""
    delivery_id: str = ""  # X-GitHub-Delivery
    message: str = ""
    severity: str | None = None  # None: by event (NOTICE, WARNING or INFO)
    timestamp: datetime | None = None  # when it happened; None: when Cloud Logging receives it
    insert_id: str | None = None  # Cloud Logging treats entries with the same id and time as one

    @property
    def effective_severity(self) -> str:
        """The entry's severity: explicit, else NOTICE for grants/removals, WARNING for refusals."""
        return self.severity or _SEVERITY.get(self.event, "INFO")

    def labels(self) -> dict[str, str]:
        """The entry's labels per SPEC §7: all strings, "" when not applicable."""
        return {
            "event": self.event,
            "user": _bare(self.user),
            "project": self.project,
            "role": ",".join(self.roles),
            "justification": self.justification,
            "activation_start": _rfc3339(self.activation_start),
            "activation_end": _rfc3339(self.activation_end),
            "reviewers": ",".join(_bare(r) for r in self.reviewers),
            "pull_request": self.pull_request,
            "commit": self.commit,
            "delivery_id": self.delivery_id,
        }

    def payload(self) -> dict[str, Any]:
        """The entry's JSON payload: the readable message and the same fields as the labels."""
        return {"message": self.message or self.default_message(), **self.labels()}

    def default_message(self) -> str:
        """A readable sentence for entries created without a message."""
        roles = ", ".join(self.roles) or "no role"
        who = _bare(self.user) or "someone"
        where = f" on project {self.project}" if self.project else ""
        until = f" until {_rfc3339(self.activation_end)}" if self.activation_end else ""
        verb = {
            REQUEST_ROLE: "requested",
            APPROVE_ROLE: "was approved for",
            ACTIVATE_ROLE: "was granted",
            REFUSE_ACTIVATION: "was refused",
            REMOVE_EXPIRED: "no longer holds the expired",
        }.get(self.event, self.event)
        return f"{who} {verb} {roles}{where}{until}"


class AuditLog:
    """Writes audit records to Cloud Logging; every failure (after retries) is an `AuditError`."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        log_name: str = "jitaccess",
        resource: Resource | None = None,
        retry_deadline: float = RETRY_DEADLINE,
    ) -> None:
        self._clients = clients
        self._log_name = log_name
        self._given_resource = resource
        self._retry_deadline = retry_deadline

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
                _rfc3339(record.timestamp)  # refuse a naive time before anything is sent
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

            bounded_retry(self._retry_deadline)(send)()
        except gexc.RetryError as e:
            cause = e.cause if e.cause is not None else e
            raise AuditError(
                f"The audit entry ({record.event}) could not be written: Cloud Logging kept "
                f"failing ({quote_error(cause)})"
            ) from None
        except gexc.GoogleAPICallError as e:
            raise AuditError(
                f"The audit entry ({record.event}) could not be written: Cloud Logging answered "
                f"{e.code}: {quote_error(e.message)}"
            ) from None
        except (OSError, ValueError, TypeError, gauth_exceptions.GoogleAuthError) as e:
            raise AuditError(
                f"The audit entry ({record.event}) could not be written: {quote_error(e)}"
            ) from None


