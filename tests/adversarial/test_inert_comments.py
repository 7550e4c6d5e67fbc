"""Requester text in the bot's comments is inert: no mention, link or cross-reference.

A bot comment that repeats `#12` adds a "mentioned in" event to issue 12, `owner/repo#1`
reaches into another repository, `@someone` notifies them, and a bare URL becomes a link that
seems to come from the service. Each case drives the real service and reads the comments as
posted on the fake GitHub: outside code spans, nothing of that kind may remain (only the
requester is mentioned, on purpose, by the activation comment).
"""

from __future__ import annotations

from jitaccess_sandbox.emulator import Emulator
from tests.adversarial.conftest import status_comment_of
from tests.e2e.conftest import request_yaml
from tests.faults.conftest import google_error
from tests.inert import live_autolinks, outside_code
from webhook.core.render import ACTIVATION_FAILED_MARKER_PREFIX, ACTIVATION_MARKER_PREFIX

BAIT = (
    "INC-1: #12 acme/access#1 https://evil.example/x @someone www.evil.example GH-3 "
    "a@evil.example"
)
LIVE = ("#12", "acme/access#1", "https://", "@someone", "www.evil", "GH-3", "a@evil")
SET_POLICY = r"^/v3/projects/payments-dev:setIamPolicy$"


def assert_inert(body: str) -> None:
    assert live_autolinks(body, allowed_mentions=("alice",)) == []
    text = outside_code(body)
    for bait in LIVE:
        assert bait not in text, (bait, body)


def comment_starting(emu: Emulator, number: int, prefix: str) -> str:
    [body] = [c for c in emu.comments(number) if c.startswith(prefix)]
    return body


def test_a_justification_full_of_links_is_inert_in_status_and_activation(emu: Emulator) -> None:
    assert len(BAIT) <= 100
    number = emu.open_request("alice", request_yaml(justification=BAIT))
    assert emu.pr_event("opened", number).body["state"] == "ready"
    status = status_comment_of(emu, number)
    assert f"| Justification | `{BAIT}` |\n" in status  # shown exactly as written
    assert_inert(status)

    assert emu.merge(number).body["state"] == "activated"
    activation = comment_starting(emu, number, ACTIVATION_MARKER_PREFIX)
    assert f"Justification: `{BAIT}`\n" in activation
    assert activation.count("@alice") == 1  # the requester, mentioned on purpose
    assert_inert(activation)


def test_hostile_keys_and_paths_are_inert_in_problems_and_the_refusal(emu: Emulator) -> None:
    text = request_yaml() + '"see #12 https://evil.example/y @someone": 1\n'
    number = emu.github.open_pr(emu.repo, "alice", {
        "requests/alice/request.yaml": text,
        "docs/@someone acme/access#1 www.evil.example GH-3.md": "x",
    })
    assert emu.pr_event("opened", number).body["state"] == "invalid"
    status = status_comment_of(emu, number)
    assert "unknown key 'see #\u200d12 https:\u200d//evil.example/y @\u200dsomeone'" in status
    assert_inert(status)

    assert emu.merge(number).body["state"] == "refused"
    refusal = comment_starting(emu, number, "<!-- jit-access:refusal ")
    assert "unknown key" in refusal and "docs/@\u200dsomeone" in refusal
    assert_inert(refusal)


def test_an_upstream_error_full_of_links_is_inert_in_the_failure_comment(emu: Emulator) -> None:
    number = emu.open_request("alice", request_yaml(justification=BAIT))
    assert emu.pr_event("opened", number).body["state"] == "ready"
    emu.google.recorder.fail("POST", SET_POLICY, 403, body=google_error(
        403, "PERMISSION_DENIED", "see https://console.example/iam#12 or ask @someone",
    ))
    assert emu.merge(number).status == 502
    failure = comment_starting(emu, number, ACTIVATION_FAILED_MARKER_PREFIX)
    assert "see https:\u200d//console.example/iam#\u200d12 or ask @\u200dsomeone" in failure
    assert_inert(failure)
