"""The rule book of revocation: the `/jit revoke` command, who may revoke, what is recorded.

Pure, like `merge`: the service gathers the facts (the merged PR, its request, the commenter,
the policy, the activation bindings IAM holds), calls these functions and applies the effects
they name. Revoking only ever removes access, so it never asks whether the requester is still
eligible; it is still authorised, audited and said on the PR.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from webhook.core import audit_record as audit_events
from webhook.core.audit_record import AuditRecord
from webhook.core.conditions import activation_of
from webhook.core.decide import qualified_roles
from webhook.core.eligibility import EligibilityQuestion
from webhook.core.model import (
    AccessRequest,
    Binding,
    ChangedFile,
    EligibilityFacts,
    Identities,
    Policy,
    PullInfo,
    Review,
    ReviewState,
)
from webhook.core.names import STATUS_DESCRIPTION_MAX
from webhook.core.records import revoke_insert_id, revoke_marker

# The renderer's inert spans and comment finishing are shared with the other comments, so that
# requester text is shown the same way everywhere.
from webhook.core.render import _code, _escape, _finish, _mention, rfc3339
from webhook.core.rules import needs_ancestry, possible_settings

#: The command, at the start of a comment's first line.
COMMAND = "/jit revoke"
#: Longest reason kept (the rest of the first line); longer ones are cut.
MAX_REASON = 200
#: Most request files one revocation PR may delete: each costs a few GitHub calls and an IAM
#: read, so a PR deleting hundreds must not make one event spend thousands.
MAX_REVOKED_FILES = 20


@dataclass(frozen=True)
class RevokeCommand:
    """A `/jit revoke [reason]` comment: the reason ("" when none was given)."""

    reason: str = ""


def parse_command(body: str) -> RevokeCommand | None:
    """The command of a comment whose first line is `/jit revoke [reason]`, or None.

    Only the first line counts, so that quoting or mentioning the command in a discussion
    does nothing; `/jit revoked` or `/jit revoke-all` are not the command.
    """
    first = body.lstrip("\ufeff").split("\n", 1)[0].strip()
    if not first.startswith(COMMAND):
        return None
    rest = first[len(COMMAND):]
    if rest and not rest[0].isspace():
        return None
    reason = " ".join(rest.split())
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return RevokeCommand(reason)


class Authority(enum.Enum):
    """Why someone may, or may not, revoke a PR's activation."""

    REQUESTER = "the requester"
    REVOKER = "a listed revoker"
    REVIEWER = "a qualified reviewer"
    #: A reviewer of the PR: qualified if a designated approver of one of its roles' rules, or a
    #: qualified peer where the rule lets peers count (`reviewer_question`, `qualified_reviewer`).
    ASK_ELIGIBILITY = "a reviewer, qualified if a designated approver or a qualified peer"
    UNMAPPED = "no identity mapping"
    NOT_ALLOWED = "not allowed"

    @property
    def allowed(self) -> bool:
        """May revoke without anything more being looked up."""
        return self in (Authority.REQUESTER, Authority.REVOKER, Authority.REVIEWER)


def authority(
    login: str,
    *,
    author: str,
    revokers: Iterable[str],
    identities: Identities,
    reviews: Sequence[Review],
) -> Authority:
    """Who `login` is for revoking the activation of a PR by `author`, from what costs no call.

    An unmapped login is refused first: the service acts on Google identities only. The
    requester and the policy's revokers may always revoke; a reviewer of the PR may when they
    are a qualified reviewer of one of its roles (`qualified_reviewer`: at most one
    eligibility lookup, none for a designated `user:` approver); anyone else may not, and
    costs no Google call.
    """
    me = identities.email_for(login)
    if me is None:
        return Authority.UNMAPPED
    if login.lower() == author.lower():
        return Authority.REQUESTER
    if login.lower() in {r.lower() for r in revokers}:
        return Authority.REVOKER
    requester = identities.email_for(author)
    if requester is not None and me.lower() == requester.lower():
        return Authority.REQUESTER  # another login of the same person
    if any(
        r.login.lower() == login.lower() and r.state is not ReviewState.PENDING for r in reviews
    ):
        return Authority.ASK_ELIGIBILITY
    return Authority.NOT_ALLOWED


