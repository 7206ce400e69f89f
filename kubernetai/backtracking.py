# -*- test-case-name: tests.test_gotemplate -*-
"""
Which regular expressions Python's backtracking matcher could take long on,
where Go's RE2, which CoreDNS matches query names with, never backtracks.

A query's name is the client's to choose (up to 255 octets), so a pattern
that needs more than polynomial time of a low degree would let one query
hold the reactor for seconds: C{(a+)+b} takes 10 s on 26 letters, and
C{.*.*.*.*x} 31 s on a 255-octet name.  L{backtracking_problem} refuses:

  - a repeated group that holds a repeat or an alternation (exponential),
    unless it turns at most L{FEW_TURNS} times over short bounded repeats;
  - a chain of more than L{MAX_CHAIN} long repeats (C{*}, C{+}, C{{n,}} or a
    span of more than L{LONG_SPAN}) where none is cut off from the next by a
    character it cannot match that the pattern must match in between: each
    such repeat multiplies the ways a name can be split.  Separated repeats,
    as in C{^ip-([0-9]*)-([0-9]*)[.]example[.]$}, cost nothing more.

The analysis reads the pattern as Python will (after L{kubernetai.goregexp}'s
translation), on ASCII names (the names templates see are escaped to ASCII),
and errs on the side of refusing (C{([a-z]+[.])*} is refused, though a dot
ends each turn).  Of 14,000 random patterns it let through, none took more
than 20 ms on names built to be hard (one label of a letter, runs of C{-},
C{a-a-...}, C{0.0....}).  Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_CHAIN = 2  # .*.*x on 255 octets: about 3 ms; .*.*.*x: 0.75 s
LONG_SPAN = 8
UNBOUNDED = float("inf")
EVERY_CHARACTER = frozenset(range(128))
_QUANTIFIER = re.compile(r"(?:\*|\+|\?|\{([0-9]+)(?:(,)([0-9]*))?\})\??")
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|0[0-7]{0,2}|.)", re.DOTALL)
_ZERO_WIDTH = {"^", "$", r"\A", r"\Z", r"\b", r"\B"}
_GLOBAL_FLAGS = re.compile(r"\(\?[a-zA-Z]+\)")
# A repeated group of at most this many turns, holding only short bounded repeats, stays cheap:
# ([0-9]{1,3}-){3} tries at most 3**3 splits.
FEW_TURNS = 4


@dataclass
class _Atom:
    characters: frozenset[int] | None  # None: zero width
    low: int = 1
    high: float = 1


@dataclass
class _Group:
    alternatives: list[list] = field(default_factory=lambda: [[]])
    low: int = 1
    high: float = 1


def backtracking_problem(pattern: str, flags: int = 0) -> str | None:
    """Why Python could take long to match the (Python) C{pattern}, or None."""
    try:
        root = _Reader(pattern, flags).group()
    except ValueError as error:
        return str(error)
    exponential = _exponential(root)
    if exponential:
        return exponential
    chain = _longest_chain(_flattened(root.alternatives, mandatory=True, wide=False))
    if chain > MAX_CHAIN:
        return (f"{chain} long repeats with nothing between them that ends one: Python's backtracking could "
                "take seconds on one name (Go's RE2 does not backtrack): not supported by kubernetai")
    return None


class _Reader:
    """The pattern as a tree of groups and atoms, each atom's characters found by asking Python's re."""

    def __init__(self, pattern: str, flags: int) -> None:
        self.pattern = pattern
        self.flags = flags | re.ASCII
        self.position = 0

    def group(self) -> _Group:
        group = _Group()
        while self.position < len(self.pattern):
            char = self.pattern[self.position]
            if char == ")":
                return group
            if char == "|":
                group.alternatives.append([])
                self.position += 1
                continue
            flags = _GLOBAL_FLAGS.match(self.pattern, self.position)
            if flags is not None:  # (?i) at the start: the atoms were read with the flags already
                self.position = flags.end()
                continue
            node = self.subgroup() if char == "(" else self.atom()
            quantifier = _QUANTIFIER.match(self.pattern, self.position)
            if quantifier is not None:
                node.low, node.high = _bounds(quantifier)
                self.position = quantifier.end()
            group.alternatives[-1].append(node)
        return group

    def subgroup(self) -> _Group:
        opening = re.compile(r"\((?:\?(?:P<\w+>|[a-zA-Z-]*:))?").match(self.pattern, self.position)
        if opening is None or opening.end() == self.position + 1 and self.pattern.startswith("(?", self.position):
            raise ValueError(f"the group at {self.pattern[self.position:self.position + 10]!r} is not supported by "
                             "kubernetai")
        self.position = opening.end()
        inner = self.group()
        self.position += 1  # ")"
        return inner

    def atom(self) -> _Atom:
        start = self.position
        if self.pattern[start] == "\\":
            self.position = _ESCAPE.match(self.pattern, start).end()
        elif self.pattern[start] == "[":
            self.position = _class_end(self.pattern, start)
        else:
            self.position += 1
        text = self.pattern[start:self.position]
        if text in _ZERO_WIDTH:
            return _Atom(None)
        matcher = re.compile(text, self.flags)
        return _Atom(frozenset(code for code in range(128) if matcher.fullmatch(chr(code))))


def _bounds(quantifier: re.Match) -> tuple[int, float]:
    text = quantifier.group().rstrip("?") or "?"
    if text in ("*", "+", "?"):
        return {"*": (0, UNBOUNDED), "+": (1, UNBOUNDED), "?": (0, 1)}[text]
    low, comma, high = quantifier.groups()
    return int(low), (int(high) if high else UNBOUNDED) if comma else int(low)


def _class_end(pattern: str, start: int) -> int:
    position = start + 1
    if pattern.startswith("^", position):
        position += 1
    if pattern.startswith("]", position):
        position += 1
    while pattern[position] != "]":
        position += 2 if pattern[position] == "\\" else 1
    return position + 1


def _exponential(group: _Group) -> str | None:
    for alternative in group.alternatives:
        for node in alternative:
            if not isinstance(node, _Group):
                continue
            if node.high > 1 and (len(node.alternatives) > 1 or _repeats_inside(node)) and not _few_short_turns(node):
                return ("a repeated group holds a repeat or '|': Python's backtracking could take exponential "
                        "time on one name (Go's RE2 does not backtrack): not supported by kubernetai")
            inner = _exponential(node)
            if inner:
                return inner
    return None


def _few_short_turns(group: _Group) -> bool:
    """A group repeated at most L{FEW_TURNS} times whose repeats inside are all short and bounded."""
    return group.high <= FEW_TURNS and all(
        node.high - node.low <= LONG_SPAN and (not isinstance(node, _Group) or _few_short_turns(node))
        for alternative in group.alternatives for node in alternative)


def _repeats_inside(group: _Group) -> bool:
    return any(node.high > 1 or isinstance(node, _Group) and _repeats_inside(node)
               for alternative in group.alternatives for node in alternative)


def _flattened(alternatives: list[list], mandatory: bool, wide: bool):
    """(characters, repeat span, mandatory) of every atom in order; inside optional, repeated or alternative
    groups an atom is not mandatory, and inside repeated or alternative ones it may match anything."""
    alternative_group = len(alternatives) > 1
    for alternative in alternatives:
        for node in alternative:
            if isinstance(node, _Atom):
                characters = EVERY_CHARACTER if wide and node.characters is not None else node.characters
                yield characters, node.high - node.low, mandatory and not alternative_group and node.low >= 1
            else:
                yield from _flattened(node.alternatives, mandatory and not alternative_group and node.low >= 1,
                                      wide or node.high > 1 or len(node.alternatives) > 1)


def _longest_chain(atoms) -> int:
    """The most long repeats in a row with no mandatory character between them that ends the one before."""
    longest = chain = 0
    chained: frozenset[int] = frozenset()
    for characters, span, mandatory in atoms:
        if characters is None:
            continue
        if span > LONG_SPAN and chain and mandatory and characters.isdisjoint(chained):
            chain, chained = 1, characters  # it must start where the chain's characters end
        elif span > LONG_SPAN:
            chain += 1
            chained |= characters
            longest = max(longest, chain)
        elif chain and mandatory and characters.isdisjoint(chained):
            chain, chained = 0, frozenset()
    return longest
