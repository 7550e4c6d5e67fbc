"""Eligibility (README: lifecycle): who holds an eligible binding for which role on a project, and
how.

Two sources, chosen by `eligibility.source` in the policy (and by `webhook.core.eligibility.
source_for`: Policy Analyzer answers only the merge):

- `asset-inventory`: one Cloud Asset `effectiveIamPolicies:batchGet` returns the project's
  policy and its ancestors' up to the scope; bindings are evaluated here. Group bindings are
  resolved per person, not per group: Cloud Identity's `groups/-/memberships:searchDirectGroups`
  (or `…:searchTransitiveGroups` with `nested_groups: true`) answers "which groups is this
  identity in" in one call, so a check costs the same whatever the number of group bindings.
  Where a search cannot serve (the transitive one needs Cloud Identity Premium and the right to
  read every group of the member, and answers 403 otherwise), that person is checked group by
  group (`groups:lookup`, then `memberships:lookup` or `checkTransitiveMembership`), and the
  log says so.
- `policy-analyzer`: one Cloud Asset `analyzeIamPolicy` query, groups expanded by the API,
  answers for the requester, the reviewers and every other qualified peer at once. The free
  tier allows 20 queries per organization per day, so a check never spends more than one.

What is asked is an `EligibilityQuestion` (`webhook.core.eligibility`): the requester for every
requested role; the reviewers whose review could count, only for the roles the requester needs
approval for; the qualified peers only when a role is still short of approvals. Both sources
return the same `EligibilityFacts`: reviewers' entries say only whether they are eligible
through the multi-party marker, which is all a review needs.

Rules and designated approvers (README: policy) ask a little more:

- the project's ancestry (`folders/N`, `organizations/N`, nearest first), for rules that match
  folders: asset-inventory reads it from the batchGet answer it has anyway (the policies'
  attached resources), so it is always there; policy-analyzer, whose analysis does not show it,
  makes one batchGet beside the analysis, only when the question asks. Up to the scope only:
  what lies above it is not read.
- vetoers' multi-party eligibility for the veto roles (and the approval roles);
- which designated-approver groups each reviewer and vetoer is in: the same per-person search
  (or group-by-group path) as eligibility, one search serving both; a group the service cannot
  read is settled as for eligibility (its own domain: an error; another domain: a note);
- when peers are asked, the members of those groups, listed as peers' groups are (at most
  `max_peer_groups` groups of `max_group_members`); a listing that fails only leaves its members
  unasked for review, which a note says.

Only `user:` and `group:` members count: service accounts cannot author or review pull requests,
and `domain:`, `principal…://` and `allUsers` style members would make whole populations
eligible, which jit-access does not support either. Activation bindings (title `JIT access
activation`, a time window) carry no marker, so they are never mistaken for eligibility.

The batchGet answer is read as plain JSON over an authorized session rather than through the
client library: turning a 1,500-binding answer into protobuf messages cost about 35 µs of CPU per
binding, nearly all of the check's CPU, for bindings of which only a few concern the request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc

from webhook.adapters.google_clients import (
    TRANSIENT_STATUSES,
    GoogleCallError,
    GoogleClients,
    google_failure,
    quote_error,
)
from webhook.core.budget import Budget, jittered_backoff, retry_bounded
from webhook.core.conditions import marker_of, resource_condition
from webhook.core.eligibility import (
    EligibilityQuestion,
    approval_roles,
    prune,
    roles_short,
)
from webhook.core.errors import GoogleError
from webhook.core.model import (
    EligibilityFacts,
    EligibilitySettings,
    EligibilitySourceName,
    Marker,
    RoleEligibility,
)

log = logging.getLogger(__name__)

CRM = "//cloudresourcemanager.googleapis.com/"
CLOUD_ASSET_DEFAULT = "https://cloudasset.googleapis.com"

#: Members listed per group when looking for qualified peers; bigger groups are cut (and logged).
MAX_GROUP_MEMBERS = 200
#: Groups listed per check when looking for qualified peers (the PR names at most ten, and asks
#: `approval.request_reviewers` of them): more are left out, and the log says so.
MAX_PEER_GROUPS = 8
#: Concurrent Google calls per check (searches of many reviewers run side by side).
MAX_WORKERS = 32
#: Groups per page of a membership search (Cloud Identity's maximum), and pages followed before
#: the search is given up for the group-by-group path (a person in 20,000 groups).
SEARCH_PAGE_SIZE = 1000
MAX_SEARCH_PAGES = 20
#: Members per page of a group listing (Cloud Identity's maximum for the FULL view), and the
#: members listed per group when a listing settles reviewers (see `_AssetCheck._reviewers`).
LISTING_PAGE_SIZE = 500
SETTLING_LISTING_MAX = 2000
#: Groups of other domains looked up per check to say whether they can be read (see
#: `_AssetCheck._unproven`); more are left out of the note.
MAX_FOREIGN_LOOKUPS = 10
#: Attempts of one Cloud Asset call answered with transient errors (within the retry deadline).
ASSET_ATTEMPTS = 10
#: Policy Analyzer accepts at most this many roles in an access selector.
ANALYZER_MAX_ROLES = 10
#: The label every Google Group carries; the membership searches require a label in the query.
DISCUSSION_FORUM = "cloudidentity.googleapis.com/groups.discussion_forum"

_ASSET_PERMISSION = (
    "cloudasset.assets.analyzeIamPolicy, cloudasset.assets.searchAllResources and "
    "cloudasset.assets.searchAllIamPolicies (role roles/cloudasset.viewer)"
)
#: Seconds the analysis itself is given less than the client waits: it then stops and answers
#: with what it found (`fullyExplored: false`) while the client still listens, instead of
#: running on, unheard, after the client gave up.
ANALYZER_ANSWER_MARGIN = 2.0
#: Groups named in one note about groups that were left out.
MAX_GROUPS_NAMED = 10

_GROUPS_PERMISSION = (
    "permission to read groups and memberships in Cloud Identity (the Groups Reader admin role)"
)

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Internal shapes


@dataclass(frozen=True)
class _Binding:
    """An eligible binding for a requested role, as found on the project or an ancestor."""

    role: str
    marker: Marker
    clauses: tuple[str, ...]  # resource condition clauses; () = unrestricted
    users: frozenset[str]  # direct `user:` members, lower-case
    groups: frozenset[str]  # `group:` members, lower-case
    attached: str


@dataclass(frozen=True)
class _Found:
    """The groups a search says an identity is in (lower-case emails).

    `complete`: every group the identity is in was visible. The transitive search answers 403
    rather than leave one out; the direct search silently leaves out the groups the caller may
    not read, so absence from its answer proves nothing by itself (see `_AssetCheck._unproven`).
    """

    groups: frozenset[str]
    complete: bool


@dataclass(frozen=True)
class _Approvers:
    """What a check found about the designated-approver groups it was asked about."""

    memberships: Mapping[str, frozenset[str]]
    group_members: Mapping[str, frozenset[str]]
    notes: tuple[str, ...]


class _GroupUnreadable(GoogleError):
    """Cloud Identity's 403 `Error(2028) … (or it may not exist)` for a group.

    The same answer is given for a group that does not exist, for a group of another account
    and when the service account lacks the Groups Reader admin role, so it cannot be read as
    "nobody is a member": what it means depends on whose group it is (see `_unreadable`).
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"Cloud Identity will not show a group ({detail})", status=403)
        self.detail = detail


# --------------------------------------------------------------------------------------------
# Parsing helpers


