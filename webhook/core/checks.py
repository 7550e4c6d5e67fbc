"""Check runs: what the `jit-access` check run on a commit says, and how to get it there.

With GitHub App credentials the verdict is a check run instead of a commit status: its title is
the status description, its summary the status comment's content, and every problem of the
request file that has a line number is an annotation on that line. Pure, like `decide`: the
adapter (`adapters.github_checks`) reads the check run a commit has, asks `plan_check_run` what
to send, and sends it.

GitHub's rules for check runs that shape the plan (REST API, "Check runs"):

- a check run goes queued → in_progress → completed, and once completed neither its status nor
  its conclusion can change again: a verdict that changes after completion needs a new check run
  of the same name, which supersedes the old one (the pull request page and the list endpoint's
  default `filter=latest` show the newest);
- every update appends its annotations to those already there, and none can be removed; one
  request carries at most 50;
- `output.summary` holds at most 65,535 characters;
- only the GitHub App that created a check run may update it.

So a check run is updated in place while the verdict allows it (pending → ready is one check run,
edited), and replaced only when GitHub leaves no other way: a completed verdict that changes, or
annotations that are no longer true. An update equal to what the check run already says is not
sent at all.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from webhook.core.model import Decision
from webhook.core.names import STATUS_DESCRIPTION_MAX
from webhook.core.render import fit_comment
from webhook.core.request_file import REQUESTS_DIR

if TYPE_CHECKING:
    from webhook.core.merge import StatusUpdate

#: GitHub refuses more annotations in one create or update request (422).
ANNOTATIONS_PER_REQUEST = 50
#: Annotations sent for one verdict at most: a request file of 4 KiB has few problems, and each
#: batch past the first is one more call within the webhook's 10 s. The summary lists them all.
MAX_ANNOTATIONS = 150
#: GitHub refuses a longer `output.summary` (422).
SUMMARY_MAX = 65535
#: Longest annotation title sent (GitHub shows it as one line above the message).
ANNOTATION_TITLE_MAX = 255
#: Every `external_id` of a jit-access check run starts with this: `jit-access/1 pr=N notes=F`.
EXTERNAL_ID_PREFIX = "jit-access/1"
#: `notes=` while the annotations of a verdict are still being sent in batches.
PARTIAL_NOTES = "partial"

ANNOTATION_LEVELS = ("notice", "warning", "failure")
_EXTERNAL_PR = re.compile(r"(?:^| )pr=([1-9][0-9]{0,9})(?: |$)")
_EXTERNAL_NOTES = re.compile(r"(?:^| )notes=([0-9a-z]*)(?: |$)")
_MARKER_LINE = re.compile(r"^<!-- jit-access:[^\n]*-->\n")


class Unread(enum.Enum):
    """`publish(current=UNREAD)`: the caller did not read the current verdict."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


@dataclass(frozen=True)
class Annotation:
    """One line of a file the check run points at."""

    path: str
    line: int  # 1-based
    message: str
    title: str = ""
    level: str = "failure"  # notice | warning | failure

    def wire(self) -> dict[str, str | int]:
        """The annotation as the Checks API takes it."""
        out: dict[str, str | int] = {
            "path": self.path,
            "start_line": self.line,
            "end_line": self.line,
            "annotation_level": self.level,
            "message": self.message,
        }
        if self.title:
            out["title"] = self.title[:ANNOTATION_TITLE_MAX]
        return out


@dataclass(frozen=True)
class CheckRun:
    """The newest `jit-access` check run of this App on a commit, as GitHub holds it."""

    id: int
    status: str  # queued | in_progress | completed
    conclusion: str | None
    title: str
    summary: str
    details_url: str | None = None
    external_id: str = ""


@dataclass(frozen=True)
class WantedCheckRun:
    """What the check run should say for one verdict."""

    status: str  # in_progress | completed
    conclusion: str | None  # None while in progress
    title: str
    summary: str
    details_url: str | None
    annotations: tuple[Annotation, ...]
    external_id: str  # with the fingerprint of `annotations`: see `external_id`

    def fields(self, *, external_id: str | None = None) -> dict[str, object]:
        """The body of a create or update request, without annotations."""
        body: dict[str, object] = {"status": self.status}
        if self.conclusion is not None:
            body["conclusion"] = self.conclusion
        if self.details_url:
            body["details_url"] = self.details_url
        body["external_id"] = self.external_id if external_id is None else external_id
        return body

    def output(self, annotations: Sequence[Annotation] = ()) -> dict[str, object]:
        """The `output` object of a request, with one batch of annotations."""
        out: dict[str, object] = {"title": self.title, "summary": self.summary}
        if annotations:
            out["annotations"] = [a.wire() for a in annotations]
        return out


# ----------------------------------------------------------------------------------------------
# From a verdict to a check run


def check_state(state: str) -> tuple[str, str | None]:
    """The check run status and conclusion of a commit-status state.

    `error` (a policy or service problem) is concluded `failure`, not `action_required`: both keep
    a required check from passing, but GitHub shows `action_required` as a request to act on the
    integrator's own site (`details_url`), which this service does not have — the remedy (fix
    the policy on the default branch, or choose Re-run after a transient failure) is in the
    summary, and the title says "Policy error" or "Service error". `failure` also keeps the
    Re-run button where people expect it.
    """
    match state:
        case "pending":
            return "in_progress", None
        case "success":
            return "completed", "success"
        case "failure" | "error":
            return "completed", "failure"
    raise ValueError(f"not a commit-status state: {state!r}")


