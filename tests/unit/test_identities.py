"""`policy/identities.yaml` at scale and `identities:` in the policy: entries with account ids,
the login rule, require_id, problems with their lines, and the two readings agreeing."""

from __future__ import annotations

import random

import pytest

from webhook.core import identities as reader
from webhook.core.identities import MAX_IDENTITIES_BYTES, check_rule, parse_identities
from webhook.core.model import Identities, IdentityRule, IdentitySettings
from webhook.core.policy import parse_policy
from webhook.core.request_file import LOGIN

SCOPE = "scope: organizations/1\n"


def codes(text: str) -> list[tuple[str, int | None]]:
    return [(p.code, p.line) for p in parse_identities(text)[1]]


def both(text: str) -> tuple[Identities, tuple[object, ...]]:
    """Parse with the line reading and with YAML; they must agree."""
    fast = parse_identities(text)
    slow = parse_identities(text, lines_first=False)
    assert fast == slow, text
    return fast


# -- entries ------------------------------------------------------------------------------------


def test_every_entry_form() -> None:
    text = """\
# people
alice: alice@example.com
bob: {email: bob@example.com, id: 583231}
carol: {id: 9919, email: Carol@Example.com}   # ids first is fine
dave:
  email: dave@example.com
  id: 4242
erin: {email: erin@example.com}
"""
    identities, problems = both(text)
    assert problems == ()
    assert identities == Identities(
        {
            "alice": "alice@example.com",
            "bob": "bob@example.com",
            "carol": "carol@example.com",
            "dave": "dave@example.com",
            "erin": "erin@example.com",
        },
        {"bob": 583231, "carol": 9919, "dave": 4242},
    )


def test_one_line_entries_take_the_line_reading() -> None:
    text = (
        "\ufeff# BOM, comments, CRLF-free lines\n\n"
        "alice: alice@example.com\n"
        "bob_acme: {email: bob+jit@example.com, id: 1}  # EMU login\n"
        "   # indented comment\n"
    )
    assert reader._by_lines(text.lstrip("\ufeff")) is not None
    identities, problems = both(text)
    assert problems == ()
    assert identities.ids == {"bob_acme": 1}


@pytest.mark.parametrize(
    "line",
    [
        "alice:\n  email: a@example.com\n",  # block mapping
        "'alice': a@example.com\n",  # quoted key
        "alice: 'a@example.com'\n",  # quoted value
        "alice: a@example.com\r\nbob: b@example.com\r\n",  # CRLF
        "alice:\ta@example.com\n",  # tab
        "---\nalice: a@example.com\n",  # document start
        "yes: a@example.com\n",  # a key YAML reads as a boolean
        "alice: {email: a@example.com, id: 012}\n",  # octal in YAML 1.1
    ],
)
def test_anything_else_takes_the_yaml_reading(line: str) -> None:
    assert reader._by_lines(line) is None
    both(line)


# -- problems, with their lines -----------------------------------------------------------------


def test_problems_name_their_lines() -> None:
    text = """\
alice: {email: alice@example.com, id: 0}
bob: {email: bob@example.com, id: -3}
carol: {email: carol@example.com, id: '77'}
dave: {email: dave@example.com, id: 1.5}
erin: {emial: erin@example.com}
frank: {email: frank@example.com, id: 5, name: Frank}
gina: [gina@example.com]
hank: {email: 42}
ivan: {email: ivan@example.com, id: 5}
"""
    identities, problems = both(text)
    assert [(p.code, p.line) for p in problems] == [
        ("invalid_id", 1),
        ("invalid_id", 2),
        ("invalid_id", 3),
        ("invalid_id", 4),
        ("unknown_key", 5),
        ("missing_key", 5),
        ("unknown_key", 6),
        ("wrong_type", 7),
        ("wrong_type", 8),
        ("duplicate_id", 9),
    ]
    assert problems[0].message == (
        "the id of 'alice' must be the account's numeric GitHub id (a positive whole number, "
        "e.g. 583231), not '0'"
    )
    assert problems[-1].message == (
        "the id 5 of 'ivan' is also the id of 'frank' (line 6); one account has one login — "
        "remove the stale entry"
    )
    assert identities.by_login == {"frank": "frank@example.com"}


