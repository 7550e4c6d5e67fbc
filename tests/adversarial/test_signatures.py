"""Forged, replayed and misaddressed deliveries: refused before any work, never a grant.

Every case aims at a PR that is ready and already merged on GitHub, so a delivery that got
through would grant access: the refusal is what stands between the attacker and the role.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from jitaccess_sandbox.emulator import SECRET, Emulator
from jitaccess_sandbox.httpserver import LocalServer
from tests.adversarial.conftest import (
    ACTIVATE,
    REFUSE,
    REQUEST,
    activation_bindings,
    assert_no_grant,
    body_of,
    events,
    post,
    request_yaml,
)
from webhook.service.app import create_app, sign
from webhook.service.wiring import Service

UNAUTHORIZED = "missing or invalid X-Hub-Signature-256"


@pytest.fixture
def merged(emu: Emulator) -> tuple[int, dict[str, Any]]:
    """A ready self-approval PR merged on GitHub whose merge event has not been delivered yet,
    and that merge event's payload."""
    number = emu.open_request("alice", request_yaml())
    assert emu.pr_event("opened", number).body["state"] == "ready"
    emu.github.merge(emu.repo, number)
    return number, emu.pr_payload("closed", number)


def github_calls(emu: Emulator) -> int:
    return len(emu.github.recorder.calls)


def google_calls(emu: Emulator) -> int:
    return len(emu.google.recorder.calls)


# --------------------------------------------------------------------------------------------
# Signatures


def _hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


FORGERIES = {
    # Signed with a guessed secret.
    "wrong secret": lambda body: sign("not-the-secret", body),
    # No X-Hub-Signature-256 at all (the emulator omits an empty header).
    "missing": lambda body: "",
    "prefix only": lambda body: "sha256=",
    "zeros": lambda body: "sha256=" + "0" * 64,
    # The legacy SHA-1 header format in the SHA-256 header.
    "sha1 format": lambda body: "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest(),
    "no prefix": lambda body: _hmac(SECRET, body),
    # A genuine signature, captured from another delivery, sent with this body.
    "replayed from another body": lambda body: sign(SECRET, body_of({"zen": "Keep it simple."})),
    # The right HMAC but of the body without its last byte (a truncation/extension attempt).
    "signature of a prefix": lambda body: sign(SECRET, body[:-1]),
}


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
def test_a_forged_signature_is_refused_before_any_work(
    emu: Emulator, merged: tuple[int, dict[str, Any]], forgery: str
) -> None:
    number, payload = merged
    body = body_of(payload)
    before_gh, before_google = github_calls(emu), google_calls(emu)
    answer = emu.deliver("pull_request", body, signature=FORGERIES[forgery](body))
    assert answer.status == 401
    assert answer.body == {"message": UNAUTHORIZED}
    # Nothing was read or written anywhere: the signature check comes first.
    assert (github_calls(emu), google_calls(emu)) == (before_gh, before_google)
    assert_no_grant(emu)
    assert events(emu) == [REQUEST]
    assert not emu.comments(number)[-1].startswith("<!-- jit-access:activation")


def test_a_signed_body_with_a_byte_appended_is_refused(
    emu: Emulator, merged: tuple[int, dict[str, Any]]
) -> None:
    _, payload = merged
    body = body_of(payload)
    answer = emu.deliver("pull_request", body + b" ", signature=sign(SECRET, body))
    assert answer.status == 401
    assert answer.body == {"message": UNAUTHORIZED}
    assert_no_grant(emu)


def test_the_genuine_delivery_of_the_same_merge_does_grant(
    emu: Emulator, merged: tuple[int, dict[str, Any]]
) -> None:
    """Control: the target of the forgeries above really was one delivery away from a grant."""
    _, payload = merged
    assert emu.deliver("pull_request", payload).body["state"] == "activated"
    assert len(activation_bindings(emu)) == 1


