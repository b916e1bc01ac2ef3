"""Assignments → normalized document → JSON Schema validation → typed Unit."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema

from bpfunits.hooks import Hook
from bpfunits.hooks.events import EventHook, EventHookError, parse_event_hook
from bpfunits.units.assignment import Assignment
from bpfunits.units.diagnostics import Diagnostic, error
from bpfunits.units.keys import BY_FIELD, Key
from bpfunits.units.model import Location, MapMetric, Position, Program, Unit


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
    if problems or not read_cleanly:
        return sorted(set(problems), key=lambda d: (d.location.line or 0, d.message))
    program, attach = doc["program"], doc["attach"]
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
        locations=locations,
    )


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
    section = parts[0] if parts and parts[0] in ("program", "attach") else ""
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
    return f"[{section.capitalize()}]" if section else ""


def _location(key: Key | None, item: str | None, section: str, path: Path, locations: dict[str, Location]) -> Location:
    if key is not None:
        if item is not None and f"{key.field}:{item}" in locations:
            return locations[f"{key.field}:{item}"]
        if key.field in locations:
            return locations[key.field]
    if section and f"[{section.capitalize()}]" in locations:
        return locations[f"[{section.capitalize()}]"]
    return Location(path, 1)
