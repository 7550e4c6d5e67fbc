"""Fake Cloud Asset (effective policies, Policy Analyzer) and Cloud Identity Groups endpoints.

The shapes follow the public REST references and the google-cloud-asset REST transport:

- `GET /v1/{scope}/effectiveIamPolicies:batchGet?names=…` → `policyResults[]` with the policy of
  each named resource and of its ancestors up to `scope`; a name outside `scope` is `404
  NOT_FOUND`, as the real API answers ("No resource found in resource search … in requested
  scope …").
- `GET /v1/{scope}:analyzeIamPolicy?analysisQuery.…` (dotted camelCase query parameters) →
  `mainAnalysis.analysisResults[]`; enums as integers because the REST transport asks for
  `$alt=json;enum-encoding=int`. Queries are counted per day and limited like the free tier of
  Policy Analyzer (20 per organization per day), so tests can assert how many were spent.
  A resource that does not exist is `400 INVALID_ARGUMENT`, as Policy Analyzer answers it;
  `executionTimeout` is honoured when an analysis is made slow (`set_analysis_duration`).
- Cloud Identity Groups v1: `groups:lookup`, `memberships:lookup`,
  `memberships:checkTransitiveMembership`, `memberships` (list) and
  `memberships:searchTransitiveMemberships`. A group that does not exist, and every group
  when the world's `groups_reader` is off, is Cloud Identity's ambiguous `403` `Error(2028)`.
  And the searches by member, `groups/-/memberships:searchDirectGroups` and
  `…:searchTransitiveGroups` (`query` a CEL conjunction that must name `member_key_id` and a
  label, e.g. `member_key_id == 'a@x' && 'cloudidentity.googleapis.com/groups.discussion_forum'
  in labels`), paged (200 by default, at most 1000). As the reference says, the direct search
  silently leaves out groups the caller may not read (all of them without `groups_reader`, and
  groups of other accounts, `add_foreign_membership`), while the transitive search answers
  `403` unless the caller may read every group of the member. The transitive methods need
  Cloud Identity Premium (or Workspace Enterprise): `set_identity_premium(world, False)` makes
  them answer `403 PERMISSION_DENIED`.

Anything the fake does not understand is answered `400` rather than guessed, so a client that
sends something unexpected fails loudly in tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jitaccess_sandbox.fake_google import FakeRequest, Route, google_error
from jitaccess_sandbox.world import GoogleWorld
from webhook.core.conditions import read_activation

JSON = dict[str, Any]

CRM = "//cloudresourcemanager.googleapis.com/"

#: Free-tier Policy Analyzer limit (queries per organization per day).
ANALYZER_QUERIES_PER_DAY = 20

#: `ConditionEvaluation.EvaluationValue` as the REST transport's integer enums.
_EVAL_TRUE, _EVAL_FALSE, _EVAL_CONDITIONAL = 1, 2, 3

_SCOPE = r"(?P<scope>(?:organizations|folders|projects)/[^/:]+)"
_GROUP = r"(?P<group>groups/[^/:]+)"

_ANALYZE_PARAMS = {
    "analysisQuery.resourceSelector.fullResourceName",
    "analysisQuery.identitySelector.identity",
    "analysisQuery.accessSelector.roles",
    "analysisQuery.options.expandGroups",
    "analysisQuery.options.expandRoles",
    "analysisQuery.options.expandResources",
    "analysisQuery.options.outputResourceEdges",
    "analysisQuery.options.outputGroupEdges",
    "analysisQuery.options.analyzeServiceAccountImpersonation",
    "analysisQuery.conditionContext.accessTime",
    "executionTimeout",
}


# --------------------------------------------------------------------------------------------
# Per-world state of this module (quota counters)


@dataclass
class AnalyzerQuota:
    """Policy Analyzer queries per UTC day, and the daily limit (None = unlimited)."""

    per_day: int | None = ANALYZER_QUERIES_PER_DAY
    used: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, day: str) -> bool:
        """Count one query for `day`; False when the day's quota is already spent."""
        with self.lock:
            if self.per_day is not None and self.used.get(day, 0) >= self.per_day:
                return False
            self.used[day] = self.used.get(day, 0) + 1
            return True


