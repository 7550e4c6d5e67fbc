"""The pure part of expiry and reconciliation (webhook.core.reconcile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from webhook.core.conditions import ACTIVATION_TITLE
from webhook.core.model import Binding
from webhook.core.reconcile import (
    RECONCILE_GRACE,
    AuditedActivation,
    PullReference,
    approvers_of,
    expiry_comment,
    live_activations,
    needs_audit,
    reconcile,
    reference_of,
)

REPO = "acme/access"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def binding(description: str, start: datetime = T0, end: datetime = T0 + timedelta(hours=2),
            member: str = "user:alice@example.com", role: str = "roles/x") -> Binding:
    expression = (f'(request.time >= timestamp("{start:%Y-%m-%dT%H:%M:%SZ}") && '
                  f'request.time < timestamp("{end:%Y-%m-%dT%H:%M:%SZ}"))')
    return Binding(role, member, ACTIVATION_TITLE, description, expression)


def entry(start: datetime = T0, end: datetime = T0 + timedelta(hours=2), number: int = 1,
          user: str = "alice@example.com", roles: tuple[str, ...] = ("roles/x",),
          project: str = "p-dev") -> AuditedActivation:
    return AuditedActivation("gitops.activateRole", user, project, roles, start, end,
                             f"https://github.com/{REPO}/pull/{number}")


def judge(b: Binding, *entries: AuditedActivation, project: str = "p-dev") -> str:
    live = live_activations([(project, b)], NOW)
    (finding,) = reconcile(live, entries, REPO, NOW)
    return finding.state


@pytest.mark.parametrize(("description", "expected"), [
    ("Self-approved, justification: x (acme/access#12)", PullReference("acme/access", 12)),
    ("Approved by a@x.com, justification: y (Acme/Access#3) ", PullReference("Acme/Access", 3)),
    ("Self-approved, justification: (acme/access#12) later", None),
    ("Self-approved, justification: x", None),
    ("Self-approved, justification: x (acme/access#0)", None),
])
def test_reference_at_the_end_only(description: str, expected: PullReference | None) -> None:
    assert reference_of(description) == expected


def test_approvers_from_the_description() -> None:
    assert approvers_of("Approved by a@x.com, b@x.com, justification: j (o/r#1)") == (
        "a@x.com", "b@x.com")
    assert approvers_of("Self-approved, justification: j (o/r#1)") == ()


def test_states() -> None:
    ours = f"Self-approved, justification: j ({REPO}#1)"
    assert judge(binding(ours), entry()) == "accounted"
    assert judge(binding(ours.upper().replace("SELF-APPROVED, JUSTIFICATION", "x")),
                 entry()) == "accounted"  # repository names are case-insensitive
    assert judge(binding(ours)) == "orphaned"
    assert judge(binding(ours), entry(number=2)) == "orphaned"
    assert judge(binding(ours), entry(user="bob@example.com")) == "orphaned"
    assert judge(binding(ours), entry(roles=("roles/y",))) == "orphaned"
    assert judge(binding(ours), entry(project="p-prod")) == "orphaned"
    assert judge(binding(ours), entry(start=T0 + timedelta(seconds=1))) == "orphaned"
    assert judge(binding(ours), entry(end=T0 + timedelta(hours=1, minutes=59))) == "orphaned"
    assert judge(binding(ours), entry(roles=("roles/w", "roles/x"))) == "accounted"
    assert judge(binding("Self-approved, justification: j")) == "foreign"
    assert judge(binding("Self-approved, justification: j (other/repo#1)")) == "foreign"
    young = binding(ours, start=NOW - RECONCILE_GRACE + timedelta(seconds=1))
    assert judge(young) == "young"


def test_ended_activations_are_not_judged_and_the_read_starts_before_the_oldest() -> None:
    ours = f"Self-approved, justification: j ({REPO}#1)"
    ended = binding(ours, start=T0 - timedelta(hours=2), end=NOW)
    assert live_activations([("p", ended)], NOW) == []
    live = live_activations([("p", binding(ours)), ("p", binding(ours, start=T0 - timedelta(
        minutes=30)))], NOW)
    since = needs_audit(live, REPO, NOW)
    assert since is not None and since < T0 - timedelta(minutes=30)
    assert needs_audit(live_activations([("p", binding("x (o/r#1)"))], NOW), REPO, NOW) is None


def test_expiry_comment_is_inert_and_marked() -> None:
    body = expiry_comment(T0, [("p-dev", "roles/x`<b>@team<!--", "user:alice@example.com")])
    first, *rest = body.splitlines()
    assert first == "<!-- jit-access:expired 2026-11-29T10:00:00Z -->"
    assert "``roles/x`<b>@team<\u200d!--``" in body  # a code span: no mention, no HTML
    assert "<!--" not in "\n".join(rest)