def test_changing_the_event_header_of_a_signed_body_is_harmless(emu: Emulator) -> None:
    """The signature covers only the body, not `X-GitHub-Event`: someone who captured a genuine
    delivery can resend its body under another event name. That gains nothing, because the
    service treats a payload only as a trigger: routing needs the (event, action) pair to exist,
    and every handler re-reads the PR, its files, reviews and the policy from GitHub. The worst
    such a replay can do is make the service re-evaluate the truth once more."""
    number = emu.open_request("alice", request_yaml(project="payments-prod"))
    assert emu.pr_event("opened", number).body["state"] == "pending"
    review_id = emu.github.add_review(emu.repo, number, "carol", "COMMENTED")
    review_body = body_of(emu.review_payload("submitted", number, review_id))
    opened_body = body_of(emu.pr_payload("opened", number))

    # A review delivery under the pull_request event: no such action there.
    answer = emu.deliver("pull_request", review_body)
    assert answer.status == 200
    assert answer.body == {"message": "ignored: pull_request/submitted is not handled"}
    # A pull_request delivery under the review event: likewise.
    answer = emu.deliver("pull_request_review", opened_body)
    assert answer.body == {"message": "ignored: pull_request_review/opened is not handled"}
    # Under an event with no handler at all.
    answer = emu.deliver("deployment", opened_body)
    assert answer.body == {"message": "ignored: deployment/opened is not handled"}
    # An action both events know (`edited`): a PR edit that changes no base is not evaluated.
    edited = emu.review_payload("edited", number, review_id)
    answer = emu.deliver("pull_request", edited)
    assert answer.status == 200
    assert answer.body == {"message": f"PR #{number}: title or description edited; nothing to do"}
    assert emu.status(number)["state"] == "pending"  # type: ignore[index]

    # Even a genuine merge event's body cannot turn this into a grant: the PR is not merged.
    closed = emu.pr_payload("closed", number)
    closed["pull_request"]["merged"] = True
    answer = emu.deliver("pull_request", closed)
    assert answer.body == {"message": f"PR #{number} is not merged; nothing to activate"}
    assert_no_grant(emu)


def test_a_replayed_merge_delivery_after_max_delay_is_refused(emu: Emulator) -> None:
    """A genuine, correctly signed merge event that never reached the service (or is replayed
    from a capture) is refused once the merge is older than activation.max_delay (1h)."""
    number = emu.open_request("alice", request_yaml())
    emu.pr_event("opened", number)
    emu.github.merge(emu.repo, number)
    captured = emu.pr_payload("closed", number)
    emu.advance(timedelta(hours=1, seconds=1))
    answer = emu.deliver("pull_request", captured, delivery_id="captured-1")
    assert answer.status == 200
    assert answer.body["state"] == "refused"
    assert "is older than activation.max_delay (1h); open a new request" in answer.body["message"]
    assert "Access not activated" in emu.comments(number)[-1]
    assert events(emu) == [REQUEST, REFUSE]
    assert emu.audit()[-1]["labels"]["delivery_id"] == "captured-1"
    assert_no_grant(emu)
    # Replaying it again changes nothing and does not comment twice.
    again = emu.deliver("pull_request", captured, delivery_id="captured-1")
    assert again.body["state"] == "refused"
    assert sum("Access not activated" in c for c in emu.comments(number)) == 1
    assert_no_grant(emu)


def test_a_body_over_one_mebibyte_is_refused_unread(emu: Emulator) -> None:
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    before = github_calls(emu)
    answer = emu.deliver("pull_request", body)
    assert answer.status == 413
    assert answer.body == {"message": "payload larger than 1 MiB"}
    assert github_calls(emu) == before
    assert_no_grant(emu)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not JSON"),
        (b"\xff\xfe{}", "body is not JSON"),
        (b'["pull_request"]', "body is not a JSON object"),
        (b'"closed"', "body is not a JSON object"),
    ],
)
def test_a_signed_body_that_is_not_a_json_object_is_refused(
    emu: Emulator, body: bytes, message: str
) -> None:
    answer = emu.deliver("pull_request", body)
    assert answer.status == 400
    assert answer.body == {"message": message}
    assert_no_grant(emu)


@pytest.mark.parametrize(
    "number", ["1", 1.0, -1, 0, True, 2**31, None, [1]], ids=repr
)
def test_a_malformed_pull_request_number_is_refused(
    emu: Emulator, merged: tuple[int, dict[str, Any]], number: object
) -> None:
    _, payload = merged
    payload["pull_request"]["number"] = number
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 400
    assert answer.body == {"message": "payload has no valid pull_request.number"}
    assert_no_grant(emu)


# --------------------------------------------------------------------------------------------
# Deliveries naming another repository or installation