def analyzer_quota(world: GoogleWorld) -> AnalyzerQuota:
    """The Policy Analyzer quota state kept alongside a world (created on first use)."""
    # Kept in the instance dict rather than as a GoogleWorld field: the world module belongs to
    # the shared sandbox and this counter only concerns the Asset endpoints.
    quota = world.__dict__.get("_analyzer_quota")
    if not isinstance(quota, AnalyzerQuota):
        quota = world.__dict__.setdefault("_analyzer_quota", AnalyzerQuota())
    assert isinstance(quota, AnalyzerQuota)
    return quota


def _today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def analyzer_queries(world: GoogleWorld, day: str | None = None) -> int:
    """How many Policy Analyzer queries the world has answered on `day` (default: today, UTC)."""
    quota = analyzer_quota(world)
    with quota.lock:
        return quota.used.get(day or _today(), 0)


def set_analyzer_quota(world: GoogleWorld, per_day: int | None) -> None:
    """Change the daily Policy Analyzer limit (None = unlimited, e.g. Security Command Center)."""
    analyzer_quota(world).per_day = per_day


def set_analysis_duration(world: GoogleWorld, seconds: float) -> None:
    """Make every Policy Analyzer query take `seconds` of real time (0: answer at once).

    A query with an `executionTimeout` shorter than that answers when the timeout is reached,
    with what it found by then: the policy of the selected resource itself, not its ancestors'
    (`fullyExplored: false`). A query without one runs for the whole `seconds`, however long
    its client is prepared to wait, as the real analysis runs on until the server's deadline.
    """
    world.__dict__["_analysis_seconds"] = float(seconds)


def set_identity_premium(world: GoogleWorld, premium: bool) -> None:
    """Whether the account has Cloud Identity Premium (the transitive methods need it)."""
    world.__dict__["_identity_premium"] = bool(premium)


def _premium(world: GoogleWorld) -> bool:
    return world.__dict__.get("_identity_premium", True) is not False


def add_foreign_membership(world: GoogleWorld, member: str, group: str) -> None:
    """Make `member` a member of `group`, a group of another Cloud Identity account.

    This service's caller cannot read such a group: `groups:lookup` answers it with the
    ambiguous 403, the direct search leaves it out, and the transitive search of the member
    answers 403 (the caller must be able to read every group of the member).
    """
    foreign: dict[str, set[str]] = world.__dict__.setdefault("_foreign_memberships", {})
    foreign.setdefault(member.lower(), set()).add(group.lower())


def _foreign_groups(world: GoogleWorld, member: str) -> set[str]:
    foreign = world.__dict__.get("_foreign_memberships", {})
    return set(foreign.get(member.lower(), set())) if isinstance(foreign, dict) else set()


def _analysis_seconds(world: GoogleWorld) -> float:
    seconds = world.__dict__.get("_analysis_seconds", 0.0)
    return seconds if isinstance(seconds, float) else 0.0


# --------------------------------------------------------------------------------------------
# Helpers


def _full_name(resource: str) -> str:
    return CRM + resource


def _resolve_scope(world: GoogleWorld, scope: str) -> str | None:
    """The world resource named by a scope (`projects/NUMBER` maps to `projects/ID`)."""
    if scope.startswith("projects/"):
        ident = scope.removeprefix("projects/")
        for project_id, number in world.project_numbers.items():
            if number == ident:
                return f"projects/{project_id}"
    return scope if world.exists(scope) else None


def _within(world: GoogleWorld, resource: str, scope: str) -> list[str]:
    """`resource` and its ancestors up to and including `scope`; [] when outside `scope`."""
    chain = world.ancestry(resource)
    if scope not in chain:
        return []
    return chain[: chain.index(scope) + 1]


def _policy_if_any(world: GoogleWorld, resource: str) -> JSON | None:
    if resource not in world.policies:
        return None
    policy = world.get_policy(resource)
    return policy if policy.get("bindings") else None


def _unsupported(query: dict[str, list[str]], allowed: set[str]) -> tuple[int, JSON] | None:
    """A 400 naming the parameters the fake does not know (so clients fail loudly), or None."""
    unknown = sorted(set(query) - allowed - {"$alt", "alt", "prettyPrint"})
    if unknown:
        return google_error(
            400, f"fake Google: unsupported parameters {unknown}", "INVALID_ARGUMENT"
        )
    return None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[-1].lower() == "true"


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int | None:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not text.startswith("offset:") or not text[7:].isdigit():
        return None
    return int(text[7:])


