"""IAM conditions read exactly, through the real service: comments, jit-access's quirks, and
activations written by jit-access itself (extra parentheses, CR/LF, resource clauses first).

An administrator's comment must not leak into the activation it limits; a marker behind a
comment or under jit-access's quote counting must not make anybody more eligible than jit-access
would; and cleanup and the replacement of earlier activations must recognise jit-access's own
activations while leaving alone what merely has the title.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import requests

from jitaccess_sandbox.emulator import REPO, Emulator
from jitaccess_sandbox.fake_google_iam import _cel_syntax_error
from jitaccess_sandbox.httpserver import LocalServer
from tests.adversarial.conftest import (
    assert_no_grant,
    events,
    merge_and_assert_refused,
    request_yaml,
    status_of,
)
from webhook.core.conditions import ACTIVATION_TITLE, read_activation
from webhook.service.app import create_app

DEV = "payments-dev"
CLEANUP_TOKEN = "cleanup-token-0123456789abcdef"
WINDOW_1H = (
    '(request.time >= timestamp("2026-11-29T10:00:00Z") && '
    'request.time < timestamp("2026-11-29T11:00:00Z"))'
)


def bindings_of(emu: Emulator, role: str, member: str) -> list[dict[str, Any]]:
    return [
        b for b in emu.world.bindings(f"projects/{DEV}")
        if b["role"] == role and member in b["members"]
    ]


def activate(emu: Emulator, role: str) -> dict[str, Any]:
    """alice's 1 h request for `role` on payments-dev, opened and merged; the binding written."""
    number = emu.open_request("alice", request_yaml(project=DEV, roles=(role,)))
    answer = emu.pr_event("opened", number)
    assert answer.body["state"] == "ready", (answer.body, status_of(emu, number))
    answer = emu.merge(number)
    assert answer.body["state"] == "activated", answer.body
    [binding] = [
        b for b in bindings_of(emu, role, "user:alice@example.com")
        if b["condition"].get("description", "").endswith(f"({REPO}#{number})")
    ]
    assert binding["condition"]["title"] == ACTIVATION_TITLE
    return binding


# --------------------------------------------------------------------------------------------
# Comments


def test_a_comment_after_the_resource_condition_stays_out_of_the_activation(
    emu: Emulator,
) -> None:
    role = "roles/cloudsql.client"
    prefix = "//cloudsql.googleapis.com/projects/payments-dev/"
    emu.world.add_binding(
        f"projects/{DEV}", role, "user:alice@example.com",
        f'has({{}}.jitAccessConstraint) && resource.name.startsWith("{prefix}") // note',
        title="Eligible for the dev databases",
    )
    binding = activate(emu, role)
    expression = binding["condition"]["expression"]
    # the comment would have swallowed the `)` closing the resource condition
    assert expression == f'{WINDOW_1H} && (resource.name.startsWith("{prefix}"))'
    assert _cel_syntax_error(expression) is None
    activation = read_activation(expression)
    assert activation is not None
    assert activation.resource_clauses == (f'resource.name.startsWith("{prefix}")',)


def test_a_marker_behind_a_comment_makes_nobody_eligible(emu: Emulator) -> None:
    role = "roles/cloudsql.viewer"
    emu.world.add_binding(
        f"projects/{DEV}", role, "user:alice@example.com",
        'request.time < timestamp("2030-01-01T00:00:00Z") // && has({}.jitAccessConstraint)',
        title="Viewer until 2030",
    )
    number = emu.open_request("alice", request_yaml(project=DEV, roles=(role,)))
    answer = emu.pr_event("opened", number)
    assert answer.body["state"] == "not_eligible", answer.body
    assert status_of(emu, number)["state"] == "failure"
    merge_and_assert_refused(emu, number)
    assert_no_grant(emu)


def test_what_jitaccess_reads_as_multi_party_is_never_self_approval(emu: Emulator) -> None:
    # jit-access counts the `'` inside the string and stops splitting before the second
    # marker: for it, this binding needs approval. So it does here.
    role = "roles/cloudsql.editor"
    emu.world.add_binding(
        f"projects/{DEV}", role, "user:alice@example.com",
        "has({}.multiPartyApprovalConstraint) && resource.name != \"it's\" && "
        "has({}.jitAccessConstraint)",
        title="Editor with approval",
    )
    emu.world.add_binding(
        f"projects/{DEV}", role, "user:bob@example.com", "has({}.multiPartyApprovalConstraint)",
        title="Editor approvers",
    )
    number = emu.open_request("alice", request_yaml(project=DEV, roles=(role,)))
    answer = emu.pr_event("opened", number)
    assert answer.body["state"] == "pending", answer.body
    assert status_of(emu, number)["state"] == "pending"
    assert "gitops.activateRole" not in events(emu)
    _, answer = emu.review(number, "bob")
    assert answer.body["state"] == "ready", answer.body
    assert emu.merge(number).body["state"] == "activated"
    [binding] = [
        b for b in bindings_of(emu, role, "user:alice@example.com")
        if b["condition"].get("title") == ACTIVATION_TITLE
    ]
    assert binding["condition"]["description"].startswith("Approved by bob@example.com")
    assert binding["condition"]["expression"] == f"{WINDOW_1H} && (resource.name != \"it's\")"


