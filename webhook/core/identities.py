"""`policy/identities.yaml` at organization scale, and the `identities.rule` of the policy.

The file maps GitHub logins to Google identities, `alice: alice@example.com`, or with the
account's numeric id, `alice: {email: alice@example.com, id: 583231}` (a login can be renamed
and claimed by someone else; an id cannot). It may hold 50,000 entries (2 MiB), and it is read
on every event, so parsing must cost little the first time and nothing afterwards (the
service caches the result by content).

Two readings, one result:

- **Lines first.** Nearly every file is one entry per line, in one of the two forms above, with
  comments and blank lines. Such a line means the same to YAML whatever its neighbours are, so a
  file made only of them is read line by line with one regular expression — a few microseconds
  per entry. The grammar is deliberately narrow (plain scalars of safe characters, no tabs, no
  quotes, no odd line breaks); anything else sends the whole file to the second reading.
- **YAML.** The hardened loader (`safe_yaml.load_large`: libyaml's event stream, anchors,
  aliases, tags, merge keys and duplicate keys refused), with line numbers for every problem.

Both produce the same entries and problems for the files the first accepts (a property test
compares them), so which one ran is never visible.
"""

from __future__ import annotations

import importlib
import re
import string
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from webhook.core.model import Identities, Problem
from webhook.core.problems import ProblemCode
from webhook.core.request_file import LOGIN, by_line
from webhook.core.safe_yaml import (
    TYPED_FIRST_CHARACTERS,
    YamlValue,
    decode,
    load_large,
    plain_is_text,
    show,
)

#: The largest identities file read: 50,000 people fit (about 40 bytes an entry).
MAX_IDENTITIES_BYTES = 2 * 1024 * 1024
#: Deliberately loose: one `@`, no whitespace or `:` (catches `user:alice@…`), a dot in the domain.
EMAIL = re.compile(r"[^@\s:]{1,64}@[^@\s:]+\.[^@\s:.][^@\s:]*")
#: GitHub account ids are positive integers; anything beyond 2^63 is a typo.
MAX_ACCOUNT_ID = 2**63 - 1
ENTRY_KEYS = ("email", "id")

# -- the line grammar ----------------------------------------------------------------------------
# Plain YAML scalars of characters that are never special to YAML in these positions: a login
# key at column 0, an email (it contains `@`, so no YAML 1.1 type other than text matches it),
# a decimal id without a leading zero (an int; `012` would be octal). A comment needs a space
# before its `#`, as in YAML.
_KEY = r"(?P<login>[A-Za-z0-9][A-Za-z0-9_-]*)"
_MAIL = r"[A-Za-z0-9_][A-Za-z0-9_.%+-]*@[A-Za-z0-9][A-Za-z0-9.-]*"
_ID = r"[1-9][0-9]{0,18}"
_ENTRY_LINE = re.compile(
    rf"{_KEY}: +(?P<value>"
    rf"(?P<email>{_MAIL})"
    rf"|\{{ *(?:"
    rf"email: +(?P<e1>{_MAIL}) *(?:, *id: +(?P<i1>{_ID}) *)?"
    rf"|id: +(?P<i2>{_ID}) *, *email: +(?P<e2>{_MAIL}) *"
    rf")\}}"
    rf")(?: +#.*)? *"
)
_QUIET_LINE = re.compile(r" *(?:#.*)?")
# YAML also breaks lines at CR, NEL, LS and PS; a tab may or may not separate. Such files take
# the YAML reading.
_ODD = re.compile("[\t\r\x85\u2028\u2029]")


class Entry(NamedTuple):
    """One entry as written: login, its line, the email and the id (None: not given)."""

    login: str
    line: int
    email: str
    email_line: int
    id: int | None


def _p(code: ProblemCode, message: str, line: int | None = None) -> Problem:
    return Problem(code=code, message=message, line=line)


# ------------------------------------------------------------------------------------------------
# Parsing


