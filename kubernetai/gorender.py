# -*- test-case-name: tests.test_gotemplate -*-
"""
A parsed Go template (L{kubernetai.gotemplate}) rendered over its data as
Go's text/template executes it, with Go's errors where Go fails (worded as
Go's, at the same line and column).

Pure.  The data's values are Python's (str, int, bool, list, dict) and
L{Struct}s, with L{Uint64}, L{Uint16} and L{Uint8} for Go's unsigned integers and
L{NO_VALUE} for Go's invalid value (a missing map key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from kubernetai.gotemplate import (Action, Branch, Command, Dot, Field, Function, Literal, Node, Pipeline, Template,
                                   TemplateError, Text)


# No record's text is longer (its data is at most 65,535 octets); more text, or more turns of range, would
# only take time and memory.
MAX_TEXT = 65535


class Uint64(int):
    """A Go uint64 (what parseInt returns)."""


class Uint8(int):
    """A Go byte (what index gives of a string)."""


class Uint16(int):
    """A Go uint16 (a question's type and class, a message's ID)."""


class _NoValue:
    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


@dataclass(frozen=True)
class Struct:
    """A Go struct (or pointer to one) as templates see it: its type's name, fields and methods."""

    type_name: str
    fields: dict[str, Any]
    methods: dict[str, tuple[tuple[type, ...], Callable]] = field(default_factory=dict)
    # What Go prints for it (its String method); None: printing it is not supported.
    text: str | None = None


def execute(template: Template, data: Any) -> str:
    """C{template} rendered with C{data} as its dot; a TemplateError worded as Go's where Go would fail."""
    out: list[str] = []
    _Executor(template).walk(template.nodes, data, out)
    return "".join(out)


