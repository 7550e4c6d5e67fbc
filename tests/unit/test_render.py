"""Renderings of decisions: commit-status descriptions and PR comments, exact and inert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.core.model import (
    AccessRequest,
    ApprovalKind,
    Decision,
    Problem,
    PullRequestRef,
    RoleDecision,
    State,
)
from webhook.core.render import (
    ACTIVATION_MARKER_PREFIX,
    COMMENT_MARKER,
    activation_comment,
    activation_failed_comment,
    activation_marker,
    refusal_comment,
    rfc3339,
    status_comment,
    status_description,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "0123456789abcdef0123456789abcdef01234567"
PR = PullRequestRef("acme/access", 7, "alice", HEAD, "https://github.com/acme/access/pull/7")
SQL = "roles/cloudsql.admin"
LOGS = "roles/logging.viewer"
REQUEST = AccessRequest("payments-prod", (SQL,), timedelta(hours=2), "INC-1234: fix replica")
HOSTILE = "<img src=x> @everyone `x` | y\nsecond line"
ZWJ = "\u200d"

SELF = RoleDecision(LOGS, ApprovalKind.SELF)
APPROVED = RoleDecision(SQL, ApprovalKind.MULTI_PARTY, approvers=("bob", "carol"))
WAITING = RoleDecision(
    SQL,
    ApprovalKind.MULTI_PARTY,
    needed=1,
    reasons=("@mallory's approval does not count: has no identity mapping",),
)


def decision(state: State, **changes: object) -> Decision:
    base = Decision(state, PR, request=REQUEST, requester="alice@example.com")
    return replace(base, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Status descriptions


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        (decision(State.READY, roles=(SELF,)), "Ready: self-approval for 1 role"),
        (
            decision(State.READY, roles=(SELF, replace(SELF, role="roles/x"))),
            "Ready: self-approval for 2 roles",
        ),
        (decision(State.READY, roles=(APPROVED,)), "Ready: approved by bob, carol"),
        (
            decision(State.READY, roles=(APPROVED, SELF)),
            "Ready: approved by bob, carol; self-approval for 1 role",
        ),
        (
            decision(State.PENDING, roles=(WAITING,)),
            "Waiting for 1 approval (roles/cloudsql.admin)",
        ),
        (
            decision(
                State.PENDING,
                roles=(replace(WAITING, needed=2), SELF, replace(WAITING, role="roles/x")),
            ),
            "Waiting for 3 approvals (roles/cloudsql.admin, roles/x)",
        ),
        (
            decision(
                State.INVALID, problems=(Problem("a", "x"), Problem("b", "y"), Problem("c", "z"))
            ),
            "Invalid request: 3 problems",
        ),
        (
            decision(State.INVALID, problems=(Problem("a", "duration must be\nat most 2h"),)),
            "Invalid request: duration must be at most 2h",
        ),
        (
            decision(
                State.NOT_ELIGIBLE,
                roles=(SELF, RoleDecision("roles/x", ApprovalKind.NONE, reasons=("r",))),
            ),
            "Not eligible for roles/x",
        ),
        (
            decision(State.NOT_ELIGIBLE, problems=(Problem("no_identity_mapping", "m"),)),
            "Not eligible: alice has no identity mapping",
        ),
        (
            decision(State.ERROR, problems=(Problem("policy_invalid", "scope is required"),)),
            "Policy error: see comment",
        ),
        (
            decision(State.ERROR, problems=(Problem("eligibility_unknown", "m"),)),
            "Service error: see comment",
        ),
    ],
)
def test_status_description(d: Decision, expected: str) -> None:
    assert status_description(d) == expected


def test_status_description_is_truncated_below_140() -> None:
    roles = tuple(replace(WAITING, role=f"projects/p/roles/custom.role{i:02}") for i in range(10))
    text = status_description(decision(State.PENDING, roles=roles))
    assert len(text) == 139
    assert text.startswith("Waiting for 10 approvals (projects/p/roles/custom.role00, ")
    assert text.endswith("…")

    long = decision(State.INVALID, problems=(Problem("x", "y" * 1000),))
    assert status_description(long) == "Invalid request: " + "y" * 121 + "…"


def test_status_description_of_a_short_text_is_not_truncated() -> None:
    assert not status_description(decision(State.READY, roles=(SELF,))).endswith("…")


# --------------------------------------------------------------------------------------------
# The status comment


def test_ready_comment_exact() -> None:
    text = status_comment(decision(State.READY, roles=(APPROVED, SELF)))
    assert text == (
        "<!-- jit-access:status -->\n"
        "### jit-access: ✅ Ready to merge\n"
        "\n"
        "Ready: approved by bob, carol; self-approval for 1 role\n"
        "\n"
        "| Request | |\n"
        "|---|---|\n"
        "| Requester | alice (alice@example.com) |\n"
        "| Project | payments-prod |\n"
        "| Roles | roles/cloudsql.admin |\n"
        "| Duration | 2h |\n"
        "| Justification | INC-1234: fix replica |\n"
        "\n"
        "**Roles**\n"
        "\n"
        "- `roles/cloudsql.admin`: multi-party approval, 2 approvals (bob, carol), complete\n"
        "- `roles/logging.viewer`: self-approval (you may activate this role on your own)\n"
        "\n"
        "**Merge this pull request to activate the access.** The service checks everything "
        "again at merge time and comments with the expiry.\n"
        "\n"
        "<sub>Evaluated for commit 0123456.</sub>\n"
    )


def test_pending_comment_names_qualified_reviewers_and_explains_approval() -> None:
    text = status_comment(
        decision(State.PENDING, roles=(WAITING,), candidate_reviewers=("bob", "dave"))
    )
    assert text.startswith(COMMENT_MARKER + "\n")
    assert "- `roles/cloudsql.admin`: multi-party approval, 0 approvals, 1 more needed\n" in text
    # Reasons don't ping the reviewer they talk about...
    assert f"  - @{ZWJ}mallory's approval does not count: has no identity mapping\n" in text
    # ...but qualified peers are mentioned on purpose.
    assert "Qualified reviewers: @bob, @dave\n" in text
    assert "choose **Approve** on its current head commit (0123456)" in text


def test_pending_comment_without_candidates_says_so() -> None:
    text = status_comment(decision(State.PENDING, roles=(WAITING,)))
    assert "No qualified reviewer with an identity mapping was found; ask an administrator." in (
        text
    )


def test_comment_escapes_hostile_justification() -> None:
    text = status_comment(
        decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=HOSTILE))
    )
    row = f"| Justification | &lt;img src=x&gt; @{ZWJ}everyone \\`x\\` \\| y second line |\n"
    assert row in text
    assert "<img" not in text
    assert "@everyone" not in text
    # The table keeps its shape: no raw line break or pipe leaked from the justification.
    table = [line for line in text.splitlines() if line.startswith("| Justification")]
    assert len(table) == 1


def test_comment_lists_problems_with_lines_and_paths() -> None:
    problems = (
        Problem("unknown_key", "unknown key 'projetc'", line=2, path="requests/alice/a.yaml"),
        Problem("bad_duration", "duration must be at most 2h", line=4),
        Problem("pr_shape", "the PR also changes README.md"),
        Problem("html", "value <script> is not a role"),
    )
    text = status_comment(decision(State.INVALID, request=None, problems=problems))
    assert (
        "**Problems**\n"
        "\n"
        "- requests/alice/a.yaml, line 2: unknown key 'projetc'\n"
        "- line 4: duration must be at most 2h\n"
        "- the PR also changes README.md\n"
        "- value &lt;script&gt; is not a role\n"
    ) in text
    assert "| Request |" not in text
    assert "Fix the request file and push a new commit" in text


def test_comment_caps_the_problem_list() -> None:
    problems = tuple(Problem("p", f"problem {i}") for i in range(60))
    text = status_comment(decision(State.INVALID, problems=problems))
    assert "- problem 49\n" in text
    assert "problem 50" not in text
    assert "- … and 10 more\n" in text


def test_error_comment_points_to_an_administrator() -> None:
    text = status_comment(
        decision(State.ERROR, problems=(Problem("policy_invalid", "scope is required", line=1),)),
        policy_hint="Policy lives in policy/jitaccess.yaml on main",
    )
    assert "### jit-access: ⚠️ This request cannot be evaluated\n" in text
    assert "- line 1: scope is required\n" in text
    assert "please contact an administrator" in text
    assert "_Note from the policy:_ Policy lives in policy/jitaccess.yaml on main\n" in text


def test_not_eligible_comment_lists_the_role() -> None:
    none = RoleDecision("roles/x", ApprovalKind.NONE, reasons=("alice@example.com is not …",))
    text = status_comment(
        decision(
            State.NOT_ELIGIBLE,
            roles=(none,),
            problems=(Problem("not_eligible", "alice@example.com is not …"),),
        )
    )
    assert "- `roles/x`: not eligible\n" in text
    assert "- alice@example.com is not …\n" in text
    # The reason is listed once, under Problems.
    assert text.count("alice@example.com is not") == 1


def test_comment_is_deterministic() -> None:
    d = decision(State.PENDING, roles=(WAITING,), candidate_reviewers=("bob",))
    assert status_comment(d) == status_comment(d)


# --------------------------------------------------------------------------------------------
# Comments after a merge


def test_activation_comment_exact() -> None:
    d = decision(
        State.READY,
        request=replace(REQUEST, roles=(SQL, LOGS)),
        roles=(APPROVED, replace(SELF, resource_conditions=("resource.name == 'x'",))),
    )
    text = activation_comment(d, start=NOW, end=NOW + timedelta(hours=2))
    assert text == (
        f"<!-- jit-access:activation {HEAD} -->\n"
        "### jit-access: 🔓 Access activated\n"
        "\n"
        "@alice (alice@example.com) now holds these roles on project payments-prod until "
        "**2026-11-29T12:00:00Z** (for 2h):\n"
        "\n"
        "- `roles/cloudsql.admin`: approved by @bob, @carol\n"
        "- `roles/logging.viewer`: self-approved, limited by the condition of the eligible "
        "binding\n"
        "\n"
        "Justification: INC-1234: fix replica\n"
        "\n"
        "Active from 2026-11-29T10:00:00Z. The binding expires on its own; the activation is "
        "recorded in the audit log.\n"
    )
    assert text.startswith(ACTIVATION_MARKER_PREFIX)


def test_activation_comment_escapes_justification_and_formats_odd_durations() -> None:
    d = decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=HOSTILE))
    text = activation_comment(d, start=NOW, end=NOW + timedelta(minutes=90))
    assert "(for 1h30m)" in text
    assert "<img" not in text and "@everyone" not in text


def test_an_activation_comment_posted_again_does_not_claim_the_access_stands() -> None:
    """A later delivery re-posts a missing comment; the window may have ended or the binding
    been removed by hand since."""
    d = decision(State.READY, roles=(SELF,))
    text = activation_comment(d, start=NOW, end=NOW + timedelta(hours=2), again=True)
    assert text.startswith(f"<!-- jit-access:activation {HEAD} -->\n")
    assert "@alice (alice@example.com) was granted these roles on project payments-prod" in text
    assert "now holds" not in text
    assert text.endswith(
        "This comment is posted again from the record of the activation (the first one was "
        "deleted or could not be posted). The merge was decided once: nothing was granted anew, "
        "and the access may have ended since.\n"
    )


def test_activation_marker_cannot_be_broken_out_of() -> None:
    assert activation_marker("abc --> <b>x</b>") == "<!-- jit-access:activation abcbb -->"


def test_refusal_comment() -> None:
    d = decision(State.PENDING, roles=(WAITING,))
    text = refusal_comment("the pull request was not approved", pr=PR, decision=d)
    assert text == (
        f"<!-- jit-access:refusal {HEAD} -->\n"
        "### jit-access: 🚫 Access not activated\n"
        "\n"
        "This request was merged but no access was granted: the pull request was not approved\n"
        "\n"
        "Decision at merge time: Waiting for 1 approval (roles/cloudsql.admin)\n"
        "\n"
        "To get access, open a new request pull request.\n"
    )


def test_refusal_comment_without_decision_lists_nothing_more() -> None:
    text = refusal_comment("merged 3h ago, more than activation.max_delay (1h)", pr=PR)
    assert "Decision at merge time" not in text
    assert "merged 3h ago, more than activation.max\\_delay (1h)" in text


def test_activation_failed_comment_explains_redelivery() -> None:
    d = decision(State.READY, roles=(SELF,))
    text = activation_failed_comment(
        "Google Cloud: permission denied", d, max_delay=timedelta(hours=1)
    )
    assert text.startswith(f"<!-- jit-access:activation-failed {HEAD} -->\n")
    assert not text.startswith(ACTIVATION_MARKER_PREFIX)
    assert "activating it failed: Google Cloud: permission denied\n" in text
    assert "No access was granted" in text
    assert (
        "redelivering the merge event (GitHub → Settings → Webhooks → Recent deliveries → "
        "Redeliver) within 1h of the merge"
    ) in text


def test_rfc3339_is_utc_whole_seconds() -> None:
    from datetime import timezone

    cet = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 11, 29, 13, 0, 5, 999, tzinfo=cet)) == "2026-11-29T12:00:05Z"
    assert rfc3339(datetime(2026, 11, 29, 12, 0)) == "2026-11-29T12:00:00Z"