@pytest.mark.parametrize("lines_first", [True, False])
def test_two_entries_for_one_login_are_an_error(lines_first: bool) -> None:
    text = "alice: a1@example.com\nbob: b@example.com\nalice: a2@example.com\nBob: c@example.com\n"
    identities, problems = parse_identities(text, lines_first=lines_first)
    assert [(p.code, p.line) for p in problems] == [("duplicate_key", 3), ("duplicate_login", 4)]
    assert problems[0].message == "the key 'alice' appears twice (first on line 1); keep one"
    assert "bob" not in identities.by_login  # ambiguous: neither is kept


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("alice: &a alice@example.com\nbob: *a\n", "yaml_anchor", 1),
        ("alice: !!str alice@example.com\n", "yaml_tag", 1),
        ("base: &b {email: x@example.com}\nalice:\n  <<: *b\n", "yaml_anchor", 1),
        ("alice: {<<: {email: x@example.com}}\n", "yaml_merge_key", 1),
        ("alice: a@example.com\n---\nbob: b@example.com\n", "multiple_documents", 2),
        ("alice: " + "[" * 20 + "]" * 20 + "\n", "too_deep", 1),
        ("alice: a@example.com\n  bob: b\n", "yaml_syntax", 2),
        ("alice:\n\t- a@example.com\n", "yaml_syntax", 2),
        ("- alice\n", "not_a_mapping", 1),
    ],
)
def test_the_yaml_hardening_holds(text: str, code: str, line: int) -> None:
    identities, problems = parse_identities(text)
    assert identities == Identities({})
    assert (problems[0].code, problems[0].line) == (code, line), problems


def test_a_tab_is_explained() -> None:
    (problem,) = parse_identities("alice:\n\t- a@example.com\n")[1]
    assert "a tab cannot indent or separate YAML" in problem.message


