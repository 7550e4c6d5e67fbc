"""Checks that rendered markdown holds nothing GitHub would turn into a mention, a link or a
cross-reference outside code spans (where GitHub finds none)."""

from __future__ import annotations

import re

_RUN = re.compile(r"`+")

#: What GitHub autolinks in plain text, as it matches it (without the zero-width joiner that
#: render.py inserts after each trigger).
AUTOLINKS = {
    "mention": re.compile(r"(?<![A-Za-z0-9`])@[A-Za-z0-9]"),
    "e-mail": re.compile(r"[A-Za-z0-9._+-]@[A-Za-z0-9-]+\.[A-Za-z]"),
    "commit": re.compile(r"[A-Za-z0-9._-]@[0-9a-f]{7}"),
    "issue": re.compile(r"#[0-9]"),
    "GH-N": re.compile(r"(?<![A-Za-z0-9])GH-[0-9]", re.IGNORECASE),
    "URL": re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://"),
    "www": re.compile(r"(?<![A-Za-z0-9])www\.", re.IGNORECASE),
    "HTML": re.compile(r"<(?!/?sub>)[A-Za-z!/?]"),
}


def outside_code(markdown: str) -> str:
    """`markdown` with every inline code span replaced by a space, as CommonMark finds them: a
    run of backticks not escaped by a backslash opens a span that the next run of the same
    length closes; a run without a closing one is literal text."""
    out: list[str] = []
    i = 0
    while True:
        m = _RUN.search(markdown, i)
        if m is None:
            out.append(markdown[i:])
            return "".join(out)
        out.append(markdown[i:m.start()])
        backslashes = len(markdown[:m.start()]) - len(markdown[:m.start()].rstrip("\\"))
        run = m.group(0)
        if backslashes % 2:  # an escaped backtick is literal; the rest of the run may open
            out.append("`")
            i = m.start() + 1
            continue
        close = next(
            (c for c in _RUN.finditer(markdown, m.end()) if len(c.group(0)) == len(run)), None
        )
        if close is None:
            out.append(run)
            i = m.end()
            continue
        out.append(" ")
        i = close.end()


def live_autolinks(markdown: str, *, allowed_mentions: tuple[str, ...] = ()) -> list[str]:
    """What GitHub would autolink in `markdown` outside code spans (the first line, a hidden
    marker, excepted), apart from the mentions of `allowed_mentions` made on purpose."""
    text = outside_code(markdown.split("\n", 1)[1] if "\n" in markdown else "")
    for login in allowed_mentions:
        text = re.sub(rf"(?<![A-Za-z0-9])@{re.escape(login)}(?![A-Za-z0-9-])", " ", text)
    found = []
    for kind, pattern in AUTOLINKS.items():
        found += [f"{kind}: {text[max(0, m.start() - 20):m.end() + 20]!r}"
                  for m in pattern.finditer(text)]
    return found
