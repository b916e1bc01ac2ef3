"""The chain linker: the ordered programs of one (interface, hook) become one program.

    chain = link_chain(hook, [component_of(unit.name, loaded, unit.proceed_codes), ...],
                       counters=True, manifest="<chain version>")
    fd = chain.load()          # ProgramClosed once a component's LoadedProgram is closed
    chain.close()              # the loaded program keeps its maps
    read_manifest(prog_id), read_counters(prog_id)   # from a program id alone
"""

from bpfunits.linker.component import Component, LinkError, component_of
from bpfunits.linker.counters import ComponentCounts, read_counters
from bpfunits.linker.layout import Mode
from bpfunits.linker.linker import LinkedChain, Placement, link_chain
from bpfunits.linker.manifest import Manifest, ManifestEntry, read_manifest

__all__ = [
    "Component",
    "ComponentCounts",
    "LinkError",
    "LinkedChain",
    "Manifest",
    "ManifestEntry",
    "Mode",
    "Placement",
    "component_of",
    "link_chain",
    "read_counters",
    "read_manifest",
]
