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
#: What every event reads first, at once: PR, files, reviews, policy, identities, comments.
FIRST_WAVE = Counter({
    f"{REPO}/pulls/{{n}}": 1,
    f"{REPO}/pulls/{{n}}/files": 1,
    f"{REPO}/pulls/{{n}}/reviews": 1,
    f"{REPO}/contents/policy/jitaccess.yaml": 1,
    f"{REPO}/contents/policy/identities.yaml": 1,
    f"{REPO}/issues/{{n}}/comments": 1,
})
REQUEST_FILE = Counter({f"{REPO}/contents/requests/{{login}}/{{file}}": 1})
#: An open PR's current jit-access status, read beside the request file: an equal one is not
#: posted again (GitHub keeps at most 1,000 statuses per commit and context).
STATUS_READ = Counter({f"{REPO}/commits/{{sha}}/status": 1})
BATCH_GET = Counter({"Google GET /v1/{scope}/effectiveIamPolicies:batchGet": 1})
SELF_GROUP = Counter({  # developers@: look the group up, then ask about alice
    "Google GET /v1/groups:lookup": 1,
    "Google GET /v1/groups/{group}/memberships:lookup": 1,
})
PEER_GROUP = Counter({  # sre@: look the group up, then list it (it gives the reviewers)
    "Google GET /v1/groups:lookup": 1,
    "Google GET /v1/groups/{group}/memberships": 1,
})
AUDIT = Counter({"Google POST /v2/entries:write": 1})
STATUS = Counter({"GitHub POST /repos/{repo}/statuses/{sha}": 1})
NEW_COMMENT = Counter({"GitHub POST /repos/{repo}/issues/{n}/comments": 1})
EDIT_COMMENT = Counter({"GitHub PATCH /repos/{repo}/issues/comments/{id}": 1})
REVIEWERS = Counter({"GitHub POST /repos/{repo}/pulls/{n}/requested_reviewers": 1})
IAM_WRITE = Counter({
    "Google POST /v3/projects/{project}:getIamPolicy": 1,
    "Google POST /v3/projects/{project}:setIamPolicy": 1,
})

EXPECTED: dict[str, Counter[str]] = {
    "opened_self": FIRST_WAVE + REQUEST_FILE + STATUS_READ + BATCH_GET + SELF_GROUP + STATUS
    + NEW_COMMENT + AUDIT,
    "opened_multi": FIRST_WAVE + REQUEST_FILE + STATUS_READ + BATCH_GET + PEER_GROUP + STATUS
    + NEW_COMMENT + REVIEWERS + AUDIT,
    "review": FIRST_WAVE + REQUEST_FILE + STATUS_READ + BATCH_GET + PEER_GROUP + STATUS
    + EDIT_COMMENT + AUDIT,
    "merge_self": FIRST_WAVE + REQUEST_FILE + BATCH_GET + SELF_GROUP + IAM_WRITE + AUDIT
    + NEW_COMMENT,
    "merge_multi": FIRST_WAVE + REQUEST_FILE + BATCH_GET + PEER_GROUP + IAM_WRITE + AUDIT
    + NEW_COMMENT,
    # success ("Not an access request"), so that a required check never blocks it.
    "non_request": FIRST_WAVE + STATUS_READ + STATUS,
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
    assert sum(counts["lifecycle_self"].values()) == 28
    assert sum(counts["lifecycle_multi"].values()) == 43


def test_every_event_has_a_critical_path_no_longer_than_its_calls() -> None:
    for event in EVENTS:
        chain = CHAINS[event]
        assert 1 <= len(chain) <= sum(EXPECTED[event].values())
    assert [len(CHAINS[e]) for e in EVENTS] == [6, 6, 6, 9, 9, 3]


def test_paths_are_normalised() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert normalise(f"/repos/acme/access/statuses/{sha}") == "/repos/{repo}/statuses/{sha}"
    assert normalise("/repos/acme/access/issues/12/comments") == "/repos/{repo}/issues/{n}/comments"
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