def qualified_reviewer(
    policy: Policy,
    request: AccessRequest,
    identity: str,
    requester: str | None,
    facts: EligibilityFacts | None = None,
) -> bool:
    """Is `identity` (a reviewer of the PR) a qualified reviewer of one of the request's roles
    (README: revocation)? For each role, under the rule that applies to it: a designated
    `user:` approver, a member of a designated `group:` approver (`facts.memberships`), or,
    unless the rule sets `peers: false`, a qualified peer (eligible through the multi-party
    marker). The requester's own identity never is.

    Without `facts` (nothing looked up yet) only what needs no lookup is judged: a designated
    `user:` approver of a role whose rule is settled without the project's folders. Roles
    whose rule depends on folders the facts do not name are not judged (never allowed).
    """
    return bool(
        qualified_roles(
            policy, request, facts if facts is not None else EligibilityFacts(),
            reviewer=identity, requester=requester,
        )
    )


def reviewer_question(
    policy: Policy, request: AccessRequest, identity: str, requester: str | None = None
) -> EligibilityQuestion | None:
    """The one eligibility question that settles whether a reviewer is a qualified reviewer
    (after `qualified_reviewer` without facts said no), or None when no answer could make
    them one: every rule that may apply sets `peers: false` and names no group, and none that
    waits on the project's folders names them as a `user:` approver. Then a refusal costs no
    Google call.

    The reviewer is asked about as a vetoer is: their multi-party eligibility for the roles
    where peers count, whatever the requester's marker, and their membership of the designated
    groups; the project's ancestry is asked for when a rule matches folders. The question's
    requester is the PR's (`requester`), who never qualifies; a reviewer with the requester's
    identity is never asked about.
    """
    me = identity.lower()
    if requester is not None and requester.lower() == me:
        return None
    peer_roles: list[str] = []
    groups: dict[str, None] = {}
    named = False
    for role in request.roles:
        for settings in possible_settings(policy, request.project, role):
            approval = settings.approval
            if approval.peers and role not in peer_roles:
                peer_roles.append(role)
            groups.update(dict.fromkeys(a for a in approval.approvers if a.startswith("group:")))
            named = named or f"user:{me}" in approval.approvers
    ancestry = needs_ancestry(policy, request.project, request.roles)
    if not peer_roles and not groups and not (ancestry and named):
        return None
    return EligibilityQuestion(
        requester=(requester or me).lower(),
        roles=tuple(peer_roles) or tuple(dict.fromkeys(request.roles)),
        peers=False,
        vetoers=(me,),
        veto_roles=tuple(peer_roles),
        approver_groups=tuple(groups),
        ancestry=ancestry,
    )


# ----------------------------------------------------------------------------------------------
# The revocation PR


def revocation_paths(
    files: Sequence[ChangedFile], *, base_ref: str, default_branch: str, complete: bool = True
) -> tuple[str, ...] | None:
    """The request files a revocation PR deletes, or None when the PR is not one.

    A revocation PR targets the default branch and its only changes delete request files
    (`requests/<login>/<name>.yaml|yml`). Anything else — another change beside, a rename, a
    file outside requests/, another branch, a list too long to be whole, more than
    MAX_REVOKED_FILES files — is not one, and is judged as any other PR.
    """
    if (
        not complete or not files or len(files) > MAX_REVOKED_FILES or not default_branch
        or base_ref != default_branch
    ):
        return None
    paths: list[str] = []
    for f in files:
        parts = f.filename.split("/")
        if (
            f.status != "removed" or len(parts) != 3 or parts[0] != "requests"
            or not parts[1] or not re.fullmatch(r"[^/]+\.ya?ml", parts[2])
        ):
            return None
        paths.append(f.filename)
    return tuple(paths)


# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Revocation:
    """One revocation as it is recorded and said: of which PR, by whom, why, when."""

    pull: PullInfo  # the revoked request PR
    pr_reference: str  # owner/repo#n
    key: str  # what asked for it (records.revoke_key_for_comment / _for_pull)
    revoker: str  # the login who asked
    revoker_identity: str  # their Google identity (or login, when they have none)
    reason: str
    at: datetime  # when it was asked for (the comment's creation, the revocation PR's merge)