def parse_identities(
    data: str | bytes, *, lines_first: bool = True
) -> tuple[Identities, tuple[Problem, ...]]:
    """Parse `policy/identities.yaml`; the valid entries and every problem found.

    Logins are case-insensitive on GitHub, so two entries differing only in case are ambiguous:
    both are reported and neither is kept; so is an id given to two logins. `lines_first=False`
    skips the line reading (tests compare the two).
    """
    text, problems = decode(data, MAX_IDENTITIES_BYTES)
    if text is None:
        return Identities({}), problems
    entries = _by_lines(text) if lines_first else None
    found: list[Problem] = []
    if entries is None:
        entries = _by_yaml(text, found)
    return _build(entries, found)


def read_entries(data: str | bytes) -> tuple[list[Entry], tuple[Problem, ...]]:
    """The entries as written, in file order, with the problems of reading them (not those of
    checking them: `parse_identities` has every problem)."""
    text, problems = decode(data, MAX_IDENTITIES_BYTES)
    if text is None:
        return [], problems
    entries = _by_lines(text)
    if entries is not None:
        return entries, ()
    found: list[Problem] = []
    entries = _by_yaml(text, found)
    return entries, tuple(found)


def pinned_line(line: str, account: int) -> str | None:
    """A one-line entry rewritten with the account's id, everything else kept (login, email,
    comment); None when `line` is not a one-line entry."""
    found = _ENTRY_LINE.fullmatch(line)
    if found is None:
        return None
    email = found["email"] or found["e1"] or found["e2"]
    start, end = found.span("value")
    return f"{line[:start]}{{email: {email}, id: {account}}}{line[end:]}"


def _by_lines(text: str) -> list[Entry] | None:
    """The entries of a file made only of one-line entries, comments and blank lines; None for
    any other file."""
    if _ODD.search(text) is not None:
        return None
    entries: list[Entry] = []
    match_entry = _ENTRY_LINE.fullmatch
    resolved_first = TYPED_FIRST_CHARACTERS
    for number, line in enumerate(text.split("\n"), 1):
        found = match_entry(line)
        if found is None:
            if _QUIET_LINE.fullmatch(line) is None:
                return None
            continue
        login, email, e1, e2, i1, i2 = found.group("login", "email", "e1", "e2", "i1", "i2")
        if login[0] in resolved_first and not plain_is_text(login):
            return None  # `yes:` or `123:` is not a text key: the YAML reading says so
        account = i1 or i2
        entries.append(
            Entry(login, number, email or e1 or e2, number, int(account) if account else None)
        )
    return entries


def _by_yaml(text: str, problems: list[Problem]) -> list[Entry]:
    """The entries of the file read as (hardened) YAML, with problems for what is not one."""
    doc, loaded = load_large(text, MAX_IDENTITIES_BYTES)
    problems.extend(loaded)
    if doc is None:
        return []  # an empty file maps nobody
    if doc.kind != "mapping":
        problems.append(
            _p(
                ProblemCode.NOT_A_MAPPING,
                f"identities must be a mapping of GitHub login to email, not {doc.describe()}",
                doc.line,
            )
        )
        return []
    return list(_entries(doc.entries, problems))


