"""README: service HTTP surface of the real Flask app, over real HTTP: signatures, sizes, bodies,
routing.

Deliveries the service must refuse or ignore are checked for their answer *and* for having made
no call to GitHub or Google (counted at the fakes' wire).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jitaccess_sandbox.emulator import REPO, SECRET, Emulator
from tests.e2e.conftest import NOW, request_yaml
from webhook.service.app import create_app, sign
from webhook.service.wiring import Service

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def world() -> Iterator[Emulator]:
    """One world for the whole module: these deliveries change nothing on either side."""
    with Emulator(now=NOW) as emu:
        yield emu
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []


@pytest.fixture
def emu(world: Emulator) -> Emulator:
    """The shared world, with the fakes' call logs emptied."""
    world.github.recorder.calls.clear()
    world.google.recorder.calls.clear()
    return world


@pytest.fixture(scope="module")
def pr_payload(world: Emulator) -> dict[str, Any]:
    """A genuine `pull_request` opened payload for a request PR in the shared world."""
    number = world.open_request("alice", request_yaml())
    return world.pr_payload("opened", number)


def no_upstream_calls(emu: Emulator) -> bool:
    return emu.github.recorder.calls == [] and emu.google.recorder.calls == []


def post(emu: Emulator, body: bytes | Any, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{emu.service_url}/webhook", data=body, headers=headers, timeout=30)


def headers_for(body: bytes, event: str = "pull_request", sig: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": sig if sig is not None else sign(SECRET, body),
    }


# ----------------------------------------------------------------------------------------------
# Signatures: 401 before anything else happens


UNAUTHORIZED = {"message": "missing or invalid X-Hub-Signature-256"}


def test_missing_signature_is_401(emu: Emulator, pr_payload: dict[str, Any]) -> None:
    answer = emu.deliver("pull_request", pr_payload, signature="")
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    assert no_upstream_calls(emu)


def test_wrong_signature_is_401(emu: Emulator, pr_payload: dict[str, Any]) -> None:
    answer = emu.deliver("pull_request", pr_payload, signature="sha256=" + "0" * 64)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    assert no_upstream_calls(emu)


def test_signature_with_another_secret_is_401(emu: Emulator, pr_payload: dict[str, Any]) -> None:
    answer = emu.deliver("pull_request", pr_payload, secret="another-secret-0123456789")
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    assert no_upstream_calls(emu)


def test_sha1_signature_is_401(emu: Emulator, pr_payload: dict[str, Any]) -> None:
    body = json.dumps(pr_payload).encode()
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    answer = emu.deliver("pull_request", body, signature=sha1)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    # the right digest under the wrong prefix is refused too
    same_digest = "sha1=" + sign(SECRET, body).removeprefix("sha256=")
    assert emu.deliver("pull_request", body, signature=same_digest).status == 401
    assert no_upstream_calls(emu)


def test_body_tampered_after_signing_is_401(emu: Emulator, pr_payload: dict[str, Any]) -> None:
    body = json.dumps(pr_payload).encode()
    signature = sign(SECRET, body)
    tampered = copy.deepcopy(pr_payload)
    tampered["pull_request"]["number"] = 2
    answer = emu.deliver("pull_request", json.dumps(tampered).encode(), signature=signature)
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)
    # one byte of whitespace is tampering as well
    assert emu.deliver("pull_request", body + b" ", signature=signature).status == 401
    assert no_upstream_calls(emu)


def test_signature_is_checked_before_parsing(emu: Emulator) -> None:
    answer = emu.deliver("pull_request", b"not json", signature="")
    assert (answer.status, answer.body) == (401, UNAUTHORIZED)


# ----------------------------------------------------------------------------------------------
# Sizes: 413 above 1 MiB


def big_body(size: int) -> bytes:
    """A JSON object of exactly `size` bytes."""
    body = b'{"zen": "' + b"x" * (size - 11) + b'"}'
    assert len(body) == size
    return body


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


TOO_LARGE = {"message": "payload larger than 1 MiB"}


def test_body_over_1_mib_with_content_length_is_413(emu: Emulator) -> None:
    body = big_body(MIB + 1)
    resp = post(emu, body, headers_for(body, "ping"))
    assert resp.status_code == 413
    assert resp.json() == TOO_LARGE
    assert no_upstream_calls(emu)


