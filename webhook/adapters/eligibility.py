"""Eligibility (README: lifecycle): who holds an eligible binding for which role on a project, and
how.

Two sources, chosen by `eligibility.source` in the policy:

- `asset-inventory`: one Cloud Asset `effectiveIamPolicies:batchGet` returns the project's
  policy and its ancestors' up to the scope; bindings are evaluated here, and `group:` members
  are resolved through the Cloud Identity Groups API (a few small calls, run concurrently).
- `policy-analyzer`: one Cloud Asset `analyzeIamPolicy` query, groups expanded by the API,
  answers for the requester, the reviewers and every other qualified peer at once. The free
  tier allows 20 queries per organization per day, so a check never spends more than one.

Both return the same `EligibilityFacts`. Only `user:` and `group:` members count: service
accounts cannot author or review pull requests, and `domain:`, `principal…://` and `allUsers`
style members would make whole populations eligible, which jit-access does not support either.
Activation bindings (title `JIT access activation`, a time window) carry no marker, so they are
never mistaken for eligibility.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as gexc

from webhook.adapters.google_clients import (
    TRANSIENT_STATUSES,
    GoogleClients,
    bounded_retry,
    google_failure,
    quote_error,
)
from webhook.core.budget import Budget, retry_bounded
from webhook.core.conditions import marker_of, resource_condition
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

#: Members listed per group when looking for qualified peers; bigger groups are cut (and logged).
MAX_GROUP_MEMBERS = 200
#: Concurrent Cloud Identity calls per check.
MAX_WORKERS = 8
#: Policy Analyzer accepts at most this many roles in an access selector.
ANALYZER_MAX_ROLES = 10

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


@dataclass
class _GroupFacts:
    """What Cloud Identity said about one group during one check."""

    email: str
    name: str | None = None  # groups/ID; None when Cloud Identity does not know the group
    listed: frozenset[str] | None = None  # user members, when listed completely
    some_members: frozenset[str] = frozenset()  # members seen in an incomplete listing
    members: set[str] = field(default_factory=set)  # identities confirmed as members


class _GroupUnreadable(GoogleError):
    """Cloud Identity's 403 `Error(2028) … (or it may not exist)` for a group.

    The same answer is given for a group that does not exist, for a group of another account
    and when the service account lacks the Groups Reader admin role, so it cannot be read as
    "nobody is a member": what it means depends on whose group it is (see `_settle_unreadable`).
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


def _assemble(
    eligible: Mapping[_Binding, frozenset[str]],
    identities: Sequence[str],
) -> EligibilityFacts:
    """Facts from each eligible binding and the users it makes eligible."""
    grants: dict[str, dict[str, RoleEligibility]] = {}
    for identity in identities:
        by_role: dict[str, list[_Binding]] = {}
        for binding, users in eligible.items():
            if identity in users:
                by_role.setdefault(binding.role, []).append(binding)
        for role, found in by_role.items():
            selfs = [b for b in found if b.marker is Marker.SELF_APPROVAL]
            multis = [b for b in found if b.marker is Marker.MULTI_PARTY]
            grants.setdefault(identity, {})[role] = RoleEligibility(
                self_approval=bool(selfs),
                multi_party=bool(multis),
                self_conditions=_conditions(selfs),
                multi_party_conditions=_conditions(multis),
            )
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