def _entries(
    items: Iterable[tuple[str, int, YamlValue]], problems: list[Problem]
) -> Iterator[Entry]:
    for login, line, value in items:
        if value.is_string:
            yield Entry(login, line, str(value.scalar), value.line, None)
            continue
        if value.kind != "mapping":
            problems.append(
                _p(
                    ProblemCode.WRONG_TYPE,
                    f"the identity of {show(login)} must be an email address or "
                    f"{{email: …, id: …}}, not {value.describe()}",
                    value.line,
                )
            )
            continue
        fields: dict[str, YamlValue] = {}
        for key, key_line, field_value in value.entries:
            if key in ENTRY_KEYS:
                fields[key] = field_value
            else:
                problems.append(
                    _p(
                        ProblemCode.UNKNOWN_KEY,
                        f"unknown key {show(key)} in the entry of {show(login)}; the keys are "
                        "email, id",
                        key_line,
                    )
                )
        email = fields.get("email")
        if email is None:
            problems.append(
                _p(ProblemCode.MISSING_KEY, f"the entry of {show(login)} has no 'email'", line)
            )
            continue
        if not email.is_string:
            problems.append(
                _p(
                    ProblemCode.WRONG_TYPE,
                    f"the identity of {show(login)} must be an email address, "
                    f"not {email.describe()}",
                    email.line,
                )
            )
            continue
        account: int | None = None
        given = fields.get("id")
        if given is not None:
            if (
                given.kind != "scalar"
                or given.tag != "int"
                or not isinstance(given.scalar, int)
                or not 0 < given.scalar <= MAX_ACCOUNT_ID
            ):
                shown = show(str(given.scalar)) if given.kind == "scalar" else given.describe()
                problems.append(
                    _p(
                        ProblemCode.INVALID_ID,
                        f"the id of {show(login)} must be the account's numeric GitHub id "
                        f"(a positive whole number, e.g. 583231), not {shown}",
                        given.line,
                    )
                )
                continue
            account = given.scalar
        yield Entry(login, line, str(email.scalar), email.line, account)


def _build(
    entries: Iterable[Entry], problems: list[Problem]
) -> tuple[Identities, tuple[Problem, ...]]:
    """The mapping of the entries, checking logins, emails, and that no login or id repeats."""
    by_login: dict[str, str] = {}
    ids: dict[str, int] = {}
    seen: dict[str, tuple[int, str]] = {}  # lower-cased login -> (first line, as written)
    id_owner: dict[int, tuple[str, int]] = {}  # id -> (login, line)
    ambiguous: set[str] = set()
    # Bound once: this loop runs for every entry of a file of 50,000.
    login_ok, email_ok = LOGIN.fullmatch, EMAIL.fullmatch
    for login, line, raw_email, email_line, account in entries:
        valid = login_ok(login) is not None
        if not valid:
            problems.append(
                _p(ProblemCode.INVALID_LOGIN, f"{show(login)} is not a GitHub login", line)
            )
        email = raw_email.strip().lower()
        if len(email) > 254 or email_ok(email) is None or not email.isascii():
            problems.append(
                _p(
                    ProblemCode.INVALID_EMAIL,
                    f"the identity of {show(login)} must be a bare email address like "
                    f"alice@example.com, not {show(email)}",
                    email_line,
                )
            )
            continue
        if not valid:
            continue
        key = login.lower()
        first = seen.get(key)
        if first is not None:
            if first[1] == login:
                problems.append(
                    _p(
                        ProblemCode.DUPLICATE_KEY,
                        f"the key {show(login)} appears twice (first on line {first[0]}); "
                        "keep one",
                        line,
                    )
                )
            else:
                problems.append(
                    _p(
                        ProblemCode.DUPLICATE_LOGIN,
                        f"{show(login)} is mapped twice (logins are case-insensitive; first on "
                        f"line {first[0]})",
                        line,
                    )
                )
                ambiguous.add(key)
            continue
        if account is not None:
            owner = id_owner.get(account)
            if owner is not None:
                problems.append(
                    _p(
                        ProblemCode.DUPLICATE_ID,
                        f"the id {account} of {show(login)} is also the id of "
                        f"{show(owner[0])} (line {owner[1]}); one account has one login — "
                        "remove the stale entry",
                        line,
                    )
                )
                continue
            id_owner[account] = (login, line)
            ids[key] = account
        seen[key] = (line, login)
        by_login[key] = email
    for key in ambiguous:
        by_login.pop(key, None)
        ids.pop(key, None)
    return Identities(by_login, ids), by_line(problems)


# ------------------------------------------------------------------------------------------------
# The rule


#: Most repetitions (`+`, `*`, `{m,n}`) a rule's pattern may hold: with no repetition inside
#: another, matching a login of 39 characters then tries at most about C(43, 4) ≈ 120,000 ways.
MAX_RULE_REPEATS = 4
MAX_TEMPLATE = 200