def _members(raw: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(user emails, group emails) of a binding's members, lower-case; other kinds dropped."""
    users: set[str] = set()
    groups: set[str] = set()
    for member in raw:
        if not isinstance(member, str):
            continue
        kind, _, email = member.partition(":")
        kind = kind.lower()
        # `deleted:user:…` and `…?uid=` forms are deleted principals: never eligible.
        if not email or "?" in email or ":" in email:
            continue
        if kind == "user":
            users.add(email.lower())
        elif kind == "group":
            groups.add(email.lower())
    return frozenset(users), frozenset(groups)


def _eligible(
    role: str, expression: str | None, wanted: set[str]
) -> tuple[Marker, tuple[str, ...]] | None:
    """The marker and resource-condition clauses of a binding for a wanted role, or None."""
    if role not in wanted:
        return None
    marker, clauses = marker_of(expression)
    if marker is None:
        return None
    return marker, clauses


def _full_project_name(project: str) -> str:
    return f"{CRM}projects/{project}"


def _outside_scope_by_name(scope: str, project: str) -> bool:
    """True when the scope is another project (by ID): nothing of `project` can be in it."""
    if not scope.startswith("projects/"):
        return False
    scoped = scope.removeprefix("projects/")
    return not scoped.isdigit() and scoped != project


def _policy_answer(
    body: Any, name: str, wanted: set[str]
) -> tuple[list[_Binding], tuple[str, ...]]:
    """The eligible bindings for `wanted` roles in a batchGet answer (JSON) for `name`, and the
    project's ancestry it shows.

    The answer lists the policy of the project and of each ancestor up to the scope, nearest
    first (each attached resource the child of the next one, as the API documents): the
    attached folders and organization are the ancestry, read at no extra cost.
    """
    if not isinstance(body, dict):
        raise ValueError("the answer is not an object")
    results = [
        r for r in body.get("policyResults", []) or []
        if isinstance(r, dict) and r.get("fullResourceName") == name
    ]
    if len(results) != 1:
        raise ValueError(f"expected one result for {name}, got {len(results)}")
    found: list[_Binding] = []
    ancestry: list[str] = []
    for info in results[0].get("policies", []) or []:
        policy = info.get("policy") if isinstance(info, dict) else None
        attached = info.get("attachedResource", "") if isinstance(info, dict) else ""
        if not isinstance(policy, dict):
            raise ValueError("a policy entry without a policy")
        ancestor = _ancestor(attached)
        if ancestor is not None and ancestor not in ancestry:
            ancestry.append(ancestor)
        for binding in policy.get("bindings", []) or []:
            if not isinstance(binding, dict):
                raise ValueError("a binding that is not an object")
            role = binding.get("role")
            if not isinstance(role, str) or role not in wanted:
                continue  # most bindings: no condition is parsed for them
            condition = binding.get("condition")
            expression = condition.get("expression") if isinstance(condition, dict) else None
            hit = _eligible(role, expression if isinstance(expression, str) else None, wanted)
            if hit is None:
                continue
            members = binding.get("members", [])
            users, groups = _members(members if isinstance(members, list) else [])
            found.append(_Binding(role, hit[0], hit[1], users, groups, str(attached)))
    return found, tuple(ancestry)


def _ancestor(attached: Any) -> str | None:
    """`folders/N` or `organizations/N` of an attached resource's full name; None for the
    project itself (or anything else)."""
    if not isinstance(attached, str):
        return None
    resource = attached.removeprefix(CRM)
    kind, _, number = resource.partition("/")
    if kind in ("folders", "organizations") and number and "/" not in number:
        return resource
    return None


# --------------------------------------------------------------------------------------------
# Facts assembly (pure)


def _conditions(bindings: Sequence[_Binding]) -> tuple[str, ...]:
    """Resource conditions of some eligible bindings of one kind; () if one is unrestricted."""
    if any(not b.clauses for b in bindings):
        return ()
    out: list[str] = []
    for b in bindings:
        text = resource_condition(b.clauses)
        if text not in out:
            out.append(text)
    return tuple(out)


def _role_eligibility(found: Iterable[_Binding]) -> dict[str, RoleEligibility]:
    """How the eligible bindings an identity holds make it eligible, per role."""
    by_role: dict[str, list[_Binding]] = {}
    for binding in found:
        by_role.setdefault(binding.role, []).append(binding)
    out: dict[str, RoleEligibility] = {}
    for role, held in by_role.items():
        selfs = [b for b in held if b.marker is Marker.SELF_APPROVAL]
        multis = [b for b in held if b.marker is Marker.MULTI_PARTY]
        out[role] = RoleEligibility(
            self_approval=bool(selfs),
            multi_party=bool(multis),
            self_conditions=_conditions(selfs),
            multi_party_conditions=_conditions(multis),
        )
    return out


def _assemble(
    eligible: Mapping[_Binding, frozenset[str]],
    identities: Sequence[str],
) -> EligibilityFacts:
    """Facts from each eligible binding and the users it makes eligible."""
    grants: dict[str, dict[str, RoleEligibility]] = {}
    for identity in identities:
        held = _role_eligibility(b for b, users in eligible.items() if identity in users)
        if held:
            grants[identity] = held
    peers: dict[str, set[str]] = {}
    for binding, users in eligible.items():
        if binding.marker is Marker.MULTI_PARTY:
            peers.setdefault(binding.role, set()).update(users)
    return EligibilityFacts(
        grants=grants,
        peers={role: frozenset(users) for role, users in peers.items() if users},
    )


# --------------------------------------------------------------------------------------------
# Errors


class _Transient(Exception):
    """A Cloud Identity call failed in a way worth another attempt."""

    def __init__(self, reason: str, status: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _AssetAnswer(Exception):
    """A Cloud Asset answer other than 200 (retried when its status is transient)."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _asset_error(
    what: str, scope: str, failure: GoogleCallError, *, analyzer: bool, timeout: float
) -> GoogleError:
    """A clear GoogleError for a failed Cloud Asset call (that waited at most `timeout` s)."""
    suffix = " (after retries)" if failure.retried else ""
    status = failure.status
    detail = failure.detail
    if status == 403:
        needs = _ASSET_PERMISSION + (
            " and permission to read groups, to expand them" if analyzer else ""
        )
        message = f"{what} on {scope} was denied: the service account needs {needs} on {scope}"
        status = 403
    elif status == 429:
        status = 429
        if analyzer:
            message = (
                "the Policy Analyzer quota is exhausted (without Security Command Center "
                "Premium an organization gets 20 queries per day); try again tomorrow or set "
                "eligibility.source to asset-inventory"
            )
        else:
            message = f"{what} was rate-limited by Cloud Asset"
    elif status is not None and status >= 500:
        message = f"{what} failed: Cloud Asset is unavailable"
    elif failure.kind == "timeout":
        message, status = f"{what} timed out after {timeout:g} s", 504
    elif failure.kind == "unreachable":
        message = f"{what} failed: cannot reach Cloud Asset"
    elif failure.kind == "answered":
        message = f"{what} failed"
    else:
        message = f"{what} returned an answer that could not be read"
    return GoogleError(f"{message}{suffix} ({detail})", status=status)


# --------------------------------------------------------------------------------------------
# The checker


class EligibilityChecker:
    """Looks up eligibility through Cloud Asset (and Cloud Identity for groups)."""

    def __init__(
        self,
        clients: GoogleClients,
        *,
        max_group_members: int = MAX_GROUP_MEMBERS,
        max_workers: int = MAX_WORKERS,
        max_peer_groups: int = MAX_PEER_GROUPS,
        search_page_size: int = SEARCH_PAGE_SIZE,
        budget: Budget | None = None,
    ) -> None:
        self._clients = clients
        self._max_group_members = max_group_members
        self._max_workers = max_workers
        self._max_peer_groups = max_peer_groups
        self._search_page_size = search_page_size
        self._budget = budget if budget is not None else clients.budget
        self._session_lock = threading.Lock()
        self._asset_session: requests.Session | None = None

    def check(
        self,
        *,
        scope: str,
        project: str,
        settings: EligibilitySettings,
        question: EligibilityQuestion,
    ) -> EligibilityFacts:
        """What `question` asks about `project`: the requester's eligibility for its roles,
        the reviewers' for the roles that need approval, the peers of roles short of it.

        A group of the requester's domain that Cloud Identity will not show, or a partial
        analysis that does not show the requester's eligibility, is an error.
        """
        requester = question.requester.strip().lower()
        reviewers = _others(question.reviewers, requester)
        wanted = tuple(dict.fromkeys(r for r in question.roles if isinstance(r, str) and r))
        if not wanted or not requester:
            return EligibilityFacts()
        question = replace(
            question,
            requester=requester,
            reviewers=reviewers,
            roles=wanted,
            vetoers=_others(question.vetoers, requester),
            veto_roles=tuple(r for r in dict.fromkeys(question.veto_roles) if r in wanted),
            approver_groups=tuple(dict.fromkeys(
                g for g in question.approver_groups if _group_email(g) is not None
            )),
        )
        if _outside_scope_by_name(scope, project):
            log.warning(
                "project %s is outside the eligibility scope %s: nobody is eligible", project, scope
            )
            # Asked for, the ancestry is known: no ancestor of the project lies within the scope.
            return EligibilityFacts(ancestry=() if question.ancestry else None)
        with ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="eligibility"
        ) as pool:
            check = _AssetCheck(self, pool, scope, project, question, settings.nested_groups)
            if settings.source is not EligibilitySourceName.POLICY_ANALYZER:
                return check.run()
            return self._analyzed(pool, check, scope, project, settings)

    def _analyzed(
        self,
        pool: ThreadPoolExecutor,
        check: _AssetCheck,
        scope: str,
        project: str,
        settings: EligibilitySettings,
    ) -> EligibilityFacts:
        """The policy-analyzer answer to the check's question: one analysis; beside it, when
        asked, one batchGet for the ancestry (the analysis does not show it), and the Cloud
        Identity calls about the designated-approver groups (the analysis expands only the
        groups bound to the roles)."""
        question = check.question
        people = [question.requester, *question.judged]
        f_facts = pool.submit(
            self._with_analyzer, scope, project, set(question.roles), people, settings
        )
        f_ancestry = (
            pool.submit(self._effective_bindings, scope, project, set())
            if question.ancestry else None
        )
        approvers = check.approvers()
        facts = prune(question, f_facts.result())
        ancestry = f_ancestry.result()[1] if f_ancestry is not None else None
        return replace(
            facts,
            ancestry=ancestry,
            memberships=approvers.memberships,
            group_members=approvers.group_members,
            notes=(*facts.notes, *approvers.notes),
        )

    # -- Cloud Asset -------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        """An authorized session for Cloud Asset (built once)."""
        with self._session_lock:
            if self._asset_session is None:
                from google.auth.transport.requests import AuthorizedSession

                endpoint = self._clients.endpoints.cloud_asset
                self._asset_session = AuthorizedSession(  # type: ignore[no-untyped-call]
                    self._clients.credentials_for(endpoint)
                )
            return self._asset_session

    def _asset_get(self, path: str, params: Mapping[str, str | list[str]]) -> requests.Response:
        """GET a Cloud Asset method; transient answers retried within the retry deadline.

        Raises the failure translated once (`GoogleCallError`); a timeout is not retried
        (another full timeout would break the webhook's 10 s budget), nor a refused
        connection (as the client library's retry would not).
        """
        base = (self._clients.endpoints.cloud_asset or CLOUD_ASSET_DEFAULT).rstrip("/")
        url = f"{base}/v1/{path}"
        budget = self._budget
        session = self._session()
        attempts = [0]

        def once(attempt: int) -> requests.Response:
            attempts[0] = attempt
            response = session.get(url, params=params, timeout=budget.call_timeout)
            if response.status_code != 200:
                raise _AssetAnswer(response)
            return response

        try:
            return retry_bounded(
                once,
                retry_if=lambda e: isinstance(e, _AssetAnswer)
                and e.response.status_code in TRANSIENT_STATUSES,
                attempts=ASSET_ATTEMPTS,
                deadline=budget.retry_deadline,
                at_least=2,  # a transient answer is tried again at least once
                pause=jittered_backoff(budget),
                sleep=_sleep,
            )
        except _AssetAnswer as answer:
            failure = google_failure(answer.response)
            failure.retried = attempts[0] > 1
            raise failure from None
        except requests.RequestException as error:
            raise google_failure(error) from error

    def _effective_bindings(
        self, scope: str, project: str, wanted: set[str]
    ) -> tuple[list[_Binding], tuple[str, ...]]:
        """The eligible bindings on the project and its ancestors within scope, and the
        project's ancestors within scope, nearest first (one call)."""
        name = _full_project_name(project)
        what = f"Cloud Asset effectiveIamPolicies:batchGet for project {project}"
        try:
            response = self._asset_get(f"{scope}/effectiveIamPolicies:batchGet", {"names": name})
        except GoogleCallError as failure:
            if failure.status == 404:
                log.warning(
                    "project %s is not found within the eligibility scope %s: nobody is eligible",
                    project,
                    scope,
                )
                return [], ()  # no ancestor within the scope either
            raise _asset_error(
                what, scope, failure, analyzer=False, timeout=self._budget.call_timeout
            ) from failure
        try:
            return _policy_answer(response.json(), name, wanted)
        except Exception as error:  # a malformed answer of any shape
            raise GoogleError(
                f"{what} returned an answer that could not be read ({error})"
            ) from error

    # -- Cloud Identity ----------------------------------------------------------------------

    def _identity_get(self, path: str, params: Mapping[str, str]) -> Any | None:
        """GET a Cloud Identity resource; None on 404; GoogleError on anything else wrong."""
        url = f"{self._clients.identity_base}/v1/{path}"
        what = f"Cloud Identity {path.split('/')[-1] if '/' in path else path}"
        budget = self._budget

        def once(_attempt: int) -> Any | None:
            try:
                response = self._clients.identity.get(
                    url, params=dict(params), timeout=budget.call_timeout
                )
            except requests.Timeout as error:
                # Not retried: another full timeout would break the webhook's 10 s budget.
                raise GoogleError(
                    f"{what} timed out after {budget.call_timeout:g} s", status=504
                ) from error
            except requests.RequestException as error:
                raise _Transient(f"cannot reach Cloud Identity ({error})", None) from error
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise GoogleError(
                            f"{what} returned an answer that could not be read ({error})"
                        ) from error
                if status == 404:
                    return None
                if status == 403 and "may not exist" in _error_message(response):
                    # Error(2028): the group does not exist, lies outside this account, or the
                    # service account lacks Groups Reader. The caller decides what that means.
                    raise _GroupUnreadable(_error_message(response))
                if status == 403:
                    needs = _GROUPS_PERMISSION + (
                        "; transitive membership (eligibility.nested_groups: true) also needs "
                        "Google Workspace Enterprise or Cloud Identity Premium"
                        if "Transitive" in url else ""
                    )
                    raise GoogleError(
                        f"{what} was denied: the service account needs {needs}"
                        f" ({_error_message(response)})",
                        status=403,
                    )
                if status not in TRANSIENT_STATUSES:
                    raise GoogleError(
                        f"{what} failed with HTTP {status} ({_error_message(response)})",
                        status=status,
                    )
                raise _Transient(f"HTTP {status} ({_error_message(response)})", status)

        def pause(attempt: int, _error: Exception) -> float:
            # Short, bounded backoff: the whole check must fit the webhook's 10 s budget.
            return min(
                budget.identity_backoff * float(2 ** (attempt - 1)),
                budget.retry_deadline / budget.identity_attempts,
            )

        try:
            return retry_bounded(
                once,
                retry_if=lambda error: isinstance(error, _Transient),
                attempts=budget.identity_attempts,
                pause=pause,
                sleep=_sleep,
            )
        except _Transient as last:
            raise GoogleError(
                f"{what} failed after {budget.identity_attempts} attempts: {last.reason}",
                status=last.status,
            ) from None

    def _lookup_group(self, email: str) -> str | None:
        """`groups/ID` of a group email, or None when Cloud Identity does not know it (404).

        Raises `_GroupUnreadable` on Cloud Identity's ambiguous 403."""
        answer = self._identity_get("groups:lookup", {"groupKey.id": email})
        if answer is None:
            return None
        name = answer.get("name") if isinstance(answer, dict) else None
        if not isinstance(name, str) or not name.startswith("groups/"):
            raise GoogleError(f"Cloud Identity groups:lookup for {email} returned no group name")
        return name

    def _is_member(self, group: str, email: str, nested: bool) -> bool:
        """Is `email` a member of `group` (directly, or through nested groups when `nested`)?"""
        if not nested:
            answer = self._identity_get(f"{group}/memberships:lookup", {"memberKey.id": email})
            if answer is None:
                return False
            if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
                raise GoogleError("Cloud Identity memberships:lookup returned no membership name")
            return True
        quoted = email.replace("\\", "\\\\").replace("'", "\\'")
        answer = self._identity_get(
            f"{group}/memberships:checkTransitiveMembership",
            {"query": f"member_key_id == '{quoted}'"},
        )
        if answer is None:
            return False
        if not isinstance(answer, dict):
            raise GoogleError("Cloud Identity checkTransitiveMembership returned no answer")
        has = answer.get("hasMembership", False)  # proto3 JSON omits false
        if not isinstance(has, bool):
            raise GoogleError("Cloud Identity checkTransitiveMembership returned no answer")
        return has

    def _list_members(
        self, group: str, email: str, nested: bool, limit: int | None = None
    ) -> tuple[frozenset[str], bool]:
        """User members of a group, at most about `limit` (default: the peers' bound); and
        whether the listing is complete."""
        members: set[str] = set()
        token = ""
        suffix = "memberships:searchTransitiveMemberships" if nested else "memberships"
        bound = limit if limit is not None else self._max_group_members
        while True:
            params = {"pageSize": str(min(bound, LISTING_PAGE_SIZE))}
            if not nested:
                params["view"] = "FULL"  # `type` tells users from nested groups
            if token:
                params["pageToken"] = token
            answer = self._identity_get(f"{group}/{suffix}", params)
            if answer is None:
                log.warning("group %s disappeared while listing its members", email)
                return frozenset(), True
            if not isinstance(answer, dict) or not isinstance(answer.get("memberships", []), list):
                raise GoogleError(f"Cloud Identity listing of {email} could not be read")
            for item in answer.get("memberships", []):
                member = _member_email(item, nested)
                if member:
                    members.add(member)
            token = answer.get("nextPageToken") or ""
            if not token:
                return frozenset(members), True
            if len(members) >= bound:
                log.warning(
                    "group %s has more than %d members: only the first %d are listed",
                    email,
                    bound,
                    len(members),
                )
                return frozenset(members), False

    def _search_groups(self, email: str, nested: bool) -> _Found | None:
        """The groups `email` is in, from one membership search (paged); None when the search
        cannot serve and the groups must be checked one by one.

        `searchTransitiveGroups` (nested groups) needs Cloud Identity Premium or Workspace
        Enterprise and the right to read every group of the member (a partner's group among
        them is enough to be refused): it answers 403 otherwise. `searchDirectGroups` works in
        every edition but leaves out the groups the caller may not read.
        """
        method = "searchTransitiveGroups" if nested else "searchDirectGroups"
        quoted = email.replace("\\", "\\\\").replace("'", "\\'")
        query = f"member_key_id == '{quoted}' && '{DISCUSSION_FORUM}' in labels"
        groups: set[str] = set()
        token = ""
        for _page in range(MAX_SEARCH_PAGES):
            params = {"query": query, "pageSize": str(self._search_page_size)}
            if token:
                params["pageToken"] = token
            try:
                answer = self._identity_get(f"groups/-/memberships:{method}", params)
            except GoogleError as error:
                if error.status != 403:
                    raise
                log.warning(
                    "Cloud Identity %s refused to list the groups of %s (%s): %s; falling back "
                    "to checking the eligible groups one by one", method, email, error,
                    "it needs Cloud Identity Premium (or Google Workspace Enterprise) and the "
                    "right to read every group of the member" if nested
                    else "the service account needs the Groups Reader admin role",
                )
                return None
            if answer is None:
                log.warning("Cloud Identity %s is not found: falling back to checking the "
                            "eligible groups one by one", method)
                return None
            items = answer.get("memberships", []) if isinstance(answer, dict) else None
            if not isinstance(items, list):
                raise GoogleError(f"Cloud Identity {method} for {email} could not be read")
            for item in items:
                key = item.get("groupKey") if isinstance(item, dict) else None
                group = key.get("id") if isinstance(key, dict) else None
                if isinstance(group, str) and group:
                    groups.add(group.lower())
            token = answer.get("nextPageToken") or ""
            if not token:
                return _Found(frozenset(groups), complete=nested)
        log.warning(
            "%s is in more than %d groups: falling back to checking the eligible groups one by one",
            email, MAX_SEARCH_PAGES * self._search_page_size,
        )
        return None

    # -- policy-analyzer ---------------------------------------------------------------------

    def _with_analyzer(
        self,
        scope: str,
        project: str,
        wanted: set[str],
        people: list[str],
        settings: EligibilitySettings,
    ) -> EligibilityFacts:
        from datetime import timedelta

        from google.cloud import asset_v1

        name = _full_project_name(project)
        what = f"Policy Analyzer (analyzeIamPolicy) for project {project}"
        query: dict[str, Any] = {
            "scope": scope,
            "resource_selector": {"full_resource_name": name},
            "options": {"expand_groups": True, "output_group_edges": True},
        }
        if len(wanted) <= ANALYZER_MAX_ROLES:
            query["access_selector"] = {"roles": sorted(wanted)}
        # else: no access selector (the API takes at most 10 roles); roles are filtered here,
        # because splitting the query would spend more than one of the 20 daily queries.
        timeout = self._budget.analyzer_timeout
        execution = _execution_timeout(timeout)
        request = asset_v1.AnalyzeIamPolicyRequest(
            analysis_query=asset_v1.IamPolicyAnalysisQuery(**query),
            # A request field, not an analysis option: without it a slow analysis runs on
            # (and counts) after the client gave up; with it, it answers in time with what it
            # found, marked `fullyExplored: false` (see `_partial`).
            execution_timeout=timedelta(seconds=execution),
        )
        try:
            response = self._clients.asset.analyze_iam_policy(
                request=request,
                # Never retried: each attempt may count against the 20 queries a day, and a
                # failed event is evaluated again on the next one (or its redelivery).
                retry=None,
                timeout=timeout,
            )
        except gexc.BadRequest as error:
            # Policy Analyzer's answer for a resource (or a role) that does not exist is 400
            # INVALID_ARGUMENT, not 404: nobody is eligible there. Not retried, not an error.
            detail = quote_error(getattr(error, "message", None) or str(error))
            log.warning("%s was refused as invalid (%s): nobody is eligible", what, detail)
            return EligibilityFacts(
                notes=(
                    f"Policy Analyzer refused the query for project {project} as invalid "
                    f"({detail}); it answers so for a project or role that does not exist, "
                    "so nobody is eligible.",
                )
            )
        except Exception as error:  # the client library's whole failure surface, mapped once
            raise _asset_error(
                what, scope, google_failure(error), analyzer=True, timeout=timeout
            ) from error
        try:
            eligible = self._analysis(response, scope, wanted, settings.nested_groups)
        except GoogleError:
            raise
        except Exception as error:
            raise GoogleError(
                f"{what} returned an answer that could not be read ({error})"
            ) from error
        facts = _assemble(eligible, people)
        if not (response.fully_explored and response.main_analysis.fully_explored):
            return _partial(facts, project, wanted, people, execution)
        if not eligible:
            log.info(
                "Policy Analyzer found no eligible binding for %s on %s within %s",
                ", ".join(sorted(wanted)),
                project,
                scope,
            )
        return facts

    def _analysis(
        self, response: Any, scope: str, wanted: set[str], nested: bool
    ) -> dict[_Binding, frozenset[str]]:
        """Eligible bindings of an analysis and the users each makes eligible."""
        eligible: dict[_Binding, frozenset[str]] = {}
        for result in response.main_analysis.analysis_results:
            attached = result.attached_resource_full_name
            if not _attached_within(attached, scope):
                log.warning(
                    "ignoring a binding attached to %s, outside the scope %s", attached, scope
                )
                continue
            binding = result.iam_binding
            expression = binding.condition.expression if binding.HasField("condition") else None
            hit = _eligible(binding.role, expression, wanted)
            if hit is None:
                continue
            if not result.fully_explored:
                raise GoogleError(
                    f"Policy Analyzer could not fully analyse the {binding.role} binding on "
                    f"{attached} (often a group it may not expand); eligibility would be "
                    "incomplete"
                )
            users, groups = _members(binding.members)
            everyone = set(users)
            edges: dict[str, set[str]] = {}
            for edge in result.identity_list.group_edges:
                edges.setdefault(edge.source_node.lower(), set()).add(edge.target_node.lower())
            for group in groups:
                everyone.update(_reachable(edges, group, nested))
            key = _Binding(binding.role, hit[0], hit[1], users, groups, attached)
            eligible[key] = eligible.get(key, frozenset()) | frozenset(everyone)
        return eligible


def _execution_timeout(timeout: float) -> float:
    """Seconds the analysis may run when its client waits `timeout`: always less than that."""
    return max(timeout / 2, timeout - ANALYZER_ANSWER_MARGIN)


def _partial(
    facts: EligibilityFacts,
    project: str,
    wanted: set[str],
    people: list[str],
    execution: float,
) -> EligibilityFacts:
    """What a partial analysis (`fullyExplored: false`) may decide.

    What it found is true: a binding it reached makes its members eligible as it says (a
    binding it missed could only have given the requester an easier path, e.g. self-approval
    instead of approval, or no resource condition; never a harder one). Absence proves
    nothing: the binding that makes someone eligible may be among what was not explored. So
    the requester's eligibility must be shown for every requested role, or nothing is
    decided (an error saying the analysis was cut short, never a silent "not eligible"); when
    it is, the facts are used, and reviewers the analysis did not reach do not count as
    qualified, which a note says.
    """
    requester = people[0] if people else None
    shown = {
        role for role in wanted
        if requester is not None
        and (facts.of(requester, role).self_approval or facts.of(requester, role).multi_party)
    }
    unshown = sorted(wanted - shown)
    if unshown:
        raise GoogleError(
            f"Policy Analyzer's analysis of project {project} was cut short after {execution:g} s "
            f"(fullyExplored: false) before it showed eligibility for {', '.join(unshown)}; "
            "a partial answer cannot show that someone is not eligible, so nothing was decided "
            "(the next event on this pull request asks again)",
            status=504,
        )
    log.warning("Policy Analyzer's analysis of project %s was cut short after %g s; the "
                "requester's eligibility it found is used", project, execution)
    return replace(
        facts,
        notes=(
            *facts.notes,
            "Policy Analyzer's analysis was cut short (a partial answer): the requester's "
            "eligibility it found is used, but reviewers it did not reach do not count as "
            "qualified until a complete answer.",
        ),
    )


# --------------------------------------------------------------------------------------------
# Small helpers


class _AssetCheck:
    """One asset-inventory check: effective policies, then group memberships by person.

    Calls are made in rounds, each only once the previous one has told what is needed:

    1. batchGet ∥ the requester's groups (a search needs only the identity);
    2. the groups of the reviewers whose review could count, for the roles the requester needs
       approval for (none when every such role is self-approval for the requester, or when no
       multi-party binding of them names a group): one search each, or one listing per
       multi-party group when that is cheaper; beside them, the lookups that show whether a
       group absent from the requester's direct search could be read at all;
    3. when a role is still short of approvals and the PR is to name qualified peers: the
       multi-party groups' member listings (at most `max_peer_groups` groups; none when round
       2 listed them already).

    Vetoers are asked about in round 2 as reviewers are (also for the veto roles), and with
    designated-approver groups every reviewer and vetoer is searched, so that their groups are
    known; the groups' own lookups start in round 2 and their listings run in round 3.

    Runs on the caller's thread; only single HTTP calls run in the pool, so no pooled task
    waits for another.
    """

    def __init__(
        self,
        checker: EligibilityChecker,
        pool: ThreadPoolExecutor,
        scope: str,
        project: str,
        question: EligibilityQuestion,
        nested: bool,
    ) -> None:
        self.checker = checker
        self.pool = pool
        self.scope = scope
        self.project = project
        self.question = question
        self.nested = nested
        self.domain = _domain(question.requester)
        self.names: dict[str, Future[str | None | _GroupUnreadable]] = {}
        self.skipped: set[str] = set()  # groups of other domains left out (noted on the PR)
        # Whether the groups of the requester's domain are known to be readable: a search that
        # found one, or a lookup of one, shows the Groups Reader role (it covers every group).
        self.readable = False
        # Designated-approver groups asked about: lower-case email -> `group:EMAIL` as asked.
        self.approver: dict[str, str] = {}
        for group in question.approver_groups:
            email = _group_email(group)
            if email is not None:
                self.approver.setdefault(email, group)
        self.listing_notes: list[str] = []  # approver groups whose members could not be listed

    # -- the rounds --------------------------------------------------------------------------

    def run(self) -> EligibilityFacts:
        question = self.question
        requester = question.requester
        wanted = set(question.roles)
        f_bindings = self.pool.submit(
            self.checker._effective_bindings, self.scope, self.project, wanted
        )
        f_mine = self.pool.submit(self._search, requester)
        bindings, ancestry = f_bindings.result()
        if not bindings:
            return EligibilityFacts(ancestry=ancestry)
        all_groups = frozenset(g for b in bindings for g in b.groups)
        mine = self._membership(requester, f_mine, all_groups) if all_groups else _Found(
            frozenset(), True
        )
        held = [b for b in bindings if requester in b.users or b.groups & mine.groups]
        grants: dict[str, dict[str, RoleEligibility]] = {}
        if held:
            grants[requester] = _role_eligibility(held)
        facts = EligibilityFacts(grants=grants)

        # Round 2: reviewers and vetoers, and whether the requester's absences prove anything.
        roles = set(approval_roles(question, facts))
        vetoing = roles | set(question.veto_roles) if question.vetoers else roles
        multis = [b for b in bindings if b.marker is Marker.MULTI_PARTY and b.role in vetoing]
        proofs = self._unproven(requester, mine, self._improvable(bindings, facts))
        names = self._approver_names()
        extra = frozenset(self.approver)
        found, listings = self._reviewers(
            [
                who for who in question.judged
                if extra or self._unsettled(who, self._asked(who, multis, roles))
            ],
            multis,
            extra,
        )
        self._settle_proofs(proofs)
        for who in question.judged:
            theirs = [
                b for b in self._asked(who, multis, roles)
                if who in b.users or (who in found and b.groups & found[who].groups)
            ]
            if theirs:
                grants[who] = _role_eligibility(theirs)  # multi-party bindings only
        facts = EligibilityFacts(grants=grants)

        # Round 3: reviewers' unproven absences, the peers of roles short of approvals, and the
        # members of the designated-approver groups.
        short = set(roles_short(question, facts)) if question.peers else set()
        later = self._unproven_reviewers(found, multis)
        jobs = self._approver_listings(names, listings)
        peers = self._peers([b for b in multis if b.role in short], later, listings, jobs)
        approvers = self._approver_facts(found, names, jobs, listings)
        return EligibilityFacts(
            grants=grants,
            peers=peers,
            notes=approvers.notes,
            ancestry=ancestry,
            memberships=approvers.memberships,
            group_members=approvers.group_members,
        )

    def approvers(self) -> _Approvers:
        """The designated-approver groups alone (the policy-analyzer source): who of the judged
        is in which, and, when peers are asked, their members; the same Cloud Identity calls
        as the asset-inventory check makes for them."""
        if not self.approver:
            return _Approvers({}, {}, ())
        names = self._approver_names()
        found, listings = self._reviewers(list(self.question.judged), [], frozenset(self.approver))
        later = self._unproven_reviewers(found, [])
        jobs = self._approver_listings(names, listings)
        self._settle_proofs(later)
        return self._approver_facts(found, names, jobs, listings)

    # -- who needs asking ----------------------------------------------------------------------

    def _asked(
        self, who: str, multis: Sequence[_Binding], roles: set[str]
    ) -> list[_Binding]:
        """The multi-party bindings whose eligibility is asked of `who`: those of the approval
        roles, and for a vetoer those of the veto roles too."""
        if who in self.question.vetoers:
            vetoing = roles | set(self.question.veto_roles)
            return [b for b in multis if b.role in vetoing]
        return [b for b in multis if b.role in roles]

    @staticmethod
    def _unsettled(who: str, multis: Sequence[_Binding]) -> bool:
        """Does a reviewer's eligibility for some approval role depend on their groups?"""
        direct = {b.role for b in multis if who in b.users}
        return any(b.groups for b in multis if b.role not in direct)

    def _improvable(
        self, bindings: Sequence[_Binding], facts: EligibilityFacts
    ) -> frozenset[str]:
        """Groups whose membership could give the requester more than it has: self-approval
        groups of roles it may not self-activate, multi-party ones of roles it has no path to."""
        out: set[str] = set()
        for b in bindings:
            mine = facts.of(self.question.requester, b.role)
            if mine.self_approval:
                continue
            if b.marker is Marker.SELF_APPROVAL or not mine.multi_party:
                out.update(b.groups)
        return frozenset(out)

    def _unproven(
        self, who: str, found: _Found, relevant: frozenset[str]
    ) -> dict[str, Future[str | None | _GroupUnreadable]]:
        """Lookups that tell whether `who`'s absence from relevant groups proves anything.

        A direct search leaves out groups the caller may not read. Absent from a group of the
        requester's domain, the person is not a member if that domain's groups can be read at
        all, which one lookup shows (an unreadable group of that domain is then the error it
        always is). Absent from a group of another domain, the lookup tells whether the group
        can be read; if not, the note on the PR names it, as the group-by-group path would.
        """
        if found.complete:
            return {}
        absent = sorted(relevant - found.groups)
        if any(_domain(g) == self.domain for g in found.groups):
            self.readable = True
        proofs: dict[str, Future[str | None | _GroupUnreadable]] = {}
        own = [g for g in absent if _domain(g) == self.domain]
        if own and not self.readable:
            proofs[own[0]] = self._name(own[0])
        foreign = [g for g in absent if _domain(g) != self.domain]
        if len(foreign) > MAX_FOREIGN_LOOKUPS:
            log.warning(
                "%s is in none of %d groups of other domains that could make them eligible; "
                "only the first %d are looked up", who, len(foreign), MAX_FOREIGN_LOOKUPS,
            )
        for g in foreign[:MAX_FOREIGN_LOOKUPS]:
            proofs[g] = self._name(g)
        return proofs

    def _settle_proofs(self, proofs: Mapping[str, Future[str | None | _GroupUnreadable]]) -> None:
        answers = {g: f.result() for g, f in proofs.items()}
        self._unreadable(answers)
        if any(_domain(g) == self.domain and isinstance(a, str) for g, a in answers.items()):
            self.readable = True

    def _unproven_reviewers(
        self, found: Mapping[str, _Found], multis: Sequence[_Binding]
    ) -> dict[str, Future[str | None | _GroupUnreadable]]:
        """One lookup, when a reviewer's direct search left out a group of the requester's
        domain and nothing has shown yet that such groups can be read."""
        if self.readable:
            return {}
        groups = frozenset(g for b in multis for g in b.groups) | frozenset(self.approver)
        for result in found.values():
            if any(_domain(g) == self.domain for g in result.groups):
                self.readable = True
                return {}
        for result in found.values():
            if result.complete:
                continue
            own = sorted(g for g in groups - result.groups if _domain(g) == self.domain)
            if own:
                return {own[0]: self._name(own[0])}
        return {}

    # -- memberships -------------------------------------------------------------------------

    def _reviewers(
        self,
        who: Sequence[str],
        multis: Sequence[_Binding],
        extra: frozenset[str] = frozenset(),
    ) -> tuple[dict[str, _Found], dict[str, frozenset[str]]]:
        """The multi-party groups (and `extra` groups: the designated approvers') each reviewer
        in `who` is in; and the listings of groups made on the way (group -> the user members
        shown).

        One search per reviewer, or, when that costs more, a listing of each of those groups
        (a lookup and, mostly, one page): the cost is the smaller of the two, and neither grows
        with the self-approval bindings. A reviewer a cut listing does not show is searched.
        """
        groups = sorted({g for b in multis for g in b.groups} | extra)
        found: dict[str, _Found] = {}
        listings: dict[str, frozenset[str]] = {}
        if not who:
            return found, listings
        if len(who) > 2 * len(groups):
            names = {g: self._name(g) for g in groups}
            answers = {g: f.result() for g, f in names.items()}
            self._unreadable(answers)
            jobs = {
                g: (_readable, (self.checker._list_members, name, g, self.nested,
                                SETTLING_LISTING_MAX))
                for g, name in answers.items() if isinstance(name, str)
            }
            listed = _gather(self.pool, jobs)
            self._unreadable(listed)
            shown = {g: a[0] for g, a in listed.items() if isinstance(a, tuple)}
            cut = {g for g, a in listed.items() if isinstance(a, tuple) and not a[1]}
            listings.update(shown)
            if any(isinstance(a, str) and _domain(g) == self.domain for g, a in answers.items()):
                self.readable = True
            rest = []
            for person in who:
                inside = frozenset(g for g, members in shown.items() if person in members)
                held = {b.role for b in multis if person in b.users or b.groups & inside}
                # A role the person is not shown to hold through a listing that was cut is
                # not settled: their own search settles it.
                if any(b.role not in held and b.groups & cut for b in multis) or (
                    (extra & cut) - inside
                ):
                    rest.append(person)
                else:
                    found[person] = _Found(inside, True)
            who = rest
        candidates = frozenset(groups)
        searches = {person: self.pool.submit(self._search, person) for person in who}
        for person, future in searches.items():
            found[person] = self._membership(person, future, candidates)
        return found, listings

    def _search(self, who: str) -> _Found | None:
        """A pooled search of `who`'s groups (None: the search cannot serve)."""
        return self.checker._search_groups(who, self.nested)

    def _membership(
        self, who: str, search: Future[_Found | None], candidates: frozenset[str]
    ) -> _Found:
        """The candidate groups `who` is in: from the search, or group by group when the
        search could not serve."""
        result = search.result()
        if result is not None:
            if any(_domain(g) == self.domain for g in result.groups):
                self.readable = True  # a group of the domain was shown: Groups Reader works
            return _Found(result.groups & candidates, result.complete)
        log.warning(
            "checking %s against %d group(s) one by one instead", who, len(candidates)
        )
        return _Found(self._group_by_group(who, candidates), True)

    def _group_by_group(self, who: str, candidates: frozenset[str]) -> frozenset[str]:
        """The candidate groups `who` is in, asked group by group (lookup, then membership)."""
        names = {g: self._name(g) for g in sorted(candidates)}
        answers = {g: f.result() for g, f in names.items()}
        self._unreadable(answers)
        known = {g: n for g, n in answers.items() if isinstance(n, str)}
        for g, n in answers.items():
            if n is None:
                log.warning("group %s is unknown to Cloud Identity: its members are not eligible",
                            g)
        jobs = {
            g: (_readable, (self.checker._is_member, name, who, self.nested))
            for g, name in known.items()
        }
        member = _gather(self.pool, jobs)
        self._unreadable(member)
        return frozenset(g for g, yes in member.items() if yes is True)

    def _name(self, group: str) -> Future[str | None | _GroupUnreadable]:
        """The (pooled, once per check) lookup of a group's resource name."""
        if group not in self.names:
            self.names[group] = self.pool.submit(_readable, self.checker._lookup_group, group)
        return self.names[group]

    def _unreadable(self, answers: Mapping[str, Any]) -> None:
        """Settle Cloud Identity's ambiguous 403 for each group that got it.

        The service account is expected to read every group of the requester's domain. If one
        cannot be read, either the account lacks Groups Reader or a binding names a group that
        does not exist; both need an administrator, and "nobody is eligible" would hide that:
        an error naming the group. A group of another domain (a partner's) is outside what the
        service can read: it grants nobody, and the PR's note names it.
        """
        unreadable = {g: a for g, a in answers.items() if isinstance(a, _GroupUnreadable)}
        own = sorted(g for g in unreadable if self.domain and _domain(g) == self.domain)
        if own:
            raise GoogleError(
                f"Cloud Identity will not show the group {_named(own)} of the requester's "
                f"domain {self.domain} ({quote_error(unreadable[own[0]].detail)}): the service "
                "account needs the Groups Reader admin role (grant it in the Google Admin "
                "console), or an eligible binding names a group that does not exist (correct or "
                "remove it); eligibility through the group cannot be judged until then",
                status=403,
            )
        for group in sorted(unreadable):
            if group not in self.skipped:
                log.warning(
                    "group %s of another domain is not visible to Cloud Identity (%s): its "
                    "members are not counted", group, unreadable[group].detail,
                )
                self.skipped.add(group)

    # -- designated approvers ------------------------------------------------------------------

    def _approver_names(self) -> dict[str, Future[str | None | _GroupUnreadable]]:
        """The lookups of the designated-approver groups whose members are to be listed (when
        peers are asked; at most `max_peer_groups`), started early: the listing needs them."""
        if not self.question.peers or not self.approver:
            return {}
        groups = sorted(self.approver)
        limit = self.checker._max_peer_groups
        if len(groups) > limit:
            log.warning(
                "%d designated-approver groups may approve on %s: members are listed from the "
                "first %d", len(groups), self.project, limit,
            )
        return {g: self._name(g) for g in groups[:limit]}

    def _approver_listings(
        self,
        names: Mapping[str, Future[str | None | _GroupUnreadable]],
        listings: Mapping[str, frozenset[str]],
    ) -> dict[str, Future[tuple[frozenset[str], bool] | GoogleError]]:
        """Start listing the members of the approver groups named (those not listed already).

        A group the lookup shows unreadable is settled as any group is (`_unreadable`); any
        other failure only leaves its members unasked, which a note says."""
        jobs: dict[str, Future[tuple[frozenset[str], bool] | GoogleError]] = {}
        unreadable: dict[str, _GroupUnreadable] = {}
        for group, future in names.items():
            if group in listings:
                continue
            try:
                name = future.result()
            except GoogleError as error:
                self._unlisted(group, error)
                continue
            if isinstance(name, _GroupUnreadable):
                unreadable[group] = name
            elif name is None:
                log.warning("designated-approver group %s is unknown to Cloud Identity", group)
            else:
                if _domain(group) == self.domain:
                    self.readable = True
                jobs[group] = self.pool.submit(
                    _caught, self.checker._list_members, name, group, self.nested
                )
        self._unreadable(unreadable)
        return jobs

    def _approver_facts(
        self,
        found: Mapping[str, _Found],
        names: Mapping[str, Any],
        jobs: Mapping[str, Future[tuple[frozenset[str], bool] | GoogleError]],
        listings: Mapping[str, frozenset[str]],
    ) -> _Approvers:
        """Memberships of the judged in the approver groups, and the groups' members listed."""
        memberships: dict[str, frozenset[str]] = {}
        for who in self.question.judged:
            result = found.get(who)
            inside = result.groups & self.approver.keys() if result is not None else set()
            if inside:
                memberships[who] = frozenset(self.approver[g] for g in inside)
        members: dict[str, frozenset[str]] = {
            self.approver[g]: listings[g] for g in names if g in listings
        }
        unreadable: dict[str, _GroupUnreadable] = {}
        for group, future in jobs.items():
            answer = future.result()
            if isinstance(answer, _GroupUnreadable):
                unreadable[group] = answer
            elif isinstance(answer, GoogleError):
                self._unlisted(group, answer)
            else:
                members[self.approver[group]] = answer[0]
        self._unreadable(unreadable)
        notes = (_skipped_note(sorted(self.skipped)),) if self.skipped else ()
        return _Approvers(memberships, members, (*notes, *self.listing_notes))

    def _unlisted(self, group: str, error: GoogleError) -> None:
        """Note a designated-approver group whose members could not be listed."""
        log.warning("the members of designated-approver group %s could not be listed: %s",
                    group, error)
        self.listing_notes.append(
            f"Not asked for review: the members of the designated-approver group {group}, "
            f"which could not be listed ({quote_error(str(error))})."
        )

    # -- peers -------------------------------------------------------------------------------

    def _peers(
        self,
        short: Sequence[_Binding],
        proofs: Mapping[str, Future[str | None | _GroupUnreadable]],
        listings: Mapping[str, frozenset[str]],
        started: Mapping[str, Future[tuple[frozenset[str], bool] | GoogleError]] | None = None,
    ) -> dict[str, frozenset[str]]:
        """Qualified peers of the roles short of approvals: direct members of their multi-party
        bindings, and the listed members of (at most `max_peer_groups` of) their groups (the
        listings made for the reviewers are used as they are, and so are those `started` for
        the designated approvers)."""
        started = started or {}
        peers: dict[str, set[str]] = {}
        for b in short:
            peers.setdefault(b.role, set()).update(b.users)
        if listings:
            for b in short:
                for g in b.groups:
                    peers[b.role].update(listings.get(g, frozenset()))
            answers = {g: f.result() for g, f in proofs.items()}
            self._unreadable(answers)
            return {role: frozenset(who) for role, who in peers.items() if who}
        groups = sorted({g for b in short for g in b.groups})
        limit = self.checker._max_peer_groups
        if len(groups) > limit:
            log.warning(
                "%d groups may approve %s on %s: qualified peers are listed from the first %d",
                len(groups), ", ".join(sorted({b.role for b in short})), self.project, limit,
            )
        listed = groups[:limit]
        names = {g: self._name(g) for g in listed}
        answers = {g: f.result() for g, f in {**proofs, **names}.items()}
        self._unreadable(answers)
        jobs = {
            g: (_readable, (self.checker._list_members, name, g, self.nested))
            for g, name in answers.items()
            if g in names and isinstance(name, str) and g not in started
        }
        answered: dict[str, tuple[frozenset[str], bool] | _GroupUnreadable] = _gather(
            self.pool, jobs
        )
        for g in listed:
            if g in started and isinstance(answers.get(g), str):
                answer = started[g].result()
                if isinstance(answer, GoogleError) and not isinstance(answer, _GroupUnreadable):
                    raise answer
                answered[g] = answer
        self._unreadable(answered)
        members = {g: answer[0] for g, answer in answered.items() if isinstance(answer, tuple)}
        for b in short:
            for g in b.groups:
                peers[b.role].update(members.get(g, frozenset()))
        return {role: frozenset(who) for role, who in peers.items() if who}


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def _gather(
    pool: ThreadPoolExecutor, jobs: Mapping[Any, tuple[Callable[..., T], tuple[Any, ...]]]
) -> dict[Any, T]:
    """Run jobs concurrently; their answers by key; the first failure is raised (all awaited)."""
    futures = {key: pool.submit(fn, *args) for key, (fn, args) in jobs.items()}
    answers: dict[Any, T] = {}
    failure: BaseException | None = None
    for key, future in futures.items():
        try:
            answers[key] = future.result()
        except Exception as error:  # re-raised below, after every call has finished
            failure = failure or error
    if failure is not None:
        if isinstance(failure, GoogleError):
            raise failure
        raise GoogleError(f"Cloud Identity lookup failed unexpectedly ({failure})") from failure
    return answers


def _readable(fn: Callable[..., T], *args: Any) -> T | _GroupUnreadable:
    """`fn(*args)`, or the `_GroupUnreadable` it raised (settled per group by the caller)."""
    try:
        return fn(*args)
    except _GroupUnreadable as error:
        return error


def _caught(fn: Callable[..., T], *args: Any) -> T | GoogleError:
    """`fn(*args)`, or the GoogleError it raised (for calls whose failure is only noted)."""
    try:
        return fn(*args)
    except GoogleError as error:
        return error


def _others(identities: Iterable[str], requester: str) -> tuple[str, ...]:
    """Identities (lower-case, each once) other than the requester's."""
    return tuple(dict.fromkeys(
        i.strip().lower() for i in identities
        if isinstance(i, str) and i.strip() and i.strip().lower() != requester
    ))


def _group_email(member: str) -> str | None:
    """The lower-case email of a `group:EMAIL` member, or None for anything else."""
    if not isinstance(member, str):
        return None
    kind, _, email = member.strip().partition(":")
    email = email.strip().lower()
    if kind.lower() != "group" or "@" not in email or ":" in email or "?" in email:
        return None
    return email


def _domain(email: str) -> str:
    """The domain of an email address, lower-case ('' when there is none)."""
    return email.rpartition("@")[2].lower() if "@" in email else ""


def _named(groups: Sequence[str]) -> str:
    """Group emails for a message: the first MAX_GROUPS_NAMED, then how many more."""
    shown = ", ".join(groups[:MAX_GROUPS_NAMED])
    more = len(groups) - MAX_GROUPS_NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def _skipped_note(skipped: Sequence[str]) -> str:
    """The PR note for groups of other domains left out of the eligibility check."""
    what = "a group of another domain" if len(skipped) == 1 else "groups of other domains"
    return (
        f"Not counted: the members of {_named(sorted(skipped))}, {what} than the requester's "
        "that Cloud Identity does not show to this service."
    )


def _error_message(response: requests.Response) -> str:
    """The `error.message` of a Google JSON error body (quoted), or the status line."""
    return google_failure(response).detail


def _member_email(item: Any, nested: bool) -> str | None:
    """The email of a user member in a memberships listing item, or None."""
    if not isinstance(item, dict):
        return None
    if nested:
        # searchTransitiveMemberships: `member` is `users/…` or `groups/…`; nested groups'
        # users are listed in their own right.
        if not str(item.get("member", "")).startswith("users/"):
            return None
        keys = item.get("preferredMemberKey")
        key = keys[0] if isinstance(keys, list) and keys else None
    else:
        if item.get("type", "USER") != "USER":
            return None
        key = item.get("preferredMemberKey")
    member = key.get("id") if isinstance(key, dict) else None
    return member.lower() if isinstance(member, str) and member else None


def _reachable(edges: Mapping[str, set[str]], group: str, nested: bool) -> set[str]:
    """User emails reachable from `group:<group>` through group edges (one hop unless nested)."""
    users: set[str] = set()
    seen: set[str] = set()
    todo = [f"group:{group}"]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for target in edges.get(node, set()):
            kind, _, email = target.partition(":")
            if kind == "user" and email and "?" not in email:
                users.add(email)
            elif kind == "group" and nested:
                todo.append(target)
    return users


def _attached_within(attached: str, scope: str) -> bool:
    """False for an attachment that cannot lie within `scope` (judged from names alone).

    Policy Analyzer only analyses policies within the scope; this guards what a name alone can
    tell: an organization is never inside a folder, and nothing above a project is inside it.
    (Projects are not compared by name: the API may name them by number.)
    """
    resource = attached.removeprefix(CRM)
    if scope.startswith("folders/"):
        return not resource.startswith("organizations/")
    if scope.startswith("projects/"):
        return resource.startswith("projects/")
    return True
