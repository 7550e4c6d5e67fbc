"""The revocation rule book: the command, who may revoke, revocation PRs, the record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from webhook.core.eligibility import EligibilityQuestion
from webhook.core.model import (
    AccessRequest,
    Binding,
    ChangedFile,
    EligibilityFacts,
    Identities,
    Policy,
    PullInfo,
    Review,
    ReviewState,
    RoleEligibility,
    Rule,
    RuleApproval,
    RuleMatch,
)
from webhook.core.revocation import (
    MAX_REVOKED_FILES,
    Authority,
    Revocation,
    RevocationTarget,
    authority,
    parse_command,
    qualified_reviewer,
    reviewer_question,
    revocation_paths,
    revocation_record,
    revocation_status,
)

IDS = Identities({"alice": "alice@example.com", "bob": "bob@example.com",
                  "alice-alt": "alice@example.com", "dave": "dave@example.com"})
AT = datetime(2026, 11, 29, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(("body", "reason"), [
    ("/jit revoke", ""),
    ("/jit revoke   done,  thanks \nsecond line", "done, thanks"),
    ("  /jit revoke\tINC-1\r\n", "INC-1"),
])
def test_the_command(body: str, reason: str) -> None:
    command = parse_command(body)
    assert command is not None and command.reason == reason


@pytest.mark.parametrize("body", ["please /jit revoke", "/jit revoked", "/jit revoke-all",
                                  "> /jit revoke", "\n/jit revoke", "/jit  revoke", ""])
def test_not_the_command(body: str) -> None:
    assert parse_command(body) is None


def test_a_long_reason_is_cut() -> None:
    command = parse_command("/jit revoke " + "x" * 500)
    assert command is not None and len(command.reason) == 200


def review(login: str, state: ReviewState = ReviewState.APPROVED) -> Review:
    return Review(1, login, state, "sha", AT)


@pytest.mark.parametrize(("login", "expected"), [
    ("mallory", Authority.UNMAPPED),
    ("alice", Authority.REQUESTER),
    ("ALICE", Authority.REQUESTER),
    ("alice-alt", Authority.REQUESTER),  # another login of the requester's identity
    ("dave", Authority.REVOKER),
    ("bob", Authority.ASK_ELIGIBILITY),
])
def test_who_may_revoke(login: str, expected: Authority) -> None:
    assert authority(login, author="alice", revokers=("dave",), identities=IDS,
                     reviews=(review("bob"),)) is expected


def test_a_mapped_non_reviewer_may_not() -> None:
    assert authority("bob", author="alice", revokers=(), identities=IDS,
                     reviews=(review("bob", ReviewState.PENDING),)) is Authority.NOT_ALLOWED


def removed(path: str) -> ChangedFile:
    return ChangedFile(path, "removed")


def test_revocation_paths() -> None:
    files = (removed("requests/alice/a.yaml"), removed("requests/bob/b.yml"))
    assert revocation_paths(files, base_ref="main", default_branch="main") == (
        "requests/alice/a.yaml", "requests/bob/b.yml"
    )


@pytest.mark.parametrize("files", [
    (),
    (removed("requests/alice/a.yaml"), ChangedFile("README.md", "modified")),
    (removed("requests/alice/a.txt"),),
    (removed("requests/alice/deep/a.yaml"),),
    (ChangedFile("requests/alice/a.yaml", "modified"),),
    (ChangedFile("requests/alice/b.yaml", "renamed", "requests/alice/a.yaml"),),
])
def test_not_revocation_prs(files: tuple[ChangedFile, ...]) -> None:
    assert revocation_paths(files, base_ref="main", default_branch="main") is None


def test_only_into_the_default_branch_and_a_whole_list() -> None:
    files = (removed("requests/alice/a.yaml"),)
    assert revocation_paths(files, base_ref="dev", default_branch="main") is None
    assert revocation_paths(files, base_ref="main", default_branch="main",
                            complete=False) is None


BINDING = Binding(
    "roles/cloudsql.admin", "user:alice@example.com", "JIT access activation",
    "Approved by bob@example.com, justification: INC-1: x (acme/access#3)",
    '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
    'request.time < timestamp("2026-11-29T11:00:00Z"))',
)


def test_the_status_names_the_prs_whose_access_ends() -> None:
    assert revocation_status([RevocationTarget("requests/alice/a.yaml", 3, (BINDING,)),
                              RevocationTarget("requests/alice/b.yaml", 4)]) == (
        "success", "Revocation: merging ends the access of #3"
    )
    state, text = revocation_status([RevocationTarget("requests/alice/b.yaml", 4)])
    assert state == "success" and "no access" in text


def test_the_record() -> None:
    pull = PullInfo(3, "alice", "abc", "main", "closed", True, AT,
                    "https://github.com/acme/access/pull/3")
    revocation = Revocation(pull, "acme/access#3", "comment-9", "bob", "bob@example.com",
                            "done", AT)
    request = AccessRequest("payments-prod", ("roles/cloudsql.admin",), AT - AT, "INC-1: x")
    record = revocation_record(revocation, request, (BINDING,), "d-1")
    assert record.insert_id == "revoke:acme/access#3@comment-9"
    assert record.timestamp == AT and record.effective_severity == "NOTICE"
    labels = record.labels()
    assert labels["event"] == "gitops.revokeRole"
    assert labels["user"] == "alice@example.com"
    assert labels["reviewers"] == "bob@example.com"
    assert labels["activation_end"] == "2026-11-29T11:00:00Z"
    assert (labels["revoked_by"], labels["reason"]) == ("bob@example.com", "done")


def test_a_revocation_pr_deletes_a_bounded_number_of_files() -> None:
    many = tuple(removed(f"requests/u{i}/a.yaml") for i in range(MAX_REVOKED_FILES + 1))
    assert revocation_paths(many[:-1], base_ref="main", default_branch="main") is not None
    assert revocation_paths(many, base_ref="main", default_branch="main") is None


# ----------------------------------------------------------------------------------------------
# Qualified reviewers under rules: designated approvers, `peers: false`, folders

SQL, GCS = "roles/cloudsql.admin", "roles/storage.admin"
PROD = AccessRequest("payments-prod", (SQL,), timedelta(hours=1), "INC-1: x")
BOB, CAROL = "bob@example.com", "carol@example.com"
FOLDER = "folders/456789012345"


def rule(name: str, *, projects: tuple[str, ...] = (), folders: tuple[str, ...] = (),
         roles: tuple[str, ...] = (), approvers: tuple[str, ...] | None = None,
         peers: bool | None = None) -> Rule:
    return Rule(name, RuleMatch(projects, folders, roles),
                approval=RuleApproval(approvers=approvers, peers=peers))


def policy(*rules: Rule) -> Policy:
    return Policy("organizations/1", rules=rules)


def peer(who: str, *roles: str) -> EligibilityFacts:
    return EligibilityFacts(grants={who: {r: RoleEligibility(multi_party=True) for r in roles}})


def test_without_rules_a_qualified_peer_qualifies_after_one_lookup() -> None:
    p = policy()
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com")
    question = reviewer_question(p, PROD, BOB)
    assert question == EligibilityQuestion(
        requester=BOB, roles=(SQL,), peers=False, vetoers=(BOB,), veto_roles=(SQL,)
    )
    assert qualified_reviewer(p, PROD, BOB, "alice@example.com", peer(BOB, SQL))
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", peer(BOB, GCS))
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", EligibilityFacts())
    # Self-approval eligibility alone is no qualified peer.
    self_only = EligibilityFacts(grants={BOB: {SQL: RoleEligibility(self_approval=True)}})
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", self_only)


def test_a_designated_user_approver_qualifies_without_a_lookup() -> None:
    p = policy(rule("prod", projects=("*-prod",), approvers=(f"user:{CAROL}",), peers=False))
    assert qualified_reviewer(p, PROD, CAROL, "alice@example.com")
    assert qualified_reviewer(p, PROD, "Carol@Example.com", "alice@example.com")
    # Not on a project the rule does not fit.
    dev = AccessRequest("payments-dev", (SQL,), timedelta(hours=1), "INC-1: x")
    assert not qualified_reviewer(p, dev, CAROL, "alice@example.com")
    # The requester never qualifies, even when named.
    assert not qualified_reviewer(p, PROD, CAROL, CAROL)


def test_with_peers_false_a_qualified_peer_is_refused_without_a_lookup() -> None:
    p = policy(rule("prod", projects=("*-prod",), approvers=(f"user:{CAROL}",), peers=False))
    assert reviewer_question(p, PROD, BOB) is None
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", peer(BOB, SQL))


def test_a_member_of_a_designated_group_qualifies() -> None:
    group = "group:db-leads@example.com"
    p = policy(rule("prod", projects=("*-prod",), approvers=(group,), peers=False))
    question = reviewer_question(p, PROD, BOB)
    assert question is not None
    assert question.approver_groups == (group,) and question.veto_roles == ()
    assert question.vetoers == (BOB,) and BOB in question.judged
    assert question.roles == (SQL,)  # something to ask about, though no peer counts
    member = EligibilityFacts(memberships={BOB: frozenset({group})})
    assert qualified_reviewer(p, PROD, BOB, "alice@example.com", member)
    other = EligibilityFacts(memberships={BOB: frozenset({"group:other@example.com"})})
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", other)
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com", peer(BOB, SQL))


def test_peers_count_only_for_the_roles_whose_rule_lets_them() -> None:
    p = policy(rule("databases", roles=("roles/cloudsql.*",), approvers=(f"user:{CAROL}",),
                    peers=False))
    both = AccessRequest("payments-prod", (SQL, GCS), timedelta(hours=1), "INC-1: x")
    question = reviewer_question(p, both, BOB)
    assert question is not None and question.veto_roles == (GCS,) and question.roles == (GCS,)
    assert not qualified_reviewer(p, both, BOB, "alice@example.com", peer(BOB, SQL))
    assert qualified_reviewer(p, both, BOB, "alice@example.com", peer(BOB, GCS))


def test_a_folder_rule_is_settled_by_the_ancestry_the_lookup_reads() -> None:
    p = policy(rule("prod folder", folders=(FOLDER,), approvers=(f"user:{CAROL}",),
                    peers=False))
    # Whether the rule applies depends on the project's folders: nothing without them.
    assert not qualified_reviewer(p, PROD, CAROL, "alice@example.com")
    question = reviewer_question(p, PROD, CAROL)
    assert question is not None and question.ancestry
    inside = EligibilityFacts(ancestry=(FOLDER, "organizations/1"))
    outside = EligibilityFacts(ancestry=("folders/1", "organizations/1"))
    assert qualified_reviewer(p, PROD, CAROL, "alice@example.com", inside)
    assert not qualified_reviewer(p, PROD, CAROL, "alice@example.com", outside)
    # Outside the folder the top-level settings apply, where qualified peers count.
    assert qualified_reviewer(p, PROD, BOB, "alice@example.com",
                              replace(peer(BOB, SQL), ancestry=outside.ancestry))
    assert not qualified_reviewer(p, PROD, BOB, "alice@example.com",
                                  replace(peer(BOB, SQL), ancestry=inside.ancestry))
    # Facts without the ancestry settle nothing.
    assert not qualified_reviewer(p, PROD, CAROL, "alice@example.com", EligibilityFacts())
