"""The project's own vocabulary: frozen dataclasses shared by the pure core and the adapters.

Nothing here performs I/O or reads a clock. The GitHub and Google adapters translate their
answers into these types; `decide` consumes them; `render` and `activation` consume its result.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# --------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request, a PR or the policy, phrased for the person who can fix it."""

    code: str
    message: str
    line: int | None = None
    path: str | None = None

    def at(self, path: str) -> Problem:
        """The same problem, attributed to a file."""
        return Problem(self.code, self.message, self.line, path)


# --------------------------------------------------------------------------------------------
# Request files (SPEC §3)


@dataclass(frozen=True)
class AccessRequest:
    """A parsed, valid request file."""

    project: str
    roles: tuple[str, ...]
    duration: timedelta
    justification: str


@dataclass(frozen=True)
class ChangedFile:
    """One file of a pull request, as GitHub lists it."""

    filename: str
    status: str  # added | modified | removed | renamed | copied | changed | unchanged
    previous_filename: str | None = None


@dataclass(frozen=True)
class ChangedFiles:
    """The files a diff changes, as GitHub lists them, and whether GitHub listed them all.

    GitHub lists a limited number of files per diff (300 for a comparison of two commits): a
    longer diff comes back cut, and a cut list must never be judged as if it were whole.
    """

    files: tuple[ChangedFile, ...]
    complete: bool = True


@dataclass(frozen=True)
class PrShape:
    """What the list of changed files says about a PR: is it a request, which file, what's wrong."""

    is_request: bool
    path: str | None
    problems: tuple[Problem, ...] = ()
    # Every change the PR makes under requests/ adds a file in its author's own directory: its
    # verdict is about the author's own request only (see `merge.status_belongs_to`).
    own_request: bool = False


# --------------------------------------------------------------------------------------------
# Policy (SPEC §4)


class EligibilitySourceName(enum.StrEnum):
    ASSET_INVENTORY = "asset-inventory"
    POLICY_ANALYZER = "policy-analyzer"


@dataclass(frozen=True)
class ActivationSettings:
    min_duration: timedelta = timedelta(minutes=5)
    max_duration: timedelta = timedelta(hours=2)
    max_roles: int = 10
    max_delay: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class JustificationSettings:
    pattern: str = ".*"
    hint: str = "Bug or case number"


@dataclass(frozen=True)
class EligibilitySettings:
    source: EligibilitySourceName = EligibilitySourceName.ASSET_INVENTORY
    nested_groups: bool = False


@dataclass(frozen=True)
class ApprovalSettings:
    required: int = 1
    max_age: timedelta = timedelta(hours=24)
    request_reviewers: int = 3


@dataclass(frozen=True)
class RevocationSettings:
    """Who besides the requester and the qualified reviewers may revoke an activation."""

    revokers: tuple[str, ...] = ()  # GitHub logins, lower-cased


@dataclass(frozen=True)
class Policy:
    """`policy/jitaccess.yaml`, typed, with the documented defaults."""

    scope: str  # organizations/N | folders/N | projects/ID
    activation: ActivationSettings = ActivationSettings()
    justification: JustificationSettings = JustificationSettings()
    eligibility: EligibilitySettings = EligibilitySettings()
    approval: ApprovalSettings = ApprovalSettings()
    revocation: RevocationSettings = RevocationSettings()


@dataclass(frozen=True)
class Identities:
    """`policy/identities.yaml`: GitHub login (case-insensitive) -> Google identity (email)."""

    by_login: Mapping[str, str] = field(default_factory=dict)  # keys and values lower-cased

    def email_for(self, login: str) -> str | None:
        """The Google identity mapped to a login, or None."""
        return self.by_login.get(login.lower())

    def logins_for(self, email: str) -> tuple[str, ...]:
        """Every login mapped to an identity, sorted."""
        wanted = email.lower()
        return tuple(sorted(login for login, mail in self.by_login.items() if mail == wanted))


# --------------------------------------------------------------------------------------------
# Eligibility facts (SPEC §5), produced by the Google adapters


class Marker(enum.StrEnum):
    """The two IAM condition markers of jit-access."""

    SELF_APPROVAL = "has({}.jitaccessconstraint)"
    MULTI_PARTY = "has({}.multipartyapprovalconstraint)"


@dataclass(frozen=True)
class RoleEligibility:
    """How one identity is eligible for one role on the project.

    `*_conditions` hold the resource conditions of the eligible bindings of that kind: an empty
    tuple means at least one binding of that kind has no resource condition (unrestricted).
    """

    self_approval: bool = False
    multi_party: bool = False
    self_conditions: tuple[str, ...] = ()
    multi_party_conditions: tuple[str, ...] = ()


NOT_ELIGIBLE = RoleEligibility()


