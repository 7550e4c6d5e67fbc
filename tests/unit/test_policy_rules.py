"""`rules:`, designated approvers, veto and `break_glass:` in policy/jitaccess.yaml, and the
request file's `break_glass` key and rule limits (README: rules, designated approvers,
break-glass). Pure: no fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webhook.core.model import (
    AccessRequest,
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
from webhook.core.policy import parse_policy
from webhook.core.problems import ProblemCode
from webhook.core.request_file import parse_request

H = timedelta(hours=1)

SPEC_RULES = """\
scope: organizations/1
rules:
  - name: production databases          # shown in comments and audit entries
    match:                              # every key given must fit; each list is any-of
      projects: ["*-prod"]              # shell-style patterns on the project ID
      folders: ["folders/456789012345"] # the project lies under one of them, at any depth
      roles: ["roles/cloudsql.*"]       # shell-style patterns on the role name
    max_duration: 1h
    approval:
      required: 2
      approvers: ["group:db-leads@example.com", "user:cto@example.com"]
      peers: true       # false: only `approvers` count, qualified peers do not
      veto: true        # a qualified reviewer's "Request changes" blocks the role
    justification:
      pattern: 'INC-[0-9]+: .+'
      hint: 'An incident number, e.g. "INC-1234: restore the replica"'
break_glass:
  enabled: false
  max_duration: 1h
  justification: {pattern: '(INC|SEV)-[0-9]+: .+', hint: 'An incident number'}
  review_within: 24h
"""


def problems_of(text: str) -> list[tuple[str, int | None]]:
    policy, problems = parse_policy(text)
    assert policy is None
    return [(p.code, p.line) for p in problems]


def valid(text: str) -> Policy:
    policy, problems = parse_policy(text)
    assert problems == ()
    assert policy is not None
    return policy


# -- the policy ---------------------------------------------------------------------------------


def test_the_documented_rule_and_break_glass_parse() -> None:
    policy = valid(SPEC_RULES)
    assert policy.rules == (
        Rule(
            "production databases",
            RuleMatch(("*-prod",), ("folders/456789012345",), ("roles/cloudsql.*",)),
            max_duration=H,
            approval=RuleApproval(
                required=2, approvers=("group:db-leads@example.com", "user:cto@example.com"),
                peers=True, veto=True,
            ),
            justification=RuleJustification(
                "INC-[0-9]+: .+", 'An incident number, e.g. "INC-1234: restore the replica"'
            ),
            line=3,
        ),
    )
    assert policy.break_glass == BreakGlassSettings()
    assert policy.warnings == ()


def test_defaults_without_the_new_sections() -> None:
    policy = valid("scope: organizations/1\nrules:\nbreak_glass:\n")
    assert policy == Policy("organizations/1")
    assert valid("scope: organizations/1\nrules: []\nbreak_glass: {}\n") == policy


def test_a_rule_with_only_a_name_applies_to_every_role() -> None:
    policy = valid("scope: organizations/1\nrules:\n  - name: all\n  - {name: b, match: {}}\n")
    assert [(r.name, r.match, r.line) for r in policy.rules] == [
        ("all", RuleMatch(), 3), ("b", RuleMatch(), 4),
    ]


def test_top_level_approvers_peers_and_veto() -> None:
    policy = valid(
        "scope: organizations/1\napproval:\n"
        "  approvers: [User:CTO@Example.com, 'group:leads@example.com', user:cto@example.com]\n"
        "  peers: false\n  veto: true\n"
    )
    assert policy.approval == ApprovalSettings(
        approvers=("user:cto@example.com", "group:leads@example.com"), peers=False, veto=True
    )


def test_break_glass_settings() -> None:
    policy = valid(
        "scope: organizations/1\nbreak_glass:\n  enabled: true\n  max_duration: 30m\n"
        "  justification: {hint: An outage number}\n  review_within: 4h\n"
    )
    assert policy.break_glass == BreakGlassSettings(
        enabled=True, max_duration=timedelta(minutes=30),
        justification=JustificationSettings(r"(INC|SEV)-[0-9]+: .+", "An outage number"),
        review_within=4 * H,
    )


@pytest.mark.parametrize(
    ("approver", "message"),
    [
        ("serviceAccount:ci@example.com",
         "'approval.approvers' holds 'serviceAccount:ci@example.com'; only "
         "people (user:) and groups (group:) can review on GitHub; an approver is user:EMAIL "
         "or group:EMAIL"),
        ("domain:example.com", None),
        ("alice@example.com",
         "'approval.approvers' holds 'alice@example.com', a bare email; write "
         "user:alice@example.com or group:alice@example.com; an approver is user:EMAIL or "
         "group:EMAIL"),
        ("user:alice", None),
        ("user:alice@example", None),
        ("user:a@b@example.com", None),
        ("group:", None),
        ("'user: a@example.com'", None),
        ("1", "'approval.approvers' holds a number; an approver is user:EMAIL or group:EMAIL"),
    ],
)
def test_invalid_approvers(approver: str, message: str | None) -> None:
    text = f"scope: organizations/1\napproval:\n  approvers:\n    - user:ok@example.com\n" \
           f"    - {approver}\n"
    policy, problems = parse_policy(text)
    assert policy is None
    assert [(p.code, p.line) for p in problems] == [(ProblemCode.INVALID_APPROVER, 5)]
    if message is not None:
        assert problems[0].message == message


def test_approvers_must_be_a_short_list() -> None:
    assert problems_of("scope: organizations/1\napproval: {approvers: user:a@example.com}\n") == [
        (ProblemCode.WRONG_TYPE, 2)
    ]
    many = ", ".join(f"user:u{i}@example.com" for i in range(51))
    assert problems_of(f"scope: organizations/1\napproval:\n  approvers: [{many}]\n") == [
        (ProblemCode.TOO_LONG, 3)
    ]
    fifty = ", ".join(f"user:u{i}@example.com" for i in range(50))
    assert len(valid(f"scope: organizations/1\napproval: {{approvers: [{fifty}]}}\n")
               .approval.approvers) == 50


def test_peers_false_without_approvers_at_the_top_level() -> None:
    policy, problems = parse_policy("scope: organizations/1\napproval:\n  peers: false\n")
    assert policy is None
    assert problems == (
        Problem(
            ProblemCode.INVALID_RULE,
            "'approval' has 'peers: false' and no 'approvers', so nobody can approve a role "
            "that needs approval; name approvers or allow peers",
            3,
        ),
    )
    assert valid(
        "scope: organizations/1\napproval: {peers: false, approvers: [group:g@example.com]}\n"
    ).approval.peers is False


def test_peers_false_without_approvers_in_a_rule() -> None:
    text = """\
