"""Hardened YAML reading for files that come from pull requests and the policy directory.

Only a small, boring subset of YAML is accepted: one document of mappings, sequences and plain
scalars. Everything clever is refused with a problem rather than interpreted: anchors and aliases
(billion-laughs expansion, and values that silently change in two places), merge keys `<<`,
explicit tags (`!!python/object` and friends), duplicate keys (the last one would silently win),
several documents, deep nesting. Nesting is checked on the event stream *before* the recursive
composer runs, and the scan stops at the first too-deep level, so that neither a RecursionError
nor PyYAML's quadratic handling of long runs of `[` can be provoked.

The result keeps line numbers so that problems can point at the offending line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, cast

import yaml

from webhook.core.model import Problem

#: Deepest nesting of mappings and sequences accepted; request and policy files need 2-3.
MAX_DEPTH = 16
#: Longest decimal turned into an int (Python refuses longer ones by default: 4,300 digits).
_MAX_INT_DIGITS = 4000

_BOM = "\ufeff"
# C0 controls except tab/LF/CR, DEL, C1 controls except NEL, surrogates, non-characters:
# YAML forbids them, and in a request they could only serve to hide something.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")

Kind = Literal["scalar", "sequence", "mapping"]


@dataclass(frozen=True)
class YamlValue:
    """One node of a parsed document, with its 1-based line.

    `tag` is the YAML type of a scalar (`str`, `int`, `float`, `bool`, `null`, `timestamp`, …);
    `scalar` its Python value. Mappings keep their entries in order as (key, key line, value).
    """

    kind: Kind
    line: int
    tag: str = ""
    scalar: object = None
    items: tuple[YamlValue, ...] = ()
    entries: tuple[tuple[str, int, YamlValue], ...] = ()

    @property
    def is_string(self) -> bool:
        """Whether this is a scalar that YAML reads as a string."""
        return self.kind == "scalar" and self.tag == "str"

    def describe(self) -> str:
        """A person-friendly name of this value's type, for error messages."""
        if self.kind == "mapping":
            return "a mapping"
        if self.kind == "sequence":
            return "a list"
        return {
            "str": "text",
            "int": "a number",
            "float": "a decimal number",
            "bool": "a yes/no value",
            "null": "nothing",
            "timestamp": "a date",
        }.get(self.tag, f"a YAML {self.tag}")


def _problem(code: str, message: str, line: int | None = None) -> Problem:
    return Problem(code=code, message=message, line=line)


