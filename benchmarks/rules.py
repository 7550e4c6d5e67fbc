"""Section 11 of `python -m benchmarks`: a policy with many rules.

Measured in the benchmark's own process (parsing and deciding are pure), as process CPU time:

- parsing a `policy/jitaccess.yaml` of as many rules as fit its size limit, on first use (the
  service caches the parsed policy by content, so later events with the same file pay one
  SHA-256 at most — as for the identities file, section 8);
- deciding one request of 10 roles against those rules, every role's rule the last one (the
  worst case of first-fit selection), with designated approvers, veto and 20 reviews.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.identities import cpu_ms
from webhook.core.decide import decide
from webhook.core.model import (
    AccessRequest,
    EligibilityFacts,
    Facts,
    Identities,
    PullRequestRef,
    Review,
    ReviewState,
    RoleEligibility,
)
from webhook.core.policy import MAX_POLICY_BYTES, parse_policy
from webhook.service.lifecycle import _ByContent

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEAD = "a" * 40
ROLES = tuple(f"roles/service{i}.admin" for i in range(10))


def _rule(i: int) -> list[str]:
    return [
        f"  - name: team {i} production",
        "    match:",
        f'      projects: ["team{i}-*-prod", "team{i}-*-stage"]',
        '      roles: ["roles/cloudsql.*", "roles/storage.admin"]',
        "    max_duration: 1h",
        "    approval:",
        "      required: 2",
        f'      approvers: ["group:team{i}-leads@example.com", "user:lead{i}@example.com"]',
        "      veto: true",
        "    justification:",
        "      pattern: 'INC-[0-9]+: .+'",
        "      hint: 'an incident number'",
    ]


def policy_file() -> tuple[bytes, int]:
    """The largest policy of such rules within the size limit, ending with a rule that fits
    every role of `ROLES` on `payments-prod`; (its bytes, its number of rules)."""
    last = [
        "  - name: everything else in production",
        "    match:",
        '      projects: ["*-prod"]',
        "    approval:",
        "      required: 2",
        '      approvers: ["group:prod-leads@example.com"]',
        "      veto: true",
    ]
    head = ["scope: organizations/123456789012", "rules:"]
    body: list[str] = []
    count = 0
    while True:
        more = body + _rule(count)
        text = "\n".join(head + more + last) + "\n"
        if len(text.encode()) > MAX_POLICY_BYTES:
            break
        body, count = more, count + 1
    return ("\n".join(head + body + last) + "\n").encode(), count + 1


def _facts(policy: Any) -> Facts:
    reviewers = [f"rev{i}" for i in range(20)]
    identities = Identities(
        by_login={"alice": "alice@example.com"} | {r: f"{r}@example.com" for r in reviewers}
    )
    multi = RoleEligibility(multi_party=True)
    grants = {"alice@example.com": dict.fromkeys(ROLES, multi)}
    grants |= {f"{r}@example.com": dict.fromkeys(ROLES, multi) for r in reviewers[:10]}
    memberships = {
        f"{r}@example.com": frozenset({"group:prod-leads@example.com"}) for r in reviewers[10:]
    }
    reviews = tuple(
        Review(i + 1, r, ReviewState.APPROVED, HEAD, NOW - timedelta(minutes=5))
        for i, r in enumerate(reviewers)
    )
    return Facts(
        pr=PullRequestRef("acme/access", 1, "alice", HEAD),
        policy=policy,
        policy_problems=(),
        identities=identities,
        request=AccessRequest("payments-prod", ROLES, timedelta(hours=1), "INC-1: restore"),
        request_problems=(),
        eligibility=EligibilityFacts(grants=grants, memberships=memberships, ancestry=()),
        reviews=reviews,
    )


def measure_rules(repeat: int) -> dict[str, Any]:
    """The figures of section 11."""
    data, rules = policy_file()
    first = cpu_ms(lambda: parse_policy(data), repeat)
    policy, problems = parse_policy(data)
    assert policy is not None and problems == () and len(policy.rules) == rules, problems
    cache = _ByContent(parse_policy)
    cache(data)
    later = cpu_ms(lambda: cache(bytes(bytearray(data))), 20)
    facts = _facts(policy)
    decision = decide(facts, NOW)
    assert decision.state.value == "ready", decision
    assert all(r.rule == "everything else in production" for r in decision.roles)
    deciding = cpu_ms(lambda: decide(facts, NOW), max(repeat, 20))
    return {
        "rules": rules,
        "bytes": len(data),
        "limit_bytes": MAX_POLICY_BYTES,
        "first_cpu_ms": statistics.median(first),
        "first_cpu_max_ms": max(first),
        "later_equal_content_ms": statistics.median(later),
        "decide_cpu_ms": statistics.median(deciding),
        "decide_cpu_max_ms": max(deciding),
    }


def print_rules(r: dict[str, Any], w: Callable[[str], Any]) -> None:
    """Section 11 of the report."""
    w("\n11. A policy with many rules (process CPU in the benchmark process)\n")
    w(f"   {r['rules']} rules with designated approvers and veto: {r['bytes'] / 1024:.1f} KiB "
      f"(limit {r['limit_bytes'] / 1024:.0f} KiB)\n")
    w(f"   parse, first use: {r['first_cpu_ms']:.0f} ms (max {r['first_cpu_max_ms']:.0f} ms); "
      f"later events, equal content: {r['later_equal_content_ms']:.2f} ms\n")
    w(f"   decide 10 roles, each settled by the last rule, 20 approvals: "
      f"{r['decide_cpu_ms']:.2f} ms (max {r['decide_cpu_max_ms']:.2f} ms)\n")
