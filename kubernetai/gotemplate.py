# -*- test-case-name: tests.test_gotemplate -*-
"""
The part of Go's text/template that CoreDNS's template plugin documents and
tests: text and actions with trim markers (C{{{- }} and C{ -}}}), fields
(C{.Name}, C{.Group.a}), methods with arguments (C{.Meta "name"}), string,
raw string, integer and boolean literals, parenthesized pipelines,
pipelines with C{|}, C{if}/C{else if}/C{else}/C{end}, C{range}/C{else}/C{end}
and the functions the template plugin gives (C{parseInt}, Go's C{index}).

Pure: L{parse} turns a template's text into a tree, or a L{TemplateError}
saying, as Go's parser would, what is wrong; anything else of Go's language
(variables, C{with}, comments, other functions...) is refused there as not
supported, never run differently.  L{execute} renders a tree over the data,
raising a L{TemplateError} worded as Go's execution error where Go fails.
The data's values are Python's (str, int, bool, list, dict) and L{Struct}s,
with L{Uint64} and L{Uint16} for Go's unsigned integers, L{NO_VALUE} for
Go's invalid value (a missing map key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Union

KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break",
                      "continue", "nil", "true", "false"})
GO_BUILTINS = frozenset({"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
                         "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne"})

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<raw>`[^`]*`)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)(?![.\w]))
    | (?P<identifier>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<dot>\.)(?![\w.])
    | (?P<punct>[|()])
    """,
    re.VERBOSE,
)
_GO_ESCAPE = re.compile(r"""\\(?:([abfnrtv\\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3}))""")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
                   '"': '"'}
_TRIM_SPACE = " \t\r\n"


class TemplateError(Exception):
    """A template Go would not parse or could not execute, or one we do not support."""


class Uint64(int):
    """A Go uint64 (what parseInt returns)."""


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


# The tree.  Every node knows its offset in the text (for Go's error locations) and prints as Go's does.
@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: Any
    source: str

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class Dot(Node):
    def __str__(self) -> str:
        return "."


@dataclass(frozen=True)
class Field(Node):
    names: tuple[str, ...]

    def __str__(self) -> str:
        return "".join("." + name for name in self.names)


@dataclass(frozen=True)
class Function(Node):
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Command(Node):
    args: tuple[Node, ...]

    def __str__(self) -> str:
        return " ".join(f"({arg})" if isinstance(arg, Pipeline) else str(arg) for arg in self.args)


@dataclass(frozen=True)
class Pipeline(Node):
    commands: tuple[Command, ...]

    def __str__(self) -> str:
        return " | ".join(str(command) for command in self.commands)


@dataclass(frozen=True)
class Text(Node):
    text: str


@dataclass(frozen=True)
class Action(Node):
    pipeline: Pipeline


@dataclass(frozen=True)
class Branch(Node):
    """C{if} or C{range}: a pipeline, the nodes it runs, and those of its C{else}."""

    keyword: str
    pipeline: Pipeline
    body: tuple[Node, ...]
    otherwise: tuple[Node, ...]


@dataclass(frozen=True)
class Template:
    """A parsed template: its name (for errors), its text and its nodes."""

    name: str
    text: str
    nodes: tuple[Node, ...]

    def location(self, node: Node) -> str:
        """C{NAME:LINE:COLUMN} of C{node}, as Go's errors give it."""
        before = self.text[: node.pos]
        newline = before.rfind("\n")
        column = node.pos if newline == -1 else node.pos - newline - 1
        return f"{self.name}:{before.count(chr(10)) + 1}:{column}"


def parse(name: str, text: str) -> Template:
    """The tree of C{text}; a TemplateError naming C{name} and the line for anything Go refuses or we do not support."""
    return Template(name, text, _Parser(name, text).parse())


@dataclass
class _Action:
    pos: int  # where the action's first token is
    line: int
    tokens: list[tuple[str, str, int]]  # (kind, text, pos)


