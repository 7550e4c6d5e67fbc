"""`/jit revoke` through the real Flask app, PyGithub and the Google libraries."""

from __future__ import annotations

from datetime import timedelta

from jitaccess_sandbox.emulator import POLICY_YAML, Emulator
from tests.e2e.conftest import NOW, request_yaml
from webhook.core.names import POLICY_PATH
from webhook.core.records import revoke_marker


def events(emu: Emulator) -> list[str]:
    return [e.get("labels", {}).get("event", "") for e in emu.audit()]


def revoke_entries(emu: Emulator) -> list[dict]:
    return [e for e in emu.audit() if e["labels"]["event"] == "gitops.revokeRole"]


def activated(emu: Emulator, *, project: str = "payments-dev", author: str = "alice") -> int:
    """A merged request PR whose activation is in effect."""
    number = emu.open_request(author, request_yaml(project=project))
    assert emu.pr_event("opened", number).status == 200
    if project == "payments-prod":
        _, answer = emu.review(number, "bob", "APPROVED")
        assert answer.body["state"] == "ready"
    answer = emu.merge(number)
    assert answer.status == 200 and answer.body["state"] == "activated", answer.body
    assert emu.activations(project)
    return number


def google_calls(emu: Emulator) -> list[str]:
    return [f"{c.method} {c.path}" for c in emu.google.recorder.calls]


def test_requester_revokes_with_a_reason(emu: Emulator) -> None:
    number = activated(emu)
    emu.advance(timedelta(minutes=5))
    comment_id, answer = emu.comment(number, "alice", "/jit revoke done early, thanks\nmore")
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "revoked"
    assert emu.activations("payments-dev") == []
    [entry] = revoke_entries(emu)
    assert entry["severity"] == "NOTICE"
    assert entry["insertId"] == f"revoke:acme/access#{number}@comment-{comment_id}"
    assert entry["labels"] | {"delivery_id": ""} == {
        "event": "gitops.revokeRole",
        "user": "alice@example.com",
        "project": "payments-dev",
        "role": "roles/cloudsql.admin",
        "justification": "INC-1234: restore the failed replica",
        "activation_start": "2026-11-29T10:00:00Z",
        "activation_end": "2026-11-29T11:00:00Z",
        "reviewers": "",
        "pull_request": entry["labels"]["pull_request"],
        "commit": entry["labels"]["commit"],
        "delivery_id": "",
        "revoked_by": "alice@example.com",
        "reason": "done early, thanks",
    }
    last = emu.comments(number)[-1]
    assert last.startswith(revoke_marker(f"comment-{comment_id}", "done"))
    assert "@alice revoked" in last and "`roles/cloudsql.admin`" in last
    assert "2026-11-29T10:05:00Z" in last and "`done early, thanks`" in last
    # The reason travels to Cloud Audit Logs with the IAM write.
    write = [c for c in emu.google.recorder.calls if c.path.endswith(":setIamPolicy")][-1]
    reason = {k.lower(): v for k, v in write.headers.items()}.get("x-goog-request-reason", "")
    assert reason.startswith(f"Revoked by alice@example.com (acme/access#{number}, comment-")
    assert reason.endswith(": done early, thanks")


def test_requester_text_in_the_reason_is_inert(emu: Emulator) -> None:
    number = activated(emu)
    _, answer = emu.comment(number, "alice", "/jit revoke @bob see #12 https://x.example")
    assert answer.body["state"] == "revoked"
    last = emu.comments(number)[-1]
    assert "`@bob see #12 https://x.example`" in last


def test_qualified_peer_revokes(emu: Emulator) -> None:
    number = activated(emu, project="payments-prod")
    _, answer = emu.comment(number, "bob", "/jit revoke")
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "revoked"
    assert emu.activations("payments-prod") == []
    [entry] = revoke_entries(emu)
    assert entry["labels"]["revoked_by"] == "bob@example.com"
    assert entry["labels"]["reason"] == ""
    assert entry["labels"]["reviewers"] == "bob@example.com"  # as the activation's


def test_listed_revoker_revokes_without_a_google_lookup() -> None:
    policy = POLICY_YAML + "revocation:\n  revokers: [Dave]\n"
    with Emulator(now=NOW, policy_yaml=policy) as emu:
        number = activated(emu)
        emu.google.recorder.calls.clear()
        _, answer = emu.comment(number, "dave", "/jit revoke on-call: suspicious activity")
        assert answer.body["state"] == "revoked", answer.body
        assert emu.activations("payments-dev") == []
        assert [c for c in google_calls(emu) if "cloudasset" in c or "groups" in c] == []
        assert revoke_entries(emu)[0]["labels"]["revoked_by"] == "dave@example.com"
        assert emu.google.recorder.unexpected == []