@pytest.mark.parametrize(
    "full_name",
    [
        "acme/access.evil",
        "acme/access/../x",
        "acme/access/",
        "acme/accesss",
        "evil/access",
        "acme/access ",
        " acme/access",
        "acme/access\n",
        "\u0430cme/access",  # Cyrillic а
        "acme\u2215access",  # division slash
        "acme/acce\u017fs",  # long s, which case-folds to s
        "acme",
        "",
        None,
        42,
        ["acme/access"],
        {"full_name": "acme/access"},
    ],
    ids=repr,
)
def test_a_delivery_for_another_repository_is_ignored(
    emu: Emulator, merged: tuple[int, dict[str, Any]], full_name: object
) -> None:
    _, payload = merged
    payload["repository"]["full_name"] = full_name
    before_gh, before_google = github_calls(emu), google_calls(emu)
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 200
    assert answer.body == {"message": "ignored: not for acme/access"}
    assert (github_calls(emu), google_calls(emu)) == (before_gh, before_google)
    assert_no_grant(emu)


def test_a_delivery_without_repository_is_ignored(
    emu: Emulator, merged: tuple[int, dict[str, Any]]
) -> None:
    _, payload = merged
    del payload["repository"]
    answer = emu.deliver("pull_request", payload)
    assert answer.body == {"message": "ignored: not for acme/access"}
    assert_no_grant(emu)


@pytest.mark.parametrize("full_name", ["ACME/ACCESS", "Acme/Access"])
def test_a_case_variant_names_the_same_repository_and_decides_from_github(
    emu: Emulator, full_name: str
) -> None:
    """GitHub repository names are case-insensitive, so `ACME/ACCESS` is this repository. The
    payload's spelling is only a gate: facts and the binding's PR reference come from the
    configured repository, and a PR that is not ready is refused whatever the payload says."""
    pending = emu.open_request("alice", request_yaml(project="payments-prod"))
    emu.pr_event("opened", pending)
    emu.github.merge(emu.repo, pending)
    payload = emu.pr_payload("closed", pending)
    payload["repository"]["full_name"] = full_name
    answer = emu.deliver("pull_request", payload)
    assert answer.body["state"] == "refused"
    assert "Waiting for 1 approval" in answer.body["message"]
    assert_no_grant(emu)

    ready = emu.open_request("alice", request_yaml(), name="ready.yaml")
    emu.pr_event("opened", ready)
    emu.github.merge(emu.repo, ready)
    payload = emu.pr_payload("closed", ready)
    payload["repository"]["full_name"] = full_name
    assert emu.deliver("pull_request", payload).body["state"] == "activated"
    [(resource, binding)] = activation_bindings(emu)
    assert resource == "projects/payments-dev"
    assert binding["condition"]["description"].endswith(f"(acme/access#{ready})")


@pytest.fixture
def app_service(emu: Emulator) -> Iterator[str]:
    """A second service instance on the same fakes, authenticated as a GitHub App installed on
    the repository as installation 77; yields its URL."""
    emu.github.install(emu.repo, 77)
    settings = dataclasses.replace(
        emu.settings, token=None, app_id=emu.github.app_id,
        app_private_key=emu.github.app_private_key_pem,
    )
    service = Service.from_settings(settings, clock=emu.clock)
    server = LocalServer(create_app(settings, service=service)).start()
    try:
        yield server.url
    finally:
        server.stop()
        service.lifecycle.executor.shutdown(wait=False)


@pytest.mark.parametrize("installation", [99, "77", 77.5, -77, None, [77]], ids=repr)
def test_a_delivery_for_another_installation_is_ignored(
    emu: Emulator, merged: tuple[int, dict[str, Any]], app_service: str, installation: object
) -> None:
    _, payload = merged
    payload["installation"] = {"id": installation}
    answer = post(app_service, "pull_request", json.dumps(payload).encode())
    assert answer.status == 200
    assert answer.body == {"message": f"ignored: installation {installation} is not this service's"}
    assert_no_grant(emu)


def test_the_own_installation_is_served(
    emu: Emulator, merged: tuple[int, dict[str, Any]], app_service: str
) -> None:
    """Control for the installation cases: the same payload with installation 77 grants."""
    _, payload = merged
    payload["installation"] = {"id": 77}
    answer = post(app_service, "pull_request", json.dumps(payload).encode())
    assert answer.body["state"] == "activated", answer.body
    assert [e for e in events(emu) if e == ACTIVATE] == [ACTIVATE]