def test_body_over_1_mib_chunked_is_413(emu: Emulator) -> None:
    body = big_body(2 * MIB)
    resp = post(emu, chunks(body), headers_for(body, "ping"))
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.request.headers
    assert resp.status_code == 413
    assert resp.json() == TOO_LARGE


def test_body_of_exactly_1_mib_is_accepted(emu: Emulator) -> None:
    body = big_body(MIB)
    resp = post(emu, body, headers_for(body, "ping"))
    assert (resp.status_code, resp.json()) == (200, {"message": "pong"})


def test_chunked_body_is_read_whole(emu: Emulator) -> None:
    # a body sent in many chunks must be verified as a whole, not by its first chunk
    body = big_body(300_000)
    resp = post(emu, chunks(body), headers_for(body, "ping"))
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert (resp.status_code, resp.json()) == (200, {"message": "pong"})


# ----------------------------------------------------------------------------------------------
# Bodies that are not a JSON object: 400


def test_body_not_json_is_400(emu: Emulator) -> None:
    answer = emu.deliver("pull_request", b"action=opened&number=1")
    assert (answer.status, answer.body) == (400, {"message": "body is not JSON"})
    assert no_upstream_calls(emu)


def test_body_not_utf8_is_400(emu: Emulator) -> None:
    answer = emu.deliver("pull_request", b'{"action": "\xff\xfe"}')
    assert (answer.status, answer.body) == (400, {"message": "body is not JSON"})


def test_json_array_is_400(emu: Emulator) -> None:
    answer = emu.deliver("pull_request", b'[{"action": "opened"}]')
    assert (answer.status, answer.body) == (400, {"message": "body is not a JSON object"})
    assert no_upstream_calls(emu)


# ----------------------------------------------------------------------------------------------
# Routing: 200 with a reason for everything the service does not act on


def test_delivery_for_another_repository_is_ignored(
    emu: Emulator, pr_payload: dict[str, Any]
) -> None:
    payload = copy.deepcopy(pr_payload)
    payload["repository"]["full_name"] = "acme/other"
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body) == (200, {"message": f"ignored: not for {REPO}"})
    assert no_upstream_calls(emu)


def test_delivery_without_repository_is_ignored(
    emu: Emulator, pr_payload: dict[str, Any]
) -> None:
    payload = copy.deepcopy(pr_payload)
    del payload["repository"]
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body) == (200, {"message": f"ignored: not for {REPO}"})
    assert no_upstream_calls(emu)


def test_repository_name_is_matched_case_insensitively(
    emu: Emulator, pr_payload: dict[str, Any]
) -> None:
    payload = copy.deepcopy(pr_payload)
    payload["repository"]["full_name"] = REPO.upper()
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body["state"]) == (200, "ready")


def test_ping_is_pong(emu: Emulator) -> None:
    payload = {"zen": "Keep it logically awesome.", "hook_id": 1,
               "repository": {"full_name": REPO}}
    answer = emu.deliver("ping", payload)
    assert (answer.status, answer.body) == (200, {"message": "pong"})
    # ping is answered even for an organization hook (no repository in the payload)
    answer = emu.deliver("ping", {"zen": "Design for failure.", "hook_id": 2})
    assert (answer.status, answer.body) == (200, {"message": "pong"})
    assert no_upstream_calls(emu)


@pytest.mark.parametrize("event,action", [("issues", "opened"), ("check_run", "created"),
                                          ("merge_group", "destroyed"), ("push", None)])
def test_unhandled_event_is_ignored_with_a_reason(
    emu: Emulator, event: str, action: str | None
) -> None:
    payload: dict[str, Any] = {"repository": {"full_name": REPO},
                               "sender": {"login": "alice"}}
    if action:
        payload["action"] = action
    answer = emu.deliver(event, payload)
    assert (answer.status, answer.body) == (
        200, {"message": f"ignored: {event}/{action} is not handled"}
    )
    assert emu.google.recorder.calls == []
    assert emu.github.recorder.count("POST") == emu.github.recorder.count("PATCH") == 0