class _Parser:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.items = self._split()
        self.index = 0

    def error(self, line: int, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line}: {message}")

    def _split(self) -> list[Text | _Action]:
        """The text between actions, trimmed as the markers ask, and each action's tokens."""
        items: list[Text | _Action] = []
        position = 0
        trim_next = False
        while True:
            start = self.text.find("{{", position)
            chunk = self.text[position:] if start == -1 else self.text[position:start]
            if trim_next:
                chunk = chunk.lstrip(_TRIM_SPACE)
            if start == -1:
                if chunk:
                    items.append(Text(position, chunk))
                return items
            line = self.text.count("\n", 0, start) + 1
            inner = start + 2
            if self.text.startswith("-", inner) and self.text[inner + 1: inner + 2] in tuple(_TRIM_SPACE):
                chunk = chunk.rstrip(_TRIM_SPACE)
                inner += 2
            if chunk:
                items.append(Text(position, chunk))
            if self.text.startswith("/*", inner):
                raise self.error(line, "comments ({{/* */}}) are not supported by kubernetai")
            end = self.text.find("}}", inner)
            if end == -1:
                raise self.error(line, "unclosed action")
            close = end
            trim_next = end - 2 >= inner and self.text[end - 1] == "-" and self.text[end - 2] in _TRIM_SPACE
            if trim_next:
                close = end - 1
            items.append(_Action(inner, line, self._tokens(inner, close, line)))
            position = end + 2

    def _tokens(self, start: int, end: int, line: int) -> list[tuple[str, str, int]]:
        tokens = []
        position = start
        while position < end:
            match = _TOKEN.match(self.text, position, end)
            if match is None:
                rest = self.text[position:end].split()[0]
                if rest.startswith("$"):
                    raise self.error(line, f"variables ({rest}) are not supported by kubernetai")
                if rest[:1] in "'0123456789.":
                    raise self.error(line, f"the constant {rest} is not supported by kubernetai (integers only)")
                raise self.error(line, f"unexpected {rest!r} in command")
            if match.lastgroup != "space":
                tokens.append((match.lastgroup, match.group(), position))
            position = match.end()
        return tokens

    def parse(self) -> tuple[Node, ...]:
        nodes, ending = self._list()
        if ending is not None:
            raise self.error(ending.line, f"unexpected {{{{{ending.tokens[0][1]}}}}}")
        return nodes

    def _list(self) -> tuple[tuple[Node, ...], _Action | None]:
        """Nodes up to an C{else} or C{end} action (returned) or the end of the text (None)."""
        nodes: list[Node] = []
        while self.index < len(self.items):
            item = self.items[self.index]
            self.index += 1
            if isinstance(item, Text):
                nodes.append(item)
                continue
            if not item.tokens:
                raise self.error(item.line, "missing value for command")
            kind, word, _ = item.tokens[0]
            if kind == "identifier" and word in ("else", "end"):
                return tuple(nodes), item
            if kind == "identifier" and word in ("if", "range"):
                nodes.append(self._branch(item, word, item.tokens[1:]))
            elif kind == "identifier" and word in KEYWORDS - {"true", "false"}:
                raise self.error(item.line, f"{{{{{word}}}}} is not supported by kubernetai")
            else:
                nodes.append(Action(item.pos, self._pipeline(item, item.tokens)))
        return tuple(nodes), None

    def _branch(self, item: _Action, keyword: str, tokens) -> Branch:
        if not tokens:
            raise self.error(item.line, f"missing value for {keyword}")
        pipeline = self._pipeline(item, tokens)
        body, ending = self._list()
        if ending is None:
            raise self.error(self.text.count("\n") + 1, "unexpected EOF")
        otherwise: tuple[Node, ...] = ()
        if ending.tokens[0][1] == "else":
            rest = ending.tokens[1:]
            if rest and rest[0][1] == "if" and keyword == "if":
                return Branch(item.pos, keyword, pipeline, body, (self._branch(ending, "if", rest[1:]),))
            if rest:
                raise self.error(ending.line, f"unexpected {rest[0][1]!r} in else")
            otherwise, ending = self._list()
            if ending is None or ending.tokens[0][1] != "end":
                raise self.error(self.text.count("\n") + 1 if ending is None else ending.line,
                                 "unexpected EOF" if ending is None else "expected end; found {{else}}")
        if len(ending.tokens) > 1:
            raise self.error(ending.line, f"unexpected {ending.tokens[1][1]!r} in end")
        return Branch(item.pos, keyword, pipeline, body, otherwise)

    def _pipeline(self, item: _Action, tokens, start: int = 0) -> Pipeline:
        """The pipeline of C{tokens} from C{start} up to its end (or a closing parenthesis, not consumed)."""
        self._at = start
        commands = []
        while True:
            args = []
            while self._at < len(tokens) and tokens[self._at][1] not in ("|", ")"):
                args.append(self._operand(item, tokens))
            if not args:
                raise self.error(item.line, "missing value for command")
            commands.append(Command(args[0].pos, tuple(args)))
            if self._at < len(tokens) and tokens[self._at][1] == "|":
                self._at += 1
                continue
            break
        for number, command in enumerate(commands[1:], start=2):
            if isinstance(command.args[0], (Literal, Dot)):
                raise self.error(item.line, f"non executable command in pipeline stage {number}")
        return Pipeline(commands[0].pos, tuple(commands))

    def _operand(self, item: _Action, tokens) -> Node:
        kind, text, pos = tokens[self._at]
        self._at += 1
        if kind == "punct":  # "(": ")" and "|" end the loop above
            inner = self._pipeline(item, tokens, self._at)
            if self._at >= len(tokens) or tokens[self._at][1] != ")":
                raise self.error(item.line, "unclosed left paren")
            self._at += 1
            if self._at < len(tokens) and tokens[self._at][0] == "field" and tokens[self._at][2] == tokens[self._at - 1][2] + 1:
                raise self.error(item.line, "fields of a parenthesized value are not supported by kubernetai")
            return Pipeline(pos, inner.commands)
        if kind == "field":
            return Field(pos, tuple(text[1:].split(".")))
        if kind == "dot":
            return Dot(pos)
        if kind in ("string", "raw"):
            return Literal(pos, self._unquote(item, kind, text), text)
        if kind == "number":
            return Literal(pos, _go_int(text), text)
        if text in ("true", "false"):
            return Literal(pos, text == "true", text)
        if text in KEYWORDS:
            raise self.error(item.line, f"unexpected {text!r} in operand")
        if text not in FUNCTIONS:
            if text in GO_BUILTINS:
                raise self.error(item.line, f'function "{text}" is not supported by kubernetai')
            raise self.error(item.line, f'function "{text}" not defined')
        return Function(pos, text)

    def _unquote(self, item: _Action, kind: str, text: str) -> str:
        if kind == "raw":
            return text[1:-1].replace("\r", "")
        body = text[1:-1]
        if "\\" in _GO_ESCAPE.sub("", body):
            raise self.error(item.line, f"malformed string: {text}")
        return _GO_ESCAPE.sub(_go_escape, body)


