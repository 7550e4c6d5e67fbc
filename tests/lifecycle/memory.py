"""In-memory implementations of the lifecycle's four ports (`webhook.core.ports`).

Plain Python, no HTTP: each keeps the state the real system would keep and follows the contract
its adapter documents (own comments only for markers, upsert edits in place, an activation is
idempotent per PR reference, a failing audit write raises `AuditError`). Every call is counted,
so tests can say what the lifecycle did and did not do. The wire behaviour of the real adapters
is tested elsewhere (tests/integration, tests/e2e); these exist to make the lifecycle's own
rules fast to test.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from webhook.core.audit_record import (
    ACTIVATE_ROLE,
    REFUSE_ACTIVATION,
    REVIEW_BREAK_GLASS,
    AuditRecord,
)
from webhook.core.break_glass import BreakGlassEntry
from webhook.core.conditions import ACTIVATION_TITLE, parse_activation_expression
from webhook.core.eligibility import EligibilityQuestion, prune
from webhook.core.errors import (
    ActivationError,
    AuditError,
    FileTooLargeError,
    GitHubError,
    GoogleError,
)
from webhook.core.model import (
    Binding,
    ChangedFile,
    ChangedFiles,
    CommitStatus,
    EligibilityFacts,
    EligibilitySettings,
    PullComment,
    PullInfo,
    Review,
    RoleEligibility,
)
from webhook.core.ports import ActivationResult, AuditedDecision

BOT = "jit-access[bot]"


@dataclass(frozen=True)
class Status:
    """One commit status as set."""

    sha: str
    state: str
    description: str
    context: str
    target_url: str | None


class MemoryGitHub:
    """One repository: pull requests, their files, reviews and comments, commit statuses."""

    def __init__(self, *, bot: str = BOT) -> None:
        self.bot = bot
        self.pulls: dict[int, PullInfo] = {}
        self.changed: dict[int, tuple[ChangedFile, ...]] = {}
        self.diffs: dict[tuple[str, str], ChangedFiles] = {}  # (base, head) -> diff, if set
        self.review_list: dict[int, list[Review]] = {}
        self.default_files: dict[str, bytes] = {}  # path -> content on the default branch
        self.commit_files: dict[tuple[str, str], bytes] = {}  # (sha, path) -> content
        self.added_by: dict[str, int] = {}  # request path -> the merged PR that added it
        self.comment_list: dict[int, list[PullComment]] = {}
        self.edits: list[tuple[int, str]] = []  # (comment id, new body)
        self.statuses: list[Status] = []
        self.review_requests: list[tuple[int, tuple[str, ...]]] = []
        self.calls: Counter[str] = Counter()
        self.listings: list[tuple[int, datetime | None, str | None]] = []  # comments() asked
        self.fail: dict[str, GitHubError] = {}  # method name -> error it raises
        self._lock = threading.Lock()
        self._next_id = 1000

    # -- setting up ---------------------------------------------------------------------------

    def add_comment(self, number: int, author: str, body: str) -> int:
        """A comment posted by anyone (the service posts through `create_comment`)."""
        with self._lock:
            self._next_id += 1
            self.comment_list.setdefault(number, []).append(
                PullComment(self._next_id, author, body)
            )
            return self._next_id

    def bodies(self, number: int, *, marker: str = "") -> list[str]:
        """The bodies of the service's own comments on a PR (containing `marker`), oldest first."""
        return [
            c.body for c in self.comment_list.get(number, [])
            if c.author == self.bot and marker in c.body
        ]

    # -- the port -----------------------------------------------------------------------------

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if name in self.fail:
            raise self.fail[name]

    def pull(self, number: int) -> PullInfo:
        self._call("pull")
        try:
            return self.pulls[number]
        except KeyError:
            raise GitHubError(f"pull request #{number} not found", status=404) from None

    def files(self, number: int) -> tuple[ChangedFile, ...]:
        self._call("files")
        return self.changed.get(number, ())

    def compare(self, base: str, head: str) -> ChangedFiles:
        """The files of the PR from `head` into `base` (a diff in `diffs` first, if set)."""
        self._call("compare")
        if (base, head) in self.diffs:
            return self.diffs[(base, head)]
        for number, pull in self.pulls.items():
            if pull.head_sha == head and pull.base_ref == base:
                return ChangedFiles(self.changed.get(number, ()))
        raise GitHubError(f"comparing {base}...{head[:12]}: not found (HTTP 404)", status=404)

    def pull_that_added(self, path: str, ref: str) -> int | None:
        self._call("pull_that_added")
        return self.added_by.get(path)

    def reviews(self, number: int) -> tuple[Review, ...]:
        self._call("reviews")
        return tuple(self.review_list.get(number, ()))

    def file_bytes(
        self, path: str, ref: str | None, max_bytes: int = 64 * 1024
    ) -> bytes | None:
        self._call("file_bytes")
        data = self.default_files.get(path) if ref is None else self.commit_files.get((ref, path))
        if data is not None and len(data) > max_bytes:
            raise FileTooLargeError(path, len(data), max_bytes)
        return data

    def commit_status(self, sha: str, context: str = "jit-access") -> CommitStatus | None:
        self._call("commit_status")
        with self._lock:
            mine = [s for s in self.statuses if s.sha == sha and s.context == context]
        if not mine:
            return None
        last = mine[-1]
        return CommitStatus(last.state, last.description or None, last.target_url or None)

    def set_status(
        self, sha: str, state: str, description: str, context: str = "jit-access",
        target_url: str | None = None, *, current: CommitStatus | None = None,
    ) -> bool:
        self._call("set_status")
        if current == CommitStatus(state, description or None, target_url or None):
            return False
        with self._lock:
            self.statuses.append(Status(sha, state, description, context, target_url))
        return True

    def comments(
        self, number: int, *, since: datetime | None = None, until: str | None = None
    ) -> tuple[PullComment, ...]:
        """Every comment (no timestamps here: `since` filters nothing, which only lists more;
        `until` stops nothing, one page holding them all)."""
        self._call("comments")
        self.listings.append((number, since, until))
        return tuple(self.comment_list.get(number, ()))

    def _own_with(
        self, number: int, marker: str, comments: Sequence[PullComment] | None
    ) -> list[PullComment]:
        listed = self.comments(number, until=marker) if comments is None else comments
        return [c for c in listed if c.author.lower() == self.bot.lower() and marker in c.body]

    def comments_with(
        self, number: int, marker: str, comments: Sequence[PullComment] | None = None
    ) -> list[str]:
        self._call("comments_with")
        return [c.body for c in self._own_with(number, marker, comments)]

    def upsert_comment(
        self, number: int, marker: str, body: str, comments: Sequence[PullComment] | None = None
    ) -> int:
        self._call("upsert_comment")
        if marker not in body:
            body = f"{marker}\n{body}"
        for comment in self._own_with(number, marker, comments):
            if comment.body != body:
                self._edit(number, comment.id, body)
            return comment.id
        return self.create_comment(number, body)

    def _edit(self, number: int, comment_id: int, body: str) -> None:
        with self._lock:
            listed = self.comment_list[number]
            for i, c in enumerate(listed):
                if c.id == comment_id:
                    listed[i] = replace(c, body=body)
            self.edits.append((comment_id, body))

    def create_comment(self, number: int, body: str) -> int:
        self._call("create_comment")
        return self.add_comment(number, self.bot, body)

    def request_reviewers(self, number: int, logins: Sequence[str]) -> None:
        self._call("request_reviewers")
        with self._lock:
            wanted = tuple(dict.fromkeys(logins))
            self.review_requests.append((number, wanted))
            pull = self.pulls[number]
            self.pulls[number] = replace(
                pull, requested_reviewers=tuple(dict.fromkeys(pull.requested_reviewers + wanted))
            )


