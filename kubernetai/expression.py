# -*- test-case-name: tests.test_expression -*-
"""
The expressions of the C{view} plugin: the part of expr-lang/expr (the
language CoreDNS compiles them with) that CoreDNS's documentation and tests
use, over the functions of CoreDNS's C{plugin/pkg/expression} DefaultEnv.

L{compile_expression} refuses, with a L{ValueError} saying why, what expr
would refuse (a syntax or type error, an unknown name) and everything
outside the subset, so that a view never chooses differently from CoreDNS:
string and integer literals, C{true}/C{false}, arrays of literals of one
type on the right of C{in}, the known functions, C{==}, C{!=}, C{<}, C{<=},
C{>}, C{>=}, C{in}, C{matches}, C{contains}, C{startsWith}, C{endsWith}
(each may follow C{not}), C{and}/C{&&}, C{or}/C{||}, C{not}/C{!}, and
parentheses.  A regular expression must be a literal that Go's RE2 and
Python's C{re} read alike (L{kubernetai.goregexp}, which template uses too).

Evaluation follows expr: C{and} and C{or} stop early; an error (C{incidr}
of something that is no address) makes the whole view not match, as does
any result but C{true}.  Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable

from kubernetai.goregexp import GoRegexpError, compile_go

# What the functions read of a query: CoreDNS's request.Request methods by expr's function names.
Query = Any

STR, INT, BOOL = "string", "int", "bool"
# Deeper nesting of parentheses and calls, and longer expressions, are refused: parsing and evaluating
# recurse, and Python's recursion is limited.
MAX_DEPTH = 64
MAX_TOKENS = 256

# expr's binary operators that CoreDNS's expressions use, by precedence (expr's parser/operator).
PRECEDENCE = {"or": 10, "||": 10, "and": 15, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, "<=": 20,
              ">=": 20, "in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20}
WORD_OPERATORS = {"or", "and", "in", "matches", "contains", "startsWith", "endsWith", "not"}
NEGATABLE = {"in", "matches", "contains", "startsWith", "endsWith"}
STRING_OPERATORS = {"contains": str.__contains__, "startsWith": str.startswith, "endsWith": str.endswith}
ORDER_OPERATORS = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
                   ">=": lambda a, b: a >= b}
ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'",
           '"': '"'}

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[0-9][0-9A-Za-z_.]*)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<operator>==|!=|<=|>=|&&|\|\||[<>!(),\[\]])
""", re.VERBOSE | re.DOTALL)


def incidr(address: str, cidr: str) -> bool:
    """Whether C{address} is in the network C{cidr}; ValueError (an error in expr) for either not being one."""
    try:
        if "%" in address:
            raise ValueError(address)
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError("first argument is not an IP address") from None
    if not re.fullmatch(r"[^/%]+/[0-9]+", cidr):
        raise ValueError(f"invalid CIDR address: {cidr}")
    network = ipaddress.ip_network(cidr, strict=False)
    # Go's IPNet.Contains reads an IPv4-mapped address as the IPv4 one.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == network.version and ip in network


# The functions of CoreDNS's DefaultEnv: (parameter types, result type, implementation).
FUNCTIONS: dict[str, tuple[tuple[str, ...], str, Callable]] = {
    "incidr": ((STR, STR), BOOL, lambda query, address, cidr: incidr(address, cidr)),
    "metadata": ((STR,), STR, lambda query, label: ""),
    "type": ((), STR, lambda query: query.type_name),
    "name": ((), STR, lambda query: query.name),
    "class": ((), STR, lambda query: query.class_name),
    "proto": ((), STR, lambda query: query.protocol),
    "size": ((), INT, lambda query: query.size),
    "client_ip": ((), STR, lambda query: query.client_ip),
    "port": ((), STR, lambda query: query.client_port),
    "id": ((), INT, lambda query: query.id),
    "opcode": ((), INT, lambda query: query.opcode),
    "do": ((), BOOL, lambda query: query.dnssec_ok),
    "bufsize": ((), INT, lambda query: query.bufsize),
    "server_ip": ((), STR, lambda query: query.server_ip),
    "server_port": ((), STR, lambda query: query.server_port),
}