def test_size_limit() -> None:
    ok = "# x\n" * (MAX_IDENTITIES_BYTES // 4)
    assert parse_identities(ok) == (Identities({}), ())
    assert codes(ok + "#") == [("too_large", None)]


# -- the two readings agree ---------------------------------------------------------------------

LINES = [
    "alice: alice@example.com",
    "Alice: other@example.com",
    "bob: {email: bob@example.com, id: 12}",
    "carol: {id: 13, email: carol@example.com}",
    "dave: {email: dave@example.com}",
    "erin: erin@example.com # note",
    "frank: frank@example.com#not-a-comment",
    "gina:  {  email:  gina@example.com ,  id:  14  }",
    "hank: {email: hank@example.com, id: 12}",
    "yes: yes@example.com",
    "123: n@example.com",
    "0x1f: hex@example.com",
    "null: null@example.com",
    "2026-01-01: date@example.com",
    "-x: dash@example.com",
    "a--b: dashes@example.com",
    "bob_acme: emu@example.com",
    "x_: bad@example.com",
    "ivan: user:ivan@example.com",
    "judy: judy@example",
    "kim: {email: kim@example.com, id: 0}",
    "leo: {email: leo@example.com, id: 99999999999999999999}",
    "mia: m%+ia@exa-mple.com",
    "# comment",
    "",
    "   ",
    "nora:",
    "omar: [omar@example.com]",
]


@pytest.mark.parametrize("seed", range(40))
def test_the_line_reading_agrees_with_yaml(seed: int) -> None:
    rng = random.Random(seed)
    text = "\n".join(rng.choice(LINES) for _ in range(rng.randint(1, 12))) + "\n"
    both(text)


# -- mapping with ids, require_id and the rule --------------------------------------------------

PINNED = Identities(
    {"alice": "alice@example.com", "bob": "bob@example.com"}, {"alice": 100}
)


def test_an_entry_with_an_id_maps_only_that_account() -> None:
    assert PINNED.for_accounts({"Alice": 100}).email_for("alice") == "alice@example.com"
    impostor = PINNED.for_accounts({"alice": 666})
    assert impostor.email_for("alice") is None
    assert impostor.why_unmapped("Alice") == (
        "login @Alice is mapped to an id that is not this account's — the login may have been "
        "renamed"
    )
    unknown = PINNED.for_accounts({"alice": None})
    assert unknown.email_for("alice") is None
    assert PINNED.email_for("alice") is None  # no account seen: an id cannot be checked
    assert PINNED.email_for("bob") == "bob@example.com"  # no id given: the login is trusted


def test_require_id_maps_only_entries_with_an_id() -> None:
    strict = PINNED.for_accounts({"alice": 100, "bob": 7})
    strict = Identities(strict.by_login, strict.ids, IdentitySettings(require_id=True),
                        strict.accounts)
    assert strict.email_for("alice") == "alice@example.com"
    assert strict.email_for("bob") is None
    assert "the entry has no `id`, and identities.require_id is set" in (
        strict.why_unmapped("bob") or ""
    )
    assert strict.logins_for("bob@example.com") == ()
    assert strict.logins_for("alice@example.com") == ("alice",)


def test_the_rule_maps_logins_without_an_entry() -> None:
    rule = IdentityRule("^(?P<user>[a-z0-9-]+)_acme$", "{user}@acme.com")
    mapped = Identities({"bob_acme": "robert@example.com"}, settings=IdentitySettings(rule=rule))
    assert mapped.email_for("Alice_ACME") == "alice@acme.com"
    assert mapped.email_for("bob_acme") == "robert@example.com"  # an entry wins
    assert mapped.email_for("alice") is None
    assert mapped.why_unmapped("alice") == (
        "no entry in policy/identities.yaml, and the login does not fit identities.rule"
    )
    assert mapped.email_for("a" * 35 + "_acme") is None  # longer than a GitHub login
    assert mapped.logins_for("alice@acme.com") == ()  # the rule is not inverted


def test_the_reverse_index_is_built_once_and_shared_by_views() -> None:
    identities = Identities({f"u{i}": "same@example.com" for i in range(5)})
    view = identities.for_accounts({"u1": 1})
    assert view.logins_for("SAME@example.com") == ("u0", "u1", "u2", "u3", "u4")
    assert identities._index is view._index and identities._index.logins is not None


# -- identities: in the policy ------------------------------------------------------------------


def policy_codes(text: str) -> list[tuple[str, int | None, str]]:
    return [(p.code, p.line, p.message) for p in parse_policy(SCOPE + text)[1]]


def test_the_identities_section() -> None:
    policy, problems = parse_policy(
        SCOPE
        + "identities:\n  rule: {match: '^(?P<user>[a-z]+)_acme$', email: '{user}@acme.com'}\n"
    )
    assert problems == ()
    assert policy is not None
    assert policy.identities == IdentitySettings(
        rule=IdentityRule("^(?P<user>[a-z]+)_acme$", "{user}@acme.com")
    )
    policy, _ = parse_policy(SCOPE + "identities:\n  require_id: true\n")
    assert policy is not None and policy.identities == IdentitySettings(require_id=True)
    policy, _ = parse_policy(SCOPE)
    assert policy is not None and policy.identities == IdentitySettings()


@pytest.mark.parametrize(
    ("section", "code", "line", "phrase"),
    [
        ("  rule: {match: '(?P<user>[a-z', email: '{user}@acme.com'}\n", "invalid_pattern", 3,
         "'identities.rule.match' is not a valid regular expression"),
        ("  rule: {match: '(?P<user>[a-z]+)', email: '{name}@acme.com'}\n", "invalid_rule", 3,
         "names the group 'name', which the pattern does not have (its named groups: user)"),
        ("  rule: {match: '(?P<user>[a-z]+)', email: '{user!r}@acme.com'}\n", "invalid_rule", 3,
         "may only name the pattern's groups as {name}"),
        ("  rule: {match: '(?P<user>[a-z]+)', email: 'all@acme.com'}\n", "invalid_rule", 3,
         "names no group of the pattern"),
        ("  rule: {match: '(?P<user>[a-z]+)', email: '{user}'}\n", "invalid_rule", 3,
         "must make a bare email address"),
        ("  rule: {match: '(?P<user>[a-z]+)', email: '{user'}\n", "invalid_rule", 3,
         "is not a valid template"),
        ("  rule: {match: '(?P<user>[a-z]+)'}\n", "missing_key", 3,
         "the key 'identities.rule.email' is missing"),
        ("  rule: {match: 'x', email: 'a@b.com', domain: x}\n", "unknown_key", 3,
         "unknown key 'identities.rule.domain'"),
        ("  rule: '^(.*)$'\n", "wrong_type", 3, "'identities.rule' must be a mapping"),
        ("  require_id: 'yes'\n", "wrong_type", 3, "'identities.require_id' must be true or"),
        ("  require_ids: true\n", "unknown_key", 3, "did you mean 'require_id'?"),
        ("  require_id: true\n  rule: {match: '(?P<u>[a-z]+)', email: '{u}@acme.com'}\n",
         "invalid_rule", 4, "only entries with an id map anyone; remove one"),
    ],
)
def test_identities_section_problems(section: str, code: str, line: int, phrase: str) -> None:
    [(got_code, got_line, message)] = policy_codes("identities:\n" + section)
    assert (got_code, got_line) == (code, line)
    assert phrase in message, message


@pytest.mark.parametrize(
    ("pattern", "phrase"),
    [
        ("(?P<user>a+)+_acme", "repeats a repetition"),
        ("(?P<user>(?:[a-z]+-?)*)_acme", "repeats a repetition"),
        ("(?P<user>(?:a|aa)+)", "repeats an alternation"),
        ("(?P<user>(?:[a-z]+)?)+", "repeats a repetition"),
        ("(?P<user>a)\\1", "backreference"),
        ("(?P<user>[a-z]+)(?(user)x|y)", "backreference"),
        ("(?P<user>a*b*c*d*e*)", "has 5 repetitions; at most 4"),
    ],
)
def test_patterns_that_can_backtrack_catastrophically_are_refused(
    pattern: str, phrase: str
) -> None:
    problem, _ = check_rule(pattern, "{user}@acme.com")
    assert problem is not None and phrase in problem, problem


def test_an_allowed_pattern_stays_cheap_on_the_longest_login() -> None:
    # The worst this guard lets through: four overlapping repetitions, then a failure.
    pattern = "(?P<user>[a-z]*[a-z]*[a-z]*[a-z]*)_acme"
    assert check_rule(pattern, "{user}@acme.com") == (None, None)
    rule = IdentityRule(pattern, "{user}@acme.com")
    assert rule.apply("a" * 39) is None  # returns: at most about 10^5 steps


def test_emu_logins_are_logins() -> None:
    assert LOGIN.fullmatch("bob_acme") and LOGIN.fullmatch("bob-smith_acme1")
    for bad in ("bob_", "_bob", "bob__acme", "bob_acme_x", "b" * 35 + "_acme"):
        assert LOGIN.fullmatch(bad) is None, bad


def test_an_id_too_long_to_be_a_number_is_a_problem_not_a_crash() -> None:
    # Python refuses to convert decimals of more than 4,300 digits; the reader must not.
    text = "alice: {email: alice@example.com, id: " + "9" * 5000 + "}\n"
    identities, problems = parse_identities(text.encode())
    assert [(p.code, p.line) for p in problems] == [("invalid_id", 1)]