def _asset_error(
    what: str, scope: str, error: BaseException, *, analyzer: bool, timeout: float
) -> GoogleError:
    """A clear GoogleError for a failed Cloud Asset call (that waited at most `timeout` s)."""
    failure = google_failure(error)
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
        budget: Budget | None = None,
    ) -> None:
        self._clients = clients
        self._max_group_members = max_group_members
        self._max_workers = max_workers
        self._budget = budget if budget is not None else clients.budget

    def check(
        self,
        *,
        scope: str,
        project: str,
        roles: Sequence[str],
        identities: Sequence[str],
        settings: EligibilitySettings,
    ) -> EligibilityFacts:
        """Eligibility of `identities` for `roles` on `project`, and the peers of each role.

        The first identity is the requester's: a group of its domain that Cloud Identity will
        not show, or a partial analysis that does not show its eligibility, is an error.
        """
        wanted_roles = {r for r in roles if isinstance(r, str) and r}
        people = list(dict.fromkeys(i.strip().lower() for i in identities if i and i.strip()))
        if not wanted_roles:
            return EligibilityFacts()
        if _outside_scope_by_name(scope, project):
            log.warning(
                "project %s is outside the eligibility scope %s: nobody is eligible", project, scope
            )
            return EligibilityFacts()
        if settings.source is EligibilitySourceName.POLICY_ANALYZER:
            return self._with_analyzer(scope, project, wanted_roles, people, settings)
        return self._with_asset_inventory(scope, project, wanted_roles, people, settings)

    # -- asset-inventory ---------------------------------------------------------------------

    def _effective_bindings(self, scope: str, project: str, wanted: set[str]) -> list[_Binding]:
        """The eligible bindings on the project and its ancestors within scope (one call)."""
        name = _full_project_name(project)
        what = f"Cloud Asset effectiveIamPolicies:batchGet for project {project}"
        try:
            response = self._clients.asset.batch_get_effective_iam_policies(
                request={"scope": scope, "names": [name]},
                retry=bounded_retry(self._budget),
                timeout=self._budget.call_timeout,
            )
        except gexc.NotFound:
            log.warning(
                "project %s is not found within the eligibility scope %s: nobody is eligible",
                project,
                scope,
            )
            return []
        except Exception as error:  # the client library's whole failure surface, mapped once
            raise _asset_error(
                what, scope, error, analyzer=False, timeout=self._budget.call_timeout
            ) from error
        try:
            results = [r for r in response.policy_results if r.full_resource_name == name]
            if len(results) != 1:
                raise ValueError(f"expected one result for {name}, got {len(results)}")
            found: list[_Binding] = []
            for info in results[0].policies:
                for binding in info.policy.bindings:
                    expression = (
                        binding.condition.expression if binding.HasField("condition") else None
                    )
                    hit = _eligible(binding.role, expression, wanted)
                    if hit is None:
                        continue
                    users, groups = _members(binding.members)
                    found.append(
                        _Binding(
                            binding.role, hit[0], hit[1], users, groups, info.attached_resource
                        )
                    )
            return found
        except Exception as error:
            raise GoogleError(
                f"{what} returned an answer that could not be read ({error})"
            ) from error

    def _with_asset_inventory(
        self,
        scope: str,
        project: str,
        wanted: set[str],
        people: list[str],
        settings: EligibilitySettings,
    ) -> EligibilityFacts:
        bindings = self._effective_bindings(scope, project, wanted)
        if not bindings:
            return EligibilityFacts()
        peer_groups = {g for b in bindings if b.marker is Marker.MULTI_PARTY for g in b.groups}
        # Self-approval groups matter only for the people asked about; multi-party groups also
        # give the peers.
        needed = peer_groups | ({g for b in bindings for g in b.groups} if people else set())
        groups = {g: _GroupFacts(g) for g in sorted(needed)}
        skipped: list[str] = []
        if groups:
            with ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="eligibility"
            ) as pool:
                skipped = self._resolve_groups(
                    pool, groups, peer_groups, people, settings.nested_groups
                )
        eligible: dict[_Binding, frozenset[str]] = {}
        for binding in bindings:
            users = set(binding.users)
            for g in binding.groups & groups.keys():
                facts = groups[g]
                users.update(facts.members)
                if binding.marker is Marker.MULTI_PARTY:
                    users.update(facts.listed if facts.listed is not None else facts.some_members)
            eligible[binding] = frozenset(users)
        result = _assemble(eligible, people)
        if skipped:
            result = replace(result, notes=(_skipped_note(skipped),))
        return result

    def _resolve_groups(
        self,
        pool: ThreadPoolExecutor,
        groups: dict[str, _GroupFacts],
        peer_groups: set[str],
        people: list[str],
        nested: bool,
    ) -> list[str]:
        """Fill in group names, listings (for peers) and the memberships of `people`.

        `people[0]` is the requester. A group Cloud Identity will not show is an error when
        it is of the requester's domain; groups of other domains are dropped from `groups`
        and returned, so that the comment can say whose members were not counted.
        """
        domain = _domain(people[0]) if people else None
        skipped: list[str] = []
        # 1. Group names (one lookup per group, concurrently).
        names = _gather(pool, {g: (_readable, (self._lookup_group, g)) for g in groups})
        _settle_unreadable(groups, names, domain, skipped)
        for g, gname in names.items():
            if g not in groups or isinstance(gname, _GroupUnreadable):
                continue  # left out by _settle_unreadable
            groups[g].name = gname
            if gname is None:
                log.warning(
                    "group %s is unknown to Cloud Identity: its members are not eligible", g
                )
        known = {g: f for g, f in groups.items() if f.name is not None}
        # 2. Listings of multi-party groups (they give peers and settle memberships) and
        #    membership checks of the people in the other groups, concurrently.
        jobs: dict[Any, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        for g, facts in known.items():
            assert facts.name is not None
            if g in peer_groups:
                jobs[("list", g)] = (_readable, (self._list_members, facts.name, g, nested))
            else:
                for person in people:
                    jobs[("member", g, person)] = (
                        _readable, (self._is_member, facts.name, person, nested)
                    )
        answers = _gather(pool, jobs)
        _settle_unreadable(groups, answers, domain, skipped)
        self._apply(groups, answers, people)
        known = {g: f for g, f in known.items() if g in groups}
        # 3. People not settled by an incomplete listing: ask about them one by one.
        again: dict[Any, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        for g, facts in known.items():
            if g in peer_groups and facts.listed is None:
                assert facts.name is not None
                for person in people:
                    if person not in facts.some_members:
                        again[("member", g, person)] = (
                            _readable,
                            (self._is_member, facts.name, person, nested),
                        )
        if again:
            answers = _gather(pool, again)
            _settle_unreadable(groups, answers, domain, skipped)
            self._apply(groups, answers, people)
        return skipped

    @staticmethod
    def _apply(
        groups: dict[str, _GroupFacts], answers: Mapping[Any, Any], people: list[str]
    ) -> None:
        for key, answer in answers.items():
            if key[1] not in groups:
                continue  # a group left out (see _settle_unreadable)
            if key[0] == "list":
                members, complete = answer
                facts = groups[key[1]]
                if complete:
                    facts.listed = frozenset(members)
                else:
                    facts.some_members = frozenset(members)
                facts.members.update(p for p in people if p in members)
            elif answer:
                groups[key[1]].members.add(key[2])

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

    def _list_members(self, group: str, email: str, nested: bool) -> tuple[frozenset[str], bool]:
        """User members of a group, bounded; and whether the listing is complete."""
        members: set[str] = set()
        token = ""
        suffix = "memberships:searchTransitiveMemberships" if nested else "memberships"
        while True:
            params = {"pageSize": str(self._max_group_members)}
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
            if len(members) >= self._max_group_members:
                log.warning(
                    "group %s has more than %d members: only the first %d are offered as reviewers",
                    email,
                    self._max_group_members,
                    len(members),
                )
                return frozenset(members), False

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
                what, scope, error, analyzer=True, timeout=timeout
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


def _domain(email: str) -> str:
    """The domain of an email address, lower-case ('' when there is none)."""
    return email.rpartition("@")[2].lower() if "@" in email else ""


def _named(groups: Sequence[str]) -> str:
    """Group emails for a message: the first MAX_GROUPS_NAMED, then how many more."""
    shown = ", ".join(groups[:MAX_GROUPS_NAMED])
    more = len(groups) - MAX_GROUPS_NAMED
    return f"{shown} and {more} more" if more > 0 else shown


def _settle_unreadable(
    groups: dict[str, _GroupFacts],
    answers: Mapping[Any, Any],
    domain: str | None,
    skipped: list[str],
) -> None:
    """Decide what Cloud Identity's ambiguous 403 means for each group that got it.

    The service account is expected to read every group of the requester's own domain. If one
    cannot be read, either the account lacks Groups Reader or a binding names a group that no
    longer exists; both need an administrator, and "nobody is eligible" would hide that (and
    turn every request through the group into a wrong "not eligible"): an error naming the
    group and the role. A group of another domain (a partner's) is outside what the service
    can read: it grants nobody, and it is dropped from `groups` and added to `skipped`.
    """
    unreadable: dict[str, _GroupUnreadable] = {}
    for key, answer in answers.items():
        if isinstance(answer, _GroupUnreadable):
            unreadable.setdefault(key if isinstance(key, str) else key[1], answer)
    own = sorted(g for g in unreadable if domain and _domain(g) == domain)
    if own:
        raise GoogleError(
            f"Cloud Identity will not show the group {_named(own)} of the requester's domain "
            f"{domain} ({quote_error(unreadable[own[0]].detail)}): the service account needs "
            "the Groups Reader admin role (grant it in the Google Admin console), or an "
            "eligible binding names a group that does not exist (correct or remove it); "
            "eligibility through the group cannot be judged until then",
            status=403,
        )
    for group in sorted(unreadable):
        if group in groups:
            log.warning(
                "group %s of another domain is not visible to Cloud Identity (%s): its members "
                "are not counted", group, unreadable[group].detail,
            )
            del groups[group]
            skipped.append(group)


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
