"""Which settings apply to a requested role (README: rules), and the limits they set; pure.

`policy/jitaccess.yaml` may hold `rules:`; for each requested role the first rule whose `match`
fits applies, and the keys it does not set fall back to the top-level values. A rule may match
folders: whether it fits then depends on the project's ancestry, which only the eligibility
lookup reads. Every function here takes that ancestry as `None` when it is not known yet and then
settles only what it can (`settings_for` answers None for a role it cannot settle), so that a
request file is checked as far as possible before any Google call, and completely once the
lookup has answered.

A break-glass request (`break_glass: true`) is judged by `break_glass`'s own limits instead of
its roles' rules: its duration must fit `break_glass.max_duration` and its justification the
break-glass pattern.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from webhook.core.durations import format_duration
from webhook.core.model import (
    AccessRequest,
    ApprovalSettings,
    JustificationSettings,
    Policy,
    Problem,
    RoleSettings,
    Rule,
    RuleMatch,
)
from webhook.core.problems import ProblemCode


def _any(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def fits(match: RuleMatch, project: str, role: str, ancestry: Sequence[str] | None) -> bool | None:
    """Whether a rule's `match` fits a role on a project; None when it depends on the project's
    folders and the ancestry is not known."""
    if match.projects and not _any(match.projects, project):
        return False
    if match.roles and not _any(match.roles, role):
        return False
    if match.folders:
        if ancestry is None:
            return None
        return any(folder in ancestry for folder in match.folders)
    return True


def needs_ancestry(policy: Policy, project: str, roles: Iterable[str]) -> bool:
    """Whether settling the roles' rules needs the project's ancestry."""
    return any(settings_for(policy, project, role, None) is None for role in roles)


def rule_for(
    policy: Policy, project: str, role: str, ancestry: Sequence[str] | None
) -> tuple[bool, Rule | None]:
    """(settled, the first rule that fits or None); not settled while a rule that might fit,
    before any that surely fits, matches folders and the ancestry is unknown."""
    for rule in policy.rules:
        fit = fits(rule.match, project, role, ancestry)
        if fit is None:
            return False, None
        if fit:
            return True, rule
    return True, None


def apply(policy: Policy, role: str, rule: Rule | None) -> RoleSettings:
    """The settings of a role under a rule (None: the top-level settings)."""
    if rule is None:
        return RoleSettings(
            role, None, policy.activation.max_duration, policy.justification, policy.approval
        )
    a, top = rule.approval, policy.approval
    approval = ApprovalSettings(
        required=top.required if a.required is None else a.required,
        max_age=top.max_age if a.max_age is None else a.max_age,
        request_reviewers=top.request_reviewers,
        approvers=top.approvers if a.approvers is None else a.approvers,
        peers=top.peers if a.peers is None else a.peers,
        veto=top.veto if a.veto is None else a.veto,
    )
    j = rule.justification
    justification = JustificationSettings(
        pattern=policy.justification.pattern if j.pattern is None else j.pattern,
        hint=policy.justification.hint if j.hint is None else j.hint,
    )
    max_duration = policy.activation.max_duration if rule.max_duration is None else (
        rule.max_duration
    )
    return RoleSettings(role, rule.name, max_duration, justification, approval)


def settings_for(
    policy: Policy, project: str, role: str, ancestry: Sequence[str] | None
) -> RoleSettings | None:
    """The settings that apply to a role, or None when they depend on unknown folders."""
    settled, rule = rule_for(policy, project, role, ancestry)
    if not settled:
        return None
    return apply(policy, role, rule)


def possible_settings(policy: Policy, project: str, role: str) -> tuple[RoleSettings, ...]:
    """The settings that may apply to a role before the project's folders are known: one when
    its rule is settled, else those of every rule that may fit up to the first that surely
    does (or the top-level settings)."""
    out: list[RoleSettings] = []
    for rule in policy.rules:
        fit = fits(rule.match, project, role, None)
        if fit is False:
            continue
        out.append(apply(policy, role, rule))
        if fit:
            return tuple(out)
    out.append(apply(policy, role, None))
    return tuple(out)


def role_settings(
    policy: Policy, request: AccessRequest, ancestry: Sequence[str] | None
) -> dict[str, RoleSettings]:
    """The settings of every requested role that can be settled."""
    out: dict[str, RoleSettings] = {}
    for role in request.roles:
        settings = settings_for(policy, request.project, role, ancestry)
        if settings is not None:
            out[role] = settings
    return out


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.fullmatch(pattern, text) is not None
    except (re.error, RecursionError, OverflowError, ValueError):
        return False  # the policy parser reports the pattern itself


def limits(
    policy: Policy, request: AccessRequest, ancestry: Sequence[str] | None
) -> tuple[Problem, ...]:
    """What in a request breaks the limits of its roles' rules (or break-glass's): each miss
    with its line and hint. Roles whose rule cannot be settled yet are not judged."""
    return check_limits(
        policy, request.project, request.roles, request.duration, request.justification,
        break_glass=request.break_glass, lines=request.lines, ancestry=ancestry,
    )


def check_limits(
    policy: Policy,
    project: str | None,
    roles: Sequence[str] | None,
    duration: timedelta | None,
    justification: str | None,
    *,
    break_glass: bool = False,
    lines: Mapping[str, int] | None = None,
    ancestry: Sequence[str] | None = None,
) -> tuple[Problem, ...]:
    """`limits` for a request file read in part: None is a value the file does not give (or
    gives wrongly), which is then not judged. Without the project or the roles no rule can be
    chosen; what is judged then is only what holds for every role: the longest duration any
    rule allows, and the top-level pattern when no rule sets one.

    With no rules and no break-glass, the problems are the very ones the request parser has
    always reported against `activation.max_duration` and `justification`.
    """
    at = lines or {}
    duration_line, reason_line = at.get("duration"), at.get("justification")
    if break_glass:
        glass = policy.break_glass
        if not glass.enabled:
            return (
                Problem(
                    ProblemCode.BREAK_GLASS_DISABLED,
                    "'break_glass: true', but break-glass is not enabled in the policy "
                    "(break_glass.enabled); remove the key and ask for approval",
                    at.get("break_glass"),
                ),
            )
        problems: list[Problem] = []
        if duration is not None and duration > glass.max_duration:
            problems.append(
                Problem(
                    ProblemCode.DURATION_TOO_LONG,
                    f"the duration {format_duration(duration)} is longer than the "
                    f"break-glass maximum {format_duration(glass.max_duration)}",
                    duration_line,
                )
            )
        if justification is not None and not _matches(glass.justification.pattern,
                                                      justification):
            problems.append(
                Problem(
                    ProblemCode.JUSTIFICATION_MISMATCH,
                    "'justification' does not have the form break-glass requires: "
                    f"{glass.justification.hint}",
                    reason_line,
                )
            )
        return tuple(problems)

    settled: dict[str, RoleSettings] = {}
    if project is not None and roles is not None:
        for role in roles:
            settings = settings_for(policy, project, role, ancestry)
            if settings is not None:
                settled[role] = settings
    named = bool(policy.rules)  # say which rule (or the top level) set a limit
    problems = []
    if duration is not None:
        if settled:
            shortest = min(settled.values(), key=lambda s: s.max_duration)
            if duration > shortest.max_duration:
                same = [s for s in settled.values() if s.rule == shortest.rule]
                problems.append(
                    Problem(
                        ProblemCode.DURATION_TOO_LONG,
                        f"the duration {format_duration(duration)} is longer than the maximum "
                        f"{format_duration(shortest.max_duration)}{_of(same, named)}",
                        duration_line,
                    )
                )
        elif duration > longest_duration(policy):
            # No role settled (or none known): too long for whatever rule applies.
            problems.append(
                Problem(
                    ProblemCode.DURATION_TOO_LONG,
                    f"the duration {format_duration(duration)} is longer than the maximum "
                    f"{format_duration(longest_duration(policy))}",
                    duration_line,
                )
            )
    if justification is not None:
        groups: dict[tuple[str, str], list[RoleSettings]] = {}
        for settings in settled.values():
            j = settings.justification
            groups.setdefault((j.pattern, j.hint), []).append(settings)
        if not settled and all(rule.justification.pattern is None for rule in policy.rules):
            # Every role has the top-level pattern, whichever rule applies to it.
            groups[(policy.justification.pattern, policy.justification.hint)] = []
        for (pattern, hint), group in groups.items():
            if not _matches(pattern, justification):
                problems.append(
                    Problem(
                        ProblemCode.JUSTIFICATION_MISMATCH,
                        f"'justification' does not have the expected form{_of(group, named)}: "
                        f"{hint}",
                        reason_line,
                    )
                )
    return tuple(problems)


def _of(group: Sequence[RoleSettings], named: bool) -> str:
    """` of rule "x" (roles/a)` naming who set a limit; nothing when the policy has no rules."""
    if not named or not group:
        return ""
    by_rule: dict[str | None, list[str]] = {}
    for settings in group:
        by_rule.setdefault(settings.rule, []).append(settings.role)
    parts = [
        (f'rule "{rule}"' if rule is not None else "the top-level settings")
        + f" ({', '.join(roles)})"
        for rule, roles in by_rule.items()
    ]
    return " of " + ", ".join(parts)


def longest_duration(policy: Policy) -> timedelta:
    """The longest duration an ordinary (not break-glass) request could be granted for: the
    request parser's bound while no role's rule is settled."""
    longest = policy.activation.max_duration
    for rule in policy.rules:
        if rule.max_duration is not None and rule.max_duration > longest:
            longest = rule.max_duration
    return longest


def covers(earlier: RuleMatch, later: RuleMatch) -> bool:
    """Whether every role on every project that `later` fits is surely fitted by `earlier`
    (conservative: True only when certain), so that `later` can never apply."""

    def list_covers(wide: Sequence[str], narrow: Sequence[str]) -> bool:
        if not wide or "*" in wide:
            return True
        if not narrow:
            return False
        return all(
            any(w == "*" or w == n or (not _wild(n) and fnmatch.fnmatchcase(n, w)) for w in wide)
            for n in narrow
        )

    return (
        list_covers(earlier.projects, later.projects)
        and list_covers(earlier.roles, later.roles)
        and (not earlier.folders or (bool(later.folders)
                                     and set(later.folders) <= set(earlier.folders)))
    )


def _wild(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def unreachable(rules: Sequence[Rule]) -> list[tuple[Rule, Rule]]:
    """(rule, the earlier rule that always fits first) for every rule that can never apply."""
    out = []
    for i, later in enumerate(rules):
        for earlier in rules[:i]:
            if covers(earlier.match, later.match):
                out.append((later, earlier))
                break
    return out
