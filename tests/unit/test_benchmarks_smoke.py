"""Smoke test of the benchmarks: the call-count part, with exact counts per event.

Runs `benchmarks.world.call_counts` against the emulator's in-process service (counts do not
depend on where the service runs). These are assertions on the number and kind of API calls
the service makes — the figures the benchmark's first table reports — never on time.
"""

from __future__ import annotations

from collections import Counter

from benchmarks.critical_path import CHAINS
from benchmarks.world import (
    EVENTS,
    LIFECYCLES,
    Bench,
    InProcessTarget,
    call_counts,
    emulated_world,
    normalise,
)

REPO = "GitHub GET /repos/{repo}"
#: What every event reads first: PR, reviews, policy, identities at once, then the files of
#: the head the PR names (compared at that sha while open, GitHub's frozen list once merged)
#: and the comments.
FIRST_WAVE = Counter({
    f"{REPO}/pulls/{{n}}": 1,
    f"{REPO}/pulls/{{n}}/reviews": 1,
    f"{REPO}/contents/policy/jitaccess.yaml": 1,
    f"{REPO}/contents/policy/identities.yaml": 1,
    f"{REPO}/issues/{{n}}/comments": 1,
})
OPEN_FILES = Counter({f"{REPO}/compare/{{base}}...{{sha}}": 1})
MERGED_FILES = Counter({f"{REPO}/pulls/{{n}}/files": 1})
OPEN, MERGED = FIRST_WAVE + OPEN_FILES, FIRST_WAVE + MERGED_FILES
REQUEST_FILE = Counter({f"{REPO}/contents/requests/{{login}}/{{file}}": 1})
#: An open PR's current jit-access status, read beside the request file: an equal one is not
#: posted again (GitHub keeps at most 1,000 statuses per commit and context).
STATUS_READ = Counter({f"{REPO}/commits/{{sha}}/status": 1})
BATCH_GET = Counter({"Google GET /v1/{scope}/effectiveIamPolicies:batchGet": 1})
#: The requester's groups, searched beside batchGet (one call, whatever the group bindings).
REQUESTER_GROUPS = Counter({"Google GET /v1/groups/-/memberships:searchDirectGroups": 1})
#: A reviewer whose approval could count, for the role the requester needs approval for.
REVIEWER_GROUPS = Counter({"Google GET /v1/groups/-/memberships:searchDirectGroups": 1})
PEER_GROUP = Counter({  # sre@: look the group up, then list it (it gives the reviewers)
    "Google GET /v1/groups:lookup": 1,
    "Google GET /v1/groups/{group}/memberships": 1,
})
AUDIT = Counter({"Google POST /v2/entries:write": 1})
#: A merge reads its earlier decisions back from the audit log (beside the other reads).
LOG_READ = Counter({"Google POST /v2/entries:list": 1})
STATUS = Counter({"GitHub POST /repos/{repo}/statuses/{sha}": 1})
NEW_COMMENT = Counter({"GitHub POST /repos/{repo}/issues/{n}/comments": 1})
EDIT_COMMENT = Counter({"GitHub PATCH /repos/{repo}/issues/comments/{id}": 1})
REVIEWERS = Counter({"GitHub POST /repos/{repo}/pulls/{n}/requested_reviewers": 1})
IAM_WRITE = Counter({
    "Google POST /v3/projects/{project}:getIamPolicy": 1,
    "Google POST /v3/projects/{project}:setIamPolicy": 1,
})

EXPECTED: dict[str, Counter[str]] = {
    "opened_self": OPEN + REQUEST_FILE + STATUS_READ + BATCH_GET + REQUESTER_GROUPS + STATUS
    + NEW_COMMENT + AUDIT,
    # Waiting for approval: sre@ is listed for the qualified peers to name and ask.
    "opened_multi": OPEN + REQUEST_FILE + STATUS_READ + BATCH_GET + REQUESTER_GROUPS
    + PEER_GROUP + STATUS + NEW_COMMENT + REVIEWERS + AUDIT,
    # bob's approval makes it ready: his groups are searched, no peers are needed.
    "review": OPEN + REQUEST_FILE + STATUS_READ + BATCH_GET + REQUESTER_GROUPS
    + REVIEWER_GROUPS + STATUS + EDIT_COMMENT + AUDIT,
    "merge_self": MERGED + REQUEST_FILE + BATCH_GET + REQUESTER_GROUPS + LOG_READ + IAM_WRITE
    + AUDIT + NEW_COMMENT,
    "merge_multi": MERGED + REQUEST_FILE + BATCH_GET + REQUESTER_GROUPS + REVIEWER_GROUPS
    + LOG_READ + IAM_WRITE + AUDIT + NEW_COMMENT,
    # success ("Not an access request"), so that a required check never blocks it.
    "non_request": OPEN + STATUS_READ + STATUS,
}