scope: organizations/1
rules:
  - name: approvers only
    approval:
      peers: false
      approvers: [group:leads@example.com]
  - name: nobody
    approval:
      peers: false
  - name: emptied
    approval: {approvers: []}
"""
    # `emptied` keeps the top-level peers: true, so peers can still approve.
    policy, problems = parse_policy(text)
    assert policy is None
    assert problems == (
        Problem(
            ProblemCode.INVALID_RULE,
            "rule 'nobody' has 'peers: false' and no 'approvers', so nobody can approve a role "
            "that needs approval; name approvers or allow peers",
            9,
        ),
    )


def test_a_rule_falls_back_to_top_level_approvers_for_peers_false() -> None:
    policy = valid(
        "scope: organizations/1\napproval: {approvers: [user:cto@example.com]}\n"
        "rules:\n  - {name: strict, approval: {peers: false}}\n"
    )
    assert policy.rules[0].approval == RuleApproval(peers=False)
    bad = ("scope: organizations/1\napproval: {approvers: [user:cto@example.com]}\n"
           "rules:\n  - {name: strict, approval: {peers: false, approvers: []}}\n")
    assert problems_of(bad) == [(ProblemCode.INVALID_RULE, 4)]


def test_every_problem_of_the_rules_at_once_in_line_order() -> None:
    text = """\
scope: organizations/1
activation: {min_duration: 10m}
rules:
  - name: first
    match:
      projects: []
      folders: [folder/1, "folders/12", folders/x]
      roles: ["roles/a b"]
      labels: [x]
    max_duration: 5m
    approval:
      request_reviewers: 2
      required: 0
      approvers: [serviceAccount:ci@example.com]
      veto: maybe
    justification: {pattern: '(', hint: 7}
    note: hello
  - name: FIRST
  - 3
  - match: {projects: "*-prod"}
  - name: ''
  - name: x
    match: [projects]