class MemoryEligibility:
    """Eligible bindings as a table: identity -> role -> how (the project is not checked);
    designated-approver groups as a table of members; the project's ancestry.

    Answers what the question asks and no more, as the adapters do (`prune`): the requester for
    every role, reviewers only for the roles that need approval, vetoers for the veto roles,
    their memberships of the asked approver groups, peers only of roles short of approvals and
    the asked groups' members when asked, the ancestry when asked.
    """

    def __init__(
        self,
        grants: Mapping[str, Mapping[str, RoleEligibility]] | None = None,
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        ancestry: tuple[str, ...] | None = ("organizations/123456789012",),
    ) -> None:
        self.grants: dict[str, dict[str, RoleEligibility]] = {
            who.lower(): dict(roles) for who, roles in (grants or {}).items()
        }
        #: `group:EMAIL` -> member identities (lower-case).
        self.groups: dict[str, frozenset[str]] = {
            group.lower(): frozenset(m.lower() for m in members)
            for group, members in (groups or {}).items()
        }
        self.ancestry = ancestry  # None: the folders cannot be read
        self.checks: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        self.questions: list[tuple[EligibilityQuestion, EligibilitySettings]] = []
        self.outage: GoogleError | None = None  # raised by every check while set

    def check(
        self, *, scope: str, project: str, settings: EligibilitySettings,
        question: EligibilityQuestion,
    ) -> EligibilityFacts:
        self.checks.append((project, tuple(question.roles), question.identities))
        self.questions.append((question, settings))
        if self.outage is not None:
            raise self.outage
        roles = question.roles
        asked = (question.requester, *question.judged)
        grants = {
            who: {r: self.grants[who][r] for r in roles if r in self.grants.get(who, {})}
            for who in asked
            if who in self.grants
        }
        peers = {
            r: frozenset(who for who, held in self.grants.items()
                         if r in held and held[r].multi_party)
            for r in roles
        }
        groups = {g: self.groups.get(g, frozenset()) for g in question.approver_groups}
        memberships = {
            who: frozenset(g for g, members in groups.items() if who in members)
            for who in question.judged
        }
        full = EligibilityFacts(
            grants={w: g for w, g in grants.items() if g}, peers=peers,
            ancestry=self.ancestry if question.ancestry else None,
            memberships={w: g for w, g in memberships.items() if g},
            group_members=groups,
        )
        return prune(question, full)