def wanted_check_run(update: StatusUpdate, *, pr: int | None = None) -> WantedCheckRun:
    """The check run for a verdict; `pr` is the pull request it judges, kept in `external_id`
    so that a Re-run finds it again when GitHub's payload names none."""
    status, conclusion = check_state(update.state)
    annotations = tuple(update.annotations[:MAX_ANNOTATIONS])
    title = update.description or update.state
    if len(title) > STATUS_DESCRIPTION_MAX:
        title = title[: STATUS_DESCRIPTION_MAX - 1] + "…"
    return WantedCheckRun(
        status=status,
        conclusion=conclusion,
        title=title,
        summary=check_summary(update.summary or title),
        details_url=update.target_url or None,
        annotations=annotations,
        external_id=external_id(pr, fingerprint(annotations)),
    )


def check_summary(text: str) -> str:
    """A check run summary from a status comment: without its hidden marker line, cut to fit
    GitHub's 65,535 characters at a line boundary (so no code span is left open)."""
    text = _MARKER_LINE.sub("", text, count=1).strip("\n")
    return fit_comment(text, limit=SUMMARY_MAX).rstrip("\n")


def annotations_for(decision: Decision) -> tuple[Annotation, ...]:
    """One annotation per problem of the request file that has a line number (problems of the
    policy files or of the PR's shape have none on the PR's files)."""
    return tuple(
        Annotation(p.path, p.line, p.message, title=str(p.code))
        for p in decision.problems
        if p.path is not None and p.path.startswith(REQUESTS_DIR)
        and p.line is not None and p.line >= 1
    )


def fingerprint(annotations: Sequence[Annotation]) -> str:
    """A short digest of a set of annotations ("" for none), kept in the check run's
    `external_id`: GitHub never returns annotations with the check run, and this tells whether
    the ones it holds are still the ones to show."""
    if not annotations:
        return ""
    text = json.dumps([a.wire() for a in annotations], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def external_id(pr: int | None, notes: str) -> str:
    """`jit-access/1 pr=12 notes=0123abcd…` (parts left out when empty)."""
    parts = [EXTERNAL_ID_PREFIX]
    if pr is not None:
        parts.append(f"pr={pr}")
    if notes:
        parts.append(f"notes={notes}")
    return " ".join(parts)


def pr_hint(external: str | None) -> int | None:
    """The pull request a jit-access check run's `external_id` names, if any."""
    if not isinstance(external, str) or not external.startswith(EXTERNAL_ID_PREFIX):
        return None
    found = _EXTERNAL_PR.search(external)
    return int(found.group(1)) if found else None


def notes_of(external: str | None) -> str:
    """The annotation fingerprint a check run's `external_id` records ("" for none)."""
    if not isinstance(external, str):
        return ""
    found = _EXTERNAL_NOTES.search(external)
    return found.group(1) if found else ""


# ----------------------------------------------------------------------------------------------
# What to send


@dataclass(frozen=True)
class KeepRun:
    """The check run already says exactly this: send nothing."""


@dataclass(frozen=True)
class CreateRun:
    """Create a new check run: the first batch of annotations with it, each further batch in an
    update; the last request sets the final `external_id`."""

    batches: tuple[tuple[Annotation, ...], ...]


@dataclass(frozen=True)
class UpdateRun:
    """Update check run `run_id` in place, with these batches of annotations (none: one update
    without annotations)."""

    run_id: int
    batches: tuple[tuple[Annotation, ...], ...]


CheckRunPlan = KeepRun | CreateRun | UpdateRun


def plan_check_run(
    wanted: WantedCheckRun, current: CheckRun | None, *, fresh: bool = False
) -> CheckRunPlan:
    """What to send so that the commit's check run says `wanted`, given the one it has.

    `fresh`: a person asked for a Re-run; GitHub's answer to that is a new check run (the
    rerequested suite waits for one), so one is created whatever the current one says.
    """
    batches = _batches(wanted.annotations)
    if fresh or current is None:
        return CreateRun(batches or ((),))
    if (
        current.status == wanted.status
        and current.conclusion == wanted.conclusion
        and current.title == wanted.title
        and current.summary == wanted.summary
        and (current.details_url or None) == wanted.details_url
        and current.external_id == wanted.external_id
    ):
        return KeepRun()
    if current.status == "completed" and (
        wanted.status != "completed" or current.conclusion != wanted.conclusion
    ):
        return CreateRun(batches or ((),))  # a completed check run's verdict cannot change
    held, want = notes_of(current.external_id), fingerprint(wanted.annotations)
    if held != want:
        if held:
            return CreateRun(batches or ((),))  # annotations cannot be taken back
        return UpdateRun(current.id, batches or ((),))
    return UpdateRun(current.id, ((),))


def _batches(annotations: Sequence[Annotation]) -> tuple[tuple[Annotation, ...], ...]:
    size = ANNOTATIONS_PER_REQUEST
    return tuple(tuple(annotations[i: i + size]) for i in range(0, len(annotations), size))
