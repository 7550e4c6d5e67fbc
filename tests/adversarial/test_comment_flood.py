"""Flooding a request with reviews must not make its comments unpostable.

GitHub refuses comment bodies over 65,536 characters (422), and before the reasons were
summarised 200 throw-away reviewers on a 5-role request pushed the status comment past that:
every later event of the PR answered 502 and its comment stopped updating. The fake GitHub
refuses such bodies as GitHub does, so these tests would fail without the summary.
"""

from __future__ import annotations

from jitaccess_sandbox.emulator import MULTI, Emulator
from tests.e2e.conftest import request_yaml
from webhook.core.render import COMMENT_MARKER

PROD = "payments-prod"
ROLES = (
    "roles/cloudsql.admin",
    "roles/cloudsql.editor",
    "roles/storage.admin",
    "roles/logging.admin",
    "roles/monitoring.admin",
)
GITHUB_MAX_BODY = 65536


def five_role_request_with_flood(emu: Emulator, reviewers: int = 200) -> int:
    """alice may activate five roles on payments-prod with approval; `reviewers` people
    without an identity mapping approve her request (none of them can count)."""
    for role in ROLES[1:]:
        emu.world.add_binding(f"projects/{PROD}", role, "user:alice@example.com", MULTI)
    number = emu.open_request("alice", request_yaml(project=PROD, roles=ROLES))
    for i in range(reviewers):
        emu.github.add_review(emu.repo, number, f"drive-by-{i:03}", "APPROVED")
    return number


def test_200_reviewers_who_cannot_count_leave_the_comment_postable(emu: Emulator) -> None:
    number = five_role_request_with_flood(emu)

    answer = emu.pr_event("opened", number)
    assert answer.status == 200, answer.body
    assert answer.body["state"] == "pending"
    [body] = emu.comments(number)
    assert body.startswith(COMMENT_MARKER + "\n")
    assert len(body) <= GITHUB_MAX_BODY
    # Per role, the first reasons are shown and the rest summarised by kind.
    assert body.count("  - @\u200ddrive-by-000's approval does not count: has no identity "
                      "mapping\n") == len(ROLES)
    assert "drive-by-005" not in body
    summary = ("  - … and 195 more reviews that did not count: has no identity mapping (195)\n")
    assert body.count(summary) == len(ROLES)
    assert emu.status(number)["state"] == "pending"  # type: ignore[index]

    # Later events keep working: another review is evaluated and the comment edited in place.
    _, answer = emu.review(number, "drive-by-200", "APPROVED")
    assert answer.status == 200, answer.body
    [edited] = emu.comments(number)
    assert "and 196 more reviews that did not count: has no identity mapping (196)" in edited
    assert len(edited) <= GITHUB_MAX_BODY