def _line_of(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return None if mark is None else int(mark.line) + 1


def _syntax_problem(error: yaml.YAMLError) -> Problem:
    """A requester-friendly rendering of a PyYAML error."""
    problem = str(getattr(error, "problem", None) or "the file is not valid YAML")
    if "'\\t'" in problem:
        message = "not valid YAML: a tab cannot indent or separate YAML; use spaces"
    elif "mapping values are not allowed" in problem:
        message = (
            f"not valid YAML: {problem}; put values that contain ': ' in quotes, "
            "e.g. justification: \"INC-1: restore\""
        )
    else:
        message = f"not valid YAML: {problem}"
    return _problem("yaml_syntax", message, _line_of(error))


def decode(data: str | bytes, max_bytes: int) -> tuple[str | None, tuple[Problem, ...]]:
    """Size-check and decode a file; a leading UTF-8 byte order mark is accepted and dropped.

    The BOM is tolerated because common Windows editors write it and it carries no meaning in a
    UTF-8 file; anywhere else in the text it is an invisible character and is refused where
    text is checked.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        return None, (_problem("not_text", "expected the text of a file"),)
    if len(raw) > max_bytes:
        return None, (
            _problem("too_large", f"the file has {len(raw)} bytes; at most {max_bytes} allowed"),
        )
    if isinstance(data, str):
        text = data
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            return None, (
                _problem("not_utf8", "the file is not valid UTF-8 text; save it as UTF-8", line),
            )
    if text.startswith(_BOM):
        text = text[1:]
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        return None, (
            _problem(
                "control_character",
                f"the file contains the control character U+{ord(bad.group()):04X}; remove it",
                line,
            ),
        )
    return text, ()


class _EventGuard:
    """The hardening of the event stream, checked one event at a time.

    Refuses anchors, aliases, tags, several documents and deep nesting; `stop` is set once the
    scan must go no further (a second document, or one level too deep).
    """

    def __init__(self) -> None:
        self.depth = 0
        self.documents = 0
        self.stop = False

    def check(self, event: yaml.Event, problems: list[Problem]) -> None:
        """Append the problems of one event to `problems`."""
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                problems.append(
                    _problem(
                        "multiple_documents",
                        "the file must hold one YAML document; remove the '---' separator",
                        line,
                    )
                )
                self.stop = True
        elif isinstance(event, yaml.AliasEvent):
            problems.append(
                _problem(
                    "yaml_alias",
                    f"YAML aliases (*{event.anchor}) are not allowed; write the value out",
                    line,
                )
            )
        elif isinstance(event, yaml.NodeEvent):
            if event.anchor is not None:
                problems.append(
                    _problem(
                        "yaml_anchor",
                        f"YAML anchors (&{event.anchor}) are not allowed; write values out",
                        line,
                    )
                )
            tag = getattr(event, "tag", None)
            if tag is not None:
                problems.append(
                    _problem(
                        "yaml_tag",
                        f"YAML tags ({tag}) are not allowed; write plain values",
                        line,
                    )
                )
            if isinstance(event, yaml.CollectionStartEvent):
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    problems.append(
                        _problem(
                            "too_deep",
                            f"the YAML is nested more than {MAX_DEPTH} levels deep",
                            line,
                        )
                    )
                    self.stop = True
        elif isinstance(event, yaml.CollectionEndEvent):
            self.depth -= 1


def _scan_events(text: str) -> tuple[Problem, ...]:
    """Refuse anchors, aliases, tags, several documents and deep nesting, from the event stream."""
    problems: list[Problem] = []
    guard = _EventGuard()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            guard.check(event, problems)
            if guard.stop:
                break
    except yaml.YAMLError as e:
        problems.append(_syntax_problem(e))
    return tuple(problems)


def _convert(
    node: yaml.Node, constructor: yaml.SafeLoader, problems: list[Problem]
) -> YamlValue:
    """Our own tree from a composed node; depth is already bounded by `_scan_events`."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode):
        items = tuple(_convert(child, constructor, problems) for child in node.value)
        return YamlValue("sequence", line, items=items)
    if isinstance(node, yaml.MappingNode):
        entries: list[tuple[str, int, YamlValue]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            key = _convert(key_node, constructor, problems)
            if key.kind == "scalar" and key.tag == "merge":
                problems.append(
                    _problem("yaml_merge_key", "YAML merge keys (<<) are not allowed", key_line)
                )
                continue
            if not key.is_string:
                problems.append(
                    _problem(
                        "invalid_key",
                        f"keys must be text; found {key.describe()} "
                        "(put it in quotes if it is meant as text)",
                        key_line,
                    )
                )
                continue
            name = str(key.scalar)
            if name in seen:
                problems.append(
                    _problem(
                        "duplicate_key",
                        f"the key {show(name)} appears twice (first on line {seen[name]}); "
                        "keep one",
                        key_line,
                    )
                )
                continue
            seen[name] = key_line
            entries.append((name, key_line, _convert(value_node, constructor, problems)))
        return YamlValue("mapping", line, entries=tuple(entries))
    assert isinstance(node, yaml.ScalarNode)
    tag = str(node.tag).rsplit(":", 1)[-1]
    if tag == "str":
        return YamlValue("scalar", line, tag="str", scalar=str(node.value))
    try:
        value: object = constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, OverflowError, TypeError):
        value = str(node.value)  # e.g. `2026-02-30` as a timestamp: keep the text, flag the type
    return YamlValue("scalar", line, tag=tag, scalar=value)


def load(data: str | bytes, max_bytes: int) -> tuple[YamlValue | None, tuple[Problem, ...]]:
    """Parse one hardened YAML document; `(None, ())` for an empty document."""
    text, problems = decode(data, max_bytes)
    if text is None:
        return None, problems
    problems = _scan_events(text)
    if problems:
        return None, problems
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        return None, (_syntax_problem(e),)
    if node is None:
        return None, ()
    found: list[Problem] = []
    value = _convert(node, yaml.SafeLoader(""), found)
    if value.kind == "scalar" and value.tag == "null":
        return None, tuple(found)
    return value, tuple(found)


#: libyaml's parser, written in C, when PyYAML was built with it (the wheels are): it reads an
#: identities file of 50,000 entries in a fraction of the pure-Python parser's time.
_FAST_LOADER: type[yaml.SafeLoader] = (
    getattr(yaml, "CSafeLoader", yaml.SafeLoader) if yaml.__with_libyaml__ else yaml.SafeLoader
)
_STR = "tag:yaml.org,2002:str"
_FIRST_CHARS = frozenset(yaml.resolver.Resolver.yaml_implicit_resolvers)
#: First characters of the plain scalars YAML may read as something other than text (`yes`,
#: `null`, `12`, `~`…): any other plain scalar is text.
TYPED_FIRST_CHARACTERS = _FIRST_CHARS
#: The implicit typing of plain scalars (`yes` is a bool): reads only class-level tables, so one
#: resolver serves every thread.
_RESOLVE = cast(Callable[..., str], yaml.resolver.Resolver().resolve)


class _EventSource(Protocol):
    """What `load_large` needs of a PyYAML loader: its events, then cleaning up."""

    def get_event(self) -> yaml.Event: ...
    def dispose(self) -> None: ...


def _line_of_mark(mark: object) -> int:
    """The 1-based line of an event's mark (libyaml's and PyYAML's marks alike)."""
    return int(getattr(mark, "line", 0)) + 1


_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_NEW = object.__new__


def _leaf(line: int, tag: str, value: object) -> YamlValue:
    """`YamlValue("scalar", line, tag=tag, scalar=value)`, made without the dataclass's
    `__init__` (a frozen dataclass sets each field through `object.__setattr__`): an identities
    file has a hundred thousand of them, and this takes less than half the time."""
    made: YamlValue = _NEW(YamlValue)
    made.__dict__.update(kind="scalar", line=line, tag=tag, scalar=value, items=(), entries=())
    return made


class _Frame:
    """A mapping or sequence being read from the event stream."""

    __slots__ = ("kind", "line", "items", "entries", "seen", "key", "skip")

    def __init__(self, kind: Kind, line: int) -> None:
        self.kind = kind
        self.line = line
        self.items: list[YamlValue] = []
        self.entries: list[tuple[str, int, YamlValue]] = []
        self.seen: dict[str, int] = {}
        self.key: tuple[str, int] | None = None  # the key waiting for its value
        self.skip = False  # the value waiting is that of a refused key


def load_large(
    data: str | bytes, max_bytes: int, *, loader: type[yaml.SafeLoader] | None = None
) -> tuple[YamlValue | None, tuple[Problem, ...]]:
    """`load` for large files (the identities): the same document, hardening and problems,
    read in one pass over the event stream of libyaml's C parser where available.

    `load` scans the events, then composes nodes and converts them, all in pure Python: fine for
    a request file, seconds for 50,000 entries. Here the tree is built from the events as they
    come. Line numbers come with the events, so problems still point at their lines; only the
    wording of syntax errors is libyaml's. `loader` chooses the parser (tests compare both).
    """
    text, problems = decode(data, max_bytes)
    if text is None:
        return None, problems
    found: list[Problem] = []
    refused: list[Problem] = []
    guard = _EventGuard()
    resolve = _RESOLVE
    constructor = yaml.SafeLoader("")
    stack: list[_Frame] = []
    root: YamlValue | None = None

    def add(value: YamlValue) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        if top.kind == "sequence":
            top.items.append(value)
        elif top.key is None and not top.skip:
            _take_key(top, value, found)
        elif top.skip:
            top.skip = False
        else:
            name, key_line = top.key  # type: ignore[misc]
            top.key = None
            top.entries.append((name, key_line, value))

    parser = cast(_EventSource, (loader or _FAST_LOADER)(text))
    get_event = parser.get_event
    first_chars = _FIRST_CHARS
    try:
        while True:
            event = get_event()
            kind = type(event)
            if kind is yaml.StreamEndEvent:
                break
            # The guard sees only what could be refused (nearly no event of a sound file): the
            # common events are checked inline, where a call per event would double the cost.
            if kind is yaml.ScalarEvent or kind in _STARTS:
                unusual = (
                    event.anchor is not None  # type: ignore[attr-defined]
                    or event.tag is not None  # type: ignore[attr-defined]
                    or (kind is not yaml.ScalarEvent and len(stack) >= MAX_DEPTH)
                )
            else:
                unusual = kind is yaml.AliasEvent or kind is yaml.DocumentStartEvent
            if unusual or refused:
                if not refused:
                    guard.depth = len(stack)
                guard.check(event, refused)
                if guard.stop:
                    break
                continue  # once refused, only more refusals are of interest
            if kind is yaml.ScalarEvent:
                assert isinstance(event, yaml.ScalarEvent)
                value = event.value
                if not event.implicit[0] or (value and value[0] not in first_chars):
                    add(_leaf(_line_of_mark(event.start_mark), "str", value))
                elif value.isdigit() and value.isascii() and (value[0] != "0" or value == "0"):
                    # A plain decimal like an account id: an int for YAML 1.1 (`012` is octal).
                    # Past Python's 4,300-digit conversion limit it stays text, typed int, as
                    # `load` keeps it: a problem for the reader, never a crash.
                    number: object = int(value) if len(value) <= _MAX_INT_DIGITS else value
                    add(_leaf(_line_of_mark(event.start_mark), "int", number))
                else:
                    add(_scalar(event, resolve, constructor))
            elif kind is yaml.MappingStartEvent:
                stack.append(_Frame("mapping", _line_of_mark(event.start_mark)))
            elif kind is yaml.SequenceStartEvent:
                stack.append(_Frame("sequence", _line_of_mark(event.start_mark)))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                add(
                    YamlValue("mapping", frame.line, entries=tuple(frame.entries))
                    if frame.kind == "mapping"
                    else YamlValue("sequence", frame.line, items=tuple(frame.items))
                )
    except yaml.YAMLError as e:
        return None, (*refused, _large_syntax_problem(e, text))
    finally:
        parser.dispose()
    if refused:
        return None, tuple(refused)
    if root is None or (root.kind == "scalar" and root.tag == "null"):
        return None, tuple(found)
    return root, tuple(found)


def _take_key(frame: _Frame, key: YamlValue, problems: list[Problem]) -> None:
    """A mapping key from the stream: kept, or refused (its value is then skipped)."""
    if key.kind == "scalar" and key.tag == "merge":
        problems.append(
            _problem("yaml_merge_key", "YAML merge keys (<<) are not allowed", key.line)
        )
        frame.skip = True
        return
    if not key.is_string:
        problems.append(
            _problem(
                "invalid_key",
                f"keys must be text; found {key.describe()} "
                "(put it in quotes if it is meant as text)",
                key.line,
            )
        )
        frame.skip = True
        return
    name = str(key.scalar)
    first = frame.seen.get(name)
    if first is not None:
        problems.append(
            _problem(
                "duplicate_key",
                f"the key {show(name)} appears twice (first on line {first}); keep one",
                key.line,
            )
        )
        frame.skip = True
        return
    frame.seen[name] = key.line
    frame.key = (name, key.line)


def _scalar(
    event: yaml.ScalarEvent, resolve: Callable[..., str], constructor: yaml.SafeLoader
) -> YamlValue:
    """A scalar from the stream, typed as the composer would type it (tags are refused)."""
    line = _line_of_mark(event.start_mark)
    value = event.value
    plain = event.implicit[0]
    if not plain or (value and value[0] not in _FIRST_CHARS):
        return YamlValue("scalar", line, tag="str", scalar=value)
    tag = resolve(yaml.ScalarNode, value, (True, False))
    if tag == _STR:
        return YamlValue("scalar", line, tag="str", scalar=value)
    node = yaml.ScalarNode(tag, value, style=event.style)
    try:
        scalar: object = constructor.construct_object(node)
    except (yaml.YAMLError, ValueError, OverflowError, TypeError):
        scalar = value
    return YamlValue("scalar", line, tag=tag.rsplit(":", 1)[-1], scalar=scalar)


def plain_is_text(value: str) -> bool:
    """Whether a plain (unquoted) scalar reads as text: `alice` does, `yes`, `null`, `123` and
    `2026-01-01` do not (YAML 1.1 types them, as PyYAML does)."""
    if value and value[0] not in _FIRST_CHARS:
        return True
    return _RESOLVE(yaml.ScalarNode, value, (True, False)) == _STR


def _large_syntax_problem(error: yaml.YAMLError, text: str) -> Problem:
    """`_syntax_problem`, recognising a tab by the text (libyaml words it differently)."""
    problem = _syntax_problem(error)
    if problem.line is not None:
        lines = text.splitlines()
        if 0 < problem.line <= len(lines) and "\t" in lines[problem.line - 1]:
            return _problem(
                "yaml_syntax", "not valid YAML: a tab cannot indent or separate YAML; use spaces",
                problem.line,
            )
    return problem


def show(text: str, limit: int = 40) -> str:
    """A hostile string made safe to quote in a message: escaped and shortened."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in shown)
    return f"'{escaped}'"
