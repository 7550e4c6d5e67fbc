"""`jitaccess identities pin`: fill in the numeric GitHub id of every identities entry.

Logins can be renamed and an old login claimed by someone else; an entry with the account's
`id` maps nobody but that account. This command asks GitHub's users API (`GET /users/{login}`)
who uses each login now and writes the id into the entry, rewriting only the lines it pins:
comments, order and everything else stay as they are.

It is idempotent: an entry whose id is right is left alone. An entry whose id differs from the
account using the login now is reported and left alone too — the login may have been renamed
and taken over, which a person must look into; so is a login nobody uses. Entries written over
several lines are reported with the id to add by hand.

Each entry costs one API call: 50,000 entries need 50,000, ten hours of a token's 5,000 an
hour. `--missing-only` looks up only the entries without an id; stopped by the rate limit, the
command keeps what it found, and a second run goes on from there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from webhook.core.errors import ConfigError, GitHubError
from webhook.core.identities import (
    MAX_IDENTITIES_BYTES,
    Entry,
    parse_identities,
    pinned_line,
    read_entries,
)
from webhook.core.model import Problem

NO_TOKEN = (
    "jitaccess identities pin: set GITHUB_TOKEN to a token that may read public user profiles "
    "(any personal access token will do; `gh auth token` prints yours), and GITHUB_API_URL for "
    "GitHub Enterprise Server"
)
_BOM = "\ufeff"


#: Answers the ids of logins (lower-cased; None: nobody uses it) and why it stopped early.
Lookup = Callable[[Sequence[str]], tuple[dict[str, int | None], str | None]]


class Accounts(Protocol):
    """Who uses a login on GitHub (`adapters.github_api.GitHubUsers`)."""

    def account_id(self, login: str) -> int | None: ...
    def close(self) -> None: ...


@dataclass
class PinReport:
    """What a run found: counts, and a line per entry a person must look at."""

    pinned: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the lookups stopped early (a rate limit), if they did

    @property
    def ok(self) -> bool:
        """Whether every entry is pinned and right."""
        return not self.notes and self.stopped is None


def pin_text(
    text: str, path: str, lookup: Lookup, *, missing_only: bool = False
) -> tuple[str, PinReport]:
    """The identities file with ids filled in, and the report; `lookup` answers the ids of
    logins (lower-cased; None: nobody uses it) and why it stopped early, if it did."""
    report = PinReport()
    bom = text.startswith(_BOM)
    body = text[1:] if bom else text
    entries, _ = read_entries(body)
    wanted = [e for e in entries if not (missing_only and e.id is not None)]
    found, report.stopped = lookup(sorted({e.login.lower() for e in wanted}))
    lines = body.split("\n")
    for entry in wanted:
        key = entry.login.lower()
        if key not in found:
            continue  # not looked up: the lookups stopped early
        account = found[key]
        where = f"{path}:{entry.line}"
        if account is None:
            report.notes.append(
                f"{where}: not_found: no GitHub account uses the login {entry.login} now "
                "(renamed or deleted?); the entry was left as it is"
            )
        elif entry.id == account:
            report.unchanged += 1
        elif entry.id is not None:
            report.notes.append(
                f"{where}: differs: {entry.login} is pinned to id {entry.id}, but the account "
                f"using the login now has id {account} — the login may have been renamed and "
                "taken over; the entry was left as it is"
            )
        else:
            _pin(lines, entry, account, where, report)
    out = "\n".join(lines)
    return (_BOM + out if bom else out), report


def _pin(lines: list[str], entry: Entry, account: int, where: str, report: PinReport) -> None:
    line = lines[entry.line - 1]
    ending = "\r" if line.endswith("\r") else ""
    rewritten = pinned_line(line.removesuffix("\r"), account)
    if rewritten is None or entry.line != entry.email_line:
        report.notes.append(
            f"{where}: not_one_line: {entry.login} is not written on one line; add "
            f"`id: {account}` to its entry by hand"
        )
        return
    lines[entry.line - 1] = rewritten + ending
    report.pinned += 1


def look_up(accounts: Accounts, workers: int = 8) -> Lookup:
    """A `lookup` for `pin_text` asking GitHub, a few logins at a time; a rate limit (or any
    other failure) stops it, keeping what was found."""

    def lookup(logins: Sequence[str]) -> tuple[dict[str, int | None], str | None]:
        found: dict[str, int | None] = {}
        stopped: list[str] = []

        def one(login: str) -> None:
            if stopped:
                return
            try:
                found[login] = accounts.account_id(login)
            except GitHubError as exc:
                stopped.append(str(exc))

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pin") as pool:
            list(pool.map(one, logins))
        return found, (stopped[0] if stopped else None)

    return lookup


def run_pin(
    path: str,
    *,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    missing_only: bool = False,
    accounts: Accounts | None = None,
) -> int:
    """The command: 0 when every entry is pinned and right, 1 when something needs a person,
    2 when it cannot run (no token, no file)."""
    env = os.environ if env is None else env
    out = sys.stdout if out is None else out
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as e:
        print(f"jitaccess identities pin: {path}: {e.strerror or e}", file=out)
        return 2
    identities, problems = parse_identities(raw)
    if problems:
        for p in problems:
            print(_format(path, p), file=out)
        print(f"{path}: fix these problems first; nothing was changed", file=out)
        return 1
    if accounts is None:
        token = env.get("GITHUB_TOKEN", "").strip()
        if not token:
            print(NO_TOKEN, file=out)
            return 2
        from webhook.adapters.github_api import DEFAULT_API_URL, GitHubUsers

        try:
            accounts = GitHubUsers(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL)
        except ConfigError as exc:
            print(f"jitaccess identities pin: {exc}", file=out)
            return 2
    try:
        text, report = pin_text(raw.decode("utf-8"), path, look_up(accounts),
                                missing_only=missing_only)
    finally:
        accounts.close()
    if report.pinned:
        data = text.encode("utf-8")
        if len(data) > MAX_IDENTITIES_BYTES:
            print(f"{path}: with the ids the file would have {len(data)} bytes, more than the "
                  f"{MAX_IDENTITIES_BYTES} the service reads; nothing was changed", file=out)
            return 1
        file.write_bytes(data)
    for note in report.notes:
        print(note, file=out)
    if report.stopped:
        print(f"stopped early: {report.stopped}; run the command again later to pin the rest",
              file=out)
    print(f"{path}: {report.pinned} pinned, {report.unchanged} already right, "
          f"{len(report.notes)} to look at ({len(identities.by_login)} entries)", file=out)
    return 0 if report.ok else 1


def _format(path: str, problem: Problem) -> str:
    where = f"{path}:{problem.line}" if problem.line is not None else path
    return f"{where}: {problem.code}: {problem.message}"