@dataclass
class MemoryActivator:
    """Activation bindings by project; idempotent per PR reference, as `Activator` is."""

    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    activations: list[tuple[str, tuple[Binding, ...]]] = field(default_factory=list)
    removals: list[tuple[str, tuple[Binding, ...], str]] = field(default_factory=list)
    lookups: list[tuple[str, str]] = field(default_factory=list)  # activations_for calls
    fail_activate: ActivationError | None = None
    fail_remove: ActivationError | None = None
    fail_lookup: ActivationError | None = None

    def activate(
        self, project: str, bindings: Sequence[Binding], *, reason: str, pr_reference: str
    ) -> ActivationResult:
        self.activations.append((project, tuple(bindings)))
        if self.fail_activate is not None:
            raise self.fail_activate
        held = self.bindings.setdefault(project, [])
        suffix = f"({pr_reference})"
        present = [
            next((b for b in held if b.title == ACTIVATION_TITLE and b.role == want.role
                  and b.member.lower() == want.member.lower()
                  and b.description.endswith(suffix)), None)
            for want in bindings
        ]
        if all(p is not None for p in present):
            found = tuple(p for p in present if p is not None)
            return self._result(False, found, already=found)
        # Earlier activations of the same role and member are replaced in the same write.
        wanted = tuple(bindings)

        def earlier(b: Binding) -> bool:
            return b.title == ACTIVATION_TITLE and any(
                b.role == w.role and b.member == w.member for w in wanted
            )

        replaced = tuple(b for b in held if earlier(b))
        held[:] = [b for b in held if not earlier(b)] + list(wanted)
        return self._result(True, wanted, replaced=replaced)

    @staticmethod
    def _result(
        written: bool, bindings: tuple[Binding, ...], already: tuple[Binding, ...] = (),
        replaced: tuple[Binding, ...] = (),
    ) -> ActivationResult:
        window = parse_activation_expression(bindings[0].expression) if bindings else None
        start, end = window if window is not None else (None, None)
        return ActivationResult(
            written, bindings, already=already, replaced=replaced, start=start, end=end
        )

    def remove(
        self, project: str, bindings: Sequence[Binding], *, reason: str,
        restore: Sequence[Binding] = (),
    ) -> tuple[Binding, ...]:
        self.removals.append((project, tuple(bindings), reason))
        if self.fail_remove is not None:
            raise self.fail_remove
        held = self.bindings.get(project, [])
        removed = [b for b in held if b in set(bindings)]
        kept = [b for b in held if b not in removed]
        # As `Activator.remove`: an earlier activation comes back only in place of a binding
        # this removal takes away, when no other activation of its role and member stands.
        freed = {(b.role, b.member) for b in removed}
        standing = {(b.role, b.member) for b in kept if b.title == ACTIVATION_TITLE}
        restored = tuple(b for b in restore if (b.role, b.member) in freed - standing)
        self.bindings[project] = kept + list(restored)
        return restored

    def activations_for(self, project: str, pr_reference: str) -> tuple[Binding, ...]:
        self.lookups.append((project, pr_reference))
        if self.fail_lookup is not None:
            raise self.fail_lookup
        suffix = f"({pr_reference})"
        return tuple(
            b for b in self.bindings.get(project, [])
            if b.title == ACTIVATION_TITLE and b.description.endswith(suffix)
        )

    def held(self, project: str) -> list[Binding]:
        """The activation bindings the project holds now."""
        return list(self.bindings.get(project, []))


