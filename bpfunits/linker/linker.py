"""Link the ordered components of one (interface, hook) into one program.

Each component runs inlined where that is provably the same as running it alone, else as a
bpf-to-bpf subprogram ("call mode"); a component that can run neither way is refused."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

from bpfunits.closing import Closing
from bpfunits.hooks import Hook
from bpfunits.linker.progtype import expected_attach_type_of, prog_type_of
from bpfunits.sys import bpf
from bpfunits.sys.bpf import BpfError
from bpfunits.linker import asm
from bpfunits.linker.btf import FUNC_INFO_REC_SIZE, FuncBtf, func_btf
from bpfunits.linker.component import (
    Component,
    LinkError,
    Shape,
    frame_size,
    shape_of,
    stack_above_main,
    tail_call_prefix,
)
from bpfunits.linker.counters import ChainCounters
from bpfunits.linker.layout import STACK_MAX, Assembly, Mode, Part, assemble
from bpfunits.linker.manifest import Manifest, ManifestEntry, create_manifest_map
from bpfunits.linker.stack import stack_depths

PROG_NAME = "bpfu_chain"
# The chain's own stack below an inlined component's: the context and the counter pointer.
_CHAIN_STACK = 16
# The verifier refuses a program using more distinct maps (MAX_USED_MAPS; on 6.18: "The total
# number of maps per program has reached the limit of 64").
MAX_MAPS = 64


@dataclass(frozen=True)
class Placement:
    name: str
    mode: Mode
    reason: str  # why the component is called rather than inlined ("" when inlined)


class LinkedChain(Closing):
    """A linked chain, ready to load; owns its counter and manifest maps until close(). Its
    instructions hold its components' map fds: it loads only while their programs are open."""

    def __init__(
        self,
        hook: Hook,
        components: tuple[Component, ...],
        assembly: Assembly,
        placements: tuple[Placement, ...],
        counters: ChainCounters | None,
        manifest_fd: int | None,
        btf: FuncBtf | None,
        without_frags: tuple[str, ...] = (),
    ) -> None:
        self.hook = hook
        self.components = components
        # XDP: the components that do not declare multi-buffer support; with none, the chain
        # is loaded with it (BPF_F_XDP_HAS_FRAGS), so that it attaches where frames need frags.
        self.without_frags = without_frags
        self.assembly = assembly
        self.placements = placements
        self.counters = counters
        self.manifest_fd = manifest_fd
        self.btf = btf

    @property
    def frags(self) -> bool:
        return not self.hook.is_tc and not self.without_frags

    @property
    def insns(self) -> bytes:
        return asm.encode(self.assembly.insns)

    def load(self, *, name: str = PROG_NAME) -> int:
        """Load the chain as one program of the hook's type; returns its fd (caller closes it).
        ProgramClosed if a component's program was closed since the chain was linked."""
        for component in self.components:
            component.require_open()
        load = partial(bpf.prog_load, prog_type_of(self.hook), self.insns, name=name,
                       expected_attach_type=expected_attach_type_of(self.hook),
                       prog_flags=bpf.BPF_F_XDP_HAS_FRAGS if self.frags else 0)
        if self.btf is None:
            return load()
        btf_fd = bpf.btf_load(self.btf.blob)
        try:
            return load(
                prog_btf_fd=btf_fd,
                func_info=self.btf.func_info,
                func_info_rec_size=FUNC_INFO_REC_SIZE,
            )
        finally:
            os.close(btf_fd)

    def close(self) -> None:
        if self.counters:
            self.counters.close()
            self.counters = None
        if self.manifest_fd is not None:
            os.close(self.manifest_fd)
            self.manifest_fd = None


@dataclass(frozen=True)
class Linked:
    """What linking decides for components on a hook, the same on every interface: where each
    goes, and the instructions (which refer to the chain's own maps at known places)."""

    parts: tuple[tuple[Part, str], ...]
    assembly: Assembly


# Chains linked in one pass (one reconcile), by what decides them: a glob unit's chains on many
# interfaces are linked once, each with maps of its own. Valid while the components' programs
# stay open, as their instructions hold their map fds.
Linkings = dict[tuple[object, ...], Linked]


def link_chain(
    hook: Hook,
    components: list[Component],
    *,
    counters: bool = False,
    manifest: str | None = None,
    owner: str = "",
    force: Mode | None = None,
    no_tail_calls: str | None = None,
    done: Linkings | None = None,
) -> LinkedChain:
    """Link `components` (in run order) for `hook`. `manifest` is the chain's version; None
    leaves the manifest out. `owner` names the state root of the bpfunits that links it (see
    Manifest). `force` makes every component inline (refusing those that cannot be) or called.
    `no_tail_calls`, where this kernel cannot run a called component's tail call as that
    component alone, says why; components that tail-call are then refused. `done` holds what
    earlier calls linked: the same components again take their instructions from it."""
    if not components:
        raise LinkError(f"no components to link for the {hook.value} hook")
    key = (hook, tuple(components), counters, manifest is not None, force, no_tail_calls)
    earlier = done.get(key) if done is not None else None
    parts = list(earlier.parts) if earlier else _parts(hook, components, force, no_tail_calls, counters, manifest)
    reachable = sum(p.mode is not Mode.UNREACHABLE for p, _ in parts)
    chain_counters = (ChainCounters(hook, [c.name for c in components], [c.proceed_on for c in components], reachable)
                      if counters else None)
    manifest_fd = None
    try:
        if manifest is not None:
            manifest_fd = create_manifest_map(_manifest(hook, manifest, components, parts, owner))
        if earlier:
            assembly = earlier.assembly.with_maps(chain_counters.layout.map_fd if chain_counters else None, manifest_fd)
        else:
            assembly = assemble(
                [p for p, _ in parts if p.mode is not Mode.UNREACHABLE],
                end_verdict=hook.chain_end_verdict,
                counters=chain_counters.layout if chain_counters else None,
                manifest_fd=manifest_fd,
            )
            if done is not None:
                done[key] = Linked(tuple(parts), assembly)
    except BaseException:
        if chain_counters:
            chain_counters.close()
        if manifest_fd is not None:
            os.close(manifest_fd)
        raise
    return LinkedChain(
        hook,
        tuple(components),
        assembly,
        tuple(Placement(p.name, p.mode, reason) for p, reason in parts),
        chain_counters,
        manifest_fd,
        _btf_for(assembly.func_starts),
        () if hook.is_tc else tuple(c.name for c in components if not c.frags),
    )


