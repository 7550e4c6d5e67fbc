"""The workflow's configuration: `policy/jitaccess.yaml` and `policy/identities.yaml` (README:
policy).

`parse_identities` lives in `webhook.core.identities` (a file of 50,000 entries needs its own
reader) and is imported here under its old address.

Pure parsing with the same YAML hardening as request files. Every key has the documented default
except `scope`; unknown keys at any level are problems, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import TypeVar

from webhook.core.durations import parse_duration
from webhook.core.identities import EMAIL as EMAIL
from webhook.core.identities import check_rule
from webhook.core.identities import parse_identities as parse_identities
from webhook.core.model import (
    ActivationSettings,
    ApprovalSettings,
    BreakGlassSettings,
    CleanupSettings,
    EligibilitySettings,
    EligibilitySourceName,
    IdentityRule,
    IdentitySettings,
    JustificationSettings,
    Policy,
    Problem,
    RevocationSettings,
    Rule,
    RuleApproval,
    RuleJustification,
    RuleMatch,
)
from webhook.core.problems import ProblemCode
from webhook.core.request_file import LOGIN, PROJECT_ID, by_line, check_keys
from webhook.core.rules import unreachable
from webhook.core.safe_yaml import YamlValue, load_large, show

#: Policy files are edited by administrators, but still read defensively.
MAX_POLICY_BYTES = 64 * 1024
MAX_PATTERN = 1000
MAX_HINT = 200
#: Upper bound of every integer setting; larger values are typos.
MAX_COUNT = 100

SCOPE = re.compile(
    rf"organizations/[1-9][0-9]{{0,19}}|folders/[1-9][0-9]{{0,19}}|projects/{PROJECT_ID.pattern}"
)
SECTIONS = (
    "scope", "activation", "justification", "eligibility", "approval", "identities", "cleanup",
    "revocation", "rules", "break_glass",
)
#: Most logins in `revocation.revokers` (a short on-call list, not a directory).
MAX_REVOKERS = 100

T = TypeVar("T")


def _names(settings: type) -> tuple[str, ...]:
    """The keys of a policy section: the fields of its settings class."""
    return tuple(f.name for f in fields(settings))


def _p(code: ProblemCode, message: str, line: int | None = None) -> Problem:
    return Problem(code=code, message=message, line=line)


class _Section:
    """Reads the keys of one policy section, collecting problems and keeping defaults."""

    def __init__(self, name: str, value: YamlValue | None, keys: tuple[str, ...]) -> None:
        self.name = name
        self.problems: list[Problem] = []
        self.entries: dict[str, YamlValue] = {}
        self.failed: set[str] = set()  # keys given whose value could not be read
        if value is None or (value.kind == "scalar" and value.tag == "null"):
            return  # `activation:` with nothing under it: all defaults
        if value.kind != "mapping":
            self.problems.append(
                _p(
                    ProblemCode.WRONG_TYPE,
                    f"'{name}' must be a mapping, not {value.describe()}",
                    value.line,
                )
            )
            return
        self.entries, problems = check_keys(value, keys, (), where=f"{name}.")
        self.problems.extend(problems)

    def get(self, key: str, default: T, read: Callable[[str, YamlValue], T]) -> T:
        """The value of `key` read by `read`, or the default if absent or invalid."""
        value = self.entries.get(key)
        if value is None:
            return default
        try:
            return read(f"{self.name}.{key}", value)
        except _Invalid as e:
            self.problems.extend((e.problem, *e.more))
            self.failed.add(key)
            return default


class _Invalid(Exception):
    def __init__(self, problem: Problem, more: Sequence[Problem] = ()) -> None:
        super().__init__(problem.message)
        self.problem = problem
        self.more = tuple(more)


def _duration(name: str, value: YamlValue) -> timedelta:
    if not value.is_string:
        raise _Invalid(
            _p(
                ProblemCode.WRONG_TYPE,
                f"'{name}' must be a duration like 30m, 2h or PT2H, not {value.describe()}",
                value.line,
            )
        )
    try:
        return parse_duration(value.scalar)
    except ValueError as e:
        raise _Invalid(_p(ProblemCode.INVALID_DURATION, f"'{name}': {e}", value.line)) from None


def _int(minimum: int) -> Callable[[str, YamlValue], int]:
    def read(name: str, value: YamlValue) -> int:
        if value.kind != "scalar" or value.tag != "int" or not isinstance(value.scalar, int):
            raise _Invalid(
                _p(
                    ProblemCode.WRONG_TYPE,
                    f"'{name}' must be a whole number, not {value.describe()}",
                    value.line,
                )
            )
        number = value.scalar
        if not minimum <= number <= MAX_COUNT:
            raise _Invalid(
                _p(
                    ProblemCode.OUT_OF_RANGE,
                    f"'{name}' must be between {minimum} and {MAX_COUNT}, not {number}",
                    value.line,
                )
            )
        return number

    return read


def _bool(name: str, value: YamlValue) -> bool:
    if value.kind != "scalar" or value.tag != "bool" or not isinstance(value.scalar, bool):
        raise _Invalid(
            _p(
                ProblemCode.WRONG_TYPE,
                f"'{name}' must be true or false, not {value.describe()}",
                value.line,
            )
        )
    return value.scalar


def _text(limit: int) -> Callable[[str, YamlValue], str]:
    def read(name: str, value: YamlValue) -> str:
        if not value.is_string:
            raise _Invalid(
                _p(
                    ProblemCode.WRONG_TYPE,
                    f"'{name}' must be text, not {value.describe()}",
                    value.line,
                )
            )
        text = str(value.scalar)
        if len(text) > limit:
            raise _Invalid(
                _p(
                    ProblemCode.TOO_LONG,
                    f"'{name}' has {len(text)} characters; at most {limit}",
                    value.line,
                )
            )
        return text

    return read


def _logins(name: str, value: YamlValue) -> tuple[str, ...]:
    """A list of GitHub logins, lower-cased (logins are case-insensitive), each once."""
    if value.kind != "sequence":
        raise _Invalid(
            _p(ProblemCode.WRONG_TYPE, f"'{name}' must be a list of GitHub logins, not "
               f"{value.describe()}", value.line)
        )
    if len(value.items) > MAX_REVOKERS:
        raise _Invalid(
            _p(ProblemCode.TOO_LONG, f"'{name}' has {len(value.items)} logins; at most "
               f"{MAX_REVOKERS}", value.line)
        )
    logins: dict[str, None] = {}
    for item in value.items:
        if not item.is_string or not LOGIN.fullmatch(str(item.scalar)):
            shown = show(str(item.scalar)) if item.is_string else item.describe()
            raise _Invalid(
                _p(ProblemCode.WRONG_TYPE, f"'{name}' holds {shown}, which is not a "
                   "GitHub login", item.line)
            )
        logins[str(item.scalar).lower()] = None
    return tuple(logins)


def _pattern(name: str, value: YamlValue) -> str:
    pattern = _text(MAX_PATTERN)(name, value)
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        raise _Invalid(
            _p(
                ProblemCode.INVALID_PATTERN,
                f"'{name}' is not a valid regular expression: {e}",
                value.line,
            )
        ) from None
    return pattern


def _source(name: str, value: YamlValue) -> EligibilitySourceName:
    choices = ", ".join(s.value for s in EligibilitySourceName)
    if value.is_string:
        try:
            return EligibilitySourceName(str(value.scalar))
        except ValueError:
            pass
    shown = show(str(value.scalar)) if value.kind == "scalar" else value.describe()
    raise _Invalid(_p(ProblemCode.INVALID_SOURCE, f"'{name}' must be one of {choices}, not {shown}",
                      value.line))


def _scope(name: str, value: YamlValue) -> str:
    scope = _text(200)(name, value).strip()
    if not SCOPE.fullmatch(scope):
        raise _Invalid(
            _p(
                ProblemCode.INVALID_SCOPE,
                f"'{name}' must be organizations/NUMBER, folders/NUMBER or projects/PROJECT-ID, "
                f"not {show(scope)}",
                value.line,
            )
        )
    return scope


def _rule(name: str, value: YamlValue) -> IdentityRule:
    """`identities.rule`: `{match: PATTERN, email: TEMPLATE}`, both checked now, so that a bad
    pattern or a template naming a group the pattern lacks is a policy problem with its line,
    not a surprise on some PR."""
    if value.kind != "mapping":
        raise _Invalid(
            _p(
                ProblemCode.WRONG_TYPE,
                f"'{name}' must be a mapping like {{match: '^(?P<user>[a-z0-9-]+)_acme$', "
                f"email: '{{user}}@acme.com'}}, not {value.describe()}",
                value.line,
            )
        )
    entries, problems = check_keys(value, ("match", "email"), (), where=f"{name}.")
    for key in ("match", "email"):
        if key not in entries:
            problems.append(
                _p(ProblemCode.MISSING_KEY, f"the key '{name}.{key}' is missing", value.line)
            )
    if problems:
        raise _Invalid(problems[0], problems[1:])
    match = _text(MAX_PATTERN)(f"{name}.match", entries["match"])
    template = _text(MAX_PATTERN)(f"{name}.email", entries["email"])
    pattern_problem, template_problem = check_rule(match, template)
    if pattern_problem is not None:
        raise _Invalid(
            _p(ProblemCode.INVALID_PATTERN, f"'{name}.match' {pattern_problem}",
               entries["match"].line)
        )
    if template_problem is not None:
        raise _Invalid(
            _p(ProblemCode.INVALID_RULE, f"'{name}.email' {template_problem}",
               entries["email"].line)
        )
    return IdentityRule(match, template)


#: Most entries of `rules:`; the first that fits a role applies, so a longer list is a mistake.
MAX_RULES = 200
MAX_RULE_NAME = 100
#: Most designated approvers per `approval` (groups hold the many; the list names them).
MAX_APPROVERS = 50
#: Longest shell-style pattern in a rule's `match`.
MAX_MATCH_PATTERN = 200
FOLDER = re.compile(r"folders/[1-9][0-9]{0,19}")
#: `user:EMAIL` or `group:EMAIL`: the identities that can review on GitHub through a mapping.
APPROVER = re.compile(rf"(?P<kind>user|group):(?P<email>{EMAIL.pattern})")
RULE_KEYS = ("name", "match", "max_duration", "approval", "justification")
RULE_APPROVAL_KEYS = _names(RuleApproval)


def _approvers(name: str, value: YamlValue) -> tuple[str, ...]:
    """Designated approvers: `user:EMAIL` / `group:EMAIL`, lower-cased, each once."""
    if value.kind != "sequence":
        raise _Invalid(
            _p(ProblemCode.WRONG_TYPE, f"'{name}' must be a list like "
               f"[group:leads@example.com, user:cto@example.com], not {value.describe()}",
               value.line)
        )
    if len(value.items) > MAX_APPROVERS:
        raise _Invalid(
            _p(ProblemCode.TOO_LONG, f"'{name}' has {len(value.items)} approvers; at most "
               f"{MAX_APPROVERS} (name a group to designate many people)", value.line)
        )
    found: dict[str, None] = {}
    problems: list[Problem] = []
    for item in value.items:
        text = str(item.scalar).strip().lower() if item.is_string else ""
        if item.is_string and APPROVER.fullmatch(text):
            found[text] = None
            continue
        if not item.is_string:
            what = item.describe()
        elif EMAIL.fullmatch(text):
            what = f"{show(str(item.scalar))}, a bare email; write user:{text} or group:{text}"
        elif ":" in text and text.split(":", 1)[0] in ("serviceaccount", "domain", "principal",
                                                       "principalset", "allusers",
                                                       "allauthenticatedusers"):
            what = (f"{show(str(item.scalar))}; only people (user:) and groups (group:) can "
                    "review on GitHub")
        else:
            what = show(str(item.scalar))
        problems.append(
            _p(ProblemCode.INVALID_APPROVER, f"'{name}' holds {what}; an approver is "
               "user:EMAIL or group:EMAIL", item.line)
        )
    if problems:
        raise _Invalid(problems[0], problems[1:])
    return tuple(found)


def _patterns(kind: str) -> Callable[[str, YamlValue], tuple[str, ...]]:
    """A non-empty list of `match` entries: shell-style patterns, or `folders/N`."""

    def read(name: str, value: YamlValue) -> tuple[str, ...]:
        example = '["folders/456789012345"]' if kind == "folders" else '["*-prod"]'
        if value.kind != "sequence":
            raise _Invalid(
                _p(ProblemCode.WRONG_TYPE, f"'{name}' must be a list like {example}, not "
                   f"{value.describe()}", value.line)
            )
        if not value.items:
            raise _Invalid(
                _p(ProblemCode.INVALID_MATCH, f"'{name}' is empty, so the rule would never "
                   f"apply; list at least one entry, or leave '{name}' out to match every "
                   f"{kind[:-1]}", value.line)
            )
        found: dict[str, None] = {}
        problems: list[Problem] = []
        for item in value.items:
            if not item.is_string:
                problems.append(
                    _p(ProblemCode.WRONG_TYPE, f"'{name}' must hold text, not "
                       f"{item.describe()}", item.line)
                )
                continue
            text = str(item.scalar)
            if kind == "folders":
                if not FOLDER.fullmatch(text):
                    problems.append(
                        _p(ProblemCode.INVALID_MATCH, f"'{name}' holds {show(text)}; a folder "
                           "is folders/NUMBER, e.g. folders/456789012345", item.line)
                    )
                    continue
            elif (not text or len(text) > MAX_MATCH_PATTERN or not text.isprintable()
                  or any(c.isspace() for c in text)):
                problems.append(
                    _p(ProblemCode.INVALID_MATCH, f"'{name}' holds {show(text)}; a pattern is "
                       f"1 to {MAX_MATCH_PATTERN} visible characters without spaces, like "
                       f"{'*-prod' if kind == 'projects' else 'roles/cloudsql.*'}", item.line)
                )
                continue
            found[text] = None
        if problems:
            raise _Invalid(problems[0], problems[1:])
        return tuple(found)

    return read


def _match(name: str, value: YamlValue) -> RuleMatch:
    if value.kind == "scalar" and value.tag == "null":
        return RuleMatch()
    m = _Section(name, value, _names(RuleMatch))
    match = RuleMatch(
        projects=m.get("projects", (), _patterns("projects")),
        folders=m.get("folders", (), _patterns("folders")),
        roles=m.get("roles", (), _patterns("roles")),
    )
    if m.problems:
        raise _Invalid(m.problems[0], m.problems[1:])
    return match


def _nobody_approves(where: str, line: int | None) -> Problem:
    return _p(
        ProblemCode.INVALID_RULE,
        f"{where} has 'peers: false' and no 'approvers', so nobody can approve a role that "
        "needs approval; name approvers or allow peers",
        line,
    )


def _rules(
    value: YamlValue | None, top: ApprovalSettings, activation: ActivationSettings
) -> tuple[tuple[Rule, ...], list[Problem]]:
    """`rules:`: every rule, or the problems found in them (all of them, with their lines)."""
    if value is None or (value.kind == "scalar" and value.tag == "null"):
        return (), []
    if value.kind != "sequence":
        return (), [
            _p(ProblemCode.WRONG_TYPE, "'rules' must be a list of rules, each a mapping with "
               f"a 'name', not {value.describe()}", value.line)
        ]
    if len(value.items) > MAX_RULES:
        return (), [
            _p(ProblemCode.TOO_LONG, f"'rules' has {len(value.items)} rules; at most "
               f"{MAX_RULES}", value.line)
        ]
    rules: list[Rule] = []
    problems: list[Problem] = []
    names: dict[str, int] = {}
    for index, item in enumerate(value.items):
        where = f"rules[{index}]"
        if item.kind != "mapping":
            problems.append(
                _p(ProblemCode.WRONG_TYPE, f"'{where}' must be a mapping with a 'name', not "
                   f"{item.describe()}", item.line)
            )
            continue
        section = _Section(where, item, RULE_KEYS)
        if "name" not in section.entries:
            section.problems.append(
                _p(ProblemCode.MISSING_KEY, f"the key '{where}.name' is missing; every rule "
                   "has a name, shown in comments and audit entries", item.line)
            )
        name = section.get("name", "", _text(MAX_RULE_NAME)).strip()
        name_value = section.entries.get("name")
        if name_value is not None and name_value.is_string and not str(name_value.scalar).strip():
            section.problems.append(
                _p(ProblemCode.INVALID_RULE, f"'{where}.name' is blank", name_value.line)
            )
        elif name and name_value is not None:
            earlier = names.get(name.casefold())
            if earlier is not None:
                section.problems.append(
                    _p(ProblemCode.INVALID_RULE, f"the rule name {show(name)} is used twice "
                       f"(first on line {earlier}); rule names must differ", name_value.line)
                )
            else:
                names[name.casefold()] = name_value.line
        match = section.get("match", RuleMatch(), _match)
        max_duration = section.get("max_duration", None, _duration)
        duration_value = section.entries.get("max_duration")
        if (max_duration is not None and duration_value is not None
                and max_duration < activation.min_duration):
            section.problems.append(
                _p(ProblemCode.INVALID_DURATION_RANGE, f"'{where}.max_duration' must not be "
                   "shorter than 'activation.min_duration'", duration_value.line)
            )
        approval_value = section.entries.get("approval")
        a = _Section(f"{where}.approval", approval_value, RULE_APPROVAL_KEYS)
        # `request_reviewers` is PR-wide: say so rather than only "unknown key".
        per_pr = show(f"{where}.approval.request_reviewers")
        a.problems = [
            _p(ProblemCode.UNKNOWN_KEY, f"{per_pr} cannot be set per rule: it is how many "
               "reviewers are asked for the whole PR; set it in the top-level 'approval'", p.line)
            if p.code == ProblemCode.UNKNOWN_KEY and p.message.startswith(f"unknown key {per_pr}")
            else p
            for p in a.problems
        ]
        approval = RuleApproval(
            required=a.get("required", None, _int(1)),
            max_age=a.get("max_age", None, _duration),
            approvers=a.get("approvers", None, _approvers),
            peers=a.get("peers", None, _bool),
            veto=a.get("veto", None, _bool),
        )
        peers = top.peers if approval.peers is None else approval.peers
        approvers = top.approvers if approval.approvers is None else approval.approvers
        if (not peers and not approvers and not a.failed & {"peers", "approvers"}
                and (approval.peers is not None or approval.approvers is not None)):
            set_here = a.entries.get("peers") or a.entries.get("approvers")
            section.problems.append(
                _nobody_approves(f"rule {show(name)}" if name else f"'{where}'",
                                 set_here.line if set_here is not None else item.line)
            )
        j = _Section(f"{where}.justification", section.entries.get("justification"),
                     _names(RuleJustification))
        justification = RuleJustification(
            pattern=j.get("pattern", None, _pattern),
            hint=j.get("hint", None, _text(MAX_HINT)),
        )
        found = [*section.problems, *a.problems, *j.problems]
        problems.extend(found)
        if not found:
            rules.append(Rule(name, match, max_duration, approval, justification, line=item.line))
    return tuple(rules), problems


def _break_glass(
    value: YamlValue | None, activation: ActivationSettings
) -> tuple[BreakGlassSettings, list[Problem]]:
    """`break_glass:` (README: break-glass), with the model's defaults."""
    b = _Section("break_glass", value, _names(BreakGlassSettings))
    default = BreakGlassSettings()
    j = _Section("break_glass.justification", b.entries.get("justification"),
                 _names(JustificationSettings))
    settings = BreakGlassSettings(
        enabled=b.get("enabled", default.enabled, _bool),
        max_duration=b.get("max_duration", default.max_duration, _duration),
        justification=JustificationSettings(
            pattern=j.get("pattern", default.justification.pattern, _pattern),
            hint=j.get("hint", default.justification.hint, _text(MAX_HINT)),
        ),
        review_within=b.get("review_within", default.review_within, _duration),
    )
    duration_value = b.entries.get("max_duration")
    if duration_value is not None and settings.max_duration < activation.min_duration:
        b.problems.append(
            _p(ProblemCode.INVALID_DURATION_RANGE, "'break_glass.max_duration' must not be "
               "shorter than 'activation.min_duration'", duration_value.line)
        )
    return settings, [*b.problems, *j.problems]


