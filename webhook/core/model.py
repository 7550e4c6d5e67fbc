"""The project's own vocabulary: frozen dataclasses shared by the pure core and the adapters.

Nothing here performs I/O or reads a clock. The GitHub and Google adapters translate their
answers into these types; `decide` consumes them; `render` and `activation` consume its result.
"""

from __future__ import annotations

import enum
import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
# Request files (README: request file)


@dataclass(frozen=True)
class AccessRequest:
    """A parsed, valid request file."""

    project: str
    roles: tuple[str, ...]
    duration: timedelta
    justification: str
    break_glass: bool = False  # `break_glass: true`: an emergency request (README: break-glass)
    #: key -> line of the request file, for problems found after parsing (the limits of a rule
    #: that needs the project's folders); not part of the request's value.
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)


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
# Policy (README: policy)


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
    #: Designated approvers: `user:EMAIL` and `group:EMAIL` (lower-cased), who count as qualified
    #: reviewers besides the qualified peers (README: designated approvers).
    approvers: tuple[str, ...] = ()
    peers: bool = True  # False: only `approvers` count, qualified peers do not
    veto: bool = False  # a qualified reviewer's "Request changes" blocks the role


@dataclass(frozen=True)
class RuleMatch:
    """Where a rule applies; every key given must fit, each list is any-of (empty: any)."""

    projects: tuple[str, ...] = ()  # shell-style patterns on the project ID
    folders: tuple[str, ...] = ()  # `folders/N`: the project lies under one of them
    roles: tuple[str, ...] = ()  # shell-style patterns on the role name


@dataclass(frozen=True)
class RuleApproval:
    """The approval keys a rule sets; None falls back to the top-level `approval`."""

    required: int | None = None
    max_age: timedelta | None = None
    approvers: tuple[str, ...] | None = None
    peers: bool | None = None
    veto: bool | None = None


@dataclass(frozen=True)
class RuleJustification:
    """The justification keys a rule sets; None falls back to the top-level `justification`."""

    pattern: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Rule:
    """One entry of `rules:` (README: rules): settings for the roles its `match` fits."""

    name: str
    match: RuleMatch = RuleMatch()
    max_duration: timedelta | None = None
    approval: RuleApproval = RuleApproval()
    justification: RuleJustification = RuleJustification()
    line: int | None = None  # where the rule starts in policy/jitaccess.yaml


@dataclass(frozen=True)
class RoleSettings:
    """What applies to one requested role: its rule's settings over the top-level ones."""

    role: str
    rule: str | None  # the name of the rule applied; None: the top-level settings
    max_duration: timedelta
    justification: JustificationSettings
    approval: ApprovalSettings


@dataclass(frozen=True)
class BreakGlassSettings:
    """`break_glass:` (README: break-glass): emergency access without approvals."""

    enabled: bool = False
    max_duration: timedelta = timedelta(hours=1)
    justification: JustificationSettings = JustificationSettings(
        pattern=r"(INC|SEV)-[0-9]+: .+", hint="An incident number"
    )
    review_within: timedelta = timedelta(hours=24)


#: GitHub logins are at most 39 characters; longer text is never run through `identities.rule`,
#: which bounds what its regular expression can cost.
MAX_LOGIN = 39


@dataclass(frozen=True)
class IdentityRule:
    """`identities.rule`: maps a login that has no entry, e.g. `bob_acme` -> `bob@acme.com`.

    `match` is a regular expression that must match the whole (lower-cased) login; `email` a
    template naming its groups, `{user}@acme.com`. The policy parser checks both before it
    builds a rule (`webhook.core.identities.check_rule`): the pattern compiles, cannot backtrack
    catastrophically, and has every group the template names.
    """

    match: str
    email: str

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.match)

    @functools.cached_property
    def _fields(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.email) if name)

    def apply(self, login: str) -> str | None:
        """The email the rule maps a login to, or None when the login does not fit."""
        if not 0 < len(login) <= MAX_LOGIN:
            return None
        found = self._pattern.fullmatch(login.lower())
        if found is None:
            return None
        groups = found.groupdict()
        values = {name: groups.get(name) or "" for name in self._fields}
        if not all(values.values()):
            return None  # an empty group would make `@acme.com` of a login
        return self.email.format_map(values).lower()


@dataclass(frozen=True)
class IdentitySettings:
    """The `identities:` section of the policy: how `policy/identities.yaml` maps people."""

    require_id: bool = False  # only entries with the account's numeric `id` map anyone
    rule: IdentityRule | None = None


@dataclass(frozen=True)
class CleanupSettings:
    remove_orphans: bool = False  # true: reconciliation removes orphaned activations


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
    identities: IdentitySettings = IdentitySettings()
    cleanup: CleanupSettings = CleanupSettings()
    revocation: RevocationSettings = RevocationSettings()
    rules: tuple[Rule, ...] = ()
    break_glass: BreakGlassSettings = BreakGlassSettings()
    #: What `jitaccess validate --policy` warns about (a rule that can never match); never
    #: blocks anything.
    warnings: tuple[Problem, ...] = field(default=(), compare=False)


class _ReverseIndex:
    """Logins by identity, built on first use and shared by every view of one mapping (a file
    of 50,000 entries is indexed once, not once per event)."""

    def __init__(self) -> None:
        self.logins: dict[str, tuple[str, ...]] | None = None


#: Why an account has no identity although its login has an entry with an `id`.
RENAMED = (
    "login @{login} is mapped to an id that is not this account's — the login may have been "
    "renamed"
)