def check_rule(match: str, template: str) -> tuple[str | None, str | None]:
    """What is wrong with a rule: (a problem of `match`, a problem of `template`), None each
    when fine. The pattern must compile and be cheap to match; the template must name only the
    pattern's groups and make an email address."""
    try:
        pattern = re.compile(match)
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        return f"is not a valid regular expression: {e}", None
    cost = _costly(match)
    if cost is not None:
        return cost, None
    return None, _template_problem(template, pattern)


def _template_problem(template: str, pattern: re.Pattern[str]) -> str | None:
    if len(template) > MAX_TEMPLATE:
        return f"has {len(template)} characters; at most {MAX_TEMPLATE}"
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        return f"is not a valid template ({e}); write groups as {{name}}"
    names: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            return (
                f"may only name the pattern's groups as {{name}}, not {show('{' + name + '}')}"
            )
        if name not in pattern.groupindex:
            groups = ", ".join(sorted(pattern.groupindex)) or "none"
            return (
                f"names the group {show(name)}, which the pattern does not have (its named "
                f"groups: {groups}); write it as (?P<{name}>…) in 'match'"
            )
        names.append(name)
    if not names:
        return "names no group of the pattern, so it would map every login to one address"
    sample = template.format_map({name: "x" for name in names})
    if EMAIL.fullmatch(sample) is None or not sample.isascii():
        return f"must make a bare email address like {{user}}@example.com, not {show(template)}"
    return None


def _costly(match: str) -> str | None:
    """Why matching `match` against a login could take very long, or None.

    Python's regular expressions backtrack: `(a+)+$` takes exponential time on `aaaa…!`, and
    bounding logins to 39 characters does not tame 2^39. Refused: a repetition inside another,
    an alternation inside a repetition, backreferences, and more than MAX_RULE_REPEATS
    repetitions in all. What is left matches a login in well under a millisecond.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        tree = parser.parse(match)
    except (ImportError, AttributeError):  # pragma: no cover - CPython 3.11+ has re._parser
        return "cannot be checked for catastrophic backtracking on this Python"
    except Exception as e:  # compiled above already; be safe with the parser's internals
        return f"cannot be checked for catastrophic backtracking ({type(e).__name__})"
    constants: Any = importlib.import_module("re._constants")
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}
    possessive = getattr(constants, "POSSESSIVE_REPEAT", None)
    if possessive is not None:
        repeats.add(possessive)
    count = 0

    def walk(items: Any, inside_repeat: bool) -> str | None:
        nonlocal count
        for op, av in items:
            if op in (constants.GROUPREF, constants.GROUPREF_EXISTS):
                return "uses a backreference; rules may not (it can take exponential time)"
            if op in repeats:
                _, most, body = av
                if most > 1:
                    if inside_repeat:
                        return (
                            "repeats a repetition, like (a+)+, which can take exponential "
                            "time; use one character class, like [a-z0-9-]+"
                        )
                    count += 1
                found = walk(body, inside_repeat or most > 1)
            elif op == constants.BRANCH:
                if inside_repeat:
                    return (
                        "repeats an alternation, like (a|b)+, which can take exponential "
                        "time; use one character class, like [ab]+"
                    )
                found = None
                for branch in av[1]:
                    found = found or walk(branch, inside_repeat)
            elif op == constants.SUBPATTERN:
                found = walk(av[-1], inside_repeat)
            elif op in (constants.ASSERT, constants.ASSERT_NOT):
                found = walk(av[1], inside_repeat)
            elif op == getattr(constants, "ATOMIC_GROUP", None):
                found = walk(av, inside_repeat)
            else:
                found = None
            if found is not None:
                return found
        return None

    problem = walk(tree, False)
    if problem is None and count > MAX_RULE_REPEATS:
        problem = (
            f"has {count} repetitions; at most {MAX_RULE_REPEATS} (each one multiplies the "
            "time a match can take)"
        )
    return problem