break_glass:
  enabled: 1
  max_duration: 5m
  justification: {pattern: '[', tone: loud}
  review_within: soon
"""
    assert problems_of(text) == [
        (ProblemCode.INVALID_MATCH, 6),
        (ProblemCode.INVALID_MATCH, 7),
        (ProblemCode.INVALID_MATCH, 7),
        (ProblemCode.INVALID_MATCH, 8),
        (ProblemCode.UNKNOWN_KEY, 9),
        (ProblemCode.INVALID_DURATION_RANGE, 10),
        (ProblemCode.UNKNOWN_KEY, 12),
        (ProblemCode.OUT_OF_RANGE, 13),
        (ProblemCode.INVALID_APPROVER, 14),
        (ProblemCode.WRONG_TYPE, 15),
        (ProblemCode.INVALID_PATTERN, 16),
        (ProblemCode.WRONG_TYPE, 16),
        (ProblemCode.UNKNOWN_KEY, 17),
        (ProblemCode.INVALID_RULE, 18),  # the name is used twice, case-insensitively
        (ProblemCode.WRONG_TYPE, 19),
        (ProblemCode.MISSING_KEY, 20),
        (ProblemCode.WRONG_TYPE, 20),
        (ProblemCode.INVALID_RULE, 21),  # blank name
        (ProblemCode.WRONG_TYPE, 23),
        (ProblemCode.WRONG_TYPE, 25),
        (ProblemCode.INVALID_DURATION_RANGE, 26),
        (ProblemCode.UNKNOWN_KEY, 27),
        (ProblemCode.INVALID_PATTERN, 27),
        (ProblemCode.INVALID_DURATION, 28),
    ]


def test_messages_name_the_rule_and_key() -> None:
    text = ("scope: organizations/1\nrules:\n  - name: a\n  - name: b\n"
            "    approval: {request_reviewers: 1}\n    match: {folders: [folders/01]}\n"
            "  - name: A\n")
    _, problems = parse_policy(text)
    assert [p.message for p in problems] == [
        "'rules[1].approval.request_reviewers' cannot be set per rule: it is how many "
        "reviewers are asked for the whole PR; set it in the top-level 'approval'",
        "'rules[1].match.folders' holds 'folders/01'; a folder is folders/NUMBER, e.g. "
        "folders/456789012345",
        "the rule name 'A' is used twice (first on line 3); rule names must differ",
    ]


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("{name: " + "n" * 101 + "}", ProblemCode.TOO_LONG),
        ("{name: 5}", ProblemCode.WRONG_TYPE),
        ("{name: a, match: {roles: ['" + "r" * 201 + "']}}", ProblemCode.INVALID_MATCH),
        ("{name: a, match: {roles: [roles/a, 3]}}", ProblemCode.WRONG_TYPE),
        ("{name: a, match: {projects: ['']}}", ProblemCode.INVALID_MATCH),
        ("{name: a, match: {folders: [organizations/1]}}", ProblemCode.INVALID_MATCH),
        ("{name: a, match: x}", ProblemCode.WRONG_TYPE),
        ("{name: a, max_duration: 3d}", ProblemCode.INVALID_DURATION),
        ("{name: a, approval: {max_age: 5}}", ProblemCode.WRONG_TYPE),
        ("{name: a, approval: {peers: 'no'}}", ProblemCode.WRONG_TYPE),
        ("{name: a, approval: []}", ProblemCode.WRONG_TYPE),
        ("{name: a, justification: {pattern: '(a'}}", ProblemCode.INVALID_PATTERN),
    ],
)
def test_single_rule_problems_carry_their_line(rule: str, code: ProblemCode) -> None:
    assert problems_of(f"scope: organizations/1\nrules:\n  - {{name: ok}}\n  - {rule}\n") == [
        (code, 4)
    ]


def test_rules_must_be_a_list_of_at_most_200() -> None:
    assert problems_of("scope: organizations/1\nrules: {name: a}\n") == [
        (ProblemCode.WRONG_TYPE, 2)
    ]
    many = "".join(f"  - {{name: r{i}, match: {{projects: [p{i}-*]}}}}\n" for i in range(201))
    assert problems_of(f"scope: organizations/1\nrules:\n{many}") == [(ProblemCode.TOO_LONG, 3)]
    two_hundred = "".join(f"  - {{name: r{i}, match: {{projects: [p{i}-*]}}}}\n"
                          for i in range(200))
    assert len(valid(f"scope: organizations/1\nrules:\n{two_hundred}").rules) == 200


def test_unreachable_rules_are_warnings() -> None:
    text = """\
