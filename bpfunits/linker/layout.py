"""Pure assembly of a chain: ordered components become one instruction stream.

Layout, because the verifier splits subprograms at their first instruction and each runs to the
next one's start: first all of the chain's main code (prologue, every inlined main function with
its epilogue, calls to called components, the final return, then what is off the way on: the
blocks of inlined mains that end the chain (hotpath.py) and the counts of ending verdicts), then
every component's subprogram block unchanged, then every called component's whole program
unchanged. Inside a block nothing moves, so only pc-relative references from code that moved
(inlined mains, whose jumps all go by label, and the dispatcher's calls) are rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from bpfunits.linker import asm, hotpath
from bpfunits.linker.asm import FP, R0, R1, R2, R3, R6, Insn
from bpfunits.linker.component import LinkError, Shape, frame_size
from bpfunits.linker.flow import Known, exit_flow, low32, writes

STACK_MAX = 512
TAIL_CALL_STACK_MAX = 256


class Mode(str, Enum):
    INLINE = "inline"  # main function spliced into the chain's main function
    CALL = "call"  # whole program called as a bpf-to-bpf subprogram
    # After a component that never proceeds: left out, as it could never run (and the
    # verifier refuses unreachable code).
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Part:
    name: str
    shape: Shape
    proceed_on: frozenset[int]
    mode: Mode
    stack_depth: int  # bytes of stack the main function uses (inline parts)
    # Stack its frames need on top of the chain's main frame: the deepest chain of functions
    # its main function calls (inline), or of its own frames (called).
    stack_above: int = 0
    # Called parts that tail-call: their own stack below the deepest tail call (see
    # component.tail_call_prefix); None without tail calls.
    tail_call_prefix: int | None = None


CACHE_LINE = 64


@dataclass(frozen=True)
class CounterLayout:
    """The verdict counters of a chain's components, in the single value of a per-CPU array:
    one row per verdict code from `low` to `high` and a last one for any other code, each row one
    u64 per component (entered = the sum of a component's column). Verdict-major, so that the
    slots the components touch on the common path sit side by side (a 32-component chain: 4
    cache lines at most, not 32). Rows start on a cache line of the value.

    A component with one proceed verdict, followed by another that runs, has its count of that
    verdict derived rather than written: it is the number of packets that entered the next
    component. So going on through such a component costs nothing but its dispatch compare;
    the chain writes one count per packet where it ends, and one for each component with
    several proceed verdicts."""

    map_fd: int
    low: int
    high: int
    proceed_on: tuple[frozenset[int], ...]  # per component, in run order
    reachable: int  # the components that can run (those after one that never proceeds cannot)

    @property
    def components(self) -> int:
        return len(self.proceed_on)

    def derived(self, component: int) -> int | None:
        """The verdict whose count of `component` is derived (see above), or None."""
        codes = self.proceed_on[component]
        return next(iter(codes)) if len(codes) == 1 and component < self.reachable - 1 else None

    @property
    def rows(self) -> int:
        return self.high - self.low + 2

    @property
    def row_bytes(self) -> int:
        return -(-self.components * 8 // CACHE_LINE) * CACHE_LINE

    @property
    def value_size(self) -> int:
        return self.rows * self.row_bytes

    def offset(self, component: int, row: int) -> int:
        """Where in the value the count of `component` for row `row` (code low + row) lies."""
        return row * self.row_bytes + component * 8


@dataclass(frozen=True)
class Assembly:
    insns: tuple[Insn, ...]
    func_starts: tuple[int, ...]  # the first pc of every function, 0 included
    part_starts: tuple[int, ...]  # where each part's code (inlined main or called program) begins
    # The ld_imm64 that refers to the chain's counter map, and the one to its manifest map.
    counters_at: int | None = None
    manifest_at: int | None = None

    def with_maps(self, counters_fd: int | None, manifest_fd: int | None) -> Assembly:
        """The same chain referring to other maps of its own: another interface's."""
        if (counters_fd is None) != (self.counters_at is None) or (manifest_fd is None) != (self.manifest_at is None):
            raise ValueError("a chain takes the maps it was assembled with")
        insns = list(self.insns)
        for at, fd in ((self.counters_at, counters_fd), (self.manifest_at, manifest_fd)):
            if at is not None and fd is not None:
                insns[at] = insns[at].with_(imm=fd)
        return replace(self, insns=tuple(insns))


@dataclass
class _Jump:
    """An instruction whose offset or imm is set once the label's position is known."""

    at: int
    label: object
    field: str  # "off" (jumps) or "imm" (pseudo calls and function addresses)
    bias: int = 0  # added to the label's position (a target inside a block)


class _Emitter:
    def __init__(self) -> None:
        self.code: list[Insn] = []
        self.labels: dict[object, int] = {}
        self.jumps: list[_Jump] = []

    @property
    def pc(self) -> int:
        return len(self.code)

    def emit(self, *insns: Insn) -> None:
        self.code.extend(insns)

    def emit_to(self, insn: Insn, label: object, field: str = "off", bias: int = 0) -> None:
        self.jumps.append(_Jump(self.pc, label, field, bias))
        self.code.append(insn)

    def mark(self, label: object) -> None:
        self.labels[label] = self.pc

    def resolve(self) -> tuple[Insn, ...]:
        for jump in self.jumps:
            target = self.labels[jump.label] + jump.bias
            insn = self.code[jump.at]
            if jump.field == "off":
                self.code[jump.at] = insn.with_(off=asm.jump_off(jump.at, target))
            else:
                self.code[jump.at] = insn.with_(imm=target - jump.at - 1)
        return tuple(self.code)


_EXIT = "exit"
_PROLOGUE_MAX = 19  # manifest reference, context save, counter lookup and its check, final return
# Context reload, laundering, the exit of a far dispatch, the count of an ending verdict.
_PART_OVERHEAD_MAX = 28
_PER_CODE_MAX = 6  # per proceed verdict: its compare, and with counters its count and a jump on


def assemble(
    parts: list[Part],
    *,
    end_verdict: int,
    counters: CounterLayout | None = None,
    manifest_fd: int | None = None,
) -> Assembly:
    if not parts:
        raise LinkError("a chain needs at least one component")
    if any(p.mode is Mode.UNREACHABLE for p in parts):
        raise LinkError("unreachable components cannot be assembled")
    inline_depth = max((_round8(p.stack_depth) for p in parts if p.mode is Mode.INLINE), default=None)
    # Inlined components clobber every register, so the context lives in a stack slot below
    # their deepest one; a chain of called components keeps it in callee-saved r6.
    ctx_slot = None if inline_depth is None else -(inline_depth + 8)
    counter_slot = -((inline_depth or 0) + (16 if ctx_slot else 8))
    frame = -min(counter_slot if counters else 0, ctx_slot or 0)
    # A successful tail call returns another program's verdict, but verifiers before 6.18 (seen
    # on 6.1 and 6.12) take a tail-calling subprogram's fall-through return for its only one and
    # hard-wire the dispatch after the call on it: the verdict is laundered through a stack slot
    # that an atomic add leaves unknown to the verifier.
    verdict_slot = None
    if any(p.mode is Mode.CALL and p.shape.tail_calls for p in parts):
        frame += 8
        verdict_slot = -frame
    for part in parts:
        # The verifier's limit on the frames of one call chain, each rounded up to 16 bytes.
        if frame_size(frame) + part.stack_above > STACK_MAX:
            raise LinkError(
                f"unit {part.name}: its stack leaves no room for the chain's own {frame} bytes "
                f"({part.stack_above} bytes in the functions it calls, {STACK_MAX} at most in all)"
            )
        prefix = part.tail_call_prefix
        if prefix is not None and frame_size(frame) + prefix >= TAIL_CALL_STACK_MAX:
            raise LinkError(
                f"unit {part.name}: it makes tail calls, which the kernel allows only with less than "
                f"{TAIL_CALL_STACK_MAX} bytes of stack in the frames below; the chain's own frame takes {frame}"
            )

    # An upper bound of the main function's length: past 16 bits, jumps to the shared exit
    # may not reach it.
    main_bound = _PROLOGUE_MAX + sum(
        (p.shape.main_len if p.mode is Mode.INLINE else 1) + _PART_OVERHEAD_MAX + _PER_CODE_MAX * len(p.proceed_on)
        for p in parts
    )
    far = main_bound > asm.JUMP_OFF_MAX

    e = _Emitter()
    slow: list[int] = []  # parts whose ending verdicts are counted after the main code
    manifest_at = counters_at = None
    if manifest_fd is not None:
        # Only so that the manifest map is among the program's maps; r2 is free here.
        manifest_at = e.pc
        e.emit(*asm.ld_map_fd(R2, manifest_fd))
    if ctx_slot is not None:
        e.emit(asm.stx_dw(FP, R1, ctx_slot))
    else:
        e.emit(asm.mov64_reg(R6, R1))
    if counters:
        counters_at = _emit_counter_lookup(e, counters, counter_slot, ctx_slot, end_verdict)

    cold: dict[int, tuple[Shape, dict[int, object], dict[int, int]]] = {}  # blocks moved off the way on
    for i, part in enumerate(parts):
        if i and _clobbers_context(parts[i - 1], counters, i - 1):
            e.emit(asm.ldx_dw(R1, FP, ctx_slot) if ctx_slot is not None else asm.mov64_reg(R1, R6))
        routes: dict[int, object] = {}
        if part.mode is Mode.INLINE:
            e.mark(("part", i))
            routes = _routes(i, part, counters, far)
            follows = ("end", i) if ("end", i) in routes.values() else ("next", i)
            # Far: the blocks would sit past a 16-bit jump's reach.
            blocks = {} if far else hotpath.cold_blocks(part.shape.main, routes, follows, {_EXIT, ("slow", i)})
            _emit_inline(e, i, part.shape, routes, blocks)
            cold[i] = (part.shape, routes, blocks)
        else:
            e.emit_to(asm.call_pseudo(0), ("part", i), field="imm")
            if part.shape.tail_calls:
                assert verdict_slot is not None  # reserved above for every called part that tail-calls
                _emit_launder(e, verdict_slot)
        if part.mode is Mode.CALL or ("end", i) in routes.values():
            e.mark(("end", i))
            if counters:
                if _emit_counted_dispatch(e, counters, i, counter_slot, part.proceed_on, far):
                    slow.append(i)
            else:
                _emit_dispatch(e, part.proceed_on, far)
        elif ("slow", i) in routes.values():
            slow.append(i)
        e.mark(("next", i))
    if parts[-1].proceed_on:
        e.emit(asm.mov64_imm(R0, end_verdict))
    e.mark(_EXIT)
    e.emit(asm.exit_())
    # Off the way on, after it: each part's blocks that end the chain, then the count of its
    # ending verdicts, which the last block falls into.
    for i in range(len(parts)):
        if i in cold:
            shape, routes, blocks = cold[i]
            for j, k in blocks.items():
                for pc in range(j + 1, k + 1):
                    _emit_main_insn(e, i, shape, routes, pc)
        if counters and i in slow:
            e.mark(("slow", i))
            e.emit(*_count_any(counters, i, counter_slot), asm.exit_())

    func_starts = [0]
    for i, part in enumerate(parts):
        if part.mode is Mode.INLINE and part.shape.subprogs:
            e.mark(("subs", i))
            func_starts += [e.pc + s - part.shape.main_len for s in part.shape.subprog_starts]
            e.emit(*part.shape.subprogs)
    for i, part in enumerate(parts):
        if part.mode is Mode.CALL:
            e.mark(("part", i))
            func_starts += [e.pc] + [e.pc + s for s in part.shape.subprog_starts]
            e.emit(*part.shape.insns)
    insns = e.resolve()
    return Assembly(insns, tuple(func_starts), tuple(e.labels[("part", i)] for i in range(len(parts))), counters_at,
                    manifest_at)


def _round8(n: int) -> int:
    return (n + 7) & ~7



def _emit_inline(e: _Emitter, i: int, shape: Shape, routes: dict[int, object], cold: dict[int, int]) -> None:
    """The main function, each exit (and each jump to one in `routes`) sent to its route, and
    each block of `cold` left for after the main code (hotpath.py), its jump inverted."""
    if shape.main_len - 1 > asm.JUMP_OFF_MAX:
        raise LinkError("main function too long to inline")
    pc = 0
    while pc < shape.main_len:
        if pc in cold:
            e.mark(("pc", i, pc))
            e.emit_to(hotpath.invert(shape.main[pc]), ("pc", i, pc + 1))
            pc = cold[pc] + 1
        else:
            _emit_main_insn(e, i, shape, routes, pc)
            pc += 1


def _emit_main_insn(e: _Emitter, i: int, shape: Shape, routes: dict[int, object], pc: int) -> None:
    """Instruction `pc` of part `i`'s main function, wherever it is placed: every jump by label,
    so that moving a block moves what it refers to."""
    insn = shape.main[pc]
    e.mark(("pc", i, pc))
    route = routes.get(pc)
    if route == _EXIT and (insn.is_exit or insn.code == asm.JMP | asm.JA):
        e.emit(asm.exit_())  # the chain's exit (without counters) returns r0 as any exit does
    elif insn.is_exit:
        e.emit_to(asm.ja(0), route)
    elif route is not None:
        e.emit_to(insn, route)
    elif insn.pc_relative_target is not None:
        sub = pc + insn.imm + 1  # a subprogram: shape.subprogs[sub - main_len]
        e.emit_to(insn, ("subs", i), field="imm", bias=sub - shape.main_len)
    elif (to := asm.jump_target(pc, insn)) is not None:
        e.emit_to(insn, ("pc", i, to), field="imm" if insn.code == asm.JMP32 | asm.JA else "off")
    else:
        e.emit(insn)


def _routes(i: int, part: Part, counters: CounterLayout | None, far: bool) -> dict[int, object]:
    """Where each exit of part `i`'s main function goes, and each jump to an exit that goes
    elsewhere: the dispatch (label ("end", i)), or, where flow.py knows the verdict on that
    way, straight to what follows (("next", i)) or to the chain's end (the exit, or with
    counters ("slow", i), which counts it). A verdict whose count is written on its way on goes
    through the dispatch, which counts it."""
    main = part.shape.main
    exits = [pc for pc, insn in enumerate(main) if insn.is_exit]
    through_dispatch: dict[int, object] = {pc: ("end", i) for pc in exits}
    if far or not part.proceed_on:
        return through_dispatch  # far: labels past the main function may be out of a jump's reach
    flow = exit_flow(main)
    proceed = {low32(code) for code in part.proceed_on}
    uncounted = None if counters is None else counters.derived(i)

    def route(r0: Known) -> object:
        if r0 is None:
            return ("end", i)
        if r0 in proceed:
            return ("next", i) if counters is None or (uncounted is not None and low32(uncounted) == r0) else ("end", i)
        return _EXIT if counters is None else ("slow", i)

    routes = {pc: route(flow.exits.get(pc)) for pc in exits}
    # A jump goes past its exit only where that exit is still reached another way: the
    # verifier refuses unreachable instructions.
    routes |= {pc: route(r0) for pc, r0 in flow.jumps.items() if pc + main[pc].off + 1 in flow.exits}
    if ("end", i) not in routes.values() and ("next", i) not in routes.values():
        return through_dispatch  # the flow would end the chain here on every way: nothing after it would be reachable
    return routes


def _clobbers_context(part: Part, counters: CounterLayout | None, i: int) -> bool:
    """Whether r1 may no longer hold the context once part `i` is done: it is reloaded then.
    An inlined main function that never writes r1 leaves it, and so does the dispatch unless
    it counts a verdict on the way on (the count uses r1)."""
    if part.mode is not Mode.INLINE or writes(part.shape.main, R1):
        return True
    return counters is not None and (len(part.proceed_on) != 1 or counters.derived(i) is None)


def _emit_launder(e: _Emitter, slot: int) -> None:
    """r0 as it is, but unknown to the verifier (r1 is free: the next part reloads the context)."""
    e.emit(asm.stx_dw(FP, R0, slot), asm.mov64_imm(R1, 0), asm.atomic_add_dw(FP, R1, slot), asm.ldx_dw(R0, FP, slot))


def _emit_dispatch(e: _Emitter, proceed_on: frozenset[int], far: bool) -> None:
    """Go on to what follows when w0 is a proceed verdict, else return it: through the shared
    exit, or, when that may be `far` for a 16-bit jump, through an exit of its own."""
    codes = sorted(proceed_on)
    if not codes:
        # Only ever the last part: nothing after a component that never proceeds is assembled.
        return
    # JMP32: a tc verdict of -1 may sit in r0 as 0xffffffff; only the low 32 bits are returned.
    last = len(codes) if far else len(codes) - 1
    for n, code in enumerate(codes[:last]):
        e.emit(asm.jmp32_imm(asm.JEQ, R0, code, last - n))
    if far:
        e.emit(asm.exit_())
    else:
        e.emit_to(asm.jmp32_imm(asm.JNE, R0, codes[-1], 0), _EXIT)


def _emit_counter_lookup(
    e: _Emitter, c: CounterLayout, slot: int, ctx_slot: int | None, end_verdict: int
) -> int:
    """Keep a pointer to this CPU's counter value in `slot` (key 0 of a one-entry array);
    returns where the counter map is referred to."""
    at = e.pc + 3
    e.emit(
        asm.st_w(FP, slot, 0),
        asm.mov64_reg(R2, FP),
        asm.add64_imm(R2, slot),
        *asm.ld_map_fd(R1, c.map_fd),
        asm.call_helper(asm.HELPER_MAP_LOOKUP_ELEM),
        # Key 0 of a one-entry array always has a value, but only kernels with the verifier's
        # map-lookup nullness elision (late 2024) know that; the others refuse an unchecked
        # pointer. Never taken: the chain would end as if every component let the packet go on.
        asm.jmp_imm(asm.JNE, R0, 0, 2),
        asm.mov64_imm(R0, end_verdict),
        asm.exit_(),
        asm.stx_dw(FP, R0, slot),
    )
    e.emit(asm.ldx_dw(R1, FP, ctx_slot) if ctx_slot is not None else asm.mov64_reg(R1, R6))
    return at


def _emit_counted_dispatch(
    e: _Emitter, c: CounterLayout, i: int, slot: int, proceed_on: frozenset[int], far: bool
) -> bool:
    """Dispatch as _emit_dispatch does, counting the verdict on the way. A proceed verdict is
    counted in its own known slot (4 instructions), unless its count is derived (CounterLayout):
    then going on costs the compare alone. Any other verdict is counted by the generic code,
    which is placed after the main code (returns True: the caller emits it at label ("slow", i))
    unless that may be too far away."""
    codes = sorted(proceed_on)
    if not codes:
        e.emit(*_count_any(c, i, slot))  # the chain ends here, whatever the verdict
        return False
    counted = c.derived(i) is None
    for code in codes[:-1]:
        e.emit_to(asm.jmp32_imm(asm.JEQ, R0, code, 0), ("hot", i, code))
    if far:
        ending = [*_count_any(c, i, slot), asm.exit_()]
        e.emit(asm.jmp32_imm(asm.JEQ, R0, codes[-1], len(ending)), *ending)
    else:
        e.emit_to(asm.jmp32_imm(asm.JNE, R0, codes[-1], 0), ("slow", i))
    if counted:
        e.emit(*_count_known(c, i, slot, codes[-1]))
    for code in codes[:-1]:
        e.emit_to(asm.ja(0), ("next", i))
        e.mark(("hot", i, code))
        e.emit(*_count_known(c, i, slot, code))
    return not far


def _count_known(c: CounterLayout, i: int, slot: int, code: int) -> list[Insn]:
    """counters[row of `code`][i] += 1 (r1, r3 scratch)."""
    off = c.offset(i, code - c.low)
    return [asm.ldx_dw(R1, FP, slot), asm.ldx_dw(R3, R1, off), asm.add64_imm(R3, 1), asm.stx_dw(R1, R3, off)]


def _count_any(c: CounterLayout, i: int, slot: int) -> list[Insn]:
    """counters[row of w0, or the last row for an unknown code][i] += 1, keeping r0."""
    last = c.rows - 1
    return [
        asm.mov32_reg(R2, R0),
        *([asm.add32_imm(R2, -c.low)] if c.low else []),
        asm.jmp32_imm(asm.JLE, R2, last - 1, 1),
        asm.mov32_imm(R2, last),
        asm.mul64_imm(R2, c.row_bytes),
        asm.ldx_dw(R1, FP, slot),
        asm.add64_reg(R1, R2),
        asm.ldx_dw(R3, R1, c.offset(i, 0)),
        asm.add64_imm(R3, 1),
        asm.stx_dw(R1, R3, c.offset(i, 0)),
    ]