def _parts(hook: Hook, components: list[Component], force: Mode | None, no_tail_calls: str | None, counters: bool,
           manifest: str | None) -> list[tuple[Part, str]]:
    """Where each component goes (inline, called, or left out as unreachable), and why."""
    parts: list[tuple[Part, str]] = []
    stopper: str | None = None  # the first component that never proceeds
    for c in components:
        if stopper is not None:
            unreachable = Part(c.name, shape_of(c), c.proceed_on, Mode.UNREACHABLE, 0)
            parts.append((unreachable, f"unit {stopper} before it never proceeds"))
            continue
        shape = shape_of(c)
        if shape.tail_calls and no_tail_calls:
            raise LinkError(f"unit {c.name} makes tail calls, which cannot run in a chain here: {no_tail_calls}")
        parts.append(_place(hook, c, shape, force))
        if not c.proceed_on:
            stopper = c.name
    own_maps = int(counters) + int(manifest is not None)
    _check_map_count(hook, [p for p, _ in parts if p.mode is not Mode.UNREACHABLE], own_maps)
    return parts


def _btf_for(func_starts: tuple[int, ...]) -> FuncBtf | None:
    # Callbacks (bpf_loop) and tail calls from subprograms are only allowed with BTF func
    # info; a program of one function needs none.
    return func_btf(func_starts) if len(func_starts) > 1 else None


def component_depths(hook: Hook, c: Component) -> tuple[int, ...]:
    """The stack each function of the component uses (main first), as the verifier finds it
    loading the component alone for `hook`."""
    shape = shape_of(c)
    try:
        return stack_depths(
            prog_type_of(hook),
            c.insns,
            _btf_for((0, *shape.subprog_starts)),
            expected_attach_type=expected_attach_type_of(hook),
        )
    except BpfError as e:
        raise LinkError(f"unit {c.name}: the verifier refuses it alone: {e}") from e


def _place(hook: Hook, c: Component, shape: Shape, force: Mode | None) -> tuple[Part, str]:
    depths = c.stack_depths if c.stack_depths is not None else component_depths(hook, c)
    above = stack_above_main(shape, depths)
    reason = _why_not_inline(shape)
    if not reason and depths[0] + _CHAIN_STACK > STACK_MAX:
        reason = f"its stack ({depths[0]} bytes) leaves no room for the chain's context"
    if force is Mode.INLINE and reason:
        raise LinkError(f"unit {c.name} cannot be inlined: {reason}")
    if reason or force is Mode.CALL:
        prefix = tail_call_prefix(shape, depths)
        called = Part(c.name, shape, c.proceed_on, Mode.CALL, 0, frame_size(depths[0]) + above, prefix)
        return called, reason or "call mode requested"
    return Part(c.name, shape, c.proceed_on, Mode.INLINE, depths[0], above), ""



def _check_map_count(hook: Hook, parts: list[Part], own_maps: int) -> None:
    """Refuse, naming each unit's share, a chain the verifier would refuse for its map count
    (its one-line error would name no unit)."""
    per_part: list[tuple[str, set[int]]] = []
    for part in parts:
        fds = {i.imm for i in part.shape.insns if i.is_ld_imm64 and i.src in (asm.PSEUDO_MAP_FD, asm.PSEUDO_MAP_VALUE)}
        # By id, not fd: units (or one unit twice) may share a map.
        per_part.append((part.name, {bpf.map_info(fd).id for fd in fds}))
    total = len(set().union(*(ids for _, ids in per_part))) + own_maps
    if total <= MAX_MAPS:
        return
    shares = [f"{name} {len(ids)}" for name, ids in per_part if ids]
    if own_maps:
        shares.append(f"bpfunits' counters and manifest {own_maps}")
    raise LinkError(
        f"the {hook.value} chain would use {total} maps, and the kernel allows {MAX_MAPS} in one program "
        f"(maps per unit: {', '.join(shares)}); put fewer units on this hook"
    )


def _why_not_inline(shape: Shape) -> str:
    if shape.tail_calls:
        # Inlined, a successful tail call would end the whole chain, not just the component.
        return "it makes tail calls"
    if shape.packet_loads:
        # LD_ABS/LD_IND return 0 from the whole program when the packet is too short.
        return "it uses LD_ABS/LD_IND packet loads"
    if shape.main_len - 1 > asm.JUMP_OFF_MAX:
        return "its main function is too long for 16-bit jumps to its epilogue"
    return ""


def _manifest(
    hook: Hook, version: str, components: list[Component], parts: list[tuple[Part, str]], owner: str
) -> Manifest:
    entries = tuple(
        ManifestEntry(c.name, c.sha256, c.tag, tuple(sorted(c.proceed_on)), p.mode.value, c.maps, c.globals)
        for c, (p, _) in zip(components, parts, strict=True)
    )
    return Manifest(version, hook.value, entries, owner)
