"""Renderings of decisions: commit-status descriptions and PR comments, exact and inert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.inert import live_autolinks, outside_code
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
    MAX_COMMENT_CHARS,
    TRUNCATED_NOTICE,
    activation_comment,
    activation_failed_comment,
    activation_marker,
    fit_comment,
    refusal_comment,
    refusal_marker,
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
        "| Requester | `alice` (`alice@example.com`) |\n"
        "| Project | `payments-prod` |\n"
        "| Roles | `roles/cloudsql.admin` |\n"
        "| Duration | 2h |\n"
        "| Justification | `INC-1234: fix replica` |\n"
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


def test_only_logins_valid_by_githubs_rule_are_mentioned() -> None:
    # One login rule for paths, identities and mentions: 1-39 letters, digits and single inner
    # hyphens. Anything else is written out without a ping.
    text = status_comment(
        decision(State.PENDING, roles=(WAITING,), candidate_reviewers=("bob", "a--b", "c-"))
    )
    assert "Qualified reviewers: @bob, a--b, c-\n" in text


def test_pending_comment_without_candidates_says_so() -> None:
    text = status_comment(decision(State.PENDING, roles=(WAITING,)))
    assert "No qualified reviewer with an identity mapping was found; ask an administrator." in (
        text
    )


def test_comment_shows_a_hostile_justification_as_code() -> None:
    text = status_comment(
        decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=HOSTILE))
    )
    # A longer fence than the backticks inside; the pipe escaped for the table (GitHub removes
    # the backslash again); the line break a space.
    row = "| Justification | ``<img src=x> @everyone `x` \\| y second line`` |\n"
    assert row in text
    assert live_autolinks(text) == []
    assert "<img" not in outside_code(text)
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
        "- `requests/alice/a.yaml`, line 2: unknown key 'projetc'\n"
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
    assert f"- alice@{ZWJ}example.com is not …\n" in text
    # The reason is listed once, under Problems.
    assert text.count(f"alice@{ZWJ}example.com is not") == 1


def test_comment_shows_eligibility_notes_escaped_and_capped() -> None:
    notes = ("Not counted: the members of <b>x</b>@partner.example @everyone", *(
        f"note {i}" for i in range(60)
    ))
    text = status_comment(decision(State.PENDING, roles=(WAITING,), notes=notes))
    assert (
        "**Notes**\n"
        "\n"
        f"- Not counted: the members of &lt;b&gt;x&lt;/b&gt;@{ZWJ}partner.example @{ZWJ}everyone\n"
        "- note 0\n"
    ) in text
    assert "- note 48\n" in text
    assert "note 49" not in text
    assert "- … and 11 more\n" in text
    assert text.index("**Notes**") < text.index("**Who may approve**")
    assert "**Notes**" not in status_comment(decision(State.PENDING, roles=(WAITING,)))


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
        "@alice (`alice@example.com`) now holds these roles on project `payments-prod` until "
        "**2026-11-29T12:00:00Z** (for 2h):\n"
        "\n"
        "- `roles/cloudsql.admin`: approved by @bob, @carol\n"
        "- `roles/logging.viewer`: self-approved, limited by the condition of the eligible "
        "binding\n"
        "\n"
        "Justification: `INC-1234: fix replica`\n"
        "\n"
        "Active from 2026-11-29T10:00:00Z. The binding expires on its own; the activation is "
        "recorded in the audit log.\n"
    )
    assert text.startswith(ACTIVATION_MARKER_PREFIX)


def test_activation_comment_escapes_justification_and_formats_odd_durations() -> None:
    d = decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=HOSTILE))
    text = activation_comment(d, start=NOW, end=NOW + timedelta(minutes=90))
    assert "(for 1h30m)" in text
    assert "Justification: ``<img src=x> @everyone `x` | y second line``\n" in text
    assert live_autolinks(text, allowed_mentions=("alice",)) == []


def test_an_activation_comment_posted_again_does_not_claim_the_access_stands() -> None:
    """A later delivery re-posts a missing comment; the window may have ended or the binding
    been removed by hand since."""
    d = decision(State.READY, roles=(SELF,))
    text = activation_comment(d, start=NOW, end=NOW + timedelta(hours=2), again=True)
    assert text.startswith(f"<!-- jit-access:activation {HEAD} -->\n")
    assert "@alice (`alice@example.com`) was granted these roles on project `payments-prod`" in text
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
        "To retry within 1h of the merge, choose **Re-run** on the `jit-access` check of this "
        "pull request (with the GitHub App), or have an administrator redeliver the merge event "
        "(Settings → Webhooks → Recent deliveries → Redeliver)."
    ) in text


def test_rfc3339_is_utc_whole_seconds() -> None:
    from datetime import timezone

    cet = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 11, 29, 13, 0, 5, 999, tzinfo=cet)) == "2026-11-29T12:00:05Z"
    assert rfc3339(datetime(2026, 11, 29, 12, 0)) == "2026-11-29T12:00:00Z"


# --------------------------------------------------------------------------------------------
# Requester text is inert: code spans for what the requester wrote, defused sentences around


@pytest.mark.parametrize(
    ("justification", "cell"),
    [
        ("INC-1: plain", "`INC-1: plain`"),
        ("INC-1: a `b` c", "``INC-1: a `b` c``"),
        ("``x`` and `", "``` ``x`` and ` ```"),  # backticks at an end: padded with spaces
        ("`starts", "`` `starts ``"),
        ("a | b", "`a \\| b`"),  # GitHub splits table rows before it reads code spans
        ("  both ends  ", "`   both ends   `"),  # one space each side is stripped again
        ("line\nbreak\r\nagain", "`line break again`"),
        ("bidi\u202eeht", "`bidieht`"),
    ],
)
def test_justification_cell_is_a_code_span(justification: str, cell: str) -> None:
    text = status_comment(
        decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=justification))
    )
    assert f"| Justification | {cell} |\n" in text


def test_code_spans_outside_tables_keep_pipes() -> None:
    d = decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification="a | b"))
    text = activation_comment(d, start=NOW, end=NOW + timedelta(hours=1))
    assert "Justification: `a | b`\n" in text


HOSTILE_REQUEST = AccessRequest(
    "see-#12 @someone",
    ("roles/x@someone", "https://evil.example/#3"),
    timedelta(hours=2),
    "INC-1: see #12, acme/access#1, GH-3 https://evil.example/x www.evil.example @someone "
    "a@evil.example acme/access@0123456789abcdef",
)
HOSTILE_PROBLEMS = (
    Problem(
        "unknown_key",
        "unknown key 'https://evil.example/#12 @someone GH-4 www.x.example a@b.example'",
        line=3,
        path="requests/@someone/#12 https://x.example.yaml",
    ),
    Problem("pr_shape", "the PR also changes docs/acme/access#9 and @org/team.md"),
)
HOSTILE_REASONS = (
    "@mallory's approval does not count: has no identity mapping",
    "@bob's approval does not count: approved an older commit (abc1234), not the head",
)


def hostile_comments() -> dict[str, str]:
    """Every comment the service posts, for requests full of autolink bait."""
    pending = RoleDecision(
        HOSTILE_REQUEST.roles[0], ApprovalKind.MULTI_PARTY, needed=1, reasons=HOSTILE_REASONS
    )
    approved = RoleDecision(HOSTILE_REQUEST.roles[1], ApprovalKind.MULTI_PARTY,
                            approvers=("bob",), reasons=HOSTILE_REASONS)
    base = decision(State.READY, request=HOSTILE_REQUEST, roles=(approved, SELF))
    return {
        "ready": status_comment(base, policy_hint="ask in #12 or https://wiki.example"),
        "pending": status_comment(
            replace(base, state=State.PENDING, roles=(pending, approved),
                    candidate_reviewers=("bob", "carol"))
        ),
        "invalid": status_comment(
            decision(State.INVALID, request=None, problems=HOSTILE_PROBLEMS)
        ),
        "not eligible": status_comment(
            replace(base, state=State.NOT_ELIGIBLE, problems=HOSTILE_PROBLEMS)
        ),
        "activation": activation_comment(base, start=NOW, end=NOW + timedelta(hours=2)),
        "refusal": refusal_comment(
            "merged after https://evil.example/#5 said so (@someone)", pr=PR,
            decision=replace(base, state=State.INVALID, problems=HOSTILE_PROBLEMS),
        ),
        "failure": activation_failed_comment(
            "Google: see https://console.example/#7 for a@b.example", base,
            max_delay=timedelta(hours=1),
        ),
    }


@pytest.mark.parametrize("kind", list(hostile_comments()))
def test_requester_text_never_autolinks(kind: str) -> None:
    text = hostile_comments()[kind]
    # Qualified reviewers, the requester and approvers are mentioned on purpose.
    assert live_autolinks(text, allowed_mentions=("alice", "bob", "carol")) == []
    assert "@someone" not in outside_code(text)


def test_requester_values_are_shown_as_written() -> None:
    texts = hostile_comments()
    assert f"| Justification | `{HOSTILE_REQUEST.justification}` |\n" in texts["ready"]
    assert "| Project | `see-#12 @someone` |\n" in texts["ready"]
    assert "| Roles | `roles/x@someone`, `https://evil.example/#3` |\n" in texts["ready"]
    assert "- `https://evil.example/#3`: multi-party approval" in texts["ready"]
    assert "- `requests/@someone/#12 https://x.example.yaml`, line 3: unknown key" in (
        texts["invalid"]
    )
    assert f"Justification: `{HOSTILE_REQUEST.justification}`\n" in texts["activation"]
    # Sentences quoting requester text stay readable: a zero-width joiner after each trigger.
    assert (
        f"unknown key 'https:{ZWJ}//evil.example/#{ZWJ}12 @{ZWJ}someone GH{ZWJ}-4 "
        f"www{ZWJ}.x.example a@{ZWJ}b.example'"
    ) in texts["invalid"]
    assert f"docs/acme/access#{ZWJ}9 and @{ZWJ}org/team.md" in texts["invalid"]


@pytest.mark.parametrize(
    "forged",
    [COMMENT_MARKER, activation_marker(HEAD), refusal_marker(HEAD), "<!-- x --> <!--"],
)
def test_a_marker_in_requester_text_is_defused(forged: str) -> None:
    d = decision(State.READY, roles=(SELF,), request=replace(REQUEST, justification=forged))
    for text in (status_comment(d), activation_comment(d, start=NOW, end=NOW)):
        assert text.count("<!--") == 1  # the comment's own marker, on its first line
        assert text.split("\n", 1)[1].count(forged) == 0


# --------------------------------------------------------------------------------------------
# Size: summarised lists, and a hard cap on every comment


def test_reasons_beyond_five_per_role_are_counted_by_kind() -> None:
    reasons = tuple(
        f"@r{i:03}'s approval does not count: has no identity mapping" for i in range(150)
    ) + tuple(
        f"@s{i:03}'s approval does not count: approved an older commit ({i:07x}), not the head"
        for i in range(40)
    ) + ("@t's approval does not count: same identity as @r001, counted once",)
    role = replace(WAITING, reasons=reasons)
    text = status_comment(decision(State.PENDING, roles=(role,)))
    assert f"  - @{ZWJ}r004's approval does not count: has no identity mapping\n" in text
    assert "r005" not in text
    assert (
        "  - … and 186 more reviews that did not count: has no identity mapping (145); "
        "approved an older commit, not the head (40); "
        "same identity as another reviewer, counted once (1)\n"
    ) in text


def test_many_kinds_of_reasons_are_counted_together_beyond_five() -> None:
    reasons = tuple(f"reason number {i}" for i in range(5)) + tuple(
        f"kind {i % 8}" for i in range(80)
    )
    text = status_comment(decision(State.PENDING, roles=(replace(WAITING, reasons=reasons),)))
    assert (
        "  - … and 80 more reviews that did not count: kind 0 (10); kind 1 (10); kind 2 (10); "
        "kind 3 (10); kind 4 (10); other reasons (30)\n"
    ) in text


def test_long_lists_of_logins_are_counted_not_all_shown() -> None:
    peers = tuple(f"peer{i:02}" for i in range(30))
    role = replace(APPROVED, approvers=peers)
    pending = status_comment(
        decision(State.PENDING, roles=(WAITING,), candidate_reviewers=peers)
    )
    assert "Qualified reviewers: @peer00, " in pending
    assert "@peer09 and 20 more\n" in pending
    assert "@peer10" not in pending  # a large group is not notified all at once
    ready = status_comment(decision(State.READY, roles=(role,)))
    assert "30 approvals (peer00, peer01," in ready and "peer09 and 20 more)" in ready
    activated = activation_comment(
        decision(State.READY, roles=(role,)), start=NOW, end=NOW + timedelta(hours=1)
    )
    assert "approved by @peer00, " in activated and "@peer09 and 20 more\n" in activated


def test_fit_comment_leaves_a_short_body_alone() -> None:
    body = f"{COMMENT_MARKER}\nhello\n"
    assert fit_comment(body) is body


def test_fit_comment_drops_whole_lines_and_keeps_the_marker() -> None:
    lines = [f"- line {i} `code span {i}` " + "x" * 90 for i in range(1000)]
    body = "\n".join([COMMENT_MARKER, *lines]) + "\n"
    fitted = fit_comment(body)
    assert len(fitted) <= MAX_COMMENT_CHARS
    assert fitted.startswith(COMMENT_MARKER + "\n")
    assert fitted.endswith(f"\n\n{TRUNCATED_NOTICE}\n")
    kept = fitted.split("\n")[1:-3]
    assert kept == lines[: len(kept)]  # whole lines, in order: no code span cut open
    assert len(kept) > 500


def test_fit_comment_counts_characters_outside_the_bmp_twice() -> None:
    body = f"{COMMENT_MARKER}\n" + "🔓\n" * 30000  # 60k characters, 90k UTF-16 code units
    fitted = fit_comment(body)
    assert len(fitted.encode("utf-16-le")) // 2 <= MAX_COMMENT_CHARS
    assert fitted.endswith(TRUNCATED_NOTICE + "\n")


def test_fit_comment_of_a_single_huge_line_keeps_only_the_marker() -> None:
    assert fit_comment(f"{COMMENT_MARKER} " + "y" * 70000) == (
        f"{COMMENT_MARKER}\n\n{TRUNCATED_NOTICE}\n"
    )
    assert fit_comment("z" * 70000) == f"\n{TRUNCATED_NOTICE}\n"


def test_every_comment_fits_whatever_the_input() -> None:
    huge = "x" * 70000
    # A 4 KiB request file names at most about 100 roles.
    reasons = tuple(f"@u{i}'s approval does not count: reason {i % 7} " + "y" * 100
                    for i in range(1000)) + (huge, huge)
    roles = tuple(
        RoleDecision(f"roles/r{i}.{huge[:30]}", ApprovalKind.MULTI_PARTY, needed=1,
                     approvers=tuple(f"a{j}" for j in range(100)), reasons=reasons)
        for i in range(100)
    )
    request = AccessRequest("p", tuple(r.role for r in roles), timedelta(hours=1), huge)
    problems = tuple(Problem("x", huge, line=i, path=huge) for i in range(200))
    d = decision(State.PENDING, request=request, roles=roles, problems=problems,
                 candidate_reviewers=tuple(f"c{i}" for i in range(5000)))
    comments = [
        status_comment(d, policy_hint=huge),
        status_comment(replace(d, state=State.INVALID)),
        activation_comment(replace(d, state=State.READY), start=NOW, end=NOW),
        refusal_comment(huge, pr=PR, decision=d),
        activation_failed_comment(huge, d, max_delay=timedelta(hours=1)),
    ]
    for text in comments:
        assert len(text.encode("utf-16-le")) // 2 <= MAX_COMMENT_CHARS
        assert text.count("<!-- jit-access:") == 1 and text.startswith("<!-- jit-access:")
        assert text.split("\n", 1)[0].endswith("-->")