@dataclass(frozen=True)
class Node:
    """A checked expression: its type (C{"[]string"} for an array), how to evaluate it on a query, and
    whether it is a literal."""

    kind: str
    evaluate: Callable[[Query], Any]
    literal: bool = False


class Parser:
    """expr's precedence climbing over the tokens of one expression, type-checking as it builds."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        if len(self.tokens) > MAX_TOKENS:
            raise ValueError(f"expression longer than {MAX_TOKENS} tokens")
        self.position = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end of expression")
        self.position += 1
        return token

    def expect(self, token: str) -> None:
        found = self.take()
        if found != token:
            raise ValueError(f"expected {token!r}, found {found!r}")

    def expression(self, precedence: int = 0) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ValueError(f"expression nested more than {MAX_DEPTH} deep")
        try:
            return self._expression(precedence)
        finally:
            self.depth -= 1

    def _expression(self, precedence: int) -> Node:
        left = self.unary()
        last_precedence = None
        while (token := self.peek()) is not None:
            negate = token == "not"
            operator = self.tokens[self.position + 1] if negate and self.position + 1 < len(self.tokens) else token
            if negate and operator not in NEGATABLE:
                raise ValueError(f"unexpected token {operator!r} after 'not'")
            if operator not in PRECEDENCE or PRECEDENCE[operator] < precedence:
                if operator not in PRECEDENCE and operator not in (")", "]", ","):
                    raise ValueError(f"unsupported operator or unexpected token {operator!r}")
                break
            if PRECEDENCE[operator] == 20 and last_precedence == 20:
                raise ValueError(f"comparisons must be parenthesized when chained ({operator!r})")
            last_precedence = PRECEDENCE[operator]
            self.position += 2 if negate else 1
            right = self.expression(PRECEDENCE[operator] + 1)
            left = binary(operator, left, right)
            if negate:
                left = negation(left)
        return left

    def unary(self) -> Node:
        negations = 0
        while self.peek() in ("not", "!"):
            self.take()
            negations += 1
        node = self.primary()
        for _ in range(negations):
            node = negation(node)
        return node

    def primary(self) -> Node:
        token = self.take()
        if token == "(":
            node = self.expression()
            self.expect(")")
            return node
        if token == "[":
            return self.array()
        if token[0] in "'\"":
            value = unquote(token)
            return Node(STR, lambda query: value, literal=True)
        if token[0].isdigit():
            if not re.fullmatch(r"[0-9]+", token):
                raise ValueError(f"unsupported number {token!r}")
            number = int(token)
            return Node(INT, lambda query: number, literal=True)
        if token in ("true", "false"):
            truth = token == "true"
            return Node(BOOL, lambda query: truth)
        if token in FUNCTIONS and self.peek() == "(":
            return self.call(token)
        if token in FUNCTIONS:
            raise ValueError(f"{token} is a function: call it as {token}()")
        if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", token) and token not in WORD_OPERATORS:
            raise ValueError(f"unknown name {token}")
        raise ValueError(f"unexpected token {token!r}")

    def call(self, function: str) -> Node:
        self.expect("(")
        arguments = []
        while self.peek() != ")":
            if arguments:
                self.expect(",")
            arguments.append(self.expression())
        self.take()
        parameters, result, implementation = FUNCTIONS[function]
        if len(arguments) != len(parameters):
            raise ValueError(f"{function}() takes {len(parameters)} arguments, given {len(arguments)}")
        for number, (argument, parameter) in enumerate(zip(arguments, parameters), 1):
            if argument.kind != parameter:
                raise ValueError(f"argument {number} of {function}() must be a {parameter}, not a {argument.kind}")
        evaluators = [argument.evaluate for argument in arguments]
        return Node(result, lambda query: implementation(query, *(evaluate(query) for evaluate in evaluators)))

    def array(self) -> Node:
        values = []
        while self.peek() != "]":
            if values:
                self.expect(",")
            token = self.take()
            if token[0] in "'\"":
                values.append(unquote(token))
            elif re.fullmatch(r"[0-9]+", token):
                values.append(int(token))
            else:
                raise ValueError(f"an array must hold string or integer literals, not {token!r}")
        self.take()
        kinds = {type(value) for value in values}
        if len(kinds) != 1:
            raise ValueError("an array must hold string or integer literals, all of one type")
        items = tuple(values)
        return Node("[]" + (STR if kinds.pop() is str else INT), lambda query: items)


def tokenize(text: str) -> list[str]:
    """The tokens of C{text}; ValueError for a character expr does not read."""
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"unsupported character {text[position]!r}")
        if match.lastgroup != "space":
            tokens.append(match.group())
        position = match.end()
    return tokens


def unquote(token: str) -> str:
    """A string literal's value, with the escapes expr and Go read alike."""
    body = token[1:-1]

    def escape(match: re.Match) -> str:
        if match.group(1) not in ESCAPES:
            raise ValueError(f"unsupported escape \\{match.group(1)} in {token}")
        return ESCAPES[match.group(1)]

    return re.sub(r"\\(.)", escape, body, flags=re.DOTALL)


