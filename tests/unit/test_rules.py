"""The rule book (README: rules): which settings apply to a role, the limits they set, and which
rules can never apply. Pure: no fakes."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.core.model import (
    AccessRequest,
    ActivationSettings,
    ApprovalSettings,
    BreakGlassSettings,
    JustificationSettings,
    Policy,
    Problem,
    Rule,
    RuleApproval,
    RuleJustification,
    RuleMatch,
)
from webhook.core.problems import ProblemCode
from webhook.core.rules import (
    check_limits,
    covers,
    fits,
    limits,
    longest_duration,
    needs_ancestry,
    role_settings,
    rule_for,
    settings_for,
    unreachable,
)

H = timedelta(hours=1)
M = timedelta(minutes=1)
FOLDER = "folders/456789012345"
ANCESTRY = ("folders/111", FOLDER, "organizations/1")
LINES = {"project": 1, "roles": 2, "duration": 3, "justification": 4, "break_glass": 5}

PROD_DB = Rule(
    "production databases",
    RuleMatch(projects=("*-prod",), roles=("roles/cloudsql.*",)),
    max_duration=H,
    approval=RuleApproval(required=2, approvers=("group:db-leads@example.com",), veto=True),
    justification=RuleJustification(pattern=r"INC-[0-9]+: .+", hint="An incident number"),
    line=10,
)
UNDER_FOLDER = Rule(
    "finance folder", RuleMatch(folders=(FOLDER,)), max_duration=30 * M,
    justification=RuleJustification(pattern=r"FIN-[0-9]+: .+", hint="A finance ticket"), line=20,
)
SANDBOX = Rule("sandbox", RuleMatch(projects=("sandbox-*",)), max_duration=8 * H, line=30)


def policy(*rules: Rule, **kw: object) -> Policy:
    return Policy(
        "organizations/1",
        activation=ActivationSettings(max_duration=2 * H),
        justification=JustificationSettings(pattern=".+", hint="Bug or case number"),
        approval=ApprovalSettings(required=1, max_age=24 * H, approvers=("user:cto@example.com",)),
        rules=rules,
        **kw,  # type: ignore[arg-type]
    )


def request(
    project: str = "payments-prod",
    roles: tuple[str, ...] = ("roles/cloudsql.admin",),
    duration: timedelta = H,
    justification: str = "INC-1: restore",
    break_glass: bool = False,
) -> AccessRequest:
    return AccessRequest(project, roles, duration, justification, break_glass, LINES)


# -- selection ----------------------------------------------------------------------------------


def test_first_fitting_rule_wins() -> None:
    wide = Rule("all prod", RuleMatch(projects=("*-prod",)), max_duration=90 * M, line=40)
    p = policy(PROD_DB, wide)
    assert rule_for(p, "payments-prod", "roles/cloudsql.admin", None) == (True, PROD_DB)
    assert rule_for(p, "payments-prod", "roles/storage.admin", None) == (True, wide)
    # The same rules the other way round: the wide one fits first.
    assert rule_for(policy(wide, PROD_DB), "payments-prod", "roles/cloudsql.admin", None) == (
        True, wide
    )


def test_unset_keys_fall_back_to_the_top_level() -> None:
    p = policy(PROD_DB)
    settings = settings_for(p, "payments-prod", "roles/cloudsql.admin", None)
    assert settings is not None
    assert settings.rule == "production databases"
    assert settings.max_duration == H
    assert settings.justification == JustificationSettings(r"INC-[0-9]+: .+", "An incident number")
    assert settings.approval == ApprovalSettings(
        required=2, max_age=24 * H, request_reviewers=3,
        approvers=("group:db-leads@example.com",), peers=True, veto=True,
    )
    only_hint = Rule("hint only", justification=RuleJustification(hint="say why"))
    settings = settings_for(policy(only_hint), "x-project", "roles/a", None)
    assert settings is not None
    assert settings.max_duration == 2 * H
    assert settings.justification == JustificationSettings(".+", "say why")
    assert settings.approval.approvers == ("user:cto@example.com",)
    assert settings.approval.required == 1


def test_no_rule_fits_gives_the_top_level_settings() -> None:
    settings = settings_for(policy(PROD_DB), "payments-dev", "roles/cloudsql.admin", None)
    assert settings is not None
    assert settings.rule is None
    assert settings.max_duration == 2 * H
    assert settings.approval == policy().approval


@pytest.mark.parametrize(
    ("project", "role", "expected"),
    [
        ("payments-prod", "roles/cloudsql.admin", True),
        ("payments-prod", "roles/cloudsql.viewer", True),
        ("payments-dev", "roles/cloudsql.admin", False),  # project pattern
        ("payments-prod", "roles/storage.admin", False),  # role pattern
        ("payments-prod", "roles/CLOUDSQL.admin", False),  # role names are case-sensitive
        ("prod", "roles/cloudsql.admin", False),
    ],
)
def test_project_and_role_patterns(project: str, role: str, expected: bool) -> None:
    assert fits(PROD_DB.match, project, role, None) is expected


def test_any_of_within_a_list() -> None:
    match = RuleMatch(projects=("a-*", "b-*"), roles=("roles/x", "roles/y.*"))
    assert fits(match, "b-project", "roles/y.admin", None) is True
    assert fits(match, "c-project", "roles/x", None) is False


def test_folder_match_uses_the_ancestry_at_any_depth() -> None:
    assert fits(UNDER_FOLDER.match, "any-project", "roles/a", ANCESTRY) is True
    assert fits(UNDER_FOLDER.match, "any-project", "roles/a", ("folders/9", "organizations/1")) \
        is False
    assert fits(UNDER_FOLDER.match, "any-project", "roles/a", ()) is False
    p = policy(UNDER_FOLDER)
    assert rule_for(p, "any-project", "roles/a", ANCESTRY) == (True, UNDER_FOLDER)


def test_folder_rule_is_undetermined_without_the_ancestry() -> None:
    p = policy(UNDER_FOLDER, SANDBOX)
    assert fits(UNDER_FOLDER.match, "any-project", "roles/a", None) is None
    assert rule_for(p, "any-project", "roles/a", None) == (False, None)
    assert settings_for(p, "any-project", "roles/a", None) is None
    assert needs_ancestry(p, "any-project", ["roles/a"])
    # A rule that fits surely before the folder rule settles it without the ancestry.
    assert rule_for(policy(SANDBOX, UNDER_FOLDER), "sandbox-1", "roles/a", None) == (
        True, SANDBOX
    )
    assert not needs_ancestry(policy(SANDBOX, UNDER_FOLDER), "sandbox-1", ["roles/a"])


def test_folder_rule_that_cannot_fit_on_other_keys_needs_no_ancestry() -> None:
    narrow = Rule("prod folder", RuleMatch(projects=("*-prod",), folders=(FOLDER,)))
    assert fits(narrow.match, "sandbox-1", "roles/a", None) is False
    assert rule_for(policy(narrow, SANDBOX), "sandbox-1", "roles/a", None) == (True, SANDBOX)


def test_a_rule_after_an_unfittable_folder_rule_applies() -> None:
    p = policy(UNDER_FOLDER, SANDBOX)
    elsewhere = ("folders/9", "organizations/1")
    assert rule_for(p, "sandbox-1", "roles/a", elsewhere) == (True, SANDBOX)
    assert rule_for(p, "other-1", "roles/a", elsewhere) == (True, None)
    assert rule_for(p, "sandbox-1", "roles/a", ANCESTRY) == (True, UNDER_FOLDER)


def test_role_settings_leaves_out_what_cannot_be_settled() -> None:
    p = policy(PROD_DB, UNDER_FOLDER)
    r = request(roles=("roles/cloudsql.admin", "roles/storage.admin"))
    assert list(role_settings(p, r, None)) == ["roles/cloudsql.admin"]
    assert set(role_settings(p, r, ANCESTRY)) == {"roles/cloudsql.admin", "roles/storage.admin"}


def test_longest_duration() -> None:
    assert longest_duration(policy()) == 2 * H
    assert longest_duration(policy(PROD_DB, SANDBOX)) == 8 * H
    # Break-glass has its own limit; it never widens an ordinary request's bound.
    glass = BreakGlassSettings(enabled=True, max_duration=12 * H)
    assert longest_duration(policy(PROD_DB, break_glass=glass)) == 2 * H


# -- limits -------------------------------------------------------------------------------------


def test_no_rules_limits_are_the_top_level_ones() -> None:
    assert limits(policy(), request(duration=2 * H), None) == ()
    assert limits(policy(), request(duration=3 * H, justification=""), None) == (
        Problem(ProblemCode.DURATION_TOO_LONG,
                "the duration 3h is longer than the maximum 2h", 3),
        Problem(ProblemCode.JUSTIFICATION_MISMATCH,
                "'justification' does not have the expected form: Bug or case number", 4),
    )


def test_duration_must_fit_the_shortest_max_among_the_roles() -> None:
    p = policy(PROD_DB, SANDBOX)
    r = request(roles=("roles/cloudsql.admin", "roles/storage.admin"), duration=90 * M)
    assert limits(p, r, None) == (
        Problem(
            ProblemCode.DURATION_TOO_LONG,
            'the duration 1h30m is longer than the maximum 1h of rule "production databases" '
            "(roles/cloudsql.admin)",
            3,
        ),
    )
    assert limits(p, request(roles=("roles/storage.admin",), duration=90 * M), None) == ()
    # A rule may allow longer than the top level.
    assert limits(p, request(project="sandbox-1", duration=8 * H), None) == ()
    too_long = limits(p, request(project="sandbox-1", duration=9 * H), None)
    assert [x.message for x in too_long] == [
        'the duration 9h is longer than the maximum 8h of rule "sandbox" (roles/cloudsql.admin)'
    ]


def test_the_top_level_limit_is_named_when_the_policy_has_rules() -> None:
    p = policy(SANDBOX)
    problems = limits(p, request(duration=3 * H), None)
    assert [x.message for x in problems] == [
        "the duration 3h is longer than the maximum 2h of the top-level settings "
        "(roles/cloudsql.admin)"
    ]


def test_every_pattern_must_match_each_miss_with_its_hint() -> None:
    ticket = Rule("storage", RuleMatch(roles=("roles/storage.*",)),
                  justification=RuleJustification(pattern=r".*TICKET-[0-9]+.*", hint="A ticket"))
    p = policy(PROD_DB, ticket)
    r = request(roles=("roles/cloudsql.admin", "roles/storage.admin", "roles/pubsub.admin"),
                justification="please")
    assert limits(p, r, None) == (
        Problem(
            ProblemCode.JUSTIFICATION_MISMATCH,
            "'justification' does not have the expected form of rule \"production databases\" "
            "(roles/cloudsql.admin): An incident number",
            4,
        ),
        Problem(
            ProblemCode.JUSTIFICATION_MISMATCH,
            "'justification' does not have the expected form of rule \"storage\" "
            "(roles/storage.admin): A ticket",
            4,
        ),
    )  # the top-level pattern `.+` matches: no third miss
    fits_both = "INC-1: see TICKET-2"
    assert limits(p, request(roles=r.roles, justification=fits_both), None) == ()
    one_miss = limits(p, request(roles=r.roles, justification="INC-1: restore"), None)
    assert [x.message.endswith("A ticket") for x in one_miss] == [True]


def test_one_pattern_shared_by_roles_is_one_miss() -> None:
    p = policy(PROD_DB)
    r = request(roles=("roles/cloudsql.admin", "roles/cloudsql.viewer"), justification="x")
    assert [x.message for x in limits(p, r, None)] == [
        "'justification' does not have the expected form of rule \"production databases\" "
        "(roles/cloudsql.admin, roles/cloudsql.viewer): An incident number"
    ]


def test_roles_under_folder_rules_are_judged_once_the_ancestry_is_known() -> None:
    p = policy(UNDER_FOLDER)
    r = request(project="books-1", duration=H, justification="INC-1: restore")
    assert limits(p, r, None) == ()  # not settled: not judged (the top-level .+ is not certain)
    judged = limits(p, r, ANCESTRY)
    assert [(x.code, x.line) for x in judged] == [
        (ProblemCode.DURATION_TOO_LONG, 3), (ProblemCode.JUSTIFICATION_MISMATCH, 4),
    ]
    assert judged[1].message.endswith(": A finance ticket")
    assert limits(p, r, ("folders/9",)) == ()  # the rule does not fit: top-level limits


def test_unsettled_roles_are_still_bound_by_the_longest_any_rule_allows() -> None:
    p = policy(UNDER_FOLDER, SANDBOX)
    problems = limits(p, request(project="books-1", duration=9 * H), None)
    assert problems == (
        Problem(ProblemCode.DURATION_TOO_LONG, "the duration 9h is longer than the maximum 8h", 3),
    )
    assert limits(p, request(project="books-1", duration=8 * H), None) == ()


def test_without_project_or_roles_only_what_holds_for_every_role_is_judged() -> None:
    # No rule sets a pattern: the top-level one applies to every role.
    p = policy(SANDBOX)
    assert [x.code for x in check_limits(p, None, None, 9 * H, "", lines=LINES)] == [
        ProblemCode.DURATION_TOO_LONG, ProblemCode.JUSTIFICATION_MISMATCH,
    ]
    assert check_limits(p, None, None, 8 * H, "ok", lines=LINES) == ()
    # A rule sets a pattern: which one applies is not known.
    assert check_limits(policy(PROD_DB), None, ("roles/a",), H, "nope", lines=LINES) == ()
    # None is not judged at all.
    assert check_limits(policy(), "a-project", ("roles/a",), None, None) == ()


def test_break_glass_is_judged_by_its_own_limits() -> None:
    glass = BreakGlassSettings(enabled=True, max_duration=H)
    p = policy(PROD_DB, break_glass=glass)
    ok = request(duration=H, justification="SEV-2: the database is down", break_glass=True)
    assert limits(p, ok, None) == ()
    # The rule's pattern does not apply to a break-glass request; the break-glass one does.
    assert limits(p, request(justification="INC-1: restore", break_glass=True), None) == ()
    bad = request(duration=2 * H, justification="please", break_glass=True)
    assert limits(p, bad, None) == (
        Problem(ProblemCode.DURATION_TOO_LONG,
                "the duration 2h is longer than the break-glass maximum 1h", 3),
        Problem(ProblemCode.JUSTIFICATION_MISMATCH,
                "'justification' does not have the form break-glass requires: An incident number",
                4),
    )
    # The break-glass maximum may be longer than the rules'; folder rules do not matter.
    longer = policy(UNDER_FOLDER, break_glass=BreakGlassSettings(enabled=True, max_duration=4 * H))
    assert limits(longer, request(duration=3 * H, break_glass=True), None) == ()


def test_break_glass_disabled() -> None:
    problems = limits(policy(), request(break_glass=True), None)
    assert problems == (
        Problem(
            ProblemCode.BREAK_GLASS_DISABLED,
            "'break_glass: true', but break-glass is not enabled in the policy "
            "(break_glass.enabled); remove the key and ask for approval",
            5,
        ),
    )


# -- unreachable rules --------------------------------------------------------------------------


def test_a_catch_all_earlier_rule_makes_every_later_one_unreachable() -> None:
    catch_all = Rule("everything", line=5)
    assert unreachable((catch_all, PROD_DB, SANDBOX)) == [
        (PROD_DB, catch_all), (SANDBOX, catch_all)
    ]
    star = Rule("star", RuleMatch(projects=("*",)), line=6)
    assert unreachable((star, PROD_DB)) == [(PROD_DB, star)]


def test_a_narrower_earlier_rule_does_not_make_a_wider_later_one_unreachable() -> None:
    wide = Rule("all prod", RuleMatch(projects=("*-prod",)), line=40)
    assert unreachable((PROD_DB, wide)) == []
    assert unreachable((wide, PROD_DB)) == [(PROD_DB, wide)]


@pytest.mark.parametrize(
    ("earlier", "later", "expected"),
    [
        (RuleMatch(projects=("*-prod",)), RuleMatch(projects=("payments-prod",)), True),
        (RuleMatch(projects=("*-prod",)), RuleMatch(projects=("pay*-prod",)), False),  # unsure
        (RuleMatch(projects=("a-*",)), RuleMatch(projects=("a-*",)), True),
        (RuleMatch(projects=("a-*",)), RuleMatch(), False),
        (RuleMatch(projects=("a-*",)), RuleMatch(projects=("a-1", "b-1")), False),
        (RuleMatch(roles=("roles/x",)), RuleMatch(roles=("roles/x",), projects=("p-1",)), True),
        (RuleMatch(folders=(FOLDER,)), RuleMatch(folders=(FOLDER,), roles=("roles/a",)), True),
        (RuleMatch(folders=(FOLDER,)), RuleMatch(roles=("roles/a",)), False),
        (RuleMatch(folders=(FOLDER,)), RuleMatch(folders=(FOLDER, "folders/2")), False),
        (RuleMatch(), RuleMatch(folders=(FOLDER,)), True),
    ],
)
def test_covers(earlier: RuleMatch, later: RuleMatch, expected: bool) -> None:
    assert covers(earlier, later) is expected


# -- properties ---------------------------------------------------------------------------------

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROJECTS = ["payments-prod", "sandbox-1", "books-dev"]
ROLES = ["roles/cloudsql.admin", "roles/storage.admin", "roles/pubsub.editor"]
FOLDERS = ["folders/1", "folders/2"]
patterns = st.lists(
    st.sampled_from(["*", "*-prod", "sandbox-*", "payments-prod", "roles/cloudsql.*",
                     "roles/storage.admin", "roles/*.admin"]),
    max_size=2,
)
rules_strategy = st.lists(
    st.builds(
        lambda i, p, f, r, d, j: Rule(
            f"r{i}", RuleMatch(tuple(p), tuple(f), tuple(r)),
            max_duration=None if d is None else d * 30 * M,
            justification=RuleJustification(pattern=j, hint=f"hint {i}" if j else None),
        ),
        st.integers(0, 999), patterns, st.lists(st.sampled_from(FOLDERS), max_size=2), patterns,
        st.one_of(st.none(), st.integers(1, 16)), st.sampled_from([None, "INC-.*", ".*x.*"]),
    ),
    max_size=5,
)


@PROPS
@given(rules_strategy, st.sampled_from(PROJECTS),
       st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True),
       st.integers(1, 16), st.sampled_from(["INC-1 x", "x", "INC-2"]),
       st.one_of(st.none(), st.lists(st.sampled_from(FOLDERS), max_size=2)))
def test_limits_agree_with_the_settings_of_each_role(
    rules: list[Rule], project: str, roles: list[str], halves: int, why: str,
    ancestry: list[str] | None,
) -> None:
    rules = [replace(rule, name=f"r{i}") for i, rule in enumerate(rules)]  # unique names
    p = policy(*rules)
    r = request(project, tuple(roles), halves * 30 * M, why)
    known = None if ancestry is None else (*ancestry, "organizations/1")
    settled = [settings_for(p, project, role, known) for role in roles]
    problems = limits(p, r, known)
    judged = [s for s in settled if s is not None]
    too_long = any(r.duration > s.max_duration for s in judged) or (
        not judged and r.duration > longest_duration(p)
    )
    assert (ProblemCode.DURATION_TOO_LONG in [x.code for x in problems]) == too_long
    misses = [x for x in problems if x.code == ProblemCode.JUSTIFICATION_MISMATCH]
    if judged:
        expected = {(s.justification.pattern, s.justification.hint) for s in judged
                    if re.fullmatch(s.justification.pattern, why) is None}
        assert len(misses) == len(expected)
    if known is not None:
        assert all(s is not None for s in settled)  # with the ancestry, every role settles
    # The first fitting rule applies: no earlier rule fits.
    for role, s in zip(roles, settled, strict=True):
        if s is not None and s.rule is not None:
            index = [rule.name for rule in rules].index(s.rule)
            assert not any(fits(rule.match, project, role, known) for rule in rules[:index])
            assert fits(rules[index].match, project, role, known)


@PROPS
@given(rules_strategy, st.sampled_from(PROJECTS), st.sampled_from(ROLES),
       st.lists(st.sampled_from(FOLDERS), max_size=2))
def test_an_unreachable_rule_never_applies(
    rules: list[Rule], project: str, role: str, ancestry: list[str]
) -> None:
    rules = [replace(rule, name=f"r{i}") for i, rule in enumerate(rules)]  # unique names
    dead = {rule.name for rule, _ in unreachable(rules)}
    settings = settings_for(policy(*rules), project, role, tuple(ancestry))
    assert settings is not None
    assert settings.rule not in dead
