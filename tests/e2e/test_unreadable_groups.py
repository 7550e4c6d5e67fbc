"""Groups Cloud Identity will not show, through the real service.

Cloud Identity answers `groups:lookup` with the same 403 `Error(2028) … (or it may not exist)`
for a group that does not exist and when the service account lacks the Groups Reader admin
role. A group of the requester's own domain that cannot be read is therefore a service error
naming the group and the role, never "not eligible"; a group of another domain is left out
with a note on the PR, and the requester is judged on the rest.
"""

from __future__ import annotations

import pytest

from jitaccess_sandbox.emulator import MULTI, SELF, Emulator
from tests.e2e.conftest import request_yaml
from webhook.core.render import COMMENT_MARKER

LOOKUP = r"^/v1/groups:lookup$"


def status_comment(emu: Emulator, number: int) -> str:
    [comment] = [c for c in emu.comments(number) if c.startswith(COMMENT_MARKER)]
    # Quoted upstream text is made inert with zero-width joiners (after "@", before "#1"…);
    # read it as a person does.
    return comment.replace("\u200d", "")


def assert_unreadable_group_error(emu: Emulator, number: int, state: str, group: str) -> None:
    assert state == "error"
    status = emu.status(number)
    assert status is not None
    assert (status["state"], status["description"]) == ("error", "Service error: see comment")
    comment = status_comment(emu, number)
    assert "cannot be evaluated" in comment
    assert f"Cloud Identity will not show the group {group} of the requester" in comment
    assert "Groups Reader admin role" in comment
    assert "Not eligible" not in comment


def test_without_groups_reader_the_requesters_group_is_an_error(emu: Emulator) -> None:
    # developers@example.com makes alice eligible for payments-dev; without Groups Reader the
    # service cannot tell, and must say so instead of "not eligible".
    emu.world.groups_reader = False
    number = emu.open_request("alice", request_yaml())

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert_unreadable_group_error(emu, number, answer.body["state"],
                                  "developers@example.com")
    assert emu.google.recorder.count("GET", LOOKUP) == 1

    # Merged anyway: nothing is decided, so nothing is granted and nothing refused for good.
    merged = emu.merge(number)
    assert merged.status == 502, merged.body
    assert "eligibility could not be checked" in merged.body["message"]
    assert emu.activations("payments-dev") == []

    # Once the role is granted, a redelivery of the merge completes it.
    emu.world.groups_reader = True
    again = emu.deliver("pull_request", emu.pr_payload("closed", number))
    assert again.status == 200, again.body
    assert [b["members"] for b in emu.activations("payments-dev")] == [["user:alice@example.com"]]


@pytest.mark.parametrize("group", ["ghost-team@example.com", "Ghost-Team@EXAMPLE.com"])
def test_a_group_of_the_requesters_domain_that_does_not_exist_is_an_error(
    emu: Emulator, group: str
) -> None:
    # The same 403 as above: alice (in no group now) may activate with approval, and a binding
    # names a deleted group of her own domain that could let her self-activate. Her search
    # found no group, so nothing shows that her domain's groups can be read: the one lookup
    # gets the ambiguous 403, which is for an administrator to fix, not a silent "needs
    # approval".
    emu.world.groups["developers@example.com"].discard("alice@example.com")
    emu.world.add_binding("projects/payments-prod", "roles/cloudsql.admin", f"group:{group}",
                          SELF, title="Eligible for JIT access")
    number = emu.open_request("alice", request_yaml(project="payments-prod"))

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert_unreadable_group_error(emu, number, answer.body["state"], "ghost-team@example.com")
    assert emu.google.recorder.count("GET", LOOKUP) == 1


def test_once_the_domains_groups_are_readable_a_missing_group_grants_nobody(
    emu: Emulator,
) -> None:
    # carol's search found sre@, so her domain's groups can be read (Groups Reader covers them
    # all): a group she is not found in is one she is not in, even one that does not exist.
    # (IAM keeps no `group:` member for a group that does not exist: it refuses such bindings
    # and shows deleted groups as `deleted:group:…?uid=…`, which count for nobody.)
    emu.world.add_binding("projects/payments-prod", "roles/cloudsql.admin",
                          "group:ghost-team@example.com", SELF, title="Eligible for JIT access")
    number = emu.open_request("carol", request_yaml(project="payments-prod"))

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "pending"
    assert emu.google.recorder.count("GET", LOOKUP) == 1  # sre@, to list the qualified peers


def test_a_group_that_cannot_change_the_outcome_is_not_looked_up(emu: Emulator) -> None:
    # alice may self-activate through developers@: a binding of another group (one that does
    # not exist, here) could give her nothing more, so it costs no call and is no error.
    emu.world.add_binding("projects/payments-dev", "roles/cloudsql.admin",
                          "group:ghost-team@example.com", SELF, title="Eligible for JIT access")
    number = emu.open_request("alice", request_yaml())

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "ready"
    assert emu.google.recorder.count("GET", LOOKUP) == 0


def test_a_group_of_another_domain_is_skipped_with_a_note(emu: Emulator) -> None:
    # A partner's group on payments-prod: Cloud Identity will not show it (403 Error(2028)).
    # alice is still judged on her direct binding: multi-party approval, and bob may approve.
    emu.world.add_binding("projects/payments-prod", "roles/cloudsql.admin",
                          "group:contractors@partner.example", SELF,
                          title="Partner self-approval")
    number = emu.open_request("alice", request_yaml(project="payments-prod"))

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "pending"
    assert emu.status(number)["state"] == "pending"  # type: ignore[index]
    comment = status_comment(emu, number)
    assert "**Notes**" in comment
    assert (
        "- Not counted: the members of contractors@partner.example, a group of another "
        "domain than the requester's that Cloud Identity does not show to this service."
    ) in comment

    _, approved = emu.review(number, "bob")
    assert approved.body["state"] == "ready", approved.body
    assert "contractors@partner.example" in status_comment(emu, number)
    merged = emu.merge(number)
    assert merged.status == 200, merged.body
    assert [b["members"] for b in emu.activations("payments-prod")] == [
        ["user:alice@example.com"]
    ]


def test_not_eligible_says_which_partner_group_was_not_counted(emu: Emulator) -> None:
    # carol is in no readable group eligible for payments-dev: "not eligible" (a failure, not
    # an error), and the comment says that the partner's group could not be looked into.
    emu.world.add_binding("projects/payments-dev", "roles/cloudsql.admin",
                          "group:contractors@partner.example", MULTI, title="Partner reviewers")
    emu.world.add_binding("projects/payments-dev", "roles/cloudsql.admin",
                          "group:contractors@partner.example", SELF, title="Partner")
    number = emu.open_request("carol", request_yaml())

    answer = emu.pr_event("opened", number)

    assert answer.status == 200, answer.body
    assert answer.body["state"] == "not_eligible"
    comment = status_comment(emu, number)
    assert "Not eligible" in comment
    assert "Not counted: the members of contractors@partner.example" in comment
