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
from dataclasses import dataclass
from typing import Literal

import yaml

from webhook.core.model import Problem

#: Deepest nesting of mappings and sequences accepted; request and policy files need 2-3.
MAX_DEPTH = 16

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


def _scan_events(text: str) -> tuple[Problem, ...]:
    """Refuse anchors, aliases, tags, several documents and deep nesting, from the event stream."""
    problems: list[Problem] = []
    depth = 0
    documents = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    problems.append(
                        _problem(
                            "multiple_documents",
                            "the file must hold one YAML document; remove the '---' separator",
                            line,
                        )
                    )
                    break
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
                    depth += 1
                    if depth > MAX_DEPTH:
                        problems.append(
                            _problem(
                                "too_deep",
                                f"the YAML is nested more than {MAX_DEPTH} levels deep",
                                line,
                            )
                        )
                        break
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
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


def show(text: str, limit: int = 40) -> str:
    """A hostile string made safe to quote in a message: escaped and shortened."""
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in shown)
    return f"'{escaped}'"