class _Executor:
    def __init__(self, template: Template) -> None:
        self.template = template
        self.written = 0
        self.turns = 0  # of every range together

    def fail(self, node: Node, message: str) -> TemplateError:
        return TemplateError(f'template: {self.template.location(node)}: executing "{self.template.name}" '
                             f"at <{node}>: {message}")

    def walk(self, nodes: tuple[Node, ...], dot, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.write(node, node.text, out)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipeline, dot)
                try:
                    self.write(node.pipeline, go_print(value), out)
                except TemplateError as error:
                    raise self.fail(node.pipeline, str(error)) from None
            elif node.keyword == "if":
                self.walk(node.body if truth(self.pipeline(node.pipeline, dot)) else node.otherwise, dot, out)
            else:
                self.range(node, dot, out)

    def write(self, node: Node, text: str, out: list[str]) -> None:
        self.written += len(text)
        if self.written > MAX_TEXT:
            raise self.fail(node, f"more than {MAX_TEXT} characters of text are not supported by kubernetai")
        out.append(text)

    def range(self, node: Branch, dot, out: list[str]) -> None:
        value = self.pipeline(node.pipeline, dot)
        if isinstance(value, dict):
            items = [value[key] for key in sorted(value)]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, int) and not isinstance(value, bool):
            items = range(max(0, min(value, MAX_TEXT + 1)))
        elif value is NO_VALUE:
            items = []
        else:
            raise self.fail(node.pipeline, f"range can't iterate over a value of type {go_type(value)}")
        for item in items:
            self.turns += 1
            if self.turns > MAX_TEXT:
                raise self.fail(node.pipeline, f"more than {MAX_TEXT} turns of range are not supported by kubernetai")
            self.walk(node.body, item, out)
        if not items:
            self.walk(node.otherwise, dot, out)

    def pipeline(self, pipeline: Pipeline, dot):
        value = _MISSING
        for command in pipeline.commands:
            value = self.command(command, dot, value)
        return value

    def command(self, command: Command, dot, final):
        first, args = command.args[0], command.args[1:]
        if isinstance(first, Field):
            return self.field(dot, first, args, final)
        if isinstance(first, Function):
            return self.call(first, command, args, dot, final)
        if args or final is not _MISSING:
            raise self.fail(command if isinstance(first, Pipeline) else first,
                            f"can't give argument to non-function {first}")
        if isinstance(first, Pipeline):
            return self.pipeline(first, dot)
        return dot if isinstance(first, Dot) else first.value

    def field(self, dot, node: Field, args, final):
        receiver = dot
        for number, name in enumerate(node.names):
            last = number == len(node.names) - 1
            has_args = last and (bool(args) or final is not _MISSING)
            receiver = self.field_of(receiver, node, name, args if last else (), final if last else _MISSING,
                                     has_args, dot)
        return receiver

    def field_of(self, receiver, node: Field, name: str, args, final, has_args: bool, dot):
        if isinstance(receiver, Struct):
            if name in receiver.methods:
                types, method = receiver.methods[name]
                return self.invoke(node, node, name, types, method, args, dot, final)
            if name in receiver.fields:
                if has_args:
                    raise self.fail(node, f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            raise self.fail(node, f"can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.fail(node, f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if receiver is NO_VALUE:  # Go: a field of no value is no value, arguments or not
            return NO_VALUE
        raise self.fail(node, f"can't evaluate field {name} in type {go_type(receiver)}")

    def call(self, node: Function, command: Node, args, dot, final):
        types, implementation = FUNCTIONS[node.name]
        return self.invoke(node, command, node.name, types, implementation, args, dot, final)

    def invoke(self, node: Node, command: Node, name: str, types, implementation, args, dot, final):
        """Call C{implementation} with C{args} (then C{final}) checked against its parameter C{types}, as Go's
        evalCall does.

        C{types} ends with C{...} for a variadic function taking any values after its fixed ones.
        """
        variadic = bool(types) and types[-1] is Ellipsis
        fixed = types[:-1] if variadic else types
        count = len(args) + (final is not _MISSING)
        if count < len(fixed) or (not variadic and count != len(fixed)):
            want = f"at least {len(fixed)}" if variadic else str(len(fixed))
            raise self.fail(node, f"wrong number of args for {name}: want {want} got {count}")
        values = [self.argument(arg, fixed[i] if i < len(fixed) else object, dot) for i, arg in enumerate(args)]
        if final is not _MISSING:
            values.append(self.checked(node, final, fixed[len(args)] if len(args) < len(fixed) else object))
        try:
            return implementation(*values)
        except _CallError as error:
            raise self.fail(command, f"error calling {name}: {error}") from None

    def argument(self, node: Node, kind: type, dot):
        if isinstance(node, Literal):
            if kind is object or isinstance(node.value, kind) and not (kind is int and isinstance(node.value, bool)):
                return node.value
            expected = {int: "integer", str: "string", bool: "bool"}[kind]
            raise self.fail(node, f"expected {expected}; found {node}")
        if isinstance(node, Dot):
            value = dot
        elif isinstance(node, Field):
            value = self.field(dot, node, (), _MISSING)
        elif isinstance(node, Function):
            value = self.call(node, node, (), dot, _MISSING)
        else:
            value = self.pipeline(node, dot)
        return self.checked(node, value, kind)

    def checked(self, node: Node, value, kind: type):
        if kind is object:
            return value
        if value is NO_VALUE:
            raise self.fail(node, f"invalid value; expected {go_type_name(kind)}")
        if go_type(value) != go_type_name(kind):
            raise self.fail(node, f"wrong type for value; expected {go_type_name(kind)}; got {go_type(value)}")
        return value


_MISSING = object()


class _CallError(Exception):
    """A function's error: Go's template stops with C{error calling NAME: ...}."""


def go_type_name(kind: type) -> str:
    return {int: "int", str: "string", bool: "bool"}[kind]


def go_type(value) -> str:
    """The Go type a value stands for, as Go's errors name it."""
    if isinstance(value, Struct):
        return value.type_name
    if isinstance(value, list):
        return "[]" + (go_type(value[0]) if value else "string")
    for kind, name in _GO_TYPES:  # bool and the unsigned before int, which they subclass
        if isinstance(value, kind):
            return name
    return "interface {}"


_GO_TYPES = ((bool, "bool"), (Uint64, "uint64"), (Uint16, "uint16"), (Uint8, "uint8"), (int, "int"), (str, "string"),
             (dict, "map[string]string"))


def truth(value) -> bool:
    """Go's truth of a value: false for zero values, empty collections and no value."""
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, Struct):
        return True
    return bool(value)


def go_print(value) -> str:
    """What Go's template prints for C{value} (fmt's %v)."""
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(go_print(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_print(value[key])}" for key in sorted(value)) + "]"
    if isinstance(value, Struct) and value.text is not None:
        return value.text
    raise TemplateError(f"printing a value of type {go_type(value)} is not supported by kubernetai")


def index(item, *indexes):
    """Go's C{index}: C{item[i][j]...} of lists and strings (integer indexes; a string's bytes) and maps (string
    keys; a missing key: "")."""
    for key in indexes:
        if isinstance(item, (list, str)):
            if key is NO_VALUE:
                raise _CallError("cannot index slice/array with nil")
            if isinstance(key, bool) or not isinstance(key, int):
                raise _CallError(f"cannot index slice/array with type {go_type(key)}")
            sequence = item.encode("utf-8") if isinstance(item, str) else item
            if not 0 <= key < len(sequence):
                raise _CallError(f"index out of range: {key}")
            item = Uint8(sequence[key]) if isinstance(item, str) else sequence[key]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise _CallError(f"value has type {go_type(key)}; should be string")
            item = item.get(key, "")
        elif item is NO_VALUE or item is None:
            raise _CallError("index of untyped nil")
        else:
            raise _CallError(f"can't index item of type {go_type(item).lstrip('*')}")
    return item


_PREFIXES = {"0x": 16, "0o": 8, "0b": 2}


def parse_uint(text: str, base: int, bit_size: int) -> Uint64:
    """Go's strconv.ParseUint, with its errors."""
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def failure(reason: str) -> _CallError:
        return _CallError(f"strconv.ParseUint: parsing {quoted}: {reason}")

    if not text:
        raise failure("invalid syntax")
    digits = text
    underscores = base == 0
    if base == 0:
        base = 10
        lower = text.lower()
        if lower[:2] in _PREFIXES and len(text) > 2:
            base, digits = _PREFIXES[lower[:2]], text[2:]
        elif text[0] == "0":
            base, digits = 8, text[1:] or "0"
        if "_" in text and not _underscores_ok(text):
            raise failure("invalid syntax")
        digits = digits.replace("_", "")
    elif not 2 <= base <= 36:
        raise _CallError(f"strconv.ParseUint: parsing {quoted}: invalid base {base}")
    if bit_size == 0:
        bit_size = 64
    elif not 0 < bit_size <= 64:
        raise _CallError(f"strconv.ParseUint: parsing {quoted}: invalid bit size {bit_size}")
    if not digits or not underscores and "_" in digits or digits[0] in "+-":
        raise failure("invalid syntax")
    try:
        value = int(digits, base)
    except ValueError:
        raise failure("invalid syntax") from None
    if value >= 1 << bit_size:
        raise failure("value out of range")
    return Uint64(value)


def _underscores_ok(text: str) -> bool:
    """Go's underscoreOK: underscores only between digits, or between a base prefix and a digit."""
    prefixed = text[:2].lower() in _PREFIXES
    body = text[2:] if prefixed else text
    return "__" not in body and not body.endswith("_") and (prefixed or not body.startswith("_"))


# name: (parameter types, with ... for any further values; implementation)
FUNCTIONS: dict[str, tuple[tuple, Callable]] = {
    "index": ((object, ...), index),
    "parseInt": ((str, int, int), parse_uint),
}