def test_exact_calls_per_event_and_lifecycle() -> None:
    with emulated_world() as emu:
        bench = Bench(emu, InProcessTarget(emu))
        first = bench.self_approval()
        counts = call_counts(bench)
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []

    # The process's first event also asks GitHub who the service is (the bot's own login).
    assert first[0].counts() == EXPECTED["opened_self"] + Counter({"GitHub GET /user": 1})
    assert first[1].counts() == EXPECTED["merge_self"]

    for event in EVENTS:
        assert counts[event] == EXPECTED[event], event
    for lifecycle, parts in LIFECYCLES.items():
        assert counts[lifecycle] == sum((EXPECTED[p] for p in parts), Counter()), lifecycle
    assert sum(counts["lifecycle_self"].values()) == 27
    assert sum(counts["lifecycle_multi"].values()) == 45


def test_every_event_has_a_critical_path_no_longer_than_its_calls() -> None:
    for event in EVENTS:
        chain = CHAINS[event]
        assert 1 <= len(chain) <= sum(EXPECTED[event].values())
    assert [len(CHAINS[e]) for e in EVENTS] == [5, 7, 6, 8, 9, 4]


def test_paths_are_normalised() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert normalise(f"/repos/acme/access/statuses/{sha}") == "/repos/{repo}/statuses/{sha}"
    assert normalise("/repos/acme/access/issues/12/comments") == "/repos/{repo}/issues/{n}/comments"
    assert normalise(f"/repos/acme/access/compare/main...{sha}") == (
        "/repos/{repo}/compare/{base}...{sha}"
    )
    assert normalise("/repos/acme/access/issues/comments/901") == (
        "/repos/{repo}/issues/comments/{id}"
    )
    assert normalise("/repos/acme/access/contents/requests/alice/x.yaml") == (
        "/repos/{repo}/contents/requests/{login}/{file}"
    )
    assert normalise("/v3/projects/payments-dev:setIamPolicy") == (
        "/v3/projects/{project}:setIamPolicy"
    )
    assert normalise("/v1/groups/000001abc/memberships:lookup") == (
        "/v1/groups/{group}/memberships:lookup"
    )
    assert normalise("/v1/organizations/123456789012/effectiveIamPolicies:batchGet") == (
        "/v1/{scope}/effectiveIamPolicies:batchGet"
    )


def test_eligibility_at_scale_costs_what_the_design_says() -> None:
    """The quick cells of the scale matrix, counted (their times are the benchmark's)."""
    from benchmarks import scale
    from benchmarks.world import seed_load_users

    with emulated_world() as emu:
        bench = Bench(emu, InProcessTarget(emu))
        reviewers = scale.seed_identities(bench, seed_load_users(emu, 2), 100)
        results = {(c.groups, c.reviewers): c for c in scale.matrix(bench, reviewers, True)}
        assert emu.github.recorder.unexpected == []
        assert emu.google.recorder.unexpected == []

    google = {cell: {k: e.google for k, e in c.events.items()} for cell, c in results.items()}
    # opened: batchGet, alice's groups, the multi-party group looked up and listed (the
    # qualified peers), the audit entry. review: batchGet, alice's groups, the reviewer's
    # groups (one search is cheaper than a lookup and a listing), the audit entry. merge: the
    # same eligibility and the audit log's read, then getIamPolicy, setIamPolicy and the audit
    # entry.
    assert google[(1, 1)] == {"opened": 5, "review": 4, "merge": 7}
    # 125 multi-party groups: 100 reviewers' searches are cheaper than 250 lookups and
    # listings; the qualified peers come from at most MAX_PEER_GROUPS groups.
    assert google[(250, 100)] == {"opened": 3 + 2 * 8, "review": 103, "merge": 106}