@dataclass
class MemoryAudit:
    """The audit log: every entry written, in order; `fail` names events whose write fails.

    `decisions` reads back as Cloud Logging's query does: a PR's activation and refusal
    entries, an insert id and timestamp shown once; `fail_read` makes every read fail.
    """

    records: list[AuditRecord] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)
    reads: list[tuple[str, datetime]] = field(default_factory=list)
    fail_read: AuditError | None = None

    def write(self, record: AuditRecord) -> None:
        self.attempts.append(record.event)
        if record.event in self.fail:
            raise AuditError(f"Cloud Logging: writing {record.event} failed (503: unavailable)")
        self.records.append(record)

    def decisions(self, pull_request_url: str, *, since: datetime) -> tuple[AuditedDecision, ...]:
        self.reads.append((pull_request_url, since))
        if self.fail_read is not None:
            raise self.fail_read
        found: dict[tuple[str | None, datetime | None], AuditedDecision] = {}
        for r in self.records:
            if (
                r.event in (ACTIVATE_ROLE, REFUSE_ACTIVATION) and r.pull_request == pull_request_url
                and (r.timestamp is None or r.timestamp >= since)
            ):
                found.setdefault((r.insert_id, r.timestamp), AuditedDecision(
                    r.event, r.commit, r.timestamp, r.insert_id or "", r.activation_start,
                    r.activation_end, r.message,
                ))
        return tuple(found.values())

    def break_glass_entries(
        self, pull_request_url: str, *, since: datetime
    ) -> tuple[BreakGlassEntry, ...]:
        """A PR's break-glass activation and review entries, as `AuditLog` reads them."""
        self.reads.append((pull_request_url, since))
        if self.fail_read is not None:
            raise self.fail_read
        found: dict[tuple[str | None, datetime | None], BreakGlassEntry] = {}
        for r in self.records:
            if (
                r.event in (ACTIVATE_ROLE, REVIEW_BREAK_GLASS) and r.break_glass
                and r.pull_request == pull_request_url
                and (r.timestamp is None or r.timestamp >= since)
            ):
                found.setdefault((r.insert_id, r.timestamp), BreakGlassEntry(
                    event=r.event, pull_request=r.pull_request, timestamp=r.timestamp,
                    insert_id=r.insert_id or "", user=r.labels()["user"], project=r.project,
                    roles=r.roles, rules=r.rules or (), justification=r.justification,
                    start=r.activation_start, end=r.activation_end,
                    reviewers=tuple(r.labels()["reviewers"].split(",")) if r.reviewers else (),
                    commit=r.commit, break_glass=True,
                ))
        return tuple(found.values())

    def events(self) -> list[str]:
        """The events written, in order."""
        return [r.event for r in self.records]


class FrozenClock:
    """The lifecycle's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
