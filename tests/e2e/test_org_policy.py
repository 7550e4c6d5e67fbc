"""README: rules, designated approvers and veto, end to end: the real service over HTTP, PyGithub
and the Google client libraries against both fakes.

The standard world: alice may self-activate roles/cloudsql.admin on payments-dev (through
developers@) and activate it with approval on payments-prod (in the prod folder); bob and carol
are qualified peers on payments-prod through sre@ on the prod folder; dave is a developer, no
peer. erin, mapped, holds nothing; she is a designated approver where a rule says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from jitaccess_sandbox.emulator import IDENTITIES_YAML, PROD_FOLDER, REPO, Emulator
from tests.e2e.conftest import NOW, request_yaml

PROD, DEV = "payments-prod", "payments-dev"
ROLE = "roles/cloudsql.admin"

BASE = """\
scope: organizations/123456789012
activation:
  min_duration: 5m
  max_duration: 4h
justification:
  pattern: '(INC|CHG)-[0-9]+: .+'
  hint: 'an incident or change number'
approval:
  required: 1
"""

IDENTITIES = IDENTITIES_YAML + "erin: erin@example.com\n"


@contextmanager
def world(rules: str, *, identities: str = IDENTITIES) -> Iterator[Emulator]:
    """The standard world with `rules` appended to the policy; no fake sees an unexpected call."""
    with Emulator(now=NOW, policy_yaml=BASE + rules, identities_yaml=identities) as emu:
        emu.github.add_user("erin")
        yield emu
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


def opened(emu: Emulator, author: str, text: str, **kw: Any) -> tuple[int, str]:
    number = emu.open_request(author, text, **kw)
    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    return number, str(answer.body["state"])


def reviewed(emu: Emulator, number: int, login: str, state: str = "APPROVED") -> str:
    _, answer = emu.review(number, login, state)
    assert answer.status == 200, answer.body
    return str(answer.body["state"])


def status(emu: Emulator, number: int) -> tuple[str, str]:
    found = emu.status(number)
    assert found is not None
    return found["state"], found["description"]


def comment(emu: Emulator, number: int) -> str:
    [body] = emu.comments(number)
    return body


PRODUCTION_AND_SANDBOX = """\
rules:
  - name: production databases
    match:
      projects: ["*-prod"]
      roles: ["roles/cloudsql.*"]
    max_duration: 1h
    approval:
      required: 2
  - name: sandbox
    match:
      projects: ["*-dev"]
    max_duration: 8h
"""


def test_a_production_rule_needs_two_approvals_and_one_hour_while_dev_self_approves_8h() -> None:
    with world(PRODUCTION_AND_SANDBOX) as emu:
        # dev: the sandbox rule allows 8h, longer than the top-level 4h; self-approval.
        dev, state = opened(emu, "alice", request_yaml(project=DEV, duration="8h"))
        assert state == "ready"
        assert status(emu, dev)[0] == "success"
        assert "sandbox" in comment(emu, dev)

        # prod for 2h: longer than the production rule's 1h, said with the rule's name.
        long, state = opened(emu, "alice", request_yaml(project=PROD, duration="2h"),
                             name="long.yaml")
        assert state == "invalid"
        assert status(emu, long)[0] == "failure"
        body = comment(emu, long)
        assert "longer than the maximum 1h" in body
        assert "production databases" in body

        # prod for 1h: two approvals needed.
        prod, state = opened(emu, "alice", request_yaml(project=PROD, duration="1h"),
                             name="prod.yaml")
        assert state == "pending"
        assert status(emu, prod) == ("pending", f"Waiting for 2 approvals ({ROLE})")
        assert "production databases" in comment(emu, prod)
        assert reviewed(emu, prod, "bob") == "pending"
        assert status(emu, prod) == ("pending", f"Waiting for 1 approval ({ROLE})")
        assert reviewed(emu, prod, "carol") == "ready"
        assert status(emu, prod)[0] == "success"

        answer = emu.merge(prod)
        assert answer.body["state"] == "activated", answer.body
        [binding] = emu.activations(PROD)
        assert binding["members"] == ["user:alice@example.com"]
        [entry] = [e for e in emu.audit() if e["labels"]["event"] == "gitops.activateRole"
                   and e["labels"]["project"] == PROD]
        assert entry["labels"]["rule"] == "production databases"
        assert set(entry["labels"]["reviewers"].split(",")) == {
            "bob@example.com", "carol@example.com"
        }


def test_a_folder_rule_applies_to_projects_under_the_folder_only() -> None:
    rules = f"""\
rules:
  - name: prod folder
    match:
      folders: ["{PROD_FOLDER}"]
    approval:
      required: 2
"""
    with world(rules) as emu:
        prod, state = opened(emu, "alice", request_yaml(project=PROD))
        assert state == "pending"
        assert status(emu, prod) == ("pending", f"Waiting for 2 approvals ({ROLE})")
        assert "prod folder" in comment(emu, prod)
        # payments-dev is not under the folder: the top-level settings, self-approval.
        dev, state = opened(emu, "alice", request_yaml(project=DEV), name="dev.yaml")
        assert state == "ready"
        assert "prod folder" not in comment(emu, dev)


def test_a_role_pattern_rule_sets_the_justification_with_its_hint() -> None:
    rules = """\