scope: organizations/1
rules:
  - name: databases
    match: {roles: ["roles/cloudsql.*"]}
  - name: prod
    match: {projects: ["*-prod"]}
  - name: prod databases
    match: {projects: [payments-prod], roles: [roles/cloudsql.admin]}
  - name: everything
  - name: sandbox
    match: {projects: ["sandbox-*"]}
"""
    policy = valid(text)  # warnings never make the policy invalid
    assert policy.warnings == (
        Problem(
            ProblemCode.UNREACHABLE_RULE,
            "rule 'prod databases' can never apply: the earlier rule 'databases' (line 3) fits "
            "every role it fits",
            7,
        ),
        Problem(
            ProblemCode.UNREACHABLE_RULE,
            "rule 'sandbox' can never apply: the earlier rule 'everything' (line 9) fits every "
            "role it fits",
            10,
        ),
    )
    # `prod` after the narrower `databases` is not unreachable; neither is the catch-all.
    assert len(policy.rules) == 5


# -- request files ------------------------------------------------------------------------------

REQUEST = """\
project: payments-prod
roles: [roles/cloudsql.admin, roles/storage.admin]
duration: 1h
justification: 'INC-1: restore'
"""
GLASS = "scope: organizations/1\nbreak_glass: {enabled: true}\n"


def test_break_glass_key() -> None:
    request, problems = parse_request(REQUEST + "break_glass: true\n", valid(GLASS))
    assert problems == ()
    assert request is not None and request.break_glass is True
    assert request.lines == {"project": 1, "roles": 2, "duration": 3, "justification": 4,
                             "break_glass": 5}
    ordinary, problems = parse_request(REQUEST + "break_glass: false\n")
    assert problems == ()
    assert ordinary is not None and ordinary.break_glass is False
    assert parse_request(REQUEST)[0] == AccessRequest(
        "payments-prod", ("roles/cloudsql.admin", "roles/storage.admin"), H, "INC-1: restore"
    )


@pytest.mark.parametrize("value", ["'true'", "1", "", "[true]", "{a: 1}"])
def test_break_glass_must_be_a_yaml_bool(value: str) -> None:
    request, problems = parse_request(REQUEST + f"break_glass: {value}\n", valid(GLASS))
    assert request is None
    assert [(p.code, p.line) for p in problems] == [(ProblemCode.WRONG_TYPE, 5)]
    assert problems[0].message.startswith("'break_glass' must be true or false, not ")


def test_break_glass_when_disabled_is_a_problem_with_its_line() -> None:
    _, problems = parse_request("break_glass: true\n" + REQUEST)
    assert [(p.code, p.line) for p in problems] == [(ProblemCode.BREAK_GLASS_DISABLED, 1)]


def test_unknown_key_lists_break_glass_only_when_enabled() -> None:
    _, problems = parse_request(REQUEST + "break_glas: true\n")
    assert problems[0].message == (
        "unknown key 'break_glas' (did you mean 'break_glass'?); the keys are project, roles, "
        "duration, justification"
    )
    _, problems = parse_request(REQUEST + "urgent: true\n", valid(GLASS))
    assert problems[0].message == (
        "unknown key 'urgent'; the keys are project, roles, duration, justification, break_glass"
    )


def test_break_glass_request_is_judged_by_break_glass_limits() -> None:
    policy = valid(GLASS + "activation: {max_duration: 4h}\n")
    text = REQUEST.replace("1h", "2h").replace("INC-1: restore", "please") + "break_glass: true\n"
    _, problems = parse_request(text, policy)
    assert problems == (
        Problem(ProblemCode.DURATION_TOO_LONG,
                "the duration 2h is longer than the break-glass maximum 1h", 3),
        Problem(ProblemCode.JUSTIFICATION_MISMATCH,
                "'justification' does not have the form break-glass requires: An incident number",
                4),
    )
    # The same file without the key is an ordinary request within the top-level limits.
    assert parse_request(text.replace("break_glass: true\n", ""), policy)[1] == ()


RULED = """\
scope: organizations/1
activation: {max_duration: 4h}
rules:
  - name: databases
    match: {roles: ["roles/cloudsql.*"]}
    max_duration: 1h
    justification: {pattern: 'INC-[0-9]+: .+', hint: An incident number}
  - name: storage
    match: {roles: ["roles/storage.*"]}
    max_duration: 2h
    justification: {pattern: '.*TICKET-[0-9]+.*', hint: A ticket}
  - name: finance
    match: {folders: [folders/77]}
    max_duration: 10m
