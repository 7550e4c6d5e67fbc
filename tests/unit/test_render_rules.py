"""Renderings of decisions under rules: the rule and who may approve, designated approvers,
vetoes and break-glass said on the PR, inert and within GitHub's limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.inert import live_autolinks, outside_code
from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    ApprovalSettings,
    Decision,
    JustificationSettings,
    Problem,
    PullRequestRef,
    RoleDecision,
    RoleSettings,
    State,
)
from webhook.core.problems import ProblemCode
from webhook.core.render import (
    MAX_COMMENT_CHARS,
    activation_comment,
    status_comment,
    status_description,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "0123456789abcdef0123456789abcdef01234567"
PR = PullRequestRef("acme/access", 7, "alice", HEAD, "https://github.com/acme/access/pull/7")
SQL = "roles/cloudsql.admin"
LOGS = "roles/logging.viewer"
LEADS = "group:db-leads@example.com"
ZWJ = "\u200d"
REQUEST = AccessRequest("payments-prod", (SQL,), timedelta(hours=1), "INC-1234: fix replica")


def settings(
    role: str = SQL, rule: str | None = "production databases", *, required: int = 2,
    approvers: tuple[str, ...] = (LEADS, "user:cto@example.com"), peers: bool = True,
    veto: bool = True,
) -> RoleSettings:
    return RoleSettings(
        role, rule, timedelta(hours=1), JustificationSettings(),
        ApprovalSettings(required=required, approvers=approvers, peers=peers, veto=veto),
    )


def decision(state: State, *roles: RoleDecision, **changes: object) -> Decision:
    base = Decision(state, PR, request=REQUEST, requester="alice@example.com", roles=roles)
    return replace(base, **changes)  # type: ignore[arg-type]


VETOED = RoleDecision(
    SQL, ApprovalKind.MULTI_PARTY, approvers=("carol", "lead"), settings=settings(),
    vetoed_by=("bob",), approver_logins=("cto",),
    reasons=(
        "@bob requests changes: a veto (is a qualified peer)",
        "@dave's approval does not count: not a qualified peer or designated approver for "
        f"{SQL}",
        f"@lead's approval counts: is a designated approver (member of {LEADS})",
    ),
)


def test_a_vetoed_decision_names_who_vetoes_and_the_role() -> None:
    d = decision(State.VETOED, VETOED,
                 problems=(Problem(ProblemCode.VETOED, f"Vetoed by @bob ({SQL})"),))
    assert status_description(d) == f"Vetoed by @bob ({SQL})"
    text = status_comment(d)
    assert "### jit-access: ⛔ Vetoed\n" in text
    assert (
        f"- `{SQL}`: multi-party approval, 2 approvals (carol, lead), complete; ⛔ vetoed by bob\n"
    ) in text
    assert (
        "  - Rule `production databases`; 2 approvals required; who may approve: qualified "
        f"peers and designated approvers `{LEADS}`, cto; a qualified reviewer's request for "
        "changes vetoes it\n"
    ) in text
    # The approval that counted through a group first, then the others by reviewer.
    lead = text.index(f"  - @{ZWJ}lead's approval counts: is a designated approver")
    bob = text.index(f"  - @{ZWJ}bob requests changes: a veto (is a qualified peer)")
    dave = text.index(f"  - @{ZWJ}dave's approval does not count: not a qualified peer")
    assert lead < bob < dave
    assert "A qualified reviewer (bob) requested changes" in text
    assert live_autolinks(text) == []


def test_several_vetoes_are_listed_in_the_description_under_140() -> None:
    roles = [
        replace(VETOED, role=f"roles/custom.role{i}", vetoed_by=("bob", "Carol", f"u{i}"))
        for i in range(10)
    ]
    text = status_description(decision(State.VETOED, *roles))
    assert text.startswith("Vetoed by @bob, @Carol, @u0, @u1")
    assert len(text) <= 140


def test_the_default_policy_and_peers_false_are_said() -> None:
    role = RoleDecision(
        SQL, ApprovalKind.MULTI_PARTY, needed=1,
        settings=settings(rule=None, required=1, approvers=(LEADS,), peers=False, veto=False),
    )
    text = status_comment(decision(State.PENDING, role, candidate_reviewers=("lead",)))
    assert (
        f"  - Default policy; 1 approval required; who may approve: designated approvers "
        f"`{LEADS}`\n"
    ) in text
    assert "Qualified reviewers: @lead\n" in text


def test_a_self_approval_role_shows_its_rule_and_who_may_veto_only_with_a_veto() -> None:
    plain = RoleDecision(LOGS, ApprovalKind.SELF, settings=settings(LOGS, "dev", veto=False))
    text = status_comment(decision(State.READY, plain))
    assert "  - Rule `dev`\n" in text
    vetoable = replace(plain, settings=settings(LOGS, "dev"))
    assert "who may approve: qualified peers" in status_comment(decision(State.READY, vetoable))


def test_a_hostile_rule_name_and_approver_stay_inert() -> None:
    role = replace(VETOED, settings=settings(rule="see #12 @everyone https://x.example",
                                             approvers=("group:`x`@evil.example",)))
    text = status_comment(decision(State.VETOED, role))
    assert "Rule `see #12 @everyone https://x.example`" in text
    assert live_autolinks(text) == []
    assert "@everyone" not in outside_code(text)


BREAK_GLASS = decision(
    State.READY,
    RoleDecision(SQL, ApprovalKind.BREAK_GLASS, settings=settings(veto=False),
                 approver_logins=("cto",)),
    RoleDecision(LOGS, ApprovalKind.BREAK_GLASS, resource_conditions=("resource.name == 'x'",),
                 settings=settings(LOGS, None, approvers=(), veto=False)),
    request=replace(REQUEST, roles=(SQL, LOGS), break_glass=True),
    break_glass=True,
    candidate_reviewers=("bob", "cto"),
)


def test_break_glass_is_said_loudly_in_the_status() -> None:
    assert status_description(BREAK_GLASS) == (
        f"Break-glass: ready without approval ({SQL}, {LOGS})"
    )
    text = status_comment(BREAK_GLASS)
    assert "### jit-access: 🚨 Break-glass request: ✅ Ready to merge\n" in text
    assert "> **This is a break-glass request** (`break_glass: true`)" in text
    assert "| Break-glass | **yes** |\n" in text
    assert f"- `{SQL}`: 🚨 break-glass, without approval\n" in text
    assert "who may review: qualified peers and designated approvers" in text
    # Named, not pinged, before the merge: they are asked after it.
    assert "After the merge these qualified reviewers are asked to review it: bob, cto." in text
    assert live_autolinks(text) == []


def test_the_break_glass_activation_asks_for_an_after_the_fact_review() -> None:
    text = activation_comment(BREAK_GLASS, start=NOW, end=NOW + timedelta(hours=1))
    assert "### jit-access: 🚨 Break-glass access activated\n" in text
    assert f"- `{SQL}`: break-glass, without approval\n" in text
    assert "**This was a break-glass request: the access was granted without approval.**" in text
    assert "@bob, @cto, please review this pull request and choose **Approve**" in text
    assert live_autolinks(text, allowed_mentions=("alice", "bob", "cto")) == []
    nobody = activation_comment(replace(BREAK_GLASS, candidate_reviewers=()), start=NOW,
                                end=NOW + timedelta(hours=1))
    assert "no qualified reviewer with an identity mapping was found" in nobody


def test_a_plain_activation_says_nothing_of_break_glass() -> None:
    plain = replace(BREAK_GLASS, break_glass=False,
                    roles=(RoleDecision(SQL, ApprovalKind.MULTI_PARTY, approvers=("bob",)),))
    text = activation_comment(plain, start=NOW, end=NOW + timedelta(hours=1))
    assert "break-glass" not in text.lower()


def test_many_designated_approvers_and_reasons_stay_within_the_limits() -> None:
    approvers = tuple(f"group:g{i}@example.com" for i in range(500))
    logins = tuple(f"user{i}" for i in range(500))
    reasons = tuple(f"@user{i}'s approval counts: is a designated approver" for i in range(300))
    reasons += tuple(f"@x{i}'s request for changes is no veto: has no identity mapping"
                     for i in range(300))
    roles = [
        RoleDecision(f"roles/custom.r{i}", ApprovalKind.MULTI_PARTY, approvers=logins,
                     settings=settings(approvers=approvers), approver_logins=logins,
                     reasons=reasons, vetoed_by=logins)
        for i in range(50)
    ]
    text = status_comment(decision(State.VETOED, *roles))
    assert len(text) <= MAX_COMMENT_CHARS
    assert "and 490 more" in text
    assert "… and 295 more approvals by designated approvers" in text
    assert "… and 295 more reviews that did not count: has no identity mapping (295)" in text