rules:
  - name: database roles
    match:
      roles: ["roles/cloudsql.*"]
    justification:
      pattern: 'INC-[0-9]+: .+'
      hint: 'an incident number, e.g. "INC-1234: restore the replica"'
"""
    with world(rules) as emu:
        # CHG- fits the top-level pattern, not the rule's.
        number, state = opened(
            emu, "alice", request_yaml(project=DEV, justification="CHG-77: rotate keys")
        )
        assert state == "invalid"
        body = comment(emu, number)
        assert 'an incident number, e.g. "INC-1234: restore the replica"' in body
        fine, state = opened(emu, "alice", request_yaml(project=DEV), name="ok.yaml")
        assert state == "ready"


def test_a_designated_approver_counts_while_a_non_peer_non_approver_does_not() -> None:
    rules = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
    approval:
      approvers: ["user:erin@example.com"]
"""
    with world(rules) as emu:
        number, state = opened(emu, "alice", request_yaml(project=PROD))
        assert state == "pending"
        # dave is neither a qualified peer nor a designated approver.
        assert reviewed(emu, number, "dave") == "pending"
        assert "@\u200ddave's approval does not count" in comment(emu, number)
        # erin holds no eligible binding, but is a designated approver of the rule.
        assert reviewed(emu, number, "erin") == "ready"
        assert status(emu, number)[0] == "success"
        assert emu.merge(number).body["state"] == "activated"
        [binding] = emu.activations(PROD)
        assert "erin" in binding["condition"]["description"]


def test_a_designated_approver_group_counts_its_members() -> None:
    rules = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
    approval:
      approvers: ["group:db-leads@example.com"]
      peers: false
"""
    with world(rules) as emu:
        emu.world.add_group("db-leads@example.com", ["erin@example.com"])
        number, state = opened(emu, "alice", request_yaml(project=PROD))
        assert state == "pending"
        assert reviewed(emu, number, "erin") == "ready"


def test_with_peers_false_a_qualified_peer_does_not_count() -> None:
    rules = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
    approval:
      approvers: ["user:erin@example.com"]
      peers: false
"""
    with world(rules) as emu:
        number, state = opened(emu, "alice", request_yaml(project=PROD))
        assert state == "pending"
        assert reviewed(emu, number, "bob") == "pending"  # a qualified peer, not an approver
        assert "@\u200dbob's approval does not count" in comment(emu, number)
        assert emu.merge(number).body["state"] == "refused"
        assert emu.activations(PROD) == []


def test_with_peers_false_the_approver_makes_it_ready() -> None:
    rules = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
    approval:
      approvers: ["user:erin@example.com"]
      peers: false
"""
    with world(rules) as emu:
        number, _ = opened(emu, "alice", request_yaml(project=PROD))
        assert reviewed(emu, number, "bob") == "pending"
        assert reviewed(emu, number, "erin") == "ready"


VETO = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
    approval:
      veto: true
"""


def test_a_veto_blocks_the_role_and_the_merge_and_lifts_on_dismissal() -> None:
    with world(VETO) as emu:
        number, state = opened(emu, "alice", request_yaml(project=PROD))
        assert state == "pending"
        assert reviewed(emu, number, "bob") == "ready"
        review_id, answer = emu.review(number, "carol", "CHANGES_REQUESTED")
        assert answer.body["state"] == "vetoed", answer.body
        state, description = status(emu, number)
        assert (state, description) == ("failure", f"Vetoed by @carol ({ROLE})")
        assert "Vetoed by @" in comment(emu, number)

        emu.advance(timedelta(minutes=1))
        emu.github.dismiss(REPO, number, review_id)
        answer = emu.deliver(
            "pull_request_review", emu.review_payload("dismissed", number, review_id)
        )
        assert answer.body["state"] == "ready", answer.body
        assert status(emu, number)[0] == "success"


def test_a_vetoed_request_is_refused_at_merge() -> None:
    with world(VETO) as emu:
        number, _ = opened(emu, "alice", request_yaml(project=PROD))
        assert reviewed(emu, number, "bob") == "ready"
        assert reviewed(emu, number, "carol", "CHANGES_REQUESTED") == "vetoed"
        assert emu.merge(number).body["state"] == "refused"
        assert emu.activations(PROD) == []


def test_request_changes_by_someone_not_qualified_is_no_veto() -> None:
    with world(VETO) as emu:
        number, _ = opened(emu, "alice", request_yaml(project=PROD))
        assert reviewed(emu, number, "dave", "CHANGES_REQUESTED") == "pending"
        assert reviewed(emu, number, "bob") == "ready"


def test_an_invalid_rule_is_a_policy_error_naming_the_line_and_blocks_activation() -> None:
    rules = """\
rules:
  - name: production
    match:
      projects: ["*-prod"]
      folders: ["prod"]
    approval:
      approvers: ["serviceAccount:robot@example.iam.gserviceaccount.com"]
"""
    with world(rules) as emu:
        number, state = opened(emu, "alice", request_yaml(project=DEV))
        assert state == "error"
        assert status(emu, number)[0] == "error"
        body = comment(emu, number)
        first = BASE.count("\n") + 1  # the line of `rules:`
        assert f"line {first + 4}" in body, body  # folders
        assert f"line {first + 6}" in body, body  # approvers
        assert emu.merge(number).body["state"] == "refused"
        assert emu.activations(DEV) == []