def _page(
    items: list[JSON], query: dict[str, list[str]], *, default: int, maximum: int, key: str
) -> tuple[int, JSON]:
    raw_size = query.get("pageSize", [str(default)])[-1]
    offset = _offset(query.get("pageToken", [""])[-1])
    if not raw_size.isdigit() or offset is None:
        return google_error(400, "Invalid pageSize or pageToken.", "INVALID_ARGUMENT")
    size = min(int(raw_size) or default, maximum)
    body: JSON = {key: items[offset : offset + size]}
    if offset + size < len(items):
        body["nextPageToken"] = _token(offset + size)
    return 200, body


def _member_id(group_id: str, email: str) -> str:
    return hashlib.sha256(f"{group_id}|{email}".encode()).hexdigest()[:20]


def _user_id(email: str) -> str:
    return str(int(hashlib.sha256(email.encode()).hexdigest()[:15], 16))


# --------------------------------------------------------------------------------------------
# Cloud Asset


#: The etag IAM gives a policy that was never set.
_EMPTY_ETAG = "ACAB"


def _batch_get(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"names"})
    if refused:
        return refused
    scope_name = req.match["scope"]
    scope = _resolve_scope(world, scope_name)
    names = req.query.get("names", [])
    if not names:
        return google_error(
            400, "Request contains an invalid argument: names is required.", "INVALID_ARGUMENT"
        )
    if len(names) > 20:
        return google_error(
            400,
            "A maximum of 20 resources' effective policies can be retrieved in a batch.",
            "INVALID_ARGUMENT",
        )
    results: list[JSON] = []
    for name in names:
        resource = name.removeprefix(CRM) if name.startswith(CRM) else None
        chain = (
            _within(world, resource, scope)
            if resource is not None and scope is not None and world.exists(resource)
            else []
        )
        if not chain:
            return google_error(
                404,
                f"No resource found in resource search for <{name}> in requested scope "
                f"<{scope_name}>; when searching resource hierarchy for <{name}>, please check "
                "the scope or the supported types.",
                "NOT_FOUND",
            )
        # Every resource of the chain, nearest first, as the API documents ("policies[i]'s
        # attached resource is the child of policies[i+1]'s"): one without bindings carries an
        # empty policy, so the attached resources spell out the project's ancestry.
        policies = []
        for attached in chain:
            policy = _policy_if_any(world, attached)
            if policy is None:
                policy = {"version": 1, "etag": _EMPTY_ETAG}
            policies.append({"attachedResource": _full_name(attached), "policy": policy})
        results.append({"fullResourceName": name, "policies": policies})
    return 200, {"policyResults": results}


def _expand(world: GoogleWorld, group: str) -> tuple[list[str], list[JSON]]:
    """Identities reachable from a group (nested groups included) and the group edges."""
    identities: list[str] = []
    edges: list[JSON] = []
    seen: set[str] = set()
    todo = [group.lower()]
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        for member in sorted(world.groups.get(current, set())):
            kind = "group" if member in world.groups else "user"
            name = f"{kind}:{member}"
            edges.append({"sourceNode": f"group:{current}", "targetNode": name})
            if name not in identities:
                identities.append(name)
            if kind == "group":
                todo.append(member)
    return identities, edges


def _condition_value(condition: JSON | None, access_time: str | None) -> int | None:
    """How Policy Analyzer would evaluate a binding's condition at `access_time`.

    Only the time can be decided: a window that does not hold makes the condition false; one
    that holds decides it only when nothing else (a resource clause) is asked.
    """
    if not condition:
        return None
    activation = read_activation(str(condition.get("expression", "")))
    if activation is not None and access_time:
        try:
            from datetime import datetime

            moment = datetime.fromisoformat(access_time.replace("Z", "+00:00"))
        except ValueError:
            return _EVAL_CONDITIONAL
        if not activation.start <= moment < activation.end:
            return _EVAL_FALSE
        return _EVAL_CONDITIONAL if activation.resource_clauses else _EVAL_TRUE
    return _EVAL_CONDITIONAL


def _invalid(field_name: str, description: str) -> tuple[int, JSON]:
    """Cloud Asset's 400 for a query it refuses: a generic message, the reason in a detail."""
    return 400, {
        "error": {
            "code": 400,
            "message": "Some specified value(s) are invalid.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": field_name, "description": description}],
                }
            ],
        }
    }


_DURATION = re.compile(r"(?P<seconds>\d+)(?P<fraction>\.\d{1,9})?s")