def _go_escape(match: re.Match) -> str:
    simple, hex2, hex4, hex8, octal = match.groups()
    if simple:
        return _SIMPLE_ESCAPES[simple]
    return chr(int(hex2 or hex4 or hex8, 16) if not octal else int(octal, 8))


def _go_int(text: str) -> int:
    """An integer constant as Go reads it (C{010} is octal)."""
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        text = text.replace(digits, "0o" + digits[1:], 1)
    return int(text, 0)


# Execution.
Value = Union[str, int, bool, list, dict, Struct, _NoValue, None]


def execute(template: Template, data: Any) -> str:
    """C{template} rendered with C{data} as its dot; a TemplateError worded as Go's where Go would fail."""
    out: list[str] = []
    _Executor(template).walk(template.nodes, data, out)
    return "".join(out)


class _Executor:
    def __init__(self, template: Template) -> None:
        self.template = template

    def fail(self, node: Node, message: str) -> TemplateError:
        return TemplateError(f'template: {self.template.location(node)}: executing "{self.template.name}" '
                             f"at <{node}>: {message}")

    def walk(self, nodes: tuple[Node, ...], dot, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipeline, dot)
                try:
                    out.append(go_print(value))
                except TemplateError as error:
                    raise self.fail(node.pipeline, str(error)) from None
            elif node.keyword == "if":
                self.walk(node.body if truth(self.pipeline(node.pipeline, dot)) else node.otherwise, dot, out)
            else:
                self.range(node, dot, out)

    def range(self, node: Branch, dot, out: list[str]) -> None:
        value = self.pipeline(node.pipeline, dot)
        if isinstance(value, dict):
            items = [value[key] for key in sorted(value)]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, int) and not isinstance(value, bool):
            items = list(range(value))
        elif value is NO_VALUE:
            items = []
        else:
            raise self.fail(node.pipeline, f"range can't iterate over {go_print(value)}")
        for item in items:
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
            raise self.fail(first, f"can't give argument to non-function {first}")
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
        if receiver is NO_VALUE:
            raise self.fail(node, f"nil pointer evaluating interface {{}}.{name}")
        raise self.fail(node, f"can't evaluate field {name} in type {go_type(receiver)}")

    def call(self, node: Function, command: Node, args, dot, final):
        types, implementation = FUNCTIONS[node.name]
        return self.invoke(node, command, node.name, types, implementation, args, dot, final)

    def invoke(self, node: Node, command: Node, name: str, types, implementation, args, dot, final):
        """Call C{implementation} with C{args} (then C{final}) checked against its parameter C{types}, as Go's evalCall does.

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
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Uint64):
        return "uint64"
    if isinstance(value, Uint16):
        return "uint16"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]" + (go_type(value[0]) if value else "string")
    if isinstance(value, dict):
        return "map[string]string"
    if isinstance(value, Struct):
        return value.type_name
    return "interface {}"


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
    """Go's C{index}: C{item[i][j]...} for lists (integer indexes) and maps (string keys; a missing key: "")."""
    for key in indexes:
        if isinstance(item, list):
            if isinstance(key, bool) or not isinstance(key, int):
                raise _CallError(f"cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(item):
                raise _CallError(f"index out of range: {key}")
            item = item[key]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise _CallError(f"value has type {go_type(key)}; should be string")
            item = item.get(key, "")
        elif item is NO_VALUE or item is None:
            raise _CallError("index of untyped nil")
        else:
            raise _CallError(f"can't index item of type {go_type(item)}")
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


def go_string(template: Template) -> str:
    """The template as Go's C{Tree.Root.String()} writes it back (CoreDNS's metrics label it so)."""
    return _nodes_string(template.nodes)


def _nodes_string(nodes: tuple[Node, ...]) -> str:
    parts = []
    for node in nodes:
        if isinstance(node, Text):
            parts.append(node.text)
        elif isinstance(node, Action):
            parts.append(f"{{{{{node.pipeline}}}}}")
        else:
            otherwise = f"{{{{else}}}}{_nodes_string(node.otherwise)}" if node.otherwise else ""
            parts.append(f"{{{{{node.keyword} {node.pipeline}}}}}{_nodes_string(node.body)}{otherwise}{{{{end}}}}")
    return "".join(parts)


def top_fields(template: Template):
    """Every field C{template} reads of its data itself (not of a C{range}'s items)."""
    yield from _fields_in(template.nodes)


def _fields_in(nodes):
    for node in nodes:
        if isinstance(node, Action):
            yield from _pipeline_fields(node.pipeline)
        elif isinstance(node, Branch):
            yield from _pipeline_fields(node.pipeline)
            if node.keyword == "if":
                yield from _fields_in(node.body)
            yield from _fields_in(node.otherwise)


def _pipeline_fields(pipeline: Pipeline):
    for command in pipeline.commands:
        for arg in command.args:
            if isinstance(arg, Field):
                yield arg
            elif isinstance(arg, Pipeline):
                yield from _pipeline_fields(arg)