def test_outsider_is_refused_without_a_google_call(emu: Emulator) -> None:
    number = activated(emu)
    emu.google.recorder.calls.clear()
    _, answer = emu.comment(number, "dave", "/jit revoke")
    assert answer.status == 200
    assert answer.body["state"] == "refused"
    assert google_calls(emu) == []
    assert len(emu.activations("payments-dev")) == 1
    assert revoke_entries(emu) == []
    last = emu.comments(number)[-1]
    assert "Revocation refused" in last and "@alice" in last and "revokers" in last


def test_unmapped_commenter_is_refused_without_a_google_call(emu: Emulator) -> None:
    number = activated(emu)
    emu.google.recorder.calls.clear()
    _, answer = emu.comment(number, "mallory", "/jit revoke")
    assert answer.body["state"] == "refused"
    assert google_calls(emu) == []
    assert len(emu.activations("payments-dev")) == 1
    assert "no identity mapping" in emu.comments(number)[-1]


def test_unqualified_reviewer_is_refused_after_one_eligibility_lookup(emu: Emulator) -> None:
    number = activated(emu, project="payments-prod")
    emu.github.add_review("acme/access", number, "dave", "COMMENTED")
    emu.google.recorder.calls.clear()
    _, answer = emu.comment(number, "dave", "/jit revoke")
    assert answer.body["state"] == "refused"
    assert len(emu.activations("payments-prod")) == 1
    assert not [c for c in google_calls(emu) if "IamPolicy" in c]


def test_redelivered_command_does_nothing_new(emu: Emulator) -> None:
    number = activated(emu)
    comment_id, answer = emu.comment(number, "alice", "/jit revoke")
    assert answer.body["state"] == "revoked"
    comments = emu.comments(number)
    payload = emu.github.issue_comment_event(
        emu.repo, number, "alice", "/jit revoke", comment_id=comment_id
    )
    emu.google.recorder.calls.clear()
    again = emu.deliver("issue_comment", payload)
    assert again.status == 200 and again.body["state"] == "answered", again.body
    assert emu.comments(number) == comments
    assert google_calls(emu) == []
    assert len(revoke_entries(emu)) == 1


def test_nothing_active(emu: Emulator) -> None:
    number = activated(emu)
    emu.comment(number, "alice", "/jit revoke")
    writes = len([c for c in emu.google.recorder.calls if c.path.endswith(":setIamPolicy")])
    _, answer = emu.comment(number, "alice", "/jit revoke again")
    assert answer.body["state"] == "nothing"
    assert "Nothing to revoke" in emu.comments(number)[-1]
    assert len([c for c in emu.google.recorder.calls
                if c.path.endswith(":setIamPolicy")]) == writes
    assert len(revoke_entries(emu)) == 1


def test_edits_deletions_and_mentions_do_nothing(emu: Emulator) -> None:
    number = activated(emu)
    before = emu.comments(number)
    emu.google.recorder.calls.clear()
    for action, body in (("edited", "/jit revoke"), ("deleted", "/jit revoke"),
                         ("created", "please /jit revoke this"), ("created", "/jit revoked")):
        payload = emu.github.issue_comment_event(emu.repo, number, "alice", body,
                                                 action=action, comment_id=77)
        answer = emu.deliver("issue_comment", payload)
        assert answer.status == 200 and "state" not in answer.body, (action, body, answer.body)
    assert emu.comments(number) == before
    assert google_calls(emu) == []
    assert len(emu.activations("payments-dev")) == 1


def test_revocation_under_iam_conflicts(emu: Emulator) -> None:
    number = activated(emu)
    conflict = emu.google.recorder.fail("POST", r":setIamPolicy$", 409,
                             body={"error": {"code": 409, "status": "ABORTED",
                                             "message": "There were concurrent policy changes."}},
                             times=2)
    _, answer = emu.comment(number, "alice", "/jit revoke")
    assert answer.body["state"] == "revoked", answer.body
    assert conflict.remaining == 0  # both conflicts were met and retried
    assert emu.activations("payments-dev") == []
    assert len(revoke_entries(emu)) == 1


