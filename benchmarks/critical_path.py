"""The critical path of each event: the calls that must happen one after another.

With every API call taking the same latency L, no implementation can answer an event faster
than (length of its longest chain of dependent calls) × L. That minimum is what the measured
wall time is compared with. The chains below are derived from what each call needs to know
(its inputs), not from what the service happens to do; a step is a set of calls that need
nothing from each other and may run at once (`∥`).

Every event starts with the same two steps:

1. `[pull ∥ files ∥ reviews ∥ policy ∥ identities ∥ comments]` — the PR, its changed files,
   its reviews, `policy/jitaccess.yaml` and `policy/identities.yaml` on the default branch, and
   the PR's comments all depend only on the PR number from the delivery. (The payload is only a
   trigger, SPEC §6, so the PR is re-read; the comments are needed later to edit the status
   comment in place or to keep a merge idempotent, and are read here rather than later.)
2. `request file at head` — its path comes from the file list and its ref from the PR's head
   sha: it cannot be read before step 1.

Eligibility (SPEC §5, `asset-inventory` source) follows:

3. `effectiveIamPolicies:batchGet` — needs the project (from the request file) and the scope
   (from the policy).
4. `groups:lookup` for each group on an eligible binding — the groups are only known from the
   batchGet answer.
5. `memberships:lookup` (a person in a self-approval group) or the membership listing (a
   multi-party group, which also gives the qualified peers) — Cloud Identity addresses
   memberships by the group's resource name (`groups/ID`), which only the lookup returns.

An open PR then publishes the decision, all at once (they depend only on the decision):

6. `[status ∥ comment (create or edit) ∥ review requests ∥ audit entry]`.

A merge activates instead, strictly in order:

6. `getIamPolicy` — the read-modify-write starts only once the decision is `ready`: a refused
   merge must not touch IAM, and reading the policy as late as possible keeps the window for
   a concurrent change (a 409 and a retry) short.
7. `setIamPolicy` — needs the etag and bindings just read.
8. `entries:write` (audit) — records the access actually granted (the binding written, or the
   one already present); if it fails, the binding is removed again (SPEC §6), so it cannot run
   before or beside the write.
9. `comment (create)` — announces the activation only once it is audited ("no access without
   an audit record"); whether it was already posted is known from step 1.

A PR that touches no request needs step 1 (the file list says so), then reads its current
verdict and publishes `success` ("Not an access request") unless it is already there.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST = "[pull ∥ files ∥ reviews ∥ policy ∥ identities ∥ comments]"
REQUEST_FILE = "request file at head"
BATCH_GET = "effectiveIamPolicies:batchGet"


@dataclass(frozen=True)
class Chain:
    """The steps of one event's critical path."""

    steps: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.steps)

    def minimum(self, latency: float) -> float:
        """The least wall time any implementation needs at this latency per call."""
        return len(self.steps) * latency

    def text(self) -> str:
        """The chain as `a → b → c`."""
        return " → ".join(self.steps)


CHAINS: dict[str, Chain] = {
    "opened_self": Chain((
        FIRST, REQUEST_FILE, BATCH_GET, "groups:lookup developers@",
        "memberships:lookup (alice)", "[status ∥ comment create ∥ audit requestRole]",
    )),
    "opened_multi": Chain((
        FIRST, REQUEST_FILE, BATCH_GET, "groups:lookup sre@", "memberships list (sre@)",
        "[status ∥ comment create ∥ request reviewers ∥ audit requestRole]",
    )),
    "review": Chain((
        FIRST, REQUEST_FILE, BATCH_GET, "groups:lookup sre@", "memberships list (sre@)",
        "[status ∥ comment edit ∥ audit approveRole]",
    )),
    "merge_self": Chain((
        FIRST, REQUEST_FILE, BATCH_GET, "groups:lookup developers@",
        "memberships:lookup (alice)", "getIamPolicy", "setIamPolicy", "audit activateRole",
        "comment create",
    )),
    "merge_multi": Chain((
        FIRST, REQUEST_FILE, BATCH_GET, "groups:lookup sre@", "memberships list (sre@)",
        "getIamPolicy", "setIamPolicy", "audit activateRole", "comment create",
    )),
    "non_request": Chain((FIRST, "status read", "status")),
}
