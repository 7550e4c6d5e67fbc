"""The lifecycle under rules (README: rules, designated approvers and veto, break-glass), through
the in-memory ports: what the PR shows, whom it asks, what eligibility is asked, what a merge
does.

The rules are set on the parsed policy (the YAML of `rules:` is the policy parser's to test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.lifecycle.conftest import JUSTIFICATION, LOGS, PROJECT, REPO, SQL, World
from webhook.core import audit_record as audit_events
from webhook.core.model import (
    AccessRequest,
    BreakGlassSettings,
    JustificationSettings,
    Policy,
    Problem,
    ReviewState,
    Rule,
    RuleApproval,
    RuleMatch,
)
from webhook.core.records import ACTIVATION_MARKER_PREFIX, COMMENT_MARKER, REFUSAL_MARKER_PREFIX
from webhook.service import lifecycle as lifecycle_module

LEADS = "group:db-leads@example.com"
FOLDER = "folders/456789012345"


@pytest.fixture
def with_policy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> Callable[[Callable[[Policy], Policy]], None]:
    """Change the policy the lifecycle parses from the default branch; lead and erin get
    identities, lead is in db-leads."""
    world.github.default_files["policy/identities.yaml"] += (
        b"lead: lead@example.com\nerin: erin@example.com\n"
    )
    world.eligibility.groups = {LEADS: frozenset({"lead@example.com"})}
    parse = lifecycle_module._parse_policy

    def use(change: Callable[[Policy], Policy]) -> None:
        def parsed(data: bytes) -> tuple[Policy | None, tuple[Problem, ...]]:
            policy, problems = parse(data)
            return (change(policy) if policy is not None else None), problems

        monkeypatch.setattr(lifecycle_module, "_parse_policy", parsed)

    return use


def status_comment(world: World, number: int) -> str:
    (comment,) = world.github.bodies(number, marker=COMMENT_MARKER)
    return comment


def rule(**approval: object) -> Callable[[Policy], Policy]:
    def change(policy: Policy) -> Policy:
        return replace(policy, rules=(
            Rule("production databases",
                 RuleMatch(projects=("*-prod",), roles=("roles/cloudsql.*",)),
                 approval=RuleApproval(**approval)),  # type: ignore[arg-type]
        ))
    return change


# ----------------------------------------------------------------------------------------------
# Veto


def test_a_veto_fails_the_pr_until_the_review_is_dismissed(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
) -> None:
    with_policy(rule(veto=True))
    n = world.open_request(roles=(SQL,))
    world.review(n, "carol")
    world.review(n, "bob", ReviewState.CHANGES_REQUESTED)

    result = world.lifecycle.on_review(n, "d-1", "bob")

    assert result.state == "vetoed"
    assert [(s.state, s.description) for s in world.github.statuses] == [
        ("failure", f"Vetoed by @bob ({SQL})"),
    ]
    comment = status_comment(world, n)
    assert "### jit-access: ⛔ Vetoed" in comment
    assert "⛔ vetoed by bob" in comment
    assert "Rule `production databases`" in comment
    assert "The veto ends when that reviewer approves or their review is dismissed" in comment
    assert world.github.review_requests == []  # nobody is asked to approve a vetoed request
    ((question, _),) = world.eligibility.questions
    assert (question.vetoers, question.veto_roles) == (("bob@example.com",), (SQL,))

    world.review(n, "bob", ReviewState.DISMISSED)
    result = world.lifecycle.on_review(n, "d-2", "bob")

    assert result.state == "ready"
    assert world.github.statuses[-1].description == "Ready: approved by carol"


def test_a_vetoed_pr_that_is_merged_is_refused(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
) -> None:
    with_policy(rule(veto=True))
    n = world.open_request(roles=(SQL,))
    world.review(n, "carol")
    world.review(n, "dave", ReviewState.CHANGES_REQUESTED)
    world.merge(n)

    result = world.lifecycle.on_merge(n, "d-9")

    assert result.state == "refused"
    assert f"Vetoed by @dave ({SQL})" in result.message
    assert world.activator.activations == []
    (refusal,) = [b for b in world.github.bodies(n) if b.startswith(REFUSAL_MARKER_PREFIX)]
    assert "Vetoed by" in refusal


def test_a_request_for_changes_without_a_veto_rule_is_asked_about_by_nobody(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
) -> None:
    with_policy(rule(veto=False))
    n = world.open_request(roles=(SQL,))
    world.review(n, "bob", ReviewState.CHANGES_REQUESTED)

    assert world.lifecycle.on_review(n, "d-1", "bob").state == "pending"
    ((question, _),) = world.eligibility.questions
    assert (question.vetoers, question.veto_roles) == ((), ())


# ----------------------------------------------------------------------------------------------
# Designated approvers


def test_a_designated_approver_approves_where_a_peer_does_not_count(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
) -> None:
    with_policy(rule(approvers=(LEADS, "user:erin@example.com"), peers=False))
    n = world.open_request(roles=(SQL,))

    assert world.lifecycle.on_change(n, "d-1", opened=True).state == "pending"
    # The designated approvers are asked, not the qualified peers (bob, carol, dave).
    assert world.github.review_requests == [(n, ("erin", "lead"))]
    comment = status_comment(world, n)
    assert f"who may approve: designated approvers `{LEADS}`, erin" in comment

    world.review(n, "bob")
    assert world.lifecycle.on_review(n, "d-2", "bob").state == "pending"
    assert "only designated approvers count for roles/cloudsql.admin" in status_comment(world, n)

    world.review(n, "lead")
    result = world.lifecycle.on_review(n, "d-3", "lead")

    assert result.state == "ready"
    assert world.github.statuses[-1].description == "Ready: approved by lead"
    assert f"is a designated approver (member of {LEADS.replace('@', '@' + chr(0x200D))})" in (
        status_comment(world, n)
    )
    question, _ = world.eligibility.questions[-1]
    assert question.approver_groups == (LEADS,)
    assert set(question.reviewers) == {"bob@example.com", "lead@example.com"}

    world.merge(n)
    assert world.lifecycle.on_merge(n, "d-4").state == "activated"
    (binding,) = world.activator.held(PROJECT)
    assert binding.description == (
        f"Approved by lead@example.com, justification: {JUSTIFICATION} ({REPO}#{n})"
    )


# ----------------------------------------------------------------------------------------------
# Folders


def test_a_folder_rule_is_judged_from_the_ancestry_the_lookup_reads(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
) -> None:
    def folder(policy: Policy) -> Policy:
        return replace(policy, rules=(
            Rule("finance", RuleMatch(folders=(FOLDER,)), max_duration=timedelta(minutes=30)),
        ))

    with_policy(folder)
    world.eligibility.ancestry = (FOLDER, "organizations/123456789012")
    n = world.open_request(roles=(LOGS,))

    assert world.lifecycle.on_change(n, "d-1", opened=True).state == "invalid"
    ((question, _),) = world.eligibility.questions
    assert question.ancestry is True
    # The problem is the request file's, found once the folders are known.
    (line,) = [x for x in status_comment(world, n).splitlines()
               if x.startswith("- ") and "the duration 1h" in x]
    assert line.startswith("- `requests/alice/req.yaml`")
    assert line.endswith(': the duration 1h is longer than the maximum 30m of rule "finance" '
                         f"({LOGS})")

    world.eligibility.ancestry = None  # the folders cannot be read
    assert world.lifecycle.on_change(n, "d-2", opened=False).state == "error"
    assert "folders could not be read" in status_comment(world, n)


# ----------------------------------------------------------------------------------------------
# Break-glass


def break_glass(policy: Policy) -> Policy:
    return replace(policy, break_glass=BreakGlassSettings(
        enabled=True, max_duration=timedelta(hours=1),
        justification=JustificationSettings("INC-[0-9]+: .+", "An incident number"),
    ))


def test_break_glass_is_ready_without_approval_and_the_activation_asks_for_a_review(
    world: World, with_policy: Callable[[Callable[[Policy], Policy]], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_policy(break_glass)
    # `break_glass: true` in the file is the request parser's to read (and to test); here the
    # parsed request says it.
    parse = lifecycle_module.parse_request

    def parsed(text: bytes, policy: Policy | None) -> tuple[AccessRequest | None,
                                                            tuple[Problem, ...]]:
        request, problems = parse(text, policy)
        return (replace(request, break_glass=True) if request else None), problems

    monkeypatch.setattr(lifecycle_module, "parse_request", parsed)
    n = world.open_request(roles=(SQL,))

    result = world.lifecycle.on_change(n, "d-1", opened=True)

    assert result.state == "ready"
    assert world.github.statuses[-1].description == f"Break-glass: ready without approval ({SQL})"
    assert "🚨 Break-glass request" in status_comment(world, n)
    assert world.github.review_requests == []  # asked after the merge, not before

    world.merge(n)
    assert world.lifecycle.on_merge(n, "d-2").state == "activated"
    (question, _) = world.eligibility.questions[-1]
    assert question.break_glass and question.peers  # the merge asks whom to ask for a review
    (comment,) = [b for b in world.github.bodies(n) if b.startswith(ACTIVATION_MARKER_PREFIX)]
    assert "🚨 Break-glass access activated" in comment
    assert "@bob, @carol, @dave, please review this pull request" in comment
    assert audit_events.ACTIVATE_ROLE in world.audit.events()
