"""What the linker needs to know about one component's relocated instructions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bpfunits.errors import BpfUnitsError
from bpfunits.linker import asm
from bpfunits.linker.asm import Insn


class LinkError(BpfUnitsError):
    pass


class Instructions(Protocol):
    """Where a component's instructions come from: a loaded program (bpfunits.load.program),
    which holds the maps their fds name, and refuses to give them once it is closed."""

    @property
    def insns(self) -> bytes: ...

    def require_open(self) -> None: ...


@dataclass(frozen=True)
class Component:
    """One unit's loaded program, as the linker takes it.

    `code` gives the relocated instructions (map fds in ld_imm64, subprograms after the main
    function): a loaded program, read each time, so that nothing is linked or loaded from one
    closed, or bytes that hold no fd (or whose fds the caller keeps open). `proceed_on` holds
    verdict codes."""

    name: str
    code: Instructions | bytes
    proceed_on: frozenset[int]
    sha256: str = ""
    tag: str = ""
    stack_depths: tuple[int, ...] | None = None  # the verifier's, per function, when known
    maps: tuple[tuple[str, int], ...] = ()  # the program's maps (name, id), which its insns embed
    frags: bool = False  # XDP: handles multi-buffer frames (loaded with BPF_F_XDP_HAS_FRAGS)
    globals: tuple[tuple[str, str], ...] = ()  # the unit's Global= values, recorded in the manifest

    @property
    def insns(self) -> bytes:
        return self.code if isinstance(self.code, bytes) else self.code.insns

    def require_open(self) -> None:
        """Raise (ProgramClosed) if the program the instructions come from was closed."""
        if not isinstance(self.code, bytes):
            self.code.require_open()


@dataclass(frozen=True)
class Shape:
    """A component's instructions split into its main function and its subprogram block."""

    insns: tuple[Insn, ...]
    main_len: int  # the main function is insns[:main_len]; subprograms follow
    subprog_starts: tuple[int, ...]  # every subprogram's first pc (>= main_len), sorted
    tail_calls: bool
    packet_loads: bool  # LD_ABS/LD_IND

    @property
    def main(self) -> tuple[Insn, ...]:
        return self.insns[: self.main_len]

    @property
    def subprogs(self) -> tuple[Insn, ...]:
        return self.insns[self.main_len :]


def shape_of(component: Component) -> Shape:
    insns = tuple(asm.decode(component.insns))
    if not insns:
        raise LinkError(f"unit {component.name}: the program has no instructions")
    starts: set[int] = set()
    tail_calls = packet_loads = False
    pc = 0
    while pc < len(insns):
        insn = insns[pc]
        rel = insn.pc_relative_target
        if rel is not None:
            target = pc + rel + 1
            if not 0 < target < len(insns):
                raise LinkError(f"unit {component.name}: instruction {pc} calls outside the program")
            starts.add(target)
        if insn.is_ld_imm64 and insn.src in (asm.PSEUDO_MAP_IDX, asm.PSEUDO_MAP_IDX_VALUE):
            # Indexes into an fd_array the component was loaded with, which the linker does not have.
            raise LinkError(f"unit {component.name}: map references by fd_array index are not supported")
        if insn.is_call and insn.src == asm.PSEUDO_KFUNC_CALL and insn.off:
            raise LinkError(f"unit {component.name}: calls to kfuncs of kernel modules are not supported")
        tail_calls |= insn.is_helper_call and insn.imm == asm.HELPER_TAIL_CALL
        packet_loads |= insn.is_packet_load
        pc += 2 if insn.is_ld_imm64 else 1
    main_len = min(starts, default=len(insns))
    for pc, insn in enumerate(insns[:main_len]):
        # The verifier keeps each jump inside its function; the linker moves code by that.
        to = asm.jump_target(pc, insn)
        if to is not None and not 0 <= to < main_len:
            raise LinkError(f"unit {component.name}: instruction {pc} jumps out of its main function")
    return Shape(insns, main_len, tuple(sorted(starts)), tail_calls, packet_loads)


def stack_above_main(shape: Shape, depths: tuple[int, ...]) -> int:
    """The deepest chain of frames the main function calls (subprograms and callbacks), each
    frame rounded up to 16 bytes as the verifier does for JITed programs. `depths` are the
    verifier's per-function stack depths, in the order functions start."""
    callees = _callees(shape)

    def chain(n: int, seen: frozenset[int]) -> int:
        if n in seen:  # recursion: the verifier refuses it anyway
            return 0
        return frame_size(depths[n]) + max((chain(m, seen | {n}) for m in callees[n]), default=0)

    return max((chain(m, frozenset({0})) for m in callees[0]), default=0)


def tail_call_prefix(shape: Shape, depths: tuple[int, ...]) -> int | None:
    """The most stack of the component's own frames below a function that tail-calls (0 when
    the main function does), or None without tail calls. The kernel allows a tail call only
    with less than 256 bytes of frames below it."""
    callees = _callees(shape)
    starts = (0, *shape.subprog_starts)
    ends = (*shape.subprog_starts, len(shape.insns))
    calls_tail = [
        any(i.is_helper_call and i.imm == asm.HELPER_TAIL_CALL for i in shape.insns[start:end])
        for start, end in zip(starts, ends, strict=True)
    ]

    def prefix(n: int, below: int, seen: frozenset[int]) -> int | None:
        if n in seen:
            return None
        found = [below] if calls_tail[n] else []
        for m in callees[n]:
            deeper = prefix(m, below + frame_size(depths[n]), seen | {n})
            if deeper is not None:
                found.append(deeper)
        return max(found, default=None)

    return prefix(0, 0, frozenset())


def _callees(shape: Shape) -> list[set[int]]:
    """For each function (main first, then subprograms by start), the functions it calls or
    passes as callbacks."""
    starts = (0, *shape.subprog_starts)
    ends = (*shape.subprog_starts, len(shape.insns))
    index = {start: n for n, start in enumerate(starts)}
    callees: list[set[int]] = [set() for _ in starts]
    for n, (start, end) in enumerate(zip(starts, ends, strict=True)):
        for pc in range(start, end):
            rel = shape.insns[pc].pc_relative_target
            if rel is not None:  # (the second half of an ld_imm64 has code 0: never a match)
                callees[n].add(index[pc + rel + 1])
    return callees


def frame_size(stack_depth: int) -> int:
    """A function's stack frame as the verifier counts it against the limits of a call chain
    (JITed programs: rounded up to 16 bytes)."""
    return (stack_depth + 15) & ~15


class Loaded(Instructions, Protocol):
    """What the linker reads of a bpfunits.load.program.LoadedProgram."""

    sha256: str
    tag: str
    maps: dict  # name -> a map reference with an `id`
    frags: bool


def component_of(name: str, loaded: Loaded, proceed_on: frozenset[int]) -> Component:
    """The component of a loaded program, which must stay open until the chain is loaded."""
    maps = tuple(sorted((map_name, ref.id) for map_name, ref in loaded.maps.items()))
    return Component(name, loaded, frozenset(proceed_on), loaded.sha256, loaded.tag, maps=maps, frags=loaded.frags)
