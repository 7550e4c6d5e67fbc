"""After-the-fact review of a break-glass activation: an approval of the merged PR.

Orchestration only; the rules (who may review, the records, the comments) are in
`webhook.core.break_glass`. An approval submitted on a merged PR is handled here, cheapest
checks first, so that reviews that cannot matter cost no Google call:

1. from GitHub only (the PR, its reviews, the policy and identities from the default branch,
   read side by side): the PR is merged, the reviewer's deciding review is an approval given
   after the merge, the reviewer is not the author and has an identity mapping (for the account
   that reviewed), the request file at the merged head says `break_glass: true`, and no marked
   review comment of the service's is there yet;
2. one `entries.list` read of this PR's break-glass `gitops.activateRole` and
   `gitops.reviewBreakGlass` entries: activated as break-glass, and not reviewed yet;
3. one eligibility lookup for the reviewer (never Policy Analyzer): qualified for at least one
   of the roles;
4. then the `gitops.reviewBreakGlass` entry (dated at the approval, one insert id per PR), then
   a new comment behind a hidden marker.

A redelivery does nothing new: the marked comment, or the entry, is the record. An entry found
without its comment (the comment failed) gets the comment when the same reviewer's approval is
delivered again. A reviewer who is not qualified gets no reply (a reply to every approval of an
old PR would be noise anyone can cause); the delivery's answer and the log say why.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, wait
from dataclasses import replace
from typing import Any

from webhook.core.break_glass import (
    REVIEWED_MARKER,
    approval_after_merge,
    record_of,
    review_question,
    review_record,
    reviewed_comment,
)
from webhook.core.decide import qualified_roles
from webhook.core.eligibility import source_for
from webhook.core.errors import JitAccessError
from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.names import IDENTITIES_PATH, POLICY_PATH
from webhook.service.lifecycle import RECORD_MARGIN, RECORDS_MARGIN, Lifecycle, LifecycleResult

log = logging.getLogger("jitaccess")


class BreakGlassReviews:
    """Records after-the-fact reviews of break-glass activations, through the lifecycle's
    ports."""

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lc = lifecycle

    def on_approval(
        self, number: int, reviewer: str | None, delivery_id: str
    ) -> LifecycleResult | None:
        """An approval was submitted on a PR the payload says is merged; None when GitHub says
        it is not merged (the caller then handles it as a review of an open PR)."""
        with self.lc._pr_lock(number):
            return self._on_approval(number, reviewer, delivery_id)

    def _on_approval(
        self, number: int, reviewer: str | None, delivery_id: str
    ) -> LifecycleResult | None:
        lc, gh = self.lc, self.lc.github
        f_pull = lc._submit(gh.pull, number)
        f_policy = lc._submit(gh.file_bytes, POLICY_PATH, None)
        f_ids = lc._submit(gh.file_bytes, IDENTITIES_PATH, None, MAX_IDENTITIES_BYTES)
        f_reviews = lc._submit(gh.reviews, number)
        pending: list[Future[Any]] = [f_pull, f_policy, f_ids, f_reviews]
        try:
            pull = f_pull.result()
            reviews = f_reviews.result()
            f_policy.exception()
            f_ids.exception()
        except BaseException:
            wait(pending)  # nothing of this event may still run once it is answered
            raise
        if not pull.merged or pull.merged_at is None:
            wait(pending)
            if pull.state == "open":
                return None
            return LifecycleResult(f"PR #{number} is closed without merge; nothing to review")
        if not reviewer:
            return LifecycleResult(f"PR #{number}: the review names no reviewer; nothing to do")
        if reviewer.lower() == pull.author.lower():
            return LifecycleResult(
                f"PR #{number}: @{reviewer} is the author; their approval reviews nothing"
            )
        review = approval_after_merge(reviews, reviewer, pull.merged_at)
        if review is None:
            return LifecycleResult(
                f"PR #{number}: @{reviewer}'s latest review is no approval given after the "
                "merge; nothing to record"
            )
        policy_pair, problems = Lifecycle._policy(f_policy, f_ids)
        if policy_pair is None or problems:
            return LifecycleResult(
                f"PR #{number}: the policy is invalid; no review can be recorded", failed=True,
                state="error",
            )
        policy, all_identities = policy_pair
        identities = all_identities.for_accounts(
            {pull.author.lower(): pull.author_id, reviewer.lower(): review.user_id}
        )
        me = identities.email_for(reviewer)
        if me is None:
            log.info("PR #%d: @%s approved after the merge, but has no identity mapping",
                     number, reviewer)
            return LifecycleResult(
                f"PR #{number}: @{reviewer} has no identity mapping; their approval reviews "
                "nothing", state="not-qualified",
            )
        request = self.lc.merged_request(pull)
        if request is None or not request.break_glass:
            return LifecycleResult(
                f"PR #{number} is no break-glass request; nothing to review"
            )
        comments = gh.comments(number, since=pull.merged_at - RECORDS_MARGIN)
        if gh.comments_with(number, REVIEWED_MARKER, comments):
            return LifecycleResult(
                f"PR #{number}: the break-glass activation was reviewed already; a repeated "
                "delivery records nothing new", state="reviewed",
            )
        try:
            entries = lc.audit.break_glass_entries(
                pull.html_url, since=pull.merged_at - RECORD_MARGIN
            )
        except JitAccessError as exc:
            return LifecycleResult(
                f"PR #{number}: the audit log could not be read: {exc}", failed=True,
                state="error",
            )
        record = record_of(entries, pull.html_url)
        activation = record.activation
        if activation is None:
            return LifecycleResult(
                f"PR #{number} was not activated as break-glass; nothing to review"
            )
        if record.review is not None:
            # Recorded, but the comment is missing (it failed, or someone deleted it): said
            # again only for the reviewer the entry names, whose approval this is.
            if me.lower() in {r.lower() for r in record.review.reviewers}:
                gh.create_comment(
                    number, reviewed_comment(reviewer, activation.roles, activation.project)
                )
                return LifecycleResult(
                    f"PR #{number}: the break-glass activation was reviewed already; the "
                    "missing review comment was posted again", state="reviewed",
                )
            return LifecycleResult(
                f"PR #{number}: the break-glass activation was reviewed already; a later "
                "approval records nothing new", state="reviewed",
            )
        # What was granted, as its entry says: the roles and project the rules are read for.
        request = replace(
            request, project=activation.project or request.project,
            roles=activation.roles or request.roles,
        )
        if me.lower() == activation.user.lower():
            return LifecycleResult(
                f"PR #{number}: @{reviewer} is the requester's identity; their approval reviews "
                "nothing", state="not-qualified",
            )
        try:
            facts = lc.eligibility.check(
                scope=policy.scope, project=request.project,
                # A review grants nothing: never a Policy Analyzer query.
                settings=source_for(policy.eligibility, granting=False),
                question=review_question(
                    policy, request, requester=activation.user, reviewer=me
                ),
            )
        except JitAccessError as exc:
            return LifecycleResult(
                f"PR #{number}: the reviewer's eligibility could not be looked up: {exc}",
                failed=True, state="error",
            )
        roles = qualified_roles(policy, request, facts, reviewer=me, requester=activation.user)
        if not roles:
            log.info("PR #%d: @%s approved the break-glass activation after the fact, but is "
                     "no qualified reviewer of its roles", number, reviewer)
            return LifecycleResult(
                f"PR #{number}: @{reviewer} is no qualified reviewer of "
                f"{', '.join(request.roles)}; their approval reviews nothing",
                state="not-qualified",
            )
        entry = review_record(
            activation, reviewer=me, reviewer_login=reviewer,
            pr_reference=f"{lc.repository}#{number}", delivery_id=delivery_id,
            at=review.submitted_at or lc.clock(),
        )
        try:
            lc.audit.write(entry)
        except JitAccessError as exc:
            log.error("PR #%d: the break-glass review could not be recorded: %s", number, exc)
            return LifecycleResult(
                f"PR #{number}: the review could not be recorded: {exc}", failed=True,
                state="failed",
            )
        gh.create_comment(number, reviewed_comment(reviewer, activation.roles, activation.project))
        log.info("%s#%d: %s reviewed the break-glass activation of %s after the fact",
                 lc.repository, number, me, ",".join(activation.roles))
        return LifecycleResult(
            f"PR #{number}: @{reviewer} reviewed the break-glass activation", state="reviewed",
        )