def negation(node: Node) -> Node:
    if node.kind != BOOL:
        raise ValueError(f"invalid operation: not on a {node.kind}")
    return Node(BOOL, lambda query: not node.evaluate(query))


def binary(operator: str, left: Node, right: Node) -> Node:
    """The checked node of C{left operator right}, as expr's checker types it."""
    mismatch = ValueError(f"invalid operation: {operator} (mismatched types {left.kind} and {right.kind})")
    if operator in ("and", "&&", "or", "||"):
        if left.kind != BOOL or right.kind != BOOL:
            raise mismatch
        if operator in ("and", "&&"):
            return Node(BOOL, lambda query: left.evaluate(query) and right.evaluate(query))
        return Node(BOOL, lambda query: left.evaluate(query) or right.evaluate(query))
    if left.kind.startswith("[") or (right.kind.startswith("[") and operator != "in"):
        raise ValueError(f"arrays are only supported on the right of 'in' ({operator!r})")
    if operator in ("==", "!="):
        if left.kind != right.kind:
            raise mismatch
        equal = operator == "=="
        return Node(BOOL, lambda query: (left.evaluate(query) == right.evaluate(query)) == equal)
    if operator in ORDER_OPERATORS:
        if left.kind != right.kind or left.kind == BOOL:
            raise mismatch
        compare = ORDER_OPERATORS[operator]
        return Node(BOOL, lambda query: compare(left.evaluate(query), right.evaluate(query)))
    if operator == "in":
        if right.kind != "[]" + left.kind:
            raise ValueError(f"'in' needs an array of {left.kind} on its right, not a {right.kind}")
        return Node(BOOL, lambda query: left.evaluate(query) in right.evaluate(query))
    if left.kind != STR or right.kind != STR:
        raise mismatch
    if operator == "matches":
        pattern = go_regex(right)
        return Node(BOOL, lambda query: pattern.search(left.evaluate(query)) is not None)
    test = STRING_OPERATORS[operator]
    return Node(BOOL, lambda query: test(left.evaluate(query), right.evaluate(query)))


def go_regex(node: Node) -> re.Pattern:
    """The literal regular expression of C{node}, compiled as Go reads it (L{compile_go}: refused
    where Python would read it otherwise or could take long on a name)."""
    if not node.literal:
        raise ValueError("the right of 'matches' must be a string literal")
    pattern = node.evaluate(None)
    try:
        return compile_go(pattern)
    except GoRegexpError as err:
        raise ValueError(f"regular expression {pattern!r}: {err}") from None


@dataclass(frozen=True)
class Expression:
    """A compiled view expression: C{matches(query)} is true only when it evaluates to true."""

    text: str
    root: Node

    def matches(self, query: Query) -> bool:
        try:
            return self.root.evaluate(query) is True
        except ValueError:
            return False


def compile_expression(text: str) -> Expression:
    """C{text} parsed and checked; ValueError saying what expr, or this subset of it, does not take."""
    parser = Parser(text)
    if not parser.tokens:
        raise ValueError("empty expression")
    root = parser.expression()
    if parser.peek() is not None:
        raise ValueError(f"unexpected token {parser.peek()!r}")
    return Expression(text, root)
