"""The configuration file: YAML, validated by a JSON Schema in which every key has a default."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from bpfunits.errors import BpfUnitsError

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

    def override(self, *, units_dirs=None, bpffs_root=None) -> Config:
        """Command-line options win over the file."""
        changes = {}
        if units_dirs:
            changes["units_dirs"] = tuple(Path(d) for d in units_dirs)
        if bpffs_root:
            changes["bpffs_root"] = Path(bpffs_root)
        return replace(self, **changes)


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
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else 1}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    data = {} if data is None else data
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [f"{path}:{_line(node, list(e.absolute_path))}: {'.'.join(map(str, e.absolute_path)) or 'top level'}: {e.message}"
                 for e in errors]
        raise ConfigError("\n".join(lines))
    return _build(data)


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
