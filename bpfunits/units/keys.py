"""The keys of the unit language: one table serves the INI and YAML readers, suggestions and help."""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    section: str  # INI section, and the YAML mapping the key lives in ("" = top level)
    name: str  # INI spelling, e.g. "ProceedOn"
    field: str  # YAML spelling and normalized field name, e.g. "proceed_on"
    is_list: bool
    help: str
    # A list key whose every assignment is one item (of several words), not words each an item.
    whole_items: bool = False

    @property
    def yaml_section(self) -> str:
        if self.section == "Map":
            return "maps"  # YAML spells it `maps: {NAME: {policy, entries}}`, read into these keys
        return "" if self.section in ("Unit", "Metrics") else self.section.lower()


KEYS: tuple[Key, ...] = (
    Key("Unit", "Description", "description", False, "free text shown by status and plan"),
    Key("Unit", "Before", "before", True, "units this one runs before, on the hooks they share"),
    Key("Unit", "After", "after", True, "units this one runs after, on the hooks they share"),
    Key("Program", "Object", "object", False, "BPF ELF object, absolute or relative to the unit file's folder"),
    Key("Program", "Source", "source", False, "C source compiled by bcc at load time (instead of Object=)"),
    Key("Program", "Name", "name", False, "the program (function) in the object; optional if it holds one"),
    Key("Program", "SHA256", "sha256", False, "refuse the object (or source) if its digest differs"),
    Key("Program", "Define", "define", True, "KEY=VALUE passed to the compiler with Source="),
    Key("Program", "Global", "globals", True, "NAME=VALUE: the object's global variable NAME (in .rodata, .data, "
        ".bss, .data.* or .rodata.*) is set to VALUE before load, typed by its BTF", whole_items=True),
    Key("Program", "MapsFrom", "maps_from", True, "units whose pinned maps this program uses by name (the first "
        "unit having a map of that name wins; shapes must match); %i: the instance of a template unit"),
    Key("Attach", "Hook", "hook", False, "xdp, tc-ingress or tc-egress (chained, ordered); or one program alone "
        "through a bpf_link, in no order: tracepoint:CATEGORY/NAME, raw_tracepoint:NAME, kprobe:FUNCTION[+OFFSET], "
        "kretprobe:FUNCTION, uprobe:/PATH:SYMBOL, uretprobe:/PATH:SYMBOL, fentry:FUNCTION, fexit:FUNCTION (FUNCTION as "
        "the kernel's BTF names it; where the kernel permits tracing programs, else the unit's error says it "
        "lacks BPF_PROG_TYPE_TRACING); or cgroup-skb-ingress, cgroup-skb-egress, cgroup-sock-create (with Cgroup=): "
        "ordered by After=/Before= on kernels with cgroup mprog (Linux 6.16+), plain multi-attach in attach order "
        "on older ones"),
    Key("Attach", "Cgroup", "cgroup", False, "the cgroup folder (/sys/fs/cgroup/...) of a cgroup-* hook"),
    Key("Attach", "Interfaces", "interfaces", True, "interface names and globs; !name excludes"),
    Key("Attach", "Position", "position", False, "first or last among the hook's units"),
    Key("Attach", "ProceedOn", "proceed_on", True, "verdicts after which the next program runs"),
    Key("Metrics", "Map", "metrics", True, "NAME KEY [counter|gauge]: the daemon exports the value at integer KEY "
        "of the unit's map NAME as bpfunits_map_NAME (summed over CPUs; unsigned: counter, signed: gauge)",
        whole_items=True),
    Key("Map", "Entry", "entries", True, "MAP KEY VALUE: the unit's map MAP holds VALUE at KEY, both typed by its BTF "
        "(written at apply, repaired by the daemon)", whole_items=True),
    Key("Map", "Policy", "policies", True, "MAP merge|exact: exact removes MAP's entries that are not declared; "
        "merge (the default) leaves them", whole_items=True),
)

SECTIONS: tuple[str, ...] = ("Unit", "Program", "Attach", "Metrics", "Map")

BY_INI: dict[tuple[str, str], Key] = {(k.section, k.name): k for k in KEYS}
BY_FIELD: dict[tuple[str, str], Key] = {(k.yaml_section, k.field): k for k in KEYS}


def suggest(word: str, candidates: list[str]) -> str:
    """' (did you mean X?)' for the closest candidate, compared case-insensitively, or ''."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[match[0]]}?)" if match else ""


def unknown_ini_key(section: str, name: str) -> str:
    elsewhere = [k for k in KEYS if k.name.lower() == name.lower() and k.section != section]
    if elsewhere:
        return f"{name}= belongs in [{elsewhere[0].section}], not [{section}]"
    names = [k.name for k in KEYS if k.section == section]
    return f"unknown key {name}= in [{section}]{suggest(name, names)}"


def unknown_yaml_key(section: str, name: str) -> str:
    where = f"'{section}'" if section else "the top level"
    names = [k.field for k in KEYS if k.yaml_section == section]
    if not section:
        names += ["program", "attach", "maps"]
    return f"unknown key '{name}' at {where}{suggest(name, names)}"