@dataclass(frozen=True)
class Identities:
    """`policy/identities.yaml`: GitHub login (case-insensitive) -> Google identity (email).

    An entry may name the account's numeric GitHub id (`ids`): logins can be renamed and an old
    login claimed by someone else, so such an entry maps a login only while the account using it
    has that id. The ids of the accounts acting on a PR (author, reviewers) are known only per
    event: `for_accounts` gives the view that checks them. Without it, an entry with an id maps
    nobody — an id that cannot be checked is not taken on trust.

    `settings` come from the policy: `require_id` (only entries with an id map anyone) and the
    `rule` for logins without an entry.
    """

    by_login: Mapping[str, str] = field(default_factory=dict)  # keys and values lower-cased
    ids: Mapping[str, int] = field(default_factory=dict)  # lower-cased login -> account id
    settings: IdentitySettings = IdentitySettings()
    #: lower-cased login -> the account id GitHub reported for it in this event (None: unknown).
    accounts: Mapping[str, int | None] = field(default_factory=dict)
    _index: _ReverseIndex = field(
        default_factory=_ReverseIndex, compare=False, repr=False, hash=False
    )

    def for_accounts(self, accounts: Mapping[str, int | None]) -> Identities:
        """This mapping as seen by the given accounts (login -> numeric id, from GitHub)."""
        known = dict(self.accounts)
        known.update((login.lower(), account) for login, account in accounts.items())
        return replace(self, accounts=known)

    def email_for(self, login: str) -> str | None:
        """The Google identity mapped to a login, or None."""
        key = login.lower()
        email = self.by_login.get(key)
        if email is None:
            if self.settings.rule is None or self.settings.require_id:
                return None
            return self.settings.rule.apply(key)
        wanted = self.ids.get(key)
        if wanted is None:
            return None if self.settings.require_id else email
        return email if self.accounts.get(key) == wanted else None

    def why_unmapped(self, login: str) -> str | None:
        """Why a login has no identity, for the PR comment; None when it has one."""
        if self.email_for(login) is not None:
            return None
        key = login.lower()
        if key not in self.by_login:
            if self.settings.rule is not None and not self.settings.require_id:
                return (
                    "no entry in policy/identities.yaml, and the login does not fit "
                    "identities.rule"
                )
            return "has no identity mapping"
        if key not in self.ids:
            return (
                "the entry has no `id`, and identities.require_id is set "
                "(`jitaccess identities pin` fills the ids in)"
            )
        if self.accounts.get(key) is None:
            return "the entry has an `id`, and GitHub did not say this account's id"
        return RENAMED.format(login=login)

    def logins_for(self, email: str) -> tuple[str, ...]:
        """Every login with an entry mapped to an identity, sorted (the rule is not inverted).

        Under `require_id`, only entries with an id; an entry with an id is listed whatever
        account uses its login now — used to ask people for review, never to count a review.
        """
        index = self._index.logins
        if index is None:
            built: dict[str, list[str]] = {}
            for login, mail in self.by_login.items():
                built.setdefault(mail, []).append(login)
            index = {mail: tuple(sorted(logins)) for mail, logins in built.items()}
            self._index.logins = index
        found = index.get(email.lower(), ())
        if self.settings.require_id:
            found = tuple(login for login in found if login in self.ids)
        return found


# --------------------------------------------------------------------------------------------
# Eligibility facts (README: lifecycle), produced by the Google adapters


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
    ancestry: tuple[str, ...] | None = None
    """The project's ancestors (`folders/N`, `organizations/N`), nearest first, when read; the
    rules that match folders need them."""
    memberships: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """identity (lower-case) -> the designated-approver groups asked about (`group:EMAIL`) that
    it is a member of (directly, or transitively with `nested_groups`)."""
    group_members: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """designated-approver group (`group:EMAIL`) -> member identities, listed to ask them for
    review (only when the PR names reviewers); may be cut short for big groups."""

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
    user_id: int | None = None  # the reviewer's numeric account id (`review.user.id`)


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
    #: The request file's path in the PR, to attribute the problems found only once the
    #: project's folders are known (the limits of a rule that matches folders).
    request_path: str | None = None


# --------------------------------------------------------------------------------------------
# Decisions (README: lifecycle)


class State(enum.StrEnum):
    INVALID = "invalid"
    NOT_ELIGIBLE = "not_eligible"
    PENDING = "pending"
    READY = "ready"
    ERROR = "error"
    VETOED = "vetoed"  # a qualified reviewer's "Request changes" blocks a role

    @property
    def commit_status(self) -> str:
        """The GitHub commit-status state for this decision state."""
        return {
            State.INVALID: "failure",
            State.NOT_ELIGIBLE: "failure",
            State.VETOED: "failure",
            State.PENDING: "pending",
            State.READY: "success",
            State.ERROR: "error",
        }[self]


class ApprovalKind(enum.StrEnum):
    SELF = "self"
    MULTI_PARTY = "multi_party"
    BREAK_GLASS = "break_glass"  # eligible (either marker), activated without approvals
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
    settings: RoleSettings | None = None  # the rule (or top-level settings) applied to the role
    vetoed_by: tuple[str, ...] = ()  # logins of qualified reviewers whose "Request changes" holds
    #: Logins who may approve the role, for the status comment: designated `user:` approvers
    #: mapped back to logins (groups are named in `settings.approval.approvers`).
    approver_logins: tuple[str, ...] = ()

    @property
    def rule(self) -> str | None:
        """The name of the rule applied to the role (None: the top-level settings)."""
        return self.settings.rule if self.settings is not None else None


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
    break_glass: bool = False  # a break-glass request (README: break-glass), said loudly

    @property
    def approvers(self) -> tuple[str, ...]:
        """Every login whose approval counts for some role, sorted, without repeats."""
        return tuple(sorted({login for r in self.roles for login in r.approvers}))


# --------------------------------------------------------------------------------------------
# Activation (README: activation)


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
    author_id: int | None = None  # the author's numeric account id (`pull.user.id`)


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
