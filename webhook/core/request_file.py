"""Request files (`requests/<login>/<name>.yaml`) and the shape of request PRs (README: request
file).

Pure: text in, a typed request or a list of problems out. Every rule is checked and every breach
reported, so that a requester can fix the file in one go.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from datetime import timedelta

from webhook.core.durations import format_duration, parse_duration
from webhook.core.model import (
    AccessRequest,
    ActivationSettings,
    BreakGlassSettings,
    ChangedFile,
    JustificationSettings,
    Policy,
    Problem,
    PrShape,
)
from webhook.core.problems import ProblemCode
from webhook.core.rules import check_limits
from webhook.core.safe_yaml import YamlValue, load, show

#: Request files are small; anything bigger is a mistake or an attack.
MAX_REQUEST_BYTES = 4096
MAX_JUSTIFICATION = 100

KEYS = ("project", "roles", "duration", "justification")
#: Keys a request file may have besides KEYS: `break_glass: true` asks for emergency access
#: (README: break-glass).
OPTIONAL_KEYS = ("break_glass",)
REQUESTS_DIR = "requests/"
REQUESTS_README = "requests/README.md"

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
# Role IDs: letters, digits, `_` and `.`, not starting or ending with `.` (predefined roles look
# like `roles/cloudsql.admin`, custom role IDs allow `[a-zA-Z0-9_.]{3,64}`).
_ROLE_ID = r"[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,62}[A-Za-z0-9_])?"
ROLE = re.compile(
    rf"roles/{_ROLE_ID}"
    rf"|projects/(?P<project>[a-z][a-z0-9-]{{4,28}}[a-z0-9])/roles/{_ROLE_ID}"
    rf"|organizations/[1-9][0-9]{{0,19}}/roles/{_ROLE_ID}"
)
#: Basic roles: IAM conditions cannot be attached to them, so they can never expire.
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

# GitHub logins: ASCII letters, digits and single inner hyphens, at most 39 characters; the
# accounts of an Enterprise Managed Users enterprise end in `_<shortcode>` (`bob_acme`). Checked
# before any case-insensitive comparison, so that look-alikes such as the Kelvin sign (U+212A,
# which lower-cases to `k`) cannot pass for an ASCII login.
LOGIN = re.compile(r"(?=[A-Za-z0-9_-]{1,39}\Z)[A-Za-z0-9](?:-?[A-Za-z0-9])*(?:_[A-Za-z0-9]+)?")
REQUEST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.ya?ml")

# Characters refused in a justification: controls (a newline would forge log lines and break
# the `x-goog-request-reason` header), format characters (bidi overrides and zero-width
# characters make text display differently from what it says, fooling reviewers), surrogates,
# private-use characters, and line/paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def justification_char_allowed(ch: str) -> bool:
    """Whether one character may appear in a justification."""
    return unicodedata.category(ch) not in _REFUSED_CATEGORIES


def by_line(problems: Sequence[Problem]) -> tuple[Problem, ...]:
    """Problems in file order; those without a line (missing keys) last, order otherwise kept."""
    return tuple(sorted(problems, key=lambda p: (p.line is None, p.line or 0)))


def _p(code: ProblemCode, message: str, line: int | None = None) -> Problem:
    return Problem(code=code, message=message, line=line)


def _suggest(key: str, valid: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for a typo of a valid key, or nothing."""
    close = difflib.get_close_matches(key.lower(), valid, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(
    doc: YamlValue,
    valid: Sequence[str],
    required: Sequence[str],
    where: str = "",
    *,
    listed: Sequence[str] | None = None,
) -> tuple[dict[str, YamlValue], list[Problem]]:
    """The entries of a mapping by key, with problems for unknown and missing keys.

    `listed` are the keys a problem names as the keys (default: all valid keys); a typo of any
    valid key is suggested either way."""
    problems: list[Problem] = []
    found: dict[str, YamlValue] = {}
    for key, line, value in doc.entries:
        if key in valid:
            found[key] = value
        else:
            allowed = ", ".join(valid if listed is None else listed)
            problems.append(
                _p(
                    ProblemCode.UNKNOWN_KEY,
                    f"unknown key {show(where + key)}{_suggest(key, valid)}; "
                    f"the keys are {allowed}",
                    line,
                )
            )
    for key in required:
        if key not in found:
            problems.append(_p(ProblemCode.MISSING_KEY, f"the key '{where}{key}' is missing", None))
    return found, problems


def _wrong_type(key: str, value: YamlValue, expected: str, hint: str = "") -> Problem:
    return _p(
        ProblemCode.WRONG_TYPE,
        f"'{key}' must be {expected}, not {value.describe()}{hint}",
        value.line,
    )


def _check_project(value: YamlValue) -> tuple[str | None, list[Problem]]:
    if not value.is_string:
        hint = "; put it in quotes" if value.kind == "scalar" else ""
        return None, [_wrong_type("project", value, "a project ID in text", hint)]
    project = str(value.scalar)  # exact: no silent trimming of what is used in IAM calls
    if not PROJECT_ID.fullmatch(project):
        return None, [
            _p(
                ProblemCode.INVALID_PROJECT,
                f"{show(project)} is not a valid project ID: 6 to 30 lower-case letters, digits "
                "and hyphens, starting with a letter and not ending with a hyphen",
                value.line,
            )
        ]
    return project, []


def _check_roles(
    value: YamlValue, project: str | None, activation: ActivationSettings
) -> tuple[tuple[str, ...] | None, list[Problem]]:
    if value.kind != "sequence":
        hint = "; write each role on its own line as '- roles/…'" if value.is_string else ""
        return None, [_wrong_type("roles", value, "a list of roles", hint)]
    problems: list[Problem] = []
    roles: list[str] = []
    if not value.items:
        problems.append(_p(ProblemCode.NO_ROLES, "'roles' must list at least one role", value.line))
    for item in value.items:
        if not item.is_string:
            problems.append(_wrong_type("roles", item, "a list of role names in text"))
            continue
        role = str(item.scalar)
        if role in BASIC_ROLES:
            problems.append(
                _p(
                    ProblemCode.BASIC_ROLE,
                    f"{role} is a basic role; IAM conditions cannot be applied to basic roles, so "
                    "it cannot be granted temporarily; request a predefined or custom role",
                    item.line,
                )
            )
            continue
        match = ROLE.fullmatch(role)
        if match is None:
            problems.append(
                _p(
                    ProblemCode.INVALID_ROLE,
                    f"{show(role)} is not a role name; use roles/ID, projects/PROJECT/roles/ID "
                    "or organizations/NUMBER/roles/ID",
                    item.line,
                )
            )
            continue
        owner = match.group("project")
        if owner is not None and project is not None and owner != project:
            problems.append(
                _p(
                    ProblemCode.FOREIGN_CUSTOM_ROLE,
                    f"{role} is a custom role of project {owner}, not of {project}",
                    item.line,
                )
            )
            continue
        if role in roles:
            problems.append(_p(ProblemCode.DUPLICATE_ROLE, f"{role} is listed twice", item.line))
            continue
        roles.append(role)
    if len(value.items) > activation.max_roles:
        problems.append(
            _p(
                ProblemCode.TOO_MANY_ROLES,
                f"{len(value.items)} roles requested; at most {activation.max_roles} allowed",
                value.line,
            )
        )
    return (tuple(roles) if not problems else None), problems


def _check_duration(
    value: YamlValue, activation: ActivationSettings
) -> tuple[timedelta | None, list[Problem]]:
    if not value.is_string:
        hint = f"; write {value.scalar}h or {value.scalar}m" if value.tag == "int" else ""
        expected = "a duration like 30m, 2h, 1h30m or PT2H"
        return None, [_wrong_type("duration", value, expected, hint)]
    try:
        duration = parse_duration(value.scalar)
    except ValueError as e:
        return None, [_p(ProblemCode.INVALID_DURATION, f"'duration': {e}", value.line)]
    if duration < activation.min_duration:
        return None, [
            _p(
                ProblemCode.DURATION_TOO_SHORT,
                f"the duration {format_duration(duration)} is shorter than the minimum "
                f"{format_duration(activation.min_duration)}",
                value.line,
            )
        ]
    return duration, []  # the longest allowed depends on the roles' rules: `rules.limits`


def _check_justification(value: YamlValue) -> tuple[str | None, list[Problem]]:
    """The justification's own rules; the text, unless it is no single line of visible text
    (then its form is not judged: `.` never matches a newline, don't blame the pattern). The
    pattern depends on the roles' rules: `rules.limits`."""
    if not value.is_string:
        hint = "; put it in quotes" if value.kind == "scalar" else ""
        return None, [_wrong_type("justification", value, "text", hint)]
    text = str(value.scalar).strip()
    if not text:
        return None, [
            _p(
                ProblemCode.BLANK_JUSTIFICATION,
                "'justification' must say why you need access",
                value.line,
            )
        ]
    problems: list[Problem] = []
    bad = sorted({f"U+{ord(c):04X}" for c in text if not justification_char_allowed(c)})
    if bad:
        problems.append(
            _p(
                ProblemCode.JUSTIFICATION_INVALID_CHARACTER,
                "'justification' must be a single line of visible text; it contains "
                f"{', '.join(bad[:5])}",
                value.line,
            )
        )
    if len(text) > MAX_JUSTIFICATION:
        problems.append(
            _p(
                ProblemCode.JUSTIFICATION_TOO_LONG,
                f"'justification' has {len(text)} characters; at most {MAX_JUSTIFICATION} allowed",
                value.line,
            )
        )
    return (None if bad else text), problems


def _check_break_glass(value: YamlValue) -> tuple[bool, list[Problem]]:
    if value.kind == "scalar" and value.tag == "bool" and isinstance(value.scalar, bool):
        return value.scalar, []
    return False, [_wrong_type("break_glass", value, "true or false")]


#: The limits a request is checked against when no policy is given: the documented defaults.
DEFAULT_LIMITS = Policy(scope="")

#: Limits no request file breaks: a merged request read back after the merge (to revoke its
#: access, to record a break-glass review) is taken for what it asked, whatever the policy says
#: today — a policy tightened or break-glass disabled since must not stop either.
AS_MERGED = Policy(
    scope="",
    activation=ActivationSettings(
        min_duration=timedelta(0), max_duration=timedelta(days=3650), max_roles=1000
    ),
    break_glass=BreakGlassSettings(
        enabled=True, max_duration=timedelta(days=3650),
        justification=JustificationSettings(pattern=".*", hint=""),
    ),
)


def parse_merged_request(text: str | bytes) -> AccessRequest | None:
    """A request file as it was merged, judged by its form only (`AS_MERGED`); None when it is
    no request file at all."""
    request, problems = parse_request(text, AS_MERGED)
    return request if not problems else None


def parse_request(
    text: str | bytes, settings: Policy | None = None
) -> tuple[AccessRequest | None, tuple[Problem, ...]]:
    """Parse and check a request file; the request, or None and every problem found.

    The limits of the roles' rules (`rules.limits`) are checked as far as they can be without
    Google: a role whose rule matches folders is judged once the project's ancestry is known.
    """
    policy = settings if settings is not None else DEFAULT_LIMITS
    activation = policy.activation
    doc, problems = load(text, MAX_REQUEST_BYTES)
    found_problems = list(problems)
    if doc is None:
        if not found_problems:
            found_problems.append(
                _p(
                    ProblemCode.EMPTY,
                    "the request file is empty; see requests/README.md for the format",
                )
            )
        return None, tuple(found_problems)
    if doc.kind != "mapping":
        found_problems.append(
            _p(
                ProblemCode.NOT_A_MAPPING,
                f"a request must be a mapping of {', '.join(KEYS)}, not {doc.describe()}",
                doc.line,
            )
        )
        return None, tuple(found_problems)
    listed = KEYS + OPTIONAL_KEYS if policy.break_glass.enabled else KEYS
    entries, key_problems = check_keys(doc, KEYS + OPTIONAL_KEYS, KEYS, listed=listed)
    found_problems.extend(key_problems)
    lines = {key: value.line for key, value in entries.items()}

    project: str | None = None
    roles: tuple[str, ...] | None = None
    duration: timedelta | None = None
    reason: str | None = None
    if "project" in entries:
        project, more = _check_project(entries["project"])
        found_problems.extend(more)
    if "roles" in entries:
        # Compare custom project roles with the project as written, even if it is invalid.
        written = entries["project"].scalar if "project" in entries else None
        roles, more = _check_roles(
            entries["roles"], project or (written if isinstance(written, str) else None),
            activation,
        )
        found_problems.extend(more)
    if "duration" in entries:
        duration, more = _check_duration(entries["duration"], activation)
        found_problems.extend(more)
    if "justification" in entries:
        reason, more = _check_justification(entries["justification"])
        found_problems.extend(more)
    break_glass = False
    if "break_glass" in entries:
        break_glass, more = _check_break_glass(entries["break_glass"])
        found_problems.extend(more)
    # Judged even when other keys are wrong, so that every breach is reported at once; what
    # the file does not give validly is left out (`check_limits` takes None for it).
    found_problems.extend(
        check_limits(policy, project, roles, duration, reason, break_glass=break_glass,
                     lines=lines)
    )

    if found_problems or project is None or roles is None or duration is None or reason is None:
        return None, by_line(found_problems)
    return AccessRequest(project, roles, duration, reason, break_glass, lines), ()


# --------------------------------------------------------------------------------------------
# The shape of a pull request


def _is_request_area(path: str | None) -> bool:
    return path is not None and path.startswith(REQUESTS_DIR) and path != REQUESTS_README


def is_request_area(path: str | None) -> bool:
    """Is the path under requests/ (its README aside), where request files live?"""
    return _is_request_area(path)


def revoked_paths(files: Sequence[ChangedFile]) -> tuple[str, ...]:
    """The request files a revocation PR deletes, sorted; () when the PR is no revocation PR.

    A revocation PR's only change is deleting request files (merged earlier: a file the PR can
    delete is on its base). Deleting only ever ends access, so whose files they are does not
    matter; anything else in the PR makes it an ordinary PR, judged by `check_pr_shape`.
    """
    if not files or any(f.status != "removed" or not _is_request_area(f.filename) for f in files):
        return ()
    return tuple(sorted(f.filename for f in files))


def request_path_problem(path: str, author: str | None = None) -> Problem | None:
    """Why a path is not `requests/<author>/<name>.yaml`, or None when it is."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != "requests":
        return _p(
            ProblemCode.INVALID_REQUEST_PATH,
            f"{show(path, 120)}: a request file must be requests/<your-login>/<name>.yaml",
        )
    login, name = parts[1], parts[2]
    if not LOGIN.fullmatch(login):
        return _p(
            ProblemCode.INVALID_REQUEST_PATH,
            f"{show(path, 120)}: {show(login)} is not a GitHub login directory",
        )
    if not REQUEST_NAME.fullmatch(name) or ".." in name:
        return _p(
            ProblemCode.INVALID_REQUEST_PATH,
            f"{show(path, 120)}: name the file with letters, digits, '.', '_' and '-', "
            "ending in .yaml or .yml",
        )
    if author is not None and login.lower() != author.lower():
        return _p(
            ProblemCode.WRONG_DIRECTORY,
            f"{path} is in the directory of {login}; file your request under "
            f"requests/{author}/",
        )
    return None


def in_directory_of(path: str, author: str) -> bool:
    """Is `path` under `requests/<author>/` (case-insensitive), with no empty, `.` or `..` part
    that could make it mean another directory?"""
    parts = path.split("/")
    return (
        len(parts) >= 3
        and parts[0] == "requests"
        and LOGIN.fullmatch(parts[1]) is not None
        and LOGIN.fullmatch(author) is not None
        and parts[1].lower() == author.lower()
        and all(part not in ("", ".", "..") for part in parts)
    )


def check_pr_shape(
    files: Sequence[ChangedFile],
    author: str,
    base_ref: str,
    default_branch: str,
    *,
    complete: bool = True,
) -> PrShape:
    """Whether a PR is a request PR, its request file, and what is wrong with its shape.

    `path` is the one request file the PR adds when there is exactly one candidate, even if the
    PR has other problems, so that the file's own problems can be reported in the same round.
    "copied" counts as adding a file: it is a new file, merely similar to an existing one.

    `complete` is False when GitHub listed only the first files of the diff: whatever those
    say, the PR is judged a request with a failing shape, never "not a request" (a request
    file, or anything else, may be among the files left out).
    """
    if not complete:
        return PrShape(True, None, (
            _p(
                ProblemCode.TOO_MANY_FILES,
                f"the PR changes more files than GitHub lists in one comparison (at least "
                f"{len(files)}), so it cannot be checked; a request PR adds exactly one file",
            ),
        ))
    if not any(_is_request_area(f.filename) or _is_request_area(f.previous_filename)
               for f in files):
        return PrShape(False, None, ())
    own_request = all(
        f.status in ("added", "copied") and in_directory_of(f.filename, author)
        for f in files
        if _is_request_area(f.filename) or _is_request_area(f.previous_filename)
    )
    problems: list[Problem] = []
    added: list[str] = []
    author_ok = LOGIN.fullmatch(author) is not None
    for f in files:
        if _is_request_area(f.filename) or _is_request_area(f.previous_filename):
            if f.status in ("added", "copied") and _is_request_area(f.filename):
                added.append(f.filename)
            elif f.status == "removed":
                problems.append(
                    _p(
                        ProblemCode.REQUEST_DELETED,
                        f"{f.filename}: a request PR must not delete requests",
                    )
                )
            elif f.status == "renamed":
                problems.append(
                    _p(
                        ProblemCode.REQUEST_RENAMED,
                        f"{f.previous_filename} -> {f.filename}: a request PR must not rename "
                        "files; add a new request file instead",
                    )
                )
            else:
                problems.append(
                    _p(
                        ProblemCode.REQUEST_MODIFIED,
                        f"{f.filename}: existing requests cannot be edited; "
                        "add a new request file instead",
                    )
                )
        else:
            problems.append(
                _p(
                    ProblemCode.UNRELATED_CHANGE,
                    f"{show(f.filename, 120)}: a request PR must change nothing but its request "
                    "file; open a separate PR for other changes",
                )
            )
    if len(added) > 1:
        problems.append(
            _p(
                ProblemCode.SEVERAL_REQUESTS,
                f"the PR adds {len(added)} files under requests/; add exactly one request file",
            )
        )
    path: str | None = None
    if len(added) == 1:
        problem = request_path_problem(added[0], author if author_ok else None)
        if problem is None or problem.code == ProblemCode.WRONG_DIRECTORY:
            path = added[0]
        if problem is not None:
            problems.append(problem)
        if not author_ok:
            problems.append(
                _p(
                    ProblemCode.INVALID_AUTHOR,
                    f"{show(author)} is not a GitHub login this service accepts",
                )
            )
    elif not added and not problems:
        problems.append(_p(ProblemCode.NO_REQUEST_FILE, "the PR adds no request file"))
    if base_ref != default_branch:
        problems.append(
            _p(
                ProblemCode.WRONG_BASE_BRANCH,
                f"a request PR must target {default_branch}, not {show(base_ref, 80)}",
            )
        )
    return PrShape(True, path, tuple(problems), own_request=own_request)
