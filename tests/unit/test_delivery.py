"""The delivery rule book: real GitHub payloads and their variations in, verdicts out, no fakes.

The payloads are the real ones in `../shared/fixtures/github-webhooks` (relative to the project
root). Without them these cases are skipped, except in CI (`CI=true`), where they must be there.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from webhook.core.delivery import (
    MARKER_PREFIX,
    Kind,
    KnownFacts,
    MalformedPayload,
    Reason,
    Verdict,
    classify,
    is_marked,
)
from webhook.core.render import (
    COMMENT_MARKER,
    activation_failed_marker,
    activation_marker,
    refusal_marker,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "github-webhooks"
HELLO = "Codertocat/Hello-World"  # the repository of most payloads
BOT = "jit-access[bot]"


def payload(name: str) -> dict[str, Any]:
    """A real payload, by file name; a missing one fails in CI and skips elsewhere."""
    path = FIXTURES / name
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"webhook fixture {path} is missing")
        pytest.skip(f"no webhook fixture at {path}")
    data = json.loads(path.read_bytes())
    assert isinstance(data, dict)
    return data


def event_of(name: str) -> str:
    """`X-GitHub-Event` from the file name (`<event>.<action>[.variant].json`)."""
    return name.split(".", 1)[0]


def facts_for(data: dict[str, Any], **kw: Any) -> KnownFacts:
    """Facts of a service serving the payload's repository (as its installation, if any)."""
    repo = (data.get("repository") or {}).get("full_name") or "acme/access"
    installation = (data.get("installation") or {}).get("id")
    return KnownFacts(**{"repository": repo, "installation_id": installation, **kw})


def verdict_of(name: str, data: dict[str, Any] | None = None, **kw: Any) -> Verdict:
    data = payload(name) if data is None else data
    return classify(event_of(name), data, facts_for(data, **kw))


# --------------------------------------------------------------------------------------------
# Every real payload