def revocation_record(
    revocation: Revocation,
    request: AccessRequest | None,
    bindings: Sequence[Binding],
    delivery_id: str,
    *,
    requester: str = "",
) -> AuditRecord:
    """`gitops.revokeRole` for the removed `bindings`: labels as the activation's plus
    `revoked_by` and `reason`; dated when the revocation was asked for, with one insert id per
    command, so that a redelivery writes the same entry again and Cloud Logging keeps one.
    `requester` is the user named when the bindings are no longer known (a redelivery that
    completes an entry an earlier delivery could not write)."""
    roles = tuple(dict.fromkeys(b.role for b in bindings)) or (
        request.roles if request else ()
    )
    users = tuple(dict.fromkeys(b.member for b in bindings))
    windows = [w for b in bindings if (w := activation_of(b)) is not None]
    project = request.project if request else ""
    reason = revocation.reason
    return AuditRecord(
        event=audit_events.REVOKE_ROLE,
        user=users[0] if users else requester,
        project=project,
        roles=roles,
        justification=request.justification if request else "",
        activation_start=min((w.start for w in windows), default=None),
        activation_end=max((w.end for w in windows), default=None),
        reviewers=approvers_of(bindings),
        pull_request=revocation.pull.html_url,
        commit=revocation.pull.head_sha,
        delivery_id=delivery_id,
        message=(
            f"{revocation.revoker_identity} revoked {', '.join(roles) or 'no role'} on "
            f"{project} ({revocation.pr_reference})" + (f": {reason}" if reason else "")
        ),
        timestamp=revocation.at,
        insert_id=revoke_insert_id(revocation.pr_reference, revocation.key),
        extra_labels=(("revoked_by", revocation.revoker_identity), ("reason", reason)),
    )


def approvers_of(bindings: Sequence[Binding]) -> tuple[str, ...]:
    """The approvers an activation's description names (`Approved by a, b, justification: …`),
    each once; none for a self-approved one."""
    found: dict[str, None] = {}
    for b in bindings:
        if b.description.startswith("Approved by "):
            names = b.description[len("Approved by "):].split(", justification: ", 1)[0]
            found.update(dict.fromkeys(n.strip() for n in names.split(", ") if n.strip()))
    return tuple(found)


def request_reason(revocation: Revocation) -> str:
    """The `x-goog-request-reason` of the IAM write, so that Cloud Audit Logs say who and why."""
    why = f": {revocation.reason}" if revocation.reason else ""
    return (
        f"Revoked by {revocation.revoker_identity} ({revocation.pr_reference}, "
        f"{revocation.key}){why}"
    )


# ----------------------------------------------------------------------------------------------
# Comments


def _who(revocation: Revocation) -> str:
    return _mention(revocation.revoker)


def _reason_line(reason: str) -> list[str]:
    return ["", f"Reason: {_code(reason)}"] if reason else []


def revoked_comment(
    revocation: Revocation, project: str, bindings: Sequence[Binding], *, audited: bool = True
) -> str:
    """The comment after a revocation: who revoked which roles, when, and why.

    `audited` False: the access was removed but its audit entry could not be written; the
    comment says so and how the entry gets written.
    """
    roles = list(dict.fromkeys(b.role for b in bindings))
    lines = [
        revoke_marker(revocation.key, "done" if audited else "failed"),
        "### jit-access: 🔒 Access revoked",
        "",
        f"{_who(revocation)} revoked these roles on project {_code(project)} at "
        f"**{rfc3339(revocation.at)}**:",
        "",
        *[f"- {_code(role)}" for role in roles],
        *_reason_line(revocation.reason),
        "",
    ]
    if audited:
        lines.append("The activation bindings were removed; the revocation is recorded in the "
                     "audit log.")
    else:
        lines.append(
            "**The activation bindings were removed, but the audit entry of the revocation "
            "could not be written.** An administrator must redeliver this event (GitHub → "
            "Settings → Webhooks → Recent deliveries → Redeliver), which writes the missing "
            "entry. Cloud Audit Logs record the IAM change with the revoker's name."
        )
    return _finish(lines)


