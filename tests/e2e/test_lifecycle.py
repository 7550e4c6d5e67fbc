"""The whole request lifecycle through the real Flask app, PyGithub and the Google libraries."""

from __future__ import annotations

from datetime import timedelta

from jitaccess_sandbox.emulator import Emulator
from tests.e2e.conftest import NOW, request_yaml
from webhook.core.render import COMMENT_MARKER

WINDOW_1H = (
    '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
    'request.time < timestamp("2026-11-29T11:00:00Z"))'
)


def labels(entry: dict) -> dict:
    return entry.get("labels", {})


def events(emu: Emulator) -> list[str]:
    return [labels(e).get("event", "") for e in emu.audit()]


def test_self_approval_lifecycle(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "ready"

    status = emu.status(number)
    assert status is not None
    assert status["state"] == "success"
    assert status["context"] == "jit-access"
    assert len(status["description"]) < 140
    [comment] = emu.comments(number)
    assert comment.startswith(COMMENT_MARKER)

    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    [binding] = emu.activations("payments-dev")
    assert binding == {
        "role": "roles/cloudsql.admin",
        "members": ["user:alice@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": "Self-approved, justification: INC-1234: restore the failed replica "
            "(acme/access#1)",
            "expression": WINDOW_1H,
        },
    }
    assert events(emu) == ["gitops.requestRole", "gitops.activateRole"]
    activation = emu.audit()[-1]
    assert activation["labels"]["pull_request"].endswith("/acme/access/pull/1")
    assert activation["severity"] == "NOTICE"
    assert labels(activation) | {"delivery_id": "x"} == {
        "event": "gitops.activateRole",
        "user": "alice@example.com",
        "project": "payments-dev",
        "role": "roles/cloudsql.admin",
        "justification": "INC-1234: restore the failed replica",
        "activation_start": "2026-11-29T10:00:00Z",
        "activation_end": "2026-11-29T11:00:00Z",
        "reviewers": "",
        "pull_request": labels(activation)["pull_request"],
        "commit": emu.github.pull("acme/access", number).head_sha,
        "delivery_id": "x",
        "rule": labels(activation)["rule"],
    }
    # The role is under the top-level settings: `default` once the decision names each role's
    # settings ("" while it does not).
    assert labels(activation)["rule"] in ("default", "")
    comments = emu.comments(number)
    assert len(comments) == 2  # the status comment, then a new activation comment
    assert "2026-11-29T11:00:00Z" in comments[1]
    assert "1h" in comments[1]
    assert "roles/cloudsql.admin" in comments[1]


def test_multi_party_lifecycle(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    answer = emu.pr_event("opened", number)
    assert answer.body["state"] == "pending"
    assert emu.status(number)["state"] == "pending"  # type: ignore[index]
    # qualified peers (sre@ on the prod folder) are asked to review
    assert sorted(emu.github.requested_reviewers("acme/access", number)) == ["bob", "carol"]
    [comment] = emu.comments(number)
    assert "@bob" in comment and "@carol" in comment

    _, answer = emu.review(number, "bob", "APPROVED")
    assert answer.status == 200
    assert answer.body["state"] == "ready"
    assert emu.status(number)["state"] == "success"  # type: ignore[index]
    assert len(emu.comments(number)) == 1  # edited in place

    emu.advance(timedelta(minutes=10))
    answer = emu.merge(number)
    assert answer.status == 200, answer.body
    [binding] = emu.activations("payments-prod")
    assert binding["members"] == ["user:alice@example.com"]
    assert binding["condition"]["description"] == (
        "Approved by bob@example.com, justification: INC-1234: restore the failed replica "
        "(acme/access#1)"
    )
    assert binding["condition"]["expression"] == (
        '(request.time >= timestamp("2026-11-29T10:10:00Z") && '
        'request.time < timestamp("2026-11-29T11:10:00Z"))'
    )
    assert events(emu) == ["gitops.requestRole", "gitops.approveRole", "gitops.activateRole"]
    assert labels(emu.audit()[-1])["reviewers"] == "bob@example.com"


def test_redelivered_merge_grants_and_comments_once(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    first = emu.merge(number, delivery_id="delivery-1")
    assert first.status == 200
    payload = emu.pr_payload("closed", number)
    emu.advance(timedelta(minutes=5))
    again = emu.deliver("pull_request", payload, delivery_id="delivery-1")
    assert again.status == 200, again.body
    assert len(emu.activations("payments-dev")) == 1
    assert events(emu).count("gitops.activateRole") == 1
    assert len(emu.comments(number)) == 2
    # the binding kept its first window
    assert emu.activations("payments-dev")[0]["condition"]["expression"] == WINDOW_1H


def test_merge_after_max_delay_is_refused(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    emu.github.merge("acme/access", number, merged_at=NOW)
    emu.advance(timedelta(hours=2))
    answer = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert answer.status == 200
    assert answer.body["state"] == "refused"
    assert emu.activations("payments-dev") == []
    assert events(emu)[-1] == "gitops.refuseActivation"
    assert emu.audit()[-1]["severity"] == "WARNING"
    assert "is older than activation.max\\_delay (1h)" in emu.comments(number)[-1]


def test_merge_while_pending_is_refused(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", number)
    answer = emu.merge(number)  # an admin bypassed branch protection
    assert answer.body["state"] == "refused"
    assert emu.activations("payments-prod") == []
    assert "not activated" in emu.comments(number)[-1].lower()


def test_closed_without_merge_does_nothing(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml())
    emu.github.close("acme/access", number)
    answer = emu.pr_event("closed", number)
    assert answer.status == 200
    assert "without merge" in answer.body["message"]
    assert emu.activations("payments-dev") == []


def test_request_file_too_large_to_read_is_a_problem_not_an_error(emu: Emulator) -> None:
    huge = request_yaml() + "#" * (100 * 1024) + "\n"
    number = emu.open_request("alice", huge)
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "invalid"
    status = emu.status(number)
    assert status is not None and status["state"] == "failure"
    assert "request files are at most 4096 bytes" in emu.comments(number)[0]


def test_concurrent_events_on_one_pr_keep_one_status_comment(emu: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    payload = emu.pr_payload("opened", number)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: emu.deliver("pull_request", payload), range(6)))
    assert [a.status for a in answers] == [200] * 6
    comments = emu.comments(number)
    assert len(comments) == 1
    assert comments[0].startswith(COMMENT_MARKER)


def test_each_binding_names_only_the_approvers_of_its_role(emu: Emulator) -> None:
    multi = "has({}.multiPartyApprovalConstraint)"
    prod = "projects/payments-prod"
    emu.world.add_binding(prod, "roles/spanner.admin", "user:alice@example.com", multi)
    emu.world.add_binding(prod, "roles/spanner.admin", "user:dave@example.com", multi)
    number = emu.open_request(
        "alice",
        request_yaml(
            project="payments-prod", roles=("roles/cloudsql.admin", "roles/spanner.admin")
        ),
    )
    emu.pr_event("opened", number)
    emu.review(number, "bob", "APPROVED")  # qualified for cloudsql.admin only (sre@)
    _, answer = emu.review(number, "dave", "APPROVED")  # qualified for spanner.admin only
    assert answer.body["state"] == "ready"
    assert emu.merge(number).status == 200
    descriptions = {
        b["role"]: b["condition"]["description"] for b in emu.activations("payments-prod")
    }
    assert descriptions == {
        "roles/cloudsql.admin": "Approved by bob@example.com, justification: "
        "INC-1234: restore the failed replica (acme/access#1)",
        "roles/spanner.admin": "Approved by dave@example.com, justification: "
        "INC-1234: restore the failed replica (acme/access#1)",
    }
    assert labels(emu.audit()[-1])["reviewers"] == "bob@example.com,dave@example.com"