# --------------------------------------------------------------------------------------------
# Activations written by jit-access


def cleanup(emu: Emulator) -> dict[str, Any]:
    """One cleanup run through the real app, authorised by a bearer token."""
    settings = dataclasses.replace(emu.settings, cleanup_token=CLEANUP_TOKEN)
    with LocalServer(create_app(settings, service=emu.service)) as server:
        resp = requests.post(
            f"{server.url}/tasks/cleanup", timeout=30,
            headers={"Authorization": f"Bearer {CLEANUP_TOKEN}"},
        )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_cleanup_removes_an_expired_jitaccess_activation_in_parentheses_and_crlf(
    emu: Emulator,
) -> None:
    role = "roles/cloudsql.admin"
    resource = f"projects/{DEV}"
    # jit-access 1.8 writes `((window)) && (resource)`; an administrator's tool re-wrapped it,
    # put the resource clause first and used CR/LF. It ended at 09:00; now is 10:00.
    expired = (
        "\r\n(resource.name == \"x\")\r\n  && (((request.time >= "
        'timestamp("2026-11-29T08:00:00.123456Z") &&\r\n request.time < '
        'timestamp("2026-11-29T09:00:00.123456Z"))))\r\n'
    )
    emu.world.add_binding(resource, role, "user:bob@example.com", expired, ACTIVATION_TITLE,
                          "Self-approved, justification: INC-7")
    # not limited by its window at all: `||` — no activation, whatever its title
    unlimited = (
        '(request.time >= timestamp("2026-11-29T08:00:00Z") && '
        'request.time < timestamp("2026-11-29T09:00:00Z")) || resource.name == "y"'
    )
    emu.world.add_binding(resource, role, "user:carol@example.com", unlimited, ACTIVATION_TITLE,
                          "Self-approved, justification: INC-8")
    # still active until 11:00
    active = (
        '((request.time >= timestamp("2026-11-29T09:00:00Z") && '
        "request.time < timestamp(\"2026-11-29T11:00:00Z\"))) && (resource.name=='x')"
    )
    emu.world.add_binding(resource, role, "user:dave@example.com", active, ACTIVATION_TITLE,
                          "Self-approved, justification: INC-9")

    body = cleanup(emu)
    assert body["removed"] == [
        {"project": DEV, "role": role, "member": "user:bob@example.com",
         "end": "2026-11-29T09:00:00Z"}
    ]
    assert body["errors"] == {}
    assert bindings_of(emu, role, "user:bob@example.com") == []
    assert [b["condition"]["expression"] for b in bindings_of(emu, role, "user:carol@example.com")
            ] == [unlimited]
    assert [b["condition"]["expression"] for b in bindings_of(emu, role, "user:dave@example.com")
            ] == [active]
    [entry] = [e for e in emu.audit() if e["labels"]["event"] == "gitops.removeExpired"]
    assert (entry["labels"]["user"], entry["labels"]["activation_start"],
            entry["labels"]["activation_end"]) == (
        "bob@example.com", "2026-11-29T08:00:00Z", "2026-11-29T09:00:00Z"
    )


def test_activation_replaces_jitaccess_activations_but_not_what_only_has_the_title(
    emu: Emulator,
) -> None:
    role = "roles/cloudsql.admin"
    resource = f"projects/{DEV}"
    alice = "user:alice@example.com"
    earlier = (
        '((request.time >= timestamp("2026-11-29T09:45:00.5Z") &&\r\n'
        'request.time < timestamp("2026-11-29T10:15:00.5Z")))'
    )
    emu.world.add_binding(resource, role, alice, earlier, ACTIVATION_TITLE,
                          "Self-approved, justification: INC-6")
    # an administrator's own grant, titled like an activation but with no window
    emu.world.add_binding(resource, role, alice, 'resource.name == "kept"', ACTIVATION_TITLE,
                          "permanent, read-only replica")
    activate(emu, role)
    expressions = [b["condition"]["expression"] for b in bindings_of(emu, role, alice)
                   if "condition" in b]
    assert expressions == ['resource.name == "kept"', WINDOW_1H]
