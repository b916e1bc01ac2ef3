"""What each hook should run: ordered chains whose programs loaded, as the planner compares them."""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase

from bpfunits.errors import BpfUnitsError
from bpfunits.hooks import Hook
from bpfunits.load import mappins
from bpfunits.load.load import LoadError, SharedMap
from bpfunits.sys import bpf
from bpfunits.state.bpffs import StateRoot
from bpfunits.load.program import LoadedProgram
from bpfunits.linker.component import Component, component_of
from bpfunits.linker.linker import component_depths
from bpfunits.order.graph import Chain, HookKey
from bpfunits.plan.model import ChainState, Desired
from bpfunits.plan.model import ChainMember
from bpfunits.reconcile.progcache import CachedProgram, ProgramCache
from bpfunits.units.model import Unit
from bpfunits.untrusted import FilePolicy

# Bumped whenever the linker's output for the same components changes meaning, so running
# chains are rebuilt; a bpfunits upgrade that leaves it alone swaps nothing.
LINK_FORMAT = 1


def build_id(counters: bool) -> str:
    return f"link{LINK_FORMAT}" + ("+counters" if counters else "")


class Programs:
    """Each unit's program for one reconcile, taken from `cache` (which owns it) and shared by
    every hook it is on (so a unit's maps are one set, whatever its interfaces)."""

    def __init__(self, root: StateRoot, cache: ProgramCache, policy: FilePolicy = FilePolicy()):
        self.root = root
        self.cache = cache
        self.policy = policy
        self.units: dict[str, Unit] = {}  # every valid unit, by name: where MapsFrom= finds its owners
        self.loaded: dict[str, CachedProgram] = {}
        self.errors: dict[str, str] = {}
        self.resets: dict[str, tuple[mappins.ShapeChange, ...]] = {}
        self._loading: set[str] = set()

    def get(self, unit: Unit) -> LoadedProgram | None:
        if unit.name not in self.loaded and unit.name not in self.errors:
            try:
                self._loading.add(unit.name)
                self.loaded[unit.name] = self.cache.get(unit, self.root, self.policy, self.shared_maps(unit))
            except mappins.MapPinError as exc:
                self.errors[unit.name] = f"unit {unit.name}: {exc}"
            except BpfUnitsError as exc:
                self.errors[unit.name] = str(exc)
            except (OSError, ValueError) as exc:  # whatever else one unit's input provokes stays its error
                self.errors[unit.name] = f"unit {unit.name}: {exc}"
            finally:
                self._loading.discard(unit.name)
        cached = self.loaded.get(unit.name)
        return cached.program if cached else None

    def reload(self, unit: Unit) -> LoadedProgram | None:
        """The unit's program loaded anew, the one kept so far released."""
        self.loaded.pop(unit.name, None)
        self.cache.drop(unit.name)
        return self.get(unit)

    def shared_maps(self, unit: Unit) -> dict[str, SharedMap]:
        """The maps of the units `unit` takes maps from (MapsFrom=), by name, the first unit
        having a name winning; those units' programs are loaded first (the owner of a map is the
        unit whose own map it is)."""
        shared: dict[str, SharedMap] = {}
        for name in unit.program.maps_from:
            owner = self.units.get(name)
            if owner is None:
                raise LoadError(f"unit {unit.name}: MapsFrom= names unit {name}, which is not a valid unit")
            if name in self._loading:
                raise LoadError(f"unit {unit.name}: MapsFrom= unit {name} takes maps from it in turn (a cycle)")
            if self.get(owner) is None:
                raise LoadError(f"unit {unit.name}: MapsFrom= unit {name} does not load: {self.errors[name]}")
            cached = self.loaded[name]
            owners = {n: o for n, o, _ in cached.key.shared}
            for map_name, ref in cached.program.maps.items():
                if mappins.holds_state(map_name) and map_name not in shared:
                    shape = bpf.map_info(ref.fd).shape
                    shared[map_name] = SharedMap(owners.get(map_name, name), ref.fd, ref.id, shape)
        return shared

    def component(self, unit: Unit) -> Component:
        """The unit's program as the linker takes it, with the verifier's stack depths, found
        once per loaded program."""
        cached = self.loaded[unit.name]
        assert isinstance(unit.hook, Hook)  # only chained units are components
        component = component_of(unit.name, cached.program, unit.proceed_codes)
        if cached.stack_depths is None:
            cached.stack_depths = component_depths(unit.hook, component)
        return replace(component, stack_depths=cached.stack_depths, globals=unit.program.globals)

    def compiled(self, unit: str) -> tuple[tuple[str, str], ...]:
        typed = self.loaded[unit].typed
        return typed.compiled if typed is not None else ()

    def map_resets(self, unit: str) -> tuple[mappins.ShapeChange, ...]:
        """The unit's pinned maps that committing its program would reset (another shape); read
        once per reconcile, however many hooks the unit is on."""
        if unit not in self.resets:
            self.resets[unit] = mappins.shape_changes(self.root, unit, self.loaded[unit].own_maps())
        return self.resets[unit]

    def pinned(self, unit: str) -> tuple[tuple[str, int], ...]:
        """The unit program's maps that are the ones pinned for the unit, (name, id)."""
        cached = self.loaded[unit]
        return tuple(sorted((name, pinned) for name, pinned in cached.pins.items()
                            if pinned is not None and pinned == cached.program.maps[name].id))

    def commit(self, units: tuple[str, ...]) -> None:
        """Pin the maps of these units' programs, now that a chain using them runs."""
        for unit in units:
            cached = self.loaded[unit]
            mappins.commit(self.root, unit, cached.own_maps())
            cached.pins = {name: cached.program.maps[name].id for name in cached.pins}
            for name, owner, _ in cached.key.shared:  # an owner that runs nowhere has them pinned too
                mappins.commit(self.root, owner, [cached.program.maps[name]])