def test_revocation_under_logging_failure_is_completed_by_a_redelivery(emu: Emulator) -> None:
    number = activated(emu)
    emu.google.recorder.fail("POST", r"entries:write", 500, times=50)
    comment_id, answer = emu.comment(number, "alice", "/jit revoke")
    assert answer.status == 502, answer.body
    assert emu.activations("payments-dev") == []  # the access is gone
    assert revoke_entries(emu) == []
    last = emu.comments(number)[-1]
    assert last.startswith(revoke_marker(f"comment-{comment_id}", "failed"))
    assert "audit entry of the revocation could not be written" in last
    for fault in emu.google.recorder.faults:
        fault.remaining = 0
    payload = emu.github.issue_comment_event(
        emu.repo, number, "alice", "/jit revoke", comment_id=comment_id
    )
    again = emu.deliver("issue_comment", payload)
    assert again.status == 200 and again.body["state"] == "revoked", again.body
    [entry] = revoke_entries(emu)
    assert entry["labels"]["user"] == "alice@example.com"
    assert emu.comments(number)[-1].startswith(revoke_marker(f"comment-{comment_id}", "done"))
    assert emu.deliver("issue_comment", payload).body["state"] == "answered"
    assert len(revoke_entries(emu)) == 1


def test_open_pr_has_nothing_to_revoke(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    before = emu.comments(number)
    emu.google.recorder.calls.clear()
    _, answer = emu.comment(number, "alice", "/jit revoke")
    assert answer.status == 200 and "not merged" in answer.body.get("message", str(answer.body))
    assert google_calls(emu) == []
    assert len(emu.comments(number)) == len(before) + 1  # only alice's own comment


# --------------------------------------------------------------------------------------------
# Revocation pull requests


def revocation_pr(emu: Emulator, author: str, *paths: str) -> int:
    return emu.github.open_pr(emu.repo, author, {}, removed=list(paths), title="Revoke")


def test_revocation_pr_names_the_pr_and_its_merge_revokes(emu: Emulator) -> None:
    target = activated(emu)
    number = revocation_pr(emu, "alice", "requests/alice/request.yaml")
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "revocation"
    status = emu.status(number)
    assert status is not None and status["state"] == "success"
    assert f"#{target}" in status["description"]
    [summary] = emu.comments(number)
    assert summary.startswith(revoke_marker(f"pr-{number}", "status"))
    assert len(emu.activations("payments-dev")) == 1  # nothing revoked before the merge
    assert "gitops.refuseActivation" not in events(emu)

    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "revocation"
    assert emu.activations("payments-dev") == []
    [entry] = revoke_entries(emu)
    assert entry["labels"]["revoked_by"] == "alice@example.com"
    assert entry["labels"]["pull_request"].endswith(f"/pull/{target}")
    assert entry["insertId"] == f"revoke:acme/access#{target}@pr-{number}"
    assert "gitops.refuseActivation" not in events(emu)
    assert emu.comments(target)[-1].startswith(revoke_marker(f"pr-{number}", "done"))
    assert "revoked" in emu.comments(number)[-1]

    again = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert again.body["state"] == "answered"
    assert len(revoke_entries(emu)) == 1


def test_revocation_pr_with_nothing_active(emu: Emulator) -> None:
    target = activated(emu)
    emu.comment(target, "alice", "/jit revoke")
    number = revocation_pr(emu, "alice", "requests/alice/request.yaml")
    answer = emu.pr_event("opened", number)
    assert answer.body["state"] == "revocation"
    status = emu.status(number)
    assert status is not None and status["state"] == "success"
    assert "no access" in status["description"]


def test_revocation_pr_by_an_outsider_revokes_nothing(emu: Emulator) -> None:
    target = activated(emu)
    number = revocation_pr(emu, "dave", "requests/alice/request.yaml")
    emu.pr_event("opened", number)
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert len(emu.activations("payments-dev")) == 1
    assert revoke_entries(emu) == []
    assert "@dave may not revoke" in emu.comments(number)[-1]
    assert target


def test_deleting_a_request_beside_other_changes_still_fails(emu: Emulator) -> None:
    activated(emu)
    number = emu.github.open_pr(emu.repo, "alice", {"README.md": "x"},
                                removed=["requests/alice/request.yaml"])
    answer = emu.pr_event("opened", number)
    assert answer.body.get("state") != "revocation"
    status = emu.status(number)
    assert status is None or status["state"] != "success"


def test_revocation_pr_under_logging_failure_is_completed_by_a_redelivery(
    emu: Emulator,
) -> None:
    target = activated(emu)
    number = revocation_pr(emu, "alice", "requests/alice/request.yaml")
    emu.pr_event("opened", number)
    emu.google.recorder.fail("POST", r"entries:write", 500, times=50)
    answer = emu.merge(number)
    assert answer.status == 502, answer.body
    assert emu.activations("payments-dev") == []
    assert revoke_entries(emu) == []
    assert "audit entry of the revocation could not be written" in emu.comments(target)[-1]
    for fault in emu.google.recorder.faults:
        fault.remaining = 0
    again = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert again.status == 200 and again.body["state"] == "revocation", again.body
    [entry] = revoke_entries(emu)
    assert entry["labels"]["revoked_by"] == "alice@example.com"
    assert emu.comments(target)[-1].startswith(revoke_marker(f"pr-{number}", "done"))
    assert emu.deliver("pull_request", emu.pr_payload("closed", number)).body["state"] == (
        "answered"
    )
    assert len(revoke_entries(emu)) == 1


def test_a_redelivered_merge_does_not_undo_a_revocation(emu: Emulator) -> None:
    number = activated(emu)
    emu.comment(number, "alice", "/jit revoke")
    again = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert again.status == 200, again.body
    assert emu.activations("payments-dev") == []
    assert events(emu).count("gitops.activateRole") == 1


#: Production databases: only dave, a designated `user:` approver, counts; qualified peers
#: (bob and carol, through sre@) do not.
DESIGNATED = POLICY_YAML + """\
rules:
  - name: production databases
    match: {projects: ["*-prod"], roles: ["roles/cloudsql.*"]}
    approval:
      approvers: ["user:dave@example.com"]
      peers: false
"""


def test_a_designated_approver_revokes_and_a_peer_no_longer_may(emu: Emulator) -> None:
    # Activated under the top-level settings (bob's approval); then the policy gains a rule
    # for production databases. Revocation judges by the policy of the moment.
    number = activated(emu, project="payments-prod")
    emu.github.put_file(emu.repo, POLICY_PATH, DESIGNATED)
    emu.github.add_review(emu.repo, number, "dave", "COMMENTED")
    emu.google.recorder.calls.clear()

    # bob is a qualified peer, but the rule lets only its approvers count: refused, and no
    # lookup could change that, so none is made.
    _, answer = emu.comment(number, "bob", "/jit revoke")
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "refused"
    assert google_calls(emu) == []
    assert len(emu.activations("payments-prod")) == 1
    assert "designated approver" in emu.comments(number)[-1]

    # dave is no peer at all, but the rule's designated approver: no eligibility lookup.
    _, answer = emu.comment(number, "dave", "/jit revoke leaving the incident")
    assert answer.body["state"] == "revoked", answer.body
    assert emu.activations("payments-prod") == []
    assert [c for c in google_calls(emu) if "cloudasset" in c or "groups" in c] == []
    [entry] = revoke_entries(emu)
    assert entry["labels"]["revoked_by"] == "dave@example.com"
    assert entry["labels"]["reason"] == "leaving the incident"
    assert emu.google.recorder.unexpected == []


def test_a_designated_approver_who_did_not_review_may_not_revoke(emu: Emulator) -> None:
    number = activated(emu, project="payments-prod")
    emu.github.put_file(emu.repo, POLICY_PATH, DESIGNATED)
    emu.google.recorder.calls.clear()
    _, answer = emu.comment(number, "dave", "/jit revoke")
    assert answer.body["state"] == "refused"
    assert google_calls(emu) == []
    assert len(emu.activations("payments-prod")) == 1


def test_a_revocation_pr_by_a_designated_approver_revokes(emu: Emulator) -> None:
    target = activated(emu, project="payments-prod")
    emu.github.put_file(emu.repo, POLICY_PATH, DESIGNATED)
    emu.github.add_review(emu.repo, target, "dave", "APPROVED")
    number = revocation_pr(emu, "dave", "requests/alice/request.yaml")
    emu.pr_event("opened", number)
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "revocation", answer.body
    assert emu.activations("payments-prod") == []
    [entry] = revoke_entries(emu)
    assert entry["labels"]["revoked_by"] == "dave@example.com"


def test_a_policy_tightened_since_the_merge_does_not_stop_a_revocation(emu: Emulator) -> None:
    number = activated(emu)  # 1h, the justification fits today's pattern
    emu.github.put_file(
        emu.repo, POLICY_PATH,
        POLICY_YAML.replace("max_duration: 4h", "max_duration: 30m").replace(
            "'(INC|CHG)-[0-9]+: .+'", "'SEV-[0-9]+: .+'"
        ),
    )
    emu.advance(timedelta(minutes=5))
    _, answer = emu.comment(number, "alice", "/jit revoke")
    assert answer.body["state"] == "revoked", answer.body
    assert emu.activations("payments-dev") == []
    assert len(revoke_entries(emu)) == 1
