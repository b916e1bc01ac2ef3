"""The configuration file: YAML, validated by a JSON Schema in which every key has a default."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bpfunits import yamlsafe
from bpfunits.errors import BpfUnitsError
from bpfunits.untrusted import FilePolicy, UntrustedFileError, read_untrusted

DEFAULT_FILE = Path("/etc/bpfunits/bpfunits.yaml")


class ConfigError(BpfUnitsError):
    pass


@dataclass(frozen=True)
class Config:
    units_dirs: tuple[Path, ...]
    bpffs_root: Path
    resync_period: float
    xdp_mode: str
    xdp_backend: str
    tc_backend: str
    tc_position: str
    takeover: tuple[str, ...]
    counters: bool
    lock_file: Path
    state_file: Path
    strict_permissions: bool
    max_unit_size: int
    max_object_size: int
    metrics_listen: str  # HOST:PORT, or "" for no metrics listener

    def override(self, *, units_dirs=None, bpffs_root=None) -> Config:
        """Command-line options win over the file."""
        changes: dict[str, Any] = {}
        if units_dirs:
            changes["units_dirs"] = tuple(Path(d) for d in units_dirs)
        if bpffs_root:
            changes["bpffs_root"] = Path(bpffs_root)
        return replace(self, **changes)

    @property
    def file_policy(self) -> FilePolicy:
        return FilePolicy(self.strict_permissions, self.max_unit_size, self.max_object_size)


@cache
def schema() -> dict:
    return json.loads(resources.files("bpfunits").joinpath("config.schema.json").read_text())


def defaults() -> Config:
    return _build({})


def load_config(path: Path | None) -> Config:
    """The configuration in `path`; with None, the default file if it exists, else the defaults."""
    if path is None:
        if not DEFAULT_FILE.exists():
            return defaults()
        path = DEFAULT_FILE
    try:
        text = read_untrusted(path, FilePolicy().max_unit_size, strict=False).decode("utf-8")
        node = yamlsafe.compose(text)
        data = yamlsafe.construct(node)
    except UntrustedFileError as exc:
        raise ConfigError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yamlsafe.YamlError as exc:
        raise ConfigError(f"{path}:{exc.line or 1}: invalid YAML: {exc.problem}") from exc
    data = {} if data is None else data
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(map(str, e.path)))
    lines = [f"{path}:{_line(node, list(e.absolute_path))}: "
             f"{'.'.join(map(str, e.absolute_path)) or 'top level'}: {e.message}"
             for e in errors]
    lines += [f"{path}:{k.start_mark.line + 1}: duplicate key {k.value!r}" for k in _repeated_keys(node)]
    if not errors and isinstance(data, dict) and os.path.isdir(data.get("lock_file", "")):
        lines.append(f"{path}:{_line(node, ['lock_file'])}: lock_file: {data['lock_file']} is a folder, not a file")
    if lines:
        raise ConfigError("\n".join(lines))
    assert isinstance(data, dict)  # the schema's top level is an object
    return _build(data)


def _repeated_keys(node: yaml.Node | None) -> list[yaml.Node]:
    """Repeated keys of every mapping in the document: one would silently override the other."""
    if isinstance(node, yaml.MappingNode):
        found = yamlsafe.repeated_keys(node)
        for key, value in node.value:
            found += _repeated_keys(key) + _repeated_keys(value)
        return found
    if isinstance(node, yaml.SequenceNode):
        return [k for item in node.value for k in _repeated_keys(item)]
    return []


def _build(data: dict) -> Config:
    props = schema()["properties"]
    values = {f.name: data.get(f.name, props[f.name]["default"]) for f in fields(Config)}
    return Config(
        units_dirs=tuple(Path(d) for d in values["units_dirs"]),
        bpffs_root=Path(values["bpffs_root"]),
        resync_period=float(values["resync_period"]),
        xdp_mode=values["xdp_mode"],
        xdp_backend=values["xdp_backend"],
        tc_backend=values["tc_backend"],
        tc_position=values["tc_position"],
        takeover=tuple(values["takeover"]),
        counters=bool(values["counters"]),
        lock_file=Path(values["lock_file"]),
        state_file=Path(values["state_file"]),
        strict_permissions=bool(values["strict_permissions"]),
        max_unit_size=int(values["max_unit_size"]),
        max_object_size=int(values["max_object_size"]),
        metrics_listen=str(values["metrics_listen"]),
    )


def _line(node: yaml.Node | None, path: list) -> int:
    """The 1-based line of the value at `path` in the composed YAML, as near as it exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
