"""YAML unit files: the INI keys in lower case, `program:` and `attach:` as mappings.

Read through the node graph (bpfunits.yamlsafe: no aliases, bounded depth) rather than plain loading, so
that every key keeps its line number.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bpfunits import yamlsafe
from bpfunits.declare.syntax import Value, render
from bpfunits.units.assignment import Assignment
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.keys import BY_FIELD, BY_INI, unknown_yaml_key
from bpfunits.units.model import Location

_SECTIONS = ("program", "attach")


def read_yaml(text: str, path: Path, unit: str | None = None) -> tuple[list[Assignment], list[Diagnostic]]:
    try:
        root = yamlsafe.compose(text)
    except yamlsafe.YamlError as exc:
        return [], [error(f"invalid YAML: {exc.problem}", Location(path, exc.line), unit)]
    if root is None:
        return [], []
    reader = _Reader(path, unit)
    reader.mapping(root, "")
    return reader.assignments, reader.problems


class _Reader:
    def __init__(self, path: Path, unit: str | None):
        self.path = path
        self.unit = unit
        self.assignments: list[Assignment] = []
        self.problems: list[Diagnostic] = []

    def where(self, node: yaml.Node) -> Location:
        return Location(self.path, node.start_mark.line + 1)

    def fail(self, message: str, node: yaml.Node, key: str | None = None) -> None:
        self.problems.append(error(message, self.where(node), self.unit, key))

    def mapping(self, node: yaml.Node, section: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            what = f"'{section}'" if section else "a unit file"
            self.fail(f"{what} must be a mapping of keys to values", node)
            return
        repeated = {id(k) for k in yamlsafe.repeated_keys(node)}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail("keys must be plain names", key_node)
                continue
            name = key_node.value
            if id(key_node) in repeated:
                self.fail(f"duplicate key '{name}'", key_node, name)
                continue
            if not section and name in _SECTIONS:
                self.mapping(value_node, name)
                continue
            if not section and name == "maps":
                self.maps(value_node)
                continue
            key = BY_FIELD.get((section, name))
            if key is None:
                self.fail(unknown_yaml_key(section, name), key_node, name)
                continue
            value = self.list_value(value_node, name) if key.is_list else self.scalar(value_node, name)
            if value is not None:
                self.assignments.append(Assignment(key, value, self.where(key_node)))

    def scalar(self, node: yaml.Node, name: str) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return "" if node.tag == "tag:yaml.org,2002:null" else node.value
        self.fail(f"'{name}' takes a single value", node, name)
        return None

    def list_value(self, node: yaml.Node, name: str) -> tuple[str, ...] | None:
        if isinstance(node, yaml.ScalarNode):
            return () if node.tag == "tag:yaml.org,2002:null" else tuple(node.value.split())
        if isinstance(node, yaml.SequenceNode) and name != "metrics":
            items = []
            for item in node.value:
                if not isinstance(item, yaml.ScalarNode):
                    self.fail(f"'{name}' items must be single values", item, name)
                    return None
                items.append(item.value)
            return tuple(items)
        if isinstance(node, yaml.SequenceNode) and name == "metrics":
            return self.metrics(node)
        if isinstance(node, yaml.MappingNode) and name == "globals":
            return tuple(f"{k.value}={render(self.value(v))}" for k, v in node.value if isinstance(k, yaml.ScalarNode))
        if isinstance(node, yaml.MappingNode) and name == "define":
            pairs = []
            for k, v in node.value:
                if not (isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)):
                    self.fail("'define' maps names to single values", k, name)
                    return None
                pairs.append(f"{k.value}={v.value}")
            return tuple(pairs)
        self.fail(f"'{name}' takes a list (or a space-separated string)", node, name)
        return None

    def metrics(self, node: yaml.SequenceNode) -> tuple[str, ...] | None:
        """`[{map: NAME, key: KEY, type: counter}]` as the INI spelling's items, "NAME KEY counter"."""
        items = []
        for item in node.value:
            fields = dict((k.value, v.value) for k, v in item.value
                          if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode)) \
                if isinstance(item, yaml.MappingNode) else {}
            if not isinstance(item, yaml.MappingNode) or len(fields) != len(item.value) \
                    or not {"map", "key"} <= fields.keys() <= {"map", "key", "type"}:
                self.fail("'metrics' items are mappings of map, key and optionally type (counter or gauge)",
                          item, "metrics")
                return None
            items.append(" ".join(fields[k] for k in ("map", "key", "type") if k in fields))
        return tuple(items)

    def value(self, node: yaml.Node) -> Value:
        """A declared value (a global's, a map entry's key or value) as the INI syntax spells it."""
        if isinstance(node, yaml.SequenceNode):
            return [self.value(item) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            return {str(k.value): self.value(v) for k, v in node.value}
        return str(node.value)

    def maps(self, node: yaml.Node) -> None:
        """`maps: {NAME: {policy: exact, entries: [{key: K, value: V}]}}` as [Map] Policy= and Entry= lines."""
        shape = "'maps' maps each map name to {policy: merge|exact, entries: [{key: ..., value: ...}]}"
        if not isinstance(node, yaml.MappingNode):
            self.fail(shape, node, "maps")
            return
        entry_key, policy_key = BY_INI[("Map", "Entry")], BY_INI[("Map", "Policy")]
        for name_node, body in node.value:
            if not isinstance(name_node, yaml.ScalarNode) or not isinstance(body, yaml.MappingNode):
                self.fail(shape, body, "maps")
                continue
            for k, v in body.value:
                if k.value == "policy" and isinstance(v, yaml.ScalarNode):
                    self.assignments.append(Assignment(policy_key, (f"{name_node.value} {v.value}",), self.where(k)))
                elif k.value == "entries" and isinstance(v, yaml.SequenceNode):
                    for item in v.value:
                        if isinstance(item, yaml.ScalarNode):  # "KEY VALUE", as after Entry=MAP
                            text = f"{name_node.value} {item.value}"
                            self.assignments.append(Assignment(entry_key, (text,), self.where(item)))
                            continue
                        fields = {f.value: f_value for f, f_value in item.value if isinstance(f, yaml.ScalarNode)} \
                            if isinstance(item, yaml.MappingNode) else {}
                        if set(fields) != {"key", "value"}:
                            self.fail("'entries' items are mappings of key and value (or \"KEY VALUE\" text)",
                                      item, "maps")
                            continue
                        key, value = (render(self.value(fields[f])) for f in ("key", "value"))
                        text = f"{name_node.value} {key} {value}"
                        self.assignments.append(Assignment(entry_key, (text,), self.where(item)))
                else:
                    self.fail(shape, k, "maps")
