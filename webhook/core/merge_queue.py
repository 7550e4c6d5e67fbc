"""The merge queue: the `jit-access` verdict on a merge group, from the request files it adds.

GitHub's merge queue builds a temporary commit (the group's head) from the target branch and the
pull requests queued ahead of it, and merges them only when the checks required on the target
branch pass on that commit. A group passes `jit-access` when it adds no request file, or when
every request file it adds belongs to an open pull request whose decision is ready now and whose
file is the very file in the group. Activation still happens on each PR's own merge event, which
decides everything again; this verdict only keeps the queue from merging what the PR's own
check would not let through.

Pure: the service lists the group's files and the candidate PRs, decides each PR, and hands the
results to `group_verdict`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.merge import StatusUpdate
from webhook.core.render import code, cut, inert, plain
from webhook.core.request_file import is_request_area

#: A merge group's head ref: `refs/heads/gh-readonly-queue/<base>/pr-<number>-<sha>`, where the
#: number is the PR the group was built for (the last one in it).
QUEUE_REF = re.compile(
    r"^refs/heads/gh-readonly-queue/(?P<base>.+)/pr-(?P<number>[1-9][0-9]{0,9})-[0-9a-f]{40,64}$"
)
#: GitHub's compare lists at most this many files; a group with more cannot be checked.
MAX_GROUP_FILES = 300
#: Request files one group may add: each costs a full evaluation (and an eligibility lookup)
#: within the webhook's 10 s.
MAX_GROUP_REQUESTS = 10


def queued_pr(head_ref: str | None) -> int | None:
    """The PR number a merge group's head ref names, or None when it is not in GitHub's form."""
    found = QUEUE_REF.match(head_ref or "")
    return int(found.group("number")) if found else None


@dataclass(frozen=True)
class GroupFile:
    """A file the group changes against its base, with the git blob id of its new content."""

    filename: str
    status: str  # added | removed | modified | renamed | copied | changed
    sha: str | None = None
    previous_filename: str | None = None


@dataclass(frozen=True)
class OpenPull:
    """An open PR, as the list of open PRs shows it."""

    number: int
    author: str
    head_sha: str
    base_ref: str


@dataclass(frozen=True)
class GroupRequests:
    """The request files a group adds, and what makes it fail whatever their PRs say."""

    added: tuple[GroupFile, ...]
    problems: tuple[str, ...] = ()


def group_requests(files: Sequence[GroupFile]) -> GroupRequests:
    """The request files a group adds. Deleted request files (revocations) need no PR to be
    ready; an edited, renamed or copied-over request file fails the group, as it fails the
    PR that makes it."""
    problems: list[str] = []
    if len(files) >= MAX_GROUP_FILES:
        problems.append(
            f"the merge group changes {MAX_GROUP_FILES} files or more, more than GitHub lists "
            "in one comparison; merge request PRs apart from large changes"
        )
    added: list[GroupFile] = []
    for f in files:
        if not (is_request_area(f.filename) or is_request_area(f.previous_filename)):
            continue
        if f.status == "removed":
            continue
        if f.status == "added" and is_request_area(f.filename):
            added.append(f)
        else:
            problems.append(f"{plain(f.filename)}: the merge group changes an existing request")
    if len(added) > MAX_GROUP_REQUESTS:
        problems.append(
            f"the merge group adds {len(added)} request files; at most {MAX_GROUP_REQUESTS} "
            "are checked in one group"
        )
    return GroupRequests(tuple(added), tuple(problems))


def directory_owner(path: str) -> str | None:
    """The login a request file's directory names (`requests/<login>/…`)."""
    parts = path.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "requests" and parts[1] else None


@dataclass(frozen=True)
class RequestInGroup:
    """One request file of a group and the PR it belongs to."""

    path: str
    number: int | None  # the open PR that adds this very file; None when none does
    ready: bool
    why: str  # the PR's status description, or why no PR was found


def group_verdict(
    requests: GroupRequests, found: Sequence[RequestInGroup], *, target_url: str | None = None
) -> StatusUpdate:
    """The verdict on a merge group's head commit."""
    lines = ["### jit-access: merge group", ""]
    if requests.problems:
        lines += [f"- {inert(p)}" for p in requests.problems]
        return StatusUpdate(
            "failure", cut(f"Merge group: {requests.problems[0]}"), target_url,
            summary="\n".join(lines),
        )
    if not requests.added:
        return StatusUpdate(
            "success", "No access request in this merge group", target_url,
            summary="\n".join(lines + ["The merge group adds no request file."]),
        )
    for item in found:
        who = f"#{item.number}" if item.number is not None else "no open pull request"
        mark = "✅" if item.ready else "❌"
        lines.append(f"- {mark} {code(item.path)} ({who}): {inert(item.why)}")
    waiting = [item for item in found if not item.ready]
    missing = {f.filename for f in requests.added} - {item.path for item in found}
    if not waiting and not missing:
        count = len(found)
        text = "the request is ready" if count == 1 else f"all {count} requests are ready"
        return StatusUpdate(
            "success", f"Merge group: {text}", target_url, summary="\n".join(lines)
        )
    if waiting:
        first = waiting[0]
        who = f"#{first.number}" if first.number is not None else plain(first.path)
        description = f"Merge group: {who} is not ready: {plain(first.why)}"
    else:
        description = f"Merge group: no ready PR adds {plain(sorted(missing)[0])}"
    return StatusUpdate("failure", cut(description), target_url, summary="\n".join(lines))
