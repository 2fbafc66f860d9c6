"""Which instructions load a plain value (a constant, a variable, a global), learned from the
running compiler rather than from a list of opcode names.

The generator model reads the value a driver hands over (`gen.send(x)`) from the instruction
that pushed the call's one argument. Each CPython release renames or adds such instructions
(3.14's LOAD_FAST_BORROW and LOAD_SMALL_INT, 3.15's LOAD_COMMON_CONSTANT), so at import time
we compile small probes -- `sink(None)`, `sink(a)` with `a` a local, a cell, a free variable,
a global -- and note which instruction the compiler chose for each. A constant load is used
only where `dis` resolves its value to the literal the probe wrote, so an instruction that
`dis` cannot explain yields no value rather than a wrong one.

The probes are compiled on first use (`plain_loads()`), not at import: the generator model is
imported beside every asyncio program, most of which never send to a generator, and the
probes were 4-5 ms of such a program's `import asyncio`. The generator model proper asks for
them before the program starts; beside asyncio, its first generator hand-off pays them.
"""

from __future__ import annotations

import dis
from collections.abc import Iterator
from functools import cache
from types import CodeType
from typing import NamedTuple

# How a ValueRead finds its value (tracer/_handoffs.c reads these fields too).
READ_CONSTANT, READ_LOCAL, READ_CELL, READ_NAME = 0, 1, 2, 3

# Instructions that may sit between an argument's load and its CALL in any release.
_ALWAYS_PREFIXES = frozenset({"CACHE", "EXTENDED_ARG"})

_CONSTANT_PROBES = ("None", "True", "False", "0", "1", "-1", "255", "256", "1000000", "1.5",
                    "'text'", "b'bytes'", "(1, 2)", "...")

_CONSTANT_PROBE = """
def constant_{n}():
    sink({literal})
"""

_VARIABLE_PROBES = """
def local(a):
    sink(a)

def maybe_unbound(c):
    if c:
        a = 1
    sink(a)

def cell(a):
    def inner():
        return a
    sink(a)
    return inner

def outer(a):
    def free():
        sink(a)
    return free

def global_name():
    sink(G)

def method(g, a):
    g.send(a)
"""


class PlainLoads(NamedTuple):
    """The compiler's choices, by instruction name."""

    kinds: dict[str, int]  # a plain load -> READ_* kind
    method_loads: frozenset[str]  # the instructions that load `g.send` before calling it
    call_prefixes: frozenset[str]  # what may sit between the argument and its CALL


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes(constant)


def _instructions(code: CodeType) -> list[dis.Instruction]:
    return [i for i in dis.get_instructions(code) if i.opname != "CACHE"]


def _argument_and_call(code: CodeType) -> tuple[list[dis.Instruction], int, int]:
    """The instructions, the index of the first CALL and of the instruction that pushed its
    one argument (the nearest one before the call that pushes a value)."""
    instructions = _instructions(code)
    call = next(n for n, i in enumerate(instructions) if i.opname.startswith("CALL"))
    argument = call - 1
    while (instructions[argument].opname in _ALWAYS_PREFIXES
           or _pushes(instructions[argument]) <= 0):
        argument -= 1
    return instructions, argument, call


def _pushes(instruction: dis.Instruction) -> int:
    """The instruction's net stack effect (0 for one `dis` cannot tell)."""
    try:
        return dis.stack_effect(instruction.opcode, instruction.arg, jump=False)
    except ValueError:
        return 0


def learn() -> PlainLoads:
    """Compiles the probes and reads off the compiler's instructions."""
    source = "".join(_CONSTANT_PROBE.format(n=n, literal=literal)
                     for n, literal in enumerate(_CONSTANT_PROBES)) + _VARIABLE_PROBES
    module = compile(source, "<loopscope probes>", "exec")
    codes = {code.co_name: code for code in _codes(module)}
    kinds: dict[str, int] = {}
    refused: set[str] = set()
    for n, literal in enumerate(_CONSTANT_PROBES):
        instructions, argument, _ = _argument_and_call(codes[f"constant_{n}"])
        load = instructions[argument]
        expected = eval(literal)  # the probes' own literals, nothing else
        if load.argval == expected and type(load.argval) is type(expected):
            kinds.setdefault(load.opname, READ_CONSTANT)
        else:
            refused.add(load.opname)  # `dis` cannot tell its value: read nothing, never wrong
    for name, kind in (("local", READ_LOCAL), ("maybe_unbound", READ_LOCAL),
                       ("cell", READ_CELL), ("free", READ_CELL), ("global_name", READ_NAME)):
        instructions, argument, _ = _argument_and_call(codes[name])
        load = instructions[argument]
        if load.argval == ("G" if kind == READ_NAME else "a"):
            kinds.setdefault(load.opname, kind)
    kinds["LOAD_NAME"] = READ_NAME  # module and class bodies; unchanged since Python 2
    for opname in refused:
        if kinds.get(opname) == READ_CONSTANT:
            del kinds[opname]
    instructions, argument, call = _argument_and_call(codes["method"])
    method_loads = frozenset(i.opname for i in instructions[:argument] if i.argval == "send")
    prefixes = frozenset(i.opname for i in instructions[argument + 1:call]) | _ALWAYS_PREFIXES
    return PlainLoads(kinds, method_loads, prefixes)


@cache
def plain_loads() -> PlainLoads:
    """The compiler's choices, learned once, on first use."""
    return learn()


def read_kind(instruction: dis.Instruction, code: CodeType) -> int | None:
    """How to read the value `instruction` pushes (a READ_* kind), or None when it is not a
    plain load. Beyond the probes' instructions, one that takes a local variable as its
    argument and pushes exactly one value loads that variable (3.14 still emits plain
    LOAD_FAST where it cannot borrow, which the probes do not show)."""
    kind = plain_loads().kinds.get(instruction.opname)
    if kind is not None:
        return kind
    takes_a_variable = instruction.opcode in dis.haslocal or instruction.opcode in dis.hasfree
    if takes_a_variable and isinstance(instruction.argval, str) and _pushes(instruction) == 1:
        closure = code.co_cellvars + code.co_freevars
        return READ_CELL if instruction.argval in closure else READ_LOCAL
    return None
