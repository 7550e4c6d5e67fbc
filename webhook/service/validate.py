"""`jitaccess validate`: check request files — and the policy and identities files — locally or
in CI before opening a PR.

Reports every problem as `path:line: code: message` (compiler style, so editors and CI annotate
the line) and exits 1 if there is any. Warnings about the policy (a rule that can never apply)
read `path:line: warning: code: message` and do not fail the run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from webhook.core.identities import MAX_IDENTITIES_BYTES
from webhook.core.model import AccessRequest, Policy, Problem
from webhook.core.names import POLICY_PATH
from webhook.core.policy import MAX_POLICY_BYTES, parse_identities, parse_policy
from webhook.core.request_file import MAX_REQUEST_BYTES, parse_request, request_path_problem
from webhook.core.rules import fits

_SUFFIXES = (".yaml", ".yml")


def _format(path: str, problem: Problem, *, warning: bool = False) -> str:
    where = f"{path}:{problem.line}" if problem.line is not None else path
    kind = "warning: " if warning else ""
    return f"{where}: {kind}{problem.code}: {problem.message}"


def _warn(path: str, policy: Policy | None, out: TextIO) -> int:
    """Print the policy's warnings; how many."""
    warnings = policy.warnings if policy is not None else ()
    for w in warnings:
        print(_format(path, w, warning=True), file=out)
    return len(warnings)


def _unchecked_folder_rules(policy: Policy, request: AccessRequest) -> str | None:
    """Which roles' limits wait for the project's folders (their rule matches folders), or
    None; only the service, which reads the project's ancestry, can settle them."""
    if request.break_glass:
        return None  # judged by break-glass's own limits, whatever the rules
    waiting: dict[str, list[str]] = {}
    for role in request.roles:
        for rule in policy.rules:
            fit = fits(rule.match, request.project, role, None)
            if fit is None:
                waiting.setdefault(rule.name, []).append(role)
            if fit is not False:
                break
    if not waiting:
        return None
    rules = "; ".join(f"{', '.join(roles)} (rule \"{name}\")" for name, roles in waiting.items())
    return (f"the limits of {rules} depend on the folders the project lies in and were not "
            "checked; the service checks them on the PR")


def _read(path: Path, limit: int) -> tuple[bytes | None, Problem | None]:
    """At most `limit + 1` bytes of a file (enough to tell it is too large), or a problem."""
    try:
        with path.open("rb") as f:
            return f.read(limit + 1), None
    except FileNotFoundError:
        return None, Problem("missing_file", "no such file")
    except IsADirectoryError:
        return None, Problem("unreadable", "is a directory")
    except OSError as e:
        return None, Problem("unreadable", f"cannot be read: {e.strerror or e}")


def _request_files(path: str) -> Iterator[str]:
    """The path itself, or the request files found under a directory, sorted."""
    if not os.path.isdir(path):
        yield path
        return
    found: list[str] = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, f) for f in files if f.endswith(_SUFFIXES))
    yield from sorted(found)


def _kind(path: str) -> str:
    """`policy` or `identities` for the files of a `policy/` directory, else `request`."""
    parts = Path(path).parts
    if len(parts) >= 2 and parts[-2] == "policy":
        if parts[-1] in ("jitaccess.yaml", "jitaccess.yml"):
            return "policy"
        if parts[-1] in ("identities.yaml", "identities.yml"):
            return "identities"
    return "request"


def _layout_problem(path: str) -> Problem | None:
    """For a path inside a `requests/` directory: is it `requests/<login>/<name>.yaml`?"""
    parts = Path(path).parts
    if "requests" not in parts:
        return None
    last = len(parts) - 1 - parts[::-1].index("requests")
    return request_path_problem("/".join(("requests", *parts[last + 1 :])))


def _load_policy(policy_path: str, out: TextIO) -> tuple[Policy | None, int]:
    """The policy's settings (None: defaults) and how many problems were printed."""
    data, problem = _read(Path(policy_path), MAX_POLICY_BYTES)
    if data is None:
        if problem is not None and problem.code == "missing_file":
            # Validating a request does not need the policy; say which limits were used.
            print(f"note: {policy_path} not found; checking against the default limits", file=out)
            return None, 0
        assert problem is not None
        print(_format(policy_path, problem), file=out)
        return None, 1
    policy, problems = parse_policy(data)
    for p in problems:
        print(_format(policy_path, p), file=out)
    return policy, len(problems)


def _load_identities(path: str, policy: Policy | None, out: TextIO) -> int:
    """Check the identities file; how many problems were printed."""
    data, problem = _read(Path(path), MAX_IDENTITIES_BYTES)
    if data is None:
        if problem is not None and problem.code == "missing_file":
            print(f"note: {path} not found; identities not checked", file=out)
            return 0
        assert problem is not None
        print(_format(path, problem), file=out)
        return 1
    identities, problems = parse_identities(data)
    for p in problems:
        print(_format(path, p), file=out)
    unpinned = len(identities.by_login) - len(identities.ids)
    if policy is not None and policy.identities.require_id and unpinned:
        print(f"note: identities.require_id is set, and {unpinned} of the "
              f"{len(identities.by_login)} entries in {path} have no id, so they map nobody; "
              "`jitaccess identities pin` fills the ids in", file=out)
    return len(problems)


def _same_file(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run_validate(
    paths: Sequence[str],
    policy_path: str = POLICY_PATH,
    out: TextIO | None = None,
    *,
    identities_path: str | None = None,
) -> int:
    """Check request files (or directories of them) against the policy; 1 if any problem.

    The policy is checked too, and so is the identities file when `identities_path` is given.
    `policy/jitaccess.yaml` and `policy/identities.yaml`, when given, are checked as what they are.
    """
    if out is None:
        out = sys.stdout  # looked up now, not at import, so that redirections apply
    policy, count = _load_policy(policy_path, out)
    warnings = _warn(policy_path, policy, out)
    if identities_path is not None:
        count += _load_identities(identities_path, policy, out)
    checked = 0
    for given in paths:
        for path in _request_files(given):
            if _same_file(path, identities_path) or _same_file(path, policy_path):
                checked += 1  # checked above, reported once
                continue
            checked += 1
            problems: list[Problem] = []
            layout = _layout_problem(path)
            if layout is not None:
                problems.append(layout)
            kind = _kind(path)
            limit = {"request": MAX_REQUEST_BYTES, "identities": MAX_IDENTITIES_BYTES}.get(
                kind, MAX_POLICY_BYTES
            )
            data, problem = _read(Path(path), limit)
            if data is None:
                assert problem is not None
                problems.append(problem)
            elif kind == "policy":
                other, found = parse_policy(data)
                problems.extend(found)
                warnings += _warn(path, other, out)
            elif kind == "identities":
                problems.extend(parse_identities(data)[1])
            else:
                request, found = parse_request(data, policy)
                problems.extend(found)
                note = (_unchecked_folder_rules(policy, request)
                        if policy is not None and request is not None else None)
                if note is not None:
                    print(f"note: {path}: {note}", file=out)
            for p in problems:
                print(_format(path, p), file=out)
            count += len(problems)
    files = "file" if checked == 1 else "files"
    noun = "problem" if count == 1 else "problems"
    also = f", {warnings} warning{'' if warnings == 1 else 's'}" if warnings else ""
    print(f"{checked} {files} checked, {count} {noun}{also}", file=out)
    return 1 if count else 0