def _execution_timeout(raw: str | None) -> float | None:
    """Seconds of a JSON Duration (`"5s"`, `"1.5s"`); None when absent; -1 when malformed."""
    if raw is None:
        return None
    match = _DURATION.fullmatch(raw)
    if match is None:
        return -1.0
    return float(match["seconds"] + (match["fraction"] or ""))


def _analyze(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    query = req.query
    refused = _unsupported(query, _ANALYZE_PARAMS)
    if refused:
        return refused
    scope_name = req.match["scope"]
    scope = _resolve_scope(world, scope_name)
    if scope is None:
        return google_error(
            403, f"The caller does not have permission on {scope_name}.", "PERMISSION_DENIED"
        )
    roles = query.get("analysisQuery.accessSelector.roles", [])
    if len(roles) > 10:
        return _invalid(
            "access_selector",
            "In one request, the total number of roles and permissions should be equal or less "
            "than 10. If you have more than that, please split your request into multiple ones.",
        )
    execution_timeout = _execution_timeout(query.get("executionTimeout", [None])[-1])
    if execution_timeout is not None and execution_timeout < 0:
        return google_error(
            400,
            "Invalid value at 'execution_timeout' (type.googleapis.com/google.protobuf.Duration), "
            f"\"{query['executionTimeout'][-1]}\"",
            "INVALID_ARGUMENT",
        )
    selected = query.get("analysisQuery.resourceSelector.fullResourceName", [""])[-1]
    if selected:
        resource = selected.removeprefix(CRM) if selected.startswith(CRM) else ""
        if resource.startswith("projects/"):
            resource = _resolve_scope(world, resource) or resource
        if not world.exists(resource):
            # Policy Analyzer refuses a resource that does not exist with 400 rather than 404
            # (jit-access reads this answer as "no access"). The description's wording is the
            # fake's own; the status and the generic message are those of Cloud Asset's 400s.
            return _invalid(
                "analysis_query.resource_selector.full_resource_name",
                f"The resource {selected} does not exist.",
            )
    identity = query.get("analysisQuery.identitySelector.identity", [""])[-1].lower()
    expand_groups = _flag(query, "analysisQuery.options.expandGroups")
    group_edges = _flag(query, "analysisQuery.options.outputGroupEdges")
    if identity and expand_groups:
        return google_error(
            400, "expand_groups is not allowed with an identity selector.", "INVALID_ARGUMENT"
        )
    if not analyzer_quota(world).take(_today()):
        return google_error(
            429,
            "Quota exceeded for quota metric 'Policy Analyzer analysis queries' and limit "
            f"'{ANALYZER_QUERIES_PER_DAY} per organization per day' of service "
            "'cloudasset.googleapis.com'.",
            "RESOURCE_EXHAUSTED",
        )
    access_time = query.get("analysisQuery.conditionContext.accessTime", [None])[-1]
    if selected:
        attached = _within(world, resource, scope)
    else:
        attached = [r for r in [world.organization, *world.parents] if _within(world, r, scope)]
    explored = True
    seconds = _analysis_seconds(world)
    if seconds > 0:
        if execution_timeout is not None and execution_timeout < seconds:
            time.sleep(execution_timeout)
            attached, explored = attached[:1], False  # cut short: what was found by then
        else:
            time.sleep(seconds)

    results: list[JSON] = []
    for where in attached:
        policy = _policy_if_any(world, where)
        for binding in (policy or {}).get("bindings", []):
            if roles and binding.get("role") not in roles:
                continue
            members = [str(m) for m in binding.get("members", [])]
            identities: list[str] = []
            edges: list[JSON] = []
            if identity:
                reached = any(
                    m.lower() == identity
                    or (
                        m.lower().startswith("group:")
                        and identity.startswith("user:")
                        and world.is_member(m[6:], identity[5:], transitive=True)
                    )
                    for m in members
                )
                if not reached:
                    continue
                identities = [identity]
            else:
                for member in members:
                    if member not in identities:
                        identities.append(member)
                    if expand_groups and member.lower().startswith("group:"):
                        more, more_edges = _expand(world, member[6:])
                        identities.extend(i for i in more if i not in identities)
                        edges.extend(more_edges)
            acl: JSON = {
                "resources": [{"fullResourceName": selected or _full_name(where)}],
                "accesses": [{"role": binding.get("role", "")}],
            }
            value = _condition_value(binding.get("condition"), access_time)
            if value is not None:
                acl["conditionEvaluation"] = {"evaluationValue": value}
            identity_list: JSON = {"identities": [{"name": i} for i in identities]}
            if group_edges and edges:
                identity_list["groupEdges"] = edges
            results.append(
                {
                    "attachedResourceFullName": _full_name(where),
                    "iamBinding": binding,
                    "accessControlLists": [acl],
                    "identityList": identity_list,
                    "fullyExplored": True,
                }
            )
    echo: JSON = {"scope": scope_name}
    if selected:
        echo["resourceSelector"] = {"fullResourceName": selected}
    if roles:
        echo["accessSelector"] = {"roles": roles}
    return 200, {
        "mainAnalysis": {
            "analysisQuery": echo, "analysisResults": results, "fullyExplored": explored
        },
        "fullyExplored": explored,
    }


# --------------------------------------------------------------------------------------------
# Cloud Identity Groups


def _group_email(world: GoogleWorld, req: FakeRequest) -> str | None:
    return world.group_by_id(req.match["group"])


def _unknown_group(resource: str) -> tuple[int, JSON]:
    """Cloud Identity's answer for a group the caller may not read, or that does not exist.

    It does not say "not found": a group that does not exist, a group of another account and
    a caller without the Groups Reader admin role all get this 403, with a ResourceInfo detail
    naming the resource as the request named it (`groups/ID`, or the email for
    `groups:lookup`).
    """
    message = f"Error(2028): Permission denied for resource {resource} (or it may not exist)."
    return 403, {
        "error": {
            "code": 403,
            "message": message,
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                    "resourceType": "cloudidentity.googleapis.com/Group",
                    "resourceName": resource,
                    "owner": "domain:cloudidentity.googleapis.com",
                    "description": message,
                }
            ],
        }
    }


