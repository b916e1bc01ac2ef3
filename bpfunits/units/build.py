"""Assignments → normalized document → JSON Schema validation → typed Unit."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema

from bpfunits.declare.syntax import SyntaxProblem, parse_value, parse_values, render
from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook, EventHookError, parse_event_hook
from bpfunits.units.assignment import Assignment
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.keys import BY_FIELD, Key
from bpfunits.units.model import Location, MapEntry, MapMetric, Position, Program, Unit


@cache
def schema() -> dict:
    return json.loads(resources.files("bpfunits.units").joinpath("unit.schema.json").read_text())


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def fold(assignments: list[Assignment]) -> tuple[dict, dict[str, Location]]:
    """Apply assignments in order with systemd semantics: a repeated list key appends, an empty
    assignment resets the key to its default, a repeated scalar key replaces."""
    doc: dict = {}
    locations: dict[str, Location] = {}
    for a in assignments:
        key = a.key
        target = doc.setdefault(key.yaml_section, {}) if key.yaml_section else doc
        if not a.value:
            target.pop(key.field, None)
            for stale in [n for n in locations if n.startswith(f"{key.field}:")]:
                del locations[stale]
        elif key.is_list:
            target.setdefault(key.field, []).extend(a.value)
            for item in a.value:
                locations[f"{key.field}:{item}"] = a.location
        else:
            target[key.field] = a.value
        locations[key.field] = a.location
        locations.setdefault(f"[{key.section}]", a.location)
    return doc, locations


def build_unit(
    name: str, path: Path, assignments: list[Assignment], dropins: tuple[Path, ...] = (), *, read_cleanly: bool = True
) -> Unit | list[Diagnostic]:
    """The unit, or the reasons it is invalid. When some lines could not be read (`read_cleanly` false),
    missing keys are not reported: the unreadable lines are the likelier cause, and were reported."""
    doc, locations = fold(assignments)
    errors = [e for e in _validator().iter_errors(doc) if read_cleanly or e.validator != "required"]
    problems = [_describe(e, name, path, doc, locations) for e in errors]
    declared = _declarations(doc, name, path, locations)
    if isinstance(declared, list):
        problems += declared
    if problems or not read_cleanly or isinstance(declared, list):
        return sorted(set(problems), key=lambda d: (d.location.line or 0, d.message))
    program, attach = doc["program"], doc["attach"]
    globals_, entries, exact = declared
    hook = _hook(name, path, program, attach, locations)
    if isinstance(hook, list):
        return hook
    lists = (("maps_from", program.get("maps_from", ())), ("interfaces", attach.get("interfaces", ())))
    templated = [k for k, values in lists if any("%i" in v for v in values)]
    if templated and not name.partition("@")[2]:
        key = BY_FIELD[("program" if templated[0] == "maps_from" else "attach", templated[0])]
        return [error(f"{key.name}= uses %i, but unit {name} is no instance of a template (NAME@INSTANCE)",
                      locations.get(key.field, Location(path)), name, f"{key.name}=")]

    def resolve(p: str | None) -> Path | None:
        return None if p is None else path.parent / p

    return Unit(
        name=name,
        path=path,
        hook=hook,
        program=Program(
            object=resolve(program.get("object")),
            source=resolve(program.get("source")),
            name=program.get("name"),
            sha256=program["sha256"].lower() if "sha256" in program else None,
            defines=tuple(_define(d) for d in program.get("define", ())),
            globals=globals_,
            maps_from=tuple(dict.fromkeys(instance(name, u) for u in program.get("maps_from", ()))),
        ),
        interfaces=tuple(instance(name, i) for i in attach.get("interfaces", ())),
        proceed_on=frozenset(attach.get("proceed_on", hook.default_proceed_on) if isinstance(hook, Hook) else ()),
        description=doc.get("description", ""),
        before=tuple(dict.fromkeys(doc.get("before", ()))),
        after=tuple(dict.fromkeys(doc.get("after", ()))),
        position=Position(attach["position"]) if "position" in attach else None,
        dropins=dropins,
        metrics=tuple(dict.fromkeys(_metric(m) for m in doc.get("metrics", ()))),
        map_entries=entries,
        exact_maps=exact,
        locations=locations,
    )


_Declared = tuple[tuple[tuple[str, str], ...], tuple[MapEntry, ...], frozenset[str]]


def _declarations(doc: dict, unit: str, path: Path, locations: dict[str, Location]) -> _Declared | list[Diagnostic]:
    """Global=, Entry= and Policy= with their values' syntax checked (their types are checked against the
    object's BTF by verify and apply). The last assignment of a name, or of a map's key, wins; value texts
    are normalized so that INI and YAML spellings compare equal."""
    problems: list[Diagnostic] = []
    globals_: dict[str, str] = {}
    for item in doc.get("program", {}).get("globals", ()):
        name, _, text = item.partition("=")
        try:
            globals_[name] = render(parse_value(text))
            locations[f"global:{name}"] = locations.get(f"globals:{item}", Location(path))
        except SyntaxProblem as e:
            problems.append(error(f"Global={item}: {e}", locations.get(f"globals:{item}", Location(path)), unit,
                                  "Global="))
    entries: dict[tuple[str, str], MapEntry] = {}
    for item in doc.get("maps", {}).get("entries", ()):
        map_name, _, rest = item.partition(" ")
        try:
            values = parse_values(rest)
            if len(values) != 2:  # noqa: PLR2004
                raise SyntaxProblem(f"expected a key and a value after the map name, got {len(values)} values")
        except SyntaxProblem as e:
            problems.append(error(f"Entry={item}: {e}", locations.get(f"entries:{item}", Location(path)), unit,
                                  "Entry="))
            continue
        key = render(values[0])
        entries[(map_name, key)] = MapEntry(map_name, key, render(values[1]))
        locations[f"entry:{map_name} {key}"] = locations.get(f"entries:{item}", Location(path))
    policies: dict[str, str] = {}
    for item in doc.get("maps", {}).get("policies", ()):
        map_name, _, policy = item.partition(" ")  # the schema checks the rest
        policies[map_name] = policy
        locations[f"policy:{map_name}"] = locations.get(f"policies:{item}", Location(path))
    if problems:
        return problems
    return (tuple(globals_.items()), tuple(entries.values()),
            frozenset(m for m, policy in policies.items() if policy == "exact"))


def _hook(name: str, path: Path, program: dict, attach: dict,
          locations: dict[str, Location]) -> Hook | EventHook | list[Diagnostic]:
    """Hook= (with Cgroup=), or why it is wrong: an event hook takes no Interfaces= nor
    ProceedOn= (its program runs alone, on no interface), and only a cgroup hook takes Cgroup=."""
    text = attach["hook"]
    where = locations.get("hook", Location(path))
    if text in {h.value for h in Hook}:
        if "cgroup" in attach:
            return [error("Cgroup= applies only to the cgroup-* hooks", locations["cgroup"], name, "Cgroup=")]
        return Hook(text)
    try:
        hook = parse_event_hook(text, attach.get("cgroup"))
    except EventHookError as e:
        return [error(f"Hook={e}", where, name, "Hook=")]
    if "source" in program:
        return [error(f"Source= programs run only on chained hooks; the {hook.kind.value} hook takes Object=",
                      locations.get("source", where), name, "Source=")]
    refused = [BY_FIELD[("attach", k)] for k in ("interfaces", "proceed_on") if k in attach]
    refused += [BY_FIELD[("attach", "cgroup")]] if "cgroup" in attach and not hook.kind.is_cgroup else []
    return [error(f"{k.name}= does not apply on the {hook.kind.value} hook, where the program runs alone and on no "
                  "interface", locations.get(k.field, where), name, f"{k.name}=") for k in refused] or hook


def instance(unit: str, value: str) -> str:
    """`value` with %i replaced by the unit's instance name, as systemd's: a unit connlimit@veth1
    (a file of that name, or a link to the template connlimit@.unit) has the instance veth1."""
    return value.replace("%i", unit.partition("@")[2]) if "%i" in value else value


def _metric(item: str) -> MapMetric:
    name, key, *kind = item.split()
    return MapMetric(name, int(key, 0), kind[0] if kind else None)


def _define(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    return (name, value) if sep else (name, "1")  # as the compiler's -DNAME


def _describe(
    e: jsonschema.ValidationError, unit: str, path: Path, doc: dict, locations: dict[str, Location]
) -> Diagnostic:
    parts = list(e.absolute_path)
    section = parts[0] if parts and parts[0] in ("program", "attach", "maps") else ""
    field = parts[1] if section and len(parts) > 1 else (parts[0] if parts and not section else None)
    key: Key | None = BY_FIELD.get((section, field)) if isinstance(field, str) else None
    item = e.instance if isinstance(e.instance, str) and key is not None and key.is_list else None
    where = _location(key, item, section, path, locations)
    label = f"{key.name}=" if key else ""
    shown = e.instance.replace("\0", "\\0") if isinstance(e.instance, str) else ""  # a NUL would vanish on a terminal
    custom = e.schema.get("x-error") if isinstance(e.schema, dict) else None

    if e.validator == "required":
        missing = [m for m in e.validator_value if m not in e.instance]
        if e.schema.get("x-key"):  # a key that only applies with another (Define=, MapsFrom=)
            only = BY_FIELD[("program", e.schema["x-key"])]
            label = f"{only.name}="
            return error(f"{label} {e.schema['x-error']}", locations.get(only.field, where), unit, label)
        names = [BY_FIELD.get((section, m)) for m in missing]
        shown = ", ".join(f"{k.name}=" if k else f"[{m.capitalize()}]" for k, m in zip(names, missing, strict=True))
        in_section = f" in [{section.capitalize()}]" if section else ""
        return error(f"missing {shown}{in_section}", where, unit)
    if e.validator == "enum":
        allowed = ", ".join(e.validator_value)
        return error(f"{label}{shown} is not one of: {allowed}", where, unit, label or None)
    if e.validator == "minItems":
        return error(f"{label} needs at least one value", where, unit, label or None)
    if custom and e.validator == "anyOf":  # one of several spellings
        return error(f"{label}{shown} {custom}", where, unit, label or None)
    if custom:
        subject = f"{label}{shown}" if label else _section_label(section)
        return error(f"{subject}: {custom}" if subject else custom, where, unit, label or None)
    return error(f"{label} {e.message}".strip(), where, unit, label or None)


def _section_label(section: str) -> str:
    return f"[{_ini_section(section)}]" if section else ""


def _ini_section(section: str) -> str:
    return "Map" if section == "maps" else section.capitalize()


def _location(key: Key | None, item: str | None, section: str, path: Path, locations: dict[str, Location]) -> Location:
    if key is not None:
        if item is not None and f"{key.field}:{item}" in locations:
            return locations[f"{key.field}:{item}"]
        if key.field in locations:
            return locations[key.field]
    if section and f"[{_ini_section(section)}]" in locations:
        return locations[f"[{_ini_section(section)}]"]
    return Location(path, 1)