def nothing_active_comment(revocation: Revocation) -> str:
    """The reply when no activation of the PR is in effect: nothing was changed."""
    return _finish([
        revoke_marker(revocation.key, "nothing"),
        "### jit-access: Nothing to revoke",
        "",
        f"{_who(revocation)}: no activation of this pull request is in effect (it expired, was "
        "revoked or removed, or was never granted). Nothing was changed.",
    ])


def refused_comment(
    revocation: Revocation, *, author: str, revokers: Sequence[str], unmapped: bool = False
) -> str:
    """The reply to someone who may not revoke: who may, and that nothing changed."""
    listed = ", ".join(_mention(r) for r in revokers[:10]) if revokers else ""
    who_may = [
        f"- the requester, {_mention(author)};",
        "- a qualified reviewer of one of its roles (a reviewer of this pull request who is a "
        "designated approver of the role, or eligible for it with approval where the policy "
        "lets qualified peers approve);",
        f"- a revoker listed in the policy ({listed})." if listed
        else "- a revoker listed in the policy's `revocation.revokers` (none is listed).",
    ]
    why = (
        "has no identity mapping in `policy/identities.yaml`"
        if unmapped else "may not revoke this activation"
    )
    return _finish([
        revoke_marker(revocation.key, "refused"),
        "### jit-access: 🚫 Revocation refused",
        "",
        f"{_who(revocation)} {why}. Nothing was changed. An activation can be revoked by:",
        "",
        *who_may,
    ])


def revocation_failed_comment(revocation: Revocation, reason: str) -> str:
    """The reply when the access could not be removed: it stands; how to retry."""
    return _finish([
        revoke_marker(revocation.key, "error"),
        "### jit-access: ⚠️ Revocation failed",
        "",
        f"The revocation asked by {_who(revocation)} failed: {_escape(reason)}",
        "",
        "**The access is still in effect.** Retry by posting the command again, or an "
        "administrator can redeliver this event.",
    ])


@dataclass(frozen=True)
class RevocationTarget:
    """One request file a revocation PR deletes: the PR that added it (None: not found) and
    whether that PR's activation is in effect (its bindings, as IAM holds them)."""

    path: str
    number: int | None
    bindings: tuple[Binding, ...] = ()


def revocation_status(targets: Sequence[RevocationTarget]) -> tuple[str, str]:
    """The `jit-access` verdict of an open revocation PR: always success (it only ever removes
    access), naming the PRs whose access it ends, or saying none is in effect."""
    active = sorted({t.number for t in targets if t.number is not None and t.bindings})
    if active:
        named = ", ".join(f"#{n}" for n in active)
        text = f"Revocation: merging ends the access of {named}"
    else:
        text = "Revocation: no access of the deleted requests is in effect"
    return "success", text if len(text) <= STATUS_DESCRIPTION_MAX else text[:136] + "..."


def revocation_pr_comment(
    key: str, targets: Sequence[RevocationTarget], *, merged: bool,
    outcomes: dict[int, str] | None = None, complete: bool = True,
) -> str:
    """The comment of a revocation PR: which PRs' access it ends (open) or ended (merged);
    `complete` False: a revocation failed (the marker then lets a redelivery complete it)."""
    outcome = ("summary" if complete else "partial") if merged else "status"
    lines = [
        revoke_marker(key, outcome),
        "### jit-access: 🔒 Revocation pull request",
        "",
        "This pull request deletes earlier-merged request files; "
        + ("merging it revoked their activations:" if merged
           else "merging it revokes their activations:"),
        "",
    ]
    for t in targets:
        pr = f"#{t.number}" if t.number is not None else "no merged pull request found"
        if outcomes is not None and t.number is not None and t.number in outcomes:
            state = outcomes[t.number]
        else:
            state = (
                f"in effect ({', '.join(_code(b.role) for b in t.bindings)})" if t.bindings
                else "no activation in effect"
            )
        lines.append(f"- {_code(t.path)} ({pr}): {state}")
    return _finish(lines)
