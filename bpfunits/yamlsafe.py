"""YAML from files others may write (the configuration, YAML units), parsed within bounds.

PyYAML as it is expands aliases (a 472-byte alias bomb takes gigabytes), composes recursively
(deep nesting raises RecursionError), and reads `.inf` and `.nan` as numbers. Here anchors and
aliases are refused (nothing bpfunits reads needs them), nesting stops at MAX_DEPTH, and
constructing a non-finite number is an error. Repeated keys are found by `repeated_keys`, so
that readers can report them in their own words.
"""

from __future__ import annotations

import math

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from bpfunits.errors import BpfUnitsError

MAX_DEPTH = 64


class YamlError(BpfUnitsError):
    """Unreadable YAML: `problem` and the 1-based `line` (None when unknown)."""

    def __init__(self, problem: str, line: int | None) -> None:
        super().__init__(f"line {line}: {problem}" if line else problem)
        self.problem = problem
        self.line = line


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ComposerError(None, None, "anchors and aliases are not allowed", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_float(self, node):
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(None, None, f"{node.value!r} is not a finite number", node.start_mark)
        return value


_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


def compose(text: str) -> yaml.Node | None:
    """The node graph of a single YAML document (None for an empty one); every node keeps its line."""
    return _guarded(lambda: _Loader(text).get_single_node())


def construct(node: yaml.Node | None) -> object:
    """The Python value of a composed document."""
    if node is None:
        return None
    return _guarded(lambda: _Loader("").construct_document(node))


def repeated_keys(node: yaml.MappingNode) -> list[yaml.Node]:
    """The key nodes of `node` that repeat an earlier key of the same mapping."""
    seen: set[tuple[str, str]] = set()
    repeated = []
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode):
            if (key.tag, key.value) in seen:
                repeated.append(key)
            seen.add((key.tag, key.value))
    return repeated


def _guarded(step):
    try:
        return step()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        raise YamlError(getattr(exc, "problem", None) or str(exc), mark.line + 1 if mark else None) from exc
    except (ValueError, RecursionError) as exc:  # PyYAML lets some malformed input escape as these
        raise YamlError(str(exc), None) from exc
