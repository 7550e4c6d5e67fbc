"""Fake routes for IAM policies (Resource Manager v3), Cloud Logging and IAM policy search.

Served in the REST wire format the client libraries send and parse (camelCase JSON; etags as
base64 strings; errors as `{"error": {"code", "message", "status"}}`):

- `POST /v3/{projects|folders|organizations}/{id}:getIamPolicy` and `:setIamPolicy`
  (Resource Manager v3), with the checks real IAM makes: the etag (409 `ABORTED`, or 412
  `FAILED_PRECONDITION` as other IAM surfaces answer, in the `stale_etag_status` fault mode),
  policy versions and conditions, basic roles with conditions, roles that cannot be granted on
  the resource (400 `INVALID_ARGUMENT`), unknown resources (403 `PERMISSION_DENIED`);
- `POST /v2/entries:write` (Cloud Logging), merging request-level `logName`, `resource` and
  `labels` into the entries as the API does, and keeping one entry per log, `insertId` and
  `timestamp` (Logging shows such duplicates once);
- `POST /v2/entries:list` (Cloud Logging) with the subset of the Logging query language the
  service uses — `logName`, `insertId` and `labels.KEY` compared with `=`, `timestamp` with
  `>=`, `>`, `<=`, `<`, `severity` (by rank, e.g. `severity>=ALERT`) likewise, terms joined
  by `AND`, `OR` inside parentheses — and `resourceNames`
  (projects), `orderBy` (`timestamp asc|desc`), `pageSize`, `pageToken`. Any other filter is
  answered 400 naming what the fake does not understand, so a test cannot pass on a query the
  real API would read differently. Entries with the same `insertId` and `timestamp` in one
  project are shown once, as Cloud Logging does;
- `GET /v1/{scope}:searchAllIamPolicies` (Cloud Asset), with `query`, `assetTypes`, `pageSize`
  and `pageToken`.

State the world does not hold (request reasons, custom roles) lives in an `IamState` per world,
reached through `iam_state(world)`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import re
import shlex
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jitaccess_sandbox.fake_google import FakeRequest, Route, google_error
from jitaccess_sandbox.world import EtagMismatch, GoogleWorld

JSON = dict[str, Any]

#: Basic roles, which IAM refuses to combine with a condition.
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

#: Predefined roles that exist only on organizations (IAM refuses them on projects and folders).
ORGANIZATION_ONLY_ROLES = frozenset(
    {
        "roles/resourcemanager.organizationAdmin",
        "roles/resourcemanager.organizationViewer",
        "roles/billing.admin",
        "roles/billing.creator",
        "roles/orgpolicy.policyAdmin",
        "roles/iam.organizationRoleAdmin",
        "roles/securitycenter.admin",
    }
)

#: Predefined roles that can be granted on organizations and folders but not on projects.
FOLDER_OR_ORGANIZATION_ROLES = frozenset(
    {"roles/resourcemanager.folderAdmin", "roles/resourcemanager.folderCreator"}
)

_PREDEFINED = re.compile(r"roles/[A-Za-z0-9_.]{3,64}")
_CUSTOM = re.compile(
    r"(?P<parent>(?:projects/[a-z0-9-]+|organizations/\d+))/roles/[A-Za-z0-9_.]{3,64}"
)

_CONCURRENT = (
    "There were concurrent policy changes. Please retry the whole read-modify-write with "
    "exponential backoff. The request's ETag '{sent}' did not match the current policy's ETag "
    "'{current}'."
)
_PRECONDITION = "Precondition check failed."
_NO_PERMISSION = "The caller does not have permission"

PROJECT_ASSET_TYPE = "cloudresourcemanager.googleapis.com/Project"
FOLDER_ASSET_TYPE = "cloudresourcemanager.googleapis.com/Folder"
ORGANIZATION_ASSET_TYPE = "cloudresourcemanager.googleapis.com/Organization"
_FULL_NAME_PREFIX = "//cloudresourcemanager.googleapis.com/"


@dataclass
class IamState:
    """What the fake IAM remembers besides the world: request reasons and custom roles."""

    #: (resource, `x-goog-request-reason` header or None) for every accepted setIamPolicy.
    request_reasons: list[tuple[str, str | None]] = field(default_factory=list)
    #: Custom roles that exist, e.g. `projects/p/roles/dbOperator`, `organizations/1/roles/x`.
    custom_roles: set[str] = field(default_factory=set)
    #: Predefined roles that do not exist (IAM answers 400 for them everywhere).
    unknown_roles: set[str] = field(default_factory=set)
    #: How setIamPolicy refuses a stale etag: 409 `ABORTED`, as Resource Manager does, or (a
    #: fault mode) 412 `FAILED_PRECONDITION`, as other IAM surfaces do.
    stale_etag_status: int = 409

    def stale_etag(self, sent: object, current: object) -> tuple[int, JSON]:
        """The answer to a setIamPolicy whose etag is not the current policy's."""
        if self.stale_etag_status == 412:
            return google_error(412, _PRECONDITION, "FAILED_PRECONDITION")
        return google_error(409, _CONCURRENT.format(sent=sent, current=current), "ABORTED")

    def reasons_for(self, resource: str) -> list[str | None]:
        """The request reasons of the accepted writes to one resource, in order."""
        return [reason for res, reason in list(self.request_reasons) if res == resource]