def test_unhandled_action_is_ignored_with_a_reason(
    emu: Emulator, pr_payload: dict[str, Any]
) -> None:
    payload = copy.deepcopy(pr_payload)
    payload["action"] = "labeled"
    payload["label"] = {"name": "urgent"}
    answer = emu.deliver("pull_request", payload)
    assert (answer.status, answer.body) == (
        200, {"message": "ignored: pull_request/labeled is not handled"}
    )
    assert emu.google.recorder.calls == []
    assert emu.github.recorder.count("POST") == emu.github.recorder.count("PATCH") == 0


MALFORMED = {
    "no pull_request": lambda p: p.pop("pull_request"),
    "pull_request not an object": lambda p: p.update(pull_request=[1]),
    "number missing": lambda p: p["pull_request"].pop("number"),
    "number a string": lambda p: p["pull_request"].update(number="1"),
    "number a float": lambda p: p["pull_request"].update(number=1.0),
    "number a bool": lambda p: p["pull_request"].update(number=True),
    "number null": lambda p: p["pull_request"].update(number=None),
    "number negative": lambda p: p["pull_request"].update(number=-1),
    "number zero": lambda p: p["pull_request"].update(number=0),
    "number huge": lambda p: p["pull_request"].update(number=2**63),
}


@pytest.mark.parametrize("event", ["pull_request", "pull_request_review"])
@pytest.mark.parametrize("breakage", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_payload_is_400(
    emu: Emulator, pr_payload: dict[str, Any], event: str, breakage: Any
) -> None:
    payload = copy.deepcopy(pr_payload)
    if event == "pull_request_review":
        payload["action"] = "submitted"
        payload["review"] = {"id": 1, "state": "approved", "user": {"login": "bob"}}
    breakage(payload)
    answer = emu.deliver(event, payload)
    assert (answer.status, answer.body) == (
        400, {"message": "payload has no valid pull_request.number"}
    )
    assert emu.google.recorder.calls == []
    assert {c.method + " " + c.path for c in emu.github.recorder.calls} <= {"GET /user"}


def test_merged_event_with_malformed_number_is_400(
    emu: Emulator, pr_payload: dict[str, Any]
) -> None:
    payload = copy.deepcopy(pr_payload)
    payload["action"] = "closed"
    payload["pull_request"]["merged"] = True
    payload["pull_request"]["number"] = "1"
    answer = emu.deliver("pull_request", payload)
    assert answer.status == 400
    assert emu.google.recorder.calls == []


# ----------------------------------------------------------------------------------------------
# Other routes


def test_health(emu: Emulator) -> None:
    resp = requests.get(f"{emu.service_url}/health", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"message": "ok", "repository": REPO}
    assert no_upstream_calls(emu)


def test_get_webhook_is_405(emu: Emulator) -> None:
    resp = requests.get(f"{emu.service_url}/webhook", timeout=10)
    assert resp.status_code == 405
    assert "POST" in resp.headers["Allow"]
    assert no_upstream_calls(emu)


def test_unknown_path_is_404(emu: Emulator) -> None:
    assert requests.post(f"{emu.service_url}/hooks", data=b"{}", timeout=10).status_code == 404


def test_a_signed_body_nested_too_deeply_is_a_400_not_a_crash(emu: Emulator) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    answer = emu.deliver("pull_request", body)
    assert (answer.status, answer.body) == (400, {"message": "body is nested too deeply"})


def test_installation_lookup_failure_is_a_json_502() -> None:
    """With App credentials, a GitHub error while telling the installation is mapped once."""
    with Emulator(now=NOW) as world:
        fake = world.github
        fake.install("acme/access")
        settings = dataclasses.replace(
            world.settings, token=None, app_id=fake.app_id,
            app_private_key=fake.app_private_key_pem,
        )
        service = Service.from_settings(settings, clock=world.clock)
        app = create_app(settings, service=service)
        fake.recorder.fail("GET", r"/installation$", 502, times=-1)
        payload = world.pr_payload("opened", world.open_request("alice", "project: x\n"))
        payload["installation"] = {"id": 1}
        body = json.dumps(payload).encode()
        with app.test_client() as client:
            resp = client.post("/webhook", data=body, headers={
                "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1",
                "X-Hub-Signature-256": sign(settings.webhook_secret, body),
                "Content-Type": "application/json",
            })
        assert resp.status_code == 502
        assert resp.is_json and "GitHub" in resp.get_json()["message"]