REAL = {
    "pull_request.opened.json": Verdict(Kind.CHANGE, number=2, opened=True),
    "pull_request.opened.with-organization.json": Verdict(Kind.CHANGE, number=2, opened=True),
    "pull_request.reopened.json": Verdict(Kind.CHANGE, number=2, opened=True),
    "pull_request.synchronize.json": Verdict(Kind.CHANGE, number=2),
    "pull_request.closed.merged.json": Verdict(Kind.MERGE, number=3),
    "pull_request.closed.unmerged.json": Verdict(
        Kind.IGNORED, "PR #2 closed without merge; nothing to do", Reason.CLOSED_UNMERGED
    ),
    "pull_request_review.submitted.approved.json": Verdict(
        Kind.REVIEW, number=8, reviewer="baxterthehacker"
    ),
    "pull_request_review.dismissed.json": Verdict(Kind.REVIEW, number=2, reviewer="Codertocat"),
    "pull_request_review.submitted.commented.json": Verdict(
        Kind.IGNORED, "PR #2: review comment or edit; nothing to do", Reason.COMMENT_REVIEW
    ),
    "issue_comment.created.on-issue.json": Verdict(
        Kind.IGNORED, "ignored: no command for the service", Reason.NOT_A_COMMAND
    ),
    "issue_comment.created.on-pull-request.json": Verdict(
        Kind.IGNORED, "ignored: no command for the service", Reason.NOT_A_COMMAND
    ),
    # The facts have no App id (a token): check runs are not the service's then.
    "check_run.rerequested.json": Verdict(
        Kind.IGNORED, "ignored: check_run/rerequested (the service publishes commit statuses, "
        "not check runs, without GitHub App credentials)", Reason.NOT_OUR_CHECK,
    ),
    # an App installation event names no repository
    "installation.created.json": Verdict(
        Kind.IGNORED, "ignored: not for acme/access", Reason.OTHER_REPOSITORY
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_payload(name: str) -> None:
    assert verdict_of(name) == REAL[name]


def test_every_real_payload_has_a_verdict_here() -> None:
    names = {p.name for p in FIXTURES.glob("*.json")}
    if not names:
        payload("pull_request.opened.json")  # fails in CI, skips elsewhere
    assert names == set(REAL)


# --------------------------------------------------------------------------------------------
# Filters: ping, repository, installation


def test_ping_is_answered_whatever_it_names() -> None:
    ping = {"zen": "Keep it logically awesome.", "hook_id": 1, "hook": {"type": "App"}}
    assert classify("ping", ping, KnownFacts("acme/access", 77)) == Verdict(
        Kind.IGNORED, "pong", Reason.PING
    )


def test_another_repository_is_ignored() -> None:
    data = payload("pull_request.closed.merged.json")
    assert classify("pull_request", data, KnownFacts("acme/access")) == Verdict(
        Kind.IGNORED, "ignored: not for acme/access", Reason.OTHER_REPOSITORY
    )


def test_repository_names_are_case_insensitive() -> None:
    data = payload("pull_request.closed.merged.json")
    facts = KnownFacts(data["repository"]["full_name"].upper())
    assert classify("pull_request", data, facts).kind is Kind.MERGE


def test_another_installation_is_ignored_and_named() -> None:
    verdict = verdict_of("pull_request.opened.json", installation_id=2)
    assert verdict == Verdict(
        Kind.IGNORED, "ignored: installation 1 is not this service's",
        Reason.FOREIGN_INSTALLATION, installation=1,
    )


@pytest.mark.parametrize("named", ["1", 1.0, True, -1, 0, None, [1]], ids=repr)
def test_an_installation_that_is_no_id_is_foreign_and_no_reinstall(named: object) -> None:
    data = payload("pull_request.opened.json")
    data["installation"] = {"id": named}
    verdict = classify("pull_request", data, KnownFacts(HELLO, 1))
    assert verdict == Verdict(
        Kind.IGNORED, f"ignored: installation {named} is not this service's",
        Reason.FOREIGN_INSTALLATION, installation=None,
    )


def test_with_a_token_the_installation_is_not_checked() -> None:
    verdict = verdict_of("pull_request.opened.json", installation_id=None)
    assert verdict.kind is Kind.CHANGE


def test_a_payload_without_installation_is_served_by_an_app() -> None:
    data = payload("pull_request.closed.merged.json")  # a repository webhook's delivery
    assert "installation" not in data
    facts = KnownFacts(data["repository"]["full_name"], installation_id=77)
    assert classify("pull_request", data, facts).kind is Kind.MERGE


# --------------------------------------------------------------------------------------------
# The service's own events


def test_the_token_owners_merge_counts() -> None:
    data = payload("pull_request.closed.merged.json")
    sender = data["sender"]["login"]
    assert data["pull_request"]["merged_by"]["login"] == sender
    assert verdict_of("pull_request.closed.merged.json", data, own_login=sender) == Verdict(
        Kind.MERGE, number=3
    )


@pytest.mark.parametrize("name", [
    "pull_request.opened.json", "pull_request.synchronize.json",
    "pull_request_review.submitted.approved.json", "pull_request_review.dismissed.json",
])
def test_the_token_owners_changes_and_reviews_count(name: str) -> None:
    data = payload(name)
    assert verdict_of(name, data, own_login=data["sender"]["login"].upper()) == REAL[name]


def marked_comment(login: str, body: str) -> dict[str, Any]:
    data = payload("issue_comment.created.on-pull-request.json")
    data["sender"]["login"] = data["comment"]["user"]["login"] = login
    data["comment"]["body"] = body
    return data


@pytest.mark.parametrize("action", ["created", "edited", "deleted"])
@pytest.mark.parametrize("sender", [BOT, BOT.upper()])
def test_the_services_own_marked_comment_is_ignored(action: str, sender: str) -> None:
    data = marked_comment(sender, f"{COMMENT_MARKER}\n### jit-access: ✅ Ready")
    data["action"] = action
    assert verdict_of("issue_comment", data, own_login=BOT) == Verdict(
        Kind.IGNORED, "ignored: the service's own comment", Reason.OWN_COMMENT
    )


@pytest.mark.parametrize(("sender", "body", "own"), [
    (BOT, "/jit revoke", BOT),  # the token owner's own words
    (BOT, f"> quoting\n{COMMENT_MARKER}", BOT),  # a marker not where the service puts it
    ("mallory", f"{COMMENT_MARKER}\nforged", BOT),  # a marker by someone else
    (BOT, f"{COMMENT_MARKER}\n", None),  # the own login is not known
])
def test_other_comments_are_not_the_services_own(sender: str, body: str, own: str | None) -> None:
    data = marked_comment(sender, body)
    verdict = verdict_of("issue_comment", data, own_login=own)
    # Not ignored as the service's own: judged as anybody's comment (the command is one).
    assert verdict.reason is not Reason.OWN_COMMENT
    assert verdict.kind is (Kind.REVOKE if body == "/jit revoke" else Kind.IGNORED)


def status_event(sender: str) -> dict[str, Any]:
    data = payload("pull_request.opened.json")
    return {
        "id": 1, "sha": data["pull_request"]["head"]["sha"], "name": HELLO,
        "context": "jit-access", "state": "success", "description": "Ready",
        "repository": data["repository"], "sender": {"login": sender},
        "installation": data["installation"],
    }


def test_the_services_own_status_is_ignored() -> None:
    data = status_event(BOT)
    assert verdict_of("status", data, own_login=BOT) == Verdict(
        Kind.IGNORED, "ignored: the service's own commit status", Reason.OWN_STATUS
    )
    assert verdict_of("status", status_event("ci-bot"), own_login=BOT) == Verdict(
        Kind.IGNORED, "ignored: status/None is not handled", Reason.UNHANDLED
    )


def test_every_marker_the_service_writes_is_recognised() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    markers = [COMMENT_MARKER, activation_marker(sha), refusal_marker(sha),
               activation_failed_marker(sha)]
    assert all(m.startswith(MARKER_PREFIX) and is_marked(m + "\ntext") for m in markers)
    assert not is_marked(f"text\n{COMMENT_MARKER}")
    assert not is_marked(" " + COMMENT_MARKER)


# --------------------------------------------------------------------------------------------
# What is evaluated


def test_a_title_edit_is_not_evaluated_but_a_base_change_is() -> None:
    data = payload("pull_request.opened.json")
    data["action"] = "edited"
    data["changes"] = {"title": {"from": "Old"}}
    assert verdict_of("pull_request", data) == Verdict(
        Kind.IGNORED, "PR #2: title or description edited; nothing to do", Reason.TEXT_EDIT
    )
    data["changes"] = {"base": {"ref": {"from": "dev"}, "sha": {"from": "abc"}}}
    assert verdict_of("pull_request", data) == Verdict(Kind.CHANGE, number=2)


def test_a_review_edit_is_not_evaluated() -> None:
    data = payload("pull_request_review.submitted.approved.json")
    data["action"] = "edited"
    assert verdict_of("pull_request_review", data) == Verdict(
        Kind.IGNORED, "PR #8: review comment or edit; nothing to do", Reason.COMMENT_REVIEW
    )


def test_an_upper_case_comment_state_is_a_comment() -> None:
    data = payload("pull_request_review.submitted.commented.json")
    data["review"]["state"] = "COMMENTED"
    assert verdict_of("pull_request_review", data).reason is Reason.COMMENT_REVIEW


def test_a_review_without_author_is_evaluated_without_reviewer() -> None:
    data = payload("pull_request_review.dismissed.json")
    data["review"]["user"] = None
    assert verdict_of("pull_request_review", data) == Verdict(Kind.REVIEW, number=2)


def test_only_merged_true_is_a_merge() -> None:
    data = payload("pull_request.closed.merged.json")
    for merged in ("true", 1, None):
        data["pull_request"]["merged"] = merged
        assert verdict_of("pull_request", data).reason is Reason.CLOSED_UNMERGED


@pytest.mark.parametrize("action", ["labeled", "assigned", None, 7])
def test_unhandled_actions_need_no_valid_number(action: object) -> None:
    data = copy.deepcopy(payload("pull_request.opened.json"))
    data["action"] = action
    data["pull_request"]["number"] = "two"
    shown = action if isinstance(action, str) else None
    assert verdict_of("pull_request", data) == Verdict(
        Kind.IGNORED, f"ignored: pull_request/{shown} is not handled", Reason.UNHANDLED
    )


@pytest.mark.parametrize("name", [
    "pull_request.opened.json", "pull_request.closed.merged.json",
    "pull_request.closed.unmerged.json", "pull_request_review.submitted.commented.json",
    "pull_request_review.dismissed.json",
])
@pytest.mark.parametrize("number", ["2", 2.0, True, 0, -2, 2**31, None], ids=repr)
def test_acted_on_events_need_a_valid_number(name: str, number: object) -> None:
    data = payload(name)
    data["pull_request"]["number"] = number
    with pytest.raises(MalformedPayload, match="no valid pull_request.number"):
        verdict_of(name, data)


# --------------------------------------------------------------------------------------------
# Re-runs of the check (GitHub App credentials) and merge groups

SHA = "d6fde92930d4715a2b49857d24b940956b26d2d3"  # the head of check_run.rerequested.json


def our_check_run(**changes: Any) -> dict[str, Any]:
    """The real check_run rerequested payload, as if the check were jit-access of App 2."""
    data = payload("check_run.rerequested.json")
    data["check_run"]["name"] = "jit-access"
    data["check_run"].update(changes)
    return data


def rerun_of(data: dict[str, Any], event: str = "check_run", **kw: Any) -> Verdict:
    return classify(event, data, facts_for(data, **{"app_id": 2, **kw}))


def test_a_rerun_of_our_check_names_its_commit() -> None:
    assert rerun_of(our_check_run()) == Verdict(Kind.RERUN, head_sha=SHA)


def test_a_rerun_of_another_apps_check_or_another_check_is_ignored() -> None:
    data = payload("check_run.rerequested.json")  # App 2's check "randscape"
    assert rerun_of(data).reason is Reason.NOT_OUR_CHECK
    assert rerun_of(our_check_run(), app_id=3) == Verdict(
        Kind.IGNORED, "ignored: check_run of another App", Reason.NOT_OUR_CHECK
    )


def test_the_prs_of_a_rerun_are_candidates_without_repeats_and_bounded() -> None:
    pulls = [{"number": n} for n in (7, 7, 0, -1, "8", True, *range(100, 120))]
    verdict = rerun_of(our_check_run(pull_requests=pulls))
    assert verdict.numbers == (7, *range(100, 109))


def test_our_external_id_names_the_pr_when_github_lists_none() -> None:
    """A fork's branch: GitHub lists no PR for the check suite (`pull_requests: []`)."""
    data = our_check_run(external_id="jit-access/1 pr=12 notes=0123456789abcdef")
    assert rerun_of(data).numbers == (12,)
    data = our_check_run(external_id="someone-else pr=12")
    assert rerun_of(data).numbers == ()


@pytest.mark.parametrize("head", [None, "", "xyz", SHA.upper(), SHA[:39], 12])
def test_a_rerun_needs_a_valid_head_commit(head: object) -> None:
    with pytest.raises(MalformedPayload):
        rerun_of(our_check_run(head_sha=head))


def test_a_check_suite_rerun_is_a_rerun_of_its_head() -> None:
    data = payload("check_run.rerequested.json")
    suite = data.pop("check_run")["check_suite"]
    suite["pull_requests"] = [{"number": 5}]
    data["check_suite"] = suite
    assert rerun_of(data, "check_suite") == Verdict(Kind.RERUN, head_sha=SHA, numbers=(5,))


@pytest.mark.parametrize("action", ["created", "completed", "requested_action"])
def test_other_check_run_actions_are_unhandled(action: str) -> None:
    data = our_check_run()
    data["action"] = action
    assert rerun_of(data) == Verdict(
        Kind.IGNORED, f"ignored: check_run/{action} is not handled", Reason.UNHANDLED
    )


def merge_group(**changes: Any) -> dict[str, Any]:
    """A merge_group checks_requested payload, shaped as GitHub's documentation shows it."""
    group = {
        "head_sha": "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d",
        "head_ref": "refs/heads/gh-readonly-queue/main/pr-104-"
        "929f8209d40f77f4abc622a499c93a83babdbe64",
        "base_sha": "929f8209d40f77f4abc622a499c93a83babdbe64",
        "base_ref": "refs/heads/main",
        **changes,
    }
    return {"action": "checks_requested", "merge_group": group,
            "repository": {"full_name": "acme/access"}, "installation": {"id": 1}}


def test_a_merge_group_names_its_head_base_and_queued_pr() -> None:
    verdict = classify("merge_group", merge_group(), KnownFacts("acme/access", 1))
    assert verdict == Verdict(
        Kind.MERGE_GROUP, head_sha="2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d",
        base="929f8209d40f77f4abc622a499c93a83babdbe64", base_ref="main", numbers=(104,),
    )


def test_a_merge_group_without_base_sha_compares_with_its_branch() -> None:
    data = merge_group(head_ref="refs/heads/elsewhere")
    del data["merge_group"]["base_sha"]  # older payloads have none
    verdict = classify("merge_group", data, KnownFacts("acme/access"))
    assert (verdict.base, verdict.base_ref, verdict.numbers) == ("main", "main", ())


@pytest.mark.parametrize("changes", [
    {"head_sha": "nope"}, {"base_ref": "main"}, {"base_ref": None}, {"base_ref": "refs/heads/"},
])
def test_a_merge_group_needs_a_head_and_a_base_branch(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedPayload):
        classify("merge_group", merge_group(**changes), KnownFacts("acme/access"))


def test_a_destroyed_merge_group_needs_nothing() -> None:
    data = merge_group()
    data["action"] = "destroyed"
    assert classify("merge_group", data, KnownFacts("acme/access")) == Verdict(
        Kind.IGNORED, "ignored: merge_group/destroyed is not handled", Reason.UNHANDLED
    )


# `/jit revoke` comments


def _command(body: str, *, action: str = "created", on_issue: bool = False) -> Verdict:
    name = f"issue_comment.created.{'on-issue' if on_issue else 'on-pull-request'}.json"
    data = payload(name)
    data["action"] = action
    data["comment"]["body"] = body
    return verdict_of(name, data)


def test_a_new_revoke_comment_on_a_pull_request_is_a_command() -> None:
    data = payload("issue_comment.created.on-pull-request.json")
    verdict = _command("/jit revoke  no longer needed \nthanks")
    assert verdict.kind is Kind.REVOKE
    assert verdict.number == data["issue"]["number"]
    assert verdict.comment_id == data["comment"]["id"]
    assert verdict.commenter == data["comment"]["user"]["login"]
    assert verdict.comment_created_at == data["comment"]["created_at"]
    assert verdict.command_reason == "no longer needed"


@pytest.mark.parametrize("body", ["please /jit revoke", "/jit revoked", "/jit revoke-all",
                                  "> /jit revoke", "/JIT REVOKE", ""])
def test_other_comments_are_no_command(body: str) -> None:
    assert _command(body).reason is Reason.NOT_A_COMMAND


@pytest.mark.parametrize("action", ["edited", "deleted"])
def test_edited_or_deleted_commands_are_ignored(action: str) -> None:
    verdict = _command("/jit revoke", action=action)
    assert verdict.ignored and verdict.reason is Reason.NOT_A_COMMAND


def test_a_command_on_an_issue_is_ignored() -> None:
    assert _command("/jit revoke", on_issue=True).reason is Reason.NOT_A_COMMAND


def test_a_command_without_a_comment_id_is_malformed() -> None:
    name = "issue_comment.created.on-pull-request.json"
    data = payload(name)
    data["comment"]["body"] = "/jit revoke"
    data["comment"]["id"] = True
    with pytest.raises(MalformedPayload):
        verdict_of(name, data)


# --------------------------------------------------------------------------------------------
# Approvals after the merge (README: break-glass)


def test_an_approval_of_a_merged_pr_is_marked_as_a_possible_after_the_fact_review() -> None:
    data = copy.deepcopy(payload("pull_request_review.submitted.approved.json"))
    data["pull_request"]["state"] = "closed"
    data["pull_request"]["merged_at"] = "2026-11-29T10:00:00Z"

    verdict = verdict_of("pull_request_review", data)

    assert verdict == Verdict(Kind.REVIEW, number=8, reviewer="baxterthehacker", after_merge=True)


def test_other_reviews_of_a_merged_pr_and_approvals_of_an_open_one_are_plain_reviews() -> None:
    data = copy.deepcopy(payload("pull_request_review.submitted.approved.json"))
    assert verdict_of("pull_request_review", data).after_merge is False  # open
    data["pull_request"]["merged_at"] = "2026-11-29T10:00:00Z"
    data["review"]["state"] = "changes_requested"
    assert verdict_of("pull_request_review", data).after_merge is False
    dismissed = copy.deepcopy(payload("pull_request_review.dismissed.json"))
    dismissed["pull_request"]["merged_at"] = "2026-11-29T10:00:00Z"
    assert verdict_of("pull_request_review", dismissed).after_merge is False
    data["review"]["state"] = "approved"
    data["pull_request"]["merged_at"] = 5  # not a time: no hint
    assert verdict_of("pull_request_review", data).after_merge is False