_STATES: dict[int, IamState] = {}
_STATES_LOCK = threading.Lock()


def iam_state(world: GoogleWorld) -> IamState:
    """The fake IAM state belonging to a world (created on first use, dropped with the world)."""
    key = id(world)
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = IamState()
            # A world is unhashable (a mutable dataclass), so key by id and forget the entry
            # when the world is collected, before its id can be reused.
            weakref.finalize(world, _STATES.pop, key, None)
        return state


# --------------------------------------------------------------------------------------------
# Helpers


def _body(request: FakeRequest) -> JSON | None:
    """The request body as a JSON object, or None when it is not one."""
    if not request.body:
        return {}
    try:
        parsed = json.loads(request.body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _invalid(message: str) -> tuple[int, JSON]:
    return google_error(400, message, "INVALID_ARGUMENT")


def _is_conditional(binding: JSON) -> bool:
    return isinstance(binding.get("condition"), dict) and bool(binding["condition"])


def _withcond_role(binding: JSON) -> str:
    """How IAM shows a conditional binding's role in a version-1 answer: `<role>_withcond_<h>`."""
    digest = hashlib.sha256(
        json.dumps(binding.get("condition"), sort_keys=True).encode()
    ).hexdigest()[:20]
    return f"{binding.get('role', '')}_withcond_{digest}"


def _as_version(policy: JSON, requested: int) -> JSON:
    """The policy formatted for the requested version, as IAM formats it.

    A version-3 policy asked for at version 1 comes back as version 1, with each conditional
    binding's condition dropped and its role renamed `<role>_withcond_<hash>` (IAM does not
    hide such bindings, but makes them unusable for a version-1 read-modify-write).
    """
    bindings = policy.get("bindings", [])
    conditional = any(_is_conditional(b) for b in bindings)
    out: JSON = {"etag": policy["etag"]}
    if conditional and requested < 3:
        out["version"] = 1
        out["bindings"] = [
            {"role": _withcond_role(b), "members": b.get("members", [])}
            if _is_conditional(b)
            else b
            for b in bindings
        ]
    else:
        out["version"] = 3 if conditional else 1
        out["bindings"] = bindings
    if not out["bindings"]:
        del out["bindings"]  # proto3 JSON omits empty repeated fields
    return out


def _role_problem(world: GoogleWorld, state: IamState, resource: str, role: str) -> str | None:
    """Why `role` cannot be granted on `resource` (IAM's wording), or None if it can."""
    kind = resource.split("/", 1)[0]
    if role in state.unknown_roles:
        return f"Role {role} does not exist."
    if _PREDEFINED.fullmatch(role):
        if role in ORGANIZATION_ONLY_ROLES and kind != "organizations":
            return f"Role {role} is not supported for this resource."
        if role in FOLDER_OR_ORGANIZATION_ROLES and kind == "projects":
            return f"Role {role} is not supported for this resource."
        return None
    match = _CUSTOM.fullmatch(role)
    if match is None:
        return f"Role {role} does not exist."
    # A custom role can be granted only on its own project, or within its organization.
    parent = match["parent"]
    in_hierarchy = parent in world.ancestry(resource)
    if role not in state.custom_roles or not in_hierarchy:
        return f"Role ({role}) does not exist in the resource's hierarchy."
    return None


_CEL_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_CEL_PREFIXES = frozenset({"r", "b", "br"})  # compared lower-cased


def _cel_word(ch: str) -> bool:
    return ch == "_" or (ch.isascii() and ch.isalnum())


def _cel_position(expression: str, at: int) -> str:
    line = expression.count("\n", 0, at) + 1
    column = at - (expression.rfind("\n", 0, at) + 1) + 1
    return f"ERROR: <input>:{line}:{column}"


@functools.lru_cache(maxsize=8192)
def _cel_syntax_error(expression: str) -> str | None:
    """The CEL parser's complaint about an expression's tokens or brackets, or None.

    Real IAM parses every condition on setIamPolicy and answers 400 `INVALID_ARGUMENT` with the
    parser's message. This checks what a careless composition of conditions breaks: string
    literals that do not close, and brackets that do not pair up once the `//` comments (to the
    end of the line) are gone. It is no full CEL parser.
    """
    awaited: list[tuple[str, int]] = []  # (closing bracket, index of its opener)
    i, n = 0, len(expression)
    while i < n:
        ch = expression[i]
        raw = False
        if expression.startswith("//", i):
            end = expression.find("\n", i)
            i = n if end < 0 else end
            continue
        if _cel_word(ch):
            j = i
            while j < n and _cel_word(expression[j]):
                j += 1
            if j >= n or expression[j] not in "\"'" or expression[i:j].lower() not in _CEL_PREFIXES:
                i = j
                continue
            raw, i, ch = "r" in expression[i:j].lower(), j, expression[j]
        if ch in "\"'":
            quote = expression[i : i + 3] if expression.startswith(ch * 3, i) else ch
            j = i + len(quote)
            while True:
                if j >= n or (len(quote) == 1 and expression[j] in "\r\n"):
                    return (
                        f"{_cel_position(expression, i)}: Syntax error: token recognition "
                        f"error at: '{expression[i:j][:40]}'"
                    )
                if expression[j] == "\\" and not raw:
                    j += 2
                elif expression.startswith(quote, j):
                    j += len(quote)
                    break
                else:
                    j += 1
            i = j
            continue
        if ch in _CEL_BRACKETS:
            awaited.append((_CEL_BRACKETS[ch], i))
        elif ch in ")]}":
            if not awaited or awaited[-1][0] != ch:
                expected = f"'{awaited[-1][0]}'" if awaited else "<EOF>"
                return (
                    f"{_cel_position(expression, i)}: Syntax error: mismatched input '{ch}' "
                    f"expecting {expected}"
                )
            awaited.pop()
        i += 1
    if awaited:
        bracket, opener = awaited[-1]
        return (
            f"{_cel_position(expression, n)}: Syntax error: missing '{bracket}' at '<EOF>' "
            f"(opened at {_cel_position(expression, opener).removeprefix('ERROR: ')})"
        )
    return None


def _validate_policy(
    world: GoogleWorld, state: IamState, resource: str, policy: JSON, current: JSON
) -> str | None:
    """Why IAM would refuse this policy for this resource, or None."""
    version = policy.get("version", 0)
    if version not in (0, 1, 3):
        return f"Invalid policy version {version!r}: valid values are 0, 1 and 3."
    bindings = policy.get("bindings", [])
    if not isinstance(bindings, list):
        return "Invalid JSON payload: bindings must be a list."
    checked_roles: set[str] = set()  # a large policy grants few distinct roles
    for binding in bindings:
        if not isinstance(binding, dict) or not isinstance(binding.get("role"), str):
            return "Invalid policy: every binding needs a role."
        role = binding["role"]
        members = binding.get("members", [])
        if not isinstance(members, list) or not members:
            return f"Invalid policy: binding for {role} has no members."
        if "_withcond_" in role:
            return (
                f"Role {role} is a version-1 rendering of a conditional binding; "
                "read and write the policy at version 3."
            )
        if _is_conditional(binding):
            condition = binding["condition"]
            if version != 3:
                return (
                    "Invalid policy: conditional role bindings require policy version 3 "
                    f"(binding for {role})."
                )
            if not isinstance(condition.get("expression"), str) or not condition["expression"]:
                return f"Invalid policy: the condition of the binding for {role} has no expression."
            syntax = _cel_syntax_error(condition["expression"])
            if syntax is not None:
                return f"Invalid condition expression for {role}: {syntax}"
            if role in BASIC_ROLES:
                return f"Invalid policy: conditions are not supported for the basic role {role}."
            if len(str(condition.get("title", ""))) > 100:
                return f"Invalid policy: condition title for {role} is longer than 100 characters."
            if len(str(condition.get("description", ""))) > 256:
                return (
                    f"Invalid policy: condition description for {role} is longer than "
                    "256 characters."
                )
        if role in checked_roles:
            continue
        problem = _role_problem(world, state, resource, role)
        if problem is not None:
            return problem
        checked_roles.add(role)
    had_conditions = any(_is_conditional(b) for b in current.get("bindings", []))
    if had_conditions and version != 3 and policy.get("etag"):
        return (
            "Invalid policy: the policy contains conditional role bindings; "
            "setIamPolicy must specify version 3."
        )
    return None


# --------------------------------------------------------------------------------------------
# Resource Manager v3: get/setIamPolicy


def _get_iam_policy(world: GoogleWorld) -> Any:
    def handler(request: FakeRequest) -> tuple[int, Any]:
        resource = f"{request.match['kind']}/{request.match['id']}"
        body = _body(request)
        if body is None:
            return _invalid("Invalid JSON payload received.")
        if not world.exists(resource):
            return google_error(403, _NO_PERMISSION, "PERMISSION_DENIED")
        options = body.get("options") or {}
        requested = options.get("requestedPolicyVersion", 0) if isinstance(options, dict) else 0
        if requested not in (0, 1, 3):
            return _invalid(f"Invalid requested policy version {requested!r}.")
        return 200, _as_version(world.get_policy(resource), requested)

    return handler


def _set_iam_policy(world: GoogleWorld) -> Any:
    def handler(request: FakeRequest) -> tuple[int, Any]:
        resource = f"{request.match['kind']}/{request.match['id']}"
        body = _body(request)
        if body is None or not isinstance(body.get("policy"), dict):
            return _invalid("Invalid JSON payload received: `policy` is required.")
        if not world.exists(resource):
            return google_error(403, _NO_PERMISSION, "PERMISSION_DENIED")
        state = iam_state(world)
        policy: JSON = body["policy"]
        # Validate and write under the world's lock so that the etag check and the write are one
        # step, as they are in IAM.
        with world._lock:
            current = world.get_policy(resource)
            sent = policy.get("etag")
            if sent and sent != current["etag"]:
                return state.stale_etag(sent, current["etag"])
            problem = _validate_policy(world, state, resource, policy, current)
            if problem is not None:
                return _invalid(problem)
            conditional = any(_is_conditional(b) for b in policy.get("bindings", []))
            try:
                stored = world.set_policy(resource, {**policy, "version": 3 if conditional else 1})
            except EtagMismatch:  # pragma: no cover - checked above under the same lock
                return state.stale_etag(sent, "?")
            state.request_reasons.append((resource, request.headers.get("x-goog-request-reason")))
        return 200, _as_version(stored, 3)

    return handler


# --------------------------------------------------------------------------------------------
# Cloud Logging v2: entries.write


_SEVERITIES = frozenset(
    {"DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"}
)


def _write_entries(world: GoogleWorld) -> Any:
    def handler(request: FakeRequest) -> tuple[int, Any]:
        body = _body(request)
        if body is None:
            return _invalid("Invalid JSON payload received.")
        entries = body.get("entries")
        if not isinstance(entries, list) or not entries:
            return _invalid("entries: at least one log entry is required.")
        merged: list[JSON] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                return _invalid(f"entries[{index}]: a log entry must be an object.")
            out = dict(entry)
            # The request's logName and resource are defaults for entries that lack them; its
            # labels are merged under each entry's own (entry labels win), as the API documents.
            for key in ("logName", "resource"):
                if key not in out and key in body:
                    out[key] = body[key]
            if isinstance(body.get("labels"), dict):
                out["labels"] = {**body["labels"], **(out.get("labels") or {})}
            if not isinstance(out.get("logName"), str) or "/logs/" not in out["logName"]:
                return _invalid(f"entries[{index}]: logName is required.")
            if not isinstance(out.get("resource"), dict) or not out["resource"].get("type"):
                return _invalid(f"entries[{index}]: resource is required.")
            labels = out.get("labels", {})
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                return _invalid(f"entries[{index}]: label values must be strings.")
            if out.get("severity", "DEFAULT") not in _SEVERITIES:
                return _invalid(f"entries[{index}]: unknown severity {out.get('severity')!r}.")
            merged.append(out)
        # Stored as written, duplicates included (as exports and sinks see them); queries
        # (`world.logs`) show entries with the same insertId and timestamp once.
        world.append_logs(merged)
        return 200, {}

    return handler


# --------------------------------------------------------------------------------------------
# Cloud Logging v2: entries.list


class FilterError(ValueError):
    """A Logging query the fake does not understand (its message says what and where)."""


#: Fields a comparison may name, and the operators the fake supports on each.
_STRING_FIELDS = ("logName", "insertId")
_TIME_OPERATORS: dict[str, Callable[[datetime, datetime], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|=|>|<|!=|:)|(?P<paren>[()])"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"""
)
#: A filter matches an entry: (entry, its effective timestamp) -> bool.
EntryTest = Callable[[JSON, datetime | None], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"unexpected text at offset {pos}: {text[pos:pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def _rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def parse_filter(text: str) -> EntryTest:
    """The fake's reading of a Logging query, or `FilterError` for anything outside its subset:
    `term (AND term)*` where a term is a comparison or `(comparison (OR comparison)*)`."""
    tokens = _tokens(text)
    if not tokens:
        raise FilterError("an empty filter matches everything; the service never sends one")
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise FilterError("the filter ends in the middle of a comparison")
        pos += 1
        return tokens[pos - 1]

    def comparison() -> EntryTest:
        kind, name = take()
        if kind != "word" or name in ("AND", "OR", "NOT"):
            raise FilterError(f"expected a field name, found {name!r}")
        op_kind, op = take()
        if op_kind != "op":
            raise FilterError(f"expected an operator after {name}, found {op!r}")
        value_kind, literal = take()
        if name == "severity":
            return _severity_test(op, value_kind, literal)
        if value_kind != "string":
            raise FilterError(f"the fake wants a quoted value after {name}{op}, found {literal!r}")
        value = _unquote(literal)
        if name == "timestamp":
            if op not in _TIME_OPERATORS:
                raise FilterError(f"operator {op!r} on timestamp is not supported by the fake")
            try:
                bound = _rfc3339(value)
            except ValueError as exc:
                raise FilterError(f"timestamp {value!r} is not an RFC 3339 time: {exc}") from None
            compare: Callable[[datetime, datetime], bool] = _TIME_OPERATORS[op]
            return lambda entry, ts: ts is not None and compare(ts, bound)
        if op != "=":
            raise FilterError(f"operator {op!r} on {name} is not supported by the fake (only =)")
        if name.startswith("labels.") and len(name) > len("labels."):
            key = name[len("labels."):]

            def label(entry: JSON, ts: datetime | None) -> bool:
                got = (entry.get("labels") or {}).get(key)
                # String comparisons of the Logging query language ignore case.
                return isinstance(got, str) and got.casefold() == value.casefold()

            return label
        if name in _STRING_FIELDS:

            def plain(entry: JSON, ts: datetime | None) -> bool:
                got = entry.get(name)
                return isinstance(got, str) and got.casefold() == value.casefold()

            return plain
        raise FilterError(f"field {name!r} is not supported by the fake")

    def term() -> EntryTest:
        token = peek()
        if token == ("paren", "("):
            take()
            alternatives = [comparison()]
            while peek() == ("word", "OR"):
                take()
                alternatives.append(comparison())
            if take() != ("paren", ")"):
                raise FilterError("expected ')' after the alternatives")
            return lambda entry, ts: any(t(entry, ts) for t in alternatives)
        return comparison()

    terms = [term()]
    while peek() is not None:
        word = take()
        if word != ("word", "AND"):
            # OR binds tighter than AND in the Logging query language; the fake asks for the
            # parentheses rather than guess.
            raise FilterError(
                f"expected AND between terms, found {word[1]!r} (the fake supports OR only "
                "inside parentheses)"
            )
        terms.append(term())
    return lambda entry, ts: all(t(entry, ts) for t in terms)


#: Severities in their order (Logging compares them by rank, not as strings).
_SEVERITY_RANK = {
    name: rank for rank, name in enumerate(
        ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT",
         "EMERGENCY")
    )
}


def _severity_test(op: str, value_kind: str, literal: str) -> EntryTest:
    """`severity>=ALERT` (the name bare or quoted): compared by rank, as Logging does."""
    name = _unquote(literal) if value_kind == "string" else literal
    if value_kind not in ("string", "word") or name.upper() not in _SEVERITY_RANK:
        raise FilterError(f"severity {literal!r} is not a severity name")
    ranks: dict[str, Callable[[int, int], bool]] = {
        ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "=": operator.eq,
    }
    if op not in ranks:
        raise FilterError(f"operator {op!r} on severity is not supported by the fake")
    bound = _SEVERITY_RANK[name.upper()]
    compare = ranks[op]

    def test(entry: JSON, ts: datetime | None) -> bool:
        rank = _SEVERITY_RANK.get(str(entry.get("severity", "DEFAULT")).upper())
        return rank is not None and compare(rank, bound)

    return test


def _wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _list_entries(world: GoogleWorld) -> Any:
    def handler(request: FakeRequest) -> tuple[int, Any]:
        body = _body(request)
        if body is None:
            return _invalid("Invalid JSON payload received.")
        unknown = set(body) - {"resourceNames", "filter", "orderBy", "pageSize", "pageToken"}
        if unknown:
            return _invalid(f"Invalid JSON payload received. Unknown name {sorted(unknown)[0]!r}.")
        names = body.get("resourceNames")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            return _invalid("resourceNames: at least one resource name is required.")
        projects = []
        for name in names:
            if not re.fullmatch(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]", name):
                return _invalid(f"resourceNames: {name!r} is not supported by the fake "
                                "(projects/ID only).")
            projects.append(name)
        try:
            test = parse_filter(str(body.get("filter", "")))
        except FilterError as exc:
            return _invalid(f"Unsupported filter (fake Logging): {exc}")
        order = str(body.get("orderBy", "timestamp asc")).strip().lower()
        if order not in ("timestamp asc", "timestamp desc"):
            return _invalid(f"orderBy {body.get('orderBy')!r} is not supported by the fake.")
        try:
            page_size = int(body.get("pageSize", 50))
            offset = int(body.get("pageToken") or 0)
        except (TypeError, ValueError):
            return _invalid("Invalid page size or page token.")
        if page_size < 0 or offset < 0:
            return _invalid("pageSize and pageToken must not be negative.")
        page_size = min(page_size or 50, 1000)

        matched: list[tuple[datetime, int, JSON]] = []
        seen: set[tuple[str, str, str]] = set()
        for index, (written, received) in enumerate(world.received_logs()):
            log_name = written.get("logName", "")
            project = next((p for p in projects if log_name.startswith(f"{p}/logs/")), None)
            if project is None:
                continue
            # As Cloud Logging shows it: with the time it was received, which is also its
            # timestamp when it was written without one.
            entry = {**written, "receiveTimestamp": _wire_time(received)}
            entry.setdefault("timestamp", entry["receiveTimestamp"])
            try:
                when = _rfc3339(entry["timestamp"])
            except ValueError:
                when = received
            insert_id, timestamp = entry.get("insertId"), entry.get("timestamp")
            if isinstance(insert_id, str) and isinstance(timestamp, str):
                # Same project, insertId and timestamp: Cloud Logging shows the first only.
                key = (project, insert_id, timestamp)
                if key in seen:
                    continue
                seen.add(key)
            if not test(entry, when):
                continue
            matched.append((when, index, entry))
        matched.sort(key=lambda m: (m[0], m[1]), reverse=order.endswith("desc"))
        page = [m[2] for m in matched[offset : offset + page_size]]
        out: JSON = {"entries": page} if page else {}
        if offset + page_size < len(matched):
            out["nextPageToken"] = str(offset + page_size)
        return 200, out

    return handler


# --------------------------------------------------------------------------------------------
# Cloud Asset v1: searchAllIamPolicies


def _asset_type(resource: str) -> str:
    kind = resource.split("/", 1)[0]
    return {
        "projects": PROJECT_ASSET_TYPE,
        "folders": FOLDER_ASSET_TYPE,
        "organizations": ORGANIZATION_ASSET_TYPE,
    }[kind]


def _parse_query(query: str) -> list[tuple[str, str]] | None:
    """`field:value` terms (values may be quoted phrases), or None if the query is not one."""
    try:
        tokens = shlex.split(query)
    except ValueError:
        return None
    terms: list[tuple[str, str]] = []
    for token in tokens:
        if token.upper() == "AND":
            continue
        name, sep, value = token.partition(":")
        if not sep or name not in ("policy", "policy.role.permissions", "resource") or not value:
            return None
        terms.append((name, value))
    return terms


def _binding_matches(binding: JSON, name: str, value: str) -> bool:
    if name == "policy":
        # The search is over the policy's text: roles, members and condition fields.
        return value.lower() in json.dumps(binding).lower()
    return False


def _search_all_iam_policies(world: GoogleWorld) -> Any:
    def handler(request: FakeRequest) -> tuple[int, Any]:
        scope = f"{request.match['kind']}/{request.match['id']}"
        if not world.exists(scope):
            return google_error(403, _NO_PERMISSION, "PERMISSION_DENIED")
        query = (request.query.get("query") or [""])[0]
        terms = _parse_query(query)
        if terms is None or any(name == "policy.role.permissions" for name, _ in terms):
            return _invalid(f"Invalid query: {query!r} is not supported by the fake.")
        asset_types = set(request.query.get("assetTypes", []))
        try:
            page_size = int((request.query.get("pageSize") or ["100"])[0] or 100)
            offset = int((request.query.get("pageToken") or ["0"])[0] or 0)
        except ValueError:
            return _invalid("Invalid page size or page token.")
        page_size = max(1, min(page_size, 500))

        resources = [world.organization, *sorted(world.parents)]
        results: list[JSON] = []
        for resource in resources:
            if scope not in world.ancestry(resource):
                continue
            if asset_types and _asset_type(resource) not in asset_types:
                continue
            if any(
                name == "resource" and value not in _FULL_NAME_PREFIX + resource
                for name, value in terms
            ):
                continue
            bindings = world.bindings(resource)
            policy_terms = [(n, v) for n, v in terms if n == "policy"]
            # Like the API, answer only with the bindings that match the query.
            matching = [
                b for b in bindings if all(_binding_matches(b, n, v) for n, v in policy_terms)
            ]
            if not matching:
                continue
            result: JSON = {
                "resource": _FULL_NAME_PREFIX + resource,
                "assetType": _asset_type(resource),
                "policy": {"bindings": matching},
            }
            project = next((r for r in world.ancestry(resource) if r.startswith("projects/")), "")
            if project:
                result["project"] = "projects/" + world.project_numbers[project.split("/", 1)[1]]
            folders = [r for r in world.ancestry(resource) if r.startswith("folders/")]
            if folders:
                result["folders"] = folders
            result["organization"] = world.organization
            results.append(result)
        page = results[offset : offset + page_size]
        out: JSON = {"results": page} if page else {}
        if offset + page_size < len(results):
            out["nextPageToken"] = str(offset + page_size)
        return 200, out

    return handler


def routes(world: GoogleWorld) -> list[Route]:
    """The route table of the IAM, Logging and IAM-search part of the fake Google."""
    parent = r"(?P<kind>projects|folders|organizations)/(?P<id>[^/:]+)"
    return [
        ("POST", re.compile(rf"/v3/{parent}:getIamPolicy"), _get_iam_policy(world)),
        ("POST", re.compile(rf"/v3/{parent}:setIamPolicy"), _set_iam_policy(world)),
        ("POST", re.compile(r"/v2/entries:write"), _write_entries(world)),
        ("POST", re.compile(r"/v2/entries:list"), _list_entries(world)),
        (
            "GET",
            re.compile(rf"/v1/{parent}:searchAllIamPolicies"),
            _search_all_iam_policies(world),
        ),
    ]