@dataclass(frozen=True)
class EligibilityFacts:
    """Eligibility of the requester and the reviewers, and who else could review, per role."""

    grants: Mapping[str, Mapping[str, RoleEligibility]] = field(default_factory=dict)
    """identity email (lower-case) -> role -> eligibility; absent means not eligible."""
    peers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """role -> identities (lower-case emails) eligible for it through the multi-party marker."""
    notes: tuple[str, ...] = ()
    """What the lookup had to leave out (a group it may not read, a cut-short analysis), said on
    the PR so that a missing eligibility is not a mystery."""

    def of(self, identity: str, role: str) -> RoleEligibility:
        """Eligibility of an identity for a role (NOT_ELIGIBLE when unknown)."""
        return self.grants.get(identity.lower(), {}).get(role, NOT_ELIGIBLE)


# --------------------------------------------------------------------------------------------
# Reviews and the facts of one evaluation


class ReviewState(enum.StrEnum):
    APPROVED = "APPROVED"
    CHANGES_REQUESTED = "CHANGES_REQUESTED"
    DISMISSED = "DISMISSED"
    COMMENTED = "COMMENTED"
    PENDING = "PENDING"


@dataclass(frozen=True)
class Review:
    """One PR review as the REST API returns it (state upper-case)."""

    id: int
    login: str
    state: ReviewState
    commit_id: str
    submitted_at: datetime | None


@dataclass(frozen=True)
class PullRequestRef:
    """Identifies a PR and its head: `owner/repo#number` at `head_sha`."""

    repository: str
    number: int
    author: str
    head_sha: str
    url: str = ""

    @property
    def reference(self) -> str:
        """`owner/repo#number`, the form used in binding descriptions."""
        return f"{self.repository}#{self.number}"


@dataclass(frozen=True)
class Facts:
    """Everything `decide` needs, gathered by the handlers from GitHub and Google."""

    pr: PullRequestRef
    policy: Policy | None
    policy_problems: tuple[Problem, ...]
    identities: Identities
    request: AccessRequest | None
    request_problems: tuple[Problem, ...]  # request file and PR-shape problems
    eligibility: EligibilityFacts | None  # None when not looked up (invalid request or policy)
    reviews: tuple[Review, ...] = ()
    # False: the PR has more reviews than the service reads, and `reviews` is empty; approvals
    # cannot be judged then (a later review left out could withdraw one).
    reviews_complete: bool = True


# --------------------------------------------------------------------------------------------
# Decisions (SPEC §5)


class State(enum.StrEnum):
    INVALID = "invalid"
    NOT_ELIGIBLE = "not_eligible"
    PENDING = "pending"
    READY = "ready"
    ERROR = "error"

    @property
    def commit_status(self) -> str:
        """The GitHub commit-status state for this decision state."""
        return {
            State.INVALID: "failure",
            State.NOT_ELIGIBLE: "failure",
            State.PENDING: "pending",
            State.READY: "success",
            State.ERROR: "error",
        }[self]


class ApprovalKind(enum.StrEnum):
    SELF = "self"
    MULTI_PARTY = "multi_party"
    NONE = "none"


@dataclass(frozen=True)
class RoleDecision:
    """The outcome for one requested role."""

    role: str
    kind: ApprovalKind
    approvers: tuple[str, ...] = ()  # logins whose approvals count, sorted
    needed: int = 0  # approvals still missing
    resource_conditions: tuple[str, ...] = ()  # conditions the activation must carry
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The result of `decide`: a state, why, and what activation would need."""

    state: State
    pr: PullRequestRef
    request: AccessRequest | None = None
    requester: str | None = None  # Google identity of the author
    problems: tuple[Problem, ...] = ()
    roles: tuple[RoleDecision, ...] = ()
    candidate_reviewers: tuple[str, ...] = ()  # logins of qualified peers who could review
    notes: tuple[str, ...] = ()  # the eligibility lookup's notes, shown in the status comment

    @property
    def approvers(self) -> tuple[str, ...]:
        """Every login whose approval counts for some role, sorted, without repeats."""
        return tuple(sorted({login for r in self.roles for login in r.approvers}))


# --------------------------------------------------------------------------------------------
# Activation (SPEC §6)


@dataclass(frozen=True)
class Binding:
    """An IAM binding with a condition, as this service writes it."""

    role: str
    member: str  # user:email
    title: str
    description: str
    expression: str


# --------------------------------------------------------------------------------------------
# GitHub pull requests, as the GitHub adapter reports them


@dataclass(frozen=True)
class PullInfo:
    """The parts of a pull request the service reads."""

    number: int
    author: str
    head_sha: str
    base_ref: str
    state: str  # open | closed
    merged: bool
    merged_at: datetime | None
    html_url: str
    title: str = ""
    default_branch: str = ""  # the base repository's default branch, from the PR's `base.repo`
    requested_reviewers: tuple[str, ...] = ()  # logins whose review is requested


@dataclass(frozen=True)
class PullComment:
    """A comment on a pull request: its id, its author's login and its text."""

    id: int
    author: str
    body: str


@dataclass(frozen=True)
class CommitStatus:
    """A commit status as GitHub shows it for one context: what `set_status` would post."""

    state: str  # error | failure | pending | success
    description: str | None = None
    target_url: str | None = None
