"""After the merge: expiry comments and reconciliation of live activations with the audit log.

Pure: no I/O. The cleanup run (`service.cleanup`) and `jitaccess active` read the bindings and the
audit entries, and decide here what each live activation is:

- `accounted`: it names a PR of this repository and an activation entry of that PR explains it
  (same member, role and project, a window inside the audited one);
- `orphaned`: it names a PR of this repository and no activation entry explains it;
- `foreign`: it names no PR (jit-access itself wrote it) or another repository's PR: reported,
  never touched, because this service has no record that could judge it;
- `young`: it started less than `RECONCILE_GRACE` ago; the merge that wrote it may still be
  writing its audit entry, and Cloud Logging shows new entries to `entries.list` only after a
  short delay. It is judged by a later run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from webhook.core.conditions import activation_of
from webhook.core.durations import utc_timestamp
from webhook.core.model import Binding
from webhook.core.render import _code, fit_comment

#: Bindings younger than this are not judged yet (see the module docstring). A merge writes its
#: binding and its entry within the 10 s webhook budget; the rest is room for Logging's delay.
RECONCILE_GRACE = timedelta(minutes=15)
#: Audit entries are read from this long before the oldest window judged: an activation entry is
#: written just after its window starts, never before.
READ_MARGIN = timedelta(minutes=5)

#: Prefix of the hidden marker of the expiry comment: `<!-- jit-access:expired <end> -->`.
EXPIRED_MARKER_PREFIX = "<!-- jit-access:expired "

# ` (<owner>/<repo>#<number>)` at the end of an activation description.
_REFERENCE = re.compile(
    r"\((?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>[1-9][0-9]{0,9})\)\s*\Z"
)
_APPROVED_BY = re.compile(r"\AApproved by (?P<who>.*?), justification:", re.DOTALL)


@dataclass(frozen=True)
class PullReference:
    """The PR an activation description names."""

    repository: str  # owner/name, as written
    number: int

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"


@dataclass(frozen=True)
class AuditedActivation:
    """An `gitops.activateRole` or `gitops.orphanedActivation` entry, as reconciliation reads
    it (labels as the service writes them)."""

    event: str
    user: str  # bare email
    project: str
    roles: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    pull_request: str  # URL
    insert_id: str = ""


@dataclass(frozen=True)
class LiveActivation:
    """One live activation binding and what reconciliation found it to be."""

    project: str
    binding: Binding
    start: datetime
    end: datetime
    reference: PullReference | None
    state: str  # accounted | orphaned | foreign | young
    reason: str = ""
    pull_request_url: str = ""  # from the explaining entry, when accounted

    @property
    def approvers(self) -> tuple[str, ...]:
        """The approvers named in the description (empty when self-approved or not said)."""
        return approvers_of(self.binding.description)

    def as_json(self) -> dict[str, object]:
        """The finding as JSON-ready data."""
        out: dict[str, object] = {
            "project": self.project,
            "role": self.binding.role,
            "member": self.binding.member,
            "start": utc_timestamp(self.start),
            "end": utc_timestamp(self.end),
            "pull_request": str(self.reference) if self.reference else None,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def reference_of(description: str) -> PullReference | None:
    """The `(<owner>/<repo>#<number>)` an activation description ends with, or None."""
    match = _REFERENCE.search(description)
    if match is None:
        return None
    return PullReference(match.group("repo"), int(match.group("number")))


def approvers_of(description: str) -> tuple[str, ...]:
    """The approvers of `Approved by a, b, justification: …`; () for anything else."""
    match = _APPROVED_BY.match(description)
    if match is None:
        return ()
    return tuple(a.strip() for a in match.group("who").split(",") if a.strip())


def bare(member: str) -> str:
    """`user:alice@example.com` → `alice@example.com`."""
    prefix, sep, rest = member.partition(":")
    return rest if sep and prefix in ("user", "group", "serviceAccount", "principal") else member


def ours(reference: PullReference, repository: str) -> bool:
    """True when the reference names a PR of `repository` (GitHub names are case-insensitive)."""
    return reference.repository.lower() == repository.lower()


def _url_names(url: str, reference: PullReference) -> bool:
    path = url.split("?", 1)[0].rstrip("/").lower()
    return path.endswith(f"/{reference.repository.lower()}/pull/{reference.number}")


def explains(entry: AuditedActivation, project: str, binding: Binding, start: datetime,
             end: datetime, reference: PullReference) -> bool:
    """True when an activation entry accounts for the binding: same PR, member, role and
    project, and a window no longer than audited (it starts no earlier and ends no later)."""
    return (
        entry.event == "gitops.activateRole"
        and _url_names(entry.pull_request, reference)
        and entry.user.lower() == bare(binding.member).lower()
        and entry.project == project
        and binding.role in entry.roles
        and entry.start is not None
        and entry.end is not None
        and entry.start <= start
        and end <= entry.end
    )


def live_activations(
    bindings: Iterable[tuple[str, Binding]], now: datetime
) -> list[tuple[str, Binding, datetime, datetime]]:
    """The (project, binding, start, end) of the activations among `bindings` still in force or
    yet to start at `now` (those that ended are cleanup's to remove)."""
    out: list[tuple[str, Binding, datetime, datetime]] = []
    for project, binding in bindings:
        activation = activation_of(binding)
        if activation is not None and activation.end > now:
            out.append((project, binding, activation.start, activation.end))
    return out


def needs_audit(
    live: Sequence[tuple[str, Binding, datetime, datetime]], repository: str, now: datetime
) -> datetime | None:
    """The time from which audit entries must be read to judge `live`, None if nothing needs
    the audit log (no binding old enough naming a PR of `repository`)."""
    starts = [
        start
        for _, binding, start, _ in live
        if start <= now - RECONCILE_GRACE
        and (ref := reference_of(binding.description)) is not None
        and ours(ref, repository)
    ]
    return min(starts) - READ_MARGIN if starts else None


def reconcile(
    live: Sequence[tuple[str, Binding, datetime, datetime]],
    entries: Sequence[AuditedActivation],
    repository: str,
    now: datetime,
) -> list[LiveActivation]:
    """What each live activation is (module docstring), in the order given."""
    out: list[LiveActivation] = []
    for project, binding, start, end in live:
        reference = reference_of(binding.description)
        url = ""
        if reference is None:
            state, reason = "foreign", "names no pull request (written by jit-access)"
        elif not ours(reference, repository):
            state, reason = "foreign", f"names a pull request of {reference.repository}"
        elif start > now - RECONCILE_GRACE:
            state, reason = "young", "started too recently to judge"
        else:
            match = next(
                (e for e in entries if explains(e, project, binding, start, end, reference)),
                None,
            )
            if match is not None:
                state, reason, url = "accounted", "", match.pull_request
            else:
                state, reason = "orphaned", _why_orphaned(entries, project, binding, reference)
        out.append(LiveActivation(project, binding, start, end, reference, state, reason, url))
    return out


def _why_orphaned(
    entries: Sequence[AuditedActivation], project: str, binding: Binding,
    reference: PullReference,
) -> str:
    """A short reason for people: what the audit log has for the PR, if anything."""
    of_pr = [
        e for e in entries
        if e.event == "gitops.activateRole" and _url_names(e.pull_request, reference)
    ]
    if not of_pr:
        return f"no activation entry for {reference}"
    same = [
        e for e in of_pr
        if e.user.lower() == bare(binding.member).lower() and e.project == project
        and binding.role in e.roles
    ]
    if not same:
        return f"the activation entries of {reference} name another member, role or project"
    return f"its window is longer than the one audited for {reference}"


def orphan_insert_id(finding: LiveActivation, event: str = "orphan") -> str:
    """The deterministic insert id of an orphan's entry: one per binding and window."""
    b = finding.binding
    return (
        f"{event}:{finding.project}:{b.role}:{b.member}:"
        f"{utc_timestamp(finding.start)}:{utc_timestamp(finding.end)}"
    )


def expired_marker(end: datetime) -> str:
    """The hidden marker of the expiry comment of an activation that ended at `end`."""
    return f"{EXPIRED_MARKER_PREFIX}{utc_timestamp(end)} -->"


def expiry_comment(end: datetime, grants: Sequence[tuple[str, str, str]]) -> str:
    """The comment posted on a PR once its activation has expired and been removed.

    `grants`: (project, role, member) of each removed binding. Roles, projects and members come
    from IAM, which validates them, but they are still shown inert as code spans.
    """
    when = utc_timestamp(end)
    lines = [
        expired_marker(end),
        f"⌛ **The access granted by this pull request ended at {when}** and its bindings "
        "were removed:",
        "",
    ]
    for project, role, member in grants:
        lines.append(f"- {_code(role)} on project {_code(project)} for {_code(bare(member))}")
    lines += ["", "Open a new request to activate again."]
    # Only the first line may hold a marker: nothing shown can pass for another record.
    rest = "\n".join(lines[1:]).replace("<!--", "<\u200d!--")
    return fit_comment(f"{lines[0]}\n{rest}\n")