"""


def test_request_limits_follow_the_roles_rules() -> None:
    policy = valid(RULED)
    text = REQUEST.replace("1h", "90m").replace("INC-1: restore", "please")
    request, problems = parse_request(text, policy)
    assert request is None
    assert problems == (
        Problem(
            ProblemCode.DURATION_TOO_LONG,
            'the duration 1h30m is longer than the maximum 1h of rule "databases" '
            "(roles/cloudsql.admin)",
            3,
        ),
        Problem(
            ProblemCode.JUSTIFICATION_MISMATCH,
            "'justification' does not have the expected form of rule \"databases\" "
            "(roles/cloudsql.admin): An incident number",
            4,
        ),
        Problem(
            ProblemCode.JUSTIFICATION_MISMATCH,
            "'justification' does not have the expected form of rule \"storage\" "
            "(roles/storage.admin): A ticket",
            4,
        ),
    )
    fine = REQUEST.replace("INC-1: restore", "INC-1: TICKET-9")
    assert parse_request(fine, policy)[1] == ()


def test_roles_under_folder_rules_are_left_to_the_service() -> None:
    policy = valid(RULED)
    text = "project: books-1\nroles: [roles/pubsub.admin]\nduration: 3h\njustification: x\n"
    request, problems = parse_request(text, policy)  # the finance rule may cap it at 10m
    assert problems == ()
    assert request is not None and request.lines["duration"] == 3
    too_long = text.replace("3h", "5h")  # longer than any rule allows: surely too long
    assert [(p.code, p.message, p.line) for p in parse_request(too_long, policy)[1]] == [
        (ProblemCode.DURATION_TOO_LONG, "the duration 5h is longer than the maximum 4h", 3)
    ]


def test_limits_are_reported_with_the_other_problems() -> None:
    policy = valid(RULED)
    # The project is wrong, so no rule can be chosen: only the outer bound is judged.
    text = "project: X\nroles: [roles/cloudsql.admin]\nduration: 5h\njustification: x\nfoo: 1\n"
    assert [(p.code, p.line) for p in parse_request(text, policy)[1]] == [
        (ProblemCode.INVALID_PROJECT, 1),
        (ProblemCode.DURATION_TOO_LONG, 3),
        (ProblemCode.UNKNOWN_KEY, 5),
    ]
    # A justification that is too long is still matched against the rule's pattern.
    long = REQUEST.replace("'INC-1: restore'", "x" * 101)
    assert [(p.code, p.line) for p in parse_request(long, policy)[1]] == [
        (ProblemCode.JUSTIFICATION_TOO_LONG, 4),
        (ProblemCode.JUSTIFICATION_MISMATCH, 4),
        (ProblemCode.JUSTIFICATION_MISMATCH, 4),
    ]


def test_an_unreadable_approvers_list_is_one_problem_not_two() -> None:
    top = "scope: organizations/1\napproval: {peers: false, approvers: [a@example.com]}\n"
    assert problems_of(top) == [(ProblemCode.INVALID_APPROVER, 2)]
    rule = ("scope: organizations/1\nrules:\n"
            "  - {name: a, approval: {peers: false, approvers: [domain:example.com]}}\n")
    assert problems_of(rule) == [(ProblemCode.INVALID_APPROVER, 3)]
