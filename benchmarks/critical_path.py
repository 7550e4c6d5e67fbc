"""The critical path of each event: the calls that must happen one after another.

With every API call taking the same latency L, no implementation can answer an event faster
than (length of its longest chain of dependent calls) × L. That minimum is what the measured
wall time is compared with. The chains below are derived from what each call needs to know
(its inputs), not from what the service happens to do; a step is a set of calls that need
nothing from each other and may run at once (`∥`).

Every event starts with the same three steps:

1. `[pull ∥ reviews ∥ policy ∥ identities]` — the PR, its reviews, `policy/jitaccess.yaml`
   and `policy/identities.yaml` on the default branch depend only on the PR number from the
   delivery. (The payload is only a trigger, README: activation, so the PR is re-read.)
2. `[files at head ∥ comments]` — the files judged must be those of the head commit that
   receives the verdict, so they are read for the head sha the PR just gave (a comparison
   `base...sha`; a merged PR's frozen file list, read once the PR says it is merged). Which
   comments matter depends on the PR too: an open PR's first page (the status comment, edited
   in place), a merged PR's comments since the merge (the records that keep it idempotent).
3. `request file at head` — its path comes from the file list and its ref from the PR's head
   sha: it cannot be read before step 2.

Eligibility (README: lifecycle, `asset-inventory` source) follows:

3. `[effectiveIamPolicies:batchGet ∥ searchDirectGroups (requester)]` — batchGet needs the
   project (from the request file) and the scope (from the policy); the search of the
   requester's groups needs only the requester's identity (from the identities file), so it
   runs beside it. (It could start one step earlier, beside the request file; the chain would
   not be shorter, since everything after it also waits for batchGet.)
4. `searchDirectGroups (reviewer)` — a reviewer's groups are looked up only for the roles the
   requester needs approval for, which batchGet and the requester's groups tell; only for a
   review that could count (known from step 1). None for self-approval.
5. A request still short of approvals names its qualified peers: `groups:lookup` of each
   multi-party group (its address, `groups/ID`, is only known from the lookup), then
6. its member listing. Whether peers are needed is known only once the reviewers' eligibility
   is (step 4, or step 3 when there is no review).

An open PR then publishes the decision, all at once (they depend only on the decision):

- `[status ∥ comment (create or edit) ∥ review requests ∥ audit entry]`.

A merge activates instead, strictly in order (it names no peers):

- `getIamPolicy` — the read-modify-write starts only once the decision is `ready`: a refused
  merge must not touch IAM, and reading the policy as late as possible keeps the window for
  a concurrent change (a 409 and a retry) short.
- `setIamPolicy` — needs the etag and bindings just read.
- `entries:write` (audit) — records the access actually granted (the binding written, or the
  one already present); if it fails, the binding is removed again (README: activation), so it
  cannot run before or beside the write.
- `comment (create)` — announces the activation only once it is audited ("no access without
  an audit record"); whether it was already posted is known from step 1.

A merge also reads the audit log for an earlier decision (`entries:list`): it needs only the
PR's URL and whether it is a merged request, both known after step 1, so it runs beside steps
2–5 and is off the critical path.

A PR that touches no request needs steps 1 and 2 (the file list says so), then reads its current
verdict and publishes `success` ("Not an access request") unless it is already there.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST = "[pull ∥ reviews ∥ policy ∥ identities]"
FILES = "[files at head ∥ comments]"
REQUEST_FILE = "request file at head"
BATCH_GET = "[effectiveIamPolicies:batchGet ∥ searchDirectGroups (alice)]"


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
        FIRST, FILES, REQUEST_FILE, BATCH_GET, "[status ∥ comment create ∥ audit requestRole]",
    )),
    "opened_multi": Chain((
        FIRST, FILES, REQUEST_FILE, BATCH_GET, "groups:lookup sre@", "memberships list (sre@)",
        "[status ∥ comment create ∥ request reviewers ∥ audit requestRole]",
    )),
    "review": Chain((
        FIRST, FILES, REQUEST_FILE, BATCH_GET, "searchDirectGroups (bob)",
        "[status ∥ comment edit ∥ audit approveRole]",
    )),
    "merge_self": Chain((
        FIRST, FILES, REQUEST_FILE, BATCH_GET, "getIamPolicy", "setIamPolicy", "audit activateRole",
        "comment create",
    )),
    "merge_multi": Chain((
        FIRST, FILES, REQUEST_FILE, BATCH_GET, "searchDirectGroups (bob)", "getIamPolicy",
        "setIamPolicy", "audit activateRole", "comment create",
    )),
    "non_request": Chain((FIRST, FILES, "status read", "status")),
}