def map_owners(units: dict[str, Unit], users: set[str]) -> set[str]:
    """The units whose maps `users` take (MapsFrom=), and theirs in turn: their maps stay."""
    found: set[str] = set()
    todo = [o for u in users if u in units for o in units[u].program.maps_from]
    while todo:
        owner = todo.pop()
        if owner not in found:
            found.add(owner)
            todo += units[owner].program.maps_from if owner in units else ()
    return found


def desired_chain(chain: Chain, programs: Programs, counters: bool, takeover: tuple[str, ...]) -> Desired:
    """The hook's desired state, or its errors when a unit's program would not load."""
    loaded = [(unit, programs.get(unit)) for unit in chain.units]
    errors = tuple(programs.errors[u.name] for u, p in loaded if p is None)
    if errors:
        return Desired(chain.key, None, errors)
    components = tuple(ChainMember(u.name, p.sha256, p.tag, tuple(sorted(u.proceed_codes)), programs.pinned(u.name),
                                   u.program.globals, programs.compiled(u.name))
                       for u, p in loaded if p is not None)
    may_take_over = any(fnmatchcase(chain.key.interface, g) for g in takeover)
    try:
        notes = tuple(str(change) for u in chain.units for change in programs.map_resets(u.name))
    except mappins.MapPinError as exc:
        return Desired(chain.key, None, (str(exc),))
    return Desired(chain.key, ChainState(components, build_id(counters)), takeover=may_take_over, notes=notes)


def blocked_by_broken_units(key: HookKey, running: ChainState | None, broken: dict[str, str]) -> Desired | None:
    """A hook running a unit whose files now have errors keeps its chain exactly as it is (and
    so the unit keeps its maps), whatever else changed: the unit's absence from the valid units
    is an error, not a request to remove it."""
    if running is None:
        return None
    hit = [u for u in running.units if u in broken]
    if not hit:
        return None
    return Desired(key, None, tuple(f"unit {u} is running here but its files have errors; the hook keeps its chain "
                                    f"until they are fixed or removed: {broken[u]}" for u in hit))