def _warnings(rules: tuple[Rule, ...]) -> tuple[Problem, ...]:
    """A warning for every rule that an earlier one always fits first."""
    return tuple(
        _p(
            ProblemCode.UNREACHABLE_RULE,
            f"rule {show(later.name)} can never apply: the earlier rule {show(earlier.name)} "
            f"(line {earlier.line}) fits every role it fits",
            later.line,
        )
        for later, earlier in unreachable(rules)
    )


def parse_policy(text: str | bytes) -> tuple[Policy | None, tuple[Problem, ...]]:
    """Parse `policy/jitaccess.yaml`; the policy, or None and every problem found.

    Read with `load_large` (libyaml's C parser where available, the same hardening and line
    numbers): a policy of many rules costs a tenth of the pure-Python reading on first use."""
    doc, loaded = load_large(text, MAX_POLICY_BYTES)
    problems = list(loaded)
    if doc is None:
        if not problems:
            problems.append(_p(ProblemCode.EMPTY, "the policy is empty; 'scope' is required"))
        return None, tuple(problems)
    if doc.kind != "mapping":
        problems.append(
            _p(
                ProblemCode.NOT_A_MAPPING,
                f"the policy must be a mapping, not {doc.describe()}",
                doc.line,
            )
        )
        return None, tuple(problems)
    top, more = check_keys(doc, SECTIONS, ("scope",))
    problems.extend(more)
    scope: str | None = None
    if "scope" in top:
        try:
            scope = _scope("scope", top["scope"])
        except _Invalid as invalid:
            problems.append(invalid.problem)

    a = _Section("activation", top.get("activation"), _names(ActivationSettings))
    default_a = ActivationSettings()
    activation = ActivationSettings(
        min_duration=a.get("min_duration", default_a.min_duration, _duration),
        max_duration=a.get("max_duration", default_a.max_duration, _duration),
        max_roles=a.get("max_roles", default_a.max_roles, _int(1)),
        max_delay=a.get("max_delay", default_a.max_delay, _duration),
    )
    if activation.min_duration > activation.max_duration:
        value = a.entries.get("min_duration") or a.entries.get("max_duration")
        a.problems.append(
            _p(
                ProblemCode.INVALID_DURATION_RANGE,
                "'activation.min_duration' must not be longer than 'activation.max_duration'",
                value.line if value else None,
            )
        )

    j = _Section("justification", top.get("justification"),
                 _names(JustificationSettings))
    default_j = JustificationSettings()
    justification = JustificationSettings(
        pattern=j.get("pattern", default_j.pattern, _pattern),
        hint=j.get("hint", default_j.hint, _text(MAX_HINT)),
    )

    e = _Section("eligibility", top.get("eligibility"), _names(EligibilitySettings))
    default_e = EligibilitySettings()
    eligibility = EligibilitySettings(
        source=e.get("source", default_e.source, _source),
        nested_groups=e.get("nested_groups", default_e.nested_groups, _bool),
    )

    r = _Section("approval", top.get("approval"), _names(ApprovalSettings))
    default_r = ApprovalSettings()
    approval = ApprovalSettings(
        required=r.get("required", default_r.required, _int(1)),
        max_age=r.get("max_age", default_r.max_age, _duration),
        request_reviewers=r.get("request_reviewers", default_r.request_reviewers, _int(0)),
        approvers=r.get("approvers", default_r.approvers, _approvers),
        peers=r.get("peers", default_r.peers, _bool),
        veto=r.get("veto", default_r.veto, _bool),
    )
    if not approval.peers and not approval.approvers and not r.failed & {"peers", "approvers"}:
        set_here = r.entries.get("peers") or r.entries.get("approvers")
        r.problems.append(
            _nobody_approves("'approval'", set_here.line if set_here is not None else None)
        )
    rules, rule_problems = _rules(top.get("rules"), approval, activation)
    break_glass, glass_problems = _break_glass(top.get("break_glass"), activation)

    i = _Section("identities", top.get("identities"), _names(IdentitySettings))
    default_i = IdentitySettings()
    identities = IdentitySettings(
        require_id=i.get("require_id", default_i.require_id, _bool),
        rule=i.get("rule", default_i.rule, _rule),
    )
    if identities.require_id and identities.rule is not None:
        rule_value = i.entries.get("rule")
        i.problems.append(
            _p(
                ProblemCode.INVALID_RULE,
                "'identities.rule' maps logins that have no entry, but with "
                "'identities.require_id: true' only entries with an id map anyone; remove one",
                rule_value.line if rule_value else None,
            )
        )

    c = _Section("cleanup", top.get("cleanup"), _names(CleanupSettings))
    cleanup = CleanupSettings(
        remove_orphans=c.get("remove_orphans", CleanupSettings().remove_orphans, _bool),
    )

    v = _Section("revocation", top.get("revocation"), _names(RevocationSettings))
    revocation = RevocationSettings(revokers=v.get("revokers", (), _logins))

    for section in (a, j, e, r, i, c, v):
        problems.extend(section.problems)
    problems.extend(rule_problems)
    problems.extend(glass_problems)
    if problems or scope is None:
        return None, by_line(problems)
    return Policy(
        scope, activation, justification, eligibility, approval, identities=identities,
        cleanup=cleanup, revocation=revocation, rules=rules, break_glass=break_glass,
        warnings=_warnings(rules),
    ), ()