def _not_found_group(req: FakeRequest) -> tuple[int, JSON]:
    return _unknown_group(req.match["group"])


def _group_email_if_readable(world: GoogleWorld, req: FakeRequest) -> str | None:
    """The email of the request's `groups/ID`, or None when the caller may not read it."""
    return _group_email(world, req) if world.groups_reader else None


def _groups_lookup(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"groupKey.id", "groupKey.namespace"})
    if refused:
        return refused
    email = req.query.get("groupKey.id", [""])[-1].lower()
    if not email:
        return google_error(
            400, "Request contains an invalid argument: groupKey.id.", "INVALID_ARGUMENT"
        )
    gid = world.group_ids.get(email) if world.groups_reader else None
    if gid is None:
        return _unknown_group(req.query["groupKey.id"][-1])
    return 200, {"name": gid}


def _membership_lookup(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"memberKey.id", "memberKey.namespace"})
    if refused:
        return refused
    group = _group_email_if_readable(world, req)
    if group is None:
        return _not_found_group(req)
    member = req.query.get("memberKey.id", [""])[-1].lower()
    if not member:
        return google_error(
            400, "Request contains an invalid argument: memberKey.id.", "INVALID_ARGUMENT"
        )
    if not world.is_member(group, member, transitive=False):
        return google_error(404, "Error(4006): Membership does not exist.", "NOT_FOUND")
    gid = req.match["group"]
    return 200, {"name": f"{gid}/memberships/{_member_id(gid, member)}"}


_MEMBER_QUERY = re.compile(
    r"""\s*member_key_id\s*==\s*(?P<q>['"])(?P<id>(?:\\.|(?!(?P=q)).)+)(?P=q)\s*"""
)


def _check_transitive(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"query"})
    if refused:
        return refused
    if not _premium(world):
        return _not_premium()
    group = _group_email_if_readable(world, req)
    if group is None:
        return _not_found_group(req)
    match = _MEMBER_QUERY.fullmatch(req.query.get("query", [""])[-1])
    if match is None:
        return google_error(
            400,
            "Request contains an invalid argument: query must specify member_key_id.",
            "INVALID_ARGUMENT",
        )
    member = re.sub(r"\\(.)", r"\1", match["id"]).lower()
    return 200, {"hasMembership": world.is_member(group, member, transitive=True)}


