# -*- test-case-name: tests.test_gotemplate -*-
"""
The part of Go's text/template that CoreDNS's template plugin documents and
tests, parsed: text and actions with trim markers (C{{{- }} and C{ -}}}),
fields (C{.Name}, C{.Group.a}), methods with arguments (C{.Meta "name"}),
string, raw string, integer and boolean literals, parenthesized pipelines,
pipelines with C{|}, C{if}/C{else if}/C{else}/C{end}, C{range}/C{else}/C{end}
and the functions the template plugin gives (C{parseInt}, Go's C{index}).

Pure: L{parse} turns a template's text into a tree, or a L{TemplateError}
saying, as Go's parser would, what is wrong; anything else of Go's language
(variables, C{with}, comments, other functions...) is refused there as not
supported, never run differently.  L{kubernetai.gorender} renders the tree.
Compared with Go's text/template on 80,000 random templates over the same
data: every one both take renders the same text, or fails in both, but for
printing a whole struct (the dot itself), which gorender refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
# Deeper nesting of parentheses, ifs and ranges is refused: parsing and rendering recurse, Python's recursion is
# limited.
MAX_DEPTH = 64
# The functions templates may call: the template plugin's, and Go's index (kubernetai.gorender runs them).
FUNCTION_NAMES = frozenset({"index", "parseInt"})


class TemplateError(Exception):
    """A template Go would not parse or could not execute, or one we do not support."""


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

    def __str__(self) -> str:
        return self.text


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


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int
    spaced: bool  # whitespace before it


@dataclass
class _Action:
    pos: int  # where the action's first token is
    line: int
    tokens: list[_Token]


class _Parser:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.items = self._split()
        self.index = 0  # of the next item to parse
        self._at = 0  # of the next token of the action being parsed
        self.depth = 0  # of parentheses, ifs and ranges around what is being parsed

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

    def _tokens(self, start: int, end: int, line: int) -> list[_Token]:
        tokens = []
        position = start
        spaced = True
        while position < end:
            match = _TOKEN.match(self.text, position, end)
            if match is None:
                rest = self.text[position:end].split()[0]
                if rest.startswith("$"):
                    raise self.error(line, f"variables ({rest}) are not supported by kubernetai")
                if re.match(r"[+-]?[0-9.']", rest):
                    raise self.error(line, f"the constant {rest} is not supported by kubernetai (integers only)")
                raise self.error(line, f"unexpected {rest!r} in command")
            if match.lastgroup != "space":
                tokens.append(_Token(match.lastgroup, match.group(), position, spaced))
            spaced = match.lastgroup == "space"
            position = match.end()
        return tokens

    def parse(self) -> tuple[Node, ...]:
        nodes, ending = self._list()
        if ending is not None:
            raise self.error(ending.line, f"unexpected {{{{{ending.tokens[0].text}}}}}")
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
            kind, word = item.tokens[0].kind, item.tokens[0].text
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
        self._deeper(item)
        try:
            return self._branch_body(item, keyword, tokens)
        finally:
            self.depth -= 1

    def _deeper(self, item: _Action) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(item.line, f"more than {MAX_DEPTH} levels of nesting are not supported by kubernetai")

    def _branch_body(self, item: _Action, keyword: str, tokens) -> Branch:
        if not tokens:
            raise self.error(item.line, f"missing value for {keyword}")
        pipeline = self._pipeline(item, tokens)
        body, ending = self._list()
        if ending is None:
            raise self.error(self.text.count("\n") + 1, "unexpected EOF")
        otherwise: tuple[Node, ...] = ()
        if ending.tokens[0].text == "else":
            rest = ending.tokens[1:]
            if rest and rest[0].text == "if" and keyword == "if":
                return Branch(item.pos, keyword, pipeline, body, (self._branch(ending, "if", rest[1:]),))
            if rest:
                raise self.error(ending.line, f"unexpected {rest[0].text!r} in else")
            otherwise, ending = self._list()
            if ending is None or ending.tokens[0].text != "end":
                raise self.error(self.text.count("\n") + 1 if ending is None else ending.line,
                                 "unexpected EOF" if ending is None else "expected end; found {{else}}")
        if len(ending.tokens) > 1:
            raise self.error(ending.line, f"unexpected {ending.tokens[1].text!r} in end")
        return Branch(item.pos, keyword, pipeline, body, otherwise)

    def _pipeline(self, item: _Action, tokens: list[_Token], start: int = 0, nested: bool = False) -> Pipeline:
        """The pipeline of C{tokens} from C{start} to their end (C{nested}: to a closing parenthesis, not consumed)."""
        self._at = start
        commands = []
        while True:
            args = []
            while self._at < len(tokens) and tokens[self._at].text not in ("|", ")"):
                args.append(self._operand(item, tokens))
                self._check_after_operand(item, tokens)
            if not args:
                raise self.error(item.line, "missing value for command")
            commands.append(Command(args[0].pos, tuple(args)))
            if self._at < len(tokens) and tokens[self._at].text == "|":
                self._at += 1
                if self._at < len(tokens) and tokens[self._at].text != ")":
                    continue  # Go takes a "|" that ends the pipeline, and ignores it
            break
        if not nested and self._at < len(tokens):
            raise self.error(item.line, "unexpected right paren")
        for number, command in enumerate(commands[1:], start=2):
            if isinstance(command.args[0], (Literal, Dot)):
                raise self.error(item.line, f"non executable command in pipeline stage {number}")
        return Pipeline(commands[0].pos, tuple(commands))

    def _check_after_operand(self, item: _Action, tokens: list[_Token]) -> None:
        """An operand ends at a space, a C{|}, a C{)} or the action's end, as Go's parser requires."""
        if self._at >= len(tokens):
            return
        following = tokens[self._at]
        if following.spaced or following.text in ("|", ")"):
            return
        term = tokens[self._at - 1]
        if following.kind == "field" and (term.text == ")" or term.kind == "identifier"):
            raise self.error(item.line, f"fields of a function's or parenthesized value ({following.text}) "
                                        "are not supported by kubernetai")
        raise self.error(item.line, f"unexpected {following.text} in operand")

    def _operand(self, item: _Action, tokens: list[_Token]) -> Node:
        token = tokens[self._at]
        kind, text, pos = token.kind, token.text, token.pos
        self._at += 1
        if kind == "punct":  # "(": ")" and "|" end the loop above
            self._deeper(item)
            inner = self._pipeline(item, tokens, self._at, nested=True)
            self.depth -= 1
            if self._at >= len(tokens) or tokens[self._at].text != ")":
                raise self.error(item.line, "unclosed left paren")
            self._at += 1
            return Pipeline(pos, inner.commands)
        if kind == "field":
            names = tuple(text[1:].split("."))
            # Go places a chain of fields at its second one (its errors give that column).
            return Field(pos + len(names[0]) + 1 if len(names) > 1 else pos, names)
        if kind == "dot":
            return Dot(pos)
        if kind in ("string", "raw"):
            return Literal(pos, self._unquote(item, kind, text), text)
        if kind == "number":
            try:
                return Literal(pos, _go_int(text), text)
            except ValueError:  # 08, 1__0, 0x_
                raise self.error(item.line, f'illegal number syntax: "{text}"') from None
        if text in ("true", "false"):
            return Literal(pos, text == "true", text)
        if text in KEYWORDS:
            raise self.error(item.line, f"unexpected {text!r} in operand")
        if text not in FUNCTION_NAMES:
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