def _list_memberships(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"pageSize", "pageToken", "view"})
    if refused:
        return refused
    group = _group_email_if_readable(world, req)
    if group is None:
        return _not_found_group(req)
    view = req.query.get("view", ["BASIC"])[-1]
    if view not in ("BASIC", "FULL", "VIEW_UNSPECIFIED"):
        return google_error(400, f"Invalid value for view: {view}", "INVALID_ARGUMENT")
    gid = req.match["group"]
    items: list[JSON] = []
    for member in sorted(world.groups.get(group, set())):
        item: JSON = {
            "name": f"{gid}/memberships/{_member_id(gid, member)}",
            "preferredMemberKey": {"id": member},
            "roles": [{"name": "MEMBER"}],
        }
        if view == "FULL":
            item["type"] = "GROUP" if member in world.groups else "USER"
            item["createTime"] = "2024-01-01T00:00:00Z"
            item["updateTime"] = "2024-01-01T00:00:00Z"
        items.append(item)
    full = view == "FULL"
    return _page(
        items,
        req.query,
        default=50 if full else 200,
        maximum=500 if full else 1000,
        key="memberships",
    )


def _search_transitive(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    refused = _unsupported(req.query, {"pageSize", "pageToken"})
    if refused:
        return refused
    if not _premium(world):
        return _not_premium()
    group = _group_email_if_readable(world, req)
    if group is None:
        return _not_found_group(req)
    direct = set(world.groups.get(group, set()))
    indirect: set[str] = set()
    for member in direct:
        if member in world.groups:
            indirect.update(name.split(":", 1)[1] for name in _expand(world, member)[0])
    relations: dict[str, str] = {}
    for member in direct | indirect:
        if member in direct and member in indirect:
            relations[member] = "DIRECT_AND_INDIRECT"
        else:
            relations[member] = "DIRECT" if member in direct else "INDIRECT"
    items: list[JSON] = []
    for member in sorted(relations):
        is_group = member in world.groups
        items.append(
            {
                "member": world.group_ids[member] if is_group else f"users/{_user_id(member)}",
                "preferredMemberKey": [{"id": member}],
                "relationType": relations[member],
                "roles": [{"role": "MEMBER"}],
            }
        )
    return _page(items, req.query, default=200, maximum=1000, key="memberships")


def _not_premium() -> tuple[int, JSON]:
    """The transitive methods' answer for an account without Cloud Identity Premium: the
    reference says 403 PERMISSION_DENIED (the message is the generic one)."""
    return google_error(403, "The caller does not have permission", "PERMISSION_DENIED")


_DISCUSSION_FORUM = "cloudidentity.googleapis.com/groups.discussion_forum"
#: The labels of every group of the fake world (each is a Google Group: a discussion forum).
_GROUP_LABELS = {_DISCUSSION_FORUM: ""}
_QUOTED = r"""(?P<q>['"])(?P<value>(?:\\.|(?!(?P=q)).)*)(?P=q)"""
_CLAUSES = {
    "member": re.compile(rf"member_key_id\s*==\s*{_QUOTED}"),
    "namespace": re.compile(rf"member_key_namespace\s*==\s*{_QUOTED}"),
    "label": re.compile(rf"{_QUOTED}\s+in\s+labels"),
    "parent": re.compile(rf"parent\s*==\s*{_QUOTED}"),
}
_ORDER_BY = {"", "group_name", "group_name asc", "group_name desc", "groupKey", "groupKey asc",
             "groupKey desc"}


def _invalid_query() -> tuple[int, JSON]:
    return google_error(400, "Request contains an invalid argument.", "INVALID_ARGUMENT")


def _search_query(raw: str) -> tuple[str, list[str]] | None:
    """(member, labels) of a search query (`member_key_id == … && '…' in labels`), or None.

    Both are required, as the reference says; `parent == 'customers/…'` may narrow the search
    (the fake world is one customer). Clauses are split on `&&` outside quotes.
    """
    clauses: list[str] = []
    current, quote = "", ""
    i = 0
    while i < len(raw):
        ch = raw[i]
        if quote:
            current += ch
            if ch == "\\" and i + 1 < len(raw):
                current += raw[i + 1]
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current += ch
        elif raw.startswith("&&", i):
            clauses.append(current.strip())
            current = ""
            i += 1
        else:
            current += ch
        i += 1
    clauses.append(current.strip())
    member, labels = None, []
    for clause in clauses:
        found = None
        for kind, pattern in _CLAUSES.items():
            match = pattern.fullmatch(clause)
            if match is not None:
                found = kind, re.sub(r"\\(.)", r"\1", match["value"])
                break
        if found is None:
            return None
        kind, value = found
        if kind == "member":
            member = value.lower()
        elif kind == "label":
            labels.append(value)
        elif kind == "namespace":
            return None  # identity-mapped groups: the fake world has none
        elif not value.startswith("customers/"):
            return None
    if not member or not labels:
        return None
    return member, labels


def _groups_of(world: GoogleWorld, member: str, *, transitive: bool) -> dict[str, str]:
    """Groups `member` is in, by email, with the relation (DIRECT, INDIRECT or both)."""
    direct = {g for g, members in world.groups.items() if member in members}
    if not transitive:
        return {g: "DIRECT" for g in direct}
    out: dict[str, str] = {}
    for g in world.groups:
        if world.is_member(g, member, transitive=True):
            nested = any(
                m in world.groups and world.is_member(m, member, transitive=True)
                for m in world.groups[g]
            )
            if g in direct:
                out[g] = "DIRECT_AND_INDIRECT" if nested else "DIRECT"
            else:
                out[g] = "INDIRECT"
    return out


def _search_groups(world: GoogleWorld, req: FakeRequest, *, transitive: bool) -> tuple[int, Any]:
    allowed = {"query", "pageSize", "pageToken"} | (set() if transitive else {"orderBy"})
    refused = _unsupported(req.query, allowed)
    if refused:
        return refused
    if req.match["group"] != "groups/-":
        return _invalid_query()  # these methods search across all groups: the parent is `-`
    if transitive and not _premium(world):
        return _not_premium()
    parsed = _search_query(req.query.get("query", [""])[-1])
    order = req.query.get("orderBy", [""])[-1]
    if parsed is None or order not in _ORDER_BY:
        return _invalid_query()
    member, labels = parsed
    relations = _groups_of(world, member, transitive=transitive)
    foreign = _foreign_groups(world, member)
    if transitive and ((relations and not world.groups_reader) or foreign):
        # The caller must be able to read every transitive group of the member.
        return google_error(403, "The caller does not have permission", "PERMISSION_DENIED")
    if not world.groups_reader:
        relations = {}  # silently left out: groups the caller may not read
    shown = [g for g in relations if all(label in _GROUP_LABELS for label in labels)]
    shown.sort(reverse=order.endswith(" desc"))
    items: list[JSON] = []
    for email in shown:
        gid = world.group_ids[email]
        item: JSON = {
            "group": gid,
            "groupKey": {"id": email},
            "displayName": email.split("@", 1)[0],
            "labels": dict(_GROUP_LABELS),
        }
        if transitive:
            item["relationType"] = relations[email]
            item["roles"] = [{"role": "MEMBER"}]
        else:
            item["membership"] = f"{gid}/memberships/{_member_id(gid, member)}"
            item["roles"] = [{"name": "MEMBER"}]
        items.append(item)
    status, body = _page(items, req.query, default=200, maximum=1000, key="memberships")
    if status == 200 and not body.get("memberships"):
        body.pop("memberships", None)  # proto3 JSON leaves out an empty list
    return status, body


def _search_direct_groups(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    return _search_groups(world, req, transitive=False)


def _search_transitive_groups(world: GoogleWorld, req: FakeRequest) -> tuple[int, Any]:
    return _search_groups(world, req, transitive=True)


# --------------------------------------------------------------------------------------------


def routes(world: GoogleWorld) -> list[Route]:
    """The route table of the Cloud Asset and Cloud Identity endpoints over `world`."""

    def bind(handler: Any) -> Any:
        return lambda req: handler(world, req)

    table: Iterable[tuple[str, str, Any]] = (
        ("GET", rf"/v1/{_SCOPE}/effectiveIamPolicies:batchGet", _batch_get),
        ("GET", rf"/v1/{_SCOPE}:analyzeIamPolicy", _analyze),
        ("GET", r"/v1/groups:lookup", _groups_lookup),
        ("GET", rf"/v1/{_GROUP}/memberships:lookup", _membership_lookup),
        ("GET", rf"/v1/{_GROUP}/memberships:checkTransitiveMembership", _check_transitive),
        ("GET", rf"/v1/{_GROUP}/memberships:searchTransitiveMemberships", _search_transitive),
        ("GET", rf"/v1/{_GROUP}/memberships:searchDirectGroups", _search_direct_groups),
        ("GET", rf"/v1/{_GROUP}/memberships:searchTransitiveGroups", _search_transitive_groups),
        ("GET", rf"/v1/{_GROUP}/memberships", _list_memberships),
    )
    return [(method, re.compile(pattern), bind(handler)) for method, pattern, handler in table]
